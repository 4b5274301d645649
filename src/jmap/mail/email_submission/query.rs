//! EmailSubmission/query (RFC 8621 §7.3) on the generic machinery; the filter conditions
//! and sorts are in `search.rs`.

use super::EmailSubmission;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(generic::query::query::<EmailSubmission>(context, arguments))
}
