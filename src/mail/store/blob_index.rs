//! Which Emails were stored from a blob (`index::BLOB`, RFC 9404 Blob/lookup): written with
//! every import, cleared with every destroy, and built once at start-up for the Emails of
//! stores from before it (format 4).

use super::record::EmailRecord;
use super::{email_ids_page, index, load_record};
use crate::store::keys::{self, ACCT_UPGRADES};
use crate::store::{KeyRange, RangeOptions, Store, StoreResult, Transaction};

/// `..., ACCT_UPGRADES, 0x01` → (): the account's Emails are in the blob index.
fn indexed_key(account_id: u32) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_UPGRADES)
        .u8(0x01)
        .build()
}

/// Emails read and indexed per transaction of the backfill.
const PAGE: usize = 256;

/// The Emails of `account_id` stored from the blob `digest` (at most `limit`; 0: all), each
/// checked against its record (an entry never outlives its Email, but a reader trusts the
/// record, not the index).
pub async fn emails_with_blob(
    tx: &mut dyn Transaction,
    account_id: u32,
    digest: &[u8; 32],
    limit: usize,
) -> StoreResult<Vec<(u64, EmailRecord)>> {
    let prefix = index::blob_prefix(account_id, digest);
    let pairs = tx
        .get_range(
            &KeyRange::prefix(&prefix),
            RangeOptions {
                limit,
                reverse: false,
            },
        )
        .await?;
    let mut found = Vec::with_capacity(pairs.len());
    for (key, _) in pairs {
        let Some(email_id) = index::trailing_email_id(&key) else {
            continue;
        };
        if let Some(record) = load_record(tx, account_id, email_id).await?
            && record.blob.as_bytes() == digest
        {
            found.push((email_id, record));
        }
    }
    Ok(found)
}

/// Indexes the Emails of an account stored before the blob index existed (once; start-up).
/// Each page reads its records and writes their entries in one transaction, so an Email
/// destroyed meanwhile is either indexed and then cleared by its destroy, or not indexed.
/// Answers how many Emails it indexed.
pub async fn backfill(store: &Store, account_id: u32) -> StoreResult<usize> {
    let done = store
        .read(move |tx| Box::pin(async move { tx.get(&indexed_key(account_id)).await }))
        .await?;
    if done.is_some() {
        return Ok(0);
    }
    let mut after = None;
    let mut indexed = 0;
    loop {
        let (last, count) = store
            .transact(move |tx| {
                Box::pin(async move {
                    let ids = email_ids_page(tx, account_id, after, PAGE).await?;
                    let mut count = 0;
                    for id in &ids {
                        if let Some(record) = load_record(tx, account_id, *id).await? {
                            let entry = index::blob_entry(account_id, record.blob.as_bytes(), *id);
                            tx.set(&entry, &[])?;
                            count += 1;
                        }
                    }
                    if ids.len() < PAGE {
                        tx.set(&indexed_key(account_id), &[])?;
                    }
                    Ok((ids.last().copied().filter(|_| ids.len() == PAGE), count))
                })
            })
            .await?;
        indexed += count;
        match last {
            Some(last) => after = Some(last),
            None => return Ok(indexed),
        }
    }
}
