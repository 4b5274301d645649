//! PushSubscription/get (RFC 8620 §7.2.1): the principal's own subscriptions. No accountId
//! and no state; `url` and `keys` are never returned (they are credentials of the device).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::{ID_PREFIX, list};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::types::Id;
use crate::store::BoxFuture;

/// Properties a client may read.
const READABLE: &[&str] = &[
    "id",
    "deviceClientId",
    "verificationCode",
    "expires",
    "types",
];

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(get(context, arguments))
}

async fn get(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    // RFC 8620 §7.2.1: no accountId; tolerated when it names the principal's own account.
    if arguments.take("accountId").is_some() {
        tracing::debug!("PushSubscription/get with an accountId; ignored");
    }
    let ids = arguments.take_string_list("ids")?;
    let properties = arguments.take_string_list("properties")?;
    arguments.finish()?;
    let properties: Vec<String> = match properties {
        None => READABLE.iter().map(|name| (*name).to_owned()).collect(),
        Some(requested) => {
            // RFC 8620 §7.2.1: url and keys are write-only.
            if let Some(bad) = requested
                .iter()
                .find(|name| !READABLE.contains(&name.as_str()))
            {
                return Err(MethodError::with_description(
                    MethodErrorType::InvalidArguments,
                    format!("property {bad:?} cannot be read"),
                ));
            }
            requested
        }
    };
    let max_objects = context.engine.limits.max_objects_in_get;
    if ids
        .as_ref()
        .is_some_and(|ids| ids.len() as u64 > max_objects)
    {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInGet ({max_objects}) ids"),
        ));
    }
    let account_id = context.principal.account_id;
    let stored = context
        .engine
        .store
        .read(|tx| Box::pin(async move { list(tx, account_id).await }))
        .await
        .map_err(|error| MethodError::from_store(&error))?;
    let mut list_out = Vec::new();
    let mut not_found = Vec::new();
    let render = |subscription: &super::StoredSubscription| {
        let mut object = Map::new();
        for property in &properties {
            let value = match property.as_str() {
                "id" => json!(Id::from_number(ID_PREFIX, subscription.id).into_string()),
                // Only the code the client confirmed, never the one the server expects.
                "verificationCode" => subscription
                    .document
                    .get("verificationCode")
                    .cloned()
                    .unwrap_or(Value::Null),
                other => subscription
                    .document
                    .get(other)
                    .cloned()
                    .unwrap_or(Value::Null),
            };
            object.insert(property.clone(), value);
        }
        Value::Object(object)
    };
    match ids {
        None => list_out.extend(stored.iter().map(render)),
        Some(ids) => {
            let mut seen = HashSet::new();
            for text in ids {
                if !seen.insert(text.clone()) {
                    continue;
                }
                let number = context
                    .resolve_id(&text)
                    .ok()
                    .flatten()
                    .and_then(|id| id.to_number(ID_PREFIX));
                match stored
                    .iter()
                    .find(|subscription| Some(subscription.id) == number)
                {
                    Some(subscription) => list_out.push(render(subscription)),
                    None => not_found.push(Value::String(text)),
                }
            }
        }
    }
    Ok(json!({"list": list_out, "notFound": not_found}))
}
