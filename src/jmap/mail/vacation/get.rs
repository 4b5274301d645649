//! `VacationResponse/get` (RFC 8621 §8.1): the singleton, whether or not it was ever set.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::{PROPERTIES, SINGLETON_ID, load_json};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::types::State;
use crate::store::BoxFuture;
use crate::store::commit::{DataType, read_state};

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(get(context, arguments))
}

async fn get(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let ids = arguments.take_string_list("ids")?;
    let properties = arguments.take_string_list("properties")?;
    arguments.finish()?;
    // RFC 8620 §5.1: an unknown property is invalidArguments.
    if let Some(unknown) = properties
        .iter()
        .flatten()
        .find(|property| !PROPERTIES.contains(&property.as_str()))
    {
        return Err(MethodError::invalid_arguments(format!(
            "unknown property {unknown:?}"
        )));
    }
    let max_objects = context.engine.limits.max_objects_in_get;
    let (wants_singleton, not_found) = match ids {
        None => (true, Vec::new()),
        Some(ids) => {
            if ids.len() as u64 > max_objects {
                return Err(MethodError::with_description(
                    MethodErrorType::RequestTooLarge,
                    format!("more than maxObjectsInGet ({max_objects}) ids"),
                ));
            }
            let mut seen = HashSet::new();
            let mut wants_singleton = false;
            let mut not_found = Vec::new();
            for id in ids {
                if !seen.insert(id.clone()) {
                    continue;
                }
                if id == SINGLETON_ID {
                    wants_singleton = true;
                } else {
                    not_found.push(Value::String(id));
                }
            }
            (wants_singleton, not_found)
        }
    };

    let account_id = account.number();
    let (state, object) = context
        .engine
        .store
        .read(move |tx| {
            Box::pin(async move {
                let state = read_state(tx, account_id, DataType::VacationResponse).await?;
                Ok((state, load_json(tx, account_id).await?))
            })
        })
        .await?;
    let list = if wants_singleton {
        let mut shown = Map::new();
        shown.insert("id".to_owned(), Value::from(SINGLETON_ID));
        for property in PROPERTIES.iter().skip(1) {
            let wanted = properties
                .as_ref()
                .is_none_or(|wanted| wanted.iter().any(|name| name == property));
            if wanted {
                let value = object.get(*property).cloned().unwrap_or(Value::Null);
                shown.insert((*property).to_owned(), value);
            }
        }
        vec![Value::Object(shown)]
    } else {
        Vec::new()
    };
    Ok(json!({
        "accountId": account,
        "state": State::new(state),
        "list": list,
        "notFound": not_found,
    }))
}
