//! `Principal/changes` (RFC 9670 §2.2, RFC 8620 §5.2), from the directory's principal log.

use serde_json::{Value, json};

use super::{own_account, principal_id};
use crate::auth::directory::principals::{PrincipalChange, changes_since};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::take_max_changes;
use crate::jmap::types::State;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(changes(context, arguments))
}

async fn changes(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = own_account(&mut arguments, context)?;
    let Some(since_text) = arguments.take_string("sinceState")? else {
        return Err(MethodError::invalid_arguments("\"sinceState\" is required"));
    };
    let max_changes = take_max_changes(&mut arguments)?;
    arguments.finish()?;
    let cannot = || MethodError::new(MethodErrorType::CannotCalculateChanges);
    let since = State::parse(&since_text).ok_or_else(cannot)?.position();
    if since.within > 0 {
        return Err(cannot());
    }
    let since = since.version;
    let outcome = context
        .engine
        .store
        .read(move |tx| Box::pin(async move { changes_since(tx, since).await }))
        .await?;
    let (current, changed) = outcome.ok_or_else(cannot)?;
    // The log holds few changes between two looks; a client asking for fewer than there are
    // starts over from Principal/get (RFC 8620 §5.2 permits cannotCalculateChanges).
    if max_changes.is_some_and(|max| (changed.len() as u64) > max.get()) {
        return Err(cannot());
    }
    let list = |wanted: PrincipalChange| -> Value {
        changed
            .iter()
            .filter(|(_, kind)| **kind == wanted)
            .map(|(id, _)| Value::String(principal_id(*id)))
            .collect()
    };
    Ok(json!({
        "accountId": account,
        "oldState": State::new(since),
        "newState": State::new(current),
        "hasMoreChanges": false,
        "created": list(PrincipalChange::Created),
        "updated": list(PrincipalChange::Updated),
        "destroyed": list(PrincipalChange::Destroyed),
    }))
}
