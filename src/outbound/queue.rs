//! The durable outbound queue: one entry per message to send, with the state of each of its
//! recipients, and a schedule index keyed by the time of the next attempt. Layout:
//! `schema/outbound.md`.
//!
//! Invariants:
//! - an entry holds exactly one blob reference (`blob::hold` in the enqueue transaction,
//!   `blob::release` in the transaction that removes it), so the collector never deletes a
//!   message that is still queued;
//! - an entry that is not held in the error queue has exactly one schedule key, at
//!   `scheduled_at`; finding what is due is one range read of the schedule up to now, whatever
//!   the queue holds, and the earliest key is the actor's next wake-up;
//! - a claimed entry (an attempt in progress) is scheduled at its claim's expiry, so an
//!   attempt that dies with its process is retried once the claim lapses;
//! - a recipient's delivered state is written as soon as the peer accepted it, before any other
//!   bookkeeping, and a delivered recipient is never sent again.

use serde::{Deserialize, Serialize};

use super::clock::UnixMillis;
use crate::store::blob::{self, BlobErrorKind, BlobHash};
use crate::store::keys::{
    KeyBuilder, QUEUE_OUTBOUND_HELD, QUEUE_OUTBOUND_MESSAGE, QUEUE_OUTBOUND_SCHEDULE,
    QUEUE_OUTBOUND_VERSION, SUBSPACE_QUEUE, be_u64,
};
use crate::store::{
    KeyRange, RangeOptions, StoreError, StoreErrorKind, StoreResult, Transaction, chunked,
};

/// Why a message or a recipient is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageKind {
    /// An EmailSubmission (JMAP).
    Submission,
    /// A delivery status notification this server generated.
    Bounce,
    /// A VacationResponse auto-reply.
    VacationReply,
    /// Mail relayed for an authenticated client of the submission listener.
    Relay,
    /// A read receipt (RFC 8098, JMAP MDN/send).
    Mdn,
}

impl MessageKind {
    /// Messages with a null reverse-path (RFC 3464 §2, RFC 3834 §3.1.5) never bounce.
    pub fn may_bounce(self) -> bool {
        matches!(self, MessageKind::Submission | MessageKind::Relay)
    }

    /// What a user sends on purpose counts against the account's sending rate (a read
    /// receipt too: its recipient is whoever asked for one, so it is mail the user sends).
    pub fn is_rate_limited(self) -> bool {
        matches!(
            self,
            MessageKind::Submission | MessageKind::Relay | MessageKind::Mdn
        )
    }
}

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecipientState {
    /// Not delivered yet; attempted at `next_attempt_at`.
    Pending,
    /// The receiving server (or the local delivery queue) took it.
    Delivered,
    /// A permanent failure or the lifetime ran out; a bounce was (or will not be) sent.
    Failed,
}

/// RFC 3461 §4.1 NOTIFY. The default (no NOTIFY) is failure and delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Default for Notify {
    fn default() -> Notify {
        Notify {
            success: false,
            failure: true,
            delay: true,
        }
    }
}

impl Notify {
    /// NOTIFY=NEVER.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };
}

/// RFC 3461 §4.3 RET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DsnReturn {
    Full,
    Headers,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundRecipient {
    pub address: String,
    pub state: RecipientState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When to try next (meaningful while `Pending`); 0 means "at `send_at`".
    pub next_attempt_at: UnixMillis,
    /// The last reply, e.g. `250 2.0.0 Ok: queued as 1234` or `451 4.3.0 try later`.
    pub last_reply: Option<String>,
    #[serde(default)]
    pub notify: Notify,
    /// RFC 3461 §4.2 ORCPT (`rfc822;addr`), echoed in DSNs.
    #[serde(default)]
    pub orcpt: Option<String>,
    /// The failure of this recipient was reported to the sender (a bounce is sent once).
    #[serde(default)]
    pub reported: bool,
}

impl OutboundRecipient {
    /// A fresh pending recipient with the default NOTIFY.
    pub fn new(address: impl Into<String>) -> OutboundRecipient {
        OutboundRecipient {
            address: address.into(),
            state: RecipientState::Pending,
            attempts: 0,
            next_attempt_at: 0,
            last_reply: None,
            notify: Notify::default(),
            orcpt: None,
            reported: false,
        }
    }

    /// The domain part, lower-cased (empty for a malformed address).
    pub fn domain(&self) -> String {
        address_domain(&self.address)
    }
}

/// The domain of `local@domain`, lower-cased.
pub fn address_domain(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, domain)| domain.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default()
}

/// An attempt in progress: who runs it and until when the claim holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub owner: u64,
    pub until: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundMessage {
    /// Assigned by [`enqueue`] (whatever the caller put here is ignored).
    pub id: u64,
    /// The sending account (the one whose Inbox gets bounces).
    pub account_id: u32,
    pub submission_id: Option<u64>,
    #[serde(with = "blob_hex")]
    pub blob: BlobHash,
    pub size: u64,
    /// The envelope reverse-path; "" is the null reverse-path.
    pub mail_from: String,
    pub recipients: Vec<OutboundRecipient>,
    /// Not before this time (EmailSubmission sendAt / FUTURERELEASE).
    pub send_at: UnixMillis,
    /// Set by [`enqueue`] when 0.
    pub created_at: UnixMillis,
    /// RFC 3461 ENVID.
    #[serde(default)]
    pub env_id: Option<String>,
    #[serde(default)]
    pub ret: Option<DsnReturn>,
    pub kind: MessageKind,
    /// In the error queue, with the reason.
    #[serde(default)]
    pub held: Option<String>,
    #[serde(default)]
    pub claim: Option<Claim>,
    /// A delay notice was sent (at most one per message).
    #[serde(default)]
    pub delay_notified: bool,
    /// The time of this entry's schedule key (maintained here; `None` when held or finished).
    #[serde(default)]
    pub scheduled_at: Option<UnixMillis>,
}

impl OutboundMessage {
    /// A new Submission-kind message for `recipients`, due at `send_at`.
    pub fn new(
        account_id: u32,
        blob: BlobHash,
        size: u64,
        mail_from: impl Into<String>,
        recipients: impl IntoIterator<Item = String>,
        send_at: UnixMillis,
    ) -> OutboundMessage {
        OutboundMessage {
            id: 0,
            account_id,
            submission_id: None,
            blob,
            size,
            mail_from: mail_from.into(),
            recipients: recipients.into_iter().map(OutboundRecipient::new).collect(),
            send_at,
            created_at: 0,
            env_id: None,
            ret: None,
            kind: MessageKind::Submission,
            held: None,
            claim: None,
            delay_notified: false,
            scheduled_at: None,
        }
    }

    /// When the next attempt is due: the earliest pending recipient, never before `send_at`.
    /// `None` when no recipient is pending.
    pub fn next_due(&self) -> Option<UnixMillis> {
        self.recipients
            .iter()
            .filter(|recipient| recipient.state == RecipientState::Pending)
            .map(|recipient| recipient.next_attempt_at.max(self.send_at))
            .min()
    }

    /// Whether the worker `owner` still holds this entry's claim (lapsed or not: a lapsed
    /// claim nobody took over is still its own). An attempt whose claim was taken over is
    /// deposed: its late answers are discarded, so they never overwrite what the new
    /// claimer records.
    pub fn claimed_by(&self, owner: u64) -> bool {
        self.claim.is_some_and(|claim| claim.owner == owner)
    }

    /// Whether every recipient reached a final state.
    pub fn is_finished(&self) -> bool {
        self.next_due().is_none()
    }

    /// Whether any attempt was made (delivery started).
    pub fn delivery_started(&self) -> bool {
        self.recipients
            .iter()
            .any(|recipient| recipient.attempts > 0 || recipient.state != RecipientState::Pending)
    }
}

mod blob_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::store::blob::BlobHash;

    pub fn serialize<S: Serializer>(hash: &BlobHash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hash.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BlobHash, D::Error> {
        let text = String::deserialize(deserializer)?;
        BlobHash::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not a blob hash"))
    }
}

/// Why [`enqueue`] refused a message.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("the message has no recipient")]
    NoRecipients,
    #[error("the message blob does not exist")]
    BlobNotFound,
    #[error("invalid address {0:?}")]
    InvalidAddress(String),
    #[error("the account sends too fast: retry in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<blob::BlobError> for EnqueueError {
    fn from(error: blob::BlobError) -> EnqueueError {
        match (error.kind, error.store_kind) {
            (BlobErrorKind::NotFound, _) => EnqueueError::BlobNotFound,
            (_, Some(kind)) => EnqueueError::Store(StoreError::new(kind, error.message)),
            _ => EnqueueError::Store(StoreError::io(error.message)),
        }
    }
}

pub fn message_key(id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_MESSAGE)
        .u64(id)
        .build()
}

fn schedule_prefix() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_SCHEDULE)
        .build()
}

fn schedule_key(at: UnixMillis, id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_SCHEDULE)
        .u64(u64::try_from(at).unwrap_or(0))
        .u64(id)
        .build()
}

fn held_key(id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_HELD)
        .u64(id)
        .build()
}

/// The key the actor watches: bumped by every enqueue and retry.
pub fn version_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_VERSION)
        .build()
}

/// A plausible SMTP address: `local@domain` with no spaces or angle brackets (the SMTP layer
/// writes it between `<` and `>`, so these would break the command).
pub fn is_valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && domain.contains(|c: char| c.is_ascii_alphanumeric())
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// A time-ordered id unique in practice: milliseconds in the high bits, random low bits;
/// [`enqueue`] checks the key is free.
fn new_id(now: UnixMillis) -> u64 {
    (u64::try_from(now).unwrap_or(0) << 16) | u64::from(rand::random::<u16>())
}

/// Puts `message` on the queue inside the caller's transaction (an EmailSubmission's
/// `commit_account`, the delivery actor's vacation reply, the submission listener's relay) and
/// returns its id. Holds one reference to the blob, which must exist. `created_at` is "now"
/// (the system time when 0); every recipient's `next_attempt_at` defaults to `send_at`.
pub async fn enqueue(
    tx: &mut dyn Transaction,
    message: &OutboundMessage,
) -> Result<u64, EnqueueError> {
    let now = if message.created_at != 0 {
        message.created_at
    } else {
        super::clock::system_now()
    };
    if message.recipients.is_empty() {
        return Err(EnqueueError::NoRecipients);
    }
    for address in message
        .recipients
        .iter()
        .map(|recipient| recipient.address.as_str())
        .chain((!message.mail_from.is_empty()).then_some(message.mail_from.as_str()))
    {
        if !is_valid_address(address) {
            return Err(EnqueueError::InvalidAddress(address.to_owned()));
        }
    }
    if message.kind.is_rate_limited() {
        let recipients = message.recipients.len() as u64;
        if let Err(retry_after_seconds) =
            super::rate::take(tx, message.account_id, recipients, now).await?
        {
            return Err(EnqueueError::RateLimited {
                retry_after_seconds,
            });
        }
    }
    blob::hold(tx, &message.blob).await?;
    let mut id = new_id(now);
    while tx
        .get(&chunked::chunk_key(&message_key(id), 0))
        .await?
        .is_some()
    {
        id = new_id(now);
    }
    let mut entry = message.clone();
    entry.id = id;
    entry.held = None;
    entry.claim = None;
    entry.scheduled_at = None;
    entry.created_at = now;
    for recipient in &mut entry.recipients {
        recipient.state = RecipientState::Pending;
        recipient.attempts = 0;
        if recipient.next_attempt_at == 0 {
            recipient.next_attempt_at = entry.send_at.max(now);
        }
    }
    save(tx, &mut entry)?;
    tx.atomic_add(&version_key(), 1)?;
    tracing::debug!(
        queue_id = id,
        account_id = entry.account_id,
        recipients = entry.recipients.len(),
        "outbound: enqueued"
    );
    Ok(id)
}

/// The entry with `id`, if queued.
pub async fn load(tx: &mut dyn Transaction, id: u64) -> StoreResult<Option<OutboundMessage>> {
    match chunked::read(tx, &message_key(id)).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::corrupt(format!("outbound entry {id}: {error}"))),
    }
}

/// Writes `message` and moves its schedule key to where its state says: the claim's expiry
/// while claimed, nowhere while held, else the next due recipient. A finished message must go
/// through [`finish`] instead.
pub fn save(tx: &mut dyn Transaction, message: &mut OutboundMessage) -> StoreResult<()> {
    let wanted = if message.held.is_some() {
        None
    } else if let Some(claim) = message.claim {
        Some(claim.until)
    } else {
        message.next_due()
    };
    if message.scheduled_at != wanted {
        if let Some(previous) = message.scheduled_at {
            tx.clear(&schedule_key(previous, message.id))?;
        }
        if let Some(at) = wanted {
            tx.set(&schedule_key(at, message.id), &[])?;
        }
        message.scheduled_at = wanted;
    }
    if message.held.is_some() {
        tx.set(&held_key(message.id), &[])?;
    } else {
        tx.clear(&held_key(message.id))?;
    }
    let bytes = serde_json::to_vec(message)
        .map_err(|error| StoreError::io(format!("encoding outbound entry: {error}")))?;
    chunked::write(tx, &message_key(message.id), &bytes)
}

/// Removes a message from the queue and releases its blob reference.
pub fn finish(tx: &mut dyn Transaction, message: &OutboundMessage) -> StoreResult<()> {
    if let Some(at) = message.scheduled_at {
        tx.clear(&schedule_key(at, message.id))?;
    }
    tx.clear(&held_key(message.id))?;
    chunked::clear(tx, &message_key(message.id))?;
    blob::release(tx, &message.blob)
}

/// Cancels a message that has not started delivery (EmailSubmission undoStatus `canceled`,
/// `tern queue cancel`). `false` when it is unknown, claimed by an attempt, or any recipient
/// was already tried. Inside the caller's transaction, so the cancel and the caller's own
/// update commit together.
pub async fn cancel(tx: &mut dyn Transaction, id: u64) -> StoreResult<bool> {
    let Some(message) = load(tx, id).await? else {
        return Ok(false);
    };
    if message.claim.is_some() || message.delivery_started() {
        return Ok(false);
    }
    finish(tx, &message)?;
    tracing::info!(queue_id = id, "outbound: canceled");
    Ok(true)
}

/// Removes a message whatever its state (the admin's `tern queue cancel` of a held or retrying
/// message). Returns the removed entry.
pub async fn remove(tx: &mut dyn Transaction, id: u64) -> StoreResult<Option<OutboundMessage>> {
    let Some(message) = load(tx, id).await? else {
        return Ok(None);
    };
    finish(tx, &message)?;
    Ok(Some(message))
}

/// Moves a message to the error queue with `reason` (no schedule key until retried).
pub async fn hold(tx: &mut dyn Transaction, id: u64, reason: &str) -> StoreResult<bool> {
    let Some(mut message) = load(tx, id).await? else {
        return Ok(false);
    };
    message.held = Some(reason.to_owned());
    message.claim = None;
    save(tx, &mut message)?;
    Ok(true)
}

/// The error an attempt ends with once another worker took its message over.
pub fn claim_lost(id: u64) -> StoreError {
    StoreError::new(
        StoreErrorKind::NotOwner,
        format!("outbound message {id} was claimed by another worker"),
    )
}

/// Makes every pending recipient due at `now` and takes the message out of the error queue.
pub async fn retry_now(tx: &mut dyn Transaction, id: u64, now: UnixMillis) -> StoreResult<bool> {
    let Some(mut message) = load(tx, id).await? else {
        return Ok(false);
    };
    message.held = None;
    message.claim = None;
    message.send_at = message.send_at.min(now);
    for recipient in &mut message.recipients {
        if recipient.state == RecipientState::Pending {
            recipient.next_attempt_at = now;
        }
    }
    save(tx, &mut message)?;
    tx.atomic_add(&version_key(), 1)?;
    Ok(true)
}

/// Up to `limit` `(due_at, id)` pairs due at or before `now`, earliest first: one range read
/// of the schedule index, however many messages wait for later.
pub async fn due(
    tx: &mut dyn Transaction,
    now: UnixMillis,
    limit: usize,
) -> StoreResult<Vec<(UnixMillis, u64)>> {
    let range = KeyRange {
        begin: schedule_prefix(),
        end: schedule_key(now.saturating_add(1), 0),
    };
    let pairs = tx
        .get_range(
            &range,
            RangeOptions {
                limit,
                reverse: false,
            },
        )
        .await?;
    pairs
        .iter()
        .map(|(key, _)| decode_schedule_key(key))
        .collect()
}

/// The earliest scheduled time, if anything is scheduled.
pub async fn next_wakeup(tx: &mut dyn Transaction) -> StoreResult<Option<UnixMillis>> {
    let pairs = tx
        .get_range(
            &KeyRange::prefix(&schedule_prefix()),
            RangeOptions {
                limit: 1,
                reverse: false,
            },
        )
        .await?;
    match pairs.first() {
        None => Ok(None),
        Some((key, _)) => decode_schedule_key(key).map(|(at, _)| Some(at)),
    }
}

fn decode_schedule_key(key: &[u8]) -> StoreResult<(UnixMillis, u64)> {
    let prefix = schedule_prefix().len();
    let at = key.get(prefix..).and_then(be_u64);
    let id = key.get(prefix + 8..).and_then(be_u64);
    match (at, id) {
        (Some(at), Some(id)) => Ok((i64::try_from(at).unwrap_or(i64::MAX), id)),
        _ => Err(StoreError::corrupt("malformed outbound schedule key")),
    }
}

/// Claims the message of schedule key `(at, id)` for an attempt by `owner` until `until`, if
/// it is due at `now` and not claimed by a live attempt. Returns the claimed entry. A schedule
/// key that no longer matches its entry (left by a crash between versions) is removed.
pub async fn claim(
    tx: &mut dyn Transaction,
    at: UnixMillis,
    id: u64,
    owner: u64,
    now: UnixMillis,
    until: UnixMillis,
) -> StoreResult<Option<OutboundMessage>> {
    claim_for(tx, at, id, owner, now, until, &|_| true).await
}

/// [`claim`], for a worker that takes only messages of the accounts `mine` accepts (on a
/// cluster, the accounts its node owns: their commits are fenced by the account's owner).
pub async fn claim_for(
    tx: &mut dyn Transaction,
    at: UnixMillis,
    id: u64,
    owner: u64,
    now: UnixMillis,
    until: UnixMillis,
    mine: &(dyn Fn(u32) -> bool + Sync),
) -> StoreResult<Option<OutboundMessage>> {
    let Some(mut message) = load(tx, id).await? else {
        tx.clear(&schedule_key(at, id))?;
        return Ok(None);
    };
    if message.scheduled_at != Some(at) {
        tx.clear(&schedule_key(at, id))?;
        return Ok(None);
    }
    if message.held.is_some() || at > now {
        return Ok(None);
    }
    if message.claim.is_some_and(|claim| claim.until > now) || !mine(message.account_id) {
        return Ok(None);
    }
    message.claim = Some(Claim { owner, until });
    save(tx, &mut message)?;
    Ok(Some(message))
}

/// Drops every claim not owned by `owner`: on the embedded store only one process runs, so a
/// claim of an earlier process is an attempt that died with it (crash recovery at start-up).
pub async fn release_stale_claims(
    tx: &mut dyn Transaction,
    owner: u64,
    limit: usize,
) -> StoreResult<usize> {
    let ids = list_ids(tx, 0, limit).await?;
    let mut released = 0;
    for id in ids {
        let Some(mut message) = load(tx, id).await? else {
            continue;
        };
        if message.claim.is_some_and(|claim| claim.owner != owner) {
            message.claim = None;
            save(tx, &mut message)?;
            released += 1;
        }
    }
    Ok(released)
}

/// Up to `limit` queued ids after `after`, in id (creation) order (admin listing).
pub async fn list_ids(tx: &mut dyn Transaction, after: u64, limit: usize) -> StoreResult<Vec<u64>> {
    let prefix = KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_MESSAGE)
        .build();
    let begin = if after == 0 {
        prefix.clone()
    } else {
        message_key(after.saturating_add(1))
    };
    let range = KeyRange {
        begin,
        end: crate::store::keys::prefix_end(&prefix),
    };
    let mut ids = Vec::new();
    let mut cursor = range;
    loop {
        let pairs = tx
            .get_range(
                &cursor,
                RangeOptions {
                    limit: 256,
                    reverse: false,
                },
            )
            .await?;
        let Some((last, _)) = pairs.last() else {
            break;
        };
        let last = last.clone();
        for (key, _) in &pairs {
            let id = key.get(prefix.len()..).and_then(be_u64);
            let chunk = key.get(prefix.len() + 8..);
            if let (Some(id), Some([0, 0, 0, 0])) = (id, chunk) {
                ids.push(id);
                if limit > 0 && ids.len() >= limit {
                    return Ok(ids);
                }
            }
        }
        if pairs.len() < 256 {
            break;
        }
        cursor.begin = crate::store::keys::prefix_end(&last);
    }
    Ok(ids)
}

/// Up to `limit` queued entries (admin listing), held ones included.
pub async fn list(tx: &mut dyn Transaction, limit: usize) -> StoreResult<Vec<OutboundMessage>> {
    let mut entries = Vec::new();
    for id in list_ids(tx, 0, limit).await? {
        if let Some(entry) = load(tx, id).await? {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// The ids in the error queue.
pub async fn held_ids(tx: &mut dyn Transaction, limit: usize) -> StoreResult<Vec<u64>> {
    let prefix = KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_HELD)
        .build();
    let pairs = tx
        .get_range(
            &KeyRange::prefix(&prefix),
            RangeOptions {
                limit,
                reverse: false,
            },
        )
        .await?;
    Ok(pairs
        .iter()
        .filter_map(|(key, _)| key.get(prefix.len()..).and_then(be_u64))
        .collect())
}
