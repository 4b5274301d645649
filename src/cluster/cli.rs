//! `tern cluster status | drain NODE | move ACCOUNT NODE`: what operators see and do, straight
//! on the store (every node and the CLI share the FoundationDB cluster).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::store::ownership::{self, ClaimHook, NodeId, NodeRecord, NodeState, Owner};
use crate::store::{Store, StoreError, StoreErrorKind};

use super::format_node;

/// Owner records read per transaction by `status` (far inside 5 s and 10 MB).
const OWNERS_PAGE: usize = 10_000;

/// One node as `status` shows it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub record: NodeRecord,
    /// Whether its beat moved while `status` watched.
    pub beating: bool,
    pub accounts: u64,
}

#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    /// Accounts released or never claimed.
    pub unowned: u64,
    /// Accounts whose owner is no longer registered (claimable by the first node that needs
    /// them).
    pub orphaned: u64,
    /// Deleted accounts (their owner record retired: nothing writes them again).
    pub retired: u64,
}

/// Reads the registry twice, `watch` apart, to tell beating nodes from silent ones, and
/// counts owner records per node (paged).
pub async fn status(store: &Store, watch: Duration) -> Result<ClusterStatus, StoreError> {
    let before = store.read(|tx| Box::pin(ownership::read_nodes(tx))).await?;
    tokio::time::sleep(watch).await;
    let after = store.read(|tx| Box::pin(ownership::read_nodes(tx))).await?;
    let mut per_node: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut unowned = 0;
    let mut retired = 0;
    let mut after_account = None;
    loop {
        let page = ownership::owners_page(store, after_account, OWNERS_PAGE).await?;
        let Some(&(last, _)) = page.last() else {
            break;
        };
        for (_, owner) in &page {
            match owner.node {
                _ if owner.is_retired() => retired += 1,
                Some(node) => *per_node.entry(node).or_default() += 1,
                None => unowned += 1,
            }
        }
        after_account = Some(last);
    }
    let mut nodes = Vec::with_capacity(after.len());
    for (record, beat) in after {
        let beating = before
            .iter()
            .find(|(earlier, _)| earlier.id == record.id)
            .is_none_or(|(_, earlier_beat)| *earlier_beat != beat);
        let accounts = per_node.remove(&record.id).unwrap_or(0);
        nodes.push(NodeStatus {
            record,
            beating,
            accounts,
        });
    }
    nodes.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    Ok(ClusterStatus {
        nodes,
        unowned,
        orphaned: per_node.values().sum(),
        retired,
    })
}

pub fn render_status(status: &ClusterStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<16} {:<9} {:<8} {:>9}  url",
        "node", "id", "state", "beat", "accounts"
    );
    for node in &status.nodes {
        let state = match node.record.state {
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Left => "left",
        };
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:<9} {:<8} {:>9}  {}",
            node.record.name,
            format_node(node.record.id),
            state,
            if node.beating { "alive" } else { "silent" },
            node.accounts,
            node.record.url
        );
    }
    let _ = writeln!(
        out,
        "unowned accounts: {}, owned by a forgotten node: {}, deleted: {}",
        status.unowned, status.orphaned, status.retired
    );
    out
}

/// Finds a registered node by name or hex id (a name used by several incarnations means the
/// newest one that has not left).
pub async fn find_node(store: &Store, name_or_id: &str) -> Result<NodeRecord, String> {
    let nodes = store
        .read(|tx| Box::pin(ownership::read_nodes(tx)))
        .await
        .map_err(|error| error.to_string())?;
    let by_id = u64::from_str_radix(name_or_id, 16).ok();
    nodes
        .into_iter()
        .map(|(record, _)| record)
        .filter(|record| Some(record.id) == by_id || record.name == name_or_id)
        .filter(|record| record.state != NodeState::Left)
        .max_by_key(|record| record.registered_at)
        .ok_or_else(|| format!("no registered node named {name_or_id:?}"))
}

/// Marks a node as draining; the node sees it within a heartbeat and hands its accounts over.
pub async fn drain(store: &Store, name_or_id: &str) -> Result<NodeRecord, String> {
    let mut record = find_node(store, name_or_id).await?;
    record.state = NodeState::Draining;
    let written = record.clone();
    store
        .transact(|tx| {
            let record = written.clone();
            Box::pin(async move { ownership::write_node(tx, &record) })
        })
        .await
        .map_err(|error| error.to_string())?;
    Ok(record)
}

/// Gives `account_id` to `name_or_id` at a new epoch. The old owner's next commit for it is
/// refused by the fence; the new owner adopts it on its next request. `claim_hooks` are the
/// server's (the new owner's index then rebuilds the account).
pub async fn move_account(
    store: &Store,
    account_id: u32,
    name_or_id: &str,
    claim_hooks: &[ClaimHook],
) -> Result<(Owner, Owner), String> {
    let target = find_node(store, name_or_id).await?;
    if target.state != NodeState::Active {
        return Err(format!("node {} is not active", target.name));
    }
    store
        .transact(|tx| {
            let hooks = claim_hooks.to_vec();
            let target = target.id;
            Box::pin(async move {
                let before = ownership::read_owner(tx, account_id).await?;
                if before.is_retired() {
                    return Err(StoreError::new(
                        StoreErrorKind::NotOwner,
                        format!("account {account_id} was deleted"),
                    ));
                }
                if before.node == Some(target) {
                    return Ok((before, before));
                }
                let after = Owner {
                    node: Some(target),
                    epoch: before.epoch + 1,
                };
                ownership::write_owner(tx, account_id, after)?;
                for hook in &hooks {
                    hook(tx, account_id)?;
                }
                Ok((before, after))
            })
        })
        .await
        .map_err(|error| error.to_string())
}
