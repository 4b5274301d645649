//! `Blob/lookup` (RFC 9404 §4.3): which Emails, Threads and Mailboxes reference each blob.
//! An Email references the blob it was stored from and every part of it (a part's blob id
//! names a range of its message's blob); its Thread and Mailboxes reference what it does.
//! Answered from the blob index (`mail::store::blob_index`) in one read snapshot, at most
//! `maxObjectsInGet` Emails per blob.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{LOOKUP_TYPE_NAMES, resolve_blob_id};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::{CAPABILITY_MAIL, MethodResult};
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::mail::email::fields::{EMAIL_ID_PREFIX, MAILBOX_ID_PREFIX, THREAD_ID_PREFIX};
use crate::jmap::types::{BlobId, Id};
use crate::mail::store::blob_index;
use crate::store::BoxFuture;
use crate::store::blob::{BlobErrorKind, BlobHash};

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(lookup(context, arguments))
}

/// What references one blob.
#[derive(Debug, Default)]
struct Matches {
    emails: Vec<u64>,
    threads: BTreeSet<u64>,
    mailboxes: BTreeSet<u64>,
}

async fn lookup(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let type_names = arguments
        .take_string_list("typeNames")?
        .ok_or_else(|| MethodError::invalid_arguments("\"typeNames\" is required"))?;
    let ids = arguments
        .take_string_list("ids")?
        .ok_or_else(|| MethodError::invalid_arguments("\"ids\" is required"))?;
    arguments.finish()?;
    // RFC 9404 §4.3: a type the server does not know, or whose capability the request does
    // not use, is unknownDataType.
    let mail_used = context.using.iter().any(|used| used == CAPABILITY_MAIL);
    if let Some(unknown) = type_names
        .iter()
        .find(|name| !mail_used || !LOOKUP_TYPE_NAMES.contains(&name.as_str()))
    {
        return Err(MethodError::with_description(
            MethodErrorType::UnknownDataType,
            format!(
                "Blob/lookup cannot look in {unknown:?} (known with the mail capability: Mailbox, Thread, Email)"
            ),
        ));
    }
    let max_objects = context.engine.limits.max_objects_in_get;
    if ids.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInGet ({max_objects}) ids"),
        ));
    }
    let account_id = account.number();
    let per_blob = usize::try_from(max_objects).unwrap_or(usize::MAX);
    let mut list = Vec::with_capacity(ids.len());
    let mut not_found = Vec::new();
    for text in ids {
        let Some(blob) = resolve_blob_id(context, &text) else {
            not_found.push(Value::String(text));
            continue;
        };
        let matches = context
            .engine
            .store
            .read(move |tx| {
                Box::pin(async move { references(tx, account_id, &blob, per_blob).await })
            })
            .await
            .map_err(|error| MethodError::from_store(&error))?;
        // Nothing references it: a blob the account may still read (an upload) is listed with
        // no matches; one it may not is notFound, the same answer as for one that never was.
        if matches.emails.is_empty() {
            let readable = context
                .engine
                .blobs
                .info(account_id, &BlobHash(*blob.digest()))
                .await;
            match readable {
                Ok(_) => {}
                Err(error) if error.kind == BlobErrorKind::NotFound => {
                    not_found.push(Value::String(text));
                    continue;
                }
                Err(error) => {
                    return Err(MethodError::with_description(
                        MethodErrorType::ServerFail,
                        error.message,
                    ));
                }
            }
        }
        let mut matched = Map::new();
        for name in &type_names {
            let ids: Vec<Value> = match name.as_str() {
                "Email" => ids_json(EMAIL_ID_PREFIX, matches.emails.iter()),
                "Thread" => ids_json(THREAD_ID_PREFIX, matches.threads.iter()),
                _ => ids_json(MAILBOX_ID_PREFIX, matches.mailboxes.iter()),
            };
            matched.insert(name.clone(), Value::Array(ids));
        }
        list.push(json!({"id": blob.to_string(), "matchedIds": matched}));
    }
    Ok(json!({
        "accountId": account,
        "list": list,
        "notFound": not_found,
    }))
}

fn ids_json<'a>(prefix: char, ids: impl Iterator<Item = &'a u64>) -> Vec<Value> {
    ids.map(|id| Value::String(Id::from_number(prefix, *id).into_string()))
        .collect()
}

/// The Emails stored from the blob's message (for a part id: those whose message holds the
/// part's range), with their Threads and Mailboxes.
async fn references(
    tx: &mut dyn crate::store::Transaction,
    account_id: u32,
    blob: &BlobId,
    limit: usize,
) -> crate::store::StoreResult<Matches> {
    let mut matches = Matches::default();
    let part_end = blob
        .sections()
        .first()
        .map(|section| u64::from(section.end));
    for (email_id, record) in
        blob_index::emails_with_blob(tx, account_id, blob.digest(), limit).await?
    {
        if part_end.is_some_and(|end| end > record.size) {
            continue;
        }
        matches.emails.push(email_id);
        matches.threads.insert(record.thread_id);
        matches.mailboxes.extend(record.mailbox_ids.iter().copied());
    }
    Ok(matches)
}
