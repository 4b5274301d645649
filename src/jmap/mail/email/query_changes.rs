//! Email/queryChanges (RFC 8621 §4.5, RFC 8620 §5.6), from the change log and the current
//! results (old results are not stored).
//!
//! The answer is the conservative one §5.6 allows: every Email updated or destroyed since the
//! old state is in `removed`, and every current result that was created or updated is in
//! `added` with its index. With collapseThreads, a change in a Thread can change which of its
//! Emails stands for it, so every member of a changed Thread is removed and its current
//! representative re-added. `upToId` stops `added` at that id (§5.6).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::fields::EMAIL_ID_PREFIX;
use super::query::EmailQuery;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::take_max_changes;
use crate::jmap::types::{Id, State, UnsignedInt};
use crate::mail::sharing::sharing_version;
use crate::mail::store as mail_store;
use crate::store::BoxFuture;
use crate::store::commit::{
    ChangesError, ChangesSince, DataType, LogPosition, changes_since, read_state,
};

/// Attempts at reading results and the log at one state when commits race the query.
const CONSISTENT_READ_ATTEMPTS: usize = 5;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(query_changes(context, arguments))
}

struct LogView {
    emails: ChangesSince,
    /// Members (now) of Threads changed since the old state, when threads are collapsed.
    thread_members: HashSet<u64>,
}

async fn query_changes(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let mut email_query = EmailQuery::take(&mut arguments)?;
    // The narrowed filter is what the results are compared with; the merge is a shortcut of
    // Email/query only.
    let _ = super::query::shared::restrict(context, account.number(), &mut email_query).await?;
    let Some(since_text) = arguments.take_string("sinceQueryState")? else {
        return Err(MethodError::invalid_arguments(
            "\"sinceQueryState\" is required",
        ));
    };
    let requested_max = take_max_changes(&mut arguments)?;
    let up_to_id = match arguments.take_string("upToId")? {
        Some(text) => Some(
            Id::parse(&text).map_err(|error| MethodError::invalid_arguments(error.to_string()))?,
        ),
        None => None,
    };
    let calculate_total = arguments.take_bool("calculateTotal", false)?;
    arguments.finish()?;
    let max_changes = requested_max.map_or(u64::MAX, UnsignedInt::get);
    let since = State::parse(&since_text)
        .ok_or_else(|| MethodError::new(MethodErrorType::CannotCalculateChanges))?
        .position();
    let account_id = account.number();
    let collapse = email_query.collapse_threads;
    // RFC 9670: since a grant changed, Emails entered or left the grantee's results without a
    // change-log entry; the client queries afresh.
    if !context.owns(account) {
        let changed_at = context
            .engine
            .store
            .read(move |tx| Box::pin(async move { sharing_version(tx, account_id).await }))
            .await?;
        if changed_at > since.version {
            return Err(MethodError::new(MethodErrorType::CannotCalculateChanges));
        }
    }

    let mut attempt = 0;
    let (ids, log) = loop {
        attempt += 1;
        let (state, ids) = email_query.all_results(context, account_id).await?;
        let log = read_log(context, account_id, since, collapse).await?;
        if log.emails.new_state.version == state || attempt >= CONSISTENT_READ_ATTEMPTS {
            break (ids, log);
        }
    };

    let mut removed: Vec<u64> = log
        .emails
        .updated
        .iter()
        .chain(&log.emails.destroyed)
        .copied()
        .collect();
    removed.extend(log.thread_members.iter().copied());
    removed.sort_unstable();
    removed.dedup();
    let touched: HashSet<u64> = log
        .emails
        .created
        .iter()
        .chain(&log.emails.updated)
        .chain(&log.thread_members)
        .copied()
        .collect();
    let up_to = up_to_id
        .and_then(|id| id.to_number(EMAIL_ID_PREFIX))
        .and_then(|number| ids.iter().position(|id| *id == number));
    let added: Vec<Value> = ids
        .iter()
        .enumerate()
        .take(up_to.map_or(usize::MAX, |index| index + 1))
        .filter(|(_, id)| touched.contains(id))
        .map(|(index, id)| json!({"id": Id::from_number(EMAIL_ID_PREFIX, *id), "index": index}))
        .collect();
    // RFC 8620 §5.6: more changes than maxChanges is tooManyChanges.
    let change_count = (removed.len() + added.len()) as u64;
    if change_count > max_changes {
        return Err(MethodError::with_description(
            MethodErrorType::TooManyChanges,
            format!("{change_count} changes, more than maxChanges ({max_changes})"),
        ));
    }
    let removed: Vec<Value> = removed
        .iter()
        .map(|id| Value::String(Id::from_number(EMAIL_ID_PREFIX, *id).into_string()))
        .collect();
    let mut response = json!({
        "accountId": account,
        "oldQueryState": State::at(log.emails.old_state),
        "newQueryState": State::at(log.emails.new_state),
        "removed": removed,
        "added": added,
    });
    if calculate_total {
        response["total"] = Value::from(ids.len() as u64);
    }
    Ok(response)
}

async fn read_log(
    context: &CallContext<'_>,
    account_id: u32,
    since: LogPosition,
    collapse: bool,
) -> Result<LogView, MethodError> {
    context
        .engine
        .store
        .read(|tx| {
            Box::pin(async move {
                let emails = match changes_since(tx, account_id, DataType::Email, since, 0).await {
                    Ok(changes) => changes,
                    Err(ChangesError::CannotCalculate) => return Ok(Err(cannot_calculate())),
                    Err(ChangesError::Store(error)) => return Err(error),
                };
                let mut thread_members = HashSet::new();
                if collapse {
                    // The Email state can be newer than the Thread state (keyword changes do
                    // not touch Threads): then no Thread changed since.
                    let thread_state = read_state(tx, account_id, DataType::Thread).await?;
                    if since.version < thread_state {
                        let threads = match changes_since(
                            tx,
                            account_id,
                            DataType::Thread,
                            LogPosition::at(since.version),
                            0,
                        )
                        .await
                        {
                            Ok(changes) => changes,
                            Err(ChangesError::CannotCalculate) => {
                                return Ok(Err(cannot_calculate()));
                            }
                            Err(ChangesError::Store(error)) => return Err(error),
                        };
                        for thread_id in threads.created.iter().chain(&threads.updated) {
                            if let Some(thread) =
                                mail_store::load_thread(tx, account_id, *thread_id).await?
                            {
                                thread_members.extend(thread.email_ids());
                            }
                        }
                    }
                }
                Ok(Ok(LogView {
                    emails,
                    thread_members,
                }))
            })
        })
        .await?
}

fn cannot_calculate() -> MethodError {
    MethodError::new(MethodErrorType::CannotCalculateChanges)
}
