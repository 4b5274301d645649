//! `Quota/queryChanges` (RFC 9425 §4.5): the standard /queryChanges.

use super::Quota;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(generic::query_changes::query_changes::<Quota>(
        context, arguments,
    ))
}
