//! The embedded backend (the default): FoundationDB's transaction semantics on redb, a
//! pure-Rust copy-on-write B-tree with durable commits. See `schema/storage-engine.md` for why
//! redb rather than fjall.
//!
//! How FoundationDB's model maps onto one redb file:
//! - a transaction reads a redb read snapshot taken at `begin` and buffers its writes in a
//!   [`WriteBuffer`], which its own reads consult first (read-your-writes);
//! - it records the key ranges it read; at commit the [`committer`] thread compares them with
//!   the writes of every commit newer than the snapshot and fails the commit with
//!   `Conflict` when they overlap (optimistic, serializable, as FoundationDB's resolvers do);
//! - the committer applies all queued commits in one redb write transaction with one fsync
//!   (group commit) and answers each only after that fsync, so an acknowledged commit survives
//!   `kill -9`. The tokio runtime never waits on an fsync: it awaits a oneshot reply;
//! - FoundationDB's limits (key, value, transaction size, 5 s age) are enforced here too, so
//!   code that works on the embedded store works on a cluster.
//!
//! redb locks its file: a data directory in use by another process fails to open with
//! `StoreErrorKind::Locked`.

mod committer;
mod write_buffer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{
    AccessGuard, Database, DatabaseError, ReadOnlyTable, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageError, TableDefinition,
};
use tokio::sync::oneshot;

use self::committer::{CommitRequest, CommitShared, CommitterMessage, run_committer};
use self::write_buffer::{BufferedLookup, PendingWrite, WriteBuffer, add_to_value, key_after};
/// Limit checks shared with the FoundationDB backend, which reports them the same way.
#[cfg_attr(not(feature = "foundationdb"), allow(unused_imports))]
pub(crate) use self::write_buffer::{check_value, check_writable_key};
use super::keys::{FORMAT_VERSION, META_FORMAT_VERSION, UPGRADABLE_FORMAT_VERSIONS};
use super::{
    Backend, BoxFuture, KeyRange, KeyValue, MAX_TRANSACTION_AGE, MAX_TRANSACTION_BYTES,
    RangeOptions, StoreError, StoreErrorKind, StoreResult, Transaction,
};

/// The single redb table holding the whole ordered key space.
const KV_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// redb's page cache. redb's own default (1 GiB) lets the server's memory grow with every
/// page written until it holds far more than a small machine should give it (measured: 675 MB
/// RSS after 500 MB of uploads; 103 MB with 64 MiB, 53 MB with 16 MiB); 32 MiB keeps the hot
/// pages of many accounts while the OS page cache holds the rest of the file.
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// The store file inside the data directory.
pub const STORE_FILE_NAME: &str = "tern.redb";

fn storage_error(error: impl Into<redb::Error>) -> StoreError {
    let error: redb::Error = error.into();
    match error {
        redb::Error::DatabaseClosed => closed_error(),
        redb::Error::Corrupted(message) => StoreError::corrupt(format!("store file: {message}")),
        other => StoreError::io(format!("store file: {other}")),
    }
}

fn closed_error() -> StoreError {
    StoreError::new(StoreErrorKind::Io, "the store is closed")
}

fn too_old_error() -> StoreError {
    StoreError::new(
        StoreErrorKind::TransactionTooOld,
        format!(
            "transaction is older than {} s",
            MAX_TRANSACTION_AGE.as_secs()
        ),
    )
}

/// The redb-backed store. Cheap to share behind the [`super::Store`]'s `Arc`.
pub struct EmbeddedBackend {
    path: PathBuf,
    /// `None` once closed.
    database: RwLock<Option<Arc<Database>>>,
    /// `None` once closed. Transactions hold clones to send their commit.
    committer_sender: Mutex<Option<Sender<CommitterMessage>>>,
    committer_thread: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<CommitShared>,
}

impl std::fmt::Debug for EmbeddedBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EmbeddedBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBackend {
    /// Opens (creating if needed) the store in `dir` with the default page cache. Blocks on
    /// file I/O and one fsync: call it at start-up or from `spawn_blocking`.
    pub fn open(dir: &Path) -> StoreResult<EmbeddedBackend> {
        EmbeddedBackend::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`open`](Self::open) with a page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> StoreResult<EmbeddedBackend> {
        std::fs::create_dir_all(dir).map_err(|error| {
            StoreError::io(format!(
                "cannot create data directory {}: {error}",
                dir.display()
            ))
        })?;
        let path = dir.join(STORE_FILE_NAME);
        let database = match Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
        {
            Ok(database) => database,
            Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                return Err(StoreError::new(
                    StoreErrorKind::Locked,
                    format!(
                        "data directory {} is in use by another process (it holds the lock on \
                         {STORE_FILE_NAME}); stop that process or choose another data directory",
                        dir.display()
                    ),
                ));
            }
            Err(error) => return Err(storage_error(error)),
        };
        check_or_write_format_version(&database)?;
        let database = Arc::new(database);
        let shared = Arc::new(CommitShared::default());
        let (sender, receiver) = channel();
        let thread_database = Arc::clone(&database);
        let thread_shared = Arc::clone(&shared);
        let committer_thread = std::thread::Builder::new()
            .name("tern-store-commit".into())
            .spawn(move || run_committer(thread_database, thread_shared, receiver))
            .map_err(|error| {
                StoreError::io(format!("cannot start the store committer: {error}"))
            })?;
        tracing::info!(path = %path.display(), format_version = FORMAT_VERSION, "embedded store opened");
        Ok(EmbeddedBackend {
            path,
            database: RwLock::new(Some(database)),
            committer_sender: Mutex::new(Some(sender)),
            committer_thread: Mutex::new(Some(committer_thread)),
            shared,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Stamps a new store with [`FORMAT_VERSION`] and refuses one written by a format this build
/// does not know (schema/keys.md, "Format version and migrations").
fn check_or_write_format_version(database: &Database) -> StoreResult<()> {
    let write = database.begin_write().map_err(storage_error)?;
    {
        let mut table = write.open_table(KV_TABLE).map_err(storage_error)?;
        let stored = table
            .get(META_FORMAT_VERSION)
            .map_err(storage_error)?
            .map(|guard| guard.value().to_vec());
        match stored {
            None => {
                if !table.is_empty().map_err(storage_error)? {
                    return Err(StoreError::corrupt(
                        "the store holds data but no format version key",
                    ));
                }
                table
                    .insert(META_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes().as_slice())
                    .map_err(storage_error)?;
            }
            Some(bytes) => {
                let version = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::corrupt("the format version key is malformed"))?;
                if UPGRADABLE_FORMAT_VERSIONS.contains(&version) {
                    tracing::info!(from = version, to = FORMAT_VERSION, "store format upgraded");
                    table
                        .insert(META_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes().as_slice())
                        .map_err(storage_error)?;
                } else if version != FORMAT_VERSION {
                    return Err(StoreError::corrupt(format!(
                        "the store has format version {version}, this build reads only version \
                         {FORMAT_VERSION}; use a matching tern release or migrate the data"
                    )));
                }
            }
        }
    }
    write.commit().map_err(storage_error)
}

/// Compacting at close pays off only past these: more than this share of the file unused…
const COMPACT_FREE_SHARE: f64 = 0.15;
/// …and at least this many bytes.
const COMPACT_MIN_FREE_BYTES: u64 = 16 * 1024 * 1024;

/// Shrinks the file at close when much of it is unused. redb writes copy-on-write: pages
/// freed by commits are reused, but a bulk load leaves the file larger than what it holds
/// (measured: 170 MB of file for 127 MB of allocated pages after importing 20,000 messages).
/// `Database::compact` moves pages down and truncates; it runs here, with no transaction
/// left, rather than while serving. Failure only costs disk space, so it is logged, not
/// returned.
fn compact_if_sparse(database: &mut Database, path: &Path) {
    let Ok(file_bytes) = std::fs::metadata(path).map(|metadata| metadata.len()) else {
        return;
    };
    let allocated_bytes = match database.begin_write().and_then(|write| {
        let stats = write.stats();
        write.abort()?;
        Ok(stats?)
    }) {
        Ok(stats) => stats.allocated_pages() * stats.page_size() as u64,
        Err(error) => {
            tracing::warn!(%error, "store: cannot measure the file before compaction");
            return;
        }
    };
    let unused = file_bytes.saturating_sub(allocated_bytes);
    if unused < COMPACT_MIN_FREE_BYTES || (unused as f64) < COMPACT_FREE_SHARE * file_bytes as f64 {
        return;
    }
    let started = Instant::now();
    match database.compact() {
        Ok(_) => tracing::info!(
            file_bytes,
            compacted_bytes = std::fs::metadata(path)
                .map(|metadata| metadata.len())
                .unwrap_or(0),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store compacted at close"
        ),
        Err(error) => tracing::warn!(%error, "store compaction failed; the file stays as it was"),
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn mutex_lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Backend for EmbeddedBackend {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        Box::pin(async move {
            let database = read_lock(&self.database).clone().ok_or_else(closed_error)?;
            let sender = mutex_lock(&self.committer_sender)
                .clone()
                .ok_or_else(closed_error)?;
            // Version first, snapshot second: the snapshot then holds every commit up to
            // `read_version` (see committer.rs).
            let read_version = self.shared.committed_version.load(Ordering::Acquire);
            let snapshot = database.begin_read().map_err(storage_error)?;
            let table = snapshot.open_table(KV_TABLE).map_err(storage_error)?;
            let transaction: Box<dyn Transaction> = Box::new(EmbeddedTransaction {
                table,
                buffer: WriteBuffer::default(),
                read_ranges: Vec::new(),
                read_version,
                started: Instant::now(),
                committer: sender,
            });
            Ok(transaction)
        })
    }

    fn watch(&self, key: &[u8]) -> BoxFuture<'static, StoreResult<()>> {
        if read_lock(&self.database).is_none() {
            return Box::pin(async { Err(closed_error()) });
        }
        let fired = self.shared.watches.register(key);
        Box::pin(async move { fired.await.map_err(|_| closed_error()) })
    }

    fn close(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let Some(database) = write_lock(&self.database).take() else {
                return Ok(());
            };
            if let Some(sender) = mutex_lock(&self.committer_sender).take() {
                // Commits queued before this finish; the committer then drops its database.
                let _ = sender.send(CommitterMessage::Shutdown);
            }
            let thread = mutex_lock(&self.committer_thread).take();
            let path = self.path.clone();
            let closing = tokio::task::spawn_blocking(move || {
                if let Some(thread) = thread
                    && thread.join().is_err()
                {
                    tracing::error!("store committer panicked");
                }
                match Arc::try_unwrap(database) {
                    Ok(mut database) => {
                        compact_if_sparse(&mut database, &path);
                        database.close().map_err(storage_error)
                    }
                    // A `begin` racing with close still holds it; its drop closes the file.
                    Err(_) => Ok(()),
                }
            })
            .await
            .map_err(|error| StoreError::io(format!("closing the store: {error}")))?;
            self.shared.watches.close_all();
            tracing::info!(path = %self.path.display(), "embedded store closed");
            closing
        })
    }
}

type SnapshotEntry = Result<
    (
        AccessGuard<'static, &'static [u8]>,
        AccessGuard<'static, &'static [u8]>,
    ),
    StorageError,
>;

struct EmbeddedTransaction {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
    buffer: WriteBuffer,
    /// Half-open ranges this transaction read from the snapshot.
    read_ranges: Vec<(Vec<u8>, Vec<u8>)>,
    read_version: u64,
    started: Instant,
    committer: Sender<CommitterMessage>,
}

impl EmbeddedTransaction {
    fn check_age(&self) -> StoreResult<()> {
        if self.started.elapsed() > MAX_TRANSACTION_AGE {
            return Err(too_old_error());
        }
        Ok(())
    }

    fn snapshot_get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .table
            .get(key)
            .map_err(storage_error)?
            .map(|guard| guard.value().to_vec()))
    }

    fn get_now(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.check_age()?;
        let value = match self.buffer.lookup(key) {
            BufferedLookup::Known(value) => return Ok(value),
            BufferedLookup::AddTo(delta) => {
                let base = self.snapshot_get(key)?;
                Some(add_to_value(base.as_deref(), delta))
            }
            BufferedLookup::Untouched => self.snapshot_get(key)?,
        };
        self.read_ranges.push((key.to_vec(), key_after(key)));
        Ok(value)
    }

    /// [`get_now`](Self::get_now) without recording the read for conflict checks.
    fn get_unconflicted_now(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.check_age()?;
        match self.buffer.lookup(key) {
            BufferedLookup::Known(value) => Ok(value),
            BufferedLookup::AddTo(delta) => {
                let base = self.snapshot_get(key)?;
                Ok(Some(add_to_value(base.as_deref(), delta)))
            }
            BufferedLookup::Untouched => self.snapshot_get(key),
        }
    }

    /// Merges the snapshot's pairs in `range` with this transaction's buffered writes.
    fn get_range_now(
        &mut self,
        range: &KeyRange,
        options: RangeOptions,
    ) -> StoreResult<Vec<KeyValue>> {
        self.check_age()?;
        if range.begin >= range.end {
            return Ok(Vec::new());
        }
        let limit = if options.limit == 0 {
            usize::MAX
        } else {
            options.limit
        };
        let reverse = options.reverse;
        let snapshot_range = self
            .table
            .range::<&[u8]>(range.begin.as_slice()..range.end.as_slice())
            .map_err(storage_error)?;
        let mut snapshot: Box<dyn Iterator<Item = SnapshotEntry>> = if reverse {
            Box::new(snapshot_range.rev())
        } else {
            Box::new(snapshot_range)
        };
        let buffer = &self.buffer;
        let mut buffered: Box<dyn Iterator<Item = (&Vec<u8>, &PendingWrite)>> = if reverse {
            Box::new(buffer.writes_in(range).rev())
        } else {
            Box::new(buffer.writes_in(range))
        };
        // The next snapshot pair this transaction has not cleared.
        let mut next_snapshot = || -> StoreResult<Option<KeyValue>> {
            for entry in snapshot.by_ref() {
                let (key, value) = entry.map_err(storage_error)?;
                if !buffer.is_cleared(key.value()) {
                    return Ok(Some((key.value().to_vec(), value.value().to_vec())));
                }
            }
            Ok(None)
        };
        let resolve = |write: &PendingWrite, base: Option<&[u8]>| match write {
            PendingWrite::Set(value) => Some(value.clone()),
            PendingWrite::Clear => None,
            PendingWrite::Add(delta) => Some(add_to_value(base, *delta)),
        };
        let mut pairs: Vec<KeyValue> = Vec::new();
        let mut snapshot_head = next_snapshot()?;
        let mut buffered_head = buffered.next();
        while pairs.len() < limit {
            match (snapshot_head.take(), buffered_head.take()) {
                (None, None) => break,
                (Some(pair), None) => {
                    pairs.push(pair);
                    snapshot_head = next_snapshot()?;
                }
                (None, Some((key, write))) => {
                    if let Some(value) = resolve(write, None) {
                        pairs.push((key.clone(), value));
                    }
                    buffered_head = buffered.next();
                }
                (Some(pair), Some((key, write))) => {
                    let natural = pair.0.as_slice().cmp(key.as_slice());
                    let order = if reverse { natural.reverse() } else { natural };
                    match order {
                        std::cmp::Ordering::Less => {
                            pairs.push(pair);
                            snapshot_head = next_snapshot()?;
                            buffered_head = Some((key, write));
                        }
                        std::cmp::Ordering::Greater => {
                            if let Some(value) = resolve(write, None) {
                                pairs.push((key.clone(), value));
                            }
                            snapshot_head = Some(pair);
                            buffered_head = buffered.next();
                        }
                        std::cmp::Ordering::Equal => {
                            if let Some(value) = resolve(write, Some(&pair.1)) {
                                pairs.push((key.clone(), value));
                            }
                            snapshot_head = next_snapshot()?;
                            buffered_head = buffered.next();
                        }
                    }
                }
            }
        }
        // A read that stopped at its limit depends only on the keys up to the last one returned
        // (FoundationDB does the same), so later inserts beyond it do not conflict.
        let read_range = match pairs.last() {
            Some((last_key, _)) if pairs.len() >= limit && reverse => {
                (last_key.clone(), range.end.clone())
            }
            Some((last_key, _)) if pairs.len() >= limit => {
                (range.begin.clone(), key_after(last_key))
            }
            _ => (range.begin.clone(), range.end.clone()),
        };
        self.read_ranges.push(read_range);
        Ok(pairs)
    }
}

impl Transaction for EmbeddedTransaction {
    fn get<'a>(&'a mut self, key: &'a [u8]) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let result = self.get_now(key);
        Box::pin(async move { result })
    }

    fn get_unconflicted<'a>(
        &'a mut self,
        key: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let result = self.get_unconflicted_now(key);
        Box::pin(async move { result })
    }

    fn get_range<'a>(
        &'a mut self,
        range: &'a KeyRange,
        options: RangeOptions,
    ) -> BoxFuture<'a, StoreResult<Vec<KeyValue>>> {
        let result = self.get_range_now(range, options);
        Box::pin(async move { result })
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.buffer.set(key, value)
    }

    fn clear(&mut self, key: &[u8]) -> StoreResult<()> {
        self.buffer.clear(key)
    }

    fn clear_range(&mut self, range: &KeyRange) -> StoreResult<()> {
        self.buffer.clear_range(range)
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> StoreResult<()> {
        self.buffer.atomic_add(key, delta)
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        let EmbeddedTransaction {
            table,
            buffer,
            read_ranges,
            read_version,
            started,
            committer,
        } = *self;
        // Release the snapshot now: redb cannot reuse pages a live snapshot still sees.
        drop(table);
        let prepared = (|| {
            if started.elapsed() > MAX_TRANSACTION_AGE {
                return Err(too_old_error());
            }
            let mutation_bytes = buffer.mutation_bytes();
            if mutation_bytes > MAX_TRANSACTION_BYTES {
                return Err(StoreError::new(
                    StoreErrorKind::LimitExceeded,
                    format!(
                        "transaction writes {mutation_bytes} bytes, over the \
                         {MAX_TRANSACTION_BYTES}-byte limit"
                    ),
                ));
            }
            if buffer.is_empty() {
                // A read-only transaction commits trivially, as in FoundationDB.
                return Ok(None);
            }
            let (reply, answer) = oneshot::channel();
            let request = CommitRequest {
                read_version,
                started,
                read_ranges,
                write_ranges: buffer.write_conflict_ranges(),
                mutations: buffer.into_mutations(),
                mutation_bytes,
                reply,
            };
            committer
                .send(CommitterMessage::Commit(request))
                .map_err(|_| closed_error())?;
            Ok(Some(answer))
        })();
        Box::pin(async move {
            match prepared? {
                None => Ok(()),
                Some(answer) => answer.await.map_err(|_| closed_error())?,
            }
        })
    }
}

#[cfg(test)]
mod tests;
