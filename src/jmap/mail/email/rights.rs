//! What a grantee may do to the Emails of a shared account (RFC 8621 §2 rights, RFC 9670).
//!
//! - adding an Email to a Mailbox (create, import, copy, or a `mailboxIds` change) needs
//!   `mayAddItems` there; taking it out needs `mayRemoveItems`;
//! - changing `$seen` needs `maySetSeen`, any other keyword `maySetKeywords`, in every Mailbox
//!   of the Email (RFC 8621 §2: "for all of the Mailboxes");
//! - destroying needs `mayRemoveItems` in every Mailbox of the Email;
//! - a Mailbox the grantee does not see is answered as if it did not exist, and the
//!   memberships of an Email in such Mailboxes are kept as they are by a `mailboxIds` change.

use crate::jmap::error::{SetError, SetErrorType};
use crate::mail::sharing::{Rights, SharedView};
use crate::mail::store::EmailRecord;

const SEEN: &str = "$seen";

fn forbidden(description: String) -> SetError {
    SetError::with_description(SetErrorType::Forbidden, description)
}

fn mailbox_name(mailbox_id: u64) -> String {
    crate::jmap::types::Id::from_number(crate::jmap::mail::mailbox::ID_PREFIX, mailbox_id)
        .into_string()
}

/// The first Mailbox the grantee does not see, if any (answered as missing).
pub fn unseen_mailbox(view: &SharedView, mailbox_ids: &[u64]) -> Option<u64> {
    mailbox_ids
        .iter()
        .copied()
        .find(|mailbox_id| !view.shows(*mailbox_id))
}

/// A new Email in `mailbox_ids` with `keywords`.
pub fn check_create(
    view: &SharedView,
    mailbox_ids: &[u64],
    keywords: &[String],
) -> Result<(), SetError> {
    if let Some(mailbox_id) = mailbox_ids
        .iter()
        .find(|mailbox_id| !view.may(**mailbox_id, Rights::ADD_ITEMS))
    {
        return Err(forbidden(format!(
            "Mailbox {} does not grant mayAddItems",
            mailbox_name(*mailbox_id)
        )));
    }
    check_keywords(view, mailbox_ids, &[], keywords)
}

fn check_keywords(
    view: &SharedView,
    mailbox_ids: &[u64],
    before: &[String],
    after: &[String],
) -> Result<(), SetError> {
    let changed = |keyword: &String| before.contains(keyword) != after.contains(keyword);
    let seen_changed = changed(&SEEN.to_owned());
    let others_changed = before.iter().chain(after).any(|k| k != SEEN && changed(k));
    if seen_changed && !view.may_in_all(mailbox_ids, Rights::SET_SEEN) {
        return Err(forbidden(
            "$seen changes need maySetSeen in every Mailbox of the Email".to_owned(),
        ));
    }
    if others_changed && !view.may_in_all(mailbox_ids, Rights::SET_KEYWORDS) {
        return Err(forbidden(
            "keyword changes need maySetKeywords in every Mailbox of the Email".to_owned(),
        ));
    }
    Ok(())
}

/// The Email's Mailboxes the grantee sees (its `mailboxIds` for them).
pub fn visible_mailboxes(view: &SharedView, record: &EmailRecord) -> Vec<u64> {
    record
        .mailbox_ids
        .iter()
        .copied()
        .filter(|mailbox_id| view.may(*mailbox_id, Rights::READ_ITEMS))
        .collect()
}

/// The whole `mailboxIds` after a grantee set the visible part to `visible_after`: the hidden
/// memberships stay.
pub fn with_hidden(view: &SharedView, record: &EmailRecord, visible_after: &[u64]) -> Vec<u64> {
    let mut all: Vec<u64> = record
        .mailbox_ids
        .iter()
        .copied()
        .filter(|mailbox_id| !view.may(*mailbox_id, Rights::READ_ITEMS))
        .chain(visible_after.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// An update of an Email the grantee sees to `mailbox_ids` and `keywords`.
pub fn check_update(
    view: &SharedView,
    record: &EmailRecord,
    mailbox_ids: &[u64],
    keywords: &[String],
) -> Result<(), SetError> {
    for added in mailbox_ids
        .iter()
        .filter(|id| !record.mailbox_ids.contains(id))
    {
        if !view.may(*added, Rights::ADD_ITEMS) {
            return Err(forbidden(format!(
                "Mailbox {} does not grant mayAddItems",
                mailbox_name(*added)
            )));
        }
    }
    for removed in record
        .mailbox_ids
        .iter()
        .filter(|id| !mailbox_ids.contains(id))
    {
        if !view.may(*removed, Rights::REMOVE_ITEMS) {
            return Err(forbidden(format!(
                "Mailbox {} does not grant mayRemoveItems",
                mailbox_name(*removed)
            )));
        }
    }
    check_keywords(view, &record.mailbox_ids, &record.keywords, keywords)
}

/// Destroying an Email the grantee sees.
pub fn check_destroy(view: &SharedView, record: &EmailRecord) -> Result<(), SetError> {
    if view.may_in_all(&record.mailbox_ids, Rights::REMOVE_ITEMS) {
        return Ok(());
    }
    Err(forbidden(
        "destroying needs mayRemoveItems in every Mailbox of the Email".to_owned(),
    ))
}
