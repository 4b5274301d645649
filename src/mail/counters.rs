//! The exact Mailbox counts of RFC 8621 §2 — totalEmails, unreadEmails, totalThreads,
//! unreadThreads — kept in the store and changed in the same transaction as every Email change,
//! never recounted by a scan.
//!
//! How: every Email change touches one or more Threads. Before and after the change, the
//! writer computes what each touched Thread contributes to each Mailbox ([`thread_contribution`])
//! and adds the difference to the counters with atomic adds ([`apply_difference`]). Atomic
//! adds do not conflict, so concurrent deliveries to one Inbox do not retry on the counters.
//! Threads are small, so the cost per change is a few reads.

use std::collections::BTreeMap;

use crate::store::commit::{Changes, DataType};
use crate::store::keys::{self, ACCT_MAILBOX_COUNTER};
use crate::store::{StoreResult, Transaction};

/// The four counts of one Mailbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxCounts {
    pub total_emails: u64,
    pub unread_emails: u64,
    pub total_threads: u64,
    pub unread_threads: u64,
    pub unseen_emails: u64,
}

/// Counter numbers in keys: never renumber.
const TOTAL_EMAILS: u8 = 0;
const UNREAD_EMAILS: u8 = 1;
const TOTAL_THREADS: u8 = 2;
const UNREAD_THREADS: u8 = 3;
/// Emails without `$seen` (the `notKeyword: $seen` list, whose total Email/query reports
/// without a scan); not a JMAP property.
const UNSEEN_EMAILS: u8 = 4;
const COUNTERS: [u8; 5] = [
    TOTAL_EMAILS,
    UNREAD_EMAILS,
    TOTAL_THREADS,
    UNREAD_THREADS,
    UNSEEN_EMAILS,
];

fn counter_key(account_id: u32, mailbox_id: u64, counter: u8) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_MAILBOX_COUNTER)
        .u64(mailbox_id)
        .u8(counter)
        .build()
}

/// The counts of one Mailbox: four point reads, whatever the Mailbox's size.
pub async fn read(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox_id: u64,
) -> StoreResult<MailboxCounts> {
    let mut values = [0u64; 5];
    for counter in COUNTERS {
        let stored = tx
            .get(&counter_key(account_id, mailbox_id, counter))
            .await?;
        let value = stored.map(|bytes| keys::le_i64(&bytes)).unwrap_or(0);
        debug_assert!(
            value >= 0,
            "counter {counter} of mailbox {mailbox_id} is {value}"
        );
        values[usize::from(counter)] = u64::try_from(value).unwrap_or(0);
    }
    Ok(MailboxCounts {
        total_emails: values[usize::from(TOTAL_EMAILS)],
        unread_emails: values[usize::from(UNREAD_EMAILS)],
        total_threads: values[usize::from(TOTAL_THREADS)],
        unread_threads: values[usize::from(UNREAD_THREADS)],
        unseen_emails: values[usize::from(UNSEEN_EMAILS)],
    })
}

/// Removes the counters of a destroyed Mailbox (they are zero by then unless its Emails were
/// left behind, which Mailbox/set prevents).
pub fn clear(tx: &mut dyn Transaction, account_id: u32, mailbox_id: u64) -> StoreResult<()> {
    for counter in COUNTERS {
        tx.clear(&counter_key(account_id, mailbox_id, counter))?;
    }
    Ok(())
}

/// What counts about one Email of a Thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub mailbox_ids: Vec<u64>,
    /// Neither `$seen` nor `$draft` (RFC 8621 §2, unreadEmails).
    pub is_unread: bool,
    /// No `$seen`.
    pub is_unseen: bool,
}

/// Per Mailbox, the four counts one Thread contributes.
pub type Contribution = BTreeMap<u64, [i64; 5]>;

/// What a Thread with these members contributes to each Mailbox's counts.
///
/// RFC 8621 §2: unreadThreads counts Threads with at least one Email in the Mailbox and at least
/// one unread Email anywhere in the Thread, except that Emails only in the trash are ignored for
/// other Mailboxes, and Emails not in the trash are ignored for the trash. This is the "quality
/// implementation" the RFC asks for: the number of unread Threads the user sees on opening it.
pub fn thread_contribution(members: &[MemberState], trash: Option<u64>) -> Contribution {
    let mut contribution = Contribution::new();
    for member in members {
        for mailbox_id in &member.mailbox_ids {
            let counts = contribution.entry(*mailbox_id).or_default();
            counts[usize::from(TOTAL_EMAILS)] += 1;
            if member.is_unread {
                counts[usize::from(UNREAD_EMAILS)] += 1;
            }
            if member.is_unseen {
                counts[usize::from(UNSEEN_EMAILS)] += 1;
            }
        }
    }
    let only_in_trash = |member: &MemberState| match trash {
        Some(trash_id) => member.mailbox_ids.iter().all(|id| *id == trash_id),
        None => false,
    };
    let in_trash = |member: &MemberState| trash.is_some_and(|id| member.mailbox_ids.contains(&id));
    let unread_outside_trash = members
        .iter()
        .any(|member| member.is_unread && !member.mailbox_ids.is_empty() && !only_in_trash(member));
    let unread_in_trash = members
        .iter()
        .any(|member| member.is_unread && in_trash(member));
    for (mailbox_id, counts) in contribution.iter_mut() {
        counts[usize::from(TOTAL_THREADS)] = 1;
        let is_trash = trash == Some(*mailbox_id);
        let unread = if is_trash {
            unread_in_trash
        } else {
            unread_outside_trash
        };
        counts[usize::from(UNREAD_THREADS)] = i64::from(unread);
    }
    contribution
}

/// Adds `after - before` to the counters and marks each Mailbox whose counts moved as updated
/// (so Mailbox/changes reports it, RFC 8621 §2.2).
pub fn apply_difference(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    before: &Contribution,
    after: &Contribution,
) -> StoreResult<()> {
    let zero = [0i64; 5];
    let mailboxes = before.keys().chain(after.keys()).copied();
    let mut done = std::collections::BTreeSet::new();
    for mailbox_id in mailboxes {
        if !done.insert(mailbox_id) {
            continue;
        }
        let old = before.get(&mailbox_id).unwrap_or(&zero);
        let new = after.get(&mailbox_id).unwrap_or(&zero);
        let mut moved = false;
        for counter in COUNTERS {
            let delta = new[usize::from(counter)] - old[usize::from(counter)];
            if delta != 0 {
                tx.atomic_add(&counter_key(account_id, mailbox_id, counter), delta)?;
                moved = true;
            }
        }
        if moved {
            changes.updated(DataType::Mailbox, mailbox_id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(mailboxes: &[u64], is_unread: bool) -> MemberState {
        MemberState {
            mailbox_ids: mailboxes.to_vec(),
            is_unread,
            is_unseen: is_unread,
        }
    }

    #[test]
    fn emails_and_threads_are_counted_per_mailbox() {
        let members = [member(&[1], true), member(&[1, 2], false)];
        let contribution = thread_contribution(&members, None);
        assert_eq!(contribution[&1], [2, 1, 1, 1, 1]);
        // The unread Email is in mailbox 1 only, but the Thread is unread in 2 as well.
        assert_eq!(contribution[&2], [1, 0, 1, 1, 0]);
    }

    #[test]
    fn trash_rules_for_unread_threads() {
        let trash = Some(9);
        // Unread only in the trash: ignored for the inbox, counted for the trash.
        let members = [member(&[9], true), member(&[1], false)];
        let contribution = thread_contribution(&members, trash);
        assert_eq!(contribution[&1][usize::from(UNREAD_THREADS)], 0);
        assert_eq!(contribution[&9][usize::from(UNREAD_THREADS)], 1);
        // Unread outside the trash: ignored for the trash.
        let members = [member(&[1], true), member(&[9], false)];
        let contribution = thread_contribution(&members, trash);
        assert_eq!(contribution[&1][usize::from(UNREAD_THREADS)], 1);
        assert_eq!(contribution[&9][usize::from(UNREAD_THREADS)], 0);
    }
}
