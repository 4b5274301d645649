//! The one place that lists every subspace of the key space. `schema/keys.md` documents the
//! same layout for humans; change both together and bump [`FORMAT_VERSION`] when a stored
//! format changes.
//!
//! Encoding rules (they keep keys ordered and prefix-free, as FoundationDB's tuple layer does):
//! - a key starts with one subspace byte;
//! - integers are fixed-width big-endian, so byte order is numeric order;
//! - variable-length byte strings are escaped (`0x00` → `0x00 0xFF`) and end with `0x00`, so no
//!   encoded string is a prefix of another;
//! - a SHA-256 digest is its 32 raw bytes (fixed width).

/// The on-disk format version, stored under [`META_FORMAT_VERSION`]. A server refuses to open
/// a store whose version it does not know how to migrate.
pub const FORMAT_VERSION: u32 = 4;
/// Older versions this build opens by rewriting the version key: each differs from the
/// current one only by value encodings that this build still reads (schema/keys.md history),
/// so nothing else needs migrating. Older builds refuse the upgraded store.
pub const UPGRADABLE_FORMAT_VERSIONS: &[u32] = &[1, 2, 3];

/// Store-wide metadata.
pub const SUBSPACE_META: u8 = 0x01;
/// Accounts, credentials and domains (the directory).
pub const SUBSPACE_DIRECTORY: u8 = 0x02;
/// Cluster membership and account ownership (`store::ownership`, `schema/cluster.md`).
pub const SUBSPACE_CLUSTER: u8 = 0x03;
/// Per-account data: objects, indexes, change log, states. Everything below starts with
/// `SUBSPACE_ACCOUNT, account_id: u32`.
pub const SUBSPACE_ACCOUNT: u8 = 0x10;
/// Content-addressed blob chunks and reference counts, shared by all accounts.
pub const SUBSPACE_BLOB: u8 = 0x20;
/// Durable work queues of the actors (index, outbound, push delivery, blob GC).
pub const SUBSPACE_QUEUE: u8 = 0x30;

/// Scratch space of the backend test suite (`testsuite`): each test writes only below
/// `SUBSPACE_TEST, random u64` and clears it afterwards. Never used by the server.
pub const SUBSPACE_TEST: u8 = 0x7F;

/// `META, "format_version"` → u32 BE.
pub const META_FORMAT_VERSION: &[u8] = b"\x01format_version";
/// `META, "vapid_key"` → the 32-byte P-256 private scalar the server signs Web Push VAPID
/// tokens with (RFC 8292); created once, shared by every node.
pub const META_VAPID_KEY: &[u8] = b"\x01vapid_key";
/// `META, "quota_defaults"` → the configured default limits of every account (`mail::quota`:
/// storage octets u64 BE, message count u64 BE, warn percent u8; 0 is "no limit"), written by
/// each server at start-up from its `[quota]` section.
pub const META_QUOTA_DEFAULTS: &[u8] = b"\x01quota_defaults";

// Directory sections: `DIRECTORY, section, ...`.
/// `DIRECTORY, DIR_ACCOUNT, account_id: u32` → account record (JSON).
pub const DIR_ACCOUNT: u8 = 0x01;
/// `DIRECTORY, DIR_ACCOUNT_BY_EMAIL, email: string` → account_id u32 BE.
pub const DIR_ACCOUNT_BY_EMAIL: u8 = 0x02;
/// `DIRECTORY, DIR_TOKEN, sha256(token): 32 bytes` → token record (JSON).
pub const DIR_TOKEN: u8 = 0x03;
/// `DIRECTORY, DIR_NEXT_ACCOUNT_ID` → u64 LE counter (atomic add).
pub const DIR_NEXT_ACCOUNT_ID: u8 = 0x04;
/// `DIRECTORY, DIR_DOMAIN, domain: string` → ().
pub const DIR_DOMAIN: u8 = 0x05;
/// `DIRECTORY, DIR_CREDENTIALS_VERSION` → i64 LE counter (atomic add), bumped by every change
/// that invalidates a credential (password changed, account deleted); every server watches it
/// and drops its cached credential checks (other processes write the same store: the CLI on
/// FoundationDB, the other nodes of a cluster).
pub const DIR_CREDENTIALS_VERSION: u8 = 0x06;
/// `DIRECTORY, DIR_SHARED_WITH, grantee: u32, owner: u32` → (): the owner's account shares at
/// least one Mailbox with the grantee (a user or a group); written with the grants
/// (`mail::sharing`).
pub const DIR_SHARED_WITH: u8 = 0x07;
/// `DIRECTORY, DIR_GROUP_MEMBER, member: u32, group: u32` → (): group membership
/// (`auth::directory::groups`).
pub const DIR_GROUP_MEMBER: u8 = 0x08;
/// `DIRECTORY, DIR_PRINCIPAL_VERSION` → u64 BE: the Principal state (`auth::directory::principals`).
pub const DIR_PRINCIPAL_VERSION: u8 = 0x09;
/// `DIRECTORY, DIR_PRINCIPAL_CHANGES, version: u64` → (kind u8, principal id u64 BE): the
/// Principal change log.
pub const DIR_PRINCIPAL_CHANGES: u8 = 0x0A;
/// `DIRECTORY, DIR_DOMAIN_QUOTA, domain: string, ...`: a domain's quota (RFC 9425 scope
/// `domain`, `mail::quota::domain`): `0x00, resource: u8` → i64 LE (atomic add) what its
/// accounts use together; `0x01` → its limits (the `META_QUOTA_DEFAULTS` format), set by
/// `tern domain quota`; `0x02, resource: u8` → (): its warning was queued.
pub const DIR_DOMAIN_QUOTA: u8 = 0x0B;

// Cluster sections: `CLUSTER, section, ...` (`schema/cluster.md`).
/// `CLUSTER, CLUSTER_NODE, node_id: u64` → node record (JSON: name, url, state, registered).
pub const CLUSTER_NODE: u8 = 0x01;
/// `CLUSTER, CLUSTER_HEARTBEAT, node_id: u64` → u64 BE beat counter (blind writes).
pub const CLUSTER_HEARTBEAT: u8 = 0x02;
/// `CLUSTER, CLUSTER_OWNER, account_id: u32` → owner node_id u64 BE (0: none), epoch u64 BE.
pub const CLUSTER_OWNER: u8 = 0x03;
/// `CLUSTER, CLUSTER_SECRET` → 32 random bytes authenticating node-to-node requests.
pub const CLUSTER_SECRET: u8 = 0x04;

// Account sections: `ACCOUNT, account_id: u32, section, ...`.
/// `..., ACCT_OBJECT, data_type: u8, id: u64` → object value (possibly chunked).
pub const ACCT_OBJECT: u8 = 0x01;
/// `..., ACCT_INDEX, data_type: u8, index: u8, value..., id: u64` → ().
pub const ACCT_INDEX: u8 = 0x02;
/// `..., ACCT_CHANGES, data_type: u8, version: u64` → change-log entry.
pub const ACCT_CHANGES: u8 = 0x03;
/// `..., ACCT_VERSION` → u64 BE: the account's commit version, bumped by every commit that
/// touches the account. Watched for push.
pub const ACCT_VERSION: u8 = 0x04;
/// `..., ACCT_TYPE_STATE, data_type: u8` → u64 BE: the version of the last change of that type.
pub const ACCT_TYPE_STATE: u8 = 0x05;
/// `..., ACCT_CHANGES_FLOOR, data_type: u8` → u64 BE: changes before this version were pruned.
pub const ACCT_CHANGES_FLOOR: u8 = 0x06;
/// `..., ACCT_NEXT_ID, data_type: u8` → u64 LE counter of object ids.
pub const ACCT_NEXT_ID: u8 = 0x07;
/// `..., ACCT_BLOB_LINK, sha256: 32 bytes` → i64 LE count of this account's references (links
/// made by commits; see `blob::link`).
pub const ACCT_BLOB_LINK: u8 = 0x08;
/// `..., ACCT_EMAIL_META, email_id: u64, chunk: u32` → the parsed, immutable metadata of an
/// Email (`mail::parsed::ParsedEmail`, chunked JSON). Written once at import.
pub const ACCT_EMAIL_META: u8 = 0x09;
/// `..., ACCT_MAILBOX_COUNTER, mailbox_id: u64, counter: u8` → i64 LE (atomic add): the
/// exact totalEmails/unreadEmails/totalThreads/unreadThreads of a Mailbox (`mail::counters`).
pub const ACCT_MAILBOX_COUNTER: u8 = 0x0A;
/// `..., ACCT_MAILBOX_PROPERTIES_VERSION` → u64 BE: the account version of the last commit that
/// changed a Mailbox property other than the four counts (Mailbox/set updates). Mailbox/changes
/// compares it with `sinceState` to report `updatedProperties` (RFC 8621 §2.2).
pub const ACCT_MAILBOX_PROPERTIES_VERSION: u8 = 0x0B;
/// `..., ACCT_SPAM_TOKEN, token: u64, class: u8` → i64 LE (atomic add): how many trained spam
/// (class 1) or ham (class 2) messages of the account contained the token (`smtp::spam::bayes`).
pub const ACCT_SPAM_TOKEN: u8 = 0x0E;
/// `..., ACCT_SPAM_TRAINED, 0x00, class: u8` → i64 LE (atomic add): trained messages per class;
/// `..., ACCT_SPAM_TRAINED, 0x01, email_id: u64` → class byte the Email was trained as.
pub const ACCT_SPAM_TRAINED: u8 = 0x0F;
/// `..., ACCT_DELIVERY_SEEN, day: u32, message_id_hash: u64, content_hash: u64` → queue_id
/// u64 BE: duplicate suppression of retried SMTP transmissions (`smtp::delivery::duplicate`).
pub const ACCT_DELIVERY_SEEN: u8 = 0x10;
/// `..., ACCT_VACATION_SENT, sender: string` → unix seconds u64 BE of the last auto-reply to
/// that sender (RFC 3834 §2: once per sender per period; `smtp::vacation`).
pub const ACCT_VACATION_SENT: u8 = 0x11;
/// Quotas (RFC 9425, `mail::quota`):
/// `..., ACCT_QUOTA, 0x00, resource: u8` → i64 LE (atomic add): what the account uses
/// (resource 1: octets of its Emails, 2: its Email count), changed in the transaction of every
/// Email import and destroy;
/// `..., ACCT_QUOTA, 0x01` → the account's own limits (same format as `META_QUOTA_DEFAULTS`),
/// set by `tern account quota`; absent: the defaults;
/// `..., ACCT_QUOTA, 0x02, resource: u8` → (): the warning for crossing `warnLimit` was queued
/// (cleared when usage falls back under it);
/// `..., ACCT_QUOTA, 0x03` → (): the usage counters are complete (`quota::backfill`);
/// `..., ACCT_QUOTA, 0x04` → domain (UTF-8): the domain whose quota counts the account.
pub const ACCT_QUOTA: u8 = 0x12;
/// `..., ACCT_SHARING_VERSION` → u64 BE: the account version of the last commit that changed
/// a Mailbox grant (`mail::sharing`); a grantee's Email/Thread changes from before it cannot be
/// calculated.
pub const ACCT_SHARING_VERSION: u8 = 0x13;
/// `..., ACCT_UPGRADES, upgrade: u8` → (): a start-up upgrade of the account's data is done
/// (1: its Emails are in the blob index, `mail::store::blob_index`).
pub const ACCT_UPGRADES: u8 = 0x14;

/// Index numbers under `ACCT_INDEX, DataType::Mailbox` (`mail::mailbox`).
/// `..., ACCT_INDEX, 1 (Mailbox), MAILBOX_INDEX_ROLE, role: string, mailbox_id: u64` → (): the
/// Mailbox holding each role (RFC 8621 §2: at most one per role in an account).
pub const MAILBOX_INDEX_ROLE: u8 = 0x01;

// Blob sections: `BLOB, section, ...`. Digests are SHA-256, 32 raw bytes.
/// `BLOB, BLOB_CHUNK, storage_id: u64, chunk_index: u32` → at most `MAX_VALUE_BYTES` of
/// content. Chunks are keyed by a storage id, not the digest, because the digest is known only
/// after a streamed upload ends; `BLOB_META` maps the digest to the storage id.
pub const BLOB_CHUNK: u8 = 0x01;
/// `BLOB, BLOB_META, sha256` → blob metadata: `0x01, storage_id: u64 BE, size: u64 BE`.
pub const BLOB_META: u8 = 0x02;
/// `BLOB, BLOB_REFCOUNT, sha256` → i64 LE (atomic add): account links plus live upload
/// references. A blob whose count reaches 0 is collected.
pub const BLOB_REFCOUNT: u8 = 0x03;
/// `BLOB, BLOB_UPLOAD_REF, sha256, account_id: u32` → uploaded_at: u64 BE unix seconds. The
/// temporary reference an upload (or Blob/copy) gives an account; it expires 24 h later.
pub const BLOB_UPLOAD_REF: u8 = 0x04;
/// `BLOB, BLOB_UPLOAD_EXPIRY, expires_at: u64 BE, sha256, account_id: u32` → (): the garbage
/// collector's index of upload references by expiry time.
pub const BLOB_UPLOAD_EXPIRY: u8 = 0x05;
/// `BLOB, BLOB_GC_CANDIDATE, sha256` → (): a blob whose count dropped; the collector checks it.
pub const BLOB_GC_CANDIDATE: u8 = 0x06;
/// `BLOB, BLOB_PENDING, storage_id: u64` → started_at: u64 BE unix seconds: an upload in
/// progress. Its chunks are orphans if the entry outlives the upload grace period.
pub const BLOB_PENDING: u8 = 0x07;

// Queue sections: `QUEUE, section, ...`.
/// `QUEUE, QUEUE_ACCOUNT_PURGE, account_id: u32` → (): an account deleted from the directory
/// whose data is still being removed (`store::purge`); resumed at start-up.
pub const QUEUE_ACCOUNT_PURGE: u8 = 0x01;
/// `QUEUE, QUEUE_PUSH_ACCOUNT, account_id: u32` → (): the account has PushSubscriptions; the
/// Web Push deliverer watches exactly these accounts. Written with the subscriptions.
pub const QUEUE_PUSH_ACCOUNT: u8 = 0x02;
/// `QUEUE, QUEUE_PUSH_ACCOUNTS_VERSION` → u64 BE, bumped whenever an account enters or leaves
/// the `QUEUE_PUSH_ACCOUNT` set; watched so every node's deliverer rescans.
pub const QUEUE_PUSH_ACCOUNTS_VERSION: u8 = 0x03;
/// `QUEUE, QUEUE_SEARCH_TASK, account_id: u32, email_id: u64` → task byte (1 index, 2 delete);
/// `QUEUE, QUEUE_SEARCH_TASK, account_id: u32` → 3 (drop every document of the account).
/// Written in the Email's own transaction; cleared by the indexer after its tantivy commit
/// (`search::queue`, `schema/search.md`).
pub const QUEUE_SEARCH_TASK: u8 = 0x10;
/// `QUEUE, QUEUE_SEARCH_VERSION` → i64 LE (atomic add), bumped by every search task; watched.
pub const QUEUE_SEARCH_VERSION: u8 = 0x11;
/// `QUEUE, QUEUE_SEARCH_REBUILDING, account_id: u32` → (): the account's index tasks are being
/// re-enqueued (a rebuild); until cleared, text queries of the account scan the store.
pub const QUEUE_SEARCH_REBUILDING: u8 = 0x12;
/// `QUEUE, QUEUE_SMTP_INCOMING, queue_id: u64, chunk: u32` → an accepted SMTP message waiting
/// for delivery (`smtp::incoming`, chunked JSON; see `schema/smtp.md`). Holds one blob reference.
pub const QUEUE_SMTP_INCOMING: u8 = 0x20;
/// `QUEUE, QUEUE_SMTP_INCOMING_VERSION` → i64 LE (atomic add), bumped by every enqueue; the
/// delivery actor watches it.
pub const QUEUE_SMTP_INCOMING_VERSION: u8 = 0x21;
/// `QUEUE, QUEUE_OUTBOUND_MESSAGE, id: u64, chunk: u32` → an outbound message and its
/// per-recipient state (`outbound::queue`, chunked JSON; `schema/outbound.md`). Holds one blob
/// reference.
pub const QUEUE_OUTBOUND_MESSAGE: u8 = 0x30;
/// `QUEUE, QUEUE_OUTBOUND_SCHEDULE, due_at_ms: u64, id: u64` → (): one key per scheduled
/// message at its next attempt (or claim expiry), so the due set is one range read.
pub const QUEUE_OUTBOUND_SCHEDULE: u8 = 0x31;
/// `QUEUE, QUEUE_OUTBOUND_VERSION` → i64 LE (atomic add), bumped by every enqueue and retry;
/// the outbound actor watches it.
pub const QUEUE_OUTBOUND_VERSION: u8 = 0x32;
/// `QUEUE, QUEUE_OUTBOUND_HELD, id: u64` → (): the error queue (messages that failed
/// validation, waiting for `tern queue retry|cancel`).
pub const QUEUE_OUTBOUND_HELD: u8 = 0x33;
/// `QUEUE, QUEUE_OUTBOUND_RATE, account_id: u32` → token bucket of the account's sending rate.
pub const QUEUE_OUTBOUND_RATE: u8 = 0x34;
/// `QUEUE, QUEUE_OUTBOUND_SETTINGS` → the outbound settings enqueuers need (rate limit), JSON,
/// written at start-up from `[outbound]`.
pub const QUEUE_OUTBOUND_SETTINGS: u8 = 0x35;
/// `QUEUE, QUEUE_OUTBOUND_DKIM, domain: string` → the domain's DKIM signing key (JSON).
pub const QUEUE_OUTBOUND_DKIM: u8 = 0x36;
/// `QUEUE, QUEUE_DELIVERY_PREPARED, queue_id: u64` → the delivery actor's verdicts for an
/// incoming entry and the blob of the message with its trace headers (JSON; holds one blob
/// reference), so a replay delivers the same bytes (`smtp::delivery::prepared`).
pub const QUEUE_DELIVERY_PREPARED: u8 = 0x40;
/// `QUEUE, QUEUE_SPAM_TRAINING, account_id: u32, email_id: u64` → class byte (1 spam, 2 ham):
/// a spam-training task written with the Email update that caused it (`smtp::spam::training`).
pub const QUEUE_SPAM_TRAINING: u8 = 0x41;
/// `QUEUE, QUEUE_SPAM_TRAINING_VERSION` → i64 LE (atomic add), bumped by every training task.
pub const QUEUE_SPAM_TRAINING_VERSION: u8 = 0x42;
/// `QUEUE, QUEUE_DELIVERY_QUARANTINE, queue_id: u64` → an infected message kept out of every
/// mailbox (JSON with the virus name and envelope; holds one blob reference).
pub const QUEUE_DELIVERY_QUARANTINE: u8 = 0x43;
/// `QUEUE, QUEUE_QUOTA_WARNING, account_id: u32, resource: u8` → used u64 BE, limit u64 BE: a
/// warning to the account's owner that its usage crossed `warnLimit`, written with the Email
/// change that crossed it; the delivery actor files the message (`smtp::delivery::quota_warning`).
pub const QUEUE_QUOTA_WARNING: u8 = 0x44;
/// `QUEUE, QUEUE_QUOTA_WARNING_VERSION` → i64 LE (atomic add), bumped by every warning task.
pub const QUEUE_QUOTA_WARNING_VERSION: u8 = 0x45;
/// `QUEUE, QUEUE_SHARE_NOTICE, grantee: u32, owner: u32, owner_version: u64, mailbox: u64` →
/// a ShareNotification (JSON, RFC 9670 §3) for the grantee, written in the commit that changed
/// their rights; moved into the grantee's account by `jmap::share_notification::deliver`.
pub const QUEUE_SHARE_NOTICE: u8 = 0x46;

pub fn account_purge_queue(account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_ACCOUNT_PURGE)
        .u32(account_id)
        .build()
}

/// Builds keys by appending typed components in the encodings above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyBuilder {
    bytes: Vec<u8>,
}

impl KeyBuilder {
    pub fn new(subspace: u8) -> KeyBuilder {
        let mut bytes = Vec::with_capacity(32);
        bytes.push(subspace);
        KeyBuilder { bytes }
    }
    pub fn u8(mut self, value: u8) -> Self {
        self.bytes.push(value);
        self
    }
    pub fn u32(mut self, value: u32) -> Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }
    pub fn u64(mut self, value: u64) -> Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }
    /// A variable-length string or byte string, escaped and terminated.
    pub fn bytes(mut self, value: &[u8]) -> Self {
        for &byte in value {
            self.bytes.push(byte);
            if byte == 0x00 {
                self.bytes.push(0xFF);
            }
        }
        self.bytes.push(0x00);
        self
    }
    pub fn str(self, value: &str) -> Self {
        self.bytes(value.as_bytes())
    }
    /// Fixed-width raw bytes (digests).
    pub fn raw(mut self, value: &[u8]) -> Self {
        self.bytes.extend_from_slice(value);
        self
    }
    pub fn build(self) -> Vec<u8> {
        self.bytes
    }
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // A prefix of only 0xFF bytes: everything sorts before the maximal key.
    vec![0xFF; prefix.len() + 1]
}

/// `ACCOUNT, account_id` — the prefix of everything an account owns.
pub fn account_prefix(account_id: u32) -> KeyBuilder {
    KeyBuilder::new(SUBSPACE_ACCOUNT).u32(account_id)
}

pub fn account_version(account_id: u32) -> Vec<u8> {
    account_prefix(account_id).u8(ACCT_VERSION).build()
}

pub fn object(account_id: u32, data_type: u8, id: u64) -> Vec<u8> {
    account_prefix(account_id)
        .u8(ACCT_OBJECT)
        .u8(data_type)
        .u64(id)
        .build()
}

pub fn account_blob_link(account_id: u32, digest: &[u8; 32]) -> Vec<u8> {
    account_prefix(account_id)
        .u8(ACCT_BLOB_LINK)
        .raw(digest)
        .build()
}

/// `BLOB, BLOB_CHUNK, storage_id` — the prefix of every chunk of one stored blob.
pub fn blob_chunk_prefix(storage_id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_BLOB)
        .u8(BLOB_CHUNK)
        .u64(storage_id)
        .build()
}

pub fn blob_chunk(storage_id: u64, chunk_index: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_BLOB)
        .u8(BLOB_CHUNK)
        .u64(storage_id)
        .u32(chunk_index)
        .build()
}

/// `BLOB, section, sha256` keys (`BLOB_META`, `BLOB_REFCOUNT`, `BLOB_GC_CANDIDATE`).
pub fn blob_by_digest(section: u8, digest: &[u8; 32]) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_BLOB)
        .u8(section)
        .raw(digest)
        .build()
}

pub fn blob_upload_ref(digest: &[u8; 32], account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_BLOB)
        .u8(BLOB_UPLOAD_REF)
        .raw(digest)
        .u32(account_id)
        .build()
}

pub fn blob_upload_expiry(expires_at: u64, digest: &[u8; 32], account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_BLOB)
        .u8(BLOB_UPLOAD_EXPIRY)
        .u64(expires_at)
        .raw(digest)
        .u32(account_id)
        .build()
}

pub fn blob_pending(storage_id: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_BLOB)
        .u8(BLOB_PENDING)
        .u64(storage_id)
        .build()
}

/// `BLOB, section` — the prefix of one blob section.
pub fn blob_section(section: u8) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_BLOB).u8(section).build()
}

/// Decodes a big-endian u64 stored value or key suffix.
pub fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Decodes an atomic-add counter (little-endian i64, missing bytes are zero).
pub fn le_i64(bytes: &[u8]) -> i64 {
    let mut buffer = [0u8; 8];
    let used = bytes.len().min(8);
    buffer[..used].copy_from_slice(&bytes[..used]);
    i64::from_le_bytes(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_prefix_free_and_ordered() {
        let short = KeyBuilder::new(1).str("ab").build();
        let long = KeyBuilder::new(1).str("abc").build();
        let with_nul = KeyBuilder::new(1).bytes(b"ab\0").build();
        assert!(!long.starts_with(&short));
        assert!(short < long);
        assert!(short < with_nul && with_nul < long);
    }

    #[test]
    fn prefix_end_bounds_the_subspace() {
        assert_eq!(prefix_end(&[1, 2]), vec![1, 3]);
        assert_eq!(prefix_end(&[1, 0xFF]), vec![2]);
    }
}
