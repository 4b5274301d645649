//! Several Tern nodes on one FoundationDB cluster (`schema/cluster.md`).
//!
//! A [`ClusterNode`] is this process's membership: it registers a node record, beats, watches
//! the other nodes' beats (`liveness`), keeps the [`Fence`] that every account commit passes
//! (`store::ownership`), answers where an account's requests must go ([`ClusterNode::route`]),
//! and hands its accounts over when it stops or an operator drains it.
//!
//! Actors follow ownership through the fence: the search indexer, the delivery filer and the
//! Web Push deliverer work only for accounts this node holds, and a write for any other
//! account is refused by the fence in the store itself.

pub mod cli;
pub mod liveness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::ownership::{
    self, ClaimHook, Fence, Liveness, NodeId, NodeRecord, NodeState, Owner,
};
use crate::store::{Store, StoreError};

use liveness::LivenessTracker;

/// `[cluster]`: this node's membership of a cluster. Reference in `config.rs`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Join the cluster of the store (needs `store.backend = "foundationdb"`).
    pub enabled: bool,
    /// The operator's name for this node; default: host name and HTTP port.
    pub node_name: Option<String>,
    /// Where other nodes send requests for accounts this node owns; default:
    /// `http://<server.http>`.
    pub advertise_url: Option<String>,
    pub heartbeat_interval_ms: u64,
    /// A node whose beat did not move for this long is expired and its accounts claimable.
    pub lease_ms: u64,
    /// How long a request forwarded to an owner may take.
    pub forward_timeout_seconds: u64,
    /// Registry records of nodes expired for this long are removed.
    pub forget_nodes_after_seconds: u64,
    /// Tell the other nodes of each account commit, so their push listeners hear of it
    /// without waiting for FoundationDB's watch (`http::hints`).
    pub commit_hints: bool,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            enabled: false,
            node_name: None,
            advertise_url: None,
            heartbeat_interval_ms: 500,
            lease_ms: 2500,
            forward_timeout_seconds: 60,
            forget_nodes_after_seconds: 600,
            commit_hints: true,
        }
    }
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval_ms == 0 {
            return Err("cluster.heartbeat_interval_ms must be at least 1".to_owned());
        }
        if self.lease_ms < self.heartbeat_interval_ms * 3 {
            return Err(format!(
                "cluster.lease_ms ({}) must be at least three heartbeat intervals ({})",
                self.lease_ms,
                self.heartbeat_interval_ms * 3
            ));
        }
        if let Some(url) = &self.advertise_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "cluster.advertise_url {url:?} must start with http:// or https://"
            ));
        }
        Ok(())
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

/// Where a request for an account must be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node owns the account (or just claimed it).
    Local,
    /// Another live node owns it: forward to its URL.
    Forward { node: NodeId, url: String },
    /// Nobody can serve it right now (the owner is not yet known to be dead, or the store is
    /// unreachable): the client should retry shortly.
    Unavailable(String),
}

/// Header names of node-to-node requests.
pub const FORWARDED_PRINCIPAL: &str = "tern-forwarded-principal";
pub const FORWARDED_AUTH: &str = "tern-forwarded-auth";
/// The Session state the client sees at the forwarding node (RFC 8620 §3.4 `sessionState`
/// must match the Session the client fetched, and nodes' Sessions differ by their URLs).
pub const FORWARDED_SESSION_STATE: &str = "tern-forwarded-session-state";

/// This process's membership of the cluster.
pub struct ClusterNode {
    store: Store,
    fence: Arc<Fence>,
    record: Mutex<NodeRecord>,
    secret: [u8; 32],
    config: ClusterConfig,
    /// Other nodes' records as last observed (for forwarding URLs and `status`).
    nodes: Mutex<HashMap<NodeId, NodeRecord>>,
    /// When this node's own beat last committed.
    last_beat: Mutex<Option<Instant>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl ClusterNode {
    /// Registers this node and starts beating and watching. `store` must not be fenced yet:
    /// the returned node's [`ClusterNode::fence`] is what the server installs on it.
    pub async fn join(
        store: &Store,
        config: &ClusterConfig,
        name: String,
        url: String,
        claim_hooks: Vec<ClaimHook>,
    ) -> Result<Arc<ClusterNode>, StoreError> {
        let me = ownership::new_node_id();
        let lease = config.lease();
        // A view older than half a lease is not trusted to expire anyone.
        let fence = Fence::new(me, lease / 2, claim_hooks);
        let secret = ownership::load_or_create_secret(store).await?;
        let record = NodeRecord {
            id: me,
            name,
            url,
            state: NodeState::Active,
            registered_at: unix_now(),
        };
        let registered = record.clone();
        store
            .transact(|tx| {
                let record = registered.clone();
                Box::pin(async move {
                    ownership::write_node(tx, &record)?;
                    ownership::write_heartbeat(tx, record.id, 1)
                })
            })
            .await?;
        let (stop, _) = watch::channel(false);
        let node = Arc::new(ClusterNode {
            store: store.clone(),
            fence,
            record: Mutex::new(record),
            secret,
            config: config.clone(),
            nodes: Mutex::new(HashMap::new()),
            last_beat: Mutex::new(Some(Instant::now())),
            stop,
            tasks: Mutex::new(Vec::new()),
        });
        // One observation before serving, so routing knows the other nodes at once.
        let mut tracker = LivenessTracker::new(lease);
        node.observe(&mut tracker).await?;
        let beating = tokio::spawn(Arc::clone(&node).beat());
        let watching = tokio::spawn(Arc::clone(&node).watch_nodes(tracker));
        node.lock_tasks().extend([beating, watching]);
        tracing::info!(node = %format_node(me), name = %node.name(), "joined the cluster");
        Ok(node)
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    pub fn node_id(&self) -> NodeId {
        self.fence.node_id()
    }

    pub fn name(&self) -> String {
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .name
            .clone()
    }

    /// Whether this node hints the others of its commits (`cluster.commit_hints`).
    pub fn commit_hints(&self) -> bool {
        self.config.commit_hints
    }

    pub fn forward_timeout(&self) -> Duration {
        Duration::from_secs(self.config.forward_timeout_seconds)
    }

    /// Whether this node's own beat committed within half a lease: only then can it trust
    /// that nobody has declared it expired, and answer for the accounts it holds without
    /// reading their owner records.
    fn beat_is_fresh(&self) -> bool {
        self.last_beat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < self.config.lease() / 2)
    }

    /// Where a request for `account_id` must be served. Claims the account when it has no
    /// live owner ("owned by the node that first needs it"). Writes are fenced in the store
    /// whatever this answers; the answer only decides where the request runs.
    pub async fn route(&self, account_id: u32) -> Route {
        if self.fence.holds(account_id) && self.beat_is_fresh() {
            return Route::Local;
        }
        match ownership::ensure_owned(&self.store, &self.fence, account_id).await {
            Ok(Ok(_epoch)) => Route::Local,
            Ok(Err(owner)) => self.route_to(owner),
            Err(error) => Route::Unavailable(format!("the store is unavailable: {error}")),
        }
    }

    fn route_to(&self, owner: Owner) -> Route {
        let Some(node) = owner.node else {
            return Route::Unavailable("the account is being handed over".to_owned());
        };
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        match nodes.get(&node) {
            Some(record) if record.state != NodeState::Left => Route::Forward {
                node,
                url: record.url.clone(),
            },
            _ => Route::Unavailable(format!("the owner {} is not known yet", format_node(node))),
        }
    }

    /// The other nodes that may be serving clients (not left, not expired in this node's
    /// view), with their URLs: where commit hints go (`http::hints`).
    pub fn peers(&self) -> Vec<(NodeId, String)> {
        let me = self.node_id();
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes
            .values()
            .filter(|record| record.id != me && record.state != NodeState::Left)
            .filter(|record| self.fence.liveness(record.id) != Some(Some(Liveness::Expired)))
            .map(|record| (record.id, record.url.clone()))
            .collect()
    }

    /// Resolves once `node` is expired in this node's view, or has left: a request forwarded
    /// to it is then abandoned (answered 503), because a paused owner accepts connections it
    /// never answers. Whatever it does after it resumes is fenced.
    pub async fn expired(&self, node: NodeId) {
        let interval = self.config.heartbeat_interval();
        loop {
            tokio::time::sleep(interval).await;
            if self.fence.liveness(node) == Some(Some(Liveness::Expired)) {
                return;
            }
        }
    }

    /// The value of [`FORWARDED_AUTH`] for a request forwarded on behalf of `principal`.
    pub fn forwarding_proof(&self, account_id: u32, email: &str) -> String {
        let mut digest = Sha256::new();
        digest.update(self.secret);
        digest.update(account_id.to_be_bytes());
        digest.update(email.as_bytes());
        hex(&digest.finalize())
    }

    /// Checks a forwarded request's proof (constant time in the proof's bytes).
    pub fn verify_forwarding_proof(&self, account_id: u32, email: &str, proof: &str) -> bool {
        let expected = self.forwarding_proof(account_id, email);
        expected.len() == proof.len()
            && expected
                .bytes()
                .zip(proof.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    async fn beat(self: Arc<Self>) {
        let interval = self.config.heartbeat_interval();
        let me = self.node_id();
        let mut stop = self.stop.subscribe();
        let mut beat = 1u64;
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            beat += 1;
            let attempt = Instant::now();
            let written = self
                .store
                .transact(|tx| Box::pin(async move { ownership::write_heartbeat(tx, me, beat) }))
                .await;
            match written {
                Ok(()) => {
                    *self
                        .last_beat
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(attempt);
                }
                Err(error) => tracing::warn!(%error, "cluster heartbeat failed"),
            }
        }
    }

    /// One observation of the registry: updates the fence's view and the forwarding table,
    /// reacts to this node's own record (drained by an operator), forgets long-dead nodes.
    async fn observe(&self, tracker: &mut LivenessTracker) -> Result<(), StoreError> {
        let nodes = self
            .store
            .read(|tx| Box::pin(ownership::read_nodes(tx)))
            .await?;
        let now = Instant::now();
        let view = tracker.observe(now, &nodes);
        let me = self.node_id();
        let forget_after = Duration::from_secs(self.config.forget_nodes_after_seconds);
        let mut forgotten = Vec::new();
        for (record, _) in &nodes {
            if record.id == me {
                if record.state == NodeState::Draining && self.fence.is_claiming() {
                    tracing::info!("this node is being drained by an operator");
                    self.start_draining().await;
                }
                continue;
            }
            if view.get(&record.id) == Some(&Liveness::Expired)
                && tracker
                    .silent_for(record.id, now)
                    .is_some_and(|silent| silent > forget_after)
            {
                forgotten.push(record.id);
            }
        }
        self.fence.set_view(view);
        *self.nodes.lock().unwrap_or_else(PoisonError::into_inner) = nodes
            .into_iter()
            .map(|(record, _)| (record.id, record))
            .collect();
        for node in forgotten {
            tracing::info!(node = %format_node(node), "forgetting a long-expired node");
            self.store
                .transact(|tx| Box::pin(async move { ownership::remove_node(tx, node) }))
                .await?;
        }
        Ok(())
    }

    async fn watch_nodes(self: Arc<Self>, mut tracker: LivenessTracker) {
        let interval = self.config.heartbeat_interval();
        let mut stop = self.stop.subscribe();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            if let Err(error) = self.observe(&mut tracker).await {
                tracing::warn!(%error, "observing the cluster failed");
            }
        }
    }

    async fn set_state(&self, state: NodeState) -> Result<(), StoreError> {
        let record = {
            let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
            record.state = state;
            record.clone()
        };
        self.store
            .transact(|tx| {
                let record = record.clone();
                Box::pin(async move { ownership::write_node(tx, &record) })
            })
            .await
    }

    /// Stops claiming and releases every held account (graceful hand-over): the next node
    /// that needs each one claims it at once, without waiting for a lease.
    pub async fn start_draining(&self) {
        self.fence.stop_claiming();
        if let Err(error) = self.set_state(NodeState::Draining).await {
            tracing::warn!(%error, "cannot mark this node as draining");
        }
        let held = self.fence.held_accounts();
        let count = held.len();
        for (account_id, _epoch) in held {
            if let Err(error) = ownership::release(&self.store, &self.fence, account_id).await {
                tracing::warn!(account_id, %error, "releasing an account failed; it will expire");
            }
        }
        tracing::info!(accounts = count, "accounts handed over");
    }

    /// Leaves the cluster: releases what is still held, marks the node as left, stops beating.
    pub async fn leave(&self) {
        self.start_draining().await;
        if let Err(error) = self.set_state(NodeState::Left).await {
            tracing::warn!(%error, "cannot mark this node as left");
        }
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.lock_tasks());
        for task in tasks {
            let _ = task.await;
        }
        tracing::info!("left the cluster");
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A node id as operators see it: 16 hex digits.
pub fn format_node(node: NodeId) -> String {
    format!("{node:016x}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
