//! `Mailbox/query` (RFC 8621 §2.3): the generic /query with the filter conditions parentId,
//! name, role, hasAnyRole and isSubscribed, the sorts sortOrder and name, and the extra
//! arguments `sortAsTree` and `filterAsTree` (`search.rs`, `mail::mailbox::tree`).

use super::MailboxType;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic::query::query;
use crate::store::BoxFuture;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let mut arguments = super::ensure_defaults(context, arguments).await?;
        let sort_as_tree = arguments.take_bool("sortAsTree", false)?;
        let filter_as_tree = arguments.take_bool("filterAsTree", false)?;
        match (sort_as_tree, filter_as_tree) {
            (false, false) => query::<MailboxType<false, false, false>>(context, arguments).await,
            (true, false) => query::<MailboxType<false, true, false>>(context, arguments).await,
            (false, true) => query::<MailboxType<false, false, true>>(context, arguments).await,
            (true, true) => query::<MailboxType<false, true, true>>(context, arguments).await,
        }
    })
}
