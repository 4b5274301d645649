//! `SieveScript/get` (RFC 9661 §2.1) on the generic machinery.

use super::SieveScript;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(generic::get::get::<SieveScript>(context, arguments))
}
