//! Email/query (RFC 8621 §4.4, RFC 8620 §5.5). Two ways to an answer, chosen per query:
//! - a mailbox (or its unread Emails, or the whole account) by receivedAt: a bounded range read
//!   of a store index (`fast.rs`), totals from the Mailbox counters;
//! - anything else: the account's Email records filtered and sorted in memory (`general.rs`),
//!   text conditions answered by the full-text index (`search`); when a text condition must
//!   hold, only its index matches and the not-yet-indexed Emails are read (`text_first.rs`);
//! - a word many Emails hold, alone or within a mailbox, by receivedAt: the receivedAt list
//!   walked until the page is full, the total counted by the index (`text_list.rs`).
//!
//! Both order ties by id in the direction of the first comparator, so the two agree.

pub mod fast;
pub mod filter;
pub mod general;
pub mod shared;
pub mod sort;
pub mod text_first;
pub mod text_list;

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::fields::EMAIL_ID_PREFIX;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::query::{WindowStart, window_start};
use crate::jmap::types::{Id, State};
use crate::store::commit::{DataType, read_state};
use crate::store::{BoxFuture, StoreResult, Transaction};
use fast::IndexedList;
use filter::Filter;
use sort::{EmailComparator, SortKey};
use text_list::Membership;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(query(context, arguments))
}

/// A parsed query: what /query and /queryChanges share.
#[derive(Debug, Clone)]
pub struct EmailQuery {
    pub filter: Option<Filter>,
    pub sort: Vec<EmailComparator>,
    pub collapse_threads: bool,
}

impl EmailQuery {
    pub fn take(arguments: &mut Arguments) -> Result<EmailQuery, MethodError> {
        let filter = arguments
            .take("filter")
            .map(|value| filter::parse_filter(&value))
            .transpose()?;
        let mut sort = sort::parse_sort(arguments.take("sort"))?;
        // No sort given: newest first, what every mail client shows.
        if sort.is_empty() {
            sort.push(EmailComparator {
                key: SortKey::ReceivedAt,
                is_ascending: false,
            });
        }
        let collapse_threads = arguments.take_bool("collapseThreads", false)?;
        Ok(EmailQuery {
            filter,
            sort,
            collapse_threads,
        })
    }

    /// Every matching id in order, and the Email state they were read at.
    pub async fn all_results(
        &self,
        context: &CallContext<'_>,
        account_id: u32,
    ) -> Result<(u64, Vec<u64>), MethodError> {
        let engine = context.engine;
        if let Some(list) = fast::indexed_list(self.filter.as_ref(), &self.sort) {
            let ascending = self.sort[0].is_ascending;
            let collapse = self.collapse_threads;
            let outcome = engine
                .store
                .read(|tx| {
                    Box::pin(async move {
                        let state = read_state(tx, account_id, DataType::Email).await?;
                        let mut ids = Vec::new();
                        let mut threads = HashSet::new();
                        fast::scan(tx, account_id, list, ascending, |email_id, thread_id| {
                            if !collapse || threads.insert(thread_id) {
                                ids.push(email_id);
                            }
                            true
                        })
                        .await?;
                        Ok((state, ids))
                    })
                })
                .await?;
            return Ok(outcome);
        }
        let narrowed = text_first::load_candidates(
            &engine.store,
            engine.search(),
            account_id,
            self.filter.as_ref(),
            &self.sort,
        )
        .await?;
        let snapshot = match narrowed {
            Some(snapshot) => snapshot,
            None => general::load_snapshot(&engine.store, account_id).await?,
        };
        let ids = general::results(
            &engine.store,
            &engine.blobs,
            engine.search(),
            account_id,
            &snapshot,
            self.filter.as_ref(),
            &self.sort,
            self.collapse_threads,
        )
        .await?;
        Ok((snapshot.state, ids))
    }
}

async fn query(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let mut email_query = EmailQuery::take(&mut arguments)?;
    let narrowed = shared::restrict(context, account.number(), &mut email_query).await?;
    let position = arguments.take_int("position")?.map_or(0, |p| p.get());
    let anchor = arguments.take_string("anchor")?;
    let anchor_offset = arguments.take_int("anchorOffset")?.map_or(0, |o| o.get());
    let requested_limit = arguments.take_unsigned("limit")?;
    let calculate_total = arguments.take_bool("calculateTotal", false)?;
    arguments.finish()?;

    let start = match anchor {
        // RFC 8620 §5.5: with an anchor, position is ignored.
        Some(anchor) => {
            let id = context
                .resolve_id(&anchor)?
                .and_then(|id| id.to_number(EMAIL_ID_PREFIX))
                .ok_or_else(|| MethodError::new(MethodErrorType::AnchorNotFound))?;
            WindowStart::Anchor {
                id,
                offset: anchor_offset,
            }
        }
        None => WindowStart::Position(position),
    };
    let server_limit = context.engine.limits.max_objects_in_get;
    let limit = requested_limit.map_or(server_limit, |l| l.get().min(server_limit));
    let window_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let account_id = account.number();

    let window = |first: &i64| Window {
        first: usize::try_from(*first).unwrap_or(usize::MAX),
        len: window_len,
        ascending: email_query.sort[0].is_ascending,
        collapse: email_query.collapse_threads,
        calculate_total,
    };
    // A grantee's whole-account list by receivedAt: the merge of their readable Mailboxes.
    let merged = narrowed
        .filter(|narrowed| narrowed.whole_account)
        .filter(|_| fast::indexed_list(None, &email_query.sort).is_some());
    let page = match (
        &start,
        fast::indexed_list(email_query.filter.as_ref(), &email_query.sort),
    ) {
        (WindowStart::Position(first), _) if *first >= 0 && merged.is_some() => {
            let readable = merged.map(|narrowed| narrowed.readable).unwrap_or_default();
            shared::merged_page(context, account_id, &readable, window(first)).await?
        }
        (WindowStart::Position(first), Some(list)) if *first >= 0 => {
            indexed_page(context, account_id, list, window(first)).await?
        }
        (WindowStart::Position(first), None)
            if *first >= 0
                && let Some(page) =
                    text_list::page(context.engine, account_id, &email_query, window(first))
                        .await? =>
        {
            page
        }
        _ => {
            let (state, ids) = email_query.all_results(context, account_id).await?;
            let first = window_start(&ids, &start)?;
            let end = ids.len().min(first.saturating_add(window_len));
            Page {
                state,
                position: first,
                ids: ids[first..end].to_vec(),
                total: Some(ids.len() as u64),
                more_after: end < ids.len(),
            }
        }
    };

    let mut response = Map::with_capacity(7);
    response.insert("accountId".to_owned(), Value::String(account.to_string()));
    response.insert(
        "queryState".to_owned(),
        Value::String(State::new(page.state).to_string()),
    );
    response.insert("canCalculateChanges".to_owned(), Value::Bool(true));
    response.insert("position".to_owned(), Value::from(page.position as u64));
    let ids: Vec<Value> = page
        .ids
        .iter()
        .map(|id| Value::String(Id::from_number(EMAIL_ID_PREFIX, *id).into_string()))
        .collect();
    response.insert("ids".to_owned(), Value::Array(ids));
    if calculate_total && let Some(total) = page.total {
        response.insert("total".to_owned(), Value::from(total));
    }
    // RFC 8620 §5.5: `limit` is returned only when the server's bound cut the list.
    let server_bound_applied = match requested_limit {
        Some(requested) => requested.get() > server_limit,
        None => page.more_after,
    };
    if server_bound_applied {
        response.insert("limit".to_owned(), Value::from(limit));
    }
    Ok(Value::Object(response))
}

/// One page of a query's results.
pub struct Page {
    pub state: u64,
    pub position: usize,
    pub ids: Vec<u64>,
    pub total: Option<u64>,
    pub more_after: bool,
}

/// Where a page of an indexed list starts and how it is read.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// A non-negative position.
    pub first: usize,
    pub len: usize,
    pub ascending: bool,
    pub collapse: bool,
    pub calculate_total: bool,
}

/// A page of an indexed list: reads only up to the page's end (plus one entry, to know
/// whether more follow), unless a total is wanted that the counters do not hold.
async fn indexed_page(
    context: &CallContext<'_>,
    account_id: u32,
    list: IndexedList,
    window: Window,
) -> Result<Page, MethodError> {
    let page = context
        .engine
        .store
        .read(|tx| {
            Box::pin(async move {
                let counted = if window.calculate_total {
                    fast::counted_total(tx, account_id, list, window.collapse).await?
                } else {
                    None
                };
                read_page(tx, account_id, list, window, None, counted).await
            })
        })
        .await?;
    Ok(page)
}

/// Reads a page of `list` in `tx`. With `matching`, only those Emails of the list count (a
/// text condition). The list is walked to its end only when a total is wanted and not
/// `known_total`.
pub async fn read_page(
    tx: &mut dyn Transaction,
    account_id: u32,
    list: IndexedList,
    window: Window,
    matching: Option<&Membership>,
    known_total: Option<u64>,
) -> StoreResult<Page> {
    let state = read_state(tx, account_id, DataType::Email).await?;
    let Window {
        first,
        len,
        ascending,
        collapse,
        calculate_total,
    } = window;
    let known_total = known_total.filter(|_| calculate_total);
    let scan_everything = calculate_total && known_total.is_none();
    let stop_after = first.saturating_add(len).saturating_add(1);
    let mut threads = HashSet::new();
    let mut index = 0usize;
    let mut ids = Vec::with_capacity(len.min(1024));
    let mut more_after = false;
    fast::scan(tx, account_id, list, ascending, |email_id, thread_id| {
        if matching.is_some_and(|matching| !matching.contains(email_id)) {
            return true;
        }
        if collapse && !threads.insert(thread_id) {
            return true;
        }
        if index >= first && ids.len() < len {
            ids.push(email_id);
        } else if index >= first {
            more_after = true;
        }
        index += 1;
        scan_everything || index < stop_after
    })
    .await?;
    let total = known_total.or(scan_everything.then_some(index as u64));
    // Past the end, the position is the total (as for the general path).
    let position = if ids.is_empty() {
        first.min(index)
    } else {
        first
    };
    Ok(Page {
        state,
        position,
        ids,
        total,
        more_after,
    })
}
