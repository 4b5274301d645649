//! The FoundationDB backend (cargo feature `foundationdb`, client API 730).
//!
//! FoundationDB provides natively what the embedded backend emulates: snapshot reads,
//! read-your-writes, optimistic conflict detection, the 10 MB / 5 s limits, atomic ADD and
//! watches. This file maps the trait onto the `foundationdb` crate and its errors onto
//! [`StoreErrorKind`] (retryable codes become `Conflict`, `TransactionTooOld` or `Unavailable`,
//! so [`super::Store::transact`] retries them with backoff). Values larger than 100 KB go
//! through `chunked` or the blob store, as on every backend.
//!
//! The client network is process-wide: it is booted once, by the first [`FdbBackend::open`],
//! and must be stopped with [`stop_network`] before the process exits.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};
use foundationdb::options::{DatabaseOption, MutationType, StreamingMode, TransactionOption};
use foundationdb::{Database, FdbError, RangeOption};
use futures_util::future::join_all;

use super::embedded::{check_value, check_writable_key};
use super::keys::{FORMAT_VERSION, META_FORMAT_VERSION, UPGRADABLE_FORMAT_VERSIONS};
use super::{
    Backend, BoxFuture, KeyRange, KeyValue, MAX_TRANSACTION_AGE, MAX_TRANSACTION_BYTES,
    RangeOptions, StoreError, StoreErrorKind, StoreResult, Transaction,
};

/// The client API version this build speaks (FoundationDB 7.3).
const API_VERSION: i32 = 730;
/// Outstanding watches allowed per database handle unless configured (`store.fdb_max_watches`).
pub const DEFAULT_MAX_WATCHES: u32 = 100_000;
/// FoundationDB's ceiling for the max-watches option.
const MAX_WATCHES_LIMIT: u32 = 1_000_000;
/// The end of the application key space: keys at or above it are FoundationDB's system keys.
const SYSTEM_KEYS_BEGIN: &[u8] = b"\xff";

/// The running client network. `foundationdb`'s boot contract: the guard must be dropped
/// before the process exits (dropping it stops and joins the network thread), and the network
/// can be started only once per process. So the guard lives here, for the whole process, and
/// [`stop_network`] drops it at shutdown.
static NETWORK: Mutex<Option<NetworkAutoStop>> = Mutex::new(None);
/// The outcome of the one boot attempt of this process.
static NETWORK_BOOT: OnceLock<Result<(), String>> = OnceLock::new();

fn boot_network() -> StoreResult<()> {
    let outcome = NETWORK_BOOT.get_or_init(|| {
        let builder = FdbApiBuilder::default()
            .set_runtime_version(API_VERSION)
            .build()
            .map_err(|error| format!("cannot select FoundationDB API {API_VERSION}: {error}"))?;
        // SAFETY: `boot` requires that the returned guard be dropped before the process exits.
        // It is stored in `NETWORK` and dropped by `stop_network`, which the server calls at
        // shutdown after closing the store; `NETWORK_BOOT` guarantees a single boot.
        #[allow(unsafe_code)]
        let guard = unsafe { builder.boot() }
            .map_err(|error| format!("cannot start the FoundationDB network: {error}"))?;
        *NETWORK.lock().unwrap_or_else(PoisonError::into_inner) = Some(guard);
        Ok(())
    });
    outcome
        .clone()
        .map_err(|message| StoreError::new(StoreErrorKind::Unavailable, message))
}

/// Stops the FoundationDB client network. Call once, at process exit, after every
/// [`FdbBackend`] is closed; no FoundationDB store can be opened afterwards in this process.
pub fn stop_network() {
    let guard = NETWORK
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    drop(guard);
}

/// Maps a FoundationDB error code onto the store's error kinds.
fn fdb_error(error: FdbError) -> StoreError {
    let code = error.code();
    let kind = match code {
        // not_committed: a conflict with a concurrent commit.
        1020 => StoreErrorKind::Conflict,
        // transaction_too_old, transaction_timed_out.
        1007 | 1031 => StoreErrorKind::TransactionTooOld,
        // transaction_too_large, key_too_large, value_too_large, key_outside_legal_range.
        2101..=2103 | 2004 => StoreErrorKind::LimitExceeded,
        // commit_unknown_result and the other transient codes: closures are idempotent, so a
        // retry is safe.
        _ if error.is_retryable() => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Io,
    };
    StoreError::new(
        kind,
        format!("foundationdb error {code}: {}", error.message()),
    )
}

/// A store on a FoundationDB cluster.
pub struct FdbBackend {
    database: Arc<Database>,
    closed: AtomicBool,
}

impl FdbBackend {
    /// Connects to the cluster named by `cluster_file` (FoundationDB's default cluster file
    /// when `None`), booting the client network on first use, and checks the format version.
    pub async fn open(cluster_file: Option<&Path>) -> StoreResult<FdbBackend> {
        FdbBackend::open_with_watches(cluster_file, DEFAULT_MAX_WATCHES).await
    }

    /// As [`FdbBackend::open`], allowing `max_watches` outstanding watches (FoundationDB's
    /// default is 10,000 per database handle; a node holds one per account with a push
    /// listener, plus one per actor queue: `schema/cluster.md`).
    pub async fn open_with_watches(
        cluster_file: Option<&Path>,
        max_watches: u32,
    ) -> StoreResult<FdbBackend> {
        boot_network()?;
        let cluster_path = match cluster_file {
            Some(path) => Some(path.to_str().ok_or_else(|| {
                StoreError::io(format!("cluster file path {} is not UTF-8", path.display()))
            })?),
            None => None,
        };
        let database = Database::new(cluster_path).map_err(fdb_error)?;
        // Without a timeout, a transaction waits forever for an unreachable cluster (the
        // client retries connecting): every transaction gives up after the 5 s FoundationDB
        // allows anyway, as `1031 transaction_timed_out` (retryable), so callers answer
        // "try again" (HTTP 503, SMTP 451) instead of hanging while the cluster restarts.
        database
            .set_option(DatabaseOption::TransactionTimeout(
                i32::try_from(MAX_TRANSACTION_AGE.as_millis()).unwrap_or(i32::MAX),
            ))
            .map_err(fdb_error)?;
        database
            .set_option(DatabaseOption::MaxWatches(
                i32::try_from(max_watches.min(MAX_WATCHES_LIMIT)).unwrap_or(i32::MAX),
            ))
            .map_err(fdb_error)?;
        let backend = FdbBackend {
            database: Arc::new(database),
            closed: AtomicBool::new(false),
        };
        backend.check_or_write_format_version().await?;
        tracing::info!(cluster_file = ?cluster_file, format_version = FORMAT_VERSION, "foundationdb store opened");
        Ok(backend)
    }

    /// As the embedded backend does: stamp an empty key space, refuse an unknown version.
    async fn check_or_write_format_version(&self) -> StoreResult<()> {
        let store = super::Store::new(Arc::new(FdbBackend {
            database: Arc::clone(&self.database),
            closed: AtomicBool::new(false),
        }));
        store
            .transact(|tx| {
                Box::pin(async move {
                    match tx.get(META_FORMAT_VERSION).await? {
                        Some(bytes) => {
                            let version = <[u8; 4]>::try_from(bytes.as_slice())
                                .map(u32::from_be_bytes)
                                .map_err(|_| {
                                    StoreError::corrupt("the format version key is malformed")
                                })?;
                            if UPGRADABLE_FORMAT_VERSIONS.contains(&version) {
                                return tx.set(META_FORMAT_VERSION, &FORMAT_VERSION.to_be_bytes());
                            }
                            if version != FORMAT_VERSION {
                                return Err(StoreError::corrupt(format!(
                                    "the store has format version {version}, this build reads \
                                     only version {FORMAT_VERSION}"
                                )));
                            }
                            Ok(())
                        }
                        None => {
                            let everything = KeyRange {
                                begin: Vec::new(),
                                end: SYSTEM_KEYS_BEGIN.to_vec(),
                            };
                            let any = tx
                                .get_range(
                                    &everything,
                                    RangeOptions {
                                        limit: 1,
                                        reverse: false,
                                    },
                                )
                                .await?;
                            if !any.is_empty() {
                                return Err(StoreError::corrupt(
                                    "the cluster holds data but no tern format version key",
                                ));
                            }
                            tx.set(META_FORMAT_VERSION, &FORMAT_VERSION.to_be_bytes())
                        }
                    }
                })
            })
            .await
    }

    fn closed_error() -> StoreError {
        StoreError::new(StoreErrorKind::Io, "the store is closed")
    }
}

impl Backend for FdbBackend {
    fn name(&self) -> &'static str {
        "foundationdb"
    }

    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(FdbBackend::closed_error());
            }
            let transaction = self.database.create_trx().map_err(fdb_error)?;
            let wrapped: Box<dyn Transaction> = Box::new(FdbTransaction {
                transaction,
                started: Instant::now(),
                mutation_bytes: 0,
                reads: ReadStats::default(),
            });
            Ok(wrapped)
        })
    }

    fn watch(&self, key: &[u8]) -> BoxFuture<'static, StoreResult<()>> {
        if self.closed.load(Ordering::Acquire) {
            return Box::pin(async { Err(FdbBackend::closed_error()) });
        }
        // Register now, not when the future is first polled, so a commit right after this call
        // is not missed: `watch` and `commit` start their FoundationDB futures immediately, and
        // the watch compares against the value at this transaction's read version.
        let transaction = match self.database.create_trx() {
            Ok(transaction) => transaction,
            Err(error) => return Box::pin(async move { Err(fdb_error(error)) }),
        };
        // A watch outlives its transaction; the database's transaction timeout would cancel
        // it after 5 s, so this one transaction has none.
        if let Err(error) = transaction.set_option(TransactionOption::Timeout(0)) {
            return Box::pin(async move { Err(fdb_error(error)) });
        }
        let fired = transaction.watch(key);
        let registered = transaction.commit();
        Box::pin(async move {
            registered
                .await
                .map_err(|error| fdb_error(FdbError::from(error)))?;
            fired.await.map_err(fdb_error)
        })
    }

    fn close(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.closed.store(true, Ordering::Release);
        Box::pin(async { Ok(()) })
    }
}

struct FdbTransaction {
    transaction: foundationdb::Transaction,
    started: Instant,
    /// Bytes written so far, checked against [`MAX_TRANSACTION_BYTES`] as the embedded store
    /// does, so both refuse the same transactions at the same point.
    mutation_bytes: usize,
    reads: ReadStats,
}

/// What a transaction waited for, reported for slow ones (debugging a latency is otherwise
/// guesswork: a transaction's reads are sequential round trips to the storage servers).
#[derive(Debug, Default)]
struct ReadStats {
    gets: u32,
    ranges: u32,
    prefetches: u32,
    waited: std::time::Duration,
}

/// Transactions slower than this are logged (at debug) with their [`ReadStats`].
const SLOW_TRANSACTION: std::time::Duration = std::time::Duration::from_millis(20);

/// Range ends at or past the system key space stop at its start (reading it needs an option
/// the server never sets).
fn clamp_to_user_keys(key: &[u8]) -> &[u8] {
    if key > SYSTEM_KEYS_BEGIN {
        SYSTEM_KEYS_BEGIN
    } else {
        key
    }
}

impl FdbTransaction {
    fn charge(&mut self, bytes: usize) -> StoreResult<()> {
        self.mutation_bytes = self.mutation_bytes.saturating_add(bytes);
        if self.mutation_bytes > MAX_TRANSACTION_BYTES {
            return Err(StoreError::new(
                StoreErrorKind::LimitExceeded,
                format!(
                    "transaction writes {} bytes, over the {MAX_TRANSACTION_BYTES}-byte limit",
                    self.mutation_bytes
                ),
            ));
        }
        Ok(())
    }

    fn check_age(&self) -> StoreResult<()> {
        if self.started.elapsed() > MAX_TRANSACTION_AGE {
            return Err(StoreError::new(
                StoreErrorKind::TransactionTooOld,
                format!(
                    "transaction is older than {} s",
                    MAX_TRANSACTION_AGE.as_secs()
                ),
            ));
        }
        Ok(())
    }

    async fn range(
        &mut self,
        range: &KeyRange,
        options: RangeOptions,
    ) -> StoreResult<Vec<KeyValue>> {
        self.check_age()?;
        let asked = Instant::now();
        self.reads.ranges += 1;
        let begin = clamp_to_user_keys(&range.begin);
        let end = clamp_to_user_keys(&range.end);
        if begin >= end {
            return Ok(Vec::new());
        }
        let limit = (options.limit > 0).then_some(options.limit);
        let mut request = Some(RangeOption {
            limit,
            reverse: options.reverse,
            // Small pages when a limit says how much is wanted; everything at once otherwise.
            mode: if limit.is_some() {
                StreamingMode::Iterator
            } else {
                StreamingMode::WantAll
            },
            ..RangeOption::from((begin, end))
        });
        let mut pairs = Vec::new();
        let mut iteration = 1;
        while let Some(page_request) = request {
            let page = self
                .transaction
                .get_range(&page_request, iteration, false)
                .await
                .map_err(fdb_error)?;
            pairs.extend(
                page.iter()
                    .map(|pair| (pair.key().to_vec(), pair.value().to_vec())),
            );
            request = page_request.next_range(&page);
            iteration += 1;
        }
        if let Some(limit) = limit {
            pairs.truncate(limit);
        }
        self.reads.waited += asked.elapsed();
        Ok(pairs)
    }
}

impl Transaction for FdbTransaction {
    fn get<'a>(&'a mut self, key: &'a [u8]) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.check_age()?;
            let asked = Instant::now();
            let value = self.transaction.get(key, false).await.map_err(fdb_error)?;
            self.reads.gets += 1;
            self.reads.waited += asked.elapsed();
            Ok(value.map(|slice| slice.to_vec()))
        })
    }

    fn get_unconflicted<'a>(
        &'a mut self,
        key: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.check_age()?;
            let asked = Instant::now();
            // Snapshot read: FoundationDB adds no read conflict range for it.
            let value = self.transaction.get(key, true).await.map_err(fdb_error)?;
            self.reads.gets += 1;
            self.reads.waited += asked.elapsed();
            Ok(value.map(|slice| slice.to_vec()))
        })
    }

    fn get_range<'a>(
        &'a mut self,
        range: &'a KeyRange,
        options: RangeOptions,
    ) -> BoxFuture<'a, StoreResult<Vec<KeyValue>>> {
        Box::pin(self.range(range, options))
    }

    fn prefetch<'a>(
        &'a mut self,
        keys: &'a [Vec<u8>],
        ranges: &'a [KeyRange],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.check_age()?;
            let asked = Instant::now();
            let transaction = &self.transaction;
            // Only the first page of a range: enough for the small ranges this is meant for;
            // a later read of a longer one simply fetches the rest.
            let range_requests: Vec<RangeOption<'_>> = ranges
                .iter()
                .filter_map(|range| {
                    let begin = clamp_to_user_keys(&range.begin);
                    let end = clamp_to_user_keys(&range.end);
                    (begin < end).then(|| RangeOption {
                        mode: StreamingMode::WantAll,
                        ..RangeOption::from((begin, end))
                    })
                })
                .collect();
            let gets = join_all(keys.iter().map(|key| transaction.get(key, false)));
            let range_reads = join_all(
                range_requests
                    .iter()
                    .map(|request| transaction.get_range(request, 1, false)),
            );
            let (got, ranged) = futures_util::future::join(gets, range_reads).await;
            for result in got {
                result.map_err(fdb_error)?;
            }
            for result in ranged {
                result.map_err(fdb_error)?;
            }
            self.reads.prefetches += 1;
            self.reads.waited += asked.elapsed();
            Ok(())
        })
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> StoreResult<()> {
        check_writable_key(key)?;
        check_value(value)?;
        self.charge(key.len() + value.len())?;
        self.transaction.set(key, value);
        Ok(())
    }

    fn clear(&mut self, key: &[u8]) -> StoreResult<()> {
        check_writable_key(key)?;
        self.charge(key.len())?;
        self.transaction.clear(key);
        Ok(())
    }

    fn clear_range(&mut self, range: &KeyRange) -> StoreResult<()> {
        let begin = clamp_to_user_keys(&range.begin);
        let end = clamp_to_user_keys(&range.end);
        if begin >= end {
            return Ok(());
        }
        self.charge(begin.len() + end.len())?;
        self.transaction.clear_range(begin, end);
        Ok(())
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> StoreResult<()> {
        check_writable_key(key)?;
        self.charge(key.len() + 8)?;
        self.transaction
            .atomic_op(key, &delta.to_le_bytes(), MutationType::Add);
        Ok(())
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(async move {
            self.check_age()?;
            if self.mutation_bytes > MAX_TRANSACTION_BYTES {
                return Err(StoreError::new(
                    StoreErrorKind::LimitExceeded,
                    "transaction exceeds the size limit",
                ));
            }
            let FdbTransaction {
                transaction,
                started,
                mutation_bytes,
                reads,
            } = *self;
            let committing = Instant::now();
            let committed = transaction
                .commit()
                .await
                .map(|_committed| ())
                .map_err(|error| fdb_error(FdbError::from(error)));
            if started.elapsed() >= SLOW_TRANSACTION {
                tracing::debug!(
                    elapsed_us = started.elapsed().as_micros() as u64,
                    gets = reads.gets,
                    ranges = reads.ranges,
                    prefetches = reads.prefetches,
                    read_wait_us = reads.waited.as_micros() as u64,
                    commit_us = committing.elapsed().as_micros() as u64,
                    mutation_bytes,
                    "slow foundationdb transaction"
                );
            }
            committed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, testsuite};

    /// The backend suite on a real cluster; skipped unless `FDB_CLUSTER_FILE` names one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backend_suite() {
        let Some(cluster_file) = std::env::var_os("FDB_CLUSTER_FILE") else {
            eprintln!("skipped: FDB_CLUSTER_FILE is not set, so the FoundationDB suite cannot run");
            return;
        };
        let backend = FdbBackend::open(Some(Path::new(&cluster_file)))
            .await
            .expect("open the FoundationDB cluster");
        let store = Store::new(Arc::new(backend));
        testsuite::run_all(&store).await;
        store.close().await.expect("close");
        stop_network();
    }
}
