//! The fan-out: one watcher task per account with listeners, publishing the account's type
//! states on a coalescing channel and offering them to the account's direct targets (WebSocket
//! connections that take pre-encoded frames without their task being woken). See the module
//! docs of `push` for the invariants.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::state_change::{PushFilter, PushState, websocket_state_change};
use crate::store::commit::{DataType, read_account_version, read_all_states, watch_account};
use crate::store::{Store, StoreResult};

/// Every type's state in one account, read in one snapshot after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStates {
    pub account_id: u32,
    /// The account's commit version at the read.
    pub version: u64,
    /// `(type, state version)` for every type that ever changed, sorted by type.
    pub states: Vec<(DataType, u64)>,
    /// The WebSocket StateChange of this value for the common listener, encoded once for
    /// every socket of the account (see [`SharedStateChange`]); `None` for a watcher's first
    /// value, or when only unpushed types changed.
    pub shared: Option<SharedStateChange>,
}

/// The RFC 8887 StateChange (with `pushState`) that a listener of every type receives when it
/// was last told the states of version `since_version`: with 1,000 sockets on one account,
/// one JSON encoding and one WebSocket frame per commit instead of one per socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedStateChange {
    pub since_version: u64,
    /// UTF-8 JSON text; cloning shares the bytes (a slice of `frame`).
    pub text: bytes::Bytes,
    /// The complete server-to-client WebSocket text frame carrying `text`: FIN, opcode 1,
    /// unmasked (RFC 6455 §5.1: a server never masks), so it can be written to any socket as
    /// it is.
    pub frame: bytes::Bytes,
}

impl SharedStateChange {
    pub(crate) fn new(since_version: u64, text: String) -> SharedStateChange {
        let frame = websocket_text_frame(text.as_bytes());
        let text = frame.slice(frame.len() - text.len()..);
        SharedStateChange {
            since_version,
            text,
            frame,
        }
    }
}

/// One final, unmasked text frame (RFC 6455 §5.2): the payload length in 7 bits, or 126 and
/// 16 bits, or 127 and 64 bits, in network byte order.
fn websocket_text_frame(payload: &[u8]) -> bytes::Bytes {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81);
    match payload.len() {
        length @ 0..=125 => frame.push(length as u8),
        length @ 126..=0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(length as u16).to_be_bytes());
        }
        length => {
            frame.push(127);
            frame.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    bytes::Bytes::from(frame)
}

/// A listener the watcher hands each new value to directly, on the watcher's own task: no
/// wake-up of the listener's task when it can take the value at once (a WebSocket writing a
/// shared pre-encoded frame to an idle socket). `offer` must never block or wait: a listener
/// that cannot take the value now keeps the newest one (coalescing) and wakes its own task.
pub trait DirectTarget: Send + Sync {
    fn offer(&self, states: &Arc<AccountStates>);
}

/// Keeps a [`DirectTarget`] registered with its account's watcher; dropping it unregisters.
pub struct DirectRegistration {
    targets: Option<(Arc<Targets>, u64)>,
}

impl Drop for DirectRegistration {
    fn drop(&mut self) {
        if let Some((targets, id)) = self.targets.take() {
            lock(&targets).remove(&id);
        }
    }
}

type Targets = Mutex<HashMap<u64, Arc<dyn DirectTarget>>>;

/// Below this many direct targets the watcher offers to all of them itself; from it on, half
/// go to a second task so both worker threads write (each `write` to a loopback socket also
/// runs the receiving side of TCP, ≈ 10 µs on this class of machine).
const PARALLEL_FAN_OUT_FROM: usize = 128;

impl AccountStates {
    pub fn state_of(&self, data_type: DataType) -> Option<u64> {
        self.states
            .binary_search_by_key(&data_type, |(known, _)| *known)
            .ok()
            .map(|index| self.states[index].1)
    }
}

/// What a listener holds: the latest states of its account (`None` until the watcher's first
/// read). Only the newest value is kept, which is what coalesces a slow listener.
pub type StatesReceiver = watch::Receiver<Option<Arc<AccountStates>>>;
type StatesSender = watch::Sender<Option<Arc<AccountStates>>>;

/// The per-account fan-out of state changes. Cheap to clone.
#[derive(Clone)]
pub struct PushHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    store: Store,
    /// Accounts with a live watcher. An entry exists exactly while its watcher runs: the
    /// watcher removes it, under this lock, when it sees no receiver left.
    accounts: Mutex<HashMap<u32, AccountEntry>>,
    stop: watch::Sender<bool>,
    next_target_id: AtomicU64,
}

struct AccountEntry {
    sender: StatesSender,
    /// Shared with the watcher, which offers every new value to each.
    targets: Arc<Targets>,
    /// When the watcher last woke for a commit (see [`PushHub::last_commit_seen`]).
    commit_seen: Arc<CommitSeen>,
    /// Wakes the watcher without the store's watch ([`PushHub::poke`]).
    poke: Arc<tokio::sync::Notify>,
}

type CommitSeen = Mutex<Option<Instant>>;

/// Bounds the retry delay after a store error in a watcher.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl PushHub {
    pub fn new(store: Store) -> PushHub {
        PushHub {
            inner: Arc::new(HubInner {
                store,
                accounts: Mutex::new(HashMap::new()),
                stop: watch::channel(false).0,
                next_target_id: AtomicU64::new(1),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Listens to `account_id`'s states. The first value arrives after the watcher's first
    /// read; use [`PushHub::current`] to wait for it.
    pub fn subscribe(&self, account_id: u32) -> StatesReceiver {
        let mut accounts = lock(&self.inner.accounts);
        if let Some(entry) = accounts.get(&account_id) {
            return entry.sender.subscribe();
        }
        let (sender, receiver) = watch::channel(None);
        let targets = Arc::new(Targets::default());
        let commit_seen = Arc::new(CommitSeen::default());
        let poke = Arc::new(tokio::sync::Notify::new());
        accounts.insert(
            account_id,
            AccountEntry {
                sender: sender.clone(),
                targets: Arc::clone(&targets),
                commit_seen: Arc::clone(&commit_seen),
                poke: Arc::clone(&poke),
            },
        );
        drop(accounts);
        tokio::spawn(watch_account_states(
            Arc::clone(&self.inner),
            Watcher {
                account_id,
                sender,
                targets,
                commit_seen,
                poke,
            },
        ));
        receiver
    }

    /// [`PushHub::poke`] as a function that does not keep the hub alive (for the store's
    /// commit listener: the hub holds the store, so a strong reference would be a cycle).
    pub fn poker(&self) -> impl Fn(u32) + Send + Sync + 'static {
        let hub = Arc::downgrade(&self.inner);
        move |account_id| {
            if let Some(inner) = hub.upgrade() {
                PushHub { inner }.poke(account_id);
            }
        }
    }

    /// Tells the watcher of `account_id`, if anybody listens to it, that the account has just
    /// committed: it reads the states now instead of when the store's watch fires. A hint with
    /// no effect on correctness (the read is what counts; a spurious poke reads the same
    /// version and publishes nothing). FoundationDB fires a watch only when a storage server
    /// next applies a version, ≈ 10 ms later on an idle cluster: the committing process (and,
    /// on a cluster, every node it hints) pokes instead.
    /// Returns whether anybody listens to the account here.
    pub fn poke(&self, account_id: u32) -> bool {
        let accounts = lock(&self.inner.accounts);
        let Some(entry) = accounts.get(&account_id) else {
            return false;
        };
        *lock(&entry.commit_seen) = Some(Instant::now());
        // A permit is kept if the watcher is busy reading: it reads once more after.
        entry.poke.notify_one();
        true
    }

    /// Offers every value published for `account_id` from now on to `target`, until the
    /// registration is dropped. The caller must hold a receiver of the account (from
    /// [`PushHub::subscribe`]) for as long: it is what keeps the watcher running. A value
    /// published between the caller's last look at its receiver and this call is not offered:
    /// look at the receiver again after registering.
    pub fn register_direct(
        &self,
        account_id: u32,
        target: Arc<dyn DirectTarget>,
    ) -> DirectRegistration {
        let accounts = lock(&self.inner.accounts);
        let Some(entry) = accounts.get(&account_id) else {
            // No watcher (the hub stopped): nothing will be published.
            return DirectRegistration { targets: None };
        };
        let id = self.inner.next_target_id.fetch_add(1, Ordering::Relaxed);
        lock(&entry.targets).insert(id, target);
        DirectRegistration {
            targets: Some((Arc::clone(&entry.targets), id)),
        }
    }

    /// Waits for the receiver's first value and returns the newest one (marking it seen).
    /// `None` when the hub stopped.
    pub async fn current(receiver: &mut StatesReceiver) -> Option<Arc<AccountStates>> {
        let value = receiver.wait_for(Option::is_some).await.ok()?;
        value.clone()
    }

    /// When the push watcher of `account_id` last woke for a commit: the store tells it before
    /// the commit returns to its writer, so this is the commit instant as push sees it (the
    /// API's `Server-Timing` reports it). `None` when nobody listens to the account.
    pub fn last_commit_seen(&self, account_id: u32) -> Option<Instant> {
        let accounts = lock(&self.inner.accounts);
        let seen = Arc::clone(&accounts.get(&account_id)?.commit_seen);
        drop(accounts);
        *lock(&seen)
    }

    /// Accounts with a running watcher (for tests and metrics).
    pub fn watched_accounts(&self) -> usize {
        lock(&self.inner.accounts).len()
    }

    /// Resolves when the hub stops (server shutdown); long-lived connections close then.
    pub fn stopped(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let mut stop = self.inner.stop.subscribe();
        Box::pin(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
    }

    /// Stops every watcher (server shutdown): listeners see their channel close.
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map stays consistent whatever panicked while holding it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn read_states(store: &Store, account_id: u32) -> StoreResult<AccountStates> {
    let mut tx = store.backend().begin().await?;
    let version = read_account_version(tx.as_mut(), account_id).await?;
    let mut states = read_all_states(tx.as_mut(), account_id).await?;
    states.sort_unstable_by_key(|(data_type, _)| *data_type);
    Ok(AccountStates {
        account_id,
        version,
        states,
        shared: None,
    })
}

/// What a listener of every type that saw `previous` is sent for `states`.
fn shared_state_change(
    previous: &AccountStates,
    states: &AccountStates,
) -> Option<SharedStateChange> {
    let all = PushFilter::all();
    let changed = PushState::from_states(previous, &all).changed(states, &all);
    if changed.is_empty() {
        return None;
    }
    let text = websocket_state_change(
        states.account_id,
        &changed,
        &PushState::from_states(states, &all),
    );
    Some(SharedStateChange::new(previous.version, text))
}

/// Offers `states` to every direct target, over both worker threads when there are many.
/// One allocation per commit (the snapshot of the targets), none per target. Yields between
/// chunks so the committing request's own answer (woken by the same commit) is not held up
/// behind a thousand pushes.
async fn fan_out(targets: &Targets, states: &Arc<AccountStates>) {
    let mut snapshot: Vec<Arc<dyn DirectTarget>> = lock(targets).values().cloned().collect();
    if snapshot.len() >= PARALLEL_FAN_OUT_FROM {
        let second_half = snapshot.split_off(snapshot.len() / 2);
        let shared = Arc::clone(states);
        tokio::spawn(async move { offer_all(&second_half, &shared).await });
    }
    offer_all(&snapshot, states).await;
}

/// Targets offered between two yields.
const FAN_OUT_CHUNK: usize = 64;

async fn offer_all(targets: &[Arc<dyn DirectTarget>], states: &Arc<AccountStates>) {
    for (index, chunk) in targets.chunks(FAN_OUT_CHUNK).enumerate() {
        if index > 0 {
            tokio::task::yield_now().await;
        }
        for target in chunk {
            target.offer(states);
        }
    }
}

/// One account's watcher: wait for a commit, read the states, publish; until no listener is
/// left or the hub stops.
/// What one account's watcher task owns.
struct Watcher {
    account_id: u32,
    sender: StatesSender,
    targets: Arc<Targets>,
    commit_seen: Arc<CommitSeen>,
    poke: Arc<tokio::sync::Notify>,
}

async fn watch_account_states(hub: Arc<HubInner>, watcher: Watcher) {
    let Watcher {
        account_id,
        sender,
        targets,
        commit_seen,
        poke,
    } = watcher;
    let mut stop = hub.stop.subscribe();
    let mut backoff = Duration::from_millis(10);
    let mut published: Option<Arc<AccountStates>> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        // Registered before the read: a commit landing after the read still fires it.
        let fired = StampOnWake {
            inner: watch_account(&hub.store, account_id),
            seen: Arc::clone(&commit_seen),
            created: Instant::now(),
        };
        match read_states(&hub.store, account_id).await {
            Ok(mut states) => {
                backoff = Duration::from_millis(10);
                if published.as_ref().map(|last| last.version) != Some(states.version) {
                    states.shared = published
                        .as_deref()
                        .and_then(|previous| shared_state_change(previous, &states));
                    let states = Arc::new(states);
                    published = Some(Arc::clone(&states));
                    sender.send_replace(Some(Arc::clone(&states)));
                    // After the channel: a target registering now sees the value there.
                    fan_out(&targets, &states).await;
                }
            }
            Err(error) => {
                tracing::warn!(account_id, %error, "push: reading account states failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        tokio::select! {
            fired = fired => {
                if let Err(error) = fired {
                    if *hub.stop.borrow() {
                        break;
                    }
                    tracing::debug!(account_id, %error, "push: account watch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            () = poke.notified() => {}
            () = sender.closed() => {
                let mut accounts = lock(&hub.accounts);
                // Re-checked under the lock: `subscribe` may just have added a receiver.
                if sender.receiver_count() == 0 {
                    accounts.remove(&account_id);
                    return;
                }
            }
            () = stop_requested(&mut stop) => break,
        }
    }
    lock(&hub.accounts).remove(&account_id);
}

/// A store watch that notes when it fires: the waker it hands the store stamps the instant on
/// the committing thread, right after the commit and before the commit returns to its writer
/// (not when this task gets a thread, which behind a fan-out on 2 busy cores is later).
struct StampOnWake {
    inner: futures_util::future::BoxFuture<'static, StoreResult<()>>,
    seen: Arc<CommitSeen>,
    created: Instant,
}

struct StampingWaker {
    task: std::task::Waker,
    seen: Arc<CommitSeen>,
}

impl std::task::Wake for StampingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *lock(&self.seen) = Some(Instant::now());
        self.task.wake_by_ref();
    }
}

impl std::future::Future for StampOnWake {
    type Output = StoreResult<()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let waker = std::task::Waker::from(Arc::new(StampingWaker {
            task: cx.waker().clone(),
            seen: Arc::clone(&self.seen),
        }));
        let outcome = self
            .inner
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
        if outcome.is_ready() {
            // Fired before it was ever waited on (the watcher was busy): now is the best
            // estimate left.
            let mut seen = lock(&self.seen);
            if seen.is_none_or(|seen| seen < self.created) {
                *seen = Some(Instant::now());
            }
        }
        outcome
    }
}

/// Resolves once the hub is told to stop (the `Ref` of `wait_for` is not `Send`).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commit::commit_account;
    use crate::store::embedded::EmbeddedBackend;

    async fn commit_email_change(store: &Store, account_id: u32, id: u64) {
        commit_account(store, account_id, move |_tx, changes| {
            Box::pin(async move {
                changes.created(DataType::Email, id);
                Ok(())
            })
        })
        .await
        .expect("commit");
    }

    /// A backend whose watches never fire: what push sees of a FoundationDB watch between a
    /// commit and the storage server's next tick.
    struct DeafWatches(EmbeddedBackend);

    impl crate::store::Backend for DeafWatches {
        fn name(&self) -> &'static str {
            "deaf"
        }
        fn begin(
            &self,
        ) -> crate::store::BoxFuture<'_, StoreResult<Box<dyn crate::store::Transaction>>> {
            self.0.begin()
        }
        fn watch(&self, _key: &[u8]) -> crate::store::BoxFuture<'static, StoreResult<()>> {
            Box::pin(std::future::pending())
        }
        fn close(&self) -> crate::store::BoxFuture<'_, StoreResult<()>> {
            self.0.close()
        }
    }

    #[tokio::test]
    async fn a_poke_publishes_a_commit_the_store_watch_has_not_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = DeafWatches(EmbeddedBackend::open(dir.path()).expect("open"));
        let store = Store::new(Arc::new(backend));
        let hub = PushHub::new(store.clone());
        let mut receiver = hub.subscribe(9);
        let initial = PushHub::current(&mut receiver).await.expect("initial");
        assert_eq!(initial.version, 0);
        assert!(store.on_account_commit(Arc::new(hub.poker())));
        assert!(!store.on_account_commit(Arc::new(|_| {})), "one listener");
        commit_email_change(&store, 9, 1).await;
        tokio::time::timeout(
            Duration::from_secs(5),
            receiver.wait_for(|states| states.as_ref().is_some_and(|s| s.version == 1)),
        )
        .await
        .expect("published without the store's watch")
        .expect("open");
        assert!(hub.last_commit_seen(9).is_some());
        // A poke of an account nobody listens to, or a spurious one, publishes nothing new.
        assert!(!hub.poke(10));
        assert!(hub.poke(9));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!receiver.has_changed().expect("open"));
        hub.shutdown();
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn listeners_see_commits_and_the_watcher_retires_with_the_last_listener() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(Arc::new(EmbeddedBackend::open(dir.path()).expect("open")));
        let hub = PushHub::new(store.clone());
        let mut first = hub.subscribe(7);
        let mut second = hub.subscribe(7);
        let mut other = hub.subscribe(8);
        assert_eq!(hub.watched_accounts(), 2);
        let initial = PushHub::current(&mut first).await.expect("initial");
        assert_eq!(initial.version, 0);
        PushHub::current(&mut other).await.expect("initial");
        commit_email_change(&store, 7, 1).await;
        tokio::time::timeout(
            Duration::from_secs(5),
            second.wait_for(|states| states.as_ref().is_some_and(|states| states.version == 1)),
        )
        .await
        .expect("published in time")
        .expect("open");
        let seen = first.borrow_and_update().clone().expect("states");
        assert_eq!(seen.state_of(DataType::Email), Some(1));
        // Encoded once for every listener that knew version 0.
        let shared = seen.shared.clone().expect("a shared StateChange");
        assert_eq!(shared.since_version, 0);
        let text: serde_json::Value = serde_json::from_slice(&shared.text).expect("JSON");
        assert_eq!(text["@type"], "StateChange");
        assert_eq!(text["pushState"], "3.1");
        assert_eq!(
            text["changed"]["a7"]["Email"],
            crate::jmap::types::State::new(1).to_string()
        );
        assert_eq!(seen.state_of(DataType::Mailbox), None);
        assert!(
            !other.has_changed().expect("open"),
            "another account's commit leaked"
        );
        drop(first);
        drop(second);
        // Wakes the watcher so it notices that nobody listens any more.
        tokio::time::timeout(Duration::from_secs(5), async {
            while hub.watched_accounts() != 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the watcher of account 7 retired");
        // A new listener of the retired account gets a new watcher with the current states.
        let mut again = hub.subscribe(7);
        let states = PushHub::current(&mut again).await.expect("states");
        assert_eq!(states.version, 1);
        hub.shutdown();
        store.close().await.expect("close");
    }

    #[test]
    fn shared_frames_are_unmasked_text_frames_in_all_three_length_forms() {
        for (length, header) in [
            (5usize, vec![0x81, 5]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (70_000, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]),
        ] {
            let text = "x".repeat(length);
            let shared = SharedStateChange::new(4, text.clone());
            assert_eq!(&shared.frame[..header.len()], header.as_slice(), "{length}");
            assert_eq!(shared.frame.len(), header.len() + length);
            assert_eq!(shared.text, text.as_bytes());
        }
    }

    /// Records the versions it is offered.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<u64>>);

    impl DirectTarget for Recorder {
        fn offer(&self, states: &Arc<AccountStates>) {
            self.0.lock().expect("lock").push(states.version);
        }
    }

    #[tokio::test]
    async fn direct_targets_are_offered_each_value_until_unregistered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(Arc::new(EmbeddedBackend::open(dir.path()).expect("open")));
        let hub = PushHub::new(store.clone());
        let mut receiver = hub.subscribe(5);
        PushHub::current(&mut receiver).await.expect("initial");
        let leaving = Arc::new(Recorder::default());
        let staying = Arc::new(Recorder::default());
        // Enough targets that half of them are offered from a second task.
        let crowd: Vec<Arc<Recorder>> = (0..PARALLEL_FAN_OUT_FROM)
            .map(|_| Arc::new(Recorder::default()))
            .collect();
        let registration = hub.register_direct(5, leaving.clone());
        let _staying = hub.register_direct(5, staying.clone());
        let _crowd: Vec<DirectRegistration> = crowd
            .iter()
            .map(|target| hub.register_direct(5, target.clone()))
            .collect();
        let offered =
            |target: &Recorder, version: u64| target.0.lock().expect("lock").contains(&version);
        let until_offered = |target: Arc<Recorder>, version: u64| async move {
            tokio::time::timeout(Duration::from_secs(5), async {
                while !target.0.lock().expect("lock").contains(&version) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await
            .expect("offered in time");
        };
        commit_email_change(&store, 5, 1).await;
        until_offered(staying.clone(), 1).await;
        for target in &crowd {
            until_offered(target.clone(), 1).await;
        }
        assert!(offered(&leaving, 1));
        // The shared frame comes along for listeners that saw version 0.
        let published = receiver.borrow().clone().expect("states");
        assert_eq!(
            published.shared.as_ref().map(|shared| shared.since_version),
            Some(0)
        );
        drop(registration);
        commit_email_change(&store, 5, 2).await;
        until_offered(staying.clone(), 2).await;
        assert!(!offered(&leaving, 2), "offered after unregistering");
        // (The initial value may or may not have been offered: it raced the registration.)
        let versions: Vec<u64> = staying.0.lock().expect("lock").clone();
        assert_eq!(
            versions
                .into_iter()
                .filter(|version| *version > 0)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        hub.shutdown();
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_stalled_listener_is_coalesced_and_does_not_block_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(Arc::new(EmbeddedBackend::open(dir.path()).expect("open")));
        let hub = PushHub::new(store.clone());
        let stalled = hub.subscribe(3);
        let mut live = hub.subscribe(3);
        PushHub::current(&mut live).await.expect("initial");
        for id in 1..=20 {
            commit_email_change(&store, 3, id).await;
            tokio::time::timeout(
                Duration::from_secs(5),
                live.wait_for(|states| states.as_ref().is_some_and(|states| states.version == id)),
            )
            .await
            .expect("the live listener keeps up")
            .expect("open");
        }
        // The stalled one never read: it holds only the newest value, not twenty.
        let latest = stalled.borrow().clone().expect("states");
        assert_eq!(latest.version, 20);
        hub.shutdown();
        store.close().await.expect("close");
    }
}
