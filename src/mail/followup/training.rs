//! The spam classifier's durable training queue, as the write path sees it: when an Email
//! update says "this is spam" (moved into Junk, `$junk` set) or "this is not spam" (moved out
//! of Junk other than to Trash, `$notjunk` set), `mail::store::update_email` writes a task
//! `QUEUE_SPAM_TRAINING, account_id, email_id` → class in the update's own transaction. The
//! trainer (`smtp::spam::training`, above `mail/`) consumes them.

use crate::mail::mailbox::mailbox_with_role;
use crate::mail::store::EmailRecord;
use crate::store::keys::{
    KeyBuilder, QUEUE_SPAM_TRAINING, QUEUE_SPAM_TRAINING_VERSION, SUBSPACE_QUEUE,
};
use crate::store::{StoreResult, Transaction};

/// A training class, stored as one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    Spam = 1,
    Ham = 2,
}

impl Class {
    pub fn from_u8(byte: u8) -> Option<Class> {
        match byte {
            1 => Some(Class::Spam),
            2 => Some(Class::Ham),
            _ => None,
        }
    }

    pub fn other(self) -> Class {
        match self {
            Class::Spam => Class::Ham,
            Class::Ham => Class::Spam,
        }
    }
}

pub fn task_key(account_id: u32, email_id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SPAM_TRAINING)
        .u32(account_id)
        .u64(email_id)
        .build()
}

pub fn version_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SPAM_TRAINING_VERSION)
        .build()
}

/// Writes a training task in the caller's transaction (a newer task for the same Email
/// replaces an older one).
pub fn enqueue(
    tx: &mut dyn Transaction,
    account_id: u32,
    email_id: u64,
    class: Class,
) -> StoreResult<()> {
    tx.set(&task_key(account_id, email_id), &[class as u8])?;
    tx.atomic_add(&version_key(), 1)
}

/// What an Email update teaches, if anything. Keyword changes are free to check; the Junk and
/// Trash mailboxes are read only when the mailboxes changed.
pub async fn on_email_updated(
    tx: &mut dyn Transaction,
    account_id: u32,
    email_id: u64,
    before: &EmailRecord,
    after: &EmailRecord,
) -> StoreResult<()> {
    let gained = |keyword: &str| !before.has_keyword(keyword) && after.has_keyword(keyword);
    let mut class = if gained("$junk") {
        Some(Class::Spam)
    } else if gained("$notjunk") {
        Some(Class::Ham)
    } else {
        None
    };
    if class.is_none()
        && before.mailbox_ids != after.mailbox_ids
        && let Some(junk) = mailbox_with_role(tx, account_id, "junk").await?
    {
        let was_junk = before.mailbox_ids.contains(&junk);
        let is_junk = after.mailbox_ids.contains(&junk);
        if !was_junk && is_junk {
            class = Some(Class::Spam);
        } else if was_junk && !is_junk {
            // Deleting spam (Junk → Trash) says nothing about it being ham.
            let trash = mailbox_with_role(tx, account_id, "trash").await?;
            if !trash.is_some_and(|trash| after.mailbox_ids.contains(&trash)) {
                class = Some(Class::Ham);
            }
        }
    }
    match class {
        Some(class) => enqueue(tx, account_id, email_id, class),
        None => Ok(()),
    }
}
