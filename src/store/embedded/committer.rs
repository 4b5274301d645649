//! The committer thread: the only writer of the redb file.
//!
//! Transactions send their buffered writes here. The thread takes every request that queued
//! up while the previous fsync ran (group commit), checks each against the writes committed
//! after its snapshot (optimistic concurrency, as FoundationDB's resolvers do), applies the
//! survivors in ONE redb write transaction with one fsync, and only then answers them and
//! fires watches. Invariants:
//! - a request is answered `Ok` only after the redb commit that holds it returned, with
//!   `Durability::Immediate`, so an acknowledged commit survives `kill -9`;
//! - `committed_version` is published after the redb commit, so a snapshot taken after reading
//!   version V contains every commit ≤ V (it may contain more, which only causes a spurious
//!   conflict, never a missed one);
//! - `history` holds the write ranges of every commit younger than the transaction age limit,
//!   so a transaction that is still allowed to commit can always be checked.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable};
use tokio::sync::oneshot;

use super::write_buffer::{Mutation, add_to_value, coalesce_ranges, overlaps_any};
use super::{KV_TABLE, storage_error};
use crate::store::{MAX_TRANSACTION_AGE, StoreError, StoreErrorKind, StoreResult};

/// At most this many transactions share one fsync; bounds the latency of a batch.
const MAX_BATCH_REQUESTS: usize = 512;
/// At most this many mutation bytes per batch (a batch is one redb write transaction).
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Commits are remembered a little longer than a transaction may live.
const HISTORY_RETENTION: Duration = MAX_TRANSACTION_AGE.saturating_add(Duration::from_secs(1));

pub(crate) struct CommitRequest {
    pub read_version: u64,
    pub started: Instant,
    pub read_ranges: Vec<RawRange>,
    pub write_ranges: Vec<RawRange>,
    pub mutations: Vec<Mutation>,
    pub mutation_bytes: usize,
    pub reply: oneshot::Sender<StoreResult<()>>,
}

pub(crate) enum CommitterMessage {
    Commit(CommitRequest),
    /// Finish what is queued, then stop and release the database.
    Shutdown,
}

/// Watchers waiting for a key to change; fired by the committer after each durable batch.
#[derive(Default)]
pub(crate) struct WatchRegistry {
    by_key: Mutex<BTreeMap<Vec<u8>, Vec<oneshot::Sender<()>>>>,
    registrations: AtomicU64,
}

/// Every this many registrations, watchers of keys that never changed and whose futures were
/// dropped are swept, so many abandoned watches on distinct keys cannot accumulate.
const WATCH_SWEEP_INTERVAL: u64 = 1024;

impl WatchRegistry {
    pub(crate) fn register(&self, key: &[u8]) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut by_key = self
            .by_key
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let waiting = by_key.entry(key.to_vec()).or_default();
        // Forget watchers whose future was dropped, so an unchanged key cannot grow forever.
        waiting.retain(|earlier| !earlier.is_closed());
        waiting.push(sender);
        if self
            .registrations
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(WATCH_SWEEP_INTERVAL)
        {
            by_key.retain(|_, waiting| {
                waiting.retain(|watcher| !watcher.is_closed());
                !waiting.is_empty()
            });
        }
        receiver
    }

    /// Drops every watcher: their futures resolve with a "store closed" error.
    pub(crate) fn close_all(&self) {
        self.by_key
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clear();
    }

    fn fire(&self, mutations: &[Mutation]) {
        let mut by_key = self
            .by_key
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if by_key.is_empty() {
            return;
        }
        let mut fired_keys = Vec::new();
        for mutation in mutations {
            match mutation {
                Mutation::Set { key, .. } | Mutation::Clear { key } | Mutation::Add { key, .. } => {
                    if by_key.contains_key(key) {
                        fired_keys.push(key.clone());
                    }
                }
                Mutation::ClearRange { begin, end } => fired_keys.extend(
                    by_key
                        .range::<[u8], _>((
                            Bound::Included(begin.as_slice()),
                            Bound::Excluded(end.as_slice()),
                        ))
                        .map(|(key, _)| key.clone()),
                ),
            }
        }
        for key in fired_keys {
            for watcher in by_key.remove(&key).unwrap_or_default() {
                // The watcher may have been dropped meanwhile; nobody to tell then.
                let _ = watcher.send(());
            }
        }
    }
}

/// State shared between the committer thread and the backend handle (not the reverse: the
/// thread must not keep the handle's sender alive, or it would never see the channel close).
#[derive(Default)]
pub(crate) struct CommitShared {
    pub committed_version: AtomicU64,
    pub watches: WatchRegistry,
}

/// A half-open key range `[begin, end)` as raw bounds.
pub(crate) type RawRange = (Vec<u8>, Vec<u8>);

/// A request that passed its conflict check, with its write ranges coalesced.
struct AcceptedCommit {
    request: CommitRequest,
    written: Vec<RawRange>,
}

struct CommittedWrites {
    version: u64,
    committed_at: Instant,
    /// Sorted and disjoint.
    ranges: Vec<RawRange>,
}

struct Committer {
    database: Arc<Database>,
    shared: Arc<CommitShared>,
    history: VecDeque<CommittedWrites>,
    /// Transactions that read at a version below this cannot be checked any more.
    history_floor: u64,
    version: u64,
}

/// Runs until `Shutdown` or until every sender is gone. Owns the last reference to the
/// database on the write side, so returning releases the file lock.
pub(crate) fn run_committer(
    database: Arc<Database>,
    shared: Arc<CommitShared>,
    receiver: Receiver<CommitterMessage>,
) {
    let version = shared.committed_version.load(Ordering::Acquire);
    let mut committer = Committer {
        database,
        shared,
        history: VecDeque::new(),
        history_floor: version,
        version,
    };
    while let Ok(first) = receiver.recv() {
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        let mut shutdown = false;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                CommitterMessage::Commit(request) => {
                    batch_bytes += request.mutation_bytes;
                    batch.push(request);
                }
                CommitterMessage::Shutdown => {
                    shutdown = true;
                    break;
                }
            }
            if batch.len() >= MAX_BATCH_REQUESTS || batch_bytes >= MAX_BATCH_BYTES {
                break;
            }
            // Empty or disconnected: the batch is complete.
            next = receiver.try_recv().ok();
        }
        if !batch.is_empty() {
            committer.commit_batch(batch);
        }
        if shutdown {
            break;
        }
    }
    tracing::debug!("store committer stopped");
}

impl Committer {
    fn commit_batch(&mut self, batch: Vec<CommitRequest>) {
        self.prune_history();
        let mut accepted: Vec<AcceptedCommit> = Vec::new();
        for mut request in batch {
            match self.check(&request, &accepted) {
                Ok(()) => {
                    let written = coalesce_ranges(std::mem::take(&mut request.write_ranges));
                    accepted.push(AcceptedCommit { request, written });
                }
                Err(error) => {
                    let _ = request.reply.send(Err(error));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        let started = Instant::now();
        if let Err(error) = self.apply(&accepted) {
            tracing::error!(%error, transactions = accepted.len(), "store commit failed");
            for AcceptedCommit { request, .. } in accepted {
                let _ = request.reply.send(Err(StoreError::new(
                    StoreErrorKind::Io,
                    error.message.clone(),
                )));
            }
            return;
        }
        tracing::trace!(
            transactions = accepted.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "store batch committed"
        );
        let committed_at = Instant::now();
        for AcceptedCommit { request, written } in accepted {
            self.version += 1;
            self.history.push_back(CommittedWrites {
                version: self.version,
                committed_at,
                ranges: written,
            });
            self.shared
                .committed_version
                .store(self.version, Ordering::Release);
            self.shared.watches.fire(&request.mutations);
            let _ = request.reply.send(Ok(()));
        }
    }

    fn prune_history(&mut self) {
        while let Some(oldest) = self.history.front() {
            if oldest.committed_at.elapsed() <= HISTORY_RETENTION {
                break;
            }
            self.history_floor = oldest.version;
            self.history.pop_front();
        }
    }

    /// Serializability check: did anything committed after this transaction's snapshot (or
    /// accepted earlier in this batch) write a range the transaction read?
    fn check(&self, request: &CommitRequest, accepted: &[AcceptedCommit]) -> StoreResult<()> {
        if request.started.elapsed() > MAX_TRANSACTION_AGE
            || request.read_version < self.history_floor
        {
            return Err(StoreError::new(
                StoreErrorKind::TransactionTooOld,
                format!(
                    "transaction is older than {} s",
                    MAX_TRANSACTION_AGE.as_secs()
                ),
            ));
        }
        let newer_commits = self
            .history
            .iter()
            .rev()
            .take_while(|commit| commit.version > request.read_version)
            .map(|commit| commit.ranges.as_slice());
        let batch_commits = accepted.iter().map(|accepted| accepted.written.as_slice());
        for written in newer_commits.chain(batch_commits) {
            let conflicting = request
                .read_ranges
                .iter()
                .any(|(begin, end)| overlaps_any(written, begin, end));
            if conflicting {
                return Err(StoreError::new(
                    StoreErrorKind::Conflict,
                    "a concurrent commit wrote what this transaction read",
                ));
            }
        }
        Ok(())
    }

    fn apply(&self, accepted: &[AcceptedCommit]) -> StoreResult<()> {
        let write = self.database.begin_write().map_err(storage_error)?;
        {
            let mut table = write.open_table(KV_TABLE).map_err(storage_error)?;
            for AcceptedCommit { request, .. } in accepted {
                for mutation in &request.mutations {
                    match mutation {
                        Mutation::Set { key, value } => {
                            table
                                .insert(key.as_slice(), value.as_slice())
                                .map_err(storage_error)?;
                        }
                        Mutation::Clear { key } => {
                            table.remove(key.as_slice()).map_err(storage_error)?;
                        }
                        Mutation::ClearRange { begin, end } => {
                            table
                                .retain_in::<&[u8], _>(begin.as_slice()..end.as_slice(), |_, _| {
                                    false
                                })
                                .map_err(storage_error)?;
                        }
                        Mutation::Add { key, delta } => {
                            let sum = {
                                let current = table.get(key.as_slice()).map_err(storage_error)?;
                                add_to_value(current.as_ref().map(|guard| guard.value()), *delta)
                            };
                            table
                                .insert(key.as_slice(), sum.as_slice())
                                .map_err(storage_error)?;
                        }
                    }
                }
            }
        }
        write.commit().map_err(storage_error)
    }
}
