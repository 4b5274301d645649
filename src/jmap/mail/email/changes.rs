//! Email/changes (RFC 8621 §4.3): the standard /changes over the Email change log, which
//! records every Email a write touched — including those whose threadId a Thread merge changed.

use super::fields::EMAIL_ID_PREFIX;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic::changes::changes_of;
use crate::store::BoxFuture;
use crate::store::commit::DataType;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(changes_of(
        context,
        arguments,
        DataType::Email,
        EMAIL_ID_PREFIX,
    ))
}
