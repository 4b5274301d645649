//! Thread/changes (RFC 8621 §3.2): the standard /changes over the Thread change log (merges
//! report the absorbed Threads as destroyed and the survivor as updated).

use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic::changes::changes_of;
use crate::jmap::mail::email::fields::THREAD_ID_PREFIX;
use crate::store::BoxFuture;
use crate::store::commit::DataType;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(changes_of(
        context,
        arguments,
        DataType::Thread,
        THREAD_ID_PREFIX,
    ))
}
