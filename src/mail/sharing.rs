//! Shared Mailboxes (RFC 9670 sharing applied to RFC 8621 §2 rights): who may see and do
//! what in someone else's account.
//!
//! The model (see `schema/sharing.md`):
//! - a Mailbox holds its grants (`Mailbox::share_with`: principal id → [`Rights`]), written by
//!   the owner's Mailbox/set in the owner's `commit_account`, so a grant and the data it guards
//!   change in one transaction;
//! - `DIR_SHARED_WITH, grantee, owner` → () says "the owner shares something with the grantee";
//!   kept in step with the grants in the same transaction ([`sync_index`]), it is what the
//!   grantee's session lists and what authorizes a request to name the owner's account;
//! - a grantee's view of the account ([`SharedView`]) is computed from the Mailboxes, read in
//!   the snapshot of the method that uses it: the Mailboxes granted to the grantee (directly or
//!   through a group) and, with no rights of their own, their ancestors (so the tree stays a
//!   tree). An Email is visible when one of its Mailboxes grants `mayReadItems` (RFC 8621 §2).
//! - `ACCT_SHARING_VERSION` is the account version of the last commit that changed a grant:
//!   a grantee's Email or Thread /changes from before it cannot be computed from the change log
//!   (Emails appeared or vanished without changing), so it answers `cannotCalculateChanges` and
//!   the client resynchronizes — a revocation becomes a removal.

pub mod notices;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::mailbox::Mailbox;
use super::mailbox::tree::{Mailboxes, ancestors};
use crate::store::commit::{DataType, read_account_version};
use crate::store::keys::KeyBuilder;
use crate::store::keys::{
    ACCT_SHARING_VERSION, DIR_SHARED_WITH, SUBSPACE_DIRECTORY, account_prefix, be_u64,
};
use crate::store::{KeyRange, RangeOptions, StoreResult, Transaction};

/// The RFC 8621 §2 `MailboxRights`, as bits. The owner of an account has all of them (the inbox
/// excepted for `mayDelete`); a grantee has the ones granted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rights(u16);

impl Rights {
    pub const NONE: Rights = Rights(0);
    pub const READ_ITEMS: Rights = Rights(1 << 0);
    pub const ADD_ITEMS: Rights = Rights(1 << 1);
    pub const REMOVE_ITEMS: Rights = Rights(1 << 2);
    pub const SET_SEEN: Rights = Rights(1 << 3);
    pub const SET_KEYWORDS: Rights = Rights(1 << 4);
    pub const CREATE_CHILD: Rights = Rights(1 << 5);
    pub const RENAME: Rights = Rights(1 << 6);
    pub const DELETE: Rights = Rights(1 << 7);
    pub const SUBMIT: Rights = Rights(1 << 8);
    pub const ALL: Rights = Rights((1 << 9) - 1);

    /// The JMAP names of the rights, in RFC 8621 §2 order.
    pub const NAMES: [(&'static str, Rights); 9] = [
        ("mayReadItems", Rights::READ_ITEMS),
        ("mayAddItems", Rights::ADD_ITEMS),
        ("mayRemoveItems", Rights::REMOVE_ITEMS),
        ("maySetSeen", Rights::SET_SEEN),
        ("maySetKeywords", Rights::SET_KEYWORDS),
        ("mayCreateChild", Rights::CREATE_CHILD),
        ("mayRename", Rights::RENAME),
        ("mayDelete", Rights::DELETE),
        ("maySubmit", Rights::SUBMIT),
    ];

    pub fn from_bits(bits: u16) -> Rights {
        Rights(bits & Rights::ALL.0)
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    pub fn without(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }

    pub fn by_name(name: &str) -> Option<Rights> {
        Rights::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, right)| *right)
    }
}

/// Who is looking: the authenticated user and the groups they belong to. Grants to any of
/// these ids apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub principal_id: u32,
    pub groups: Vec<u32>,
}

impl Viewer {
    pub fn individual(principal_id: u32) -> Viewer {
        Viewer {
            principal_id,
            groups: Vec::new(),
        }
    }

    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.principal_id).chain(self.groups.iter().copied())
    }

    /// The union of the grants of `mailbox` to this viewer.
    pub fn rights_in(&self, mailbox: &Mailbox) -> Rights {
        self.ids()
            .filter_map(|id| mailbox.share_with.get(&id))
            .fold(Rights::NONE, |all, rights| all.union(*rights))
    }
}

/// What a grantee sees of a shared account: the visible Mailboxes and the rights in each
/// (`Rights::NONE` for an ancestor shown only to keep the tree whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedView {
    rights: BTreeMap<u64, Rights>,
    /// The shown Mailboxes the viewer unsubscribed from (RFC 9670 §1.3).
    unsubscribed: BTreeSet<u64>,
    /// The viewer is a member of the group whose account this is: they see all of it.
    member: bool,
}

impl SharedView {
    /// The view of `viewer` over `mailboxes`; empty when nothing is shared with them.
    pub fn of(mailboxes: &Mailboxes, viewer: &Viewer) -> SharedView {
        let mut rights = BTreeMap::new();
        for (&mailbox_id, mailbox) in mailboxes {
            let granted = viewer.rights_in(mailbox);
            if granted.is_empty() {
                continue;
            }
            rights.insert(mailbox_id, granted);
            for ancestor in ancestors(mailboxes, mailbox_id) {
                rights.entry(ancestor).or_insert(Rights::NONE);
            }
        }
        SharedView {
            rights,
            member: false,
            unsubscribed: unsubscribed_by(mailboxes, viewer),
        }
    }

    /// RFC 9670 §1.3: whether the viewer is subscribed to the shown Mailbox.
    pub fn subscribed(&self, mailbox_id: u64) -> bool {
        self.shows(mailbox_id) && !self.unsubscribed.contains(&mailbox_id)
    }

    /// Whether the viewer is subscribed to anything they were granted: only then does the
    /// account appear in their session and push (RFC 9670 §1.3 MUST).
    pub fn any_subscribed(&self) -> bool {
        self.rights.iter().any(|(mailbox_id, rights)| {
            !rights.is_empty() && !self.unsubscribed.contains(mailbox_id)
        })
    }

    /// The view of `viewer` over the Mailboxes of `account_id`: a member of the group that
    /// owns the account holds every right in all of them, others what is granted.
    pub fn of_account(account_id: u32, mailboxes: &Mailboxes, viewer: &Viewer) -> SharedView {
        let mut view = if viewer.groups.contains(&account_id) {
            SharedView {
                rights: mailboxes
                    .keys()
                    .map(|mailbox_id| (*mailbox_id, Rights::ALL))
                    .collect(),
                unsubscribed: BTreeSet::new(),
                member: true,
            }
        } else {
            SharedView::of(mailboxes, viewer)
        };
        view.unsubscribed = unsubscribed_by(mailboxes, viewer);
        view
    }

    pub fn is_empty(&self) -> bool {
        self.rights.is_empty()
    }

    /// Whether the viewer sees the whole account (a member of its group).
    pub fn is_member(&self) -> bool {
        self.member
    }

    /// Whether the Mailbox is visible (granted, or the ancestor of one that is).
    pub fn shows(&self, mailbox_id: u64) -> bool {
        self.rights.contains_key(&mailbox_id)
    }

    pub fn rights(&self, mailbox_id: u64) -> Rights {
        self.rights
            .get(&mailbox_id)
            .copied()
            .unwrap_or(Rights::NONE)
    }

    /// Whether the viewer holds `right` in the Mailbox.
    pub fn may(&self, mailbox_id: u64, right: Rights) -> bool {
        self.rights(mailbox_id).contains(right)
    }

    /// The Mailboxes whose Emails the viewer may read (RFC 8621 §2 `mayReadItems`).
    pub fn readable(&self) -> impl Iterator<Item = u64> + '_ {
        self.rights
            .iter()
            .filter(|(_, rights)| rights.contains(Rights::READ_ITEMS))
            .map(|(&mailbox_id, _)| mailbox_id)
    }

    /// RFC 8621 §2: an Email may be fetched when it is in at least one Mailbox with
    /// `mayReadItems`.
    pub fn shows_email<'a>(&self, mailbox_ids: impl IntoIterator<Item = &'a u64>) -> bool {
        mailbox_ids
            .into_iter()
            .any(|mailbox_id| self.may(*mailbox_id, Rights::READ_ITEMS))
    }

    /// Whether the viewer holds `right` in every one of `mailbox_ids` (RFC 8621 §2: `$seen`
    /// and other keywords change only with the right in all of an Email's Mailboxes).
    pub fn may_in_all<'a>(
        &self,
        mailbox_ids: impl IntoIterator<Item = &'a u64>,
        right: Rights,
    ) -> bool {
        mailbox_ids
            .into_iter()
            .all(|mailbox_id| self.may(*mailbox_id, right))
    }

    /// Whether a Mailbox grants the viewer `maySubmit` (RFC 8621 §2): they may send with the
    /// owner's Identities.
    pub fn may_submit_somewhere(&self) -> bool {
        self.rights
            .values()
            .any(|rights| rights.contains(Rights::SUBMIT))
    }

    /// Whether every Mailbox of `all` is readable: then the viewer sees every Email and a
    /// query needs no restriction.
    pub fn reads_everything(&self, all: &Mailboxes) -> bool {
        all.keys()
            .all(|mailbox_id| self.may(*mailbox_id, Rights::READ_ITEMS))
    }
}

/// The view `viewer` has of `account_id`, read in this snapshot; `None` when the viewer owns
/// the account (and sees everything).
pub async fn view_in(
    tx: &mut dyn Transaction,
    account_id: u32,
    viewer: &Viewer,
) -> StoreResult<Option<SharedView>> {
    if viewer.principal_id == account_id {
        return Ok(None);
    }
    let mailboxes = super::mailbox::load_all(tx, account_id).await?;
    Ok(Some(SharedView::of_account(account_id, &mailboxes, viewer)))
}

/// Whether the grantee sees the Email (it exists and one of its Mailboxes is readable).
pub async fn email_visible(
    tx: &mut dyn Transaction,
    account_id: u32,
    view: &SharedView,
    email_id: u64,
) -> StoreResult<bool> {
    Ok(super::store::load_record(tx, account_id, email_id)
        .await?
        .is_some_and(|record| view.shows_email(&record.mailbox_ids)))
}

/// The Emails of a thread the grantee sees, in thread order (RFC 8621 §3: a Thread of a
/// shared account holds only its visible Emails).
pub async fn visible_thread_emails(
    tx: &mut dyn Transaction,
    account_id: u32,
    view: &SharedView,
    thread_id: u64,
) -> StoreResult<Vec<u64>> {
    let Some(thread) = super::store::load_thread(tx, account_id, thread_id).await? else {
        return Ok(Vec::new());
    };
    let mut visible = Vec::new();
    for email_id in thread.email_ids() {
        if email_visible(tx, account_id, view, email_id).await? {
            visible.push(email_id);
        }
    }
    Ok(visible)
}

/// Whether the grantee sees the object of `data_type` now: the one table of what a grant
/// shows, for every type a grant covers (`MethodEntry::on_shared_accounts`).
pub async fn object_visible(
    tx: &mut dyn Transaction,
    account_id: u32,
    view: &SharedView,
    data_type: DataType,
    id: u64,
) -> StoreResult<bool> {
    match data_type {
        DataType::Mailbox => Ok(view.shows(id)),
        DataType::Email => email_visible(tx, account_id, view, id).await,
        DataType::Thread => Ok(!visible_thread_emails(tx, account_id, view, id)
            .await?
            .is_empty()),
        // RFC 8621 §2 maySubmit: the owner's Identities serve a grantee who may send.
        DataType::Identity => Ok(view.may_submit_somewhere()),
        // A grantee's view of the account's submissions: those of Emails they see.
        DataType::EmailSubmission => match super::submission::load(tx, account_id, id).await? {
            Some(record) if view.may_submit_somewhere() => {
                email_visible(tx, account_id, view, record.email_id).await
            }
            _ => Ok(false),
        },
        // Whole-account figures: a group's members only (`SharedAccess::GroupMembers`).
        DataType::Quota => Ok(view.is_member()),
        _ => Ok(false),
    }
}

fn unsubscribed_by(mailboxes: &Mailboxes, viewer: &Viewer) -> BTreeSet<u64> {
    mailboxes
        .iter()
        .filter(|(_, mailbox)| mailbox.unsubscribed.contains(&viewer.principal_id))
        .map(|(mailbox_id, _)| *mailbox_id)
        .collect()
}

/// Whom an account's Mailboxes are shared with.
pub fn grantees(mailboxes: &Mailboxes) -> BTreeSet<u32> {
    mailboxes
        .values()
        .flat_map(|mailbox| mailbox.share_with.keys().copied())
        .collect()
}

fn shared_with_prefix(grantee: u32) -> KeyBuilder {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_SHARED_WITH)
        .u32(grantee)
}

fn shared_with_key(grantee: u32, owner: u32) -> Vec<u8> {
    shared_with_prefix(grantee).u32(owner).build()
}

fn sharing_version_key(account_id: u32) -> Vec<u8> {
    account_prefix(account_id).u8(ACCT_SHARING_VERSION).build()
}

/// Keeps the grantee index and the sharing version in step with a change of the account's
/// grants, in the transaction of that change. `before` and `after` are every Mailbox of the
/// account around the change.
pub async fn sync_index(
    tx: &mut dyn Transaction,
    owner: u32,
    before: &Mailboxes,
    after: &Mailboxes,
) -> StoreResult<()> {
    let old = grantees(before);
    let new = grantees(after);
    for gone in old.difference(&new) {
        tx.clear(&shared_with_key(*gone, owner))?;
    }
    for added in new.difference(&old) {
        tx.set(&shared_with_key(*added, owner), &[])?;
    }
    // The commit being made will be the account's next version.
    let next = read_account_version(tx, owner).await? + 1;
    tx.set(&sharing_version_key(owner), &next.to_be_bytes())
}

/// The account version of the last change of a grant (0: never).
pub async fn sharing_version(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<u64> {
    Ok(match tx.get(&sharing_version_key(account_id)).await? {
        Some(bytes) => be_u64(&bytes).unwrap_or(0),
        None => 0,
    })
}

/// An account that shares something with the viewer, and the version of its last grant
/// change (the session state moves with it: rights decide `isReadOnly`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedAccount {
    pub account_id: u32,
    pub sharing_version: u64,
}

/// The accounts that share something with any of the viewer's ids, without the viewer's own.
pub async fn shared_accounts(
    tx: &mut dyn Transaction,
    viewer: &Viewer,
) -> StoreResult<Vec<SharedAccount>> {
    let mut owners = BTreeSet::new();
    for id in viewer.ids() {
        let prefix = shared_with_prefix(id).build();
        let pairs = tx
            .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
            .await?;
        for (key, _) in pairs {
            if let Some(owner) = key
                .get(prefix.len()..)
                .and_then(|suffix| <[u8; 4]>::try_from(suffix).ok())
            {
                owners.insert(u32::from_be_bytes(owner));
            }
        }
    }
    // The accounts of the viewer's groups (team inboxes).
    owners.extend(viewer.groups.iter().copied());
    owners.remove(&viewer.principal_id);
    let mut shared = Vec::with_capacity(owners.len());
    for account_id in owners {
        shared.push(SharedAccount {
            account_id,
            sharing_version: sharing_version(tx, account_id).await?,
        });
    }
    Ok(shared)
}

/// Forgets every index entry of a deleted account, as owner and as grantee.
pub async fn forget_account(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailboxes: &Mailboxes,
) -> StoreResult<()> {
    for grantee in grantees(mailboxes) {
        tx.clear(&shared_with_key(grantee, account_id))?;
    }
    tx.clear_range(&KeyRange::prefix(&shared_with_prefix(account_id).build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(parent_id: Option<u64>, grants: &[(u32, Rights)]) -> Mailbox {
        Mailbox {
            name: "m".to_owned(),
            parent_id,
            role: None,
            sort_order: 0,
            is_subscribed: true,
            share_with: grants.iter().copied().collect(),
            unsubscribed: Default::default(),
        }
    }

    #[test]
    fn a_grant_shows_the_mailbox_and_its_ancestors_without_rights() {
        let mut mailboxes = Mailboxes::new();
        mailboxes.insert(1, mailbox(None, &[]));
        mailboxes.insert(2, mailbox(Some(1), &[(7, Rights::READ_ITEMS)]));
        mailboxes.insert(3, mailbox(None, &[]));
        let view = SharedView::of(&mailboxes, &Viewer::individual(7));
        assert!(view.shows(1) && view.shows(2) && !view.shows(3));
        assert_eq!(view.rights(1), Rights::NONE);
        assert_eq!(view.readable().collect::<Vec<_>>(), vec![2]);
        assert!(view.shows_email(&[2, 3]));
        assert!(!view.shows_email(&[1, 3]));
        assert!(!view.reads_everything(&mailboxes));
        assert!(SharedView::of(&mailboxes, &Viewer::individual(8)).is_empty());
    }

    #[test]
    fn group_grants_add_up() {
        let mut mailboxes = Mailboxes::new();
        mailboxes.insert(
            1,
            mailbox(None, &[(7, Rights::READ_ITEMS), (50, Rights::ADD_ITEMS)]),
        );
        let viewer = Viewer {
            principal_id: 7,
            groups: vec![50],
        };
        let view = SharedView::of(&mailboxes, &viewer);
        assert_eq!(view.rights(1), Rights::READ_ITEMS.union(Rights::ADD_ITEMS));
        assert!(view.may_in_all(&[1], Rights::ADD_ITEMS));
        assert!(!view.may_in_all(&[1, 2], Rights::ADD_ITEMS));
    }

    #[test]
    fn rights_names_round_trip() {
        for (name, right) in Rights::NAMES {
            assert_eq!(Rights::by_name(name), Some(right));
        }
        assert_eq!(Rights::from_bits(u16::MAX), Rights::ALL);
        assert_eq!(Rights::by_name("mayAdmin"), None);
    }
}
