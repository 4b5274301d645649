//! `ShareNotification/set` (RFC 9670 §3.4): only destroy (dismissing a notification); every
//! create and update is `forbidden`, whatever it holds (RFC 9670 §3.4 MUST). The destroys run
//! through the generic /set after the caller's queued notices were delivered.

use serde_json::{Map, Value};

use super::{ShareNotification, delivered_first};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let mut arguments = delivered_first(context, arguments).await?;
        let creates = arguments.take_object("create")?.unwrap_or_default();
        let updates = arguments.take_object("update")?.unwrap_or_default();
        let mut response = generic::set::set::<ShareNotification>(context, arguments).await?;
        let refusal = |what: &str| {
            SetError::with_description(
                SetErrorType::Forbidden,
                format!("ShareNotifications are {what} by the server only"),
            )
            .to_json()
        };
        let refused = |ids: Map<String, Value>, what: &str| -> Value {
            if ids.is_empty() {
                return Value::Null;
            }
            Value::Object(ids.into_iter().map(|(id, _)| (id, refusal(what))).collect())
        };
        response["notCreated"] = refused(creates, "created");
        response["notUpdated"] = refused(updates, "changed");
        Ok(response)
    })
}
