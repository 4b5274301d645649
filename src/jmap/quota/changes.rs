//! `Quota/changes` (RFC 9425 §4.3): the standard /changes over the account's change log, where
//! every Email import and destroy records an update of the Quota objects (their `used`).

use super::Quota;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(generic::changes::changes::<Quota>(context, arguments))
}
