//! Storage: one small transactional key-value trait with FoundationDB's semantics, and the
//! layers Tern builds on it (key layout, chunked values, blobs, the commit path).
//!
//! Invariants kept by every backend (and checked by `testsuite`, which runs against each):
//! - keys are ordered bytes; a transaction reads one consistent snapshot and commits
//!   serializably (optimistic: a read that another commit invalidated fails the commit with
//!   `StoreErrorKind::Conflict`, and [`Store::transact`] re-runs the closure);
//! - limits are FoundationDB's, enforced on every backend so the embedded default cannot hide
//!   a value or transaction that would fail on a cluster: keys ≤ [`MAX_KEY_BYTES`], values ≤
//!   [`MAX_VALUE_BYTES`], a transaction writes ≤ [`MAX_TRANSACTION_BYTES`] and lives ≤
//!   [`MAX_TRANSACTION_AGE`];
//! - `watch(key)` resolves after a commit that changed `key` (FoundationDB watches), which is
//!   how push learns that an account changed, on one node or across a cluster.

pub mod blob;
pub mod chunked;
pub mod commit;
pub mod docs;
pub mod embedded;
#[cfg(feature = "foundationdb")]
pub mod fdb;
pub mod keys;
pub mod ownership;
pub mod ownership_suite;
pub mod purge;
pub mod record_codec;
pub mod testsuite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// FoundationDB's key size limit.
pub const MAX_KEY_BYTES: usize = 10_000;
/// FoundationDB's value size limit. Larger values go through [`chunked`].
pub const MAX_VALUE_BYTES: usize = 100_000;
/// FoundationDB's transaction size limit (keys + values written, including clears).
pub const MAX_TRANSACTION_BYTES: usize = 10_000_000;
/// FoundationDB's transaction lifetime limit.
pub const MAX_TRANSACTION_AGE: Duration = Duration::from_secs(5);
/// How many times [`Store::transact`] re-runs a closure after a retryable error.
pub const MAX_TRANSACTION_RETRIES: u32 = 12;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What went wrong in the store; `kind` tells callers whether a retry can help.
#[derive(Debug, thiserror::Error)]
#[error("store error ({kind:?}): {message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Another transaction committed a write to something this one read (retryable).
    Conflict,
    /// The transaction outlived [`MAX_TRANSACTION_AGE`] (retryable with a new transaction).
    TransactionTooOld,
    /// A transient backend failure, e.g. a cluster recovery (retryable).
    Unavailable,
    /// A key, value or transaction over FoundationDB's limits: a bug in the caller.
    LimitExceeded,
    /// The data directory is held by another process.
    Locked,
    /// Stored bytes could not be decoded: corruption or a missing migration.
    Corrupt,
    /// Any other I/O or backend failure.
    Io,
    /// The account is owned by another node, or this node was deposed (`ownership`): the
    /// write is refused by the fence. Retrying the transaction cannot help; the client's
    /// request can, through the owner.
    NotOwner,
}

impl StoreErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            StoreErrorKind::Conflict
                | StoreErrorKind::TransactionTooOld
                | StoreErrorKind::Unavailable
        )
    }

    /// Whether the client that asked should try again later (JMAP `serverUnavailable`, HTTP
    /// 503, SMTP 451): a retryable error that outlived the retries, or an ownership change.
    pub fn is_temporary(self) -> bool {
        self.is_retryable() || self == StoreErrorKind::NotOwner
    }
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }
    pub fn corrupt(message: impl Into<String>) -> Self {
        StoreError::new(StoreErrorKind::Corrupt, message)
    }
    pub fn io(message: impl std::fmt::Display) -> Self {
        StoreError::new(StoreErrorKind::Io, message.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A half-open key range `[begin, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub begin: Vec<u8>,
    pub end: Vec<u8>,
}

impl KeyRange {
    /// Every key that starts with `prefix` (prefix-free encodings make this a subspace).
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        KeyRange {
            begin: prefix.to_vec(),
            end: keys::prefix_end(prefix),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeOptions {
    /// At most this many pairs; 0 means no limit.
    pub limit: usize,
    /// Newest (highest) keys first.
    pub reverse: bool,
}

pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One transaction: reads see a snapshot taken at its start plus its own writes; writes are
/// buffered until `commit`. Dropping a transaction without committing discards its writes.
pub trait Transaction: Send {
    fn get<'a>(&'a mut self, key: &'a [u8]) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
    /// Reads `key` like [`get`](Self::get) but adds no read conflict (FoundationDB's snapshot
    /// read): a concurrent commit that changes the key does not fail this transaction. For
    /// values many accounts move at once and a reader may see slightly stale, such as a
    /// domain's usage counters; never for what a decision must be exact about.
    fn get_unconflicted<'a>(
        &'a mut self,
        key: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
    /// Pairs in `range`, in key order (or reversed), at most `options.limit`.
    fn get_range<'a>(
        &'a mut self,
        range: &'a KeyRange,
        options: RangeOptions,
    ) -> BoxFuture<'a, StoreResult<Vec<KeyValue>>>;
    /// A hint: reads `keys` and `ranges` concurrently now, so that the caller's later reads
    /// of exactly these are answered without a round trip each. FoundationDB keeps what a
    /// transaction read in its read-your-writes cache, and a transaction's reads are otherwise
    /// sequential round trips (a batch of deliveries reads a dozen keys per message). The
    /// embedded store reads locally and ignores it. Adds the read conflicts the later reads
    /// would add anyway; the results are not returned.
    fn prefetch<'a>(
        &'a mut self,
        keys: &'a [Vec<u8>],
        ranges: &'a [KeyRange],
    ) -> BoxFuture<'a, StoreResult<()>> {
        let _ = (keys, ranges);
        Box::pin(async { Ok(()) })
    }
    fn set(&mut self, key: &[u8], value: &[u8]) -> StoreResult<()>;
    fn clear(&mut self, key: &[u8]) -> StoreResult<()>;
    fn clear_range(&mut self, range: &KeyRange) -> StoreResult<()>;
    /// FoundationDB's ADD mutation on a little-endian i64 (a missing key counts as 0). It adds
    /// no read conflict, so concurrent counters never conflict with each other.
    fn atomic_add(&mut self, key: &[u8], delta: i64) -> StoreResult<()>;
    /// Makes every write durable and visible at once, or none of them.
    fn commit(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>>;
}

/// A storage engine. Implementations: [`embedded::EmbeddedBackend`] (redb, the default) and
/// `fdb::FdbBackend` (feature `foundationdb`).
pub trait Backend: Send + Sync + 'static {
    /// Short name for logs and `--store` selection.
    fn name(&self) -> &'static str;
    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>>;
    /// Resolves once a commit after this call changed the value at `key`.
    fn watch(&self, key: &[u8]) -> BoxFuture<'static, StoreResult<()>>;
    /// Flushes and releases the store; later calls fail.
    fn close(&self) -> BoxFuture<'_, StoreResult<()>>;
}

/// The handle the rest of the server holds: a backend plus the retry loop.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// Set on a cluster node: every account commit passes this node's fence.
    fence: Option<Arc<ownership::Fence>>,
    /// On FoundationDB, this process's commits to one account run one at a time (see
    /// [`AccountLocks`]); `None` on the embedded store, which serializes writers itself.
    account_locks: Option<Arc<AccountLocks>>,
    /// Told of this process's account commits; shared by every clone (installed once, after
    /// the parts that hold clones exist: [`Store::on_account_commit`]).
    commit_listener: Arc<std::sync::OnceLock<CommitListener>>,
}

/// Called with the account id after each durable commit that changed the account (from
/// [`commit::commit_account`]); must return at once. On FoundationDB the store's watch on an
/// idle cluster fires only when a storage server next advances (≈ 10 ms): this is push's fast
/// path, and on a cluster the source of the hints to other nodes.
pub type CommitListener = Arc<dyn Fn(u32) + Send + Sync>;

/// Striped per-account locks. Every commit of an account reads and bumps its version, so two
/// concurrent commits of one account always conflict; on FoundationDB a conflict costs a
/// whole round trip and a backoff, and eight busy writers of one account starve each other
/// until their retries run out. The account's owner is the only node that writes it, so
/// queueing its writers in-process removes those conflicts entirely.
pub struct AccountLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl AccountLocks {
    const STRIPES: usize = 256;

    fn new() -> AccountLocks {
        AccountLocks {
            stripes: (0..Self::STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    pub async fn lock(&self, account_id: u32) -> tokio::sync::MutexGuard<'_, ()> {
        self.stripes[account_id as usize % Self::STRIPES]
            .lock()
            .await
    }
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        let account_locks =
            (backend.name() == "foundationdb").then(|| Arc::new(AccountLocks::new()));
        Store {
            backend,
            fence: None,
            account_locks,
            commit_listener: Arc::default(),
        }
    }

    /// Installs the listener of this process's account commits. Only the first call counts:
    /// returns `false` if one was installed already.
    pub fn on_account_commit(&self, listener: CommitListener) -> bool {
        self.commit_listener.set(listener).is_ok()
    }

    /// Tells the listener, if any, that `account_id` committed a change.
    pub(crate) fn account_committed(&self, account_id: u32) {
        if let Some(listener) = self.commit_listener.get() {
            listener(account_id);
        }
    }

    /// The per-account commit locks ([`AccountLocks`]), where the backend needs them.
    pub fn account_locks(&self) -> Option<&Arc<AccountLocks>> {
        self.account_locks.as_ref()
    }

    /// The same store, with every account commit fenced by `fence` (a cluster node). Set it
    /// before cloning the store into the server's parts.
    pub fn with_fence(mut self, fence: Arc<ownership::Fence>) -> Store {
        self.fence = Some(fence);
        self
    }

    pub fn fence(&self) -> Option<&Arc<ownership::Fence>> {
        self.fence.as_ref()
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Runs `body` in a transaction and commits it, re-running the whole closure (with
    /// backoff) on retryable errors, at most [`MAX_TRANSACTION_RETRIES`] times. `body` must
    /// therefore be idempotent: everything it decides must come from what it reads in `tx`.
    pub async fn transact<T, F>(&self, mut body: F) -> StoreResult<T>
    where
        T: Send,
        F: for<'t> FnMut(&'t mut dyn Transaction) -> BoxFuture<'t, StoreResult<T>> + Send,
    {
        let mut retry = RetryBackoff::default();
        loop {
            let outcome = async {
                let mut tx = self.backend.begin().await?;
                let value = body(tx.as_mut()).await?;
                tx.commit().await?;
                Ok::<T, StoreError>(value)
            }
            .await;
            match outcome {
                Err(error) if retry.wait_before_retry(&error).await => continue,
                other => return other,
            }
        }
    }

    /// A read-only snapshot: a transaction that is never committed.
    pub async fn read<T, F>(&self, body: F) -> StoreResult<T>
    where
        T: Send,
        F: for<'t> FnOnce(&'t mut dyn Transaction) -> BoxFuture<'t, StoreResult<T>> + Send,
    {
        let mut tx = self.backend.begin().await?;
        body(tx.as_mut()).await
    }

    pub fn watch(&self, key: &[u8]) -> BoxFuture<'static, StoreResult<()>> {
        self.backend.watch(key)
    }

    pub async fn close(&self) -> StoreResult<()> {
        self.backend.close().await
    }
}

/// The retry policy of every transaction loop: exponential backoff with jitter, bounded by
/// [`MAX_TRANSACTION_RETRIES`]. Loops that cannot use [`Store::transact`] (the commit path
/// needs per-attempt state) share it so that all writers back off alike.
#[derive(Debug)]
pub struct RetryBackoff {
    attempt: u32,
    started: std::time::Instant,
}

impl Default for RetryBackoff {
    fn default() -> RetryBackoff {
        RetryBackoff {
            attempt: 0,
            started: std::time::Instant::now(),
        }
    }
}

/// How long a transaction loop keeps retrying in all: past it the caller answers "try again
/// later" (a cluster recovering or restarting) rather than keep its client waiting.
pub const MAX_RETRY_TIME: Duration = Duration::from_secs(8);

impl RetryBackoff {
    /// Sleeps and returns true when `error` is retryable and retries remain.
    pub async fn wait_before_retry(&mut self, error: &StoreError) -> bool {
        if !error.kind.is_retryable()
            || self.attempt >= MAX_TRANSACTION_RETRIES
            || self.started.elapsed() >= MAX_RETRY_TIME
        {
            return false;
        }
        self.attempt += 1;
        let backoff_ms = (2u64 << self.attempt.min(9)).min(1000);
        let jitter_ms = rand::random::<u64>() % (backoff_ms / 2 + 1);
        tracing::debug!(attempt = self.attempt, kind = ?error.kind, "retrying transaction");
        tokio::time::sleep(Duration::from_millis(backoff_ms / 2 + jitter_ms)).await;
        true
    }
}
