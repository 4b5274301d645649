//! Counting the usage of accounts from before the counters existed (once, at start-up).

use super::{Resource, Usage, used_key};
use crate::store::StoreResult;
use crate::store::keys::{self, ACCT_QUOTA};

/// `..., ACCT_QUOTA, 0x03` → (): the account's usage counters are complete (counted by
/// [`backfill`], or the account never had an Email before the counters existed).
fn counted_key(account_id: u32) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_QUOTA)
        .u8(0x03)
        .build()
}

/// Emails read per backfill transaction.
const BACKFILL_PAGE: usize = 256;

/// Counts the Emails of an account stored before the usage counters existed (once; an
/// upgrade runs it at start-up for every account without the mark). Pages through the
/// account, one read transaction per [`BACKFILL_PAGE`] Emails, then sets the counters and the
/// mark in one transaction that also checks the account's version did not move meanwhile
/// (else it counts again): a commit during the count can neither be lost nor counted twice.
/// Answers whether it counted.
pub async fn backfill(store: &crate::store::Store, account_id: u32) -> StoreResult<bool> {
    let version_key = keys::account_version(account_id);
    loop {
        let (done, version) = store
            .read(|tx| {
                let version_key = version_key.clone();
                Box::pin(async move {
                    let done = tx.get(&counted_key(account_id)).await?.is_some();
                    Ok((done, tx.get(&version_key).await?))
                })
            })
            .await?;
        if done {
            return Ok(false);
        }
        let mut usage = Usage::default();
        let mut after = None;
        loop {
            let page = store
                .read(move |tx| {
                    Box::pin(async move {
                        let ids = crate::mail::store::email_ids_page(
                            tx,
                            account_id,
                            after,
                            BACKFILL_PAGE,
                        )
                        .await?;
                        let mut sizes = Vec::with_capacity(ids.len());
                        for id in &ids {
                            if let Some(record) =
                                crate::mail::store::load_record(tx, account_id, *id).await?
                            {
                                sizes.push(record.size);
                            }
                        }
                        Ok((ids.last().copied(), sizes))
                    })
                })
                .await?;
            let (last, sizes) = page;
            usage.count += sizes.len() as u64;
            usage.octets += sizes.iter().sum::<u64>();
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        let settled = store
            .transact(|tx| {
                let version_key = version_key.clone();
                let version = version.clone();
                Box::pin(async move {
                    if tx.get(&version_key).await? != version {
                        return Ok(false);
                    }
                    let encode =
                        |value: u64| i64::try_from(value).unwrap_or(i64::MAX).to_le_bytes();
                    tx.set(
                        &used_key(account_id, Resource::Octets),
                        &encode(usage.octets),
                    )?;
                    tx.set(&used_key(account_id, Resource::Count), &encode(usage.count))?;
                    tx.set(&counted_key(account_id), &[])?;
                    Ok(true)
                })
            })
            .await?;
        if settled {
            if usage.count > 0 {
                tracing::info!(
                    account_id,
                    emails = usage.count,
                    octets = usage.octets,
                    "quota usage counted"
                );
            }
            return Ok(true);
        }
    }
}

/// The start-up upgrades of each account `(id, login address)`: [`backfill`], the blob index
/// (`mail::store::blob_index`, format 4), and counting it in its address's domain
/// ([`super::domain::join`], format 4) — before anything writes. Each is a no-op for accounts
/// already done.
pub async fn backfill_all(
    store: &crate::store::Store,
    accounts: Vec<(u32, String)>,
) -> StoreResult<()> {
    let mut joined = 0usize;
    for (account_id, email) in accounts {
        backfill(store, account_id).await?;
        let indexed = crate::mail::store::blob_index::backfill(store, account_id).await?;
        if indexed > 0 {
            tracing::info!(
                account_id,
                emails = indexed,
                "Emails added to the blob index"
            );
        }
        let Some(domain) = super::domain::domain_of_address(&email) else {
            continue;
        };
        let domain = std::sync::Arc::new(domain);
        let added = store
            .transact(|tx| {
                let domain = std::sync::Arc::clone(&domain);
                Box::pin(async move { super::domain::join(tx, account_id, &domain).await })
            })
            .await?;
        joined += usize::from(added);
    }
    if joined > 0 {
        tracing::info!(
            accounts = joined,
            "accounts counted in their domains' quotas"
        );
    }
    Ok(())
}
