//! `Identity/set` (RFC 8621 §6.3) on the generic machinery, after making sure the account
//! has its default Identity.

use super::{Identity, ensure_for_call};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let arguments = ensure_for_call(context, arguments).await?;
        generic::set::set::<Identity>(context, arguments).await
    })
}
