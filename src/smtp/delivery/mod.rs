//! The delivery actor: it consumes the durable incoming queue (`smtp::incoming`) and puts
//! each message into its recipients' mailboxes. Pipeline per message (`schema/delivery.md`):
//! 1. parse; verify SPF, DKIM and DMARC (`trace`, over `crate::dns`);
//! 2. prepend `Return-Path:`, `Received:` (RFC 5321 §4.4) and `Authentication-Results:`
//!    (RFC 8601); store the result ONCE as the blob every recipient's Email links;
//! 3. score spam rules (and spamd), scan with clamd — stages 1–3 are kept durably (`prepared`);
//! 4. per recipient: the account's classifier, then a `commit_account` that imports the
//!    Email (Inbox, or Junk with `$junk`) and marks the recipient delivered (`deliver`), plus
//!    duplicate suppression (`duplicate`) and the vacation reply (`smtp::vacation`); the
//!    `filer` puts the deliveries that wait for one account into one such commit.
//!
//! Invariants:
//! - the work queue is the store: a crash loses nothing (the entry stays until its last
//!   recipient's commit), a replay does no harm (delivered flags, prepared record);
//! - the actor owns a bounded channel of typed jobs; the feeder arms the queue's watch BEFORE
//!   reading it, so an enqueue is never missed, and never queues an entry twice at once;
//! - up to `concurrency` entries are in stage 1–3 at once (DNS and clamd waits overlap), while
//!   each account has at most one commit in flight (no conflicts between deliveries);
//! - a failed entry is retried with exponential backoff (`attempts`, `not_before` in the
//!   entry), never dropped.
//!
//! The same actor trains the spam classifiers (`smtp::spam::training`).

pub mod deliver;
pub mod duplicate;
pub mod filer;
pub mod prepared;
pub mod quota_warning;
pub mod suite;
pub mod trace;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::smtp::antivirus::Antivirus;
use crate::smtp::incoming::{self, IncomingMessage, unix_now};
use crate::smtp::spam::spamd::SpamdClient;
use crate::smtp::spam::{SpamConfig, training};
use crate::store::blob::{BlobError, BlobStore};
use crate::store::ownership::OwnedElsewhere;
use crate::store::{Store, StoreError};

/// The `[delivery]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// The name in `Received:` and the authserv-id of `Authentication-Results:`; default: the
    /// host of `server.base_url`, else `localhost`.
    pub hostname: Option<String>,
    /// Queue entries delivered at once.
    pub concurrency: usize,
    /// Larger queued messages are not read (the SMTP size limit is lower).
    pub max_message_bytes: u64,
    /// RFC 3834 §2: at most one vacation reply per sender per this many days.
    pub vacation_period_days: u64,
    /// Compiled Sieve scripts kept for the next deliveries (by content), at most.
    pub sieve_cache_scripts: usize,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            hostname: None,
            concurrency: 32,
            max_message_bytes: 256 * 1024 * 1024,
            vacation_period_days: 7,
            sieve_cache_scripts: 256,
        }
    }
}

/// The settings the pipeline reads, resolved once.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    pub hostname: String,
    pub concurrency: usize,
    pub max_message_bytes: u64,
    pub vacation_period_seconds: i64,
    pub sieve_cache_scripts: usize,
}

impl DeliverySettings {
    pub fn new(config: &DeliveryConfig, default_hostname: &str) -> DeliverySettings {
        DeliverySettings {
            hostname: config
                .hostname
                .clone()
                .unwrap_or_else(|| default_hostname.to_owned()),
            concurrency: config.concurrency.clamp(1, 256),
            max_message_bytes: config.max_message_bytes.max(1),
            vacation_period_seconds: i64::try_from(config.vacation_period_days)
                .unwrap_or(i64::MAX / 86_400)
                .saturating_mul(86_400),
            sieve_cache_scripts: config.sieve_cache_scripts,
        }
    }
}

/// What the pipeline uses; shared by every job.
pub struct DeliveryContext {
    pub store: Store,
    pub blobs: BlobStore,
    pub dns: crate::dns::Resolver,
    pub spam: SpamConfig,
    pub spamd: Option<SpamdClient>,
    pub antivirus: Option<Antivirus>,
    pub settings: DeliverySettings,
}

/// The context plus what the actor builds for itself: the DNS answer cache and the filer.
pub struct Pipeline {
    pub context: DeliveryContext,
    pub dns_cache: crate::dns::DnsCache,
    pub filer: Arc<filer::Filer>,
    /// The accounts' compiled Sieve scripts (`[delivery] sieve_cache_scripts`).
    pub sieve_cache: crate::mail::sieve::ScriptCache,
    /// Entries whose remaining recipients other nodes own (a cluster), with when to look at
    /// them again: their owners deliver them; this node looks again in case an owner died.
    deferred: Mutex<HashMap<u64, std::time::Instant>>,
    /// Accounts another live node owned when last asked, until when to trust that.
    elsewhere: OwnedElsewhere,
}

/// How long an entry left to other nodes' owners waits before this node looks again.
const DEFERRED_RECHECK: Duration = Duration::from_secs(1);
/// Accounts remembered as other nodes' at most (forgetting costs only ownership reads).
const ELSEWHERE_CAPACITY: usize = 100_000;
/// The least time between scans of the queue that found only other nodes' entries.
const FOREIGN_RESCAN: Duration = Duration::from_millis(250);

impl Pipeline {
    pub fn new(context: DeliveryContext) -> Pipeline {
        let filer = filer::Filer::new(context.store.clone());
        let sieve_cache =
            crate::mail::sieve::ScriptCache::new(context.settings.sieve_cache_scripts);
        Pipeline {
            context,
            dns_cache: crate::dns::DnsCache::default(),
            filer,
            sieve_cache,
            deferred: Mutex::new(HashMap::new()),
            elsewhere: OwnedElsewhere::new(DEFERRED_RECHECK, ELSEWHERE_CAPACITY),
        }
    }

    /// Whether `account_id` was another live node's less than [`DEFERRED_RECHECK`] ago.
    fn owned_elsewhere(&self, account_id: u32) -> bool {
        self.elsewhere.contains(account_id)
    }

    fn remember_owned_elsewhere(&self, account_id: u32) {
        self.elsewhere.remember(account_id);
    }
}

/// Why delivering an entry failed this time (it is retried later).
#[derive(Debug, thiserror::Error)]
#[error("delivery ({kind:?}): {message}")]
pub struct DeliveryError {
    pub kind: DeliveryErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryErrorKind {
    Store,
    /// The queued message's blob could not be read.
    Blob,
}

impl DeliveryError {
    fn store(error: StoreError) -> DeliveryError {
        DeliveryError {
            kind: DeliveryErrorKind::Store,
            message: error.to_string(),
        }
    }
}

impl From<StoreError> for DeliveryError {
    fn from(error: StoreError) -> DeliveryError {
        DeliveryError::store(error)
    }
}

impl From<BlobError> for DeliveryError {
    fn from(error: BlobError) -> DeliveryError {
        DeliveryError {
            kind: DeliveryErrorKind::Blob,
            message: error.to_string(),
        }
    }
}

/// A job on the actor's queue.
#[derive(Debug)]
enum Job {
    Deliver(IncomingMessage),
}

/// Entries read per scan of the queue.
const PAGE: usize = 256;
/// Training tasks handled per round.
const TRAINING_BATCH: usize = 64;
/// How long the feeder sleeps without a wake-up (a safety net under the watches).
const IDLE_RESCAN: Duration = Duration::from_secs(30);
/// Retry delays: 2^attempts seconds, at most an hour.
const MAX_RETRY_SECONDS: i64 = 3600;

/// The running actor.
pub struct DeliveryActor {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DeliveryActor {
    /// Starts the feeder, the workers and the trainer.
    pub fn start(context: DeliveryContext) -> DeliveryActor {
        let pipeline = Arc::new(Pipeline::new(context));
        let (stop, stop_receiver) = watch::channel(false);
        let concurrency = pipeline.context.settings.concurrency;
        let (jobs, job_receiver) = mpsc::channel::<Job>(concurrency);
        let in_flight = Arc::new(Mutex::new(HashSet::<u64>::new()));
        let finished = Arc::new(Notify::new());
        let feeder = tokio::spawn(feed(
            Arc::clone(&pipeline),
            jobs,
            Arc::clone(&in_flight),
            Arc::clone(&finished),
            stop_receiver.clone(),
        ));
        let workers = tokio::spawn(work(
            Arc::clone(&pipeline),
            job_receiver,
            in_flight,
            finished,
        ));
        let trainer = tokio::spawn(train(Arc::clone(&pipeline), stop_receiver.clone()));
        let warner = tokio::spawn(warn_quota(pipeline, stop_receiver));
        DeliveryActor {
            stop,
            tasks: vec![feeder, workers, trainer, warner],
        }
    }

    /// Stops taking new entries, lets the entries in progress finish, and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "delivery task failed");
            }
        }
    }
}

/// Resolves once stop is requested (a `watch::Ref` must not live across an await).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads due entries and queues those not in progress; sleeps on the queue's watch, a
/// failed job, the earliest `not_before`, or stop.
async fn feed(
    pipeline: Arc<Pipeline>,
    jobs: mpsc::Sender<Job>,
    in_flight: Arc<Mutex<HashSet<u64>>>,
    finished: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let context = &pipeline.context;
    let mut backoff = Duration::from_millis(50);
    // Where the next read starts: after a full page of entries left to other nodes, the
    // next page (so entries of this node's accounts behind them are not stuck).
    let mut page_after: Option<u64> = None;
    // Whether the last scan found entries, all of them left to other nodes (a cluster).
    let mut foreign_only = false;
    loop {
        if *stop.borrow() {
            return;
        }
        // Armed before the read: an enqueue committed after it still wakes us.
        let woken = incoming::watch(&context.store);
        let page = match incoming::load_pending_after(&context.store, page_after, PAGE).await {
            Ok(page) => {
                backoff = Duration::from_millis(50);
                page
            }
            Err(error) => {
                tracing::warn!(%error, "delivery: reading the incoming queue failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let now = unix_now();
        let mut next_due: Option<i64> = None;
        let mut sent_any = false;
        let page_full = page.len() >= PAGE;
        let last_in_page = page.last().map(|entry| entry.queue_id);
        let mut left_to_others = 0usize;
        let page_length = page.len();
        let mut recheck: Option<Duration> = None;
        {
            let mut deferred = lock(&pipeline.deferred);
            let instant = std::time::Instant::now();
            deferred.retain(|_, until| *until > instant);
            if let Some(earliest) = deferred.values().min() {
                recheck = Some(earliest.saturating_duration_since(instant));
            }
        }
        for entry in page {
            if lock(&pipeline.deferred).contains_key(&entry.queue_id) {
                left_to_others += 1;
                continue;
            }
            // Every pending recipient's account is another live node's (known without a
            // transaction): left to the owners, as `deliver_entry` would decide.
            if pipeline.context.store.fence().is_some()
                && entry.pending_recipients().next().is_some()
                && entry
                    .pending_recipients()
                    .all(|(_, recipient)| pipeline.owned_elsewhere(recipient.account_id))
            {
                lock(&pipeline.deferred)
                    .insert(entry.queue_id, std::time::Instant::now() + DEFERRED_RECHECK);
                left_to_others += 1;
                continue;
            }
            if entry.not_before > now {
                next_due = Some(next_due.map_or(entry.not_before, |due| due.min(entry.not_before)));
                continue;
            }
            if !lock(&in_flight).insert(entry.queue_id) {
                continue;
            }
            let queue_id = entry.queue_id;
            tokio::select! {
                sent = jobs.send(Job::Deliver(entry)) => {
                    if sent.is_err() {
                        return;
                    }
                    sent_any = true;
                }
                () = stop_requested(&mut stop) => {
                    lock(&in_flight).remove(&queue_id);
                    return;
                }
            }
        }
        if sent_any {
            // More may be due beyond this page (sending waited for free workers).
            page_after = None;
            continue;
        }
        let first_page = page_after.is_none();
        foreign_only = if first_page {
            page_length > 0 && left_to_others == page_length
        } else {
            foreign_only && left_to_others == page_length
        };
        if page_full && left_to_others == page_length {
            page_after = last_in_page;
            continue;
        }
        page_after = None;
        let sleep = next_due.map_or(IDLE_RESCAN, |due| {
            Duration::from_secs(u64::try_from(due - now).unwrap_or(0).max(1))
        });
        let sleep = recheck.map_or(sleep, |recheck| {
            sleep.min(recheck.max(Duration::from_millis(10)))
        });
        tokio::select! {
            fired = woken => {
                if let Err(error) = fired {
                    tracing::debug!(%error, "delivery: queue watch failed");
                    tokio::time::sleep(backoff).await;
                }
            }
            () = finished.notified() => {}
            () = tokio::time::sleep(sleep.min(IDLE_RESCAN)) => {}
            () = stop_requested(&mut stop) => return,
        }
        if foreign_only {
            // Every enqueue wakes every node: while other nodes' entries are all there is,
            // re-read at most every FOREIGN_RESCAN, not once per message.
            tokio::select! {
                () = tokio::time::sleep(FOREIGN_RESCAN) => {}
                () = stop_requested(&mut stop) => return,
            }
        }
    }
}

/// Runs jobs, at most `concurrency` at once; ends when the feeder is gone and every job ran.
/// A failed job wakes the feeder (to learn its new `not_before`); a delivered one need not:
/// its entry is gone.
async fn work(
    pipeline: Arc<Pipeline>,
    mut jobs: mpsc::Receiver<Job>,
    in_flight: Arc<Mutex<HashSet<u64>>>,
    finished: Arc<Notify>,
) {
    let permits = Arc::new(Semaphore::new(pipeline.context.settings.concurrency));
    let mut running = JoinSet::new();
    while let Some(Job::Deliver(entry)) = jobs.recv().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let pipeline = Arc::clone(&pipeline);
        let in_flight = Arc::clone(&in_flight);
        let finished = Arc::clone(&finished);
        running.spawn(async move {
            let queue_id = entry.queue_id;
            let delivered = run_job(&pipeline, entry).await;
            lock(&in_flight).remove(&queue_id);
            drop(permit);
            if !delivered {
                finished.notify_one();
            }
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// Delivers one entry; false when it failed and was rescheduled, or was left (in part) to
/// other nodes.
async fn run_job(pipeline: &Pipeline, entry: IncomingMessage) -> bool {
    let queue_id = entry.queue_id;
    let started = std::time::Instant::now();
    match deliver::deliver_entry(pipeline, &entry).await {
        Ok(outcome) if outcome.deferred > 0 => {
            lock(&pipeline.deferred).insert(queue_id, std::time::Instant::now() + DEFERRED_RECHECK);
            tracing::debug!(
                queue_id,
                delivered = outcome.delivered,
                deferred = outcome.deferred,
                "recipients left to the nodes that own their accounts"
            );
            // Wakes the feeder, which then sleeps until the recheck.
            false
        }
        Ok(outcome) => {
            tracing::info!(
                queue_id,
                delivered = outcome.delivered,
                junk = outcome.junk,
                duplicates = outcome.duplicates,
                quarantined = outcome.quarantined,
                vacation_replies = outcome.vacation_replies,
                elapsed_us = started.elapsed().as_micros() as u64,
                "incoming message delivered"
            );
            true
        }
        Err(error) => {
            tracing::warn!(queue_id, attempts = entry.attempts, %error, "delivery failed; will retry");
            if let Err(error) = reschedule(&pipeline.context, queue_id).await {
                tracing::warn!(queue_id, %error, "could not reschedule a failed delivery");
            }
            false
        }
    }
}

/// Counts a failed attempt and pushes the entry's next attempt back.
async fn reschedule(context: &DeliveryContext, queue_id: u64) -> Result<(), StoreError> {
    context
        .store
        .transact(move |tx| {
            Box::pin(async move {
                let Some(mut entry) = incoming::load(tx, queue_id).await? else {
                    return Ok(());
                };
                entry.attempts = entry.attempts.saturating_add(1);
                let delay = 1i64
                    .checked_shl(entry.attempts.min(12))
                    .unwrap_or(MAX_RETRY_SECONDS)
                    .min(MAX_RETRY_SECONDS);
                entry.not_before = unix_now() + delay;
                incoming::update(tx, &entry)
            })
        })
        .await
}

/// The trainer: consumes spam-training tasks whenever their version key moves.
async fn train(pipeline: Arc<Pipeline>, stop: watch::Receiver<bool>) {
    let (store, blobs) = (
        pipeline.context.store.clone(),
        pipeline.context.blobs.clone(),
    );
    follow_tasks(
        &pipeline.context.store,
        training::version_key(),
        TRAINING_BATCH,
        "spam training",
        stop,
        move || {
            let (store, blobs) = (store.clone(), blobs.clone());
            Box::pin(async move { training::run_pending(&store, &blobs, TRAINING_BATCH).await })
        },
    )
    .await
}

/// Files the quota warnings (`quota_warning`) whenever their version key moves.
async fn warn_quota(pipeline: Arc<Pipeline>, stop: watch::Receiver<bool>) {
    let context = &pipeline.context;
    let (store, blobs, hostname) = (
        context.store.clone(),
        context.blobs.clone(),
        context.settings.hostname.clone(),
    );
    follow_tasks(
        &context.store,
        crate::mail::quota::warning_version_key(),
        TRAINING_BATCH,
        "quota warning",
        stop,
        move || {
            let (store, blobs, hostname) = (store.clone(), blobs.clone(), hostname.clone());
            Box::pin(async move {
                quota_warning::run_pending(&store, &blobs, &hostname, TRAINING_BATCH).await
            })
        },
    )
    .await
}

/// Runs `round` (which handles up to `batch` durable tasks) whenever `version_key` moves, and
/// every [`IDLE_RESCAN`], until stopped; a round that handled a full batch runs again at once.
async fn follow_tasks<F>(
    store: &Store,
    version_key: Vec<u8>,
    batch: usize,
    what: &'static str,
    mut stop: watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> crate::store::BoxFuture<'static, crate::store::StoreResult<usize>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        let woken = store.watch(&version_key);
        let handled = match round().await {
            Ok(handled) => handled,
            Err(error) => {
                tracing::warn!(%error, "{what} failed; retrying");
                0
            }
        };
        if handled == batch {
            continue;
        }
        tokio::select! {
            _ = woken => {}
            () = tokio::time::sleep(IDLE_RESCAN) => {}
            () = stop_requested(&mut stop) => return,
        }
    }
}
