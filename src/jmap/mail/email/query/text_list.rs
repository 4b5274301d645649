//! Text queries answered along the store's receivedAt list: a text condition alone (or with
//! inMailbox), sorted by receivedAt, matching many Emails. The list is walked only until the
//! page is filled, keeping the matching Emails; the total comes from the index, not from a
//! walk of the whole list:
//! - whole account: the index's count of matching documents, corrected for the Emails with a
//!   pending task (their stale documents out, their scanned verdicts in);
//! - a Mailbox: its matching Emails read one by one when they are few, or its counter minus
//!   its Emails that do not match when those are few (a word most Emails hold); otherwise the
//!   Mailbox's list is walked.
//!
//! Exactness rests on the index invariant (`search`): outside a rebuild, every Email without a
//! pending task has exactly one document, so the index's counts are counts of Emails. Words
//! matching few Emails go to the candidate path (`text_first::load_candidates`): reading just
//! them beats walking far along the list to fill a page (`list_walk_pays`).

use std::collections::HashSet;

use super::fast::IndexedList;
use super::filter::{Condition, Filter};
use super::sort::SortKey;
use super::{EmailQuery, Page, Window, read_page};
use crate::jmap::EngineShared;
use crate::mail::counters;
use crate::mail::store as mail_store;
use crate::search::SearchError;
use crate::search::query::{ScannedEmail, TextMatch};
use crate::search::queue::{AccountBacklog, account_backlog};
use crate::search::snapshot::IndexSnapshot;
use crate::store::{StoreError, StoreResult, Transaction};

/// Above this many candidates, reading them one by one costs more than a walk of the list.
const MAX_CANDIDATES: u64 = 4_000;
/// What a point read of an Email record costs, in entries of a list walk. A Mailbox's total
/// is its counter minus its non-matching Emails read one by one when that is cheaper (or when
/// they are so few that it costs nothing either way).
const LIST_ENTRIES_PER_POINT_READ: u64 = 8;
const FEW_POINT_READS: u64 = 64;

/// Which Emails of the list match, kept as whichever of the two sets is smaller.
#[derive(Debug)]
pub enum Membership {
    Only(HashSet<u64>),
    AllBut(HashSet<u64>),
}

impl Membership {
    pub fn contains(&self, email_id: u64) -> bool {
        match self {
            Membership::Only(matching) => matching.contains(&email_id),
            Membership::AllBut(others) => !others.contains(&email_id),
        }
    }

    /// Records the verdict of a scanned Email (one with a pending task).
    fn decide(&mut self, email_id: u64, matches: bool) {
        match (self, matches) {
            (Membership::Only(set), true) | (Membership::AllBut(set), false) => {
                set.insert(email_id);
            }
            (Membership::Only(set), false) | (Membership::AllBut(set), true) => {
                set.remove(&email_id);
            }
        }
    }
}

/// Whether walking the list beats reading the candidates one by one. The walk to the end of
/// the page passes about `window_end × documents / candidates` entries; the reads cost
/// `candidates` point reads. Past [`MAX_CANDIDATES`], always the walk.
fn list_walk_pays(candidates: u64, documents: u64, window_end: u64) -> bool {
    candidates > MAX_CANDIDATES
        || candidates
            .saturating_mul(candidates)
            .saturating_mul(LIST_ENTRIES_PER_POINT_READ)
            > window_end.saturating_mul(documents)
}

/// The list and its text condition, when the query has that shape.
fn list_and_condition(query: &EmailQuery) -> Option<(IndexedList, TextMatch)> {
    if query.sort.len() != 1 || query.sort[0].key != SortKey::ReceivedAt {
        return None;
    }
    let text = |filter: &Filter| match filter {
        Filter::Condition(Condition::Text(condition)) => Some(condition.clone()),
        _ => None,
    };
    let mailbox = |filter: &Filter| match filter {
        Filter::Condition(Condition::InMailbox(mailbox_id)) => Some(*mailbox_id),
        _ => None,
    };
    match query.filter.as_ref()? {
        Filter::Condition(Condition::Text(condition)) => {
            Some((IndexedList::All, condition.clone()))
        }
        Filter::And(children) if children.len() == 2 => {
            let (first, second) = (&children[0], &children[1]);
            match (mailbox(first), text(second), text(first), mailbox(second)) {
                (Some(mailbox_id), Some(condition), _, _)
                | (_, _, Some(condition), Some(mailbox_id)) => {
                    Some((IndexedList::Mailbox(mailbox_id), condition))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The page of a text query along the receivedAt list, or `None` when this path does not
/// apply. One store snapshot holds the pending tasks, the Mailbox counter, the records read
/// and the walk; the index reader is opened after it (an Email without a pending task in the
/// snapshot is in that reader). Only the pending Emails' text is read in transactions of its
/// own.
pub async fn page(
    engine: &EngineShared,
    account_id: u32,
    query: &EmailQuery,
    window: Window,
) -> Result<Option<Page>, StoreError> {
    let Some(search) = engine.search() else {
        return Ok(None);
    };
    let Some((list, condition)) = list_and_condition(query) else {
        return Ok(None);
    };
    let search = search.clone();
    let store = engine.store.clone();
    let blobs = engine.blobs.clone();
    let want_total = window.calculate_total && !window.collapse;
    engine
        .store
        .read(|tx| {
            Box::pin(async move {
                let backlog = account_backlog(tx, account_id).await?;
                if backlog.rebuilding {
                    return Ok(None);
                }
                let index = search.snapshot();
                let window_end = window.first.saturating_add(window.len).saturating_add(1);
                let Some(selected) =
                    select(&index, account_id, &condition, &backlog, window_end as u64)
                else {
                    return Ok(None);
                };
                let Selected {
                    mut membership,
                    matches,
                    counted_pending,
                } = selected;
                // The Emails the index does not know yet are decided by their own text; a
                // destroyed one (no content) matches nothing.
                let mut pending_matching = 0u64;
                for email_id in &backlog.pending {
                    let content =
                        crate::search::document::load(&store, &blobs, account_id, *email_id)
                            .await?;
                    let matches = content
                        .is_some_and(|content| ScannedEmail::new(&content).matches(&condition));
                    pending_matching += u64::from(matches);
                    membership.decide(*email_id, matches);
                }
                let total = match (want_total, list) {
                    (false, _) => None,
                    (true, IndexedList::All) => {
                        Some(matches.saturating_sub(counted_pending) + pending_matching)
                    }
                    (true, IndexedList::Mailbox(mailbox_id)) => {
                        mailbox_total(tx, account_id, mailbox_id, &membership).await?
                    }
                    (true, IndexedList::MailboxUnseen(_)) => None,
                };
                read_page(tx, account_id, list, window, Some(&membership), total)
                    .await
                    .map(Some)
            })
        })
        .await
}

/// What the index says about one condition, when walking the list pays.
struct Selected {
    membership: Membership,
    /// Matching documents.
    matches: u64,
    /// Of them, documents of Emails with a pending task (stale: counted, yet decided by scan).
    counted_pending: u64,
}

fn select(
    index: &IndexSnapshot,
    account_id: u32,
    condition: &TextMatch,
    backlog: &AccountBacklog,
    window_end: u64,
) -> Option<Selected> {
    select_or_fail(index, account_id, condition, &backlog.pending, window_end).unwrap_or_else(
        |error| {
            tracing::warn!(account_id, %error, "search index query failed; scanning");
            None
        },
    )
}

fn select_or_fail(
    index: &IndexSnapshot,
    account_id: u32,
    condition: &TextMatch,
    pending: &HashSet<u64>,
    window_end: u64,
) -> Result<Option<Selected>, SearchError> {
    let matches = index.count(account_id, condition)?;
    let documents = index.account_documents(account_id)?;
    let pending_count = pending.len() as u64;
    if !list_walk_pays(
        matches + pending_count,
        documents + pending_count,
        window_end,
    ) {
        return Ok(None);
    }
    let membership = if matches <= documents.saturating_sub(matches) {
        Membership::Only(index.matching(account_id, condition)?)
    } else {
        Membership::AllBut(index.not_matching(account_id, condition)?)
    };
    let counted_pending = index.matching_among(account_id, condition, pending)?.len() as u64;
    Ok(Some(Selected {
        membership,
        matches,
        counted_pending,
    }))
}

/// The Mailbox's matching Emails, counted by reading the smaller set's records one by one
/// when that is cheaper than walking the Mailbox's list: its matches, or its counter minus
/// its non-matching Emails. `None`: the list is walked.
async fn mailbox_total(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox_id: u64,
    membership: &Membership,
) -> StoreResult<Option<u64>> {
    let in_mailbox = counters::read(tx, account_id, mailbox_id)
        .await?
        .total_emails;
    let set = match membership {
        Membership::Only(set) | Membership::AllBut(set) => set,
    };
    let reads = set.len() as u64;
    if reads > FEW_POINT_READS && reads.saturating_mul(LIST_ENTRIES_PER_POINT_READ) > in_mailbox {
        return Ok(None);
    }
    let mut in_set = 0u64;
    for email_id in set {
        if let Some(record) = mail_store::load_record(tx, account_id, *email_id).await?
            && record.mailbox_ids.contains(&mailbox_id)
        {
            in_set += 1;
        }
    }
    Ok(Some(match membership {
        Membership::Only(_) => in_set,
        Membership::AllBut(_) => in_mailbox.saturating_sub(in_set),
    }))
}
