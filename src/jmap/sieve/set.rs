//! `SieveScript/set` (RFC 9661 §2.2) on the generic machinery, then the activation the call
//! asked for: `onSuccessActivateScript` (an id or `#creationId`) or
//! `onSuccessDeactivateScript`, in one more commit after the creates, updates and destroys;
//! the scripts whose `isActive` changed are reported in `updated`, and `newState` follows.

use serde_json::{Map, Value, json};

use super::{SieveScript, activate};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::MethodError;
use crate::jmap::generic::{self, ObjectType};
use crate::jmap::types::{AccountId, Id, State};
use crate::store::BoxFuture;
use crate::store::commit::commit_account;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(set(context, arguments))
}

async fn set(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let activate_id = arguments.take_string("onSuccessActivateScript")?;
    let deactivate = arguments.take_bool("onSuccessDeactivateScript", false)?;
    let members = arguments.into_inner();
    let account = members
        .get("accountId")
        .and_then(Value::as_str)
        .and_then(|text| AccountId::parse(text).ok());
    let mut response = generic::set::set::<SieveScript>(context, Arguments::new(members)).await?;
    if activate_id.is_none() && !deactivate {
        return Ok(response);
    }
    let Some(account) = account else {
        return Ok(response);
    };
    // The script to activate: one that exists after this call (a failed creation is not).
    let target = match &activate_id {
        Some(text) => {
            let id = match text.strip_prefix('#') {
                Some(creation_id) => response["created"][creation_id]["id"]
                    .as_str()
                    .and_then(|id| Id::parse(id).ok()),
                None => Id::parse(text).ok(),
            };
            match id.and_then(|id| id.to_number(SieveScript::ID_PREFIX)) {
                Some(number) => Some(number),
                // Nothing to activate: the rest of the call stands.
                None => return Ok(response),
            }
        }
        None => None,
    };
    let account = context.authorize(account)?;
    let account_id = account.number();
    let committed = commit_account(&context.engine.store, account_id, |tx, changes| {
        Box::pin(async move { activate(tx, changes, account_id, target).await })
    })
    .await
    .map_err(|error| MethodError::from_store(&error))?;
    let (found, changed) = committed.value;
    if !found || changed.is_empty() {
        return Ok(response);
    }
    let updated = response["updated"]
        .as_object()
        .cloned()
        .unwrap_or_else(Map::new);
    let mut updated = updated;
    for id in changed {
        let key = Id::from_number(SieveScript::ID_PREFIX, id).into_string();
        let active = Some(id) == target;
        updated.insert(key, json!({"isActive": active}));
    }
    response["updated"] = Value::Object(updated);
    response["newState"] = json!(State::new(committed.version));
    Ok(response)
}
