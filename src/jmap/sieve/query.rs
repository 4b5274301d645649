//! `SieveScript/query` (RFC 9661 §2.4) on the generic machinery (filter and sort in `super`).

use super::SieveScript;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(generic::query::query::<SieveScript>(context, arguments))
}
