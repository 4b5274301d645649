//! Duplicate suppression for a transmission retried after a lost `250` (RFC 5321 §6.1 lets a
//! client resend when it never saw the reply): the same Message-ID with the same content,
//! delivered to the same account within the window, is not delivered again.
//!
//! Keys `ACCT_DELIVERY_SEEN, day, message_id_hash, content_hash` → queue id, written in the
//! delivery commit. A message is a duplicate when its key exists for today or yesterday under
//! another queue id, so the window is at least 24 and at most 48 hours. Each write also clears
//! the days before yesterday with one range clear, so the section stays small.

use sha2::{Digest, Sha256};

use crate::store::keys::{self, ACCT_DELIVERY_SEEN, be_u64};
use crate::store::{KeyRange, StoreResult, Transaction};

const SECONDS_PER_DAY: i64 = 86_400;

/// What identifies a transmission: its Message-ID and its content as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub message_id: u64,
    pub content: u64,
}

impl Fingerprint {
    /// `None` without a Message-ID: then nothing identifies a retry.
    pub fn of(message_id: Option<&str>, raw: &[u8]) -> Option<Fingerprint> {
        let message_id = message_id?.trim();
        if message_id.is_empty() {
            return None;
        }
        Some(Fingerprint {
            message_id: first_u64(&Sha256::digest(message_id.as_bytes())),
            content: first_u64(&Sha256::digest(raw)),
        })
    }
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

fn day_of(unix_seconds: i64) -> u32 {
    u32::try_from(unix_seconds.div_euclid(SECONDS_PER_DAY)).unwrap_or(0)
}

fn seen_key(account_id: u32, day: u32, fingerprint: Fingerprint) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_DELIVERY_SEEN)
        .u32(day)
        .u64(fingerprint.message_id)
        .u64(fingerprint.content)
        .build()
}

/// The keys [`is_duplicate`] reads: today's and yesterday's record of the transmission.
pub fn window_keys(account_id: u32, fingerprint: Fingerprint, now: i64) -> [Vec<u8>; 2] {
    let today = day_of(now);
    [today, today.saturating_sub(1)].map(|day| seen_key(account_id, day, fingerprint))
}

/// Whether another queue entry already delivered this transmission to the account.
pub async fn is_duplicate(
    tx: &mut dyn Transaction,
    account_id: u32,
    fingerprint: Fingerprint,
    queue_id: u64,
    now: i64,
) -> StoreResult<bool> {
    for key in window_keys(account_id, fingerprint, now) {
        if let Some(value) = tx.get(&key).await?
            && be_u64(&value) != Some(queue_id)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Remembers a delivery and forgets days that left the window.
pub fn remember(
    tx: &mut dyn Transaction,
    account_id: u32,
    fingerprint: Fingerprint,
    queue_id: u64,
    now: i64,
) -> StoreResult<()> {
    let today = day_of(now);
    tx.set(
        &seen_key(account_id, today, fingerprint),
        &queue_id.to_be_bytes(),
    )?;
    let section = keys::account_prefix(account_id)
        .u8(ACCT_DELIVERY_SEEN)
        .build();
    let keep_from = keys::account_prefix(account_id)
        .u8(ACCT_DELIVERY_SEEN)
        .u32(today.saturating_sub(1))
        .build();
    tx.clear_range(&KeyRange {
        begin: section,
        end: keep_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_need_a_message_id_and_see_content() {
        assert_eq!(Fingerprint::of(None, b"x"), None);
        assert_eq!(Fingerprint::of(Some("  "), b"x"), None);
        let a = Fingerprint::of(Some("<1@x>"), b"body").unwrap();
        assert_eq!(Some(a), Fingerprint::of(Some("<1@x>"), b"body"));
        assert_ne!(Some(a), Fingerprint::of(Some("<1@x>"), b"other"));
        assert_ne!(Some(a), Fingerprint::of(Some("<2@x>"), b"body"));
        assert_eq!(day_of(86_399), 0);
        assert_eq!(day_of(86_400), 1);
    }
}
