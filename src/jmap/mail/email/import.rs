//! Email/import (RFC 8621 §4.8): blobs holding RFC 5322 messages become Emails. Every blob is
//! read and parsed before the commit; the commit then stores all of them (and their Threads,
//! indexes and counts) at once.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::fields::parse_keywords;
use super::store_new::{NewEmail, store_new_email};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::generic::check_if_in_state;
use crate::jmap::types::{BlobId, Id, State, UtcDate};
use crate::mail::parsed::blob::read_blob;
use crate::mail::parsed::{looks_like_message, parse_message};
use crate::store::BoxFuture;
use crate::store::blob::{BlobErrorKind, BlobHash};
use crate::store::commit::{DataType, commit_account};

/// The largest message Email/import accepts (the upload limit is the practical bound).
pub const MAX_IMPORT_BYTES: u64 = 256 * 1024 * 1024;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(import(context, arguments))
}

async fn import(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let if_in_state = arguments.take_string("ifInState")?;
    let Some(emails) = arguments.take_object("emails")? else {
        return Err(MethodError::invalid_arguments("\"emails\" is required"));
    };
    arguments.finish()?;
    let max_objects = context.engine.limits.max_objects_in_set;
    if emails.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInSet ({max_objects}) emails"),
        ));
    }
    let account_id = account.number();
    let mut prepared = Vec::with_capacity(emails.len());
    for (creation_id, object) in emails {
        let creation_id = Id::parse(&creation_id)
            .map_err(|error| MethodError::invalid_arguments(format!("creation id: {error}")))?;
        prepared.push((creation_id, prepare(context, account_id, object).await));
    }
    let prepared = Arc::new(prepared);
    let known_created_ids = Arc::new(context.created_ids.clone());
    let viewer = Arc::new((!context.owns(account)).then(|| context.viewer.clone()));

    let committed = commit_account(&context.engine.store, account_id, |tx, changes| {
        let viewer = Arc::clone(&viewer);
        let prepared = Arc::clone(&prepared);
        let known_created_ids = Arc::clone(&known_created_ids);
        let if_in_state = if_in_state.clone();
        Box::pin(async move {
            // RFC 8620 §5.3 (by reference from RFC 8621 §4.8): ifInState mismatch.
            let expected = if_in_state.as_deref();
            let old_state =
                match check_if_in_state(tx, account_id, DataType::Email, expected).await? {
                    Ok(state) => state,
                    Err(error) => return Ok(Err(error)),
                };
            let mut created_ids = (*known_created_ids).clone();
            let mut created = Map::new();
            let mut not_created = Map::new();
            let mut new_ids = Vec::new();
            for (creation_id, email) in prepared.iter() {
                let result = match email {
                    Err(error) => Err(error.clone()),
                    Ok(email) => {
                        let viewer = viewer.as_ref().as_ref();
                        store_new_email(tx, changes, account_id, email, &created_ids, viewer)
                            .await?
                    }
                };
                match result {
                    Ok((id, object)) => {
                        created.insert(creation_id.as_str().to_owned(), Value::Object(object));
                        created_ids.insert(creation_id.clone(), id.clone());
                        new_ids.push((creation_id.clone(), id));
                    }
                    Err(error) => {
                        not_created.insert(creation_id.as_str().to_owned(), error.to_json());
                    }
                }
            }
            Ok(Ok((old_state, created, not_created, new_ids)))
        })
    })
    .await?;
    let (old_state, created, not_created, new_ids) = committed.value?;
    let new_state = if committed.changed.contains(&DataType::Email) {
        committed.version
    } else {
        old_state
    };
    for (creation_id, id) in new_ids {
        context.record_created(creation_id, id);
    }
    let or_null = crate::jmap::generic::null_if_empty;
    Ok(json!({
        "accountId": account,
        "oldState": State::new(old_state),
        "newState": State::new(new_state),
        "created": or_null(created),
        "notCreated": or_null(not_created),
    }))
}

/// Validates one EmailImport object and reads and parses its blob.
async fn prepare(
    context: &CallContext<'_>,
    account_id: u32,
    object: Value,
) -> Result<NewEmail, SetError> {
    let Value::Object(mut object) = object else {
        return Err(SetError::invalid_properties(
            Vec::<String>::new(),
            "an EmailImport must be an object",
        ));
    };
    let unknown: Vec<String> = object
        .keys()
        .filter(|key| {
            !matches!(
                key.as_str(),
                "blobId" | "mailboxIds" | "keywords" | "receivedAt"
            )
        })
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(SetError::invalid_properties(
            unknown,
            "unknown EmailImport properties",
        ));
    }
    let blob_id = match object.remove("blobId") {
        // A blob id, or `#creationId` of a Blob/upload earlier in the request (RFC 9404 §4.1).
        Some(Value::String(text)) => crate::jmap::blob::resolve_blob_id(context, &text)
            .ok_or_else(|| SetError::invalid_properties(["blobId"], "not a blob id"))?,
        _ => {
            return Err(SetError::invalid_properties(
                ["blobId"],
                "blobId is required",
            ));
        }
    };
    let mailbox_ids = object.remove("mailboxIds").unwrap_or(Value::Null);
    super::fields::parse_mailbox_ids(Some(&mailbox_ids), &context.created_ids)?;
    let keywords = parse_keywords(object.remove("keywords").as_ref())?;
    let received_at = match object.remove("receivedAt") {
        None | Some(Value::Null) => UtcDate::now(),
        Some(Value::String(text)) => UtcDate::parse(&text).map_err(|_| {
            SetError::invalid_properties(["receivedAt"], "receivedAt must be a UTCDate")
        })?,
        Some(_) => {
            return Err(SetError::invalid_properties(
                ["receivedAt"],
                "receivedAt must be a UTCDate",
            ));
        }
    };
    let (blob, raw) = read_message_blob(context, account_id, &blob_id).await?;
    // RFC 8621 §4.8: a blob that is not an RFC 5322 message is `invalidEmail`, by the same
    // test Email/parse answers `notParsable` with (RFC 8621 §4.9), instead of an empty Email.
    if !looks_like_message(&raw) {
        tracing::info!(
            account_id,
            %blob_id,
            reason = "invalidEmail",
            "Email/import refused a blob that is not a message"
        );
        return Err(SetError::with_description(
            SetErrorType::InvalidEmail,
            "the blob is not an RFC 5322 message (it does not start with a header field)",
        ));
    }
    Ok(NewEmail {
        blob,
        parsed: parse_message(&raw),
        mailbox_ids,
        keywords,
        received_at: received_at.unix_seconds(),
    })
}

/// The message a blob id names, as a stored blob the account may link: a whole blob as it is,
/// or a part of a message (an attached message/rfc822) decoded and stored as its own blob.
pub async fn read_message_blob(
    context: &CallContext<'_>,
    account_id: u32,
    blob_id: &BlobId,
) -> Result<(BlobHash, Vec<u8>), SetError> {
    let blobs = &context.engine.blobs;
    let content = read_blob(blobs, account_id, blob_id, MAX_IMPORT_BYTES)
        .await
        .map_err(|error| match error.kind {
            BlobErrorKind::TooLarge => {
                SetError::with_description(SetErrorType::TooLarge, error.to_string())
            }
            _ => SetError::with_description(SetErrorType::BlobNotFound, "no such blob"),
        })?;
    if !blob_id.is_part() {
        return Ok((BlobHash(*blob_id.digest()), content));
    }
    // A part becomes a blob of its own, which the new Email links.
    let stored = blobs
        .put(account_id, bytes::Bytes::from(content.clone()))
        .await
        .map_err(|error| SetError::with_description(SetErrorType::TooLarge, error.to_string()))?;
    Ok((stored.id, content))
}
