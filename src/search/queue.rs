//! The durable index queue: what the index still has to learn, kept in the store.
//!
//! `mail::store` writes a task (`mail::followup::search`) in the very transaction that imports
//! or destroys an Email, so a crash or a `kill -9` can never lose one. The indexer clears a task only after the tantivy
//! commit that applied it, and only if the task is still the one it read (compare-and-clear:
//! an index task overwritten meanwhile by a delete stays). Replaying a task is harmless: every
//! task first deletes the Email's document by its unique term.
//!
//! Keys (`schema/keys.md`, `schema/search.md`):
//! - `QUEUE, QUEUE_SEARCH_TASK, account_id, email_id` → 1 index | 2 delete;
//! - `QUEUE, QUEUE_SEARCH_TASK, account_id` → 3 reset: drop every document of the account
//!   (sorts before the account's Email tasks, so a rebuild drops first, then re-adds);
//! - `QUEUE, QUEUE_SEARCH_VERSION` → bumped (atomic add, no read conflict) by every task;
//! - `QUEUE, QUEUE_SEARCH_REBUILDING, account_id` → (): tasks are being re-enqueued.

use std::collections::HashSet;

pub use crate::mail::followup::search::{
    TaskKind, enqueue_delete, enqueue_index, enqueue_reset, past_account, set_rebuilding,
    version_key,
};
use crate::mail::followup::search::{
    account_tasks_key, email_task_key, rebuilding_key, tasks_prefix,
};
use crate::store::keys::{KeyBuilder, QUEUE_SEARCH_REBUILDING, SUBSPACE_QUEUE};
use crate::store::{KeyRange, KeyValue, RangeOptions, Store, StoreResult, Transaction};

/// One queued task as read, with its key and value (for compare-and-clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub account_id: u32,
    /// `None` for [`TaskKind::ResetAccount`].
    pub email_id: Option<u64>,
    pub kind: TaskKind,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

fn decode(key: Vec<u8>, value: Vec<u8>) -> Option<Task> {
    let rest = key.get(2..)?;
    let account_id = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let email_id = match rest.len() {
        4 => None,
        12 => Some(u64::from_be_bytes(rest.get(4..12)?.try_into().ok()?)),
        _ => return None,
    };
    let kind = TaskKind::from_byte(*value.first()?)?;
    Some(Task {
        account_id,
        email_id,
        kind,
        key,
        value,
    })
}

/// Up to `limit` tasks in key order, starting after `after` (or at the beginning).
pub async fn load(store: &Store, after: Option<&[u8]>, limit: usize) -> StoreResult<Vec<Task>> {
    let prefix = tasks_prefix();
    let range = KeyRange {
        begin: match after {
            // The smallest key after `after`.
            Some(key) => [key, &[0u8]].concat(),
            None => prefix.clone(),
        },
        end: crate::store::keys::prefix_end(&prefix),
    };
    let pairs: Vec<KeyValue> = store
        .read(|tx| {
            Box::pin(async move {
                tx.get_range(
                    &range,
                    RangeOptions {
                        limit,
                        reverse: false,
                    },
                )
                .await
            })
        })
        .await?;
    Ok(pairs
        .into_iter()
        .filter_map(|(key, value)| {
            let task = decode(key.clone(), value);
            if task.is_none() {
                tracing::warn!(?key, "undecodable search task skipped");
            }
            task
        })
        .collect())
}

/// Clears the tasks that are still exactly as read (bounded transactions).
pub async fn clear_done(store: &Store, tasks: &[Task]) -> StoreResult<()> {
    for chunk in tasks.chunks(500) {
        store
            .transact(|tx| {
                let chunk = chunk.to_vec();
                Box::pin(async move { clear_unchanged(tx, &chunk).await })
            })
            .await?;
    }
    Ok(())
}

/// Clears each task still holding the value it was read with. One range read per account's
/// run of tasks, not one read per task: on FoundationDB each read is a round trip through the
/// client's single network thread, and 500 of them per batch cost more than the indexing.
async fn clear_unchanged(tx: &mut dyn Transaction, tasks: &[Task]) -> StoreResult<()> {
    let mut sorted: Vec<&Task> = tasks.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for run in sorted.chunk_by(|a, b| a.account_id == b.account_id) {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            continue;
        };
        // Only the account's own tasks lie between its first and last task key.
        let range = KeyRange {
            begin: first.key.clone(),
            end: [last.key.as_slice(), &[0u8]].concat(),
        };
        let current: std::collections::HashMap<Vec<u8>, Vec<u8>> = tx
            .get_range(&range, RangeOptions::default())
            .await?
            .into_iter()
            .collect();
        for task in run {
            if current.get(&task.key) == Some(&task.value) {
                tx.clear(&task.key)?;
            }
        }
    }
    Ok(())
}

/// What the index does not know yet about one account, read in the query's own snapshot.
#[derive(Debug, Default, Clone)]
pub struct AccountBacklog {
    /// A rebuild is in progress: the account's documents may be missing or stale.
    pub rebuilding: bool,
    /// Emails whose index or delete task is pending.
    pub pending: HashSet<u64>,
}

impl AccountBacklog {
    /// Whether the index can answer for `email_id`.
    pub fn index_knows(&self, email_id: u64) -> bool {
        !self.rebuilding && !self.pending.contains(&email_id)
    }
}

pub async fn account_backlog(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<AccountBacklog> {
    let rebuilding = tx.get(&rebuilding_key(account_id)).await?.is_some();
    let prefix = account_tasks_key(account_id);
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    let mut backlog = AccountBacklog {
        rebuilding,
        pending: HashSet::with_capacity(pairs.len()),
    };
    for (key, value) in pairs {
        match decode(key, value) {
            Some(Task {
                email_id: Some(email_id),
                ..
            }) => {
                backlog.pending.insert(email_id);
            }
            // A reset still queued: the old documents are not to be trusted.
            Some(Task { email_id: None, .. }) => backlog.rebuilding = true,
            None => {}
        }
    }
    Ok(backlog)
}

/// Accounts with a rebuild whose enqueueing did not finish (resumed at start-up).
pub async fn rebuilding_accounts(store: &Store) -> StoreResult<Vec<u32>> {
    let prefix = KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SEARCH_REBUILDING)
        .build();
    let pairs = store
        .read(|tx| {
            Box::pin(async move {
                tx.get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
                    .await
            })
        })
        .await?;
    Ok(pairs
        .iter()
        .filter_map(|(key, _)| Some(u32::from_be_bytes(key.get(2..6)?.try_into().ok()?)))
        .collect())
}

/// How many tasks are queued (all accounts); for tests and the bench.
pub async fn pending_count(store: &Store) -> StoreResult<usize> {
    let prefix = tasks_prefix();
    store
        .read(|tx| {
            Box::pin(async move {
                Ok(tx
                    .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
                    .await?
                    .len())
            })
        })
        .await
}

/// Email records read (and index tasks queued) per transaction of a rebuild.
const REBUILD_PAGE: usize = 1_000;

/// Rebuilds one account's documents from the store: marks it rebuilding (text queries scan
/// meanwhile), queues a reset and an index task per Email in bounded transactions, then clears
/// the mark. Idempotent: an interrupted rebuild is run again at start-up.
pub async fn rebuild_account(store: &Store, account_id: u32) -> StoreResult<usize> {
    store
        .transact(|tx| {
            Box::pin(async move {
                set_rebuilding(tx, account_id, true)?;
                enqueue_reset(tx, account_id)
            })
        })
        .await?;
    // One page of ids per transaction: a large account never makes one read or write
    // that outlives FoundationDB's 5 s or exceeds its 10 MB.
    let mut after = None;
    let mut queued = 0;
    loop {
        let page = store
            .transact(|tx| {
                Box::pin(async move {
                    let ids =
                        crate::mail::store::email_ids_page(tx, account_id, after, REBUILD_PAGE)
                            .await?;
                    for email_id in &ids {
                        // An Email destroyed meanwhile has its delete task; keep it.
                        let key = email_task_key(account_id, *email_id);
                        if tx.get(&key).await?.is_none() {
                            enqueue_index(tx, account_id, *email_id)?;
                        }
                    }
                    Ok(ids)
                })
            })
            .await?;
        queued += page.len();
        match page.last() {
            Some(&last) => after = Some(last),
            None => break,
        }
    }
    let me = store.fence().map(|fence| fence.node_id());
    store
        .transact(|tx| {
            Box::pin(async move {
                // On a cluster, only the account's owner ends a rebuild: a node deposed
                // meanwhile must not clear the mark of the new owner's claim.
                if let Some(me) = me {
                    let owner = crate::store::ownership::read_owner(tx, account_id).await?;
                    if owner.node != Some(me) {
                        return Ok(());
                    }
                }
                set_rebuilding(tx, account_id, false)
            })
        })
        .await?;
    Ok(queued)
}

/// The search-queue part of the backend test suite.
pub mod suite {
    use super::*;
    use crate::store::testsuite::{SuiteTest, suite_test};

    pub fn tests() -> Vec<SuiteTest> {
        vec![
            suite_test!(search_tasks_compare_and_clear_and_report_the_backlog),
            suite_test!(bulk_work_on_a_large_account_pages),
        ]
    }

    /// An account larger than one page of every bulk job: the index rebuild queues a task per
    /// Email in pages, and the purge releases links in pages, each within FoundationDB's
    /// 5 s and 10 MB (enforced by every backend, so one transaction over them fails here).
    pub async fn bulk_work_on_a_large_account_pages(store: &Store) {
        use crate::mail::parsed::parse_message;
        use crate::mail::store::{ImportSpec, import_email};
        use crate::store::commit::commit_account;
        use crate::store::keys::account_prefix;

        const EMAILS: usize = 2 * REBUILD_PAGE + 300;
        const PER_COMMIT: usize = 250;
        let account_id = 9_301;
        let clear = |store: Store| async move {
            store
                .transact(|tx| {
                    Box::pin(async move {
                        tx.clear_range(&KeyRange::prefix(&account_prefix(account_id).build()))?;
                        tx.clear_range(&KeyRange::prefix(&account_tasks_key(account_id)))?;
                        set_rebuilding(tx, account_id, false)
                    })
                })
                .await
                .expect("clear");
        };
        clear(store.clone()).await;
        let content = b"From: a@example.test\r\nSubject: bulk\r\n\r\nbody\r\n".to_vec();
        let blob = crate::store::blob::BlobStore::new(store.clone())
            .put(account_id, bytes::Bytes::from(content.clone()))
            .await
            .expect("blob");
        let parsed = parse_message(&content);
        for batch in 0..EMAILS.div_ceil(PER_COMMIT) {
            let count = PER_COMMIT.min(EMAILS - batch * PER_COMMIT);
            commit_account(store, account_id, |tx, changes| {
                let parsed = parsed.clone();
                Box::pin(async move {
                    for _ in 0..count {
                        let spec = ImportSpec {
                            blob: blob.id,
                            parsed: parsed.clone(),
                            mailbox_ids: vec![1],
                            keywords: Vec::new(),
                            received_at: 1,
                        };
                        import_email(tx, changes, account_id, spec).await?;
                    }
                    Ok(())
                })
            })
            .await
            .expect("import a batch");
        }
        let queued = rebuild_account(store, account_id)
            .await
            .expect("rebuild pages");
        assert_eq!(queued, EMAILS);
        let backlog = store
            .read(|tx| Box::pin(account_backlog(tx, account_id)))
            .await
            .expect("backlog");
        assert_eq!(backlog.pending.len(), EMAILS, "one task per Email");
        crate::store::purge::purge_account(store, account_id)
            .await
            .expect("purge pages");
        let left = store
            .read(|tx| {
                Box::pin(async move {
                    tx.get_range(
                        &KeyRange::prefix(&account_prefix(account_id).build()),
                        RangeOptions {
                            limit: 1,
                            reverse: false,
                        },
                    )
                    .await
                })
            })
            .await
            .expect("read");
        assert!(left.is_empty(), "the purge removed the account's data");
        clear(store.clone()).await;
    }

    async fn account_tasks(store: &Store, account_id: u32) -> Vec<Task> {
        load(store, None, 0)
            .await
            .expect("load")
            .into_iter()
            .filter(|task| task.account_id == account_id)
            .collect()
    }

    async fn backlog(store: &Store, account_id: u32) -> AccountBacklog {
        store
            .read(|tx| Box::pin(account_backlog(tx, account_id)))
            .await
            .expect("backlog")
    }

    /// Tasks are written with a watch wake-up, cleared only if unchanged, and the backlog a
    /// query reads names exactly the Emails the index does not know.
    pub async fn search_tasks_compare_and_clear_and_report_the_backlog(store: &Store) {
        let account_id = 0xE000_0000 | (rand::random::<u32>() >> 4);
        let woken = store.watch(&version_key());
        store
            .transact(|tx| {
                Box::pin(async move {
                    enqueue_index(tx, account_id, 1)?;
                    enqueue_index(tx, account_id, 2)
                })
            })
            .await
            .expect("enqueue");
        tokio::time::timeout(std::time::Duration::from_secs(5), woken)
            .await
            .expect("the watch fires")
            .expect("watch");
        let read = account_tasks(store, account_id).await;
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(|task| task.kind == TaskKind::Index));
        let seen = backlog(store, account_id).await;
        assert!(!seen.rebuilding);
        assert_eq!(seen.pending, HashSet::from([1, 2]));
        assert!(!seen.index_knows(1) && seen.index_knows(3));

        // Email 1 is destroyed after the indexer read its task: its delete must survive.
        store
            .transact(|tx| Box::pin(async move { enqueue_delete(tx, account_id, 1) }))
            .await
            .expect("delete");
        clear_done(store, &read).await.expect("clear");
        let left = account_tasks(store, account_id).await;
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].email_id, left[0].kind),
            (Some(1), TaskKind::Delete)
        );
        // Clearing twice is harmless.
        clear_done(store, &read).await.expect("clear again");
        assert_eq!(backlog(store, account_id).await.pending, HashSet::from([1]));

        // A rebuild of an account without Emails queues a reset, which sorts first.
        assert_eq!(
            rebuild_account(store, account_id).await.expect("rebuild"),
            0
        );
        let tasks = account_tasks(store, account_id).await;
        assert_eq!(tasks[0].kind, TaskKind::ResetAccount);
        assert!(backlog(store, account_id).await.rebuilding);
        assert!(
            !rebuilding_accounts(store)
                .await
                .expect("marks")
                .contains(&account_id)
        );
        clear_done(store, &tasks).await.expect("clear");
        let after = backlog(store, account_id).await;
        assert!(!after.rebuilding && after.pending.is_empty());
    }
}
