//! `Principal/query` (RFC 9670 §2.5, RFC 8620 §5.5): the directory filtered and sorted in
//! memory (a directory is small next to a mailbox).

use serde_json::{Map, Value};

use super::{PrincipalQuery, own_account, parse_principal_id, principal_id};
use crate::auth::directory::principals::{all_principals, principals_version};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::query::{WindowStart, window_start};
use crate::jmap::types::{State, UnsignedInt};
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(query(context, arguments))
}

async fn query(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = own_account(&mut arguments, context)?;
    let principal_query = PrincipalQuery::take(&mut arguments, context)?;
    let position = arguments.take_int("position")?.map_or(0, |p| p.get());
    let anchor = arguments.take_string("anchor")?;
    let anchor_offset = arguments.take_int("anchorOffset")?.map_or(0, |o| o.get());
    let requested_limit = arguments.take_unsigned("limit")?;
    let calculate_total = arguments.take_bool("calculateTotal", false)?;
    arguments.finish()?;
    let start = match anchor {
        Some(anchor) => WindowStart::Anchor {
            id: parse_principal_id(&anchor)
                .map(u64::from)
                .ok_or_else(|| MethodError::new(MethodErrorType::AnchorNotFound))?,
            offset: anchor_offset,
        },
        None => WindowStart::Position(position),
    };
    let server_limit = context.engine.limits.max_objects_in_get;
    let limit = requested_limit.map_or(server_limit, |l| l.get().min(server_limit));
    let (state, principals) = context
        .engine
        .store
        .read(|tx| {
            Box::pin(async move { Ok((principals_version(tx).await?, all_principals(tx).await?)) })
        })
        .await?;
    let ids: Vec<u64> = principal_query
        .run(&principals)
        .into_iter()
        .map(u64::from)
        .collect();
    let first = window_start(&ids, &start)?;
    let end = ids
        .len()
        .min(first.saturating_add(usize::try_from(limit).unwrap_or(usize::MAX)));
    let mut response = Map::new();
    response.insert("accountId".into(), Value::String(account.to_string()));
    response.insert(
        "queryState".into(),
        Value::String(State::new(state).to_string()),
    );
    response.insert("canCalculateChanges".into(), Value::Bool(true));
    response.insert("position".into(), Value::from(first as u64));
    response.insert(
        "ids".into(),
        ids[first..end]
            .iter()
            .map(|id| Value::String(principal_id(u32::try_from(*id).unwrap_or(0))))
            .collect(),
    );
    if calculate_total {
        response.insert(
            "total".into(),
            serde_json::to_value(UnsignedInt::saturating(ids.len() as u64)).unwrap_or_default(),
        );
    }
    if requested_limit.is_some_and(|requested| requested.get() > server_limit) {
        response.insert("limit".into(), Value::from(limit));
    }
    Ok(Value::Object(response))
}
