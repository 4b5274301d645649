//! EmailSubmission/queryChanges (RFC 8621 §7.4) on the generic machinery.

use super::EmailSubmission;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(generic::query_changes::query_changes::<EmailSubmission>(
        context, arguments,
    ))
}
