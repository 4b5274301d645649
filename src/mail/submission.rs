//! The EmailSubmission store (RFC 8621 §7): every write of an EmailSubmission — its creation
//! by EmailSubmission/set, a cancel, a destroy, and the delivery reports of the outbound queue
//! actor — goes through these functions inside one `commit_account` transaction, and records
//! its change so EmailSubmission/changes and push see it.
//!
//! Invariants:
//! - a submission's record is under `ACCT_OBJECT, EmailSubmission, id` (chunked binary, see
//!   `record.rs`); its JMAP id is `Id::from_number('s', id)`;
//! - undoStatus only moves forward (pending → final, pending → canceled), so replaying a
//!   delivery report, or a report that arrives after a cancel, never moves it back;
//! - applying the same [`DeliveryReport`] twice leaves the record as applying it once did
//!   (the outbound actor may replay a report after a crash).

pub mod record;

pub use record::{
    Delivered, Envelope, EnvelopeAddress, RecipientStatus, SubmissionRecord, UndoStatus,
};

use crate::store::blob::BlobHash;
use crate::store::commit::{Changes, DataType, allocate_id};
use crate::store::keys::{self, ACCT_OBJECT, account_prefix};
use crate::store::{KeyRange, RangeOptions, StoreResult, Transaction, chunked};

/// The letter that starts every EmailSubmission id (see `jmap::types::Id`).
pub const SUBMISSION_ID_PREFIX: char = 's';

fn record_key(account_id: u32, submission_id: u64) -> Vec<u8> {
    keys::object(account_id, DataType::EmailSubmission as u8, submission_id)
}

pub async fn load(
    tx: &mut dyn Transaction,
    account_id: u32,
    submission_id: u64,
) -> StoreResult<Option<SubmissionRecord>> {
    match chunked::read(tx, &record_key(account_id, submission_id)).await? {
        Some(bytes) => SubmissionRecord::decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// A fresh submission id (allocated first, so the outbound queue entry can name it before the
/// record, which names the queue entry, is written).
pub async fn allocate(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<u64> {
    allocate_id(tx, account_id, DataType::EmailSubmission).await
}

/// Stores a new submission under an id from [`allocate`] and records its creation.
pub fn insert(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    submission_id: u64,
    record: &SubmissionRecord,
) -> StoreResult<()> {
    chunked::write(tx, &record_key(account_id, submission_id), &record.encode())?;
    changes.created(DataType::EmailSubmission, submission_id);
    Ok(())
}

/// Rewrites an existing submission and records the update.
pub fn save(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    submission_id: u64,
    record: &SubmissionRecord,
) -> StoreResult<()> {
    chunked::write(tx, &record_key(account_id, submission_id), &record.encode())?;
    changes.updated(DataType::EmailSubmission, submission_id);
    Ok(())
}

/// Removes a submission's record (RFC 8621 §7.5: destroying an EmailSubmission only forgets
/// it; it does not stop or recall delivery). Returns whether it existed.
pub async fn destroy(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    submission_id: u64,
) -> StoreResult<bool> {
    let key = record_key(account_id, submission_id);
    if chunked::read(tx, &key).await?.is_none() {
        return Ok(false);
    }
    chunked::clear(tx, &key)?;
    changes.destroyed(DataType::EmailSubmission, submission_id);
    Ok(true)
}

/// Every submission of the account with its record, by ascending id.
pub async fn load_all(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<Vec<(u64, SubmissionRecord)>> {
    let mut found = Vec::new();
    for id in list_ids(tx, account_id).await? {
        if let Some(record) = load(tx, account_id, id).await? {
            found.push((id, record));
        }
    }
    Ok(found)
}

/// Every submission id of the account, ascending.
pub async fn list_ids(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Vec<u64>> {
    let prefix = account_prefix(account_id)
        .u8(ACCT_OBJECT)
        .u8(DataType::EmailSubmission as u8)
        .build();
    // Keys only matter here; chunk 0 of every record names its id.
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    Ok(pairs
        .into_iter()
        .filter_map(|(key, _)| {
            let suffix = key.get(prefix.len()..)?;
            // `id: u64 BE, chunk: u32 BE`.
            (suffix.len() == 12 && suffix[8..] == [0, 0, 0, 0])
                .then(|| keys::be_u64(suffix))
                .flatten()
        })
        .collect())
}

/// What the outbound queue actor learned about one submission's delivery, applied with
/// [`apply_delivery_report`] in the same transaction as the actor's own queue update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// New statuses of some recipients (matched by address, case-insensitively).
    pub recipients: Vec<RecipientReport>,
    /// Delivery has started (at least one recipient was attempted or handed over), so the
    /// submission can no longer be canceled: undoStatus pending → final (RFC 8621 §7).
    pub undo_final: bool,
    /// A DSN (RFC 3464) about this submission, stored as a blob the account holds (the
    /// bounce Email in its Inbox); appended to dsnBlobIds once.
    pub dsn_blob: Option<BlobHash>,
    /// An MDN (RFC 8098) about this submission; appended to mdnBlobIds once.
    pub mdn_blob: Option<BlobHash>,
}

/// The new status of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    pub address: String,
    pub delivered: Delivered,
    /// The SMTP reply the next hop gave (or a synthesized one, e.g. "550 5.1.1 ...").
    pub smtp_reply: String,
    /// `Some(true)` when an MDN said the message was displayed.
    pub displayed: Option<bool>,
}

/// Updates one EmailSubmission from a delivery report (RFC 8621 §7 deliveryStatus,
/// undoStatus, dsnBlobIds, mdnBlobIds) and records the update when anything changed.
/// Returns `false` when the submission no longer exists (the client destroyed it: RFC 8621
/// §7.5 says that must not affect delivery, so the actor goes on). Idempotent.
pub async fn apply_delivery_report(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    submission_id: u64,
    report: &DeliveryReport,
) -> StoreResult<bool> {
    let Some(mut record) = load(tx, account_id, submission_id).await? else {
        return Ok(false);
    };
    if apply_report_to(&mut record, report) {
        save(tx, changes, account_id, submission_id, &record)?;
        tracing::debug!(
            account_id,
            submission_id,
            undo_status = record.undo_status.name(),
            "EmailSubmission updated by a delivery report"
        );
    }
    Ok(true)
}

/// The pure part of [`apply_delivery_report`]; returns whether the record changed.
fn apply_report_to(record: &mut SubmissionRecord, report: &DeliveryReport) -> bool {
    let before = record.clone();
    for update in &report.recipients {
        let existing = record
            .delivery_status
            .iter_mut()
            .find(|status| status.address.eq_ignore_ascii_case(&update.address));
        let status = match existing {
            Some(status) => status,
            None => {
                record
                    .delivery_status
                    .push(RecipientStatus::queued(update.address.clone()));
                let last = record.delivery_status.len() - 1;
                &mut record.delivery_status[last]
            }
        };
        status.delivered = update.delivered;
        status.smtp_reply.clone_from(&update.smtp_reply);
        if let Some(displayed) = update.displayed {
            // RFC 8621 §7: displayed is "unknown" or "yes"; once seen, it stays seen.
            status.displayed |= displayed;
        }
    }
    // Only forward: a canceled submission stays canceled, a final one final.
    if report.undo_final && record.undo_status == UndoStatus::Pending {
        record.undo_status = UndoStatus::Final;
    }
    for (blob, list) in [
        (report.dsn_blob, &mut record.dsn_blobs),
        (report.mdn_blob, &mut record.mdn_blobs),
    ] {
        if let Some(blob) = blob
            && !list.contains(&blob)
        {
            list.push(blob);
        }
    }
    *record != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(address: &str, delivered: Delivered, reply: &str) -> DeliveryReport {
        DeliveryReport {
            recipients: vec![RecipientReport {
                address: address.to_owned(),
                delivered,
                smtp_reply: reply.to_owned(),
                displayed: None,
            }],
            undo_final: true,
            dsn_blob: None,
            mdn_blob: None,
        }
    }

    fn pending() -> SubmissionRecord {
        SubmissionRecord {
            identity_id: 1,
            email_id: 2,
            thread_id: 3,
            envelope: Envelope {
                mail_from: EnvelopeAddress::plain("a@example.test"),
                rcpt_to: vec![
                    EnvelopeAddress::plain("b@example.org"),
                    EnvelopeAddress::plain("c@example.org"),
                ],
            },
            send_at: 100,
            undo_status: UndoStatus::Pending,
            delivery_status: vec![
                RecipientStatus::queued("b@example.org"),
                RecipientStatus::queued("c@example.org"),
            ],
            dsn_blobs: Vec::new(),
            mdn_blobs: Vec::new(),
            outbound_id: Some(5),
        }
    }

    #[test]
    fn a_report_updates_one_recipient_and_finalizes_once() {
        let mut record = pending();
        let delivered = report("B@example.org", Delivered::Yes, "250 2.0.0 ok");
        assert!(apply_report_to(&mut record, &delivered));
        assert_eq!(record.undo_status, UndoStatus::Final);
        assert_eq!(record.delivery_status[0].delivered, Delivered::Yes);
        assert_eq!(record.delivery_status[0].smtp_reply, "250 2.0.0 ok");
        assert_eq!(record.delivery_status[1].delivered, Delivered::Queued);
        // Replayed: nothing changes.
        assert!(!apply_report_to(&mut record, &delivered));
    }

    #[test]
    fn a_bounce_adds_its_dsn_once_and_never_reopens_a_canceled_submission() {
        let mut record = pending();
        record.undo_status = UndoStatus::Canceled;
        let mut bounce = report("c@example.org", Delivered::No, "550 5.1.1 no such user");
        bounce.dsn_blob = Some(BlobHash::of(b"dsn"));
        assert!(apply_report_to(&mut record, &bounce));
        assert!(!apply_report_to(&mut record, &bounce));
        assert_eq!(record.undo_status, UndoStatus::Canceled);
        assert_eq!(record.dsn_blobs, [BlobHash::of(b"dsn")]);
        assert_eq!(record.delivery_status[1].delivered, Delivered::No);
    }

    #[test]
    fn displayed_stays_yes() {
        let mut record = pending();
        let mut seen = report("b@example.org", Delivered::Yes, "250 ok");
        seen.recipients[0].displayed = Some(true);
        apply_report_to(&mut record, &seen);
        seen.recipients[0].displayed = Some(false);
        apply_report_to(&mut record, &seen);
        assert!(record.delivery_status[0].displayed);
    }
}
