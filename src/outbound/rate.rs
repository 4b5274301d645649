//! Per-account sending rate limit: a token bucket of recipients, stored with the queue so every
//! node (and every way of sending: JMAP, the submission listener) draws from the same bucket,
//! inside the enqueue transaction. A compromised account empties its bucket and is refused
//! until it refills; bounces and auto-replies are never limited.
//!
//! The settings come from `[outbound]` and are written to the store at start-up
//! (`QUEUE_OUTBOUND_SETTINGS`), so enqueuers need no configuration handle.

use serde::{Deserialize, Serialize};

use super::clock::UnixMillis;
use crate::store::keys::{
    KeyBuilder, QUEUE_OUTBOUND_RATE, QUEUE_OUTBOUND_SETTINGS, SUBSPACE_QUEUE, be_u64,
};
use crate::store::{Store, StoreError, StoreResult, Transaction};

/// The bucket: `burst` recipients at most, refilled at `per_hour` recipients an hour.
/// `per_hour = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSettings {
    pub per_hour: u64,
    pub burst: u64,
}

impl Default for RateSettings {
    fn default() -> RateSettings {
        RateSettings {
            per_hour: 1_000,
            burst: 200,
        }
    }
}

fn settings_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_SETTINGS)
        .build()
}

fn bucket_key(account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_OUTBOUND_RATE)
        .u32(account_id)
        .build()
}

/// Stores the settings enqueuers read (server start-up).
pub async fn store_settings(store: &Store, settings: RateSettings) -> StoreResult<()> {
    let bytes = serde_json::to_vec(&settings)
        .map_err(|error| StoreError::io(format!("encoding rate settings: {error}")))?;
    store
        .transact(|tx| {
            let bytes = bytes.clone();
            Box::pin(async move {
                if tx.get(&settings_key()).await?.as_deref() != Some(bytes.as_slice()) {
                    tx.set(&settings_key(), &bytes)?;
                }
                Ok(())
            })
        })
        .await
}

async fn settings(tx: &mut dyn Transaction) -> StoreResult<RateSettings> {
    match tx.get(&settings_key()).await? {
        None => Ok(RateSettings::default()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| StoreError::corrupt(format!("outbound rate settings: {error}"))),
    }
}

/// Takes `recipients` tokens from the account's bucket at `now`; `Err(seconds)` (how long
/// until enough tokens) when the bucket cannot pay, in which case nothing is taken.
pub async fn take(
    tx: &mut dyn Transaction,
    account_id: u32,
    recipients: u64,
    now: UnixMillis,
) -> StoreResult<Result<(), u64>> {
    let settings = settings(tx).await?;
    if settings.per_hour == 0 {
        return Ok(Ok(()));
    }
    // Tokens are counted in thousandths so a slow refill still moves every millisecond.
    let capacity = settings.burst.max(1).saturating_mul(1_000);
    let key = bucket_key(account_id);
    let (stored, updated_at) = match tx.get(&key).await? {
        Some(bytes) => (
            be_u64(&bytes).unwrap_or(capacity),
            bytes.get(8..).and_then(be_u64).unwrap_or(0),
        ),
        None => (capacity, u64::try_from(now).unwrap_or(0)),
    };
    let elapsed_ms = u64::try_from(now).unwrap_or(0).saturating_sub(updated_at);
    // per_hour tokens per 3,600,000 ms = per_hour / 3,600 thousandths per ms.
    let refill = elapsed_ms.saturating_mul(settings.per_hour) / 3_600;
    let available = stored.saturating_add(refill).min(capacity);
    let cost = recipients.saturating_mul(1_000);
    // A full bucket pays for any one message, so a message bigger than the burst is possible
    // (slowly), not refused forever.
    if cost > available && available < capacity {
        let missing = cost.min(capacity) - available.min(cost);
        let wait_ms = missing.saturating_mul(3_600) / settings.per_hour.max(1);
        return Ok(Err(wait_ms.div_ceil(1_000).max(1)));
    }
    let mut value = Vec::with_capacity(16);
    value.extend_from_slice(&available.saturating_sub(cost).to_be_bytes());
    value.extend_from_slice(&u64::try_from(now).unwrap_or(0).to_be_bytes());
    tx.set(&key, &value)?;
    Ok(Ok(()))
}
