//! Mailboxes (RFC 8621 §2) in the store, apart from JMAP's wire format.
//!
//! Layout (see `schema/keys.md`):
//! - each Mailbox is a small JSON document under `keys::object(account, Mailbox, id)` (the
//!   generic document store's place), holding only what the user sets: name, parent, role,
//!   sort order, subscription. The four counts live in `mail::counters`, written with every
//!   Email change, and are never stored here;
//! - `ACCT_INDEX, Mailbox, MAILBOX_INDEX_ROLE, role, id` names the Mailbox holding each role,
//!   so `mailbox_with_role` (the Email code asks for the trash on every change) is one read;
//! - `ACCT_MAILBOX_PROPERTIES_VERSION` is the account version of the last commit that changed
//!   a property other than the counts, which lets Mailbox/changes say when only counts moved.
//!
//! Invariants: at most one Mailbox per role (RFC 8621 §2); parents exist and form no cycle;
//! every account has the default Mailboxes once any mail method ran for it.

pub mod tree;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::mail::counters;
use crate::store::commit::{Changes, DataType, allocate_id, commit_account, read_state};
use crate::store::keys::{
    self, ACCT_INDEX, ACCT_MAILBOX_PROPERTIES_VERSION, ACCT_OBJECT, MAILBOX_INDEX_ROLE,
    account_prefix,
};
use crate::store::{KeyRange, RangeOptions, Store, StoreError, StoreResult, Transaction, chunked};

/// RFC 8621 §1.3.1 `maxSizeMailboxName`: the longest name, in UTF-8 octets (the RFC asks for
/// at least 100).
pub const MAX_SIZE_MAILBOX_NAME: usize = 255;

/// RFC 8621 §1.3.1 `maxMailboxDepth`: one more than the most ancestors a Mailbox may have.
/// Deeper trees are unusable in any client, and the bound keeps tree walks short.
pub const MAX_MAILBOX_DEPTH: usize = 32;

/// RFC 8621 §1.3.1 `mayCreateTopLevelMailbox`: the owner of an account may.
pub const MAY_CREATE_TOP_LEVEL_MAILBOX: bool = true;

/// How many Mailboxes one account may hold: every Mailbox/set reads them all to check names
/// and roles, so the number stays bounded (`overQuota` beyond it).
pub const MAX_MAILBOXES_PER_ACCOUNT: usize = 10_000;

/// RFC 8621 §2: a role is a name of the IANA "IMAP Mailbox Name Attributes" registry, in lower
/// case. Only the attributes that name a purpose are roles; the registry's structural
/// attributes (`haschildren`, `noselect`, `subscribed`, …) describe a state the server derives,
/// and taking them as roles would let a client claim e.g. `nonexistent` for a real Mailbox.
pub const ROLES: &[&str] = &[
    "all",
    "archive",
    "drafts",
    "flagged",
    "important",
    "inbox",
    "junk",
    "memos",
    "scheduled",
    "sent",
    "snoozed",
    "trash",
];

/// The Mailboxes every account starts with: (name, role, sortOrder).
pub const DEFAULT_MAILBOXES: [(&str, &str, u32); 6] = [
    ("Inbox", "inbox", 1),
    ("Drafts", "drafts", 2),
    ("Sent", "sent", 3),
    ("Archive", "archive", 4),
    ("Junk", "junk", 5),
    ("Trash", "trash", 6),
];

pub fn is_valid_role(role: &str) -> bool {
    ROLES.contains(&role)
}

/// What the store keeps of a Mailbox: the properties a client sets (RFC 8621 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mailbox {
    pub name: String,
    pub parent_id: Option<u64>,
    pub role: Option<String>,
    /// RFC 8621 §2: 0 ≤ sortOrder < 2^31.
    pub sort_order: u32,
    pub is_subscribed: bool,
    /// RFC 9670 `shareWith`: principal id → the rights granted (`mail::sharing`). Absent in
    /// documents written before sharing existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub share_with: BTreeMap<u32, crate::mail::sharing::Rights>,
    /// The grantees who unsubscribed from this shared Mailbox (RFC 9670 §1.3: subscriptions
    /// are per user; a grantee starts subscribed).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub unsubscribed: BTreeSet<u32>,
}

fn object_key(account_id: u32, mailbox_id: u64) -> Vec<u8> {
    keys::object(account_id, DataType::Mailbox as u8, mailbox_id)
}

fn role_prefix(account_id: u32, role: &str) -> Vec<u8> {
    account_prefix(account_id)
        .u8(ACCT_INDEX)
        .u8(DataType::Mailbox as u8)
        .u8(MAILBOX_INDEX_ROLE)
        .str(role)
        .build()
}

fn role_key(account_id: u32, role: &str, mailbox_id: u64) -> Vec<u8> {
    let mut key = role_prefix(account_id, role);
    key.extend_from_slice(&mailbox_id.to_be_bytes());
    key
}

fn properties_version_key(account_id: u32) -> Vec<u8> {
    account_prefix(account_id)
        .u8(ACCT_MAILBOX_PROPERTIES_VERSION)
        .build()
}

fn decode(account_id: u32, mailbox_id: u64, bytes: &[u8]) -> StoreResult<Mailbox> {
    serde_json::from_slice(bytes).map_err(|error| {
        StoreError::corrupt(format!(
            "Mailbox {mailbox_id} of account {account_id} does not decode: {error}"
        ))
    })
}

/// One Mailbox, or `None`.
pub async fn load(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox_id: u64,
) -> StoreResult<Option<Mailbox>> {
    match chunked::read(tx, &object_key(account_id, mailbox_id)).await? {
        Some(bytes) => decode(account_id, mailbox_id, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Every Mailbox of the account, by id, in one range read.
pub async fn load_all(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<BTreeMap<u64, Mailbox>> {
    let prefix = account_prefix(account_id)
        .u8(ACCT_OBJECT)
        .u8(DataType::Mailbox as u8)
        .build();
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    // Keys are `prefix, id: u64, chunk: u32`, in order: a document's chunks are consecutive.
    let mut documents: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (key, value) in pairs {
        let suffix = &key[prefix.len()..];
        let Some(mailbox_id) = keys::be_u64(suffix).filter(|_| suffix.len() == 12) else {
            return Err(StoreError::corrupt("a Mailbox key without an id and chunk"));
        };
        documents
            .entry(mailbox_id)
            .or_default()
            .extend_from_slice(&value);
    }
    documents
        .into_iter()
        .map(|(mailbox_id, bytes)| Ok((mailbox_id, decode(account_id, mailbox_id, &bytes)?)))
        .collect()
}

/// Writes `mailbox` (new or replacing `previous`), keeping the role index in step.
pub fn save(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox_id: u64,
    mailbox: &Mailbox,
    previous: Option<&Mailbox>,
) -> StoreResult<()> {
    let bytes = serde_json::to_vec(mailbox).map_err(StoreError::io)?;
    chunked::write(tx, &object_key(account_id, mailbox_id), &bytes)?;
    let previous_role = previous.and_then(|previous| previous.role.as_deref());
    if previous_role != mailbox.role.as_deref() {
        if let Some(role) = previous_role {
            tx.clear(&role_key(account_id, role, mailbox_id))?;
        }
        if let Some(role) = &mailbox.role {
            tx.set(&role_key(account_id, role, mailbox_id), &[])?;
        }
    }
    Ok(())
}

/// Removes a Mailbox with its role entry and counters. Its Emails must be gone already
/// (`mail::store::remove_mailbox_from_emails`).
pub fn remove(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox_id: u64,
    mailbox: &Mailbox,
) -> StoreResult<()> {
    chunked::clear(tx, &object_key(account_id, mailbox_id))?;
    if let Some(role) = &mailbox.role {
        tx.clear(&role_key(account_id, role, mailbox_id))?;
    }
    counters::clear(tx, account_id, mailbox_id)
}

/// The Mailbox that has `role` (e.g. `"inbox"`, `"trash"`), if any: one read.
pub async fn mailbox_with_role(
    tx: &mut dyn Transaction,
    account_id: u32,
    role: &str,
) -> StoreResult<Option<u64>> {
    let prefix = role_prefix(account_id, role);
    let pairs = tx
        .get_range(
            &KeyRange::prefix(&prefix),
            RangeOptions {
                limit: 1,
                reverse: false,
            },
        )
        .await?;
    Ok(pairs
        .first()
        .and_then(|(key, _)| keys::be_u64(&key[prefix.len()..])))
}

/// For each id, whether that Mailbox exists (Email/set, Email/import: RFC 8621 §4.6 mailboxIds
/// must name existing Mailboxes). One point read per id.
pub async fn existing_mailboxes(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox_ids: &[u64],
) -> StoreResult<Vec<bool>> {
    let mut exists = Vec::with_capacity(mailbox_ids.len());
    for &mailbox_id in mailbox_ids {
        let first_chunk = chunked::chunk_key(&object_key(account_id, mailbox_id), 0);
        exists.push(tx.get(&first_chunk).await?.is_some());
    }
    Ok(exists)
}

/// Records, inside a commit that changes Mailbox properties other than the counts, that this
/// commit did so. The commit's version is the account version + 1, because the commit records
/// a Mailbox change (so `commit_account` bumps the version by exactly one).
pub async fn record_properties_changed(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<()> {
    let current = crate::store::commit::read_account_version(tx, account_id).await?;
    tx.set(
        &properties_version_key(account_id),
        &(current + 1).to_be_bytes(),
    )
}

/// The account version of the last commit that changed a Mailbox property other than the
/// counts (0 when none did).
pub async fn properties_version(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<u64> {
    match tx.get(&properties_version_key(account_id)).await? {
        None => Ok(0),
        Some(bytes) => keys::be_u64(&bytes)
            .ok_or_else(|| StoreError::corrupt("Mailbox properties version is not a u64")),
    }
}

/// Keeps the counts exact when the trash role moves from `old_trash` to `new_trash` (a
/// Mailbox/set update that gives or takes the role). unreadThreads treats Emails in the trash
/// apart (`mail::counters::thread_contribution`), so every Thread with an Email in either
/// Mailbox contributes differently now; other Threads contribute the same with any trash. Each
/// affected Thread's contribution is recomputed under both and the difference applied, in
/// the same transaction as the role change.
pub async fn move_trash_role(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    old_trash: Option<u64>,
    new_trash: Option<u64>,
) -> StoreResult<()> {
    use crate::mail::store::{contribution_of, load_record, load_thread, mailbox_email_ids};
    if old_trash == new_trash {
        return Ok(());
    }
    let mut thread_ids = std::collections::BTreeSet::new();
    for mailbox_id in [old_trash, new_trash].into_iter().flatten() {
        for email_id in mailbox_email_ids(tx, account_id, mailbox_id).await? {
            if let Some(record) = load_record(tx, account_id, email_id).await? {
                thread_ids.insert(record.thread_id);
            }
        }
    }
    for thread_id in thread_ids {
        let Some(thread) = load_thread(tx, account_id, thread_id).await? else {
            continue;
        };
        let before = contribution_of(tx, account_id, &thread, old_trash).await?;
        let after = contribution_of(tx, account_id, &thread, new_trash).await?;
        counters::apply_difference(tx, changes, account_id, &before, &after)?;
    }
    Ok(())
}

/// Creates the default Mailboxes (inbox, drafts, sent, archive, junk, trash) inside a commit,
/// unless the account's Mailboxes were ever set up (its Mailbox state moved). Idempotent: the
/// decision comes from what `tx` reads, so a retried or concurrent run creates nothing twice.
/// Returns whether it created them.
pub async fn create_default_mailboxes(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
) -> StoreResult<bool> {
    if read_state(tx, account_id, DataType::Mailbox).await? != 0 {
        return Ok(false);
    }
    for (name, role, sort_order) in DEFAULT_MAILBOXES {
        // A Mailbox with the role may exist without a state (never, unless written by hand):
        // the role stays unique.
        if mailbox_with_role(tx, account_id, role).await?.is_some() {
            continue;
        }
        let mailbox_id = allocate_id(tx, account_id, DataType::Mailbox).await?;
        let mailbox = Mailbox {
            name: name.to_owned(),
            parent_id: None,
            role: Some(role.to_owned()),
            sort_order,
            is_subscribed: true,
            share_with: Default::default(),
            unsubscribed: Default::default(),
        };
        save(tx, account_id, mailbox_id, &mailbox, None)?;
        changes.created(DataType::Mailbox, mailbox_id);
    }
    Ok(true)
}

/// Makes sure the account has its default Mailboxes: called when an account is created, and
/// by the mail methods for accounts that predate Mailboxes. Costs one read when they exist.
pub async fn ensure_default_mailboxes(store: &Store, account_id: u32) -> StoreResult<()> {
    let state = store
        .read(|tx| Box::pin(async move { read_state(tx, account_id, DataType::Mailbox).await }))
        .await?;
    if state != 0 {
        return Ok(());
    }
    let committed = commit_account(store, account_id, |tx, changes| {
        Box::pin(async move { create_default_mailboxes(tx, changes, account_id).await })
    })
    .await?;
    if committed.value {
        tracing::info!(account_id, "default mailboxes created");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
