//! EmailSubmission (RFC 8621 §7): sending an Email, served by the generic /get, /changes,
//! /query, /queryChanges and /set over the binary records of `mail::submission`.
//!
//! - `create.rs`: checks a new submission (Identity, Email, envelope given or derived) and, in
//!   the same transaction, stores it and puts the message on the outbound queue;
//! - `update.rs`: the one change a client may make, undoStatus pending → canceled, which
//!   really takes the message off the queue (or fails with `cannotUnsend`);
//! - `envelope.rs`: the envelope as JSON, its derivation from the headers (RFC 8621 §7.5), and
//!   FUTURERELEASE (RFC 4865) parameters;
//! - `search.rs`: /query's filter and sort;
//! - `set.rs`: the generic /set plus `onSuccessUpdateEmail`/`onSuccessDestroyEmail`.
//!
//! Invariants:
//! - a submission is created in the same commit as its outbound queue entry, so a message is
//!   queued exactly when its EmailSubmission exists (a crash in between loses neither alone);
//! - the queue entry's id is kept in the record while the message may still be canceled.

pub mod changes;
pub mod create;
pub mod envelope;
pub mod get;
pub mod query;
pub mod query_changes;
pub mod search;
pub mod set;
pub mod update;

use serde_json::{Map, Value, json};

use crate::jmap::error::{MethodError, SetError};
use crate::jmap::generic::{Comparator, Created, ObjectType, WriteScope};
use crate::jmap::mail::email::fields::{EMAIL_ID_PREFIX, THREAD_ID_PREFIX};
use crate::jmap::types::{BlobId, Id, UtcDate};
use crate::mail::submission::{self, SUBMISSION_ID_PREFIX, SubmissionRecord};
use crate::store::commit::{Changes, DataType};
use crate::store::{StoreResult, Transaction};

/// Identity ids (`jmap::mail::identity`).
pub const IDENTITY_ID_PREFIX: char = 'i';

/// RFC 8621 §1.3.2 maxDelayedSend: the longest FUTURERELEASE hold, in seconds (30 days).
pub const MAX_DELAYED_SEND_SECONDS: u64 = 30 * 24 * 3600;
/// The largest message sent (the SIZE advertised in submissionExtensions; `tooLarge` above).
pub const MAX_SUBMISSION_SIZE: u64 = 25_000_000;
/// The most envelope recipients of one submission (`tooManyRecipients` above). RFC 5321
/// §4.5.3.1.8 asks servers to take at least 100.
pub const MAX_RECIPIENTS: usize = 100;

/// RFC 8621 §1.3.2 submissionExtensions: the SMTP extensions a client may use through the
/// envelope's parameters (EHLO keyword → its arguments).
pub fn submission_extensions() -> Value {
    json!({
        // RFC 4865: the longest hold interval; the latest date is "now + interval" and changes
        // every second, so it is left out (the interval bounds it).
        "FUTURERELEASE": [MAX_DELAYED_SEND_SECONDS.to_string()],
        "SIZE": [MAX_SUBMISSION_SIZE.to_string()],
        // RFC 3461: NOTIFY/ORCPT on recipients, RET/ENVID on mailFrom.
        "DSN": [],
        "8BITMIME": [],
        "SMTPUTF8": [],
    })
}

pub struct EmailSubmission;

impl ObjectType for EmailSubmission {
    const DATA_TYPE: DataType = DataType::EmailSubmission;
    const ID_PREFIX: char = SUBMISSION_ID_PREFIX;
    const PROPERTIES: &'static [&'static str] = &[
        "id",
        "identityId",
        "emailId",
        "threadId",
        "envelope",
        "sendAt",
        "undoStatus",
        "deliveryStatus",
        "dsnBlobIds",
        "mdnBlobIds",
    ];
    // RFC 8621 §7: threadId, sendAt, deliveryStatus, dsnBlobIds and mdnBlobIds are server-set.
    const SERVER_SET_PROPERTIES: &'static [&'static str] = &[
        "threadId",
        "sendAt",
        "deliveryStatus",
        "dsnBlobIds",
        "mdnBlobIds",
    ];

    fn list_ids<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
    ) -> impl Future<Output = StoreResult<Vec<u64>>> + Send + 'a {
        submission::list_ids(tx, account_id)
    }

    async fn load(
        tx: &mut dyn Transaction,
        account_id: u32,
        id: u64,
    ) -> StoreResult<Option<Map<String, Value>>> {
        Ok(submission::load(tx, account_id, id)
            .await?
            .map(|record| to_json(&record)))
    }

    fn create<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        object: Map<String, Value>,
    ) -> impl Future<Output = StoreResult<Result<Created, SetError>>> + Send + 'a {
        create::create(tx, changes, scope, object)
    }

    fn update<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
        current: Map<String, Value>,
        patched: Map<String, Value>,
    ) -> impl Future<Output = StoreResult<Result<Option<Map<String, Value>>, SetError>>> + Send + 'a
    {
        update::update(tx, changes, scope, id, current, patched)
    }

    async fn destroy<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
    ) -> StoreResult<Result<(), SetError>> {
        // RFC 8621 §7.5: destroying only forgets the submission; delivery goes on.
        if submission::destroy(tx, changes, scope.account_id, id).await? {
            Ok(Ok(()))
        } else {
            Ok(Err(SetError::not_found()))
        }
    }

    fn query<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        filter: Option<&'a Value>,
        sort: &'a [Comparator],
    ) -> impl Future<Output = StoreResult<Result<Vec<u64>, MethodError>>> + Send + 'a {
        search::query(tx, account_id, filter, sort)
    }
}

/// The JMAP form of a stored submission (every property but `id`).
pub fn to_json(record: &SubmissionRecord) -> Map<String, Value> {
    let delivery_status: Map<String, Value> = record
        .delivery_status
        .iter()
        .map(|status| {
            (
                status.address.clone(),
                json!({
                    "smtpReply": status.smtp_reply,
                    "delivered": status.delivered.name(),
                    "displayed": if status.displayed { "yes" } else { "unknown" },
                }),
            )
        })
        .collect();
    let blob_ids = |blobs: &[crate::store::blob::BlobHash]| -> Value {
        blobs
            .iter()
            .map(|blob| Value::String(BlobId::from_digest(*blob.as_bytes()).to_string()))
            .collect()
    };
    let mut object = Map::with_capacity(9);
    object.insert(
        "identityId".into(),
        id_json(IDENTITY_ID_PREFIX, record.identity_id),
    );
    object.insert("emailId".into(), id_json(EMAIL_ID_PREFIX, record.email_id));
    object.insert(
        "threadId".into(),
        id_json(THREAD_ID_PREFIX, record.thread_id),
    );
    object.insert("envelope".into(), envelope::to_json(&record.envelope));
    object.insert("sendAt".into(), utc_date_json(record.send_at));
    object.insert("undoStatus".into(), record.undo_status.name().into());
    object.insert("deliveryStatus".into(), Value::Object(delivery_status));
    object.insert("dsnBlobIds".into(), blob_ids(&record.dsn_blobs));
    object.insert("mdnBlobIds".into(), blob_ids(&record.mdn_blobs));
    object
}

fn id_json(prefix: char, number: u64) -> Value {
    Value::String(Id::from_number(prefix, number).into_string())
}

pub(crate) fn utc_date_json(seconds: i64) -> Value {
    UtcDate::from_unix(seconds, 0)
        .map(|date| Value::String(date.to_string()))
        .unwrap_or(Value::Null)
}
