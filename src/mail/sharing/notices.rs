//! The durable queue of ShareNotifications (RFC 9670 §3): the commit that changes a grantee's
//! rights (in the owner's account) queues a notice for the grantee; the grantee's own commit
//! moves it into their account and clears it (`jmap::share_notification::deliver`), so a
//! notice is neither lost nor delivered twice whatever crashes in between.
//!
//! `QUEUE, QUEUE_SHARE_NOTICE, grantee, owner, owner_version, mailbox` → the notice's JSON.

use serde_json::Value;

use crate::store::keys::{KeyBuilder, QUEUE_SHARE_NOTICE, SUBSPACE_QUEUE};
use crate::store::{KeyRange, RangeOptions, StoreError, StoreResult, Transaction};

fn grantee_prefix(grantee: u32) -> KeyBuilder {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SHARE_NOTICE)
        .u32(grantee)
}

/// Queues `notice` for `grantee`, about `mailbox_id` of `owner`, in the owner's commit of
/// version `owner_version`.
pub fn queue(
    tx: &mut dyn Transaction,
    grantee: u32,
    owner: u32,
    owner_version: u64,
    mailbox_id: u64,
    notice: &Value,
) -> StoreResult<()> {
    let key = grantee_prefix(grantee)
        .u32(owner)
        .u64(owner_version)
        .u64(mailbox_id)
        .build();
    tx.set(&key, &serde_json::to_vec(notice).map_err(StoreError::io)?)
}

/// Up to `limit` queued notices of `grantee`, oldest owner first, with their keys.
pub async fn pending_for(
    tx: &mut dyn Transaction,
    grantee: u32,
    limit: usize,
) -> StoreResult<Vec<(Vec<u8>, Value)>> {
    let prefix = grantee_prefix(grantee).build();
    let options = RangeOptions {
        limit,
        ..RangeOptions::default()
    };
    decode(tx.get_range(&KeyRange::prefix(&prefix), options).await?)
}

/// The grantees with queued notices among the first `limit` entries of the queue.
pub async fn grantees_pending(tx: &mut dyn Transaction, limit: usize) -> StoreResult<Vec<u32>> {
    let prefix = KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SHARE_NOTICE)
        .build();
    let options = RangeOptions {
        limit,
        ..RangeOptions::default()
    };
    let mut grantees: Vec<u32> = tx
        .get_range(&KeyRange::prefix(&prefix), options)
        .await?
        .iter()
        .filter_map(|(key, _)| {
            key.get(prefix.len()..prefix.len() + 4)
                .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                .map(u32::from_be_bytes)
        })
        .collect();
    grantees.dedup();
    Ok(grantees)
}

fn decode(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> StoreResult<Vec<(Vec<u8>, Value)>> {
    pairs
        .into_iter()
        .map(|(key, value)| {
            serde_json::from_slice(&value)
                .map(|notice| (key, notice))
                .map_err(|error| StoreError::corrupt(format!("queued share notice: {error}")))
        })
        .collect()
}

/// Forgets every queued notice of a deleted account.
pub fn forget_grantee(tx: &mut dyn Transaction, grantee: u32) -> StoreResult<()> {
    tx.clear_range(&KeyRange::prefix(&grantee_prefix(grantee).build()))
}
