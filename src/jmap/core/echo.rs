//! `Core/echo` (RFC 8620 §4): returns its arguments unchanged. The hot path of latency
//! benchmarks, so it moves the arguments instead of copying them.

use serde_json::Value;

use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::store::BoxFuture;

pub fn handle<'a>(
    _context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(std::future::ready(Ok(Value::Object(
        arguments.into_inner(),
    ))))
}
