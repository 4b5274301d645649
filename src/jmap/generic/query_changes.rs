//! `Foo/queryChanges` (RFC 8620 §5.6), computed from the change log and the current results.
//!
//! The old results are not stored, so the answer is the conservative one §5.6 allows: every
//! id updated or destroyed since the old state is in `removed` (it may have been in the old
//! results, and an updated object may have moved), and every current result that was created
//! or updated is in `added` with its index. A client applying this gets exactly the new
//! results. `upToId` is accepted and ignored, which §5.6 permits when the filter or sort may
//! involve mutable properties (the generic layer cannot know they do not).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{ObjectType, ids_to_json, take_filter_and_sort, take_max_changes};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::get::visible_ids;
use crate::jmap::types::{Id, State, UnsignedInt};
use crate::mail::sharing::view_in;
use crate::store::commit::{ChangesError, changes_since};

pub async fn query_changes<T: ObjectType>(
    context: &mut CallContext<'_>,
    mut arguments: Arguments,
) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let limits = &context.engine.limits;
    let (filter, sort) = take_filter_and_sort(&mut arguments, &limits.collation_algorithms)?;
    let Some(since_text) = arguments.take_string("sinceQueryState")? else {
        return Err(MethodError::invalid_arguments(
            "\"sinceQueryState\" is required",
        ));
    };
    let requested_max = take_max_changes(&mut arguments)?;
    if let Some(up_to_id) = arguments.take_string("upToId")? {
        Id::parse(&up_to_id).map_err(|error| MethodError::invalid_arguments(error.to_string()))?;
    }
    let calculate_total = arguments.take_bool("calculateTotal", false)?;
    arguments.finish()?;
    let max_changes = requested_max.map_or(u64::MAX, UnsignedInt::get);
    let since = State::parse(&since_text)
        .ok_or_else(|| MethodError::new(MethodErrorType::CannotCalculateChanges))?;

    let account_id = account.number();
    let viewer = context.viewer.clone();
    let (log, outcome) = context
        .engine
        .store
        .read(|tx| {
            Box::pin(async move {
                let log = changes_since(tx, account_id, T::DATA_TYPE, since.position(), 0).await;
                let mut outcome = T::query(tx, account_id, filter.as_ref(), &sort).await?;
                // RFC 9670: a revoked object leaves the grantee's results (it was updated, so
                // it is in `removed`, and it is not added back).
                if let (Some(view), Ok(ids)) =
                    (view_in(tx, account_id, &viewer).await?, outcome.as_mut())
                {
                    *ids = visible_ids::<T>(tx, account_id, &view, std::mem::take(ids)).await?;
                }
                Ok((log, outcome))
            })
        })
        .await?;
    let log = match log {
        Ok(log) => log,
        Err(ChangesError::CannotCalculate) => {
            return Err(MethodError::new(MethodErrorType::CannotCalculateChanges));
        }
        Err(ChangesError::Store(error)) => return Err(MethodError::from_store(&error)),
    };
    let ids = outcome?;

    let removed: Vec<u64> = log.updated.iter().chain(&log.destroyed).copied().collect();
    let touched: HashSet<u64> = log.created.iter().chain(&log.updated).copied().collect();
    let added: Vec<Value> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| touched.contains(id))
        .map(|(index, id)| json!({"id": Id::from_number(T::ID_PREFIX, *id), "index": index}))
        .collect();
    // RFC 8620 §5.6: more changes than maxChanges is tooManyChanges.
    let change_count = (removed.len() + added.len()) as u64;
    if change_count > max_changes {
        return Err(MethodError::with_description(
            MethodErrorType::TooManyChanges,
            format!("{change_count} changes, more than maxChanges ({max_changes})"),
        ));
    }
    let mut response = json!({
        "accountId": account,
        "oldQueryState": State::at(log.old_state),
        "newQueryState": State::at(log.new_state),
        "removed": ids_to_json::<T>(&removed),
        "added": added,
    });
    if calculate_total {
        response["total"] = Value::from(ids.len() as u64);
    }
    Ok(response)
}
