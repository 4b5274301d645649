//! `Foo/changes` (RFC 8620 §5.2), read from the change log.

use serde_json::json;

use super::{ObjectType, take_max_changes};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::types::{Id, State};
use crate::store::commit::{ChangesError, DataType, changes_since};

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
    let outcome = context
        .engine
        .store
        .read(|tx| {
            Box::pin(async move {
                Ok(changes_since(tx, account_id, data_type, since.position(), max_changes).await)
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

fn ids_json(id_prefix: char, ids: &[u64]) -> serde_json::Value {
    ids.iter()
        .map(|id| serde_json::Value::String(Id::from_number(id_prefix, *id).into_string()))
        .collect()
}

fn cannot_calculate() -> MethodError {
    MethodError::new(MethodErrorType::CannotCalculateChanges)
}
