//! `Mailbox/queryChanges` (RFC 8621 §2.4): the generic /queryChanges over the same filter and
//! sort as Mailbox/query, `sortAsTree` and `filterAsTree` included (the results it describes
//! are those of the query with the same arguments).
//!
//! Every Email delivery updates a Mailbox's counts, and the generic answer reports each updated
//! Mailbox as removed and re-added. No filter or sort of Mailbox/query looks at the counts, so
//! when only counts changed since `sinceQueryState` (the test of Mailbox/changes'
//! `updatedProperties`), an updated Mailbox still in the results has not moved: it is left out
//! of both lists, and clients do not redraw their folder list on every new message.

use std::collections::HashSet;

use serde_json::Value;

use super::MailboxType;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic::query_changes::query_changes;
use crate::jmap::types::{AccountId, State};
use crate::mail::mailbox::properties_version;
use crate::store::BoxFuture;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let mut arguments = super::ensure_defaults(context, arguments).await?;
        let sort_as_tree = arguments.take_bool("sortAsTree", false)?;
        let filter_as_tree = arguments.take_bool("filterAsTree", false)?;
        let members = arguments.into_inner();
        let since = members
            .get("sinceQueryState")
            .and_then(Value::as_str)
            .and_then(State::parse);
        let arguments = Arguments::new(members);
        let mut response = match (sort_as_tree, filter_as_tree) {
            (false, false) => {
                query_changes::<MailboxType<false, false, false>>(context, arguments).await
            }
            (true, false) => {
                query_changes::<MailboxType<false, true, false>>(context, arguments).await
            }
            (false, true) => {
                query_changes::<MailboxType<false, false, true>>(context, arguments).await
            }
            (true, true) => {
                query_changes::<MailboxType<false, true, true>>(context, arguments).await
            }
        }?;
        let account = response["accountId"]
            .as_str()
            .and_then(|text| AccountId::parse(text).ok());
        let (Some(since), Some(account)) = (since, account) else {
            return Ok(response);
        };
        let account_id = account.number();
        // Read after the answer: a later Mailbox/set can only keep the full answer.
        let version = context
            .engine
            .store
            .read(|tx| Box::pin(async move { properties_version(tx, account_id).await }))
            .await?;
        if version <= since.version() {
            drop_unmoved(&mut response);
        }
        Ok(response)
    })
}

/// Removes the ids that are both `removed` and `added` (updated, still in the results).
fn drop_unmoved(response: &mut Value) {
    let removed: HashSet<String> = response["removed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    let added: HashSet<String> = response["added"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str().map(str::to_owned))
        .collect();
    if let Some(list) = response["removed"].as_array_mut() {
        list.retain(|id| !id.as_str().is_some_and(|id| added.contains(id)));
    }
    if let Some(list) = response["added"].as_array_mut() {
        list.retain(|item| !item["id"].as_str().is_some_and(|id| removed.contains(id)));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn unmoved_mailboxes_leave_both_lists() {
        let mut response = json!({
            "removed": ["m1", "m2"],
            "added": [{"id": "m1", "index": 0}, {"id": "m3", "index": 2}],
        });
        super::drop_unmoved(&mut response);
        assert_eq!(response["removed"], json!(["m2"]));
        assert_eq!(response["added"], json!([{"id": "m3", "index": 2}]));
    }
}
