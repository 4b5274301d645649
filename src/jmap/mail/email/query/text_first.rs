//! Text queries that the index narrows first. When every match must satisfy one text
//! condition (the filter is that condition, or an AND holding it), its index matches plus the
//! Emails the index does not know yet are the only candidates: their records are read one by
//! one instead of the account's whole record range, and the general evaluation (`general.rs`)
//! runs on them unchanged. A query whose text matches much of the account, that needs thread
//! keywords, or whose account is being rebuilt, takes the general path.
//!
//! A text condition alone (or with inMailbox) sorted by receivedAt, matching more Emails than
//! that, walks the store's receivedAt list instead (`text_list.rs`), keeping the matching
//! Emails: a page of a word that most Emails hold costs a page, and its total a count in the
//! index, not loading and sorting every record.

use super::filter::{Condition, Filter, uses_thread_keywords};
use super::general::Snapshot;
use super::sort::EmailComparator;
use crate::mail::store as mail_store;
use crate::search::SearchHandle;
use crate::search::query::TextMatch;
use crate::search::queue::account_backlog;
use crate::store::commit::{DataType, read_state};
use crate::store::{Store, StoreResult};

/// Above this many candidates, point reads cost more than reading the whole record range.
const MAX_CANDIDATES: usize = 4_000;

/// A text condition every match of `filter` satisfies, if there is one.
fn required_text(filter: &Filter) -> Option<&TextMatch> {
    match filter {
        Filter::Condition(Condition::Text(condition)) => Some(condition),
        Filter::And(children) => children.iter().find_map(required_text),
        _ => None,
    }
}

/// The snapshot restricted to the candidates, or `None` when this path does not apply.
pub async fn load_candidates(
    store: &Store,
    search: Option<&SearchHandle>,
    account_id: u32,
    filter: Option<&Filter>,
    sort: &[EmailComparator],
) -> StoreResult<Option<Snapshot>> {
    let (Some(search), Some(filter)) = (search, filter) else {
        return Ok(None);
    };
    let Some(required) = required_text(filter) else {
        return Ok(None);
    };
    if uses_thread_keywords(filter) || sort.iter().any(EmailComparator::uses_thread_keywords) {
        return Ok(None);
    }
    let search = search.clone();
    let required = required.clone();
    store
        .read(|tx| {
            Box::pin(async move {
                let state = read_state(tx, account_id, DataType::Email).await?;
                let backlog = account_backlog(tx, account_id).await?;
                if backlog.rebuilding {
                    return Ok(None);
                }
                // After the snapshot: an Email without a pending task in it is in this reader.
                let matched = match search.search(account_id, &required) {
                    Ok(matched) => matched,
                    Err(error) => {
                        tracing::warn!(account_id, %error, "search index query failed; scanning");
                        return Ok(None);
                    }
                };
                if matched.len() + backlog.pending.len() > MAX_CANDIDATES {
                    return Ok(None);
                }
                let mut candidates: Vec<u64> = matched.union(&backlog.pending).copied().collect();
                candidates.sort_unstable();
                let mut records = Vec::with_capacity(candidates.len());
                for email_id in candidates {
                    if let Some(record) = mail_store::load_record(tx, account_id, email_id).await? {
                        records.push((email_id, record));
                    }
                }
                Ok(Some(Snapshot {
                    state,
                    records,
                    backlog,
                }))
            })
        })
        .await
}
