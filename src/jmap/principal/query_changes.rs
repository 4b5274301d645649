//! `Principal/queryChanges` (RFC 9670 §2.6, RFC 8620 §5.6): the conservative answer of the
//! generic /queryChanges — every principal changed since is removed, and re-added at its index
//! when it matches now.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{PrincipalQuery, own_account, principal_id};
use crate::auth::directory::principals::{PrincipalChange, all_principals, changes_since};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::take_max_changes;
use crate::jmap::types::{State, UnsignedInt};
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(query_changes(context, arguments))
}

async fn query_changes(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = own_account(&mut arguments, context)?;
    let principal_query = PrincipalQuery::take(&mut arguments, context)?;
    let Some(since_text) = arguments.take_string("sinceQueryState")? else {
        return Err(MethodError::invalid_arguments(
            "\"sinceQueryState\" is required",
        ));
    };
    let max_changes = take_max_changes(&mut arguments)?.map_or(u64::MAX, UnsignedInt::get);
    let _ = arguments.take_string("upToId")?;
    let calculate_total = arguments.take_bool("calculateTotal", false)?;
    arguments.finish()?;
    let cannot = || MethodError::new(MethodErrorType::CannotCalculateChanges);
    let since = State::parse(&since_text)
        .ok_or_else(cannot)?
        .position()
        .version;
    let (log, principals) = context
        .engine
        .store
        .read(move |tx| {
            Box::pin(
                async move { Ok((changes_since(tx, since).await?, all_principals(tx).await?)) },
            )
        })
        .await?;
    let (current, changed) = log.ok_or_else(cannot)?;
    let ids = principal_query.run(&principals);
    let removed: Vec<Value> = changed
        .iter()
        .filter(|(_, kind)| **kind != PrincipalChange::Created)
        .map(|(id, _)| Value::String(principal_id(*id)))
        .collect();
    let touched: HashSet<u32> = changed
        .iter()
        .filter(|(_, kind)| **kind != PrincipalChange::Destroyed)
        .map(|(id, _)| *id)
        .collect();
    let added: Vec<Value> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| touched.contains(id))
        .map(|(index, id)| json!({"id": principal_id(*id), "index": index}))
        .collect();
    let count = (removed.len() + added.len()) as u64;
    if count > max_changes {
        return Err(MethodError::with_description(
            MethodErrorType::TooManyChanges,
            format!("{count} changes, more than maxChanges ({max_changes})"),
        ));
    }
    let mut response = json!({
        "accountId": account,
        "oldQueryState": State::new(since),
        "newQueryState": State::new(current),
        "removed": removed,
        "added": added,
    });
    if calculate_total {
        response["total"] = Value::from(ids.len() as u64);
    }
    Ok(response)
}
