//! `Mailbox/changes` (RFC 8621 §2.2): the generic /changes plus `updatedProperties`, which is
//! the four counts when every Mailbox update since `sinceState` only moved counts, else null.
//!
//! How it knows: Email changes mark a Mailbox updated only when its counts move, and every
//! other update goes through Mailbox/set, which records its commit's version
//! (`mail::mailbox::record_properties_changed`). If the last such commit is outside the
//! window the answer covers, only counts changed in it.

use serde_json::{Value, json};

use super::{COUNT_PROPERTIES, MailboxObject};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::jmap::types::{AccountId, State};
use crate::mail::mailbox::properties_version;
use crate::store::BoxFuture;
use crate::store::commit::LogPosition;

/// Whether the commit at `version` falls in the window `(since, until]` of a /changes answer.
/// A window that starts inside a commit (an intermediate state) counts that commit as in it:
/// the answer may then say null where counts alone changed, never the reverse.
fn in_window(version: u64, since: LogPosition, until: LogPosition) -> bool {
    let after_since = version > since.version;
    let before_until =
        version <= until.version || (until.within > 0 && version == until.version + 1);
    after_since && before_until
}

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let arguments = super::ensure_defaults(context, arguments).await?;
        let members = arguments.into_inner();
        let since = members
            .get("sinceState")
            .and_then(Value::as_str)
            .and_then(State::parse);
        let mut response =
            generic::changes::changes::<MailboxObject>(context, Arguments::new(members)).await?;
        let until = response["newState"].as_str().and_then(State::parse);
        let account = response["accountId"]
            .as_str()
            .and_then(|text| AccountId::parse(text).ok());
        let has_updates = response["updated"]
            .as_array()
            .is_some_and(|updated| !updated.is_empty());
        let mut updated_properties = Value::Null;
        if let (Some(since), Some(until), Some(account), true) =
            (since, until, account, has_updates)
        {
            let account_id = account.number();
            // Read after the changes: a later Mailbox/set can only make this answer null.
            let version = context
                .engine
                .store
                .read(|tx| Box::pin(async move { properties_version(tx, account_id).await }))
                .await?;
            if !in_window(version, since.position(), until.position()) {
                updated_properties = json!(COUNT_PROPERTIES);
            }
        }
        response["updatedProperties"] = updated_properties;
        Ok(response)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_includes_partly_covered_commits() {
        let at = LogPosition::at;
        assert!(!in_window(3, at(3), at(5)));
        assert!(in_window(4, at(3), at(5)));
        assert!(in_window(5, at(3), at(5)));
        assert!(!in_window(6, at(3), at(5)));
        let inside_sixth = LogPosition {
            version: 5,
            within: 2,
        };
        assert!(in_window(6, at(3), inside_sixth));
        assert!(!in_window(0, at(0), at(5)));
    }
}
