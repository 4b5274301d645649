//! The search index's durable task queue, as the write path sees it: `mail::store` writes a
//! task in the very transaction that imports or destroys an Email (and `search::rebuild` for
//! a whole account). The indexer (`search::queue`, `search::indexer`) reads and clears them;
//! it lives above `mail/`, so the writers live here, below it.
//!
//! Keys (`schema/keys.md`, `schema/search.md`):
//! - `QUEUE, QUEUE_SEARCH_TASK, account_id, email_id` → 1 index | 2 delete;
//! - `QUEUE, QUEUE_SEARCH_TASK, account_id` → 3 reset: drop every document of the account
//!   (sorts before the account's Email tasks, so a rebuild drops first, then re-adds);
//! - `QUEUE, QUEUE_SEARCH_VERSION` → bumped (atomic add, no read conflict) by every task;
//! - `QUEUE, QUEUE_SEARCH_REBUILDING, account_id` → (): tasks are being re-enqueued.

use crate::store::keys::{
    KeyBuilder, QUEUE_SEARCH_REBUILDING, QUEUE_SEARCH_TASK, QUEUE_SEARCH_VERSION, SUBSPACE_QUEUE,
};
use crate::store::{StoreResult, Transaction};

/// What the indexer must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// (Re)index the Email from the store.
    Index = 1,
    /// Remove the Email's document.
    Delete = 2,
    /// Remove every document of the account.
    ResetAccount = 3,
}

impl TaskKind {
    pub fn from_byte(byte: u8) -> Option<TaskKind> {
        match byte {
            1 => Some(TaskKind::Index),
            2 => Some(TaskKind::Delete),
            3 => Some(TaskKind::ResetAccount),
            _ => None,
        }
    }
}

pub fn tasks_prefix() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SEARCH_TASK)
        .build()
}

pub fn account_tasks_key(account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SEARCH_TASK)
        .u32(account_id)
        .build()
}

/// A cursor for [`load`] that skips the rest of `account_id`'s tasks: past every Email task key
/// of the account (prefix + 8 bytes) and before the next account's prefix.
pub fn past_account(account_id: u32) -> Vec<u8> {
    let mut key = account_tasks_key(account_id);
    key.extend_from_slice(&[0xff; 9]);
    key
}

pub fn email_task_key(account_id: u32, email_id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SEARCH_TASK)
        .u32(account_id)
        .u64(email_id)
        .build()
}

/// The key the indexer watches.
pub fn version_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SEARCH_VERSION)
        .build()
}

pub fn rebuilding_key(account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SEARCH_REBUILDING)
        .u32(account_id)
        .build()
}

fn write(tx: &mut dyn Transaction, key: &[u8], kind: TaskKind) -> StoreResult<()> {
    tx.set(key, &[kind as u8])?;
    tx.atomic_add(&version_key(), 1)
}

/// Queues indexing of a new Email, inside the transaction that imports it.
pub fn enqueue_index(tx: &mut dyn Transaction, account_id: u32, email_id: u64) -> StoreResult<()> {
    write(tx, &email_task_key(account_id, email_id), TaskKind::Index)
}

/// Queues removal of an Email's document, inside the transaction that destroys it. It
/// replaces a pending index task of the same Email.
pub fn enqueue_delete(tx: &mut dyn Transaction, account_id: u32, email_id: u64) -> StoreResult<()> {
    write(tx, &email_task_key(account_id, email_id), TaskKind::Delete)
}

/// Queues dropping every document of the account (first step of a rebuild).
pub fn enqueue_reset(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<()> {
    write(tx, &account_tasks_key(account_id), TaskKind::ResetAccount)
}

pub fn set_rebuilding(
    tx: &mut dyn Transaction,
    account_id: u32,
    rebuilding: bool,
) -> StoreResult<()> {
    if rebuilding {
        tx.set(&rebuilding_key(account_id), &[])
    } else {
        tx.clear(&rebuilding_key(account_id))
    }
}
