//! `Quota/query` (RFC 9425 §4.4) on the generic machinery (filter and sort in `super`);
//! without the mail capability in `using` it finds nothing (RFC 9425 §4.1).

use serde_json::{Value, json};

use super::{Quota, visible};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(async move {
        let mut response = generic::query::query::<Quota>(context, arguments).await?;
        if !visible(context)
            && let Value::Object(members) = &mut response
        {
            members.insert("ids".into(), json!([]));
            members.insert("position".into(), json!(0));
            if members.contains_key("total") {
                members.insert("total".into(), json!(0));
            }
        }
        Ok(response)
    })
}
