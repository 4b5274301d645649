//! The durable incoming queue: every message the SMTP listeners accept (and every local
//! message the outbound side hands over) waits here until the delivery actor has delivered it
//! to each recipient. Layout: `schema/smtp.md`.
//!
//! Invariants:
//! - an entry is written in the same transaction as the hold on its raw-message blob
//!   ([`enqueue`] calls `blob::hold`), and removed with the release of that hold ([`finish`]),
//!   so the blob collector never deletes a queued message and never leaks a delivered one;
//! - the SMTP `250` is sent only after the enqueue transaction committed (RFC 5321 §6.1: once
//!   accepted, the server is responsible for the message), so a crash loses nothing
//!   acknowledged;
//! - every enqueue bumps [`version_key`], so the consumer can sleep on [`watch`] instead of
//!   polling;
//! - a recipient's `delivered` flag is set ([`mark_recipient_delivered`]) inside the same
//!   transaction as its delivery, so a replay after a crash never delivers twice.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::store::blob::{self, BlobError, BlobErrorKind, BlobHash};
use crate::store::keys::{
    KeyBuilder, QUEUE_SMTP_INCOMING, QUEUE_SMTP_INCOMING_VERSION, SUBSPACE_QUEUE,
};
use crate::store::{
    BoxFuture, KeyRange, RangeOptions, Store, StoreError, StoreErrorKind, StoreResult, Transaction,
    chunked,
};

/// The value format byte in front of the JSON of an entry.
const ENTRY_FORMAT: u8 = 0x01;

/// DSN `RET` (RFC 3461 §4.3): how much of the message a failure report returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DsnRet {
    Full,
    Headers,
}

/// The `BODY` parameter of MAIL FROM (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    #[default]
    #[serde(rename = "7bit")]
    SevenBit,
    #[serde(rename = "8bitmime")]
    EightBitMime,
    #[serde(rename = "binarymime")]
    BinaryMime,
}

/// DSN `NOTIFY` of one recipient (RFC 3461 §4.1). `never` excludes the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsnNotify {
    #[serde(default, skip_serializing_if = "is_false")]
    pub success: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub failure: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub delay: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub never: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// One accepted recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingRecipient {
    /// The address as the client gave it in RCPT TO (case kept; domains are matched
    /// case-insensitively).
    pub address: String,
    /// The local account the address resolved to at RCPT time.
    pub account_id: u32,
    #[serde(default)]
    pub delivered: bool,
    /// DSN NOTIFY; `None` when the client gave none (RFC 3461 §4.1: then failures and delays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<DsnNotify>,
    /// DSN ORCPT as `addr-type;address` with the xtext decoded (`rfc822;user@example.org`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
}

/// A message accepted for local delivery, with its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingMessage {
    /// The entry's id: unique, and roughly in acceptance order (milliseconds first).
    pub queue_id: u64,
    /// The raw message exactly as received (no `Received:` added yet).
    #[serde(with = "blob_hash_hex")]
    pub blob: BlobHash,
    pub size: u64,
    /// The reverse-path; `""` is the null reverse-path `<>` (bounces).
    pub mail_from: String,
    pub recipients: Vec<IncomingRecipient>,
    /// The SMTP client's address; `None` for a message handed over locally (no SMTP hop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    /// The EHLO/HELO argument (empty for a local hand-over).
    #[serde(default)]
    pub helo: String,
    /// Whether the SMTP session was encrypted (STARTTLS or implicit TLS).
    #[serde(default)]
    pub tls: bool,
    /// The account login of an authenticated submission session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_as: Option<String>,
    /// Unix seconds at acceptance.
    pub received_at: i64,
    /// DSN ENVID (RFC 3461 §4.4), as given (xtext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<DsnRet>,
    #[serde(default)]
    pub body_type: BodyType,
    /// MAIL FROM had SMTPUTF8 (RFC 6531).
    #[serde(default)]
    pub smtputf8: bool,
    /// Delivery attempts that ended in a temporary failure (kept by the delivery actor).
    #[serde(default)]
    pub attempts: u32,
    /// Unix seconds before which the delivery actor leaves the entry alone (0: at once).
    #[serde(default)]
    pub not_before: i64,
}

impl IncomingMessage {
    /// A message the server generated for one local account (a bounce, a quota warning): the
    /// null reverse-path (RFC 3464 §2, RFC 5321 §4.5.5: nothing answers it), no SMTP hop.
    pub fn generated(
        queue_id: u64,
        blob: BlobHash,
        size: u64,
        address: String,
        account_id: u32,
        received_at: i64,
    ) -> IncomingMessage {
        IncomingMessage {
            queue_id,
            blob,
            size,
            mail_from: String::new(),
            recipients: vec![IncomingRecipient {
                address,
                account_id,
                delivered: false,
                notify: None,
                orcpt: None,
            }],
            client_ip: None,
            helo: String::new(),
            tls: false,
            authenticated_as: None,
            received_at,
            env_id: None,
            ret: None,
            body_type: Default::default(),
            smtputf8: false,
            attempts: 0,
            not_before: 0,
        }
    }

    /// Recipients not delivered yet, with their index (for [`mark_recipient_delivered`]).
    pub fn pending_recipients(&self) -> impl Iterator<Item = (usize, &IncomingRecipient)> {
        self.recipients
            .iter()
            .enumerate()
            .filter(|(_, recipient)| !recipient.delivered)
    }
}

mod blob_hash_hex {
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

/// `QUEUE, QUEUE_SMTP_INCOMING` — the prefix of every entry.
fn section() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SMTP_INCOMING)
        .build()
}

/// The (chunked) key of entry `queue_id`.
pub fn entry_key(queue_id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SMTP_INCOMING)
        .u64(queue_id)
        .build()
}

/// The counter every enqueue bumps; watch it to learn of new entries.
pub fn version_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SMTP_INCOMING_VERSION)
        .build()
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh queue id: milliseconds since the epoch in the top 42 bits (so ids sort in
/// acceptance order), then 22 bits of a per-process counter that starts at a random value
/// (so two nodes accepting in the same millisecond do not collide in practice).
pub fn new_queue_id() -> u64 {
    static COUNTER: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    let counter = COUNTER.get_or_init(|| AtomicU64::new(rand::random::<u64>()));
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let sequence = counter.fetch_add(1, Ordering::Relaxed) & ((1 << 22) - 1);
    (millis << 22) | sequence
}

fn encode(message: &IncomingMessage) -> StoreResult<Vec<u8>> {
    let mut bytes = vec![ENTRY_FORMAT];
    serde_json::to_writer(&mut bytes, message).map_err(StoreError::io)?;
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> StoreResult<IncomingMessage> {
    match bytes.split_first() {
        Some((&ENTRY_FORMAT, json)) => serde_json::from_slice(json)
            .map_err(|error| StoreError::corrupt(format!("incoming queue entry: {error}"))),
        _ => Err(StoreError::corrupt(
            "incoming queue entry has an unknown format",
        )),
    }
}

fn blob_store_error(error: BlobError) -> StoreError {
    match error.store_kind {
        Some(kind) => StoreError::new(kind, error.message),
        None if error.kind == BlobErrorKind::NotFound => StoreError::new(
            StoreErrorKind::Corrupt,
            "the queued message's blob does not exist",
        ),
        None => StoreError::io(error.message),
    }
}

/// Queues `message` inside the caller's transaction and holds one reference to its blob
/// (which must exist: stored earlier, or in this same transaction by `BlobStore::put_with`).
/// Refuses an id already in use, so a retried closure never overwrites another message.
pub async fn enqueue(tx: &mut dyn Transaction, message: &IncomingMessage) -> StoreResult<()> {
    let key = entry_key(message.queue_id);
    if chunked::read(tx, &key).await?.is_some() {
        // Not `Conflict`: that would make the transaction loop retry the same id.
        return Err(StoreError::io(format!(
            "incoming queue id {} is taken",
            message.queue_id
        )));
    }
    blob::hold(tx, &message.blob)
        .await
        .map_err(blob_store_error)?;
    chunked::write(tx, &key, &encode(message)?)?;
    tx.atomic_add(&version_key(), 1)
}

/// Reads entry `queue_id` inside the caller's transaction (the delivery actor re-reads it in
/// each delivery commit, so a concurrent or replayed delivery sees the `delivered` flags).
pub async fn load(tx: &mut dyn Transaction, queue_id: u64) -> StoreResult<Option<IncomingMessage>> {
    match chunked::read(tx, &entry_key(queue_id)).await? {
        Some(bytes) => decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Rewrites an entry read with [`load`] (attempts, `not_before`), in the caller's transaction.
pub fn update(tx: &mut dyn Transaction, message: &IncomingMessage) -> StoreResult<()> {
    chunked::write(tx, &entry_key(message.queue_id), &encode(message)?)
}

/// Sets the `delivered` flag of recipient `index` inside the transaction that delivered to
/// it. Returns `false` (and writes nothing) if the entry is gone or the flag was already set:
/// the caller must then not deliver.
pub async fn mark_recipient_delivered(
    tx: &mut dyn Transaction,
    queue_id: u64,
    index: usize,
) -> StoreResult<bool> {
    let Some(mut message) = load(tx, queue_id).await? else {
        return Ok(false);
    };
    let Some(recipient) = message.recipients.get_mut(index) else {
        return Err(StoreError::corrupt(format!(
            "incoming queue entry {queue_id} has no recipient {index}"
        )));
    };
    if recipient.delivered {
        return Ok(false);
    }
    recipient.delivered = true;
    update(tx, &message)?;
    Ok(true)
}

/// Removes entry `queue_id` and releases its blob hold. Returns `false` if it was already gone
/// (a replay), in which case nothing is released twice.
pub async fn finish(tx: &mut dyn Transaction, queue_id: u64) -> StoreResult<bool> {
    let Some(message) = load(tx, queue_id).await? else {
        return Ok(false);
    };
    chunked::clear(tx, &entry_key(queue_id))?;
    blob::release(tx, &message.blob)?;
    Ok(true)
}

/// Up to `limit` entries in queue-id order (oldest first), whether due or not (see
/// `not_before`). Entries are rarely more than one chunk; a multi-chunk entry cut by the page
/// end is read whole on its own.
pub async fn load_pending(store: &Store, limit: usize) -> StoreResult<Vec<IncomingMessage>> {
    load_pending_after(store, None, limit).await
}

/// [`load_pending`] starting after `after` (for paging through a long queue).
pub async fn load_pending_after(
    store: &Store,
    after: Option<u64>,
    limit: usize,
) -> StoreResult<Vec<IncomingMessage>> {
    let section = section();
    let range = KeyRange {
        begin: match after {
            Some(queue_id) => crate::store::keys::prefix_end(&entry_key(queue_id)),
            None => section.clone(),
        },
        end: crate::store::keys::prefix_end(&section),
    };
    let limit = limit.max(1);
    store
        .read(move |tx| {
            let range = range.clone();
            let prefix_length = section.len();
            Box::pin(async move {
                let options = RangeOptions {
                    limit: limit + 1,
                    reverse: false,
                };
                let pairs = tx.get_range(&range, options).await?;
                let mut messages = Vec::new();
                let mut index = 0;
                while index < pairs.len() && messages.len() < limit {
                    let queue_id = queue_id_of(&pairs[index].0, prefix_length)?;
                    let mut end = index + 1;
                    while end < pairs.len()
                        && queue_id_of(&pairs[end].0, prefix_length)? == queue_id
                    {
                        end += 1;
                    }
                    let single = end - index == 1
                        && pairs[index].0.len() == prefix_length + 12
                        && pairs[index].0[prefix_length + 8..] == [0, 0, 0, 0]
                        && (end < pairs.len() || pairs.len() <= limit);
                    let message = if single {
                        decode(&pairs[index].1)?
                    } else {
                        match load(tx, queue_id).await? {
                            Some(message) => message,
                            None => break,
                        }
                    };
                    messages.push(message);
                    index = end;
                }
                Ok(messages)
            })
        })
        .await
}

fn queue_id_of(key: &[u8], prefix_length: usize) -> StoreResult<u64> {
    key.get(prefix_length..prefix_length + 8)
        .and_then(crate::store::keys::be_u64)
        .ok_or_else(|| StoreError::corrupt("incoming queue key without a queue id"))
}

/// The number of entries (for tests, the CLI and metrics; reads the whole section).
pub async fn count(store: &Store) -> StoreResult<usize> {
    let mut total = 0;
    let mut after = None;
    loop {
        let page = load_pending_after(store, after, 512).await?;
        total += page.len();
        match page.last() {
            Some(last) if page.len() == 512 => after = Some(last.queue_id),
            _ => return Ok(total),
        }
    }
}

/// Resolves after the next enqueue commits. Arm it BEFORE reading the queue, so an enqueue
/// between the read and the wait is never missed.
pub fn watch(store: &Store) -> BoxFuture<'static, StoreResult<()>> {
    store.watch(&version_key())
}

/// Backend-suite tests of the queue (registered in `store::testsuite`).
pub mod suite {
    use bytes::Bytes;

    use super::*;
    use crate::store::blob::BlobStore;
    use crate::store::testsuite::{SuiteTest, suite_test};

    pub fn tests() -> Vec<SuiteTest> {
        vec![
            suite_test!(queued_messages_hold_their_blob_until_finished),
            suite_test!(recipients_are_delivered_once_and_replays_are_harmless),
            suite_test!(enqueue_wakes_the_watch_and_big_entries_round_trip),
        ]
    }

    fn sample(blob: BlobHash, size: u64, recipients: usize) -> IncomingMessage {
        IncomingMessage {
            queue_id: new_queue_id(),
            blob,
            size,
            mail_from: "sender@remote.test".to_owned(),
            recipients: (0..recipients)
                .map(|index| IncomingRecipient {
                    address: format!("user{index}@local.test"),
                    account_id: 7,
                    delivered: false,
                    notify: Some(DsnNotify {
                        failure: true,
                        ..DsnNotify::default()
                    }),
                    orcpt: Some(format!("rfc822;user{index}@local.test")),
                })
                .collect(),
            client_ip: Some(IpAddr::from([192, 0, 2, 1])),
            helo: "client.remote.test".to_owned(),
            tls: false,
            authenticated_as: None,
            received_at: unix_now(),
            env_id: Some("env-1".to_owned()),
            ret: Some(DsnRet::Headers),
            body_type: BodyType::EightBitMime,
            smtputf8: false,
            attempts: 0,
            not_before: 0,
        }
    }

    /// Stores `content` and queues `message` for it in ONE transaction, as the listener does.
    pub(crate) async fn store_and_enqueue(
        store: &Store,
        content: Vec<u8>,
        recipients: usize,
    ) -> IncomingMessage {
        let blobs = BlobStore::new(store.clone());
        let size = content.len() as u64;
        let message = sample(BlobHash::of(&content), size, recipients);
        let queued = std::sync::Arc::new(message.clone());
        let finish: blob::FinishStep = std::sync::Arc::new(move |tx, _info| {
            let queued = std::sync::Arc::clone(&queued);
            Box::pin(async move { enqueue(tx, &queued).await })
        });
        let body = futures_util::stream::iter([Ok::<Bytes, std::convert::Infallible>(
            Bytes::from(content),
        )]);
        blobs
            .put_with(body, u64::MAX, finish)
            .await
            .expect("put_with");
        message
    }

    async fn in_tx<T: Send + 'static>(
        store: &Store,
        body: impl Fn(&mut dyn Transaction) -> BoxFuture<'_, StoreResult<T>> + Send + Sync,
    ) -> T {
        store.transact(|tx| body(tx)).await.expect("transaction")
    }

    async fn blob_exists(store: &Store, hash: BlobHash) -> bool {
        let key =
            crate::store::keys::blob_by_digest(crate::store::keys::BLOB_META, hash.as_bytes());
        store
            .read(move |tx| {
                let key = key.clone();
                Box::pin(async move { Ok(tx.get(&key).await?.is_some()) })
            })
            .await
            .expect("read")
    }

    pub async fn queued_messages_hold_their_blob_until_finished(store: &Store) {
        let content: Vec<u8> = (0..5000).map(|_| rand::random::<u8>()).collect();
        let message = store_and_enqueue(store, content.clone(), 2).await;
        let blobs = BlobStore::new(store.clone());
        // The collector must not take a queued message, whatever the clock says.
        let far_future = SystemTime::now() + std::time::Duration::from_secs(10 * 24 * 3600);
        blobs.gc_as_of(far_future).await.expect("gc");
        assert!(
            blob_exists(store, message.blob).await,
            "queued blob collected"
        );
        let queue_id = message.queue_id;
        let loaded = in_tx(store, move |tx| Box::pin(load(tx, queue_id))).await;
        assert_eq!(loaded.as_ref(), Some(&message));
        let pending = load_pending(store, 100_000).await.expect("load_pending");
        assert!(pending.iter().any(|entry| entry == &message));
        // Finishing releases the hold: the next collection deletes the blob, once.
        assert!(in_tx(store, move |tx| Box::pin(finish(tx, queue_id))).await);
        assert!(!in_tx(store, move |tx| Box::pin(finish(tx, queue_id))).await);
        blobs.gc().await.expect("gc");
        assert!(
            !blob_exists(store, message.blob).await,
            "finished blob kept"
        );
        let after = in_tx(store, move |tx| Box::pin(load(tx, queue_id))).await;
        assert_eq!(after, None);
    }

    pub async fn recipients_are_delivered_once_and_replays_are_harmless(store: &Store) {
        let content: Vec<u8> = (0..300).map(|_| rand::random::<u8>()).collect();
        let message = store_and_enqueue(store, content, 3).await;
        let queue_id = message.queue_id;
        let first = in_tx(store, move |tx| {
            Box::pin(mark_recipient_delivered(tx, queue_id, 1))
        })
        .await;
        let replay = in_tx(store, move |tx| {
            Box::pin(mark_recipient_delivered(tx, queue_id, 1))
        })
        .await;
        assert!(first && !replay);
        let out_of_range = store
            .transact(move |tx| Box::pin(mark_recipient_delivered(tx, queue_id, 3)))
            .await;
        assert_eq!(
            out_of_range.map_err(|error| error.kind).err(),
            Some(StoreErrorKind::Corrupt)
        );
        let loaded = in_tx(store, move |tx| Box::pin(load(tx, queue_id)))
            .await
            .expect("entry");
        let pending: Vec<usize> = loaded
            .pending_recipients()
            .map(|(index, _)| index)
            .collect();
        assert_eq!(pending, vec![0, 2]);
        // Enqueueing the same id twice is refused and holds nothing more.
        let again = loaded.clone();
        let duplicate = store
            .transact(move |tx| {
                let again = again.clone();
                Box::pin(async move { enqueue(tx, &again).await })
            })
            .await;
        assert_eq!(
            duplicate.err().map(|error| error.kind),
            Some(StoreErrorKind::Io)
        );
        assert!(in_tx(store, move |tx| Box::pin(finish(tx, queue_id))).await);
        assert!(
            !in_tx(store, move |tx| Box::pin(mark_recipient_delivered(
                tx, queue_id, 0
            )))
            .await
        );
        BlobStore::new(store.clone()).gc().await.expect("gc");
        assert!(!blob_exists(store, message.blob).await);
    }

    pub async fn enqueue_wakes_the_watch_and_big_entries_round_trip(store: &Store) {
        let woken = watch(store);
        let content: Vec<u8> = (0..100).map(|_| rand::random::<u8>()).collect();
        // 400 recipients with ORCPTs: more than one 100 KB chunk of entry.
        let mut message = store_and_enqueue(store, content, 1).await;
        tokio::time::timeout(std::time::Duration::from_secs(10), woken)
            .await
            .expect("the watch fires after an enqueue")
            .expect("watch");
        let template = message.recipients[0].clone();
        message.recipients = (0..400)
            .map(|index| IncomingRecipient {
                orcpt: Some(format!("rfc822;{}{index}@local.test", "x".repeat(300))),
                ..template.clone()
            })
            .collect();
        let big = std::sync::Arc::new(message.clone());
        let first_id = message.queue_id;
        in_tx(store, move |tx| {
            let big = std::sync::Arc::clone(&big);
            Box::pin(async move { update(tx, &big) })
        })
        .await;
        // A second, small entry after it: paging must return both, whole.
        let second = store_and_enqueue(store, b"second".to_vec(), 1).await;
        let mut found = Vec::new();
        let mut after = Some(first_id - 1);
        loop {
            let page = load_pending_after(store, after, 1).await.expect("page");
            let Some(last) = page.last() else { break };
            after = Some(last.queue_id);
            found.extend(page);
            if after >= Some(second.queue_id) {
                break;
            }
        }
        assert_eq!(found.first(), Some(&message));
        assert!(found.iter().any(|entry| entry == &second));
        for queue_id in [first_id, second.queue_id] {
            assert!(in_tx(store, move |tx| Box::pin(finish(tx, queue_id))).await);
        }
    }
}
