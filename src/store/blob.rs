//! The blob store: content-addressed (SHA-256), deduplicated, reference-counted, chunked, and
//! streamed in and out. Layout and lifecycle: `schema/blobs.md`.
//!
//! Invariants:
//! - content is stored in chunks of at most [`BLOB_CHUNK_BYTES`] under a random storage id;
//!   `BLOB_META[digest]` names the one storage id that holds a digest's content, so the same
//!   content is stored once however many accounts upload it;
//! - an upload streams: chunks are written in batches of [`CHUNKS_PER_WRITE`], each its own
//!   small transaction, so at most about one batch of the body is in memory; the last batch
//!   commits with the metadata and the upload reference, so an upload of up to one batch is
//!   one durable commit. A `BLOB_PENDING` entry, written with the first early batch, marks the
//!   storage id until the upload finishes, so the collector can delete the chunks of an
//!   upload that never finished;
//! - `BLOB_REFCOUNT[digest]` = links made by commits + live upload references. Only a blob whose
//!   count dropped to 0 is collected, by [`BlobStore::gc`];
//! - an account reads a blob only through a link (`ACCT_BLOB_LINK`) or an unexpired upload
//!   reference of its own; everything else answers `NotFound`, exactly as a missing blob does,
//!   so nothing tells one account what another stored.

mod format;
mod gc;
mod hash;
pub mod suite;
mod whole;

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::keys::{self, BLOB_GC_CANDIDATE, BLOB_META, BLOB_PENDING, BLOB_REFCOUNT};
use super::{KeyRange, RangeOptions, Store, StoreError, StoreErrorKind, Transaction};

pub use hash::BlobHash;
use whole::too_large;
pub use whole::{WholeBlob, read_whole_in};

/// The content bytes of every chunk of a new blob but the last (sized for the embedded
/// engine's pages, see `blob/format.rs`); blobs written before keep their own chunk size.
pub const BLOB_CHUNK_BYTES: usize = format::CHUNK_BYTES as usize;
/// How long an upload (or Blob/copy) keeps a blob alive for its account without a link.
/// RFC 8620 §6.1 asks for at least one hour.
pub const UPLOAD_REFERENCE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// After this long, the chunks of an upload that never finished are deleted.
pub const INTERRUPTED_UPLOAD_GRACE: Duration = Duration::from_secs(24 * 60 * 60);
/// Chunks per upload transaction: 2 MB, far under the 10 MB / 5 s transaction limits.
const CHUNKS_PER_WRITE: usize = 2_000_000 / BLOB_CHUNK_BYTES;
/// Content bytes per download read (one short read transaction each).
const BYTES_PER_READ: u64 = 1_000_000;
/// Entries handled per garbage-collection transaction.
const GC_BATCH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: BlobHash,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobErrorKind {
    /// No such blob, or not one this account may read (deliberately indistinguishable).
    NotFound,
    /// The upload exceeded its maximum size.
    TooLarge,
    /// The upload's body stream failed (client went away, read error).
    Aborted,
    /// The store failed; `store_kind` says whether a retry may help.
    Store,
}

#[derive(Debug, thiserror::Error)]
#[error("blob error ({kind:?}): {message}")]
pub struct BlobError {
    pub kind: BlobErrorKind,
    pub message: String,
    /// The store's error kind when `kind` is `Store`.
    pub store_kind: Option<StoreErrorKind>,
}

impl BlobError {
    fn new(kind: BlobErrorKind, message: impl Into<String>) -> BlobError {
        BlobError {
            kind,
            message: message.into(),
            store_kind: None,
        }
    }

    fn not_found() -> BlobError {
        BlobError::new(BlobErrorKind::NotFound, "blob not found")
    }
}

impl From<StoreError> for BlobError {
    fn from(error: StoreError) -> BlobError {
        BlobError {
            kind: BlobErrorKind::Store,
            message: error.message,
            store_kind: Some(error.kind),
        }
    }
}

/// Content bytes of a download, in order.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobError>> + Send>>;

/// A download: the blob's total size, the byte range actually served (clamped to the size),
/// and the content of that range, read lazily in chunk batches.
pub struct BlobDownload {
    pub size: u64,
    pub range: Range<u64>,
    pub stream: BlobStream,
}

/// What one garbage collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub expired_upload_references: u64,
    pub deleted_blobs: u64,
    pub interrupted_uploads: u64,
}

use format::BlobMeta;

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

/// The key of a digest's metadata (what [`link`] and [`link_held`] read).
pub fn meta_key(hash: &BlobHash) -> Vec<u8> {
    keys::blob_by_digest(BLOB_META, hash.as_bytes())
}

async fn read_meta(
    tx: &mut dyn Transaction,
    hash: &BlobHash,
) -> Result<Option<BlobMeta>, StoreError> {
    match tx.get(&meta_key(hash)).await? {
        Some(bytes) => BlobMeta::decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Whether `account_id` holds a link to, or an unexpired upload reference of, `hash`.
async fn may_read(
    tx: &mut dyn Transaction,
    account_id: u32,
    hash: &BlobHash,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let link_key = keys::account_blob_link(account_id, hash.as_bytes());
    if tx
        .get(&link_key)
        .await?
        .is_some_and(|count| keys::le_i64(&count) > 0)
    {
        return Ok(true);
    }
    let upload_key = keys::blob_upload_ref(hash.as_bytes(), account_id);
    let Some(uploaded_at) = tx.get(&upload_key).await? else {
        return Ok(false);
    };
    let uploaded_at = keys::be_u64(&uploaded_at).unwrap_or(0);
    Ok(uploaded_at + UPLOAD_REFERENCE_LIFETIME.as_secs() > unix_seconds(now))
}

/// Gives `account_id` a fresh temporary reference to `hash` (counted once per account).
async fn grant_upload_reference(
    tx: &mut dyn Transaction,
    account_id: u32,
    hash: &BlobHash,
    now: SystemTime,
) -> Result<(), StoreError> {
    let digest = hash.as_bytes();
    let reference_key = keys::blob_upload_ref(digest, account_id);
    match tx.get(&reference_key).await? {
        Some(previous) => {
            let previous_at = keys::be_u64(&previous).unwrap_or(0);
            let previous_expiry = previous_at + UPLOAD_REFERENCE_LIFETIME.as_secs();
            tx.clear(&keys::blob_upload_expiry(
                previous_expiry,
                digest,
                account_id,
            ))?;
        }
        None => tx.atomic_add(&keys::blob_by_digest(BLOB_REFCOUNT, digest), 1)?,
    }
    let uploaded_at = unix_seconds(now);
    tx.set(&reference_key, &uploaded_at.to_be_bytes())?;
    let expires_at = uploaded_at + UPLOAD_REFERENCE_LIFETIME.as_secs();
    tx.set(
        &keys::blob_upload_expiry(expires_at, digest, account_id),
        &[],
    )
}

/// Links `hash` to `account_id` inside a commit: the blob now lives as long as the link.
/// The account must already be able to read the blob (an upload or an earlier link).
pub async fn link(
    tx: &mut dyn Transaction,
    account_id: u32,
    hash: &BlobHash,
) -> Result<(), BlobError> {
    if !may_read(tx, account_id, hash, SystemTime::now()).await? {
        return Err(BlobError::not_found());
    }
    tx.atomic_add(&keys::account_blob_link(account_id, hash.as_bytes()), 1)?;
    tx.atomic_add(&keys::blob_by_digest(BLOB_REFCOUNT, hash.as_bytes()), 1)?;
    Ok(())
}

/// The step [`BlobStore::put_with`] runs inside the blob's last transaction (it may run more
/// than once: transactions retry, so it must only write through `tx`).
pub type FinishStep = std::sync::Arc<
    dyn for<'a> Fn(
            &'a mut dyn Transaction,
            BlobInfo,
        ) -> super::BoxFuture<'a, Result<(), StoreError>>
        + Send
        + Sync,
>;

/// Who keeps a newly stored blob alive.
#[derive(Clone)]
enum NewReference {
    /// An upload reference of this account.
    Upload(u32),
    /// Whatever the caller's step takes (a queue hold).
    Finish(FinishStep),
}

/// Holds one reference to `hash` for a durable queue entry (incoming SMTP, outbound), inside
/// the transaction that writes the entry: the collector never deletes a held blob. Pair every
/// `hold` with one [`release`] in the transaction that removes the entry.
pub async fn hold(tx: &mut dyn Transaction, hash: &BlobHash) -> Result<(), BlobError> {
    if read_meta(tx, hash).await?.is_none() {
        return Err(BlobError::not_found());
    }
    tx.atomic_add(&keys::blob_by_digest(BLOB_REFCOUNT, hash.as_bytes()), 1)?;
    Ok(())
}

/// Releases one [`hold`]; the collector deletes the blob once nothing references it.
pub fn release(tx: &mut dyn Transaction, hash: &BlobHash) -> Result<(), StoreError> {
    tx.atomic_add(&keys::blob_by_digest(BLOB_REFCOUNT, hash.as_bytes()), -1)?;
    tx.set(
        &keys::blob_by_digest(BLOB_GC_CANDIDATE, hash.as_bytes()),
        &[],
    )
}

/// Links a blob that the caller holds (a queue entry's [`hold`]) to `account_id` inside a
/// commit, without the readability check of [`link`]: the delivery of a queued message gives
/// each recipient account its own link to the one stored copy.
pub async fn link_held(
    tx: &mut dyn Transaction,
    account_id: u32,
    hash: &BlobHash,
) -> Result<(), BlobError> {
    if read_meta(tx, hash).await?.is_none() {
        return Err(BlobError::not_found());
    }
    tx.atomic_add(&keys::account_blob_link(account_id, hash.as_bytes()), 1)?;
    tx.atomic_add(&keys::blob_by_digest(BLOB_REFCOUNT, hash.as_bytes()), 1)?;
    Ok(())
}

/// Drops one link of `hash` from `account_id` inside a commit; the collector deletes the blob
/// once nothing references it.
pub async fn unlink(
    tx: &mut dyn Transaction,
    account_id: u32,
    hash: &BlobHash,
) -> Result<(), BlobError> {
    let link_key = keys::account_blob_link(account_id, hash.as_bytes());
    let count = tx
        .get(&link_key)
        .await?
        .map(|bytes| keys::le_i64(&bytes))
        .unwrap_or(0);
    if count <= 0 {
        return Err(BlobError::not_found());
    }
    if count == 1 {
        tx.clear(&link_key)?;
    } else {
        tx.set(&link_key, &(count - 1).to_le_bytes())?;
    }
    tx.atomic_add(&keys::blob_by_digest(BLOB_REFCOUNT, hash.as_bytes()), -1)?;
    tx.set(
        &keys::blob_by_digest(BLOB_GC_CANDIDATE, hash.as_bytes()),
        &[],
    )?;
    Ok(())
}

/// The blob store; cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    store: Store,
}

impl BlobStore {
    pub fn new(store: Store) -> BlobStore {
        BlobStore { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores the content of `body` for `account_id`, which gets an upload reference (see
    /// [`UPLOAD_REFERENCE_LIFETIME`]). Refuses with `TooLarge` as soon as the body passes
    /// `max_size` bytes. If the content already exists, the new chunks are deleted and the
    /// existing blob is referenced instead.
    pub async fn put_stream<S, E>(
        &self,
        account_id: u32,
        body: S,
        max_size: u64,
    ) -> Result<BlobInfo, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        self.put_stream_referenced(body, max_size, NewReference::Upload(account_id))
            .await
    }

    /// Stores `body` like [`put_stream`](Self::put_stream) but gives no account an upload
    /// reference: `finish` runs inside the blob's last transaction and must take the
    /// reference that keeps it alive ([`hold`] for a durable queue entry, as
    /// `smtp::incoming::enqueue` does). The blob and whatever `finish` writes commit together.
    pub async fn put_with<S, E>(
        &self,
        body: S,
        max_size: u64,
        finish: FinishStep,
    ) -> Result<BlobInfo, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        self.put_stream_referenced(body, max_size, NewReference::Finish(finish))
            .await
    }

    async fn put_stream_referenced<S, E>(
        &self,
        body: S,
        max_size: u64,
        reference: NewReference,
    ) -> Result<BlobInfo, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let storage_id: u64 = rand::random();
        let written = self.write_chunks(storage_id, body, max_size).await;
        let upload = match written {
            Ok(upload) => upload,
            Err(error) => {
                if let Err(cleanup) = self.discard_upload(storage_id).await {
                    // The collector deletes them after the grace period.
                    tracing::warn!(%cleanup, storage_id, "could not discard a failed upload");
                }
                return Err(error);
            }
        };
        let WrittenUpload {
            hash,
            size,
            tail,
            tail_first_index,
        } = upload;
        // A blob that fits in one batch (most uploads) costs this one transaction: its
        // chunks, its metadata and the upload reference commit together, so there is nothing
        // to clean up if it fails and only one durable commit to wait for.
        let tail = std::sync::Arc::new(tail);
        let dedup = self
            .store
            .transact(|tx| {
                let tail = std::sync::Arc::clone(&tail);
                let reference = reference.clone();
                Box::pin(async move {
                    let meta_key = keys::blob_by_digest(BLOB_META, hash.as_bytes());
                    let deduplicated = match read_meta(tx, &hash).await? {
                        Some(existing) => {
                            debug_assert_eq!(existing.size, size, "equal digests, equal sizes");
                            if tail_first_index > 0 {
                                tx.clear_range(&KeyRange::prefix(&keys::blob_chunk_prefix(
                                    storage_id,
                                )))?;
                            }
                            true
                        }
                        None => {
                            for (offset, chunk) in (0u32..).zip(tail.iter()) {
                                tx.set(
                                    &keys::blob_chunk(storage_id, tail_first_index + offset),
                                    chunk,
                                )?;
                            }
                            tx.set(&meta_key, &BlobMeta::new(storage_id, size).encode())?;
                            false
                        }
                    };
                    if tail_first_index > 0 {
                        tx.clear(&keys::blob_pending(storage_id))?;
                    }
                    match reference {
                        NewReference::Upload(account_id) => {
                            grant_upload_reference(tx, account_id, &hash, SystemTime::now())
                                .await?;
                        }
                        NewReference::Finish(finish) => {
                            finish(tx, BlobInfo { id: hash, size }).await?;
                        }
                    }
                    Ok(deduplicated)
                })
            })
            .await?;
        tracing::debug!(blob = %hash, size, dedup, "blob stored");
        Ok(BlobInfo { id: hash, size })
    }

    /// Stores `content` (already in memory) as [`put_stream`](Self::put_stream) does.
    pub async fn put(&self, account_id: u32, content: Bytes) -> Result<BlobInfo, BlobError> {
        let body = futures_util::stream::iter([Ok::<Bytes, std::convert::Infallible>(content)]);
        self.put_stream(account_id, body, u64::MAX).await
    }

    /// Writes the body's chunks under `storage_id` in full batches and returns the last,
    /// partial batch unwritten, for the finishing transaction. The first batch written also
    /// marks the upload pending, so the collector finds the chunks of an interrupted upload.
    async fn write_chunks<S, E>(
        &self,
        storage_id: u64,
        body: S,
        max_size: u64,
    ) -> Result<WrittenUpload, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut body = std::pin::pin!(body);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut next_index: u32 = 0;
        let mut open_chunk: Vec<u8> = Vec::with_capacity(BLOB_CHUNK_BYTES);
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(CHUNKS_PER_WRITE);
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|error| {
                BlobError::new(
                    BlobErrorKind::Aborted,
                    format!("upload body failed: {error}"),
                )
            })?;
            size += piece.len() as u64;
            if size > max_size {
                return Err(BlobError::new(
                    BlobErrorKind::TooLarge,
                    format!("the blob exceeds the {max_size}-byte limit"),
                ));
            }
            hasher.update(&piece);
            let mut rest: &[u8] = &piece;
            while !rest.is_empty() {
                let take = rest.len().min(BLOB_CHUNK_BYTES - open_chunk.len());
                open_chunk.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if open_chunk.len() < BLOB_CHUNK_BYTES {
                    continue;
                }
                batch.push(format::encode_chunk(&open_chunk));
                open_chunk.clear();
                // Hold one batch back until more data proves it is not the last one.
                if batch.len() > CHUNKS_PER_WRITE {
                    let last = batch.pop().unwrap_or_default();
                    next_index = self
                        .store_chunk_batch(storage_id, next_index, std::mem::take(&mut batch))
                        .await?;
                    batch.push(last);
                }
            }
        }
        if !open_chunk.is_empty() {
            batch.push(format::encode_chunk(&open_chunk));
        }
        Ok(WrittenUpload {
            hash: BlobHash(hasher.finalize().into()),
            size,
            tail: batch,
            tail_first_index: next_index,
        })
    }

    /// Writes `batch` as chunks `first_index..`; returns the next chunk index. The first batch
    /// of an upload also writes its pending marker.
    async fn store_chunk_batch(
        &self,
        storage_id: u64,
        first_index: u32,
        batch: Vec<Vec<u8>>,
    ) -> Result<u32, BlobError> {
        let count = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        let started = unix_seconds(SystemTime::now());
        // Shared by every attempt of the transaction without copying the content.
        let batch = std::sync::Arc::new(batch);
        self.store
            .transact(|tx| {
                let batch = std::sync::Arc::clone(&batch);
                Box::pin(async move {
                    if first_index == 0 {
                        tx.set(&keys::blob_pending(storage_id), &started.to_be_bytes())?;
                    }
                    for (offset, chunk) in (0u32..).zip(batch.iter()) {
                        tx.set(&keys::blob_chunk(storage_id, first_index + offset), chunk)?;
                    }
                    Ok(())
                })
            })
            .await?;
        first_index
            .checked_add(count)
            .ok_or_else(|| BlobError::new(BlobErrorKind::TooLarge, "the blob has too many chunks"))
    }

    async fn discard_upload(&self, storage_id: u64) -> Result<(), StoreError> {
        self.store
            .transact(|tx| {
                Box::pin(async move {
                    tx.clear_range(&KeyRange::prefix(&keys::blob_chunk_prefix(storage_id)))?;
                    tx.clear(&keys::blob_pending(storage_id))
                })
            })
            .await
    }

    /// The blob's size, if `account_id` may read it.
    pub async fn info(&self, account_id: u32, hash: &BlobHash) -> Result<BlobInfo, BlobError> {
        let meta = self.readable_meta(account_id, hash).await?;
        Ok(BlobInfo {
            id: *hash,
            size: meta.size,
        })
    }

    async fn readable_meta(&self, account_id: u32, hash: &BlobHash) -> Result<BlobMeta, BlobError> {
        let hash = *hash;
        let meta = self
            .store
            .read(move |tx| {
                Box::pin(async move {
                    if !may_read(tx, account_id, &hash, SystemTime::now()).await? {
                        return Ok(None);
                    }
                    read_meta(tx, &hash).await
                })
            })
            .await?;
        meta.ok_or_else(BlobError::not_found)
    }

    /// Streams `byte_range` of the blob (clamped to its size; `0..u64::MAX` for all of it),
    /// if `account_id` may read it.
    pub async fn get(
        &self,
        account_id: u32,
        hash: &BlobHash,
        byte_range: Range<u64>,
    ) -> Result<BlobDownload, BlobError> {
        let meta = self.readable_meta(account_id, hash).await?;
        let end = byte_range.end.min(meta.size);
        let start = byte_range.start.min(end);
        let chunk_bytes = u64::from(meta.chunk_bytes);
        let reader = ChunkReader {
            store: self.store.clone(),
            meta,
            start,
            end,
            next_chunk: start / chunk_bytes,
            end_chunk: end.div_ceil(chunk_bytes),
            ready: VecDeque::new(),
        };
        let stream = futures_util::stream::unfold(reader, |mut reader| async move {
            match reader.next_piece().await {
                Ok(Some(piece)) => Some((Ok(piece), reader)),
                Ok(None) => None,
                Err(error) => {
                    // End the stream after reporting the error.
                    reader.next_chunk = reader.end_chunk;
                    reader.ready.clear();
                    Some((Err(error), reader))
                }
            }
        });
        Ok(BlobDownload {
            size: meta.size,
            range: start..end,
            stream: Box::pin(stream),
        })
    }

    /// The whole blob in memory, for content the caller must parse anyway; refuses blobs over
    /// `max_size` with `TooLarge`.
    pub async fn read_to_vec(
        &self,
        account_id: u32,
        hash: &BlobHash,
        max_size: u64,
    ) -> Result<Vec<u8>, BlobError> {
        // Most blobs fit one read batch: access check, metadata and chunks in one transaction.
        let key = *hash;
        let whole = self
            .store
            .read(move |tx| {
                Box::pin(async move {
                    if !may_read(tx, account_id, &key, SystemTime::now()).await? {
                        return Ok(WholeBlob::Missing);
                    }
                    read_whole_in(tx, &key, max_size).await
                })
            })
            .await?;
        if let Some(content) = whole.settled(max_size)? {
            return Ok(content);
        }
        let download = self.get(account_id, hash, 0..u64::MAX).await?;
        if download.size > max_size {
            return Err(too_large(max_size));
        }
        let mut content = Vec::with_capacity(usize::try_from(download.size).unwrap_or(0));
        let mut stream = download.stream;
        while let Some(piece) = stream.next().await {
            content.extend_from_slice(&piece?);
        }
        Ok(content)
    }

    /// The whole blob without an account check, for the actors that consume a durable queue
    /// whose entry holds it ([`hold`]): SMTP delivery, outbound. Refuses blobs over `max_size`.
    pub async fn read_held_to_vec(
        &self,
        hash: &BlobHash,
        max_size: u64,
    ) -> Result<Vec<u8>, BlobError> {
        let key = *hash;
        let whole = self
            .store
            .read(move |tx| Box::pin(async move { read_whole_in(tx, &key, max_size).await }))
            .await?;
        if let Some(content) = whole.settled(max_size)? {
            return Ok(content);
        }
        let meta = self
            .store
            .read(move |tx| Box::pin(async move { read_meta(tx, &key).await }))
            .await?
            .ok_or_else(BlobError::not_found)?;
        if meta.size > max_size {
            return Err(too_large(max_size));
        }
        let size = meta.size;
        let chunk_bytes = u64::from(meta.chunk_bytes).max(1);
        let mut reader = ChunkReader {
            store: self.store.clone(),
            meta,
            start: 0,
            end: size,
            next_chunk: 0,
            end_chunk: size.div_ceil(chunk_bytes),
            ready: VecDeque::new(),
        };
        let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        while let Some(piece) = reader.next_piece().await? {
            content.extend_from_slice(&piece);
        }
        Ok(content)
    }

    /// Blob/copy (RFC 8620 §6.3): gives `to_account` an upload reference to a blob that
    /// `from_account` may read.
    pub async fn copy(
        &self,
        from_account: u32,
        to_account: u32,
        hash: &BlobHash,
    ) -> Result<BlobInfo, BlobError> {
        let hash = *hash;
        let size = self
            .store
            .transact(|tx| {
                Box::pin(async move {
                    if !may_read(tx, from_account, &hash, SystemTime::now()).await? {
                        return Ok(None);
                    }
                    let Some(meta) = read_meta(tx, &hash).await? else {
                        return Ok(None);
                    };
                    grant_upload_reference(tx, to_account, &hash, SystemTime::now()).await?;
                    Ok(Some(meta.size))
                })
            })
            .await?
            .ok_or_else(BlobError::not_found)?;
        Ok(BlobInfo { id: hash, size })
    }
}

/// What [`BlobStore::write_chunks`] leaves for the finishing transaction.
struct WrittenUpload {
    hash: BlobHash,
    size: u64,
    /// The last batch of chunks, not yet written.
    tail: Vec<Vec<u8>>,
    /// The chunk index of `tail[0]`; 0 when nothing was written yet (no pending marker).
    tail_first_index: u32,
}

/// Reads a download's chunks a batch at a time, each batch in its own short transaction.
struct ChunkReader {
    store: Store,
    meta: BlobMeta,
    start: u64,
    end: u64,
    next_chunk: u64,
    end_chunk: u64,
    ready: VecDeque<Bytes>,
}

impl ChunkReader {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, BlobError> {
        if self.ready.is_empty() && self.next_chunk < self.end_chunk {
            self.read_batch().await?;
        }
        Ok(self.ready.pop_front())
    }

    async fn read_batch(&mut self) -> Result<(), BlobError> {
        let first = self.next_chunk;
        let chunks_per_read = (BYTES_PER_READ / u64::from(self.meta.chunk_bytes)).max(1);
        let stop = self.end_chunk.min(first + chunks_per_read);
        let storage_id = self.meta.storage_id;
        let chunk_index = |index: u64| {
            u32::try_from(index).map_err(|_| StoreError::corrupt("blob chunk index overflow"))
        };
        let range = KeyRange {
            begin: keys::blob_chunk(storage_id, chunk_index(first)?),
            end: keys::blob_chunk(storage_id, chunk_index(stop)?),
        };
        let chunks = self
            .store
            .read(move |tx| {
                Box::pin(async move { tx.get_range(&range, RangeOptions::default()).await })
            })
            .await?;
        if chunks.len() as u64 != stop - first {
            return Err(BlobError::from(StoreError::corrupt(format!(
                "blob chunks {first}..{stop} of storage {storage_id} are missing"
            ))));
        }
        let chunk_bytes = u64::from(self.meta.chunk_bytes);
        for (index, (_, stored)) in (first..stop).zip(chunks) {
            let chunk = self.meta.decode_chunk(index, stored)?;
            let chunk_start = index * chunk_bytes;
            let from = self
                .start
                .saturating_sub(chunk_start)
                .min(chunk.len() as u64);
            let to = (self.end - chunk_start).min(chunk.len() as u64);
            let piece = chunk.slice(from as usize..to as usize);
            if !piece.is_empty() {
                self.ready.push_back(piece);
            }
        }
        self.next_chunk = stop;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
