//! `Mailbox/queryChanges` (RFC 8621 §2.4): the generic /queryChanges over the same filter and
//! sort as Mailbox/query, `sortAsTree` and `filterAsTree` included (the results it describes
//! are those of the query with the same arguments).

use super::MailboxType;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic::query_changes::query_changes;
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
        }
    })
}
