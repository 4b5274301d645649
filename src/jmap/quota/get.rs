//! `Quota/get` (RFC 9425 §4.2) on the generic machinery; without the mail capability in
//! `using` no Quota is visible (RFC 9425 §4.1): every id asked for is `notFound`.

use serde_json::Value;

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
        let mut response = generic::get::get::<Quota>(context, arguments).await?;
        if !visible(context)
            && let Value::Object(members) = &mut response
        {
            let hidden: Vec<Value> = match members.get_mut("list") {
                Some(Value::Array(list)) => list
                    .drain(..)
                    .filter_map(|mut object| object.get_mut("id").map(Value::take))
                    .collect(),
                _ => Vec::new(),
            };
            if let Some(Value::Array(not_found)) = members.get_mut("notFound") {
                not_found.extend(hidden);
            }
        }
        Ok(response)
    })
}
