//! Email/query on a shared account (RFC 9670, RFC 8621 §2 `mayReadItems`): the grantee's
//! filter is narrowed to the Emails of readable Mailboxes before any path runs, so every
//! answer — ids, totals, collapsed threads, text matches — comes from visible Emails only.
//!
//! A query that already keeps to one readable Mailbox (`inMailbox` at the top, alone or in an
//! AND) or a grantee who reads every Mailbox needs no narrowing, and keeps the fast paths.

use super::EmailQuery;
use super::filter::{Condition, Filter};
use crate::jmap::context::CallContext;
use crate::jmap::error::MethodError;
use crate::mail::mailbox::load_all;
use crate::mail::sharing::{Rights, SharedView};

/// No Mailbox has this id: a condition on a Mailbox the grantee may not read matches nothing.
const NO_MAILBOX: u64 = u64::MAX;

/// Narrows `query` to what the caller sees of `account_id` (nothing to do for the owner).
pub async fn restrict(
    context: &CallContext<'_>,
    account_id: u32,
    query: &mut EmailQuery,
) -> Result<(), MethodError> {
    if context.principal.may_access(account_id) {
        return Ok(());
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
    query.filter = narrowed(filter, &view, reads_everything);
    Ok(())
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
