//! `Mailbox/set` (RFC 8621 §2.5): the generic /set with the Mailbox rules (`properties.rs`,
//! `MailboxType::destroy`) and the extra argument `onDestroyRemoveEmails`.
//!
//! Destroys are taken deepest first, so a request that destroys a Mailbox together with its
//! children succeeds instead of failing on `mailboxHasChild` because of the order the client
//! listed them in.

use serde_json::Value;

use super::{ID_PREFIX, MailboxType};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic::set::set;
use crate::mail::mailbox::{load_all, tree};
use crate::store::BoxFuture;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let mut arguments = super::ensure_defaults(context, arguments).await?;
        let remove_emails = arguments.take_bool("onDestroyRemoveEmails", false)?;
        let arguments = deepest_first(context, arguments).await?;
        let response = if remove_emails {
            set::<MailboxType<true, false, false>>(context, arguments).await
        } else {
            set::<MailboxType<false, false, false>>(context, arguments).await
        }?;
        // A grant that changed queued ShareNotifications: hand them to their users now (what
        // is left queued is handed over when they next ask).
        crate::jmap::share_notification::deliver_pending(&context.engine.store).await;
        Ok(response)
    })
}

/// Reorders `destroy` so that descendants come before their ancestors. Only the order of
/// work changes; every id is still answered in `destroyed` or `notDestroyed`.
async fn deepest_first(
    context: &CallContext<'_>,
    arguments: Arguments,
) -> Result<Arguments, crate::jmap::error::MethodError> {
    let mut members = arguments.into_inner();
    let account = context.own_account_argument(&members);
    let (Some(account), Some(Value::Array(destroy))) = (account, members.get_mut("destroy")) else {
        return Ok(Arguments::new(members));
    };
    if destroy.len() < 2 {
        return Ok(Arguments::new(members));
    }
    let account_id = account.number();
    let mailboxes = context
        .engine
        .store
        .read(|tx| Box::pin(async move { load_all(tx, account_id).await }))
        .await?;
    let depth = |value: &Value| -> usize {
        value
            .as_str()
            .and_then(|text| context.resolve_id(text).ok().flatten())
            .and_then(|id| id.to_number(ID_PREFIX))
            .filter(|id| mailboxes.contains_key(id))
            .map_or(0, |id| tree::ancestors(&mailboxes, id).len())
    };
    // Stable: Mailboxes at the same depth keep the client's order.
    destroy.sort_by_key(|value| std::cmp::Reverse(depth(value)));
    Ok(Arguments::new(members))
}
