//! `Foo/changes` (RFC 8620 §5.2), read from the change log.

use serde_json::json;

use super::{ObjectType, take_max_changes};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::types::{Id, State};
use crate::mail::sharing::{SharedView, object_visible, sharing_version, view_in};
use crate::store::commit::{ChangesError, ChangesSince, DataType, changes_since};
use crate::store::{StoreResult, Transaction};

pub async fn changes<T: ObjectType>(
    context: &mut CallContext<'_>,
    arguments: Arguments,
) -> MethodResult {
    changes_of(context, arguments, T::DATA_TYPE, T::ID_PREFIX).await
}

/// /changes of any type with a change log, including those with their own storage (Email,
/// Thread).
pub async fn changes_of(
    context: &mut CallContext<'_>,
    mut arguments: Arguments,
    data_type: DataType,
    id_prefix: char,
) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let Some(since_text) = arguments.take_string("sinceState")? else {
        return Err(MethodError::invalid_arguments("\"sinceState\" is required"));
    };
    let requested_max = take_max_changes(&mut arguments)?;
    arguments.finish()?;
    // The server's own bound: a client fetches changed ids with /get, which takes at most
    // maxObjectsInGet.
    let server_max = context.engine.limits.max_objects_in_get.max(1);
    let max_changes = requested_max.map_or(server_max, |max| max.get().min(server_max));
    let max_changes = usize::try_from(max_changes).unwrap_or(usize::MAX);
    // A state this server never issued cannot be a starting point.
    let since = State::parse(&since_text).ok_or_else(cannot_calculate)?;

    let account_id = account.number();
    let viewer = context.viewer.clone();
    let outcome = context
        .engine
        .store
        .read(|tx| {
            Box::pin(async move {
                let changes =
                    changes_since(tx, account_id, data_type, since.position(), max_changes).await;
                match (view_in(tx, account_id, &viewer).await?, changes) {
                    (Some(view), Ok(changes)) => {
                        shared_changes(tx, account_id, &view, data_type, changes).await
                    }
                    (_, changes) => Ok(changes),
                }
            })
        })
        .await?;
    let changes = match outcome {
        Ok(changes) => changes,
        Err(ChangesError::CannotCalculate) => return Err(cannot_calculate()),
        Err(ChangesError::Store(error)) => return Err(MethodError::from_store(&error)),
    };
    Ok(json!({
        "accountId": account,
        "oldState": State::at(changes.old_state),
        "newState": State::at(changes.new_state),
        "hasMoreChanges": changes.has_more_changes,
        "created": ids_json(id_prefix, &changes.created),
        "updated": ids_json(id_prefix, &changes.updated),
        "destroyed": ids_json(id_prefix, &changes.destroyed),
    }))
}

/// A grantee's /changes (RFC 9670): what the grants show. Since a grant changed, Emails and
/// Threads appeared or vanished without a change-log entry, so those changes cannot be
/// calculated (the client resynchronizes: a revocation becomes a removal). Otherwise an object
/// the grantee does not see now is left out when it was created in the window and reported
/// destroyed when it was updated (it may have been visible before, e.g. moved out of a shared
/// Mailbox).
async fn shared_changes(
    tx: &mut dyn Transaction,
    account_id: u32,
    view: &SharedView,
    data_type: DataType,
    mut changes: ChangesSince,
) -> StoreResult<Result<ChangesSince, ChangesError>> {
    if matches!(data_type, DataType::Email | DataType::Thread)
        && sharing_version(tx, account_id).await? > changes.old_state.version
    {
        return Ok(Err(ChangesError::CannotCalculate));
    }
    let mut created = Vec::with_capacity(changes.created.len());
    for id in std::mem::take(&mut changes.created) {
        if object_visible(tx, account_id, view, data_type, id).await? {
            created.push(id);
        }
    }
    let mut updated = Vec::with_capacity(changes.updated.len());
    for id in std::mem::take(&mut changes.updated) {
        if object_visible(tx, account_id, view, data_type, id).await? {
            updated.push(id);
        } else {
            changes.destroyed.push(id);
        }
    }
    changes.created = created;
    changes.updated = updated;
    Ok(Ok(changes))
}

fn ids_json(id_prefix: char, ids: &[u64]) -> serde_json::Value {
    ids.iter()
        .map(|id| serde_json::Value::String(Id::from_number(id_prefix, *id).into_string()))
        .collect()
}

fn cannot_calculate() -> MethodError {
    MethodError::new(MethodErrorType::CannotCalculateChanges)
}
