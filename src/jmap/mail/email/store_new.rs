//! What Email/set create, Email/import and Email/copy share: a message that is already a blob
//! the account may read, with validated keywords and receivedAt, becomes an Email inside the
//! method's one commit, after its mailboxIds (which may name Mailboxes created earlier in the
//! request) are resolved and checked and the account's quota is found to have room.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::fields::{
    EMAIL_ID_PREFIX, THREAD_ID_PREFIX, missing_mailbox, no_such_mailbox, parse_mailbox_ids,
};
use super::rights;
use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::types::{BlobId, Id};
use crate::mail::mailbox::load_all;
use crate::mail::parsed::ParsedEmail;
use crate::mail::quota;
use crate::mail::sharing::{SharedView, Viewer};
use crate::mail::store::{self as mail_store, ImportSpec};
use crate::store::blob::BlobHash;
use crate::store::commit::Changes;
use crate::store::{StoreResult, Transaction};

/// A message ready to be stored.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub blob: BlobHash,
    pub parsed: ParsedEmail,
    /// The client's `mailboxIds` value, resolved inside the commit.
    pub mailbox_ids: Value,
    pub keywords: Vec<String>,
    /// Unix seconds.
    pub received_at: i64,
}

/// Stores `email`; on success the `created` object of RFC 8621 §4.6/§4.8 (id, blobId,
/// threadId, size).
pub async fn store_new_email(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    email: &NewEmail,
    created_ids: &HashMap<Id, Id>,
    viewer: Option<&Viewer>,
) -> StoreResult<Result<(Id, Map<String, Value>), SetError>> {
    let mailbox_ids = match parse_mailbox_ids(Some(&email.mailbox_ids), created_ids) {
        Ok(ids) => ids,
        Err(error) => return Ok(Err(error)),
    };
    if let Some(missing) = missing_mailbox(tx, account_id, &mailbox_ids).await? {
        return Ok(Err(no_such_mailbox(missing)));
    }
    // A grantee adds only to Mailboxes granting it (`rights`).
    if let Some(viewer) = viewer {
        let view = SharedView::of_account(account_id, &load_all(tx, account_id).await?, viewer);
        if let Some(unseen) = rights::unseen_mailbox(&view, &mailbox_ids) {
            return Ok(Err(no_such_mailbox(unseen)));
        }
        if let Err(error) = rights::check_create(&view, &mailbox_ids, &email.keywords) {
            return Ok(Err(error));
        }
    }
    // RFC 9425 §4.1 hardLimit: no Email is created past it (RFC 8620 §5.3 `overQuota`).
    if let Err(over) = quota::check(tx, account_id, email.parsed.size, 1).await? {
        return Ok(Err(SetError::with_description(
            SetErrorType::OverQuota,
            over.to_string(),
        )));
    }
    let imported = mail_store::import_email(
        tx,
        changes,
        account_id,
        ImportSpec {
            blob: email.blob,
            parsed: email.parsed.clone(),
            mailbox_ids,
            keywords: email.keywords.clone(),
            received_at: email.received_at,
        },
    )
    .await?;
    let id = Id::from_number(EMAIL_ID_PREFIX, imported.email_id);
    let mut created = Map::with_capacity(4);
    created.insert("id".into(), json!(id));
    let blob_id = BlobId::from_digest(*email.blob.as_bytes());
    created.insert("blobId".into(), Value::String(blob_id.to_string()));
    let thread_id = Id::from_number(THREAD_ID_PREFIX, imported.thread_id);
    created.insert("threadId".into(), json!(thread_id));
    created.insert("size".into(), Value::from(email.parsed.size));
    Ok(Ok((id, created)))
}
