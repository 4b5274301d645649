//! Every other Email/query: the account's Email records (small, fixed-size-ish values read in
//! one range) are filtered and sorted in memory. Text conditions are answered by the full-text
//! index for every Email it knows (no task pending in the snapshot's index queue, no rebuild
//! in progress); the others — just imported, or all of them while the index is rebuilt — are
//! matched by scanning their text from the store with the same words and rules, so a query is
//! never silently short of an Email, only slower.

use std::collections::{HashMap, HashSet};

use super::filter::{
    Filter, TextEvidence, ThreadKeywords, evaluate, text_conditions, uses_thread_keywords,
};
use super::sort::{EmailComparator, compare};
use crate::mail::store::{self as mail_store, EmailRecord};
use crate::search::SearchHandle;
use crate::search::query::{ScannedEmail, TextMatch};
use crate::search::queue::{AccountBacklog, account_backlog};
use crate::store::blob::BlobStore;
use crate::store::{Store, StoreResult};

/// Records read in one snapshot, and the Email state of that snapshot.
pub struct Snapshot {
    pub state: u64,
    pub records: Vec<(u64, EmailRecord)>,
    /// What the full-text index does not know yet, as of this snapshot.
    pub backlog: AccountBacklog,
}

pub async fn load_snapshot(store: &Store, account_id: u32) -> StoreResult<Snapshot> {
    store
        .read(|tx| {
            Box::pin(async move {
                let state = crate::store::commit::read_state(
                    tx,
                    account_id,
                    crate::store::commit::DataType::Email,
                )
                .await?;
                let records = mail_store::load_all_records(tx, account_id).await?;
                let backlog = account_backlog(tx, account_id).await?;
                Ok(Snapshot {
                    state,
                    records,
                    backlog,
                })
            })
        })
        .await
}

/// Per text condition of `filter`, the Emails whose indexed document matches; `None` when the
/// index cannot help (absent, account being rebuilt, or failing: then everything is scanned).
fn index_matches(
    search: Option<&SearchHandle>,
    account_id: u32,
    snapshot: &Snapshot,
    filter: Option<&Filter>,
) -> Option<HashMap<TextMatch, HashSet<u64>>> {
    let mut conditions = Vec::new();
    text_conditions(filter?, &mut conditions);
    let search = search?;
    if conditions.is_empty() || snapshot.backlog.rebuilding {
        return None;
    }
    let mut matches = HashMap::with_capacity(conditions.len());
    for condition in conditions {
        match search.search(account_id, &condition) {
            Ok(emails) => {
                matches.insert(condition, emails);
            }
            Err(error) => {
                tracing::warn!(account_id, %error, "search index query failed; scanning instead");
                return None;
            }
        }
    }
    Some(matches)
}

/// The complete, sorted (and collapsed) result list of a query over `snapshot`.
#[allow(clippy::too_many_arguments)]
pub async fn results(
    store: &Store,
    blobs: &BlobStore,
    search: Option<&SearchHandle>,
    account_id: u32,
    snapshot: &Snapshot,
    filter: Option<&Filter>,
    sort: &[EmailComparator],
    collapse_threads: bool,
) -> StoreResult<Vec<u64>> {
    let needs_threads = filter.is_some_and(uses_thread_keywords)
        || sort.iter().any(EmailComparator::uses_thread_keywords);
    let threads = if needs_threads {
        thread_keywords(&snapshot.records)
    } else {
        ThreadKeywords::default()
    };
    let indexed = index_matches(search, account_id, snapshot, filter);
    let mut matching: Vec<(u64, &EmailRecord)> = Vec::new();
    let mut undecided: Vec<(u64, &EmailRecord)> = Vec::new();
    for (email_id, record) in &snapshot.records {
        let evidence = match &indexed {
            Some(matches) if snapshot.backlog.index_knows(*email_id) => TextEvidence::Indexed {
                email_id: *email_id,
                matches,
            },
            _ => TextEvidence::Unknown,
        };
        let verdict = match filter {
            None => Some(true),
            Some(filter) => evaluate(filter, record, &threads, evidence),
        };
        match verdict {
            Some(true) => matching.push((*email_id, record)),
            Some(false) => {}
            None => undecided.push((*email_id, record)),
        }
    }
    if let Some(filter) = filter {
        for (email_id, record) in undecided {
            let Some(content) =
                crate::search::document::load(store, blobs, account_id, email_id).await?
            else {
                continue;
            };
            let scanned = ScannedEmail::new(&content);
            if evaluate(filter, record, &threads, TextEvidence::Scanned(&scanned)) == Some(true) {
                matching.push((email_id, record));
            }
        }
    }
    matching.sort_by(|left, right| compare(sort, &threads, *left, *right));
    let mut seen_threads = HashSet::new();
    Ok(matching
        .into_iter()
        .filter(|(_, record)| !collapse_threads || seen_threads.insert(record.thread_id))
        .map(|(email_id, _)| email_id)
        .collect())
}

/// For each Thread, the keywords all its Emails have and those some have.
fn thread_keywords(records: &[(u64, EmailRecord)]) -> ThreadKeywords {
    let mut members: HashMap<u64, Vec<&EmailRecord>> = HashMap::new();
    for (_, record) in records {
        members.entry(record.thread_id).or_default().push(record);
    }
    let mut threads = ThreadKeywords::default();
    for (thread_id, records) in members {
        let mut some: Vec<String> = records
            .iter()
            .flat_map(|record| record.keywords.iter().cloned())
            .collect();
        some.sort_unstable();
        some.dedup();
        let all: Vec<String> = some
            .iter()
            .filter(|keyword| records.iter().all(|record| record.has_keyword(keyword)))
            .cloned()
            .collect();
        threads.all.insert(thread_id, all);
        threads.some.insert(thread_id, some);
    }
    threads
}
