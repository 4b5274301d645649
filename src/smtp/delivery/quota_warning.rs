//! The warning an account's owner gets when its usage crosses a quota's `warnLimit`
//! (RFC 9425; `mail::quota` queues a task in the crossing transaction). A domain's quota
//! warns the domain's postmaster account (RFC 5321 §4.5.1: the address for problems of the
//! domain's mail system), or, where the domain has none, the account whose mail crossed it.
//!
//! The consumer builds a short message (From: the postmaster of the server's host name,
//! `Auto-Submitted: auto-generated`), stores it, and in the transaction that stores it checks
//! that the task is still there, queues the message for delivery into the account, and clears
//! the task: a replay, or a second node doing the same, queues it once. The delivery is an
//! accepted message, so it is filed even at the limit.

use std::sync::Arc;

use bytes::Bytes;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;

use crate::auth::directory::{account_email_in, account_id_by_email_in};
use crate::mail::quota::{self, Resource, Scope, WarningTask};
use crate::smtp::incoming::{self, IncomingMessage, unix_now};
use crate::store::blob::{BlobStore, FinishStep};
use crate::store::{KeyRange, RangeOptions, Store, StoreError, StoreResult};

/// One pending warning.
pub type Warning = WarningTask;

/// Up to `limit` pending warnings.
pub async fn pending(store: &Store, limit: usize) -> StoreResult<Vec<Warning>> {
    let range = KeyRange::prefix(&quota::warnings_prefix());
    let pairs = store
        .read(move |tx| {
            let range = range.clone();
            Box::pin(async move {
                tx.get_range(
                    &range,
                    RangeOptions {
                        limit,
                        reverse: false,
                    },
                )
                .await
            })
        })
        .await?;
    Ok(pairs
        .iter()
        .filter_map(|(key, value)| WarningTask::decode(key, value))
        .collect())
}

/// The warning message (RFC 5322), addressed to `to`.
pub fn message(hostname: &str, to: &str, warning: &Warning) -> Result<Vec<u8>, StoreError> {
    let percent = match warning.limit {
        0 => 100,
        limit => (u128::from(warning.used) * 100 / u128::from(limit)) as u64,
    };
    let (what, amount) = match warning.resource {
        Resource::Octets => (
            "storage",
            format!(
                "{} of {} MB",
                warning.used.div_ceil(1_000_000),
                warning.limit / 1_000_000
            ),
        ),
        Resource::Count => (
            "message count",
            format!("{} of {} messages", warning.used, warning.limit),
        ),
    };
    let (text, subject) = match &warning.scope {
        Scope::Account => (
            format!(
                "Your mailbox has reached {percent}% of its {what} quota ({amount}).\r\n\r\n\
                 When it is full, new messages are refused (senders are told to try again \
                 later).\r\n\
                 Delete messages you no longer need, and empty the Trash, to make room.\r\n"
            ),
            format!("Your mailbox is {percent}% full"),
        ),
        Scope::Domain(domain) => (
            format!(
                "The mail domain {domain} has reached {percent}% of its {what} quota \
                 ({amount}), shared by all of its accounts.\r\n\r\n\
                 When it is full, new messages to any of them are refused (senders are told \
                 to try again later).\r\n\
                 Raise the limit (tern domain quota {domain}) or free space in its \
                 accounts.\r\n"
            ),
            format!("The domain {domain} is {percent}% full"),
        ),
    };
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail server"),
            format!("postmaster@{hostname}"),
        ))
        .to(Address::new_address(None::<&str>, to.to_owned()))
        .subject(subject)
        // RFC 3834 §5.1: generated, not a reply; nothing should answer it.
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .text_body(text)
        .write_to_vec()
        .map_err(StoreError::io)
}

/// Queues the message of every pending warning; answers how many tasks it handled.
pub async fn run_pending(
    store: &Store,
    blobs: &BlobStore,
    hostname: &str,
    limit: usize,
) -> StoreResult<usize> {
    let warnings = pending(store, limit).await?;
    for warning in &warnings {
        send(store, blobs, hostname, warning.clone()).await?;
    }
    Ok(warnings.len())
}

async fn send(
    store: &Store,
    blobs: &BlobStore,
    hostname: &str,
    warning: Warning,
) -> StoreResult<()> {
    let task = warning.key();
    let scope = warning.scope.clone();
    let crossed_by = warning.account_id;
    let recipient = store
        .read(move |tx| {
            let scope = scope.clone();
            Box::pin(async move {
                if let Scope::Domain(domain) = &scope
                    && let Some(postmaster) =
                        account_id_by_email_in(tx, &format!("postmaster@{domain}")).await?
                    && let Some(address) = account_email_in(tx, postmaster).await?
                {
                    return Ok(Some((postmaster, address)));
                }
                Ok(account_email_in(tx, crossed_by)
                    .await?
                    .map(|address| (crossed_by, address)))
            })
        })
        .await?;
    let Some((account_id, address)) = recipient else {
        // The account is gone: nothing to warn.
        let task = task.clone();
        return store
            .transact(move |tx| {
                let task = task.clone();
                Box::pin(async move { tx.clear(&task) })
            })
            .await;
    };
    let bytes = message(hostname, &address, &warning)?;
    let size = bytes.len() as u64;
    let queue_id = incoming::new_queue_id();
    let finish: FinishStep = Arc::new(move |tx, info| {
        let task = task.clone();
        let address = address.clone();
        Box::pin(async move {
            // Handled meanwhile (a replay, another node): queue nothing.
            if tx.get(&task).await?.is_none() {
                return Ok(());
            }
            tx.clear(&task)?;
            let message = IncomingMessage::generated(
                queue_id,
                info.id,
                size,
                address,
                account_id,
                unix_now(),
            );
            incoming::enqueue(tx, &message).await
        })
    });
    let body =
        futures_util::stream::iter([Ok::<Bytes, std::convert::Infallible>(Bytes::from(bytes))]);
    blobs
        .put_with(body, u64::MAX, finish)
        .await
        .map_err(|error| StoreError::io(error.message))?;
    tracing::info!(account_id, scope = ?warning.scope, resource = ?warning.resource, used = warning.used, limit = warning.limit, "quota warning queued");
    Ok(())
}
