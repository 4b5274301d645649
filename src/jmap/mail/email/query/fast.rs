//! The lists every client asks for all day — a mailbox newest first, its unread Emails, with
//! or without collapsed threads — answered by bounded range reads of the store's indexes
//! (`mail::store::index`), never by loading records. Totals come from the Mailbox counters.

use super::filter::{Condition, Filter};
use super::sort::{EmailComparator, SortKey};
use crate::mail::counters;
use crate::mail::store::index;
use crate::store::{KeyRange, RangeOptions, StoreResult, Transaction, keys};

/// Which index holds the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedList {
    /// Every Email of the account.
    All,
    Mailbox(u64),
    /// The Emails of the mailbox without `$seen`.
    MailboxUnseen(u64),
}

/// The indexed list that answers `filter` sorted by `sort`, if one does.
pub fn indexed_list(filter: Option<&Filter>, sort: &[EmailComparator]) -> Option<IndexedList> {
    if sort.len() != 1 || sort[0].key != SortKey::ReceivedAt {
        return None;
    }
    let seen = |condition: &Filter| matches!(condition, Filter::Condition(Condition::NotKeyword(keyword)) if keyword == "$seen");
    let mailbox = |condition: &Filter| match condition {
        Filter::Condition(Condition::InMailbox(mailbox_id)) => Some(*mailbox_id),
        _ => None,
    };
    match filter {
        None => Some(IndexedList::All),
        Some(Filter::Condition(Condition::InMailbox(mailbox_id))) => {
            Some(IndexedList::Mailbox(*mailbox_id))
        }
        Some(Filter::And(children)) if children.len() == 2 => {
            let (first, second) = (&children[0], &children[1]);
            match (mailbox(first), mailbox(second)) {
                (Some(mailbox_id), None) if seen(second) => {
                    Some(IndexedList::MailboxUnseen(mailbox_id))
                }
                (None, Some(mailbox_id)) if seen(first) => {
                    Some(IndexedList::MailboxUnseen(mailbox_id))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn list_prefix(account_id: u32, list: IndexedList) -> Vec<u8> {
    match list {
        IndexedList::All => index::prefix(account_id, index::RECEIVED).build(),
        IndexedList::Mailbox(mailbox_id) => {
            index::mailbox_prefix(account_id, index::MAILBOX_RECEIVED, mailbox_id)
        }
        IndexedList::MailboxUnseen(mailbox_id) => {
            index::mailbox_prefix(account_id, index::MAILBOX_UNSEEN, mailbox_id)
        }
    }
}

/// Entries read per range request while scanning.
const BATCH: usize = 256;

/// Walks the list in order and calls `visit(email_id, thread_id)` until it returns false.
pub async fn scan(
    tx: &mut dyn Transaction,
    account_id: u32,
    list: IndexedList,
    ascending: bool,
    mut visit: impl FnMut(u64, u64) -> bool,
) -> StoreResult<()> {
    let prefix = list_prefix(account_id, list);
    let mut range = KeyRange::prefix(&prefix);
    let mut batch_size = 64;
    loop {
        let entries = tx
            .get_range(
                &range,
                RangeOptions {
                    limit: batch_size,
                    reverse: !ascending,
                },
            )
            .await?;
        let exhausted = entries.len() < batch_size;
        let Some((last_key, _)) = entries.last() else {
            return Ok(());
        };
        // Continue after the last key seen, in the direction of the scan.
        let next_range = if ascending {
            let mut begin = last_key.clone();
            begin.push(0);
            KeyRange {
                begin,
                end: range.end.clone(),
            }
        } else {
            KeyRange {
                begin: range.begin.clone(),
                end: last_key.clone(),
            }
        };
        for (key, value) in &entries {
            let Some((_, email_id)) = index::entry_tail(key) else {
                continue;
            };
            let thread_id = keys::be_u64(value).unwrap_or(0);
            if !visit(email_id, thread_id) {
                return Ok(());
            }
        }
        if exhausted {
            return Ok(());
        }
        range = next_range;
        batch_size = (batch_size * 2).min(BATCH * 16);
    }
}

/// The list's length from the counters, when they hold it.
pub async fn counted_total(
    tx: &mut dyn Transaction,
    account_id: u32,
    list: IndexedList,
    collapse_threads: bool,
) -> StoreResult<Option<u64>> {
    Ok(match (list, collapse_threads) {
        (IndexedList::Mailbox(mailbox_id), false) => Some(
            counters::read(tx, account_id, mailbox_id)
                .await?
                .total_emails,
        ),
        (IndexedList::Mailbox(mailbox_id), true) => Some(
            counters::read(tx, account_id, mailbox_id)
                .await?
                .total_threads,
        ),
        (IndexedList::MailboxUnseen(mailbox_id), false) => Some(
            counters::read(tx, account_id, mailbox_id)
                .await?
                .unseen_emails,
        ),
        _ => None,
    })
}
