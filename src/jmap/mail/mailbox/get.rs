//! `Mailbox/get` (RFC 8621 §2.1): the generic /get, after making sure the account has its
//! default Mailboxes. Counts come from `mail::counters` (four reads per Mailbox, whatever its
//! size).

use super::MailboxObject;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let arguments = super::ensure_defaults(context, arguments).await?;
        generic::get::get::<MailboxObject>(context, arguments).await
    })
}
