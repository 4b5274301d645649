//! The Email indexes kept in the store (`ACCT_INDEX, Email, kind, ...`), written in the same
//! transaction as the record they index. Layout in `schema/mail.md`.
//!
//! - `MAILBOX_RECEIVED`: `mailbox_id, received_at, email_id` → `thread_id`. Lists a mailbox
//!   newest-first (or oldest-first) with a bounded range read, and collapses threads without
//!   opening records.
//! - `MAILBOX_UNSEEN`: the same for the Emails without `$seen` only: the unread list of a
//!   mailbox is a range read too.
//! - `RECEIVED`: `received_at, email_id` → `thread_id`: every Email of the account in order.
//! - `MESSAGE_ID`: `hash(message id), email_id` → (): the Emails that carry or reference a
//!   Message-ID, for threading.
//! - `BLOB`: `sha256 of the raw message, email_id` → (): the Emails stored from a blob
//!   (RFC 9404 Blob/lookup); a part's blob id names its message's blob.

use crate::store::commit::DataType;
use crate::store::keys::{self, ACCT_INDEX, KeyBuilder};

pub const MAILBOX_RECEIVED: u8 = 1;
pub const MAILBOX_UNSEEN: u8 = 2;
pub const RECEIVED: u8 = 3;
pub const MESSAGE_ID: u8 = 4;
pub const BLOB: u8 = 5;

pub fn prefix(account_id: u32, kind: u8) -> KeyBuilder {
    keys::account_prefix(account_id)
        .u8(ACCT_INDEX)
        .u8(DataType::Email as u8)
        .u8(kind)
}

/// Signed seconds as an order-preserving big-endian u64.
pub fn ordered_time(seconds: i64) -> u64 {
    (seconds as u64) ^ (1 << 63)
}

pub fn time_from_ordered(ordered: u64) -> i64 {
    (ordered ^ (1 << 63)) as i64
}

pub fn mailbox_entry(
    account_id: u32,
    kind: u8,
    mailbox_id: u64,
    received_at: i64,
    email_id: u64,
) -> Vec<u8> {
    debug_assert!(kind == MAILBOX_RECEIVED || kind == MAILBOX_UNSEEN);
    prefix(account_id, kind)
        .u64(mailbox_id)
        .u64(ordered_time(received_at))
        .u64(email_id)
        .build()
}

pub fn mailbox_prefix(account_id: u32, kind: u8, mailbox_id: u64) -> Vec<u8> {
    prefix(account_id, kind).u64(mailbox_id).build()
}

pub fn received_entry(account_id: u32, received_at: i64, email_id: u64) -> Vec<u8> {
    prefix(account_id, RECEIVED)
        .u64(ordered_time(received_at))
        .u64(email_id)
        .build()
}

pub fn message_id_entry(account_id: u32, hash: u64, email_id: u64) -> Vec<u8> {
    prefix(account_id, MESSAGE_ID)
        .u64(hash)
        .u64(email_id)
        .build()
}

pub fn message_id_prefix(account_id: u32, hash: u64) -> Vec<u8> {
    prefix(account_id, MESSAGE_ID).u64(hash).build()
}

pub fn blob_entry(account_id: u32, digest: &[u8; 32], email_id: u64) -> Vec<u8> {
    prefix(account_id, BLOB).raw(digest).u64(email_id).build()
}

pub fn blob_prefix(account_id: u32, digest: &[u8; 32]) -> Vec<u8> {
    prefix(account_id, BLOB).raw(digest).build()
}

/// The Email id at the end of a `BLOB` (or `MESSAGE_ID`) entry.
pub fn trailing_email_id(key: &[u8]) -> Option<u64> {
    keys::be_u64(key.get(key.len().checked_sub(8)?..)?)
}

/// `(received_at, email_id)` from the last 16 bytes of a mailbox or received entry.
pub fn entry_tail(key: &[u8]) -> Option<(i64, u64)> {
    let tail = key.get(key.len().checked_sub(16)?..)?;
    let received = keys::be_u64(&tail[..8])?;
    let email_id = keys::be_u64(&tail[8..])?;
    Some((time_from_ordered(received), email_id))
}

/// FNV-1a of the lower-cased Message-ID: stable across versions (it is stored in keys).
/// Collisions only widen the candidate set; threading re-checks the subject.
pub fn message_id_hash(message_id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in message_id.trim().bytes() {
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The base subject of RFC 5256 §2.1, lower-cased: reply/forward markers (`Re:`, `Fwd:`,
/// `Fw:`, with `[blob]` prefixes such as list tags) and trailing `(fwd)` removed, whitespace
/// collapsed. Used as the subject sort key and to decide whether replies join a Thread.
pub fn base_subject(subject: &str) -> String {
    let mut text = subject
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    loop {
        let before = text.len();
        while let Some(stripped) = text.strip_suffix("(fwd)") {
            text = stripped.trim_end().to_owned();
        }
        text = strip_leading_markers(&text);
        if let Some(inner) = text
            .strip_prefix("[fwd:")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            text = inner.trim().to_owned();
        }
        if text.len() == before {
            return text;
        }
    }
}

/// Removes `subj-leader` repeatedly: `[blob]* (re|fwd?|fw) [blob]? :`, and bare `[blob]`
/// prefixes when something follows them.
fn strip_leading_markers(text: &str) -> String {
    let mut rest = text.trim_start();
    loop {
        let before = rest.len();
        if let Some(after_blob) = skip_blob(rest)
            && !after_blob.trim().is_empty()
        {
            rest = after_blob.trim_start();
        }
        for marker in ["re", "fwd", "fw"] {
            if let Some(after_marker) = rest.strip_prefix(marker) {
                let after_marker = after_marker.trim_start();
                let after_tag = skip_blob(after_marker).unwrap_or(after_marker).trim_start();
                if let Some(after_colon) = after_tag.strip_prefix(':') {
                    rest = after_colon.trim_start();
                    break;
                }
            }
        }
        if rest.len() == before {
            return rest.to_owned();
        }
    }
}

/// Skips one `[...]` without nested brackets.
fn skip_blob(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('[')?;
    let close = inner.find(']')?;
    if inner[..close].contains('[') {
        return None;
    }
    Some(&inner[close + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subject_strips_reply_and_forward_markers() {
        assert_eq!(base_subject("Re: Hello"), "hello");
        assert_eq!(base_subject("RE: re:  Fwd: Hello   world"), "hello world");
        assert_eq!(base_subject("[list] Re: [list] Hello"), "hello");
        assert_eq!(base_subject("Re[2]: Hello (fwd)"), "hello");
        assert_eq!(base_subject("[Fwd: Hello]"), "hello");
        assert_eq!(base_subject("[just brackets]"), "[just brackets]");
        assert_eq!(base_subject("Réunion"), "réunion");
        assert_eq!(base_subject(""), "");
    }

    #[test]
    fn times_keep_their_order_in_keys() {
        let times = [-10i64, -1, 0, 1, 1_700_000_000];
        let ordered: Vec<u64> = times.iter().map(|t| ordered_time(*t)).collect();
        assert!(ordered.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(time_from_ordered(ordered_time(-10)), -10);
    }

    #[test]
    fn message_id_hash_ignores_case() {
        assert_eq!(
            message_id_hash("Abc@Example"),
            message_id_hash("abc@example")
        );
        assert_ne!(message_id_hash("a@b"), message_id_hash("a@c"));
    }
}
