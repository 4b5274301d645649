//! Stage one of a delivery, done once per queue entry and kept durably: the message is read,
//! authenticated, scored by the rules (and spamd), scanned, and stored ONCE with its trace
//! fields as the blob every recipient's Email links. The verdicts and that blob's hash are kept
//! under `QUEUE_DELIVERY_PREPARED, queue_id` (holding the blob), so a crash between recipients
//! replays the same bytes and the same verdicts instead of asking DNS again.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::trace::{authenticate, received_fields, remove_forged_results};
use super::{DeliveryContext, DeliveryError};
use crate::smtp::antivirus::Verdict;
use crate::smtp::delivery::duplicate::Fingerprint;
use crate::smtp::incoming::IncomingMessage;
use crate::smtp::spam::rules;
use crate::store::blob::{self, BlobHash, WholeBlob};
use crate::store::keys::{KeyBuilder, QUEUE_DELIVERY_PREPARED, SUBSPACE_QUEUE};
use crate::store::{StoreError, StoreResult, Transaction};

/// The value format byte in front of the JSON.
const FORMAT: u8 = 0x01;

/// What stage one decided for a queue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prepared {
    /// The message with `Return-Path`, `Received` and `Authentication-Results` prepended.
    #[serde(with = "hash_hex")]
    pub blob: BlobHash,
    pub size: u64,
    pub rules_score: f64,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default)]
    pub spamd_spam: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spamd_score: Option<f64>,
    /// The signature clamd found, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virus: Option<String>,
    /// Message-ID and content of the message as received (duplicate suppression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

mod hash_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::store::blob::BlobHash;

    pub fn serialize<S: Serializer>(hash: &BlobHash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hash.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BlobHash, D::Error> {
        let text = String::deserialize(deserializer)?;
        BlobHash::from_hex(&text).ok_or_else(|| serde::de::Error::custom("bad blob hash"))
    }
}

pub fn key(queue_id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_DELIVERY_PREPARED)
        .u64(queue_id)
        .build()
}

/// `key(queue_id) + "S"`: the SMTP session had clamd scan the message at DATA and it was
/// clean, so delivery does not scan it again. Written in the enqueue transaction; cleared with
/// the prepared record.
fn scanned_key(queue_id: u64) -> Vec<u8> {
    let mut key = key(queue_id);
    key.push(b'S');
    key
}

/// Records, inside the enqueue transaction, that the message was scanned clean at DATA.
pub fn mark_scanned(tx: &mut dyn Transaction, queue_id: u64) -> StoreResult<()> {
    tx.set(&scanned_key(queue_id), b"clean")
}

pub async fn load(tx: &mut dyn Transaction, queue_id: u64) -> StoreResult<Option<Prepared>> {
    let Some(bytes) = tx.get(&key(queue_id)).await? else {
        return Ok(None);
    };
    match bytes.split_first() {
        Some((&FORMAT, json)) => serde_json::from_slice(json)
            .map(Some)
            .map_err(|error| StoreError::corrupt(format!("prepared delivery: {error}"))),
        _ => Err(StoreError::corrupt(
            "prepared delivery has an unknown format",
        )),
    }
}

fn encode(prepared: &Prepared) -> StoreResult<Vec<u8>> {
    let mut bytes = vec![FORMAT];
    serde_json::to_writer(&mut bytes, prepared).map_err(StoreError::io)?;
    Ok(bytes)
}

/// Writes the record and holds its blob, unless a record exists already (another attempt got
/// there first). Runs inside the blob's last transaction (or a release from quarantine).
/// Returns the record that is stored now: `prepared`, or the one found.
pub async fn save_once(
    tx: &mut dyn Transaction,
    queue_id: u64,
    prepared: &Prepared,
) -> StoreResult<Prepared> {
    if let Some(existing) = load(tx, queue_id).await? {
        return Ok(existing);
    }
    blob::hold(tx, &prepared.blob)
        .await
        .map_err(|error| StoreError::io(error.to_string()))?;
    tx.set(&key(queue_id), &encode(prepared)?)?;
    Ok(prepared.clone())
}

/// Removes the record and releases its blob hold (the Emails keep their own links).
pub async fn clear(tx: &mut dyn Transaction, queue_id: u64) -> StoreResult<()> {
    tx.clear(&scanned_key(queue_id))?;
    if let Some(prepared) = load(tx, queue_id).await? {
        tx.clear(&key(queue_id))?;
        blob::release(tx, &prepared.blob)?;
    }
    Ok(())
}

/// The prepared record of `entry` and the bytes of its blob: read back when an earlier attempt
/// prepared it, computed and stored otherwise.
pub async fn prepare(
    context: &DeliveryContext,
    dns_cache: &crate::dns::DnsCache,
    entry: &IncomingMessage,
) -> Result<(Prepared, Vec<u8>), DeliveryError> {
    let queue_id = entry.queue_id;
    let max = context.settings.max_message_bytes;
    let received_blob = entry.blob;
    // One read transaction in the common case: the record of an earlier attempt, the DATA
    // scan mark, and the bytes (the prepared blob when there is one, else the received one).
    let (existing, scanned_at_data, whole) = context
        .store
        .read(move |tx| {
            Box::pin(async move {
                let existing = load(tx, queue_id).await?;
                let scanned = tx.get(&scanned_key(queue_id)).await?.is_some();
                let blob = existing
                    .as_ref()
                    .map_or(received_blob, |record| record.blob);
                let whole = blob::read_whole_in(tx, &blob, max).await?;
                Ok((existing, scanned, whole))
            })
        })
        .await?;
    let read_bytes = |blob: BlobHash, whole: WholeBlob| async move {
        match whole {
            WholeBlob::Content(bytes) => Ok(bytes),
            // The streaming reader reports missing and oversized blobs in its own words.
            _ => context.blobs.read_held_to_vec(&blob, max).await,
        }
    };
    if let Some(prepared) = existing {
        let bytes = read_bytes(prepared.blob, whole).await?;
        return Ok((prepared, bytes));
    }
    let raw = read_bytes(received_blob, whole).await?;
    let hostname = context.settings.hostname.as_str();
    let auth = authenticate(&context.dns, dns_cache, hostname, entry, &raw).await;
    let message = mail_parser::MessageParser::default().parse(&raw[..]);
    let outcome = rules::evaluate(&raw, message.as_ref(), auth.summary);
    let fingerprint = Fingerprint::of(message.as_ref().and_then(|m| m.message_id()), &raw);
    drop(message);
    let (spamd_spam, spamd_score) = match &context.spamd {
        Some(client) if context.spam.enabled => match client.check(&raw).await {
            Ok(verdict) => (verdict.is_spam, Some(verdict.score)),
            Err(error) => {
                tracing::warn!(queue_id, %error, "spamd check failed; classifying without it");
                (false, None)
            }
        },
        _ => (false, None),
    };
    let virus = match &context.antivirus {
        // Scanned clean before the 250 already: once is enough.
        Some(_) if scanned_at_data => None,
        Some(antivirus) => match antivirus.scan(&raw).await {
            Verdict::Clean => None,
            Verdict::Infected(name) => Some(name),
            Verdict::Unavailable(reason) => {
                // Not scanned is not infected; the SMTP session may have scanned already.
                tracing::warn!(queue_id, %reason, "clamd unavailable; delivering unscanned");
                None
            }
        },
        None => None,
    };
    let mut bytes = Vec::with_capacity(raw.len() + 1024);
    bytes.extend_from_slice(auth.header.as_bytes());
    if !outcome.hits.is_empty() || spamd_score.is_some() {
        bytes.extend_from_slice(spam_trace(outcome.score, &outcome.hits, spamd_score).as_bytes());
    }
    bytes.extend_from_slice(received_fields(hostname, entry).as_bytes());
    bytes.extend_from_slice(&remove_forged_results(&raw, hostname));
    let prepared = Prepared {
        blob: BlobHash::of(&bytes),
        size: bytes.len() as u64,
        rules_score: outcome.score,
        rules: outcome.hits.iter().map(|hit| (*hit).to_owned()).collect(),
        spamd_spam,
        spamd_score,
        virus,
        fingerprint,
    };
    let record = Arc::new(prepared.clone());
    // What the committed attempt of the finish step found stored: another node may have
    // prepared the entry concurrently, and what is stored wins.
    let stored: Arc<Mutex<Option<Prepared>>> = Arc::default();
    let finish: blob::FinishStep = {
        let stored = Arc::clone(&stored);
        Arc::new(move |tx, _info| {
            let record = Arc::clone(&record);
            let stored = Arc::clone(&stored);
            Box::pin(async move {
                let kept = save_once(tx, queue_id, &record).await?;
                *stored.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(kept);
                Ok(())
            })
        })
    };
    let body = futures_util::stream::iter([Ok::<Bytes, std::convert::Infallible>(Bytes::from(
        bytes.clone(),
    ))]);
    context.blobs.put_with(body, u64::MAX, finish).await?;
    let stored = stored
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .take();
    match stored {
        Some(stored) if stored.blob == prepared.blob => Ok((prepared, bytes)),
        Some(stored) => {
            let bytes = context.blobs.read_held_to_vec(&stored.blob, max).await?;
            Ok((stored, bytes))
        }
        None => Err(DeliveryError::store(StoreError::io(
            "the prepared delivery was not saved",
        ))),
    }
}

/// `X-Tern-Spam:` — the message-wide part of the spam score, for the user and for debugging
/// (each recipient's own classifier adds to it).
fn spam_trace(score: f64, hits: &[&str], spamd_score: Option<f64>) -> String {
    let mut field = format!("X-Tern-Spam: score={score:.1}");
    if !hits.is_empty() {
        field.push_str(&format!("; rules={}", hits.join(",")));
    }
    if let Some(spamd) = spamd_score {
        field.push_str(&format!("; spamd={spamd:.1}"));
    }
    field.push_str("\r\n");
    field
}
