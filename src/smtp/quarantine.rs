//! Quarantined messages (clamd found a virus after the `250`): `tern quarantine list`,
//! `release ID` and `delete ID`. On a stopped data directory the CLI opens the store; while the
//! server runs it goes through the admin endpoint (`/admin/quarantine/…`), which calls the same
//! functions.
//!
//! A record (`QUEUE, QUEUE_DELIVERY_QUARANTINE, queue_id`) holds one reference to the message's
//! prepared blob (trace fields already prepended). Releasing it puts the message back on the
//! incoming queue in ONE transaction: a new entry for the recipients whose accounts still exist,
//! a prepared record (so delivery neither scans it again nor prepends a second set of trace
//! fields), and the record's removal with the release of its hold. Deleting drops the record
//! and its hold; the blob collector takes the bytes.

use std::net::IpAddr;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Directory;
use crate::config::Config;
use crate::http::admin_client::{AdminClient, AdminClientError};
use crate::smtp::delivery::duplicate::Fingerprint;
use crate::smtp::delivery::prepared::{self, Prepared};
use crate::smtp::incoming::{self, BodyType, IncomingMessage, IncomingRecipient};
use crate::store::blob::{self, BlobHash};
use crate::store::keys::{self, KeyBuilder, QUEUE_DELIVERY_QUARANTINE, SUBSPACE_QUEUE};
use crate::store::{
    KeyRange, RangeOptions, Store, StoreError, StoreErrorKind, StoreResult, Transaction,
};

/// A quarantined message, as stored (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineRecord {
    pub virus: String,
    /// The prepared blob (hex SHA-256).
    pub blob: String,
    pub mail_from: String,
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    pub received_at: i64,
    /// The prepared verdicts, so a released message is classified as it would have been.
    #[serde(default)]
    pub rules_score: f64,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    #[serde(default)]
    pub size: u64,
}

/// One line of `tern quarantine list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineRow {
    pub id: u64,
    #[serde(flatten)]
    pub record: QuarantineRecord,
}

pub fn key(queue_id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_DELIVERY_QUARANTINE)
        .u64(queue_id)
        .build()
}

/// Writes `record` under `queue_id` and holds its blob (inside the caller's transaction).
pub async fn put(
    tx: &mut dyn Transaction,
    queue_id: u64,
    record: &QuarantineRecord,
) -> StoreResult<()> {
    let hash = blob_of(record)?;
    blob::hold(tx, &hash)
        .await
        .map_err(|error| StoreError::io(error.to_string()))?;
    let bytes = serde_json::to_vec(record).map_err(StoreError::io)?;
    tx.set(&key(queue_id), &bytes)
}

fn blob_of(record: &QuarantineRecord) -> StoreResult<BlobHash> {
    BlobHash::from_hex(&record.blob)
        .ok_or_else(|| StoreError::corrupt("quarantine record with a bad blob hash"))
}

fn decode(bytes: &[u8]) -> StoreResult<QuarantineRecord> {
    serde_json::from_slice(bytes)
        .map_err(|error| StoreError::corrupt(format!("quarantine record: {error}")))
}

async fn load(tx: &mut dyn Transaction, queue_id: u64) -> StoreResult<Option<QuarantineRecord>> {
    match tx.get(&key(queue_id)).await? {
        Some(bytes) => decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Every quarantined message, oldest first.
pub async fn list(store: &Store) -> StoreResult<Vec<QuarantineRow>> {
    let prefix = KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_DELIVERY_QUARANTINE)
        .build();
    let pairs = store
        .read(move |tx| {
            let range = KeyRange::prefix(&prefix);
            Box::pin(async move { tx.get_range(&range, RangeOptions::default()).await })
        })
        .await?;
    let mut rows = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let id = key
            .len()
            .checked_sub(8)
            .and_then(|start| keys::be_u64(&key[start..]))
            .ok_or_else(|| StoreError::corrupt("quarantine key without an id"))?;
        rows.push(QuarantineRow {
            id,
            record: decode(&value)?,
        });
    }
    Ok(rows)
}

/// `tern quarantine delete ID`: forgets the message. `false` when there is no such record.
pub async fn delete(store: &Store, queue_id: u64) -> StoreResult<bool> {
    store
        .transact(move |tx| {
            Box::pin(async move {
                let Some(record) = load(tx, queue_id).await? else {
                    return Ok(false);
                };
                tx.clear(&key(queue_id))?;
                blob::release(tx, &blob_of(&record)?)?;
                Ok(true)
            })
        })
        .await
}

/// Why a release did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("no quarantined message {0}")]
    NotFound(u64),
    #[error("none of the message's recipients has an account any more")]
    NoRecipients,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `tern quarantine release ID`: the message goes back on the incoming queue, to be delivered
/// (unscanned: an administrator decided) to the recipients that still have an account.
/// Answers the new queue id.
pub async fn release(directory: &Directory, queue_id: u64) -> Result<u64, ReleaseError> {
    let store = directory.store();
    let record = store
        .read(move |tx| Box::pin(async move { load(tx, queue_id).await }))
        .await?
        .ok_or(ReleaseError::NotFound(queue_id))?;
    let mut recipients = Vec::new();
    for address in &record.recipients {
        match directory.account_for_address(address).await {
            Ok(Some(account)) => recipients.push(IncomingRecipient {
                address: address.clone(),
                account_id: account.account_id,
                delivered: false,
                notify: None,
                orcpt: None,
            }),
            Ok(None) => tracing::info!(queue_id, %address, "released message: recipient gone"),
            Err(error) => {
                return Err(ReleaseError::Store(StoreError::io(error.to_string())));
            }
        }
    }
    if recipients.is_empty() {
        return Err(ReleaseError::NoRecipients);
    }
    let hash = blob_of(&record)?;
    let entry = IncomingMessage {
        queue_id: incoming::new_queue_id(),
        blob: hash,
        size: record.size,
        mail_from: record.mail_from.clone(),
        recipients,
        client_ip: record
            .client_ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok()),
        helo: String::new(),
        tls: false,
        authenticated_as: None,
        received_at: record.received_at,
        env_id: None,
        ret: None,
        body_type: BodyType::default(),
        smtputf8: false,
        attempts: 0,
        not_before: 0,
    };
    let prepared = Prepared {
        blob: hash,
        size: record.size,
        rules_score: record.rules_score,
        rules: record.rules.clone(),
        spamd_spam: false,
        spamd_score: None,
        virus: None,
        fingerprint: record.fingerprint,
    };
    let new_id = entry.queue_id;
    let entry = std::sync::Arc::new(entry);
    let prepared = std::sync::Arc::new(prepared);
    let released = store
        .transact(move |tx| {
            let entry = std::sync::Arc::clone(&entry);
            let prepared = std::sync::Arc::clone(&prepared);
            Box::pin(async move {
                if tx.get(&key(queue_id)).await?.is_none() {
                    return Ok(false);
                }
                incoming::enqueue(tx, &entry).await?;
                prepared::save_once(tx, entry.queue_id, &prepared).await?;
                tx.clear(&key(queue_id))?;
                blob::release(tx, &hash)?;
                Ok(true)
            })
        })
        .await?;
    if !released {
        // Released or deleted meanwhile.
        return Err(ReleaseError::NotFound(queue_id));
    }
    tracing::info!(
        queue_id,
        new_queue_id = new_id,
        "quarantined message released"
    );
    Ok(new_id)
}

/// One quarantine admin operation.
#[derive(Debug, Clone, Copy)]
pub enum Operation {
    List,
    Release(u64),
    Delete(u64),
}

/// Runs `operation` (on the store, or through the running server) and returns what to print.
pub async fn run(config: &Config, operation: Operation) -> Result<String, String> {
    let data_dir = &config.server.data_dir;
    if !data_dir.exists() {
        return Err(format!(
            "data directory {} does not exist (use --data-dir or --config)",
            data_dir.display()
        ));
    }
    match crate::server::open_store(config).await {
        Ok(store) => {
            let directory = Directory::new(store.clone());
            let answer = locally(&directory, operation).await;
            drop(directory);
            store.close().await.map_err(|error| error.to_string())?;
            answer
        }
        Err(error) if error.kind == StoreErrorKind::Locked => {
            let client = AdminClient::connect(data_dir)
                .await
                .map_err(|error| error.to_string())?;
            remotely(&client, operation)
                .await
                .map_err(|error| error.to_string())
        }
        Err(error) => Err(error.message),
    }
}

async fn locally(directory: &Directory, operation: Operation) -> Result<String, String> {
    let store = directory.store();
    match operation {
        Operation::List => Ok(render_list(
            &list(store).await.map_err(|error| error.to_string())?,
        )),
        Operation::Release(id) => release(directory, id)
            .await
            .map(|new_id| released_text(id, new_id))
            .map_err(|error| error.to_string()),
        Operation::Delete(id) => match delete(store, id).await {
            Ok(true) => Ok(format!("quarantined message {id} deleted")),
            Ok(false) => Err(format!("no quarantined message {id}")),
            Err(error) => Err(error.to_string()),
        },
    }
}

fn released_text(id: u64, new_id: u64) -> String {
    format!("quarantined message {id} released: queued for delivery as {new_id}")
}

async fn remotely(client: &AdminClient, operation: Operation) -> Result<String, AdminClientError> {
    Ok(match operation {
        Operation::List => {
            let rows: Vec<QuarantineRow> =
                client.call(Method::GET, "/admin/quarantine", None).await?;
            render_list(&rows)
        }
        Operation::Release(id) => {
            let answer: Value = client
                .call(
                    Method::POST,
                    &format!("/admin/quarantine/{id}/release"),
                    None,
                )
                .await?;
            released_text(id, answer["queueId"].as_u64().unwrap_or_default())
        }
        Operation::Delete(id) => {
            let _: Value = client
                .call(Method::DELETE, &format!("/admin/quarantine/{id}"), None)
                .await?;
            format!("quarantined message {id} deleted")
        }
    })
}

fn render_list(rows: &[QuarantineRow]) -> String {
    if rows.is_empty() {
        return "no quarantined messages".to_owned();
    }
    let mut text = String::new();
    for row in rows {
        let from = if row.record.mail_from.is_empty() {
            "<>"
        } else {
            row.record.mail_from.as_str()
        };
        let at = crate::jmap::types::UtcDate::from_unix(row.record.received_at, 0).map_or_else(
            || row.record.received_at.to_string(),
            |date| date.to_string(),
        );
        text.push_str(&format!(
            "{}\t{at}\tfrom {from}\tvirus {}\tto {}\n",
            row.id,
            row.record.virus,
            row.record.recipients.join(", ")
        ));
    }
    text.trim_end().to_owned()
}

/// The admin endpoint's `/admin/quarantine/…` routes: `GET` (list), `POST ID/release`,
/// `DELETE ID`. `Err` is an HTTP status and a message.
pub async fn route(
    directory: &Directory,
    method: &str,
    path: &[&str],
) -> Result<Value, (u16, String)> {
    let store = directory.store();
    let id_of = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| (400, format!("{text:?} is not a quarantine id")))
    };
    match (method, path) {
        ("GET", []) => serde_json::to_value(list(store).await.map_err(|e| (500, e.to_string()))?)
            .map_err(|error| (500, error.to_string())),
        ("POST", [id, "release"]) => {
            let id = id_of(id)?;
            match release(directory, id).await {
                Ok(new_id) => Ok(serde_json::json!({ "id": id, "queueId": new_id })),
                Err(ReleaseError::NotFound(_)) => {
                    Err((404, format!("no quarantined message {id}")))
                }
                Err(error @ ReleaseError::NoRecipients) => Err((409, error.to_string())),
                Err(error) => Err((500, error.to_string())),
            }
        }
        ("DELETE", [id]) => {
            let id = id_of(id)?;
            match delete(store, id).await {
                Ok(true) => Ok(serde_json::json!({ "id": id })),
                Ok(false) => Err((404, format!("no quarantined message {id}"))),
                Err(error) => Err((500, error.to_string())),
            }
        }
        _ => Err((404, "no such quarantine admin route".to_owned())),
    }
}
