//! `MDN/parse` (RFC 9007 §3.2): the MDNs in blobs (received read receipts, typically the
//! blobId of an Email), with `forEmailId` the Email of this account whose Message-ID the
//! receipt names.

use serde_json::{Map, Value, json};

use super::received_json;
use crate::jmap::blob::{MessageBlob, read_message_blob};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::mail::email::fields::EMAIL_ID_PREFIX;
use crate::jmap::types::Id;
use crate::mail::mdn;
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(parse(context, arguments))
}

async fn parse(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let blob_ids = arguments
        .take_string_list("blobIds")?
        .ok_or_else(|| MethodError::invalid_arguments("\"blobIds\" is required"))?;
    arguments.finish()?;
    let max_objects = context.engine.limits.max_objects_in_get;
    if blob_ids.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInGet ({max_objects}) blobs"),
        ));
    }
    let mut parsed = Map::new();
    let mut not_parsable = Vec::new();
    let mut not_found = Vec::new();
    for text in blob_ids {
        if parsed.contains_key(&text) || not_parsable.contains(&text) || not_found.contains(&text) {
            continue;
        }
        let raw = match read_message_blob(context, account, &text).await? {
            MessageBlob::Read { raw, .. } => raw,
            MessageBlob::NotFound => {
                not_found.push(text);
                continue;
            }
            // Larger than any message this server takes: not an MDN it can read.
            MessageBlob::TooLarge => {
                not_parsable.push(text);
                continue;
            }
        };
        let Some(received) = mdn::parse(&raw) else {
            not_parsable.push(text);
            continue;
        };
        let for_email = match received.original_message_id.as_deref() {
            Some(original) => {
                let message_id = original
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned();
                let account_id = account.number();
                let found = context
                    .engine
                    .store
                    .read(move |tx| {
                        let message_id = message_id.clone();
                        Box::pin(async move {
                            crate::mail::store::emails_with_message_id(
                                tx,
                                account_id,
                                &message_id,
                                1,
                            )
                            .await
                        })
                    })
                    .await
                    .map_err(|error| MethodError::from_store(&error))?;
                found
                    .first()
                    .map(|id| Id::from_number(EMAIL_ID_PREFIX, *id).into_string())
            }
            None => None,
        };
        parsed.insert(text, received_json(&received, for_email));
    }
    let or_null = |list: Vec<String>| match list.is_empty() {
        true => Value::Null,
        false => json!(list),
    };
    Ok(json!({
        "accountId": account,
        "parsed": match parsed.is_empty() {
            true => Value::Null,
            false => Value::Object(parsed),
        },
        "notParsable": or_null(not_parsable),
        "notFound": or_null(not_found),
    }))
}
