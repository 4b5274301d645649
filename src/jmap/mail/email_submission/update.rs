//! EmailSubmission/set update (RFC 8621 §7.5): the only change a client may make is
//! undoStatus "pending" → "canceled", and it must really stop delivery: the message leaves the
//! outbound queue in the same transaction, or — once delivery started — the update fails
//! with `cannotUnsend`.

use serde_json::{Map, Value};

use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::generic::WriteScope;
use crate::mail::submission::{self, UndoStatus};
use crate::outbound::queue;
use crate::store::commit::Changes;
use crate::store::{StoreResult, Transaction};

pub async fn update(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    scope: &WriteScope<'_>,
    id: u64,
    current: Map<String, Value>,
    patched: Map<String, Value>,
) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
    // RFC 8621 §7: identityId, emailId and envelope are immutable.
    let changed: Vec<&str> = ["identityId", "emailId", "envelope"]
        .into_iter()
        .filter(|property| patched.get(*property) != current.get(*property))
        .collect();
    if !changed.is_empty() {
        return Ok(Err(SetError::invalid_properties(
            changed,
            "only undoStatus can change",
        )));
    }
    let wanted = patched.get("undoStatus").and_then(Value::as_str);
    if wanted == current.get("undoStatus").and_then(Value::as_str) {
        return Ok(Ok(None));
    }
    if wanted != Some(UndoStatus::Canceled.name()) {
        return Ok(Err(SetError::invalid_properties(
            ["undoStatus"],
            "undoStatus can only be set to \"canceled\"",
        )));
    }
    let account_id = scope.account_id;
    let Some(mut record) = submission::load(tx, account_id, id).await? else {
        return Ok(Err(SetError::not_found()));
    };
    // RFC 8621 §7.5: only a pending submission can be canceled, and only while no part of it
    // has left; the queue decides, in this same transaction.
    let taken_off_queue = match (record.undo_status, record.outbound_id) {
        (UndoStatus::Pending, Some(outbound_id)) => queue::cancel(tx, outbound_id).await?,
        _ => false,
    };
    if !taken_off_queue {
        return Ok(Err(SetError::with_description(
            SetErrorType::CannotUnsend,
            "the message has already been sent (in part or whole)",
        )));
    }
    record.undo_status = UndoStatus::Canceled;
    record.outbound_id = None;
    submission::save(tx, changes, account_id, id, &record)?;
    tracing::info!(account_id, submission_id = id, "EmailSubmission canceled");
    Ok(Ok(None))
}
