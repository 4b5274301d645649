//! The outbound actor: owns the sending of queued messages. It wakes when something is
//! enqueued (a store watch on the queue's version key, so an enqueue through any node counts),
//! when the earliest scheduled attempt comes due (one range read of the schedule index), when
//! an attempt finishes, and on its bounded mailbox ([`Command`]).
//!
//! Each round claims the due messages it has room for in ONE transaction (a claim moves the
//! schedule key to the claim's expiry, so a dead attempt is retried), then runs one task per
//! message, at most `concurrency` at once and `per_domain_concurrency` sessions per domain.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::clock::SharedClock;
use super::config::OutboundConfig;
use super::outcome::Finisher;
use super::queue::{self, OutboundMessage};
use super::transport::{ConnectionPool, TransportSettings};
use crate::auth::Directory;
use crate::store::blob::BlobStore;
use crate::store::ownership::OwnedElsewhere;
use crate::store::{Store, StoreErrorKind, StoreResult};

/// Messages the actor accepts.
#[derive(Debug)]
pub enum Command {
    /// Look at the queue now (an admin retry, a test that moved the clock).
    Wake,
    /// Finish the running attempts' bookkeeping and stop.
    Stop,
}

/// How long an account found owned by another live node is left to it before asking again.
const OWNED_ELSEWHERE_RECHECK: Duration = Duration::from_secs(1);
/// Accounts remembered as other nodes' at most.
const OWNED_ELSEWHERE_CAPACITY: usize = 100_000;

/// What every attempt needs.
pub struct Context {
    pub store: Store,
    pub blobs: BlobStore,
    pub directory: Directory,
    pub clock: SharedClock,
    pub transport: TransportSettings,
    pub config: OutboundConfig,
    /// The name in EHLO and in DSNs' Reporting-MTA.
    pub hostname: String,
    /// This process's claim owner id.
    pub owner: u64,
    domain_limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Open SMTP sessions kept for the next message to the same host.
    pub(super) connections: ConnectionPool,
    /// Commits the ends of attempts together (set when the actor starts).
    pub(super) finisher: Option<Finisher>,
    /// On a cluster: accounts whose messages another live node's actor sends.
    owned_elsewhere: Arc<OwnedElsewhere>,
}

impl Context {
    pub fn new(
        store: Store,
        directory: Directory,
        clock: SharedClock,
        transport: TransportSettings,
        config: OutboundConfig,
    ) -> Context {
        let hostname = transport.helo_name.clone();
        Context {
            blobs: BlobStore::new(store.clone()),
            store,
            directory,
            clock,
            transport,
            config,
            hostname,
            owner: rand::random(),
            domain_limits: Mutex::new(HashMap::new()),
            connections: ConnectionPool::default(),
            finisher: None,
            owned_elsewhere: Arc::new(OwnedElsewhere::new(
                OWNED_ELSEWHERE_RECHECK,
                OWNED_ELSEWHERE_CAPACITY,
            )),
        }
    }

    /// The semaphore limiting sessions to `domain`.
    pub(super) fn domain_limit(&self, domain: &str) -> Arc<Semaphore> {
        let mut limits = self
            .domain_limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(
            limits.entry(domain.to_owned()).or_insert_with(|| {
                Arc::new(Semaphore::new(self.config.per_domain_concurrency.max(1)))
            }),
        )
    }
}

/// The running actor.
pub struct OutboundHandle {
    mailbox: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl OutboundHandle {
    /// Asks the actor to look at the queue now (never blocks; a full mailbox already has a
    /// wake-up in it).
    pub fn wake(&self) {
        let _ = self.mailbox.try_send(Command::Wake);
    }

    /// Stops the actor; attempts in flight are abandoned (their claims lapse and they are
    /// retried, after a restart at once).
    pub async fn stop(self) {
        let _ = self.mailbox.send(Command::Stop).await;
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "outbound actor task failed");
        }
    }
}

/// Starts the actor. `single_process`: the store is the embedded one, so claims left by an
/// earlier process are dead and released at once (crash recovery without waiting).
pub async fn start(mut context: Context, single_process: bool) -> StoreResult<OutboundHandle> {
    let settings = super::rate::RateSettings {
        per_hour: context.config.rate_per_hour,
        burst: context.config.rate_burst,
    };
    super::rate::store_settings(&context.store, settings).await?;
    if single_process {
        let owner = context.owner;
        let released = context
            .store
            .transact(|tx| Box::pin(async move { queue::release_stale_claims(tx, owner, 0).await }))
            .await?;
        if released > 0 {
            tracing::info!(
                released,
                "outbound: resuming attempts interrupted by a restart"
            );
        }
    }
    context.finisher = Some(Finisher::start(
        context.store.clone(),
        context.config.clone(),
    ));
    let (mailbox, receiver) = mpsc::channel(16);
    let task = tokio::spawn(run(Arc::new(context), receiver));
    Ok(OutboundHandle { mailbox, task })
}

async fn run(context: Arc<Context>, mut mailbox: mpsc::Receiver<Command>) {
    let permits = Arc::new(Semaphore::new(context.config.concurrency.max(1)));
    let in_flight: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let finished = Arc::new(Notify::new());
    let mut attempts = tokio::task::JoinSet::new();
    loop {
        let changed = context.store.watch(&queue::version_key());
        let now = context.clock.now();
        let room = permits.available_permits();
        if room > 0 {
            let busy: Vec<u64> = lock(&in_flight).iter().copied().collect();
            match claim_due(&context, now, room, busy).await {
                Ok(claimed) => {
                    for message in claimed {
                        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                            break;
                        };
                        lock(&in_flight).insert(message.id);
                        let context = Arc::clone(&context);
                        let in_flight = Arc::clone(&in_flight);
                        let finished = Arc::clone(&finished);
                        attempts.spawn(async move {
                            let id = message.id;
                            match super::attempt::run(&context, message).await {
                                Ok(()) => {}
                                Err(error) if error.kind == StoreErrorKind::NotOwner => {
                                    tracing::warn!(queue_id = id, %error, "outbound: deposed; the new claimer's attempt decides");
                                }
                                Err(error) => {
                                    tracing::warn!(queue_id = id, %error, "outbound: attempt failed; retrying later");
                                    retry_later(&context, id).await;
                                }
                            }
                            lock(&in_flight).remove(&id);
                            drop(permit);
                            finished.notify_one();
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "outbound: claiming due messages failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        while attempts.try_join_next().is_some() {}
        context.connections.sweep();
        let next = context
            .store
            .read(|tx| Box::pin(async move { queue::next_wakeup(tx).await }))
            .await
            .unwrap_or(None);
        let wait_for_time = match next {
            Some(at) if at > now => Some(context.clock.sleep_until(at)),
            // Due but not claimable now (no room, or our own attempt): an attempt's end or a
            // short pause brings the next round.
            Some(_) => Some(context.clock.sleep_until(now)),
            None => None,
        };
        let due_now = next.is_some_and(|at| at <= now);
        // Kept SMTP sessions are closed once idle too long, even when nothing else happens.
        let sessions_open = context.connections.idle_count() > 0;
        tokio::select! {
            () = async {
                if sessions_open {
                    tokio::time::sleep(super::transport::IDLE_LIMIT).await;
                } else {
                    std::future::pending().await
                }
            } => {}
            fired = changed => {
                if fired.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            () = async {
                match wait_for_time {
                    Some(sleep) if !due_now => sleep.await,
                    Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    None => std::future::pending().await,
                }
            } => {}
            () = finished.notified() => {}
            command = mailbox.recv() => match command {
                Some(Command::Wake) => {}
                Some(Command::Stop) | None => break,
            },
        }
    }
    attempts.abort_all();
    while attempts.join_next().await.is_some() {}
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Claims up to `room` due messages not in `busy`, in one transaction. On a cluster only
/// messages of accounts this node owns are claimed (an attempt's commits are the account's,
/// fenced by its owner); the accounts of the others are claimed for this node when they have
/// no live owner, so their messages are taken in the next round, and are otherwise left to
/// their owner's actor.
async fn claim_due(
    context: &Context,
    now: i64,
    room: usize,
    busy: Vec<u64>,
) -> StoreResult<Vec<OutboundMessage>> {
    let owner = context.owner;
    let until = now.saturating_add(
        i64::try_from(context.config.claim_seconds.saturating_mul(1_000)).unwrap_or(i64::MAX),
    );
    // Bounded: a batch is far under the transaction limits.
    let room = room.min(256);
    let fence = context.store.fence().cloned();
    let elsewhere = Arc::clone(&context.owned_elsewhere);
    let unowned: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
    let claimed = context
        .store
        .transact(|tx| {
            let busy = busy.clone();
            let fence = fence.clone();
            let elsewhere = Arc::clone(&elsewhere);
            let unowned = Arc::clone(&unowned);
            Box::pin(async move {
                let mine = |account_id: u32| match &fence {
                    None => true,
                    Some(fence) if fence.holds(account_id) => true,
                    Some(_) => {
                        if !elsewhere.contains(account_id) {
                            lock(&unowned).insert(account_id);
                        }
                        false
                    }
                };
                let due = queue::due(tx, now, room + busy.len()).await?;
                let mut claimed = Vec::new();
                for (at, id) in due {
                    if claimed.len() >= room || busy.contains(&id) {
                        continue;
                    }
                    if let Some(message) =
                        queue::claim_for(tx, at, id, owner, now, until, &mine).await?
                    {
                        claimed.push(message);
                    }
                }
                Ok(claimed)
            })
        })
        .await?;
    if let Some(fence) = &fence {
        let accounts: Vec<u32> = lock(&unowned).iter().copied().collect();
        for account_id in accounts {
            match crate::store::ownership::ensure_owned(&context.store, fence, account_id).await? {
                // Ours now: the next round (at most 200 ms away: its messages are due) takes
                // them.
                Ok(_epoch) => {}
                Err(_owner) => context.owned_elsewhere.remember(account_id),
            }
        }
    }
    Ok(claimed)
}

/// After an attempt failed on a store error: drop the claim and try again in a minute (unless
/// another worker holds the message by now: its claim is not ours to drop).
async fn retry_later(context: &Context, id: u64) {
    let at = context.clock.now().saturating_add(60_000);
    let owner = context.owner;
    let outcome = context
        .store
        .transact(|tx| {
            Box::pin(async move {
                let Some(mut message) = queue::load(tx, id).await? else {
                    return Ok(());
                };
                if !message.claimed_by(owner) {
                    return Ok(());
                }
                message.claim = None;
                for recipient in &mut message.recipients {
                    if recipient.state == queue::RecipientState::Pending {
                        recipient.next_attempt_at = recipient.next_attempt_at.max(at);
                    }
                }
                queue::save(tx, &mut message)
            })
        })
        .await;
    if let Err(error) = outcome {
        // The claim lapses by itself.
        tracing::warn!(queue_id = id, %error, "outbound: could not reschedule");
    }
}
