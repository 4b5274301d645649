//! `Foo/get` (RFC 8620 §5.1).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::ObjectType;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::types::{Id, State};
use crate::mail::sharing::{SharedView, object_visible, view_in};
use crate::store::commit::read_state;
use crate::store::{StoreResult, Transaction};

/// What to fetch: explicit ids (with the client's spelling kept for `notFound`) or all.
enum Wanted {
    All,
    Ids(Vec<(String, Option<u64>)>),
}

pub async fn get<T: ObjectType>(
    context: &mut CallContext<'_>,
    mut arguments: Arguments,
) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let max_objects = context.engine.limits.max_objects_in_get;
    let requested_ids = arguments.take_string_list("ids")?;
    let properties = selected_properties::<T>(arguments.take_string_list("properties")?)?;
    arguments.finish()?;

    let wanted = match requested_ids {
        None => Wanted::All,
        Some(ids) => {
            // RFC 8620 §5.1: more ids than maxObjectsInGet is requestTooLarge.
            if ids.len() as u64 > max_objects {
                return Err(too_large(max_objects));
            }
            let mut seen = HashSet::with_capacity(ids.len());
            let mut resolved = Vec::with_capacity(ids.len());
            for text in ids {
                // RFC 8620 §5.1: an id given twice is answered once.
                if !seen.insert(text.clone()) {
                    continue;
                }
                // An unknown creation id or a malformed id cannot name an object: notFound.
                let store_id = context
                    .resolve_id(&text)
                    .ok()
                    .flatten()
                    .and_then(|id| id.to_number(T::ID_PREFIX));
                resolved.push((text, store_id));
            }
            Wanted::Ids(resolved)
        }
    };

    let account_id = account.number();
    let viewer = context.viewer.clone();
    let (state, found, not_found) = context
        .engine
        .store
        .read(|tx| {
            Box::pin(async move {
                let state = read_state(tx, account_id, T::DATA_TYPE).await?;
                // RFC 9670: a grantee sees what the grants show, nothing else.
                let view = view_in(tx, account_id, &viewer).await?;
                let mut found = Vec::new();
                let mut not_found = Vec::new();
                let wanted = match wanted {
                    Wanted::Ids(ids) => ids,
                    Wanted::All => {
                        let mut ids = T::list_ids(tx, account_id).await?;
                        if let Some(view) = &view {
                            ids = visible_ids::<T>(tx, account_id, view, ids).await?;
                        }
                        if ids.len() as u64 > max_objects {
                            return Ok(Err(too_large(max_objects)));
                        }
                        ids.into_iter()
                            .map(|id| (String::new(), Some(id)))
                            .collect()
                    }
                };
                for (text, store_id) in wanted {
                    let visible = match (store_id, &view) {
                        (Some(id), Some(view)) => {
                            object_visible(tx, account_id, view, T::DATA_TYPE, id).await?
                        }
                        (Some(_), None) => true,
                        (None, _) => false,
                    };
                    let object = match store_id {
                        Some(id) if visible => {
                            T::load(tx, account_id, id)
                                .await?
                                .map(|object| match &view {
                                    Some(view) => (id, T::shared_object(view, id, object)),
                                    None => (id, object),
                                })
                        }
                        _ => None,
                    };
                    match object {
                        Some(object) => found.push(object),
                        None => not_found.push(Value::String(text)),
                    }
                }
                Ok(Ok((state, found, not_found)))
            })
        })
        .await??;

    let list: Vec<Value> = found
        .into_iter()
        .map(|(id, object)| Value::Object(project::<T>(id, object, &properties)))
        .collect();
    Ok(json!({
        "accountId": account,
        "state": State::new(state),
        "list": list,
        "notFound": not_found,
    }))
}

/// The ids a grantee sees, in their order.
pub async fn visible_ids<T: ObjectType>(
    tx: &mut dyn Transaction,
    account_id: u32,
    view: &SharedView,
    ids: Vec<u64>,
) -> StoreResult<Vec<u64>> {
    let mut visible = Vec::with_capacity(ids.len());
    for id in ids {
        if object_visible(tx, account_id, view, T::DATA_TYPE, id).await? {
            visible.push(id);
        }
    }
    Ok(visible)
}

fn too_large(max_objects: u64) -> MethodError {
    MethodError::with_description(
        MethodErrorType::RequestTooLarge,
        format!("more than maxObjectsInGet ({max_objects}) objects"),
    )
}

/// RFC 8620 §5.1: `properties` null → the type's defaults; an unknown name is
/// invalidArguments; `id` is always returned.
fn selected_properties<T: ObjectType>(
    requested: Option<Vec<String>>,
) -> Result<Vec<String>, MethodError> {
    let Some(requested) = requested else {
        return Ok(T::default_properties()
            .iter()
            .map(|property| (*property).to_owned())
            .collect());
    };
    if let Some(unknown) = requested
        .iter()
        .find(|property| !T::PROPERTIES.contains(&property.as_str()))
    {
        return Err(MethodError::invalid_arguments(format!(
            "unknown property {unknown:?}"
        )));
    }
    Ok(requested)
}

fn project<T: ObjectType>(
    id: u64,
    mut object: Map<String, Value>,
    properties: &[String],
) -> Map<String, Value> {
    let mut projected = Map::with_capacity(properties.len() + 1);
    projected.insert(
        "id".to_owned(),
        Value::String(Id::from_number(T::ID_PREFIX, id).into_string()),
    );
    for property in properties {
        if property == "id" {
            continue;
        }
        let value = object.remove(property).unwrap_or(Value::Null);
        projected.insert(property.clone(), value);
    }
    projected
}
