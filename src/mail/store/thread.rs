//! Threading (RFC 8621 §3 leaves the algorithm to the server): an Email joins the Threads of
//! the Emails it shares a Message-ID with — its own Message-ID, In-Reply-To or References, in
//! either direction, so a parent that arrives after its reply still joins it — provided their
//! base subjects (RFC 5256 §2.1) match, as in JWZ's algorithm with subject grouping. When a new
//! Email links two or more existing Threads, they are merged into the oldest one, and every
//! Email and Thread the merge changed is reported in the change log.

use std::collections::BTreeSet;

use super::index;
use super::record::ThreadRecord;
use super::{
    chunked_clear_thread, contribution_of, load_record, load_thread, save_thread,
    sum_contributions, trash_mailbox, write_indexes,
};
use crate::mail::counters;
use crate::store::commit::{Changes, DataType, allocate_id};
use crate::store::{KeyRange, RangeOptions, StoreResult, Transaction};

/// Emails looked at per Message-ID: bounds the cost of a Message-ID that thousands of
/// messages reference (a mailing list's announcement); they share one Thread anyway.
const MAX_EMAILS_PER_MESSAGE_ID: usize = 64;

/// Where a new Email goes.
pub struct Placement {
    pub thread_id: u64,
    /// The Thread's members before the new Email is added.
    pub thread: ThreadRecord,
    pub is_new: bool,
}

/// Finds (or creates, or merges) the Thread of a new Email with these Message-ID hashes and
/// base subject. Merges are written here; the caller adds the Email itself.
pub async fn place_new_email(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    message_id_hashes: &BTreeSet<u64>,
    base_subject: &str,
) -> StoreResult<Placement> {
    let candidates = related_threads(tx, account_id, message_id_hashes, base_subject).await?;
    let mut candidates = candidates.into_iter();
    let Some(survivor) = candidates.next() else {
        let thread_id = allocate_id(tx, account_id, DataType::Thread).await?;
        return Ok(Placement {
            thread_id,
            thread: ThreadRecord::default(),
            is_new: true,
        });
    };
    let absorbed: Vec<u64> = candidates.collect();
    let thread = if absorbed.is_empty() {
        load_thread(tx, account_id, survivor)
            .await?
            .unwrap_or_default()
    } else {
        merge_threads(tx, changes, account_id, survivor, &absorbed).await?
    };
    Ok(Placement {
        thread_id: survivor,
        thread,
        is_new: false,
    })
}

/// The Threads (ascending ids) of Emails sharing a Message-ID and the base subject.
async fn related_threads(
    tx: &mut dyn Transaction,
    account_id: u32,
    message_id_hashes: &BTreeSet<u64>,
    base_subject: &str,
) -> StoreResult<BTreeSet<u64>> {
    let mut threads = BTreeSet::new();
    for hash in message_id_hashes {
        let prefix = index::message_id_prefix(account_id, *hash);
        let entries = tx
            .get_range(
                &KeyRange::prefix(&prefix),
                RangeOptions {
                    limit: MAX_EMAILS_PER_MESSAGE_ID,
                    reverse: false,
                },
            )
            .await?;
        for (key, _) in entries {
            let Some(email_id) = crate::store::keys::be_u64(&key[prefix.len()..]) else {
                continue;
            };
            let Some(record) = load_record(tx, account_id, email_id).await? else {
                continue;
            };
            if record.base_subject == base_subject {
                threads.insert(record.thread_id);
            }
        }
    }
    Ok(threads)
}

/// Moves every member of `absorbed` into `survivor`, reporting each moved Email as updated
/// (its threadId changed), each absorbed Thread as destroyed and the survivor as updated, and
/// correcting the Mailbox counts (two Threads in a Mailbox become one).
async fn merge_threads(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    survivor: u64,
    absorbed: &[u64],
) -> StoreResult<ThreadRecord> {
    let trash = trash_mailbox(tx, account_id).await?;
    let mut merged = load_thread(tx, account_id, survivor)
        .await?
        .unwrap_or_default();
    let mut before = vec![contribution_of(tx, account_id, &merged, trash).await?];
    for thread_id in absorbed {
        let Some(thread) = load_thread(tx, account_id, *thread_id).await? else {
            continue;
        };
        before.push(contribution_of(tx, account_id, &thread, trash).await?);
        for (received_at, email_id) in &thread.members {
            let Some(mut record) = load_record(tx, account_id, *email_id).await? else {
                continue;
            };
            record.thread_id = survivor;
            tx.set(&super::record_key(account_id, *email_id), &record.encode())?;
            // Index values carry the thread id: rewrite them.
            write_indexes(tx, account_id, *email_id, &record)?;
            merged.insert(*received_at, *email_id);
            changes.updated(DataType::Email, *email_id);
        }
        chunked_clear_thread(tx, account_id, *thread_id)?;
        changes.destroyed(DataType::Thread, *thread_id);
    }
    save_thread(tx, account_id, survivor, &merged)?;
    changes.updated(DataType::Thread, survivor);
    let after = contribution_of(tx, account_id, &merged, trash).await?;
    counters::apply_difference(tx, changes, account_id, &sum_contributions(&before), &after)?;
    Ok(merged)
}
