//! `Email/parse` (RFC 8621 §4.9): Email objects made from message blobs that are not (or
//! not yet) Emails: uploads, and attached messages (part blob ids). Nothing is stored.

use serde_json::{Map, Value};

use super::render::{BodyOptions, EmailProperty, render_object};
use crate::jmap::blob::{MessageBlob, read_message_blob};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::mail::parsed::{looks_like_message, parse_message};
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(parse(context, arguments))
}

async fn parse(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let Some(blob_ids) = arguments.take_string_list("blobIds")? else {
        return Err(MethodError::invalid_arguments("\"blobIds\" is required"));
    };
    let properties = match arguments.take_string_list("properties")? {
        None => EmailProperty::parse_defaults(),
        Some(names) => names
            .iter()
            .map(|name| {
                EmailProperty::parse(name).ok_or_else(|| {
                    MethodError::invalid_arguments(format!("unknown or invalid property {name:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let options = BodyOptions::take(&mut arguments)?;
    arguments.finish()?;
    // RFC 8620 §5.1 by analogy: a /get-like call names at most maxObjectsInGet objects.
    let max_objects = context.engine.limits.max_objects_in_get;
    if blob_ids.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInGet ({max_objects}) blobs"),
        ));
    }

    let mut parsed_emails = Map::new();
    let mut not_parsable = Vec::new();
    let mut not_found = Vec::new();
    for text in blob_ids {
        if parsed_emails.contains_key(&text)
            || not_parsable.contains(&text)
            || not_found.contains(&text)
        {
            continue;
        }
        let (blob_id, raw) = match read_message_blob(context, account, &text).await? {
            MessageBlob::Read { blob, raw } => (blob, raw),
            MessageBlob::NotFound => {
                not_found.push(text);
                continue;
            }
            // Larger than any message this server accepts.
            MessageBlob::TooLarge => {
                not_parsable.push(text);
                continue;
            }
        };
        if !looks_like_message(&raw) {
            not_parsable.push(text);
            continue;
        }
        let parsed = parse_message(&raw);
        let mut object = render_object(&parsed, Some(&raw), &blob_id, &properties, &options);
        // RFC 8621 §4.9: the properties only a stored Email has are null.
        for property in &properties {
            if !object.contains_key(property.name()) {
                object.insert(property.name().to_owned(), Value::Null);
            }
        }
        parsed_emails.insert(text, Value::Object(object));
    }
    let or_null = |list: Vec<String>| {
        if list.is_empty() {
            Value::Null
        } else {
            Value::Array(list.into_iter().map(Value::String).collect())
        }
    };
    let mut response = Map::new();
    response.insert("accountId".to_owned(), Value::String(account.to_string()));
    response.insert(
        "parsed".to_owned(),
        if parsed_emails.is_empty() {
            Value::Null
        } else {
            Value::Object(parsed_emails)
        },
    );
    response.insert("notParsable".to_owned(), or_null(not_parsable));
    response.insert("notFound".to_owned(), or_null(not_found));
    Ok(Value::Object(response))
}
