//! Removing a deleted account's data. Deleting an account in the directory writes a
//! `QUEUE_ACCOUNT_PURGE` entry in the same transaction, so the purge survives a crash: it runs
//! right after the deletion and again at every start-up until its entry is gone.
//!
//! The purge first releases the account's blob links, a bounded batch per transaction (each
//! batch decrements the global reference counts and clears its links together, so a retry never
//! releases a link twice), then clears the whole account subspace and the queue entry in one
//! transaction: a range clear is one small mutation on every backend, whatever it removes. Upload
//! references expire by themselves (the blob collector drops them after 24 h); the account id is
//! never reused, so nothing can read them meanwhile.

use super::keys::{
    ACCT_BLOB_LINK, BLOB_GC_CANDIDATE, BLOB_REFCOUNT, KeyBuilder, QUEUE_ACCOUNT_PURGE,
    SUBSPACE_QUEUE, account_prefix, account_purge_queue, blob_by_digest, le_i64,
};
use super::{KeyRange, RangeOptions, Store, StoreError, StoreResult, Transaction};

/// Blob links released per transaction: far under FoundationDB's 10 MB / 5 s.
const LINKS_PER_TRANSACTION: usize = 256;

/// Records, inside the caller's transaction, that `account_id`'s data must be purged.
pub fn queue_purge(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<()> {
    tx.set(&account_purge_queue(account_id), &[])
}

/// Removes everything `account_id` owns and its queue entry. Idempotent.
pub async fn purge_account(store: &Store, account_id: u32) -> StoreResult<()> {
    loop {
        let released = store
            .transact(|tx| Box::pin(release_blob_links(tx, account_id)))
            .await?;
        if released < LINKS_PER_TRANSACTION {
            break;
        }
    }
    store
        .transact(|tx| {
            Box::pin(async move {
                tx.clear_range(&KeyRange::prefix(&account_prefix(account_id).build()))?;
                tx.clear(&account_purge_queue(account_id))
            })
        })
        .await?;
    tracing::info!(account_id, "account data purged");
    Ok(())
}

async fn release_blob_links(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<usize> {
    let prefix = account_prefix(account_id).u8(ACCT_BLOB_LINK).build();
    let options = RangeOptions {
        limit: LINKS_PER_TRANSACTION,
        reverse: false,
    };
    let links = tx.get_range(&KeyRange::prefix(&prefix), options).await?;
    for (key, value) in &links {
        let digest: &[u8; 32] = key
            .get(prefix.len()..)
            .and_then(|rest| rest.try_into().ok())
            .ok_or_else(|| StoreError::corrupt("blob link key without a digest"))?;
        let count = le_i64(value);
        if count > 0 {
            tx.atomic_add(&blob_by_digest(BLOB_REFCOUNT, digest), -count)?;
        }
        tx.set(&blob_by_digest(BLOB_GC_CANDIDATE, digest), &[])?;
        tx.clear(key)?;
    }
    Ok(links.len())
}

/// The accounts whose purge has not finished (crashed or interrupted).
pub async fn pending_purges(store: &Store) -> StoreResult<Vec<u32>> {
    let prefix = KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_ACCOUNT_PURGE)
        .build();
    let entries = store
        .read(|tx| {
            Box::pin(async move {
                tx.get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
                    .await
            })
        })
        .await?;
    Ok(entries
        .iter()
        .filter_map(|(key, _)| Some(u32::from_be_bytes(key.get(2..6)?.try_into().ok()?)))
        .collect())
}

/// Finishes every pending purge; run at start-up in the background.
pub async fn resume_pending_purges(store: &Store) -> StoreResult<()> {
    for account_id in pending_purges(store).await? {
        purge_account(store, account_id).await?;
    }
    Ok(())
}

/// The purge part of the backend test suite.
pub mod suite {
    use bytes::Bytes;

    use super::*;
    use crate::store::blob::{self, BlobStore};
    use crate::store::commit::{DataType, commit_account};

    /// Data, change log and blob links go; the blob's count drops by the links released.
    pub async fn purge_removes_account_data_and_releases_blob_links(store: &Store) {
        let account_id = 9_101;
        let blobs = BlobStore::new(store.clone());
        let content = Bytes::from(format!("purge test {}", rand::random::<u64>()));
        let info = blobs.put(account_id, content).await.expect("upload");
        let hash = info.id;
        commit_account(store, account_id, |tx, changes| {
            Box::pin(async move {
                blob::link(tx, account_id, &hash)
                    .await
                    .map_err(|error| StoreError::io(error.message))?;
                blob::link(tx, account_id, &hash)
                    .await
                    .map_err(|error| StoreError::io(error.message))?;
                changes.created(DataType::Test, 1);
                Ok(())
            })
        })
        .await
        .expect("commit");
        let refcount_key = blob_by_digest(BLOB_REFCOUNT, hash.as_bytes());
        let count_of = |store: Store, key: Vec<u8>| async move {
            store
                .read(|tx| Box::pin(async move { tx.get(&key).await }))
                .await
                .expect("read")
                .map_or(0, |bytes| le_i64(&bytes))
        };
        // The upload reference plus two links.
        assert_eq!(count_of(store.clone(), refcount_key.clone()).await, 3);

        store
            .transact(|tx| Box::pin(async move { queue_purge(tx, account_id) }))
            .await
            .expect("queue");
        assert!(
            pending_purges(store)
                .await
                .expect("pending")
                .contains(&account_id)
        );
        resume_pending_purges(store).await.expect("purge");
        // Running it again does no harm.
        purge_account(store, account_id).await.expect("purge again");

        assert_eq!(count_of(store.clone(), refcount_key).await, 1);
        assert!(
            !pending_purges(store)
                .await
                .expect("pending")
                .contains(&account_id)
        );
        let remaining = store
            .read(|tx| {
                Box::pin(async move {
                    let range = KeyRange::prefix(&account_prefix(account_id).build());
                    tx.get_range(&range, RangeOptions::default()).await
                })
            })
            .await
            .expect("scan");
        assert!(
            remaining.is_empty(),
            "account data left: {} keys",
            remaining.len()
        );
    }
}
