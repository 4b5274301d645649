//! `Foo/query` (RFC 8620 §5.5): the type filters and sorts; this file windows the result by
//! position or anchor and limit.

use serde_json::{Map, Value};

use super::{ObjectType, ids_to_json, take_filter_and_sort};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::get::visible_ids;
use crate::jmap::types::{State, UnsignedInt};
use crate::mail::sharing::view_in;
use crate::store::commit::read_state;

/// Where the window starts: RFC 8620 §5.5 `position`, or `anchor` + `anchorOffset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowStart {
    Position(i64),
    Anchor { id: u64, offset: i64 },
}

/// The index of the first id returned, or `anchorNotFound`.
pub fn window_start(ids: &[u64], start: &WindowStart) -> Result<usize, MethodError> {
    let total = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    let index = match start {
        // RFC 8620 §5.5: a negative position counts from the end, clamped to 0.
        WindowStart::Position(position) if *position < 0 => (total + position).max(0),
        WindowStart::Position(position) => *position,
        WindowStart::Anchor { id, offset } => {
            let Some(anchor_index) = ids.iter().position(|candidate| candidate == id) else {
                return Err(MethodError::new(MethodErrorType::AnchorNotFound));
            };
            // RFC 8620 §5.5: an offset before the start clamps to 0.
            (anchor_index as i64 + offset).max(0)
        }
    };
    Ok(usize::try_from(index.min(total)).unwrap_or(0))
}

pub async fn query<T: ObjectType>(
    context: &mut CallContext<'_>,
    mut arguments: Arguments,
) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let limits = &context.engine.limits;
    let (filter, sort) = take_filter_and_sort(&mut arguments, &limits.collation_algorithms)?;
    let position = arguments.take_int("position")?.map_or(0, |p| p.get());
    let anchor = arguments.take_string("anchor")?;
    let anchor_offset = arguments.take_int("anchorOffset")?.map_or(0, |o| o.get());
    let requested_limit = arguments.take_unsigned("limit")?;
    let calculate_total = arguments.take_bool("calculateTotal", false)?;
    arguments.finish()?;

    let start = match anchor {
        // RFC 8620 §5.5: with an anchor, position is ignored.
        Some(anchor) => {
            let id = context
                .resolve_id(&anchor)?
                .and_then(|id| id.to_number(T::ID_PREFIX))
                .ok_or_else(|| MethodError::new(MethodErrorType::AnchorNotFound))?;
            WindowStart::Anchor {
                id,
                offset: anchor_offset,
            }
        }
        None => WindowStart::Position(position),
    };
    // The server's own bound on one page; reported in `limit` when it cut the client's.
    let server_limit = limits.max_objects_in_get;
    let limit = requested_limit.map_or(server_limit, |l| l.get().min(server_limit));

    let account_id = account.number();
    let viewer = context.viewer.clone();
    let (state, outcome) = context
        .engine
        .store
        .read(|tx| {
            Box::pin(async move {
                let state = read_state(tx, account_id, T::DATA_TYPE).await?;
                let mut outcome = T::query(tx, account_id, filter.as_ref(), &sort).await?;
                // RFC 9670: a grantee's results hold only what the grants show.
                if let (Some(view), Ok(ids)) =
                    (view_in(tx, account_id, &viewer).await?, outcome.as_mut())
                {
                    *ids = visible_ids::<T>(tx, account_id, &view, std::mem::take(ids)).await?;
                }
                Ok((state, outcome))
            })
        })
        .await?;
    let ids = outcome?;
    let first = window_start(&ids, &start)?;
    let window_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let window = &ids[first..ids.len().min(first.saturating_add(window_len))];

    let mut response = Map::with_capacity(7);
    response.insert("accountId".to_owned(), Value::String(account.to_string()));
    response.insert(
        "queryState".to_owned(),
        Value::String(State::new(state).to_string()),
    );
    response.insert("canCalculateChanges".to_owned(), Value::Bool(true));
    response.insert("position".to_owned(), Value::from(first as u64));
    response.insert("ids".to_owned(), ids_to_json::<T>(window));
    if calculate_total {
        response.insert(
            "total".to_owned(),
            serde_json::to_value(UnsignedInt::saturating(ids.len() as u64)).unwrap_or_default(),
        );
    }
    // RFC 8620 §5.5: `limit` is returned only when the server's bound applied.
    let server_bound_applied = match requested_limit {
        Some(requested) => requested.get() > server_limit,
        None => ids.len() - first > window.len(),
    };
    if server_bound_applied {
        response.insert("limit".to_owned(), Value::from(limit));
    }
    Ok(Value::Object(response))
}
