//! `ShareNotification/queryChanges` (RFC 9670 §3, RFC 8620 §5): the generic method, after the
//! queued notices of the caller were delivered.

use super::{ShareNotification, delivered_first};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let arguments = delivered_first(context, arguments).await?;
        generic::query_changes::query_changes::<ShareNotification>(context, arguments).await
    })
}
