//! Email/query on a shared account (RFC 9670, RFC 8621 §2 `mayReadItems`): the grantee's
//! filter is narrowed to the Emails of readable Mailboxes before any path runs, so every
//! answer — ids, totals, collapsed threads, text matches — comes from visible Emails only.
//!
//! A query that already keeps to one readable Mailbox (`inMailbox` at the top, alone or in an
//! AND) or a grantee who reads every Mailbox needs no narrowing, and keeps the fast paths. The
//! grantee's whole-account list by receivedAt (what "all mail" shows) is a merge of the
//! readable Mailboxes' receivedAt indexes ([`merged_page`]), each read only as far as the page
//! needs.

use std::collections::HashSet;

use super::filter::{Condition, Filter};
use super::{EmailQuery, Page, Window};
use crate::jmap::context::CallContext;
use crate::jmap::error::MethodError;
use crate::mail::mailbox::load_all;
use crate::mail::sharing::{Rights, SharedView};
use crate::mail::store::index;
use crate::store::commit::{DataType, read_state};
use crate::store::{KeyRange, RangeOptions, keys};

/// No Mailbox has this id: a condition on a Mailbox the grantee may not read matches nothing.
const NO_MAILBOX: u64 = u64::MAX;

/// What [`restrict`] did to a grantee's query: the readable Mailboxes it kept the query to,
/// and whether the client's own filter was empty (the whole-account list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowed {
    pub readable: Vec<u64>,
    pub whole_account: bool,
}

/// Narrows `query` to what the caller sees of `account_id` (nothing to do for the owner).
pub async fn restrict(
    context: &CallContext<'_>,
    account_id: u32,
    query: &mut EmailQuery,
) -> Result<Option<Narrowed>, MethodError> {
    if context.principal.may_access(account_id) {
        return Ok(None);
    }
    let viewer = context.viewer.clone();
    let (view, reads_everything) = context
        .engine
        .store
        .read(move |tx| {
            Box::pin(async move {
                let mailboxes = load_all(tx, account_id).await?;
                let view = SharedView::of_account(account_id, &mailboxes, &viewer);
                let everything = view.reads_everything(&mailboxes);
                Ok((view, everything))
            })
        })
        .await?;
    let filter = query
        .filter
        .take()
        .map(|filter| hide_unreadable(filter, &view));
    let whole_account = filter.is_none();
    let before = filter.clone();
    query.filter = narrowed(filter, &view, reads_everything);
    Ok((query.filter != before).then(|| Narrowed {
        readable: view.readable().collect(),
        whole_account,
    }))
}

/// A page of the grantee's whole-account list by receivedAt: the readable Mailboxes'
/// `MAILBOX_RECEIVED` lists merged in order, an Email in several of them once. Each list is
/// read up to the page's end plus one, or whole for a total or collapsed threads.
pub async fn merged_page(
    context: &CallContext<'_>,
    account_id: u32,
    readable: &[u64],
    window: Window,
) -> Result<Page, MethodError> {
    let readable = readable.to_vec();
    let page = context
        .engine
        .store
        .read(move |tx| {
            Box::pin(async move {
                let state = read_state(tx, account_id, DataType::Email).await?;
                let read_all = window.calculate_total || window.collapse;
                let needed = window.first.saturating_add(window.len).saturating_add(1);
                let mut entries: Vec<(u64, u64, u64)> = Vec::new();
                for mailbox_id in readable {
                    let prefix =
                        index::mailbox_prefix(account_id, index::MAILBOX_RECEIVED, mailbox_id);
                    let options = RangeOptions {
                        limit: if read_all { 0 } else { needed },
                        reverse: !window.ascending,
                    };
                    for (key, value) in tx.get_range(&KeyRange::prefix(&prefix), options).await? {
                        if let Some((time, email_id)) = index::entry_tail(&key) {
                            let thread_id = keys::be_u64(&value).unwrap_or(0);
                            entries.push((index::ordered_time(time), email_id, thread_id));
                        }
                    }
                }
                // Ties by id in the direction of the sort, as the other paths.
                entries.sort_unstable_by_key(|(time, email_id, _)| (*time, *email_id));
                entries.dedup_by_key(|(_, email_id, _)| *email_id);
                if !window.ascending {
                    entries.reverse();
                }
                let mut threads = HashSet::new();
                let mut index = 0usize;
                let mut ids = Vec::with_capacity(window.len.min(1024));
                let mut more_after = false;
                for (_, email_id, thread_id) in entries {
                    if window.collapse && !threads.insert(thread_id) {
                        continue;
                    }
                    if index >= window.first && ids.len() < window.len {
                        ids.push(email_id);
                    } else if index >= window.first {
                        more_after = true;
                    }
                    index += 1;
                }
                let position = if ids.is_empty() {
                    window.first.min(index)
                } else {
                    window.first
                };
                Ok(Page {
                    state,
                    position,
                    ids,
                    total: read_all.then_some(index as u64),
                    more_after,
                })
            })
        })
        .await?;
    Ok(page)
}

/// RFC 8621 §2: only a Mailbox granting mayReadItems may be used in a filter.
fn hide_unreadable(filter: Filter, view: &SharedView) -> Filter {
    let readable = |mailbox_id: u64| view.may(mailbox_id, Rights::READ_ITEMS);
    match filter {
        Filter::And(parts) => Filter::And(
            parts
                .into_iter()
                .map(|f| hide_unreadable(f, view))
                .collect(),
        ),
        Filter::Or(parts) => Filter::Or(
            parts
                .into_iter()
                .map(|f| hide_unreadable(f, view))
                .collect(),
        ),
        Filter::Not(parts) => Filter::Not(
            parts
                .into_iter()
                .map(|f| hide_unreadable(f, view))
                .collect(),
        ),
        Filter::Condition(Condition::InMailbox(mailbox_id)) if !readable(mailbox_id) => {
            Filter::Condition(Condition::InMailbox(NO_MAILBOX))
        }
        Filter::Condition(Condition::InMailboxOtherThan(excluded)) => {
            Filter::Condition(Condition::InMailboxOtherThan(
                excluded.into_iter().filter(|id| readable(*id)).collect(),
            ))
        }
        other => other,
    }
}

/// The filter that adds "in a readable Mailbox" to `filter`, unless it already holds.
fn narrowed(filter: Option<Filter>, view: &SharedView, reads_everything: bool) -> Option<Filter> {
    if reads_everything {
        return filter;
    }
    let in_readable_mailbox = |filter: &Filter| match filter {
        Filter::Condition(Condition::InMailbox(mailbox_id)) => {
            view.may(*mailbox_id, Rights::READ_ITEMS)
        }
        _ => false,
    };
    let already_narrow = match &filter {
        Some(Filter::And(parts)) => parts.iter().any(in_readable_mailbox),
        Some(condition) => in_readable_mailbox(condition),
        None => false,
    };
    if already_narrow {
        return filter;
    }
    let visible = Filter::Or(
        view.readable()
            .map(|mailbox_id| Filter::Condition(Condition::InMailbox(mailbox_id)))
            .collect(),
    );
    Some(match filter {
        None => visible,
        Some(filter) => Filter::And(vec![visible, filter]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::mailbox::Mailbox;
    use crate::mail::mailbox::tree::Mailboxes;
    use crate::mail::sharing::Viewer;

    fn view() -> (SharedView, Mailboxes) {
        let mut mailboxes = Mailboxes::new();
        for (id, grant) in [(1, Rights::READ_ITEMS), (2, Rights::NONE)] {
            let mut share_with = std::collections::BTreeMap::new();
            if !grant.is_empty() {
                share_with.insert(9, grant);
            }
            mailboxes.insert(
                id,
                Mailbox {
                    name: format!("m{id}"),
                    parent_id: None,
                    role: None,
                    sort_order: 0,
                    is_subscribed: true,
                    share_with,
                    unsubscribed: Default::default(),
                },
            );
        }
        (
            SharedView::of(&mailboxes, &Viewer::individual(9)),
            mailboxes,
        )
    }

    #[test]
    fn a_readable_mailbox_query_stays_as_it_is() {
        let (view, _) = view();
        let filter = Filter::Condition(Condition::InMailbox(1));
        assert_eq!(narrowed(Some(filter.clone()), &view, false), Some(filter));
    }

    #[test]
    fn other_queries_keep_to_readable_mailboxes() {
        let (view, mailboxes) = view();
        assert!(!view.reads_everything(&mailboxes));
        assert_eq!(
            narrowed(None, &view, false),
            Some(Filter::Or(vec![Filter::Condition(Condition::InMailbox(1))]))
        );
        let hidden = hide_unreadable(Filter::Condition(Condition::InMailbox(2)), &view);
        assert_eq!(hidden, Filter::Condition(Condition::InMailbox(NO_MAILBOX)));
        let hidden = hide_unreadable(
            Filter::Condition(Condition::InMailboxOtherThan(vec![1, 2])),
            &view,
        );
        assert_eq!(
            hidden,
            Filter::Condition(Condition::InMailboxOtherThan(vec![1]))
        );
    }
}
