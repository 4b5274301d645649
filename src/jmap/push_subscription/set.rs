//! PushSubscription/set (RFC 8620 §7.2.2): create, update (verificationCode, expires, types
//! only) and destroy the principal's subscriptions, in one commit. No accountId, ifInState or
//! states. A new subscription is pushed a PushVerification by the deliverer at once; nothing
//! else is pushed to it until the client sends that code back.

use base64::Engine as _;
use rand::RngCore as _;
use serde_json::{Map, Value, json};

use super::{ID_PREFIX, MAX_SUBSCRIPTIONS_PER_ACCOUNT, list, sync_push_account};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::generic::storage;
use crate::jmap::types::{Id, UtcDate};
use crate::push::PushFilter;
use crate::push::config::WebPushSettings;
use crate::push::webpush::ClientKeys;
use crate::store::commit::{DataType, allocate_id, commit_account};
use crate::store::{BoxFuture, StoreResult, Transaction};

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(set(context, arguments))
}

/// A create, validated before the commit (so the retried closure only writes).
#[derive(Clone)]
struct NewSubscription {
    creation_id: String,
    document: Map<String, Value>,
    /// Whether the server changed `expires` (reported in `created`).
    clamped_expires: Option<Value>,
}

fn invalid(properties: &[&str], description: impl Into<String>) -> SetError {
    SetError::invalid_properties(properties.iter().copied(), description)
}

/// RFC 8620 §7.2: `expires` in the past is refused; later than the server's maximum is
/// clamped (and the new value reported).
fn check_expires(value: &Value, settings: &WebPushSettings) -> Result<(Value, bool), SetError> {
    match value {
        Value::Null => {
            let max = UtcDate::from_unix(
                UtcDate::now().unix_seconds() + settings.max_expiry_seconds,
                0,
            );
            Ok((
                max.map_or(Value::Null, |date| json!(date.to_string())),
                true,
            ))
        }
        Value::String(text) => {
            let date = UtcDate::parse(text)
                .map_err(|_| invalid(&["expires"], "expires must be a UTCDate"))?;
            let now = UtcDate::now().unix_seconds();
            if date.unix_seconds() <= now {
                return Err(invalid(&["expires"], "expires is in the past"));
            }
            let max = now + settings.max_expiry_seconds;
            if date.unix_seconds() > max {
                let clamped =
                    UtcDate::from_unix(max, 0).map_or(Value::Null, |d| json!(d.to_string()));
                return Ok((clamped, true));
            }
            Ok((Value::String(text.clone()), false))
        }
        _ => Err(invalid(&["expires"], "expires must be a UTCDate or null")),
    }
}

fn check_types(value: &Value) -> Result<Value, SetError> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::Array(items) => {
            let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            let names = names.ok_or_else(|| invalid(&["types"], "types must be String[]"))?;
            PushFilter::from_names(names.iter().copied())
                .map_err(|error| invalid(&["types"], error.to_string()))?;
            Ok(value.clone())
        }
        _ => Err(invalid(&["types"], "types must be String[] or null")),
    }
}

fn check_create(
    creation_id: String,
    object: Map<String, Value>,
    settings: &WebPushSettings,
) -> Result<NewSubscription, SetError> {
    let mut document = Map::new();
    let mut bad: Vec<&str> = Vec::new();
    for key in object.keys() {
        match key.as_str() {
            "deviceClientId" | "url" | "keys" | "expires" | "types" => {}
            // Server-set (RFC 8620 §7.2: the code arrives by push, not on create).
            "id" | "verificationCode" => bad.push(if key == "id" {
                "id"
            } else {
                "verificationCode"
            }),
            _ => return Err(invalid(&[], format!("unknown property {key:?}"))),
        }
    }
    if !bad.is_empty() {
        return Err(invalid(
            &bad,
            "server-set properties cannot be set on create",
        ));
    }
    match object.get("deviceClientId") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 255 => {
            document.insert("deviceClientId".to_owned(), json!(id));
        }
        _ => {
            return Err(invalid(
                &["deviceClientId"],
                "deviceClientId must be a non-empty String",
            ));
        }
    }
    let url = match object.get("url") {
        Some(Value::String(url)) => url,
        _ => return Err(invalid(&["url"], "url must be a String")),
    };
    // RFC 8620 §7.2: the URL must be https (plain http only where configured, for tests).
    let scheme_ok = url.starts_with("https://")
        || (settings.allow_insecure_push_urls && url.starts_with("http://"));
    let parsed = url.parse::<http::Uri>();
    if !scheme_ok || url.len() > 2048 || parsed.map_or(true, |uri| uri.host().is_none()) {
        return Err(invalid(&["url"], "url must be an absolute https:// URL"));
    }
    document.insert("url".to_owned(), json!(url));
    let keys = match object.get("keys") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(keys)) => {
            let p256dh = keys.get("p256dh").and_then(Value::as_str);
            let auth = keys.get("auth").and_then(Value::as_str);
            match (p256dh, auth) {
                (Some(p256dh), Some(auth)) if keys.len() == 2 => {
                    ClientKeys::parse(p256dh, auth)
                        .map_err(|error| invalid(&["keys"], error.to_string()))?;
                    json!({"p256dh": p256dh, "auth": auth})
                }
                _ => return Err(invalid(&["keys"], "keys must be {p256dh, auth}")),
            }
        }
        Some(_) => return Err(invalid(&["keys"], "keys must be an object or null")),
    };
    document.insert("keys".to_owned(), keys);
    let (expires, clamped) =
        check_expires(object.get("expires").unwrap_or(&Value::Null), settings)?;
    document.insert("expires".to_owned(), expires.clone());
    let types = check_types(object.get("types").unwrap_or(&Value::Null))?;
    document.insert("types".to_owned(), types);
    let mut code = [0u8; 18];
    rand::rng().fill_bytes(&mut code);
    document.insert(
        "expectedCode".to_owned(),
        json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(code)),
    );
    document.insert("verificationCode".to_owned(), Value::Null);
    Ok(NewSubscription {
        creation_id,
        document,
        clamped_expires: clamped.then_some(expires),
    })
}

/// Applies an update patch to `current`; returns the server-changed properties.
fn apply_update(
    current: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    settings: &WebPushSettings,
) -> Result<Option<Map<String, Value>>, SetError> {
    let mut server_set = Map::new();
    for (property, value) in patch {
        match property.as_str() {
            "verificationCode" => {
                // RFC 8620 §7.2.2: a wrong code is invalidProperties.
                let expected = current.get("expectedCode").and_then(Value::as_str);
                if value.as_str().is_none() || value.as_str() != expected {
                    return Err(invalid(&["verificationCode"], "wrong verification code"));
                }
                current.insert("verificationCode".to_owned(), value.clone());
            }
            "expires" => {
                let (expires, clamped) = check_expires(value, settings)?;
                if clamped {
                    server_set.insert("expires".to_owned(), expires.clone());
                }
                current.insert("expires".to_owned(), expires);
            }
            "types" => {
                current.insert("types".to_owned(), check_types(value)?);
            }
            "deviceClientId" | "url" | "keys" | "id" => {
                if current.get(property) != Some(value) {
                    return Err(invalid(
                        &[property.as_str()],
                        format!("{property} is immutable"),
                    ));
                }
            }
            other => return Err(invalid(&[], format!("unknown property {other:?}"))),
        }
    }
    Ok((!server_set.is_empty()).then_some(server_set))
}

#[derive(Default)]
struct Outcome {
    created: Map<String, Value>,
    not_created: Map<String, Value>,
    updated: Map<String, Value>,
    not_updated: Map<String, Value>,
    destroyed: Vec<Value>,
    not_destroyed: Map<String, Value>,
}

async fn set(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    if arguments.take("accountId").is_some() {
        tracing::debug!("PushSubscription/set with an accountId; ignored");
    }
    let create = arguments.take_object("create")?.unwrap_or_default();
    let update = arguments.take_object("update")?.unwrap_or_default();
    let destroy = arguments.take_string_list("destroy")?.unwrap_or_default();
    arguments.finish()?;
    let max_objects = context.engine.limits.max_objects_in_set;
    if (create.len() + update.len() + destroy.len()) as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInSet ({max_objects}) objects"),
        ));
    }
    let settings = context.engine.urls.web_push.clone();
    let mut outcome = Outcome::default();
    let mut creates = Vec::new();
    for (creation_id, object) in create {
        let checked = match object {
            Value::Object(object) => check_create(creation_id.clone(), object, &settings),
            _ => Err(invalid(&[], "a create must be an object")),
        };
        match checked {
            Ok(new) => creates.push(new),
            Err(error) => {
                outcome.not_created.insert(creation_id, error.to_json());
            }
        }
    }
    let mut updates = Vec::new();
    for (text, patch) in update {
        let number = context
            .resolve_id(&text)
            .ok()
            .flatten()
            .and_then(|id| id.to_number(ID_PREFIX));
        match (number, patch) {
            (Some(id), Value::Object(patch)) => updates.push((text, id, patch)),
            (None, _) => {
                outcome
                    .not_updated
                    .insert(text, SetError::not_found().to_json());
            }
            (Some(_), _) => {
                outcome.not_updated.insert(
                    text,
                    SetError::invalid_patch("a patch must be an object").to_json(),
                );
            }
        }
    }
    let mut destroys = Vec::new();
    for text in destroy {
        match context
            .resolve_id(&text)
            .ok()
            .flatten()
            .and_then(|id| id.to_number(ID_PREFIX))
        {
            Some(id) => destroys.push((text, id)),
            None => {
                outcome
                    .not_destroyed
                    .insert(text, SetError::not_found().to_json());
            }
        }
    }

    let account_id = context.principal.account_id;
    let committed = commit_account(&context.engine.store, account_id, |tx, changes| {
        let creates = creates.clone();
        let updates = updates.clone();
        let destroys = destroys.clone();
        let settings = settings.clone();
        Box::pin(async move {
            let mut done = Outcome::default();
            let mut count = list(tx, account_id).await?.len();
            for new in creates {
                if count >= MAX_SUBSCRIPTIONS_PER_ACCOUNT {
                    let error = SetError::with_description(
                        SetErrorType::Forbidden,
                        format!("at most {MAX_SUBSCRIPTIONS_PER_ACCOUNT} push subscriptions"),
                    );
                    done.not_created.insert(new.creation_id, error.to_json());
                    continue;
                }
                let id = allocate_id(tx, account_id, DataType::PushSubscription).await?;
                storage::save(
                    tx,
                    account_id,
                    DataType::PushSubscription,
                    id,
                    &new.document,
                )?;
                changes.created(DataType::PushSubscription, id);
                count += 1;
                let mut created = Map::new();
                created.insert(
                    "id".to_owned(),
                    json!(Id::from_number(ID_PREFIX, id).into_string()),
                );
                if let Some(expires) = new.clamped_expires {
                    created.insert("expires".to_owned(), expires);
                }
                done.created.insert(new.creation_id, Value::Object(created));
            }
            for (text, id, patch) in updates {
                match update_one(tx, account_id, id, &patch, &settings).await? {
                    Ok(server_set) => {
                        changes.updated(DataType::PushSubscription, id);
                        done.updated
                            .insert(text, server_set.map_or(Value::Null, Value::Object));
                    }
                    Err(error) => {
                        done.not_updated.insert(text, error.to_json());
                    }
                }
            }
            for (text, id) in destroys {
                if storage::load(tx, account_id, DataType::PushSubscription, id)
                    .await?
                    .is_none()
                {
                    done.not_destroyed
                        .insert(text, SetError::not_found().to_json());
                    continue;
                }
                storage::remove(tx, account_id, DataType::PushSubscription, id)?;
                changes.destroyed(DataType::PushSubscription, id);
                done.destroyed.push(Value::String(text));
            }
            sync_push_account(tx, account_id).await?;
            Ok(done)
        })
    })
    .await
    .map_err(|error| MethodError::from_store(&error))?;
    let done = committed.value;
    for (creation_id, created) in &done.created {
        if let Some(id) = created
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| Id::parse(id).ok())
            && let Ok(creation_id) = Id::parse(creation_id)
        {
            context.record_created(creation_id, id);
        }
    }
    outcome.created.extend(done.created);
    outcome.not_created.extend(done.not_created);
    outcome.updated.extend(done.updated);
    outcome.not_updated.extend(done.not_updated);
    outcome.destroyed.extend(done.destroyed);
    outcome.not_destroyed.extend(done.not_destroyed);
    let null_if_empty = |map: Map<String, Value>| {
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        }
    };
    Ok(json!({
        "created": null_if_empty(outcome.created),
        "updated": null_if_empty(outcome.updated),
        "destroyed": if outcome.destroyed.is_empty() { Value::Null } else { Value::Array(outcome.destroyed) },
        "notCreated": null_if_empty(outcome.not_created),
        "notUpdated": null_if_empty(outcome.not_updated),
        "notDestroyed": null_if_empty(outcome.not_destroyed),
    }))
}

async fn update_one(
    tx: &mut dyn Transaction,
    account_id: u32,
    id: u64,
    patch: &Map<String, Value>,
    settings: &WebPushSettings,
) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
    let Some(mut current) = storage::load(tx, account_id, DataType::PushSubscription, id).await?
    else {
        return Ok(Err(SetError::not_found()));
    };
    let server_set = match apply_update(&mut current, patch, settings) {
        Ok(server_set) => server_set,
        Err(error) => return Ok(Err(error)),
    };
    storage::save(tx, account_id, DataType::PushSubscription, id, &current)?;
    Ok(Ok(server_set))
}
