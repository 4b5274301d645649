//! Email/get (RFC 8621 §4.2). The record answers id, blobId, threadId, mailboxIds, keywords,
//! size and receivedAt; the parsed metadata stored at import answers the list properties
//! (headers, addresses, subject, preview, body structure) without re-parsing the message; only
//! bodyValues and header forms not kept in the metadata read the raw message.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::fields::{EMAIL_ID_PREFIX, THREAD_ID_PREFIX, keywords_json, mailbox_ids_json};
use super::render::{self, BodyOptions, EmailProperty};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::types::{BlobId, Id, State, UtcDate};
use crate::mail::parsed::ParsedEmail;
use crate::mail::sharing::{Rights, view_in};
use crate::mail::store::{self as mail_store, EmailRecord};
use crate::store::BoxFuture;
use crate::store::commit::{DataType, read_state};

/// Properties the Email record answers alone.
const RECORD_PROPERTIES: &[&str] = &[
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
];

/// The largest message read whole for bodyValues (the upload limit bounds messages anyway).
const MAX_RAW_BYTES: u64 = 256 * 1024 * 1024;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(get(context, arguments))
}

/// One requested property: the client's spelling (the response key) and its meaning.
struct Requested {
    name: String,
    property: EmailProperty,
}

async fn get(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let requested_ids = arguments.take_string_list("ids")?;
    let property_names = arguments.take_string_list("properties")?;
    let mut options = BodyOptions::take(&mut arguments)?;
    arguments.finish()?;
    options.server_max_body_value_bytes = context.engine.memory.max_body_value_bytes;

    let names: Vec<String> = match property_names {
        Some(names) => names,
        // RFC 8621 §4.2: the default properties.
        None => EmailProperty::get_defaults()
            .iter()
            .map(|property| property.name().to_owned())
            .collect(),
    };
    let mut requested = Vec::with_capacity(names.len());
    let mut seen_names = HashSet::new();
    for name in names {
        if name == "id" || !seen_names.insert(name.clone()) {
            continue;
        }
        // RFC 8620 §5.1: an unknown property is invalidArguments.
        let Some(property) = EmailProperty::parse(&name) else {
            return Err(MethodError::invalid_arguments(format!(
                "unknown Email property {name:?}"
            )));
        };
        requested.push(Requested { name, property });
    }
    let needs_parsed = requested
        .iter()
        .any(|item| !RECORD_PROPERTIES.contains(&item.name.as_str()));
    let parsed_properties: Vec<EmailProperty> =
        requested.iter().map(|item| item.property.clone()).collect();
    let needs_raw = render::needs_raw(&parsed_properties, &options);
    let requested = Arc::new(requested);
    let options = Arc::new(options);

    let max_objects = context.engine.limits.max_objects_in_get;
    let account_id = account.number();
    let wanted: Option<Vec<(String, Option<u64>)>> = match requested_ids {
        None => None,
        Some(ids) => {
            if ids.len() as u64 > max_objects {
                return Err(too_large(max_objects));
            }
            let mut seen = HashSet::with_capacity(ids.len());
            let mut resolved = Vec::with_capacity(ids.len());
            for text in ids {
                if !seen.insert(text.clone()) {
                    continue;
                }
                let number = context
                    .resolve_id(&text)
                    .ok()
                    .flatten()
                    .and_then(|id| id.to_number(EMAIL_ID_PREFIX));
                resolved.push((text, number));
            }
            Some(resolved)
        }
    };

    let viewer = context.viewer.clone();
    let loaded = context
        .engine
        .store
        .read(|tx| {
            let wanted = wanted.clone();
            let viewer = viewer.clone();
            Box::pin(async move {
                let state = read_state(tx, account_id, DataType::Email).await?;
                // RFC 8621 §2 via RFC 9670: a grantee fetches the Emails of Mailboxes granting
                // mayReadItems, and sees only those Mailboxes in `mailboxIds`.
                let view = view_in(tx, account_id, &viewer).await?;
                let wanted = match wanted {
                    Some(ids) => ids,
                    None => {
                        let ids = mail_store::list_email_ids(tx, account_id).await?;
                        if ids.len() as u64 > max_objects {
                            return Ok(Err(too_large(max_objects)));
                        }
                        ids.into_iter()
                            .map(|id| (String::new(), Some(id)))
                            .collect()
                    }
                };
                let mut found = Vec::with_capacity(wanted.len());
                let mut not_found = Vec::new();
                for (text, number) in wanted {
                    let record = match number {
                        Some(id) => mail_store::load_record(tx, account_id, id).await?,
                        None => None,
                    };
                    let record = match (record, &view) {
                        (Some(mut record), Some(view)) if view.shows_email(&record.mailbox_ids) => {
                            record
                                .mailbox_ids
                                .retain(|mailbox_id| view.may(*mailbox_id, Rights::READ_ITEMS));
                            Some(record)
                        }
                        (_, Some(_)) => None,
                        (record, None) => record,
                    };
                    let (Some(id), Some(record)) = (number, record) else {
                        if view.is_none() || !text.is_empty() {
                            not_found.push(Value::String(text));
                        }
                        continue;
                    };
                    let parsed = if needs_parsed {
                        mail_store::load_parsed(tx, account_id, id).await?
                    } else {
                        None
                    };
                    found.push((id, record, parsed));
                }
                Ok(Ok((state, found, not_found)))
            })
        })
        .await??;
    let (state, found, not_found) = loaded;

    let mut list = Vec::with_capacity(found.len());
    for (email_id, record, parsed) in found {
        let raw = if needs_raw {
            let blobs = &context.engine.blobs;
            match blobs
                .read_to_vec(account_id, &record.blob, MAX_RAW_BYTES)
                .await
            {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    tracing::warn!(email_id, %error, "Email blob unreadable");
                    None
                }
            }
        } else {
            None
        };
        // Each Email is serialized as soon as it is rendered and charged to the request's
        // response budget, so a heavy Email costs its JSON, not a `Value` tree, and a list
        // over the limit stops here (issue 13). A heavy one renders on a blocking thread, so
        // that the async workers keep answering other clients meanwhile.
        let heavy = parsed
            .as_ref()
            .is_some_and(|parsed| parsed.parts.len() > HEAVY_PARTS)
            || raw.as_ref().is_some_and(|raw| raw.len() > HEAVY_RAW_BYTES);
        let render = {
            let requested = Arc::clone(&requested);
            let options = Arc::clone(&options);
            move || {
                serialize_email(
                    email_id,
                    &record,
                    parsed.as_ref(),
                    raw.as_deref(),
                    &requested,
                    &options,
                )
            }
        };
        let item = if heavy {
            let _slot = context
                .engine
                .heavy_renders
                .acquire()
                .await
                .map_err(|_| MethodError::new(MethodErrorType::ServerUnavailable))?;
            tokio::task::spawn_blocking(render)
                .await
                .map_err(|error| {
                    MethodError::with_description(
                        MethodErrorType::ServerFail,
                        format!("rendering the Email failed: {error}"),
                    )
                })??
        } else {
            render()?
        };
        context.meter.charge(item.get().len() as u64).await?;
        list.push(item);
    }
    context.raw_list = Some(list);
    Ok(json!({
        "accountId": account,
        "state": State::new(state),
        "list": [],
        "notFound": not_found,
    }))
}

/// An Email over this many body parts (or raw bytes, when the raw message is read) renders on a
/// blocking thread.
const HEAVY_PARTS: usize = 64;
const HEAVY_RAW_BYTES: usize = 256 * 1024;

fn serialize_email(
    email_id: u64,
    record: &EmailRecord,
    parsed: Option<&ParsedEmail>,
    raw: Option<&[u8]>,
    requested: &[Requested],
    options: &BodyOptions,
) -> Result<Box<serde_json::value::RawValue>, MethodError> {
    let object = Value::Object(render_email(
        email_id, record, parsed, raw, requested, options,
    ));
    serde_json::value::to_raw_value(&object).map_err(|error| {
        MethodError::with_description(
            MethodErrorType::ServerFail,
            format!("cannot serialize Email: {error}"),
        )
    })
}

fn render_email(
    email_id: u64,
    record: &EmailRecord,
    parsed: Option<&ParsedEmail>,
    raw: Option<&[u8]>,
    requested: &[Requested],
    options: &BodyOptions,
) -> Map<String, Value> {
    let blob_id = BlobId::from_digest(*record.blob.as_bytes());
    let mut object = Map::with_capacity(requested.len() + 1);
    object.insert(
        "id".to_owned(),
        Value::String(Id::from_number(EMAIL_ID_PREFIX, email_id).into_string()),
    );
    for item in requested {
        let value = match item.name.as_str() {
            "blobId" => Value::String(blob_id.to_string()),
            "threadId" => {
                Value::String(Id::from_number(THREAD_ID_PREFIX, record.thread_id).into_string())
            }
            "mailboxIds" => mailbox_ids_json(&record.mailbox_ids),
            "keywords" => keywords_json(&record.keywords),
            "size" => Value::from(record.size),
            "receivedAt" => UtcDate::from_unix(record.received_at, 0)
                .map_or(Value::Null, |date| Value::String(date.to_string())),
            _ => parsed
                .and_then(|parsed| render::render(parsed, raw, &blob_id, &item.property, options))
                .unwrap_or(Value::Null),
        };
        object.insert(item.name.clone(), value);
    }
    object
}

fn too_large(max_objects: u64) -> MethodError {
    MethodError::with_description(
        MethodErrorType::RequestTooLarge,
        format!("more than maxObjectsInGet ({max_objects}) objects"),
    )
}
