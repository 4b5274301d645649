//! The Email store: every Email write — import (JMAP, SMTP delivery, Email/set create and
//! copy), keyword and mailbox updates, destroys — goes through these functions, inside one
//! `commit_account` transaction. Each keeps, in that same transaction:
//! - the Email record (`record.rs`) and its parsed metadata (written once, chunked);
//! - the indexes of `index.rs`;
//! - the Thread (joined, created, or merged, `thread.rs`);
//! - the exact Mailbox counts (`mail::counters`), by diffing what the touched Threads
//!   contribute before and after;
//! - the blob link of the raw message (the blob lives while an Email references it);
//! - the change-log entries of every Email, Thread and Mailbox the write changed.
//!
//! Nothing here talks to the network or parses JMAP: callers validate input first.

pub mod blob_index;
pub mod index;
pub mod record;
pub mod suite;
pub mod thread;

use std::collections::{BTreeMap, BTreeSet};

use crate::mail::counters::{self, Contribution, MemberState};
use crate::mail::parsed::ParsedEmail;
use crate::mail::{followup, quota};
use crate::store::blob::{self, BlobHash};
use crate::store::commit::{Changes, DataType, allocate_id};
use crate::store::keys::{self, ACCT_EMAIL_META, ACCT_OBJECT};
use crate::store::{KeyRange, RangeOptions, StoreError, StoreResult, Transaction, chunked};

pub use record::{EmailRecord, ThreadRecord};

/// What an import stores.
#[derive(Debug, Clone)]
pub struct ImportSpec {
    pub blob: BlobHash,
    pub parsed: ParsedEmail,
    pub mailbox_ids: Vec<u64>,
    pub keywords: Vec<String>,
    /// Unix seconds.
    pub received_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportedEmail {
    pub email_id: u64,
    pub thread_id: u64,
}

pub fn record_key(account_id: u32, email_id: u64) -> Vec<u8> {
    keys::object(account_id, DataType::Email as u8, email_id)
}

fn meta_key(account_id: u32, email_id: u64) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_EMAIL_META)
        .u64(email_id)
        .build()
}

fn thread_key(account_id: u32, thread_id: u64) -> Vec<u8> {
    keys::object(account_id, DataType::Thread as u8, thread_id)
}

pub async fn load_record(
    tx: &mut dyn Transaction,
    account_id: u32,
    email_id: u64,
) -> StoreResult<Option<EmailRecord>> {
    match tx.get(&record_key(account_id, email_id)).await? {
        Some(bytes) => EmailRecord::decode(&bytes).map(Some),
        None => Ok(None),
    }
}

pub async fn load_parsed(
    tx: &mut dyn Transaction,
    account_id: u32,
    email_id: u64,
) -> StoreResult<Option<ParsedEmail>> {
    let Some(bytes) = chunked::read(tx, &meta_key(account_id, email_id)).await? else {
        return Ok(None);
    };
    ParsedEmail::decode_stored(&bytes)
        .map(|mut parsed| {
            // Messages stored before the parts bound get it on reading (issue 13).
            parsed.bound_structure();
            Some(parsed)
        })
        .map_err(|error| StoreError::corrupt(format!("Email {email_id}: {error}")))
}

pub async fn load_thread(
    tx: &mut dyn Transaction,
    account_id: u32,
    thread_id: u64,
) -> StoreResult<Option<ThreadRecord>> {
    match chunked::read(tx, &thread_key(account_id, thread_id)).await? {
        Some(bytes) => ThreadRecord::decode(&bytes).map(Some),
        None => Ok(None),
    }
}

fn save_thread(
    tx: &mut dyn Transaction,
    account_id: u32,
    thread_id: u64,
    thread: &ThreadRecord,
) -> StoreResult<()> {
    chunked::write(tx, &thread_key(account_id, thread_id), &thread.encode())
}

pub(crate) fn chunked_clear_thread(
    tx: &mut dyn Transaction,
    account_id: u32,
    thread_id: u64,
) -> StoreResult<()> {
    chunked::clear(tx, &thread_key(account_id, thread_id))
}

/// Every Email id of the account, ascending.
pub async fn list_email_ids(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Vec<u64>> {
    let prefix = keys::account_prefix(account_id)
        .u8(ACCT_OBJECT)
        .u8(DataType::Email as u8)
        .build();
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    Ok(pairs
        .iter()
        .filter_map(|(key, _)| keys::be_u64(&key[prefix.len()..]))
        .collect())
}

/// Up to `limit` Email ids of the account after `after` (exclusive), in id order: bulk work
/// (an index rebuild) pages through a large account with these, one page per transaction,
/// far inside FoundationDB's 5 s and 10 MB.
pub async fn email_ids_page(
    tx: &mut dyn Transaction,
    account_id: u32,
    after: Option<u64>,
    limit: usize,
) -> StoreResult<Vec<u64>> {
    let prefix = keys::account_prefix(account_id)
        .u8(ACCT_OBJECT)
        .u8(DataType::Email as u8)
        .build();
    let mut range = KeyRange::prefix(&prefix);
    if let Some(after) = after {
        let mut begin = prefix.clone();
        begin.extend_from_slice(&after.to_be_bytes());
        // The key after `after`'s record (and its chunks, if any).
        range.begin = keys::prefix_end(&begin);
    }
    let pairs = tx
        .get_range(
            &range,
            RangeOptions {
                limit,
                reverse: false,
            },
        )
        .await?;
    let mut ids: Vec<u64> = pairs
        .iter()
        .filter_map(|(key, _)| {
            key.get(prefix.len()..prefix.len() + 8)
                .and_then(keys::be_u64)
        })
        .collect();
    ids.dedup();
    Ok(ids)
}

/// Every Email record of the account, in id order (the general /query path).
pub async fn load_all_records(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<Vec<(u64, EmailRecord)>> {
    let prefix = keys::account_prefix(account_id)
        .u8(ACCT_OBJECT)
        .u8(DataType::Email as u8)
        .build();
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    let mut records = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let Some(email_id) = keys::be_u64(&key[prefix.len()..]) else {
            continue;
        };
        records.push((email_id, EmailRecord::decode(&value)?));
    }
    Ok(records)
}

/// The sort and filter keys an import derives from the parsed message.
fn summary_keys(parsed: &ParsedEmail) -> (Option<i64>, String, String, String) {
    let sent_at = parsed.sent_at_unix;
    let first_address_key = |addresses: &Option<Vec<crate::mail::parsed::EmailAddress>>| {
        addresses
            .as_ref()
            .and_then(|list| list.first())
            .map(|address| match address.name.as_deref() {
                Some(name) if !name.trim().is_empty() => name.trim().to_lowercase(),
                _ => address.email.to_lowercase(),
            })
            .unwrap_or_default()
    };
    (
        sent_at,
        index::base_subject(parsed.subject.as_deref().unwrap_or("")),
        first_address_key(&parsed.from),
        first_address_key(&parsed.to),
    )
}

/// The Message-IDs an Email carries or references, hashed.
fn message_id_hashes(parsed: &ParsedEmail) -> BTreeSet<u64> {
    [&parsed.message_id, &parsed.in_reply_to, &parsed.references]
        .into_iter()
        .flatten()
        .flatten()
        .take(200)
        .map(|id| index::message_id_hash(id))
        .collect()
}

/// The Emails whose own Message-ID is `message_id` (without angle brackets), at most
/// `limit`: the Message-ID index lists those that carry or reference it, and the parsed
/// metadata tells which carry it.
pub async fn emails_with_message_id(
    tx: &mut dyn Transaction,
    account_id: u32,
    message_id: &str,
    limit: usize,
) -> StoreResult<Vec<u64>> {
    let prefix = index::message_id_prefix(account_id, index::message_id_hash(message_id));
    // Bounded: a Message-ID referenced by more Emails than this is a thread, not a lookup.
    let options = RangeOptions {
        limit: 1_000,
        reverse: false,
    };
    let pairs = tx.get_range(&KeyRange::prefix(&prefix), options).await?;
    let mut found = Vec::new();
    for (key, _) in pairs {
        let Some(email_id) = index::trailing_email_id(&key) else {
            continue;
        };
        let carries = load_parsed(tx, account_id, email_id)
            .await?
            .and_then(|parsed| parsed.message_id)
            .is_some_and(|ids| ids.iter().any(|id| id.eq_ignore_ascii_case(message_id)));
        if carries {
            found.push(email_id);
            if found.len() >= limit {
                break;
            }
        }
    }
    Ok(found)
}

/// What [`import_email_linked`] reads that is particular to this message (the rest is the
/// account's, read once per transaction): the thread index of its Message-IDs and the blob's
/// metadata. For [`Transaction::prefetch`] before a batch of imports.
pub fn import_reads(
    account_id: u32,
    parsed: &ParsedEmail,
    blob: &BlobHash,
    keys: &mut Vec<Vec<u8>>,
    ranges: &mut Vec<KeyRange>,
) {
    for hash in message_id_hashes(parsed) {
        ranges.push(KeyRange::prefix(&index::message_id_prefix(
            account_id, hash,
        )));
    }
    keys.push(blob::meta_key(blob));
    quota::reads(account_id, keys);
}

/// Stores a new Email: record, metadata, indexes, Thread, counters, blob link, change log.
/// The caller has validated the mailboxes and keywords and made sure the account may read
/// the blob.
pub async fn import_email(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    spec: ImportSpec,
) -> StoreResult<ImportedEmail> {
    import_email_linked(tx, changes, account_id, spec, BlobAccess::Readable).await
}

/// How an import links its raw-message blob to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobAccess {
    /// The account may already read the blob (an upload, an earlier link): `blob::link`.
    Readable,
    /// A durable queue entry holds the blob (SMTP delivery): `blob::link_held`.
    QueueHeld,
}

/// [`import_email`] with an explicit [`BlobAccess`].
pub async fn import_email_linked(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    spec: ImportSpec,
    access: BlobAccess,
) -> StoreResult<ImportedEmail> {
    debug_assert!(!spec.mailbox_ids.is_empty());
    let email_id = allocate_id(tx, account_id, DataType::Email).await?;
    let (sent_at, base_subject, from_sort, to_sort) = summary_keys(&spec.parsed);
    let hashes = message_id_hashes(&spec.parsed);
    let placement =
        thread::place_new_email(tx, changes, account_id, &hashes, &base_subject).await?;
    let mut mailbox_ids = spec.mailbox_ids;
    mailbox_ids.sort_unstable();
    mailbox_ids.dedup();
    let mut keywords: Vec<String> = spec.keywords.iter().map(|k| k.to_lowercase()).collect();
    keywords.sort_unstable();
    keywords.dedup();
    let record = EmailRecord {
        blob: spec.blob,
        thread_id: placement.thread_id,
        received_at: spec.received_at,
        size: spec.parsed.size,
        mailbox_ids,
        keywords,
        sent_at,
        has_attachment: spec.parsed.has_attachment,
        base_subject,
        from_sort,
        to_sort,
    };

    let trash = trash_mailbox(tx, account_id).await?;
    let mut thread = placement.thread;
    let before = contribution_of(tx, account_id, &thread, trash).await?;
    tx.set(&record_key(account_id, email_id), &record.encode())?;
    chunked::write(
        tx,
        &meta_key(account_id, email_id),
        &spec.parsed.encode_stored(),
    )?;
    write_indexes(tx, account_id, email_id, &record)?;
    tx.set(
        &index::blob_entry(account_id, record.blob.as_bytes(), email_id),
        &[],
    )?;
    for hash in &hashes {
        tx.set(&index::message_id_entry(account_id, *hash, email_id), &[])?;
    }
    // The full-text index learns of it from a task born in this same transaction.
    followup::search::enqueue_index(tx, account_id, email_id)?;
    thread.insert(record.received_at, email_id);
    save_thread(tx, account_id, placement.thread_id, &thread)?;
    let after = contribution_of(tx, account_id, &thread, trash).await?;
    counters::apply_difference(tx, changes, account_id, &before, &after)?;
    match access {
        BlobAccess::Readable => blob::link(tx, account_id, &record.blob).await,
        BlobAccess::QueueHeld => blob::link_held(tx, account_id, &record.blob).await,
    }
    .map_err(|error| StoreError::corrupt(format!("linking Email blob: {error}")))?;
    quota::email_added(tx, changes, account_id, record.size).await?;
    changes.created(DataType::Email, email_id);
    if placement.is_new {
        changes.created(DataType::Thread, placement.thread_id);
    } else {
        changes.updated(DataType::Thread, placement.thread_id);
    }
    Ok(ImportedEmail {
        email_id,
        thread_id: placement.thread_id,
    })
}

/// Replaces the mailboxes and keywords of an Email. `Ok(false)` if it does not exist.
pub async fn update_email(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    email_id: u64,
    mut mailbox_ids: Vec<u64>,
    keywords: Vec<String>,
) -> StoreResult<bool> {
    let Some(current) = load_record(tx, account_id, email_id).await? else {
        return Ok(false);
    };
    mailbox_ids.sort_unstable();
    mailbox_ids.dedup();
    let mut keywords: Vec<String> = keywords.iter().map(|k| k.to_lowercase()).collect();
    keywords.sort_unstable();
    keywords.dedup();
    if current.mailbox_ids == mailbox_ids && current.keywords == keywords {
        return Ok(true);
    }
    debug_assert!(!mailbox_ids.is_empty());
    let trash = trash_mailbox(tx, account_id).await?;
    let thread = load_thread(tx, account_id, current.thread_id)
        .await?
        .unwrap_or_default();
    let before = contribution_of(tx, account_id, &thread, trash).await?;
    clear_indexes(tx, account_id, email_id, &current)?;
    let updated = EmailRecord {
        mailbox_ids,
        keywords,
        ..current.clone()
    };
    write_indexes(tx, account_id, email_id, &updated)?;
    tx.set(&record_key(account_id, email_id), &updated.encode())?;
    // Moving into/out of Junk and `$junk`/`$notjunk` train the spam classifier (a durable task
    // born with the change).
    followup::training::on_email_updated(tx, account_id, email_id, &current, &updated).await?;
    let after = contribution_of(tx, account_id, &thread, trash).await?;
    counters::apply_difference(tx, changes, account_id, &before, &after)?;
    changes.updated(DataType::Email, email_id);
    Ok(true)
}

/// Destroys an Email. `Ok(false)` if it does not exist.
pub async fn destroy_email(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    email_id: u64,
) -> StoreResult<bool> {
    let Some(current) = load_record(tx, account_id, email_id).await? else {
        return Ok(false);
    };
    let trash = trash_mailbox(tx, account_id).await?;
    let mut thread = load_thread(tx, account_id, current.thread_id)
        .await?
        .unwrap_or_default();
    let before = contribution_of(tx, account_id, &thread, trash).await?;
    if let Some(parsed) = load_parsed(tx, account_id, email_id).await? {
        for hash in message_id_hashes(&parsed) {
            tx.clear(&index::message_id_entry(account_id, hash, email_id))?;
        }
    }
    clear_indexes(tx, account_id, email_id, &current)?;
    tx.clear(&index::blob_entry(
        account_id,
        current.blob.as_bytes(),
        email_id,
    ))?;
    tx.clear(&record_key(account_id, email_id))?;
    chunked::clear(tx, &meta_key(account_id, email_id))?;
    followup::search::enqueue_delete(tx, account_id, email_id)?;
    thread.remove(email_id);
    if thread.members.is_empty() {
        chunked_clear_thread(tx, account_id, current.thread_id)?;
        changes.destroyed(DataType::Thread, current.thread_id);
    } else {
        save_thread(tx, account_id, current.thread_id, &thread)?;
        changes.updated(DataType::Thread, current.thread_id);
    }
    let after = contribution_of(tx, account_id, &thread, trash).await?;
    counters::apply_difference(tx, changes, account_id, &before, &after)?;
    blob::unlink(tx, account_id, &current.blob)
        .await
        .map_err(|error| StoreError::corrupt(format!("unlinking Email blob: {error}")))?;
    quota::email_removed(tx, changes, account_id, current.size).await?;
    changes.destroyed(DataType::Email, email_id);
    Ok(true)
}

/// The Email ids in a mailbox, newest first.
pub async fn mailbox_email_ids(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox_id: u64,
) -> StoreResult<Vec<u64>> {
    let prefix = index::mailbox_prefix(account_id, index::MAILBOX_RECEIVED, mailbox_id);
    let pairs = tx
        .get_range(
            &KeyRange::prefix(&prefix),
            RangeOptions {
                limit: 0,
                reverse: true,
            },
        )
        .await?;
    Ok(pairs
        .iter()
        .filter_map(|(key, _)| index::entry_tail(key).map(|(_, id)| id))
        .collect())
}

/// For a Mailbox being destroyed with `onDestroyRemoveEmails` (RFC 8621 §2.5): Emails only in
/// it are destroyed, the others leave it.
pub async fn remove_mailbox_from_emails(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    mailbox_id: u64,
) -> StoreResult<()> {
    for email_id in mailbox_email_ids(tx, account_id, mailbox_id).await? {
        let Some(record) = load_record(tx, account_id, email_id).await? else {
            continue;
        };
        let remaining: Vec<u64> = record
            .mailbox_ids
            .iter()
            .copied()
            .filter(|id| *id != mailbox_id)
            .collect();
        if remaining.is_empty() {
            destroy_email(tx, changes, account_id, email_id).await?;
        } else {
            update_email(
                tx,
                changes,
                account_id,
                email_id,
                remaining,
                record.keywords.clone(),
            )
            .await?;
        }
    }
    Ok(())
}

fn index_value(record: &EmailRecord) -> [u8; 8] {
    record.thread_id.to_be_bytes()
}

pub(crate) fn write_indexes(
    tx: &mut dyn Transaction,
    account_id: u32,
    email_id: u64,
    record: &EmailRecord,
) -> StoreResult<()> {
    let value = index_value(record);
    let unseen = !record.has_keyword("$seen");
    for mailbox_id in &record.mailbox_ids {
        let entry = |kind| {
            index::mailbox_entry(account_id, kind, *mailbox_id, record.received_at, email_id)
        };
        tx.set(&entry(index::MAILBOX_RECEIVED), &value)?;
        if unseen {
            tx.set(&entry(index::MAILBOX_UNSEEN), &value)?;
        }
    }
    tx.set(
        &index::received_entry(account_id, record.received_at, email_id),
        &value,
    )
}

pub(crate) fn clear_indexes(
    tx: &mut dyn Transaction,
    account_id: u32,
    email_id: u64,
    record: &EmailRecord,
) -> StoreResult<()> {
    for mailbox_id in &record.mailbox_ids {
        for kind in [index::MAILBOX_RECEIVED, index::MAILBOX_UNSEEN] {
            tx.clear(&index::mailbox_entry(
                account_id,
                kind,
                *mailbox_id,
                record.received_at,
                email_id,
            ))?;
        }
    }
    tx.clear(&index::received_entry(
        account_id,
        record.received_at,
        email_id,
    ))
}

/// What a Thread's current members contribute to the Mailbox counts.
pub(crate) async fn contribution_of(
    tx: &mut dyn Transaction,
    account_id: u32,
    thread: &ThreadRecord,
    trash: Option<u64>,
) -> StoreResult<Contribution> {
    let mut members = Vec::with_capacity(thread.members.len());
    for email_id in thread.email_ids() {
        if let Some(record) = load_record(tx, account_id, email_id).await? {
            members.push(MemberState {
                is_unread: record.is_unread(),
                is_unseen: !record.has_keyword("$seen"),
                mailbox_ids: record.mailbox_ids,
            });
        }
    }
    Ok(counters::thread_contribution(&members, trash))
}

/// The account's trash Mailbox, which the unreadThreads rule treats apart.
pub(crate) async fn trash_mailbox(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<Option<u64>> {
    crate::mail::mailbox::mailbox_with_role(tx, account_id, "trash").await
}

/// Sums contributions (for merges, where several Threads become one).
pub(crate) fn sum_contributions(parts: &[Contribution]) -> Contribution {
    let mut total: Contribution = BTreeMap::new();
    for part in parts {
        for (mailbox_id, counts) in part {
            let entry = total.entry(*mailbox_id).or_default();
            for (slot, count) in entry.iter_mut().zip(counts) {
                *slot += count;
            }
        }
    }
    total
}
