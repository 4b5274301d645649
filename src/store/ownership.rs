//! Single primary per account, fenced in the store (`schema/cluster.md`).
//!
//! Several Tern nodes share one FoundationDB cluster. Each account has at most one owner at a
//! time, recorded under `CLUSTER, CLUSTER_OWNER, account_id` as `(node, epoch)`. The epoch
//! grows by one at every change of owner, and only three writes change it: a node's claim (the
//! account had no owner, or its owner's liveness expired), a release (graceful hand-over), and
//! an operator's move.
//!
//! Fencing: [`Fence::admit`] runs inside every account commit (`commit::commit_account`) and
//! reads the owner record in that same transaction. The read puts the record in the
//! transaction's read-conflict set, so:
//! - a node that does not hold `(itself, epoch)` in the record cannot commit for the account;
//! - a takeover that commits between this node's read and its commit makes the commit fail
//!   with a conflict (FoundationDB's serializability), and the retry reads the new owner and
//!   is refused.
//!
//! So a deposed node — paused, partitioned or slow — never commits for the account again,
//! whatever it believes; no clock is trusted for safety. Liveness (heartbeats, leases) only
//! decides *when* another node may claim, i.e. availability.
//!
//! Liveness is per node, not per account: each node writes its heartbeat counter blindly
//! (no reads, so beats never conflict) every `heartbeat_interval`; every node observes the
//! counters and declares a node expired when its counter has not moved for `lease` on the
//! observer's own monotonic clock (`cluster::liveness`). A billion accounts cost no renewals.
//! Accounts of an expired node are claimed lazily, by the first node that needs each one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::keys::{
    CLUSTER_HEARTBEAT, CLUSTER_NODE, CLUSTER_OWNER, CLUSTER_SECRET, KeyBuilder, SUBSPACE_CLUSTER,
    be_u64,
};
use super::{KeyRange, RangeOptions, Store, StoreError, StoreErrorKind, StoreResult, Transaction};

/// A node incarnation: random and non-zero, drawn at every process start, so a restarted node
/// is a new node and can never mistake an old ownership for its own.
pub type NodeId = u64;

/// The "owner" of a deleted account: no node is this one and none may claim from it, so no
/// commit for the account can ever be admitted again (see [`retire`]).
pub const RETIRED: NodeId = u64::MAX;

/// Draws a fresh node id.
pub fn new_node_id() -> NodeId {
    loop {
        let id = rand::random::<u64>();
        if id != 0 && id != RETIRED {
            return id;
        }
    }
}

/// The owner record of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// `None`: released or never claimed.
    pub node: Option<NodeId>,
    /// Grows by one at every change of owner; 0 for an account never claimed.
    pub epoch: u64,
}

impl Owner {
    pub const NONE: Owner = Owner {
        node: None,
        epoch: 0,
    };

    /// The account was deleted: nothing may write it again.
    pub fn is_retired(self) -> bool {
        self.node == Some(RETIRED)
    }

    fn encode(self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.node.unwrap_or(0).to_be_bytes());
        bytes[8..].copy_from_slice(&self.epoch.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> StoreResult<Owner> {
        if bytes.len() != 16 {
            return Err(StoreError::corrupt(
                "an account owner record is not 16 bytes",
            ));
        }
        let node = be_u64(&bytes[..8]).unwrap_or(0);
        let epoch = be_u64(&bytes[8..]).unwrap_or(0);
        Ok(Owner {
            node: (node != 0).then_some(node),
            epoch,
        })
    }
}

pub fn owner_key(account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_CLUSTER)
        .u8(CLUSTER_OWNER)
        .u32(account_id)
        .build()
}

fn node_key(node: NodeId) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_CLUSTER)
        .u8(CLUSTER_NODE)
        .u64(node)
        .build()
}

fn heartbeat_key(node: NodeId) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_CLUSTER)
        .u8(CLUSTER_HEARTBEAT)
        .u64(node)
        .build()
}

fn secret_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_CLUSTER).u8(CLUSTER_SECRET).build()
}

pub async fn read_owner(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Owner> {
    match tx.get(&owner_key(account_id)).await? {
        Some(bytes) => Owner::decode(&bytes),
        None => Ok(Owner::NONE),
    }
}

pub fn write_owner(tx: &mut dyn Transaction, account_id: u32, owner: Owner) -> StoreResult<()> {
    tx.set(&owner_key(account_id), &owner.encode())
}

/// Inside the transaction that deletes `account_id`: its owner record becomes
/// `(RETIRED, epoch + 1)`. Every account commit reads this record in its own transaction
/// (`Fence::admit`), so from this commit on no node can write the account, not even its
/// owner with a request in flight: nothing can land behind the purge that clears its data.
/// The record stays (16 bytes; account ids are never reused).
pub async fn retire(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<()> {
    let owner = read_owner(tx, account_id).await?;
    write_owner(
        tx,
        account_id,
        Owner {
            node: Some(RETIRED),
            epoch: owner.epoch + 1,
        },
    )
}

/// Owner records after `after` (exclusive), at most `limit`: the paged scan behind
/// `tern cluster status` (one page per transaction, far inside FoundationDB's 5 s).
pub async fn owners_page(
    store: &Store,
    after: Option<u32>,
    limit: usize,
) -> StoreResult<Vec<(u32, Owner)>> {
    let prefix = KeyBuilder::new(SUBSPACE_CLUSTER).u8(CLUSTER_OWNER).build();
    let mut range = KeyRange::prefix(&prefix);
    if let Some(after) = after {
        range.begin = owner_key(after);
        range.begin.push(0);
    }
    store
        .read(|tx| {
            Box::pin(async move {
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
                    .into_iter()
                    .map(|(key, value)| {
                        let id = key
                            .get(prefix.len()..prefix.len() + 4)
                            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                            .map(u32::from_be_bytes)
                            .ok_or_else(|| StoreError::corrupt("malformed owner key"))?;
                        Ok((id, Owner::decode(&value)?))
                    })
                    .collect()
            })
        })
        .await
}

/// What a node says about itself in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Serving and claiming accounts.
    Active,
    /// Handing its accounts over (SIGTERM or `tern cluster drain`); claims nothing new.
    Draining,
    /// Gone after a graceful shutdown; its accounts are claimable at once.
    Left,
}

/// A node's registry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    /// The operator's name for the node (`cluster.node_name`).
    pub name: String,
    /// Where other nodes forward requests for the accounts it owns.
    pub url: String,
    pub state: NodeState,
    /// Unix seconds.
    pub registered_at: i64,
}

pub fn write_node(tx: &mut dyn Transaction, record: &NodeRecord) -> StoreResult<()> {
    let bytes = serde_json::to_vec(record).map_err(StoreError::io)?;
    tx.set(&node_key(record.id), &bytes)
}

pub async fn read_node(tx: &mut dyn Transaction, node: NodeId) -> StoreResult<Option<NodeRecord>> {
    match tx.get(&node_key(node)).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::corrupt(format!("node record: {error}"))),
        None => Ok(None),
    }
}

/// Removes a node's record and heartbeat (the registry's garbage collection).
pub fn remove_node(tx: &mut dyn Transaction, node: NodeId) -> StoreResult<()> {
    tx.clear(&node_key(node))?;
    tx.clear(&heartbeat_key(node))
}

/// A blind write: no read, so concurrent beats of different nodes never conflict.
pub fn write_heartbeat(tx: &mut dyn Transaction, node: NodeId, beat: u64) -> StoreResult<()> {
    tx.set(&heartbeat_key(node), &beat.to_be_bytes())
}

/// Every registered node with its current beat counter (0 when it never beat).
pub async fn read_nodes(tx: &mut dyn Transaction) -> StoreResult<Vec<(NodeRecord, u64)>> {
    let all = RangeOptions {
        limit: 0,
        reverse: false,
    };
    let node_prefix = KeyBuilder::new(SUBSPACE_CLUSTER).u8(CLUSTER_NODE).build();
    let beat_prefix = KeyBuilder::new(SUBSPACE_CLUSTER)
        .u8(CLUSTER_HEARTBEAT)
        .build();
    let records = tx.get_range(&KeyRange::prefix(&node_prefix), all).await?;
    let beats = tx.get_range(&KeyRange::prefix(&beat_prefix), all).await?;
    let beats: HashMap<Vec<u8>, u64> = beats
        .into_iter()
        .map(|(key, value)| {
            (
                key[beat_prefix.len()..].to_vec(),
                be_u64(&value).unwrap_or(0),
            )
        })
        .collect();
    records
        .into_iter()
        .map(|(key, value)| {
            let record: NodeRecord = serde_json::from_slice(&value)
                .map_err(|error| StoreError::corrupt(format!("node record: {error}")))?;
            let beat = beats.get(&key[node_prefix.len()..]).copied().unwrap_or(0);
            Ok((record, beat))
        })
        .collect()
}

/// The secret that authenticates node-to-node requests: created by the first node, shared by
/// all through the store (whoever can read the store is inside the cluster anyway).
pub async fn load_or_create_secret(store: &Store) -> StoreResult<[u8; 32]> {
    store
        .transact(|tx| {
            Box::pin(async move {
                if let Some(bytes) = tx.get(&secret_key()).await? {
                    return <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| StoreError::corrupt("the cluster secret is not 32 bytes"));
                }
                let secret: [u8; 32] = rand::random();
                tx.set(&secret_key(), &secret)?;
                Ok(secret)
            })
        })
        .await
}

/// How this node currently sees another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Its beat did not move for a whole lease, it left, or it is no longer registered.
    Expired,
}

/// Writes that go into every claim's transaction, registered by upper layers (the search
/// index marks the account as rebuilding, so its queries scan until the new owner's index
/// has caught up). They must only write: they run inside the commit path.
pub type ClaimHook = Arc<dyn Fn(&mut dyn Transaction, u32) -> StoreResult<()> + Send + Sync>;

/// What [`Fence::admit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// This node holds the account at this epoch.
    Owned(u64),
    /// The transaction claims the account at this new epoch (written, hooks run).
    Claimed(u64),
    /// The record names this node at an epoch it did not know (an operator's move, or a claim
    /// whose commit outcome was unknown): it is this node's from now on.
    Adopted(u64),
}

impl Admission {
    pub fn epoch(self) -> u64 {
        match self {
            Admission::Owned(epoch) | Admission::Claimed(epoch) | Admission::Adopted(epoch) => {
                epoch
            }
        }
    }
}

/// The refusal of a write for an account this node does not own.
pub fn not_owner(account_id: u32, owner: Owner) -> StoreError {
    StoreError::new(
        StoreErrorKind::NotOwner,
        format!(
            "account {account_id} is owned by node {:x?} at epoch {}",
            owner.node, owner.epoch
        ),
    )
}

/// This node's side of ownership: its identity, the accounts it holds at which epoch, and its
/// view of the other nodes' liveness (kept fresh by `cluster::liveness`).
pub struct Fence {
    me: NodeId,
    held: Mutex<HashMap<u32, u64>>,
    view: RwLock<LivenessView>,
    claim_hooks: Vec<ClaimHook>,
    /// Bumped whenever the held set changes; actors that follow ownership watch it.
    generation: watch::Sender<u64>,
    claiming: AtomicBool,
    /// A view older than this is not trusted to declare anyone expired.
    view_max_age: Duration,
}

#[derive(Default)]
struct LivenessView {
    nodes: HashMap<NodeId, Liveness>,
    refreshed: Option<Instant>,
}

impl Fence {
    pub fn new(me: NodeId, view_max_age: Duration, claim_hooks: Vec<ClaimHook>) -> Arc<Fence> {
        Arc::new(Fence {
            me,
            held: Mutex::new(HashMap::new()),
            view: RwLock::new(LivenessView::default()),
            claim_hooks,
            generation: watch::channel(0).0,
            claiming: AtomicBool::new(true),
            view_max_age,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.me
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<u32, u64>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn held_epoch(&self, account_id: u32) -> Option<u64> {
        self.held().get(&account_id).copied()
    }

    pub fn holds(&self, account_id: u32) -> bool {
        self.held().contains_key(&account_id)
    }

    /// Every account this node holds, with its epoch.
    pub fn held_accounts(&self) -> Vec<(u32, u64)> {
        let mut accounts: Vec<(u32, u64)> = self.held().iter().map(|(a, e)| (*a, *e)).collect();
        accounts.sort_unstable();
        accounts
    }

    /// Changes whenever this node gains or loses an account.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn bump(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// Replaces the liveness view (the monitor calls this after every observation).
    pub fn set_view(&self, nodes: HashMap<NodeId, Liveness>) {
        let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
        view.nodes = nodes;
        view.refreshed = Some(Instant::now());
    }

    /// How this node sees `node`: `None` when its view is stale (this process was paused, or
    /// cannot reach the store) — a stale view declares nobody expired — and
    /// `Some(None)` when the fresh view does not list the node (registered since, or removed).
    pub fn liveness(&self, node: NodeId) -> Option<Option<Liveness>> {
        let view = self.view.read().unwrap_or_else(PoisonError::into_inner);
        let fresh = view
            .refreshed
            .is_some_and(|at| at.elapsed() <= self.view_max_age);
        fresh.then(|| view.nodes.get(&node).copied())
    }

    /// Draining: from now on this node claims and adopts nothing.
    pub fn stop_claiming(&self) {
        self.claiming.store(false, Ordering::Release);
    }

    pub fn is_claiming(&self) -> bool {
        self.claiming.load(Ordering::Acquire)
    }

    /// Whether this node may claim an account whose record is `owner`: it has no owner, or
    /// its owner is expired, or no longer registered (read in `tx`, so a node that registers
    /// meanwhile is not mistaken for a removed one: its registration was committed before it
    /// could claim anything).
    async fn may_claim(&self, tx: &mut dyn Transaction, owner: Owner) -> StoreResult<bool> {
        if !self.is_claiming() {
            return Ok(false);
        }
        Ok(match owner.node {
            None => true,
            Some(RETIRED) => false,
            Some(node) if node == self.me => true,
            Some(node) => match self.liveness(node) {
                Some(Some(Liveness::Expired)) => true,
                Some(None) => read_node(tx, node).await?.is_none(),
                Some(Some(Liveness::Alive)) | None => false,
            },
        })
    }

    /// The fencing check, inside a transaction that writes `account_id`'s data (see the
    /// module docs). Claims the account when it has no live owner.
    pub async fn admit(&self, tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Admission> {
        let owner = read_owner(tx, account_id).await?;
        let held = self.held_epoch(account_id);
        if owner.node == Some(self.me) {
            if held == Some(owner.epoch) {
                return Ok(Admission::Owned(owner.epoch));
            }
            if !self.is_claiming() {
                return Err(not_owner(account_id, owner));
            }
            return Ok(Admission::Adopted(owner.epoch));
        }
        if held.is_some() {
            // Deposed: another node claimed it, or an operator moved it.
            self.forget(account_id);
        }
        if !self.may_claim(tx, owner).await? {
            return Err(not_owner(account_id, owner));
        }
        let claimed = Owner {
            node: Some(self.me),
            epoch: owner.epoch + 1,
        };
        write_owner(tx, account_id, claimed)?;
        for hook in &self.claim_hooks {
            hook(tx, account_id)?;
        }
        Ok(Admission::Claimed(claimed.epoch))
    }

    /// After the transaction that [`Fence::admit`] checked committed.
    pub fn committed(&self, account_id: u32, admission: Admission) {
        match admission {
            Admission::Owned(_) => {}
            Admission::Claimed(epoch) | Admission::Adopted(epoch) => {
                let previous = self.held().insert(account_id, epoch);
                if previous != Some(epoch) {
                    tracing::info!(account_id, epoch, ?admission, "account owned by this node");
                    self.bump();
                }
            }
        }
    }

    /// This node no longer holds `account_id` (refused by the fence, or released).
    pub fn forget(&self, account_id: u32) {
        if self.held().remove(&account_id).is_some() {
            tracing::info!(account_id, "account no longer owned by this node");
            self.bump();
        }
    }

    /// Runs the claim hooks in an operator's move (`tern cluster move`), so the receiving node
    /// starts exactly as if it had claimed the account itself.
    pub fn run_claim_hooks(&self, tx: &mut dyn Transaction, account_id: u32) -> StoreResult<()> {
        for hook in &self.claim_hooks {
            hook(tx, account_id)?;
        }
        Ok(())
    }
}

/// Makes sure this node owns `account_id` (claiming it when it has no live owner) and returns
/// the epoch, or the current owner when another live node holds it.
pub async fn ensure_owned(
    store: &Store,
    fence: &Arc<Fence>,
    account_id: u32,
) -> StoreResult<Result<u64, Owner>> {
    let outcome = store
        .transact(|tx| {
            let fence = Arc::clone(fence);
            Box::pin(async move {
                match fence.admit(tx, account_id).await {
                    Ok(admission) => Ok(Ok(admission)),
                    Err(error) if error.kind == StoreErrorKind::NotOwner => {
                        Ok(Err(read_owner(tx, account_id).await?))
                    }
                    Err(error) => Err(error),
                }
            })
        })
        .await?;
    Ok(outcome.map(|admission| {
        fence.committed(account_id, admission);
        admission.epoch()
    }))
}

/// Gives `account_id` up: the record becomes `(none, epoch + 1)` if this node still holds it,
/// so the next node that needs it claims it at once (graceful hand-over).
pub async fn release(store: &Store, fence: &Arc<Fence>, account_id: u32) -> StoreResult<()> {
    let me = fence.node_id();
    store
        .transact(|tx| {
            Box::pin(async move {
                let owner = read_owner(tx, account_id).await?;
                if owner.node == Some(me) {
                    write_owner(
                        tx,
                        account_id,
                        Owner {
                            node: None,
                            epoch: owner.epoch + 1,
                        },
                    )?;
                }
                Ok(())
            })
        })
        .await?;
    fence.forget(account_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_records_round_trip() {
        for owner in [
            Owner::NONE,
            Owner {
                node: Some(7),
                epoch: 3,
            },
            Owner {
                node: None,
                epoch: 9,
            },
        ] {
            assert_eq!(Owner::decode(&owner.encode()).unwrap(), owner);
        }
        assert!(Owner::decode(b"short").is_err());
    }
}

/// Accounts another live node owned when an actor last asked, trusted for a moment so that
/// actors reading a shared queue (delivery, outbound) skip the other nodes' entries without an
/// ownership read per entry. After `recheck` they ask again: the owner may have died.
pub struct OwnedElsewhere {
    until: Mutex<HashMap<u32, Instant>>,
    recheck: Duration,
    capacity: usize,
}

impl OwnedElsewhere {
    pub fn new(recheck: Duration, capacity: usize) -> OwnedElsewhere {
        OwnedElsewhere {
            until: Mutex::new(HashMap::new()),
            recheck,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Instant>> {
        self.until
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether `account_id` was found owned elsewhere less than `recheck` ago.
    pub fn contains(&self, account_id: u32) -> bool {
        let mut until = self.lock();
        match until.get(&account_id) {
            Some(at) if *at > Instant::now() => true,
            Some(_) => {
                until.remove(&account_id);
                false
            }
            None => false,
        }
    }

    pub fn remember(&self, account_id: u32) {
        let mut until = self.lock();
        let now = Instant::now();
        if until.len() >= self.capacity {
            until.retain(|_, at| *at > now);
            if until.len() >= self.capacity {
                // Forgetting only costs ownership reads.
                until.clear();
            }
        }
        until.insert(account_id, now + self.recheck);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod owned_elsewhere_tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_map_stays_bounded() {
        let elsewhere = OwnedElsewhere::new(Duration::from_millis(30), 3);
        elsewhere.remember(1);
        assert!(elsewhere.contains(1));
        assert!(!elsewhere.contains(2));
        for account in 2..=5 {
            elsewhere.remember(account);
        }
        assert!(elsewhere.len() <= 3, "bounded: {}", elsewhere.len());
        assert!(elsewhere.contains(5));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!elsewhere.contains(5), "expired");
    }
}
