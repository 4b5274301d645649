//! `Principal/get` (RFC 9670 §2.1, RFC 8620 §5.1).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{PROPERTIES, own_account, parse_principal_id, to_json};
use crate::auth::directory::principals::{principal, principals_version};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::types::State;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(get(context, arguments))
}

async fn get(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = own_account(&mut arguments, context)?;
    let ids = arguments.take_string_list("ids")?;
    let properties = arguments.take_string_list("properties")?;
    arguments.finish()?;
    if let Some(unknown) = properties
        .iter()
        .flatten()
        .find(|name| !PROPERTIES.contains(&name.as_str()))
    {
        return Err(MethodError::invalid_arguments(format!(
            "unknown Principal property {unknown:?}"
        )));
    }
    let max_objects = context.engine.limits.max_objects_in_get;
    if ids
        .as_ref()
        .is_some_and(|ids| ids.len() as u64 > max_objects)
    {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInGet ({max_objects}) objects"),
        ));
    }
    let (state, found, not_found) = context
        .engine
        .store
        .read(move |tx| {
            Box::pin(async move {
                let state = principals_version(tx).await?;
                let wanted: Vec<(String, Option<u32>)> = match ids {
                    Some(ids) => {
                        let mut seen = HashSet::new();
                        ids.into_iter()
                            .filter(|id| seen.insert(id.clone()))
                            .map(|text| {
                                let id = parse_principal_id(&text);
                                (text, id)
                            })
                            .collect()
                    }
                    None => crate::auth::directory::principals::all_principals(tx)
                        .await?
                        .into_iter()
                        .map(|principal| (String::new(), Some(principal.id)))
                        .collect(),
                };
                if wanted.len() as u64 > max_objects {
                    return Ok(Err(MethodError::with_description(
                        MethodErrorType::RequestTooLarge,
                        format!("more than maxObjectsInGet ({max_objects}) objects"),
                    )));
                }
                let mut found = Vec::new();
                let mut not_found = Vec::new();
                for (text, id) in wanted {
                    match id {
                        Some(id) => match principal(tx, id).await? {
                            Some(info) => found.push(info),
                            None => not_found.push(Value::String(text)),
                        },
                        None => not_found.push(Value::String(text)),
                    }
                }
                Ok(Ok((state, found, not_found)))
            })
        })
        .await??;
    let list: Vec<Value> = found
        .iter()
        .map(|info| {
            let mut object = to_json(info, context);
            if let Some(properties) = &properties {
                object.retain(|name, _| name == "id" || properties.contains(name));
            }
            Value::Object(object)
        })
        .collect();
    Ok(json!({
        "accountId": account,
        "state": State::new(state),
        "list": list,
        "notFound": not_found,
    }))
}
