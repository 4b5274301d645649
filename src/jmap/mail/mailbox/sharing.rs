//! Mailbox sharing on the wire (RFC 9670 `shareWith`, RFC 8621 §2 `myRights`): the JSON of
//! rights and grants, and the rules of Mailbox/set for a grantee.
//!
//! Who may do what:
//! - the owner changes `shareWith` (a grantee may not: administering access stays with the
//!   account's owner); a principal must exist and cannot be the owner;
//! - a grantee creates a child only under a Mailbox granting `mayCreateChild` (never at the
//!   top level), renames or moves one granting `mayRename` (moving also needs `mayCreateChild`
//!   on the new parent), destroys one granting `mayDelete` (with `onDestroyRemoveEmails`, also
//!   `mayRemoveItems`); roles and subscriptions stay the owner's;
//! - a child created under a shared Mailbox inherits the parent's grants unless the owner
//!   gives `shareWith` (IMAP ACL inheritance, RFC 4314 §3.3), so a grantee keeps access to
//!   what they create.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::auth::directory::account_email_in;
use crate::auth::directory::principals::principal;
use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::types::{AccountId, UtcDate};
use crate::mail::mailbox::Mailbox;
use crate::mail::mailbox::tree::Mailboxes;
use crate::mail::sharing::notices;
use crate::mail::sharing::{Rights, SharedView};
use crate::store::commit::read_account_version;
use crate::store::{StoreError, StoreResult, Transaction};

/// RFC 8621 §2 `MailboxRights`: every right, true or false.
pub fn rights_json(rights: Rights) -> Value {
    let mut object = Map::with_capacity(Rights::NAMES.len());
    for (name, right) in Rights::NAMES {
        object.insert(name.to_owned(), Value::Bool(rights.contains(right)));
    }
    Value::Object(object)
}

/// RFC 9670 `shareWith`: principal id → rights (`{}` when shared with nobody, so a client
/// can patch `shareWith/<principalId>` into it).
pub fn share_with_json(mailbox: &Mailbox) -> Value {
    Value::Object(
        mailbox
            .share_with
            .iter()
            .map(|(principal, rights)| {
                (AccountId::new(*principal).to_string(), rights_json(*rights))
            })
            .collect(),
    )
}

/// Parses `shareWith` (null or `{principalId: {right: Boolean}}`); a right left out is false
/// and a principal granted nothing is dropped.
pub fn parse_share_with(value: &Value) -> Result<BTreeMap<u32, Rights>, String> {
    let members = match value {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(members) => members,
        _ => return Err("shareWith must be an object or null".to_owned()),
    };
    let mut grants = BTreeMap::new();
    for (principal, rights) in members {
        let principal_id = AccountId::parse(principal)
            .map_err(|_| format!("{principal:?} is not a principal id"))?
            .number();
        let rights = match rights {
            Value::Null => Rights::NONE,
            Value::Object(rights) => parse_rights(rights)?,
            _ => return Err(format!("the rights of {principal:?} must be an object")),
        };
        if !rights.is_empty() {
            grants.insert(principal_id, rights);
        }
    }
    Ok(grants)
}

fn parse_rights(members: &Map<String, Value>) -> Result<Rights, String> {
    let mut rights = Rights::NONE;
    for (name, value) in members {
        let right = Rights::by_name(name).ok_or_else(|| format!("unknown right {name:?}"))?;
        match value {
            Value::Bool(true) => rights = rights.union(right),
            Value::Bool(false) => {}
            _ => return Err(format!("{name:?} must be a Boolean")),
        }
    }
    Ok(rights)
}

/// The Mailbox as a grantee sees it: their rights, no counts without `mayReadItems`, no
/// grants of others, and their own subscription.
pub fn present(view: &SharedView, id: u64, mut object: Map<String, Value>) -> Map<String, Value> {
    let rights = view.rights(id);
    object.insert("myRights".to_owned(), rights_json(rights));
    // RFC 9670 §1.4: a grantee sees no grants (the owner administers them).
    object.insert("shareWith".to_owned(), Value::Object(Map::new()));
    object.insert("isSubscribed".to_owned(), Value::Bool(view.subscribed(id)));
    if !rights.contains(Rights::READ_ITEMS) {
        for count in super::COUNT_PROPERTIES {
            object.insert(count.to_owned(), Value::from(0));
        }
    }
    object
}

fn forbidden(description: &str) -> SetError {
    SetError::with_description(SetErrorType::Forbidden, description)
}

/// RFC 8621 §2.5 with a grantee's rights: may they create `mailbox`?
pub fn check_create(view: &SharedView, mailbox: &Mailbox) -> Result<(), SetError> {
    let Some(parent_id) = mailbox.parent_id else {
        return Err(forbidden(
            "a shared account's top level is its owner's (mayCreateTopLevelMailbox is false)",
        ));
    };
    if !view.may(parent_id, Rights::CREATE_CHILD) {
        return Err(forbidden(
            "the parent Mailbox does not grant mayCreateChild",
        ));
    }
    if mailbox.role.is_some() {
        return Err(forbidden("roles are set by the account's owner"));
    }
    if !mailbox.share_with.is_empty() {
        return Err(forbidden("only the account's owner changes shareWith"));
    }
    Ok(())
}

/// May a grantee turn `current` into `updated`? A Mailbox they do not see is notFound.
pub fn check_update(
    view: &SharedView,
    id: u64,
    current: &Mailbox,
    updated: &Mailbox,
) -> Result<(), SetError> {
    if !view.shows(id) {
        return Err(SetError::not_found());
    }
    if updated.share_with != current.share_with {
        return Err(forbidden("only the account's owner changes shareWith"));
    }
    if updated.role != current.role {
        return Err(forbidden("roles are set by the account's owner"));
    }
    let renamed = updated.name != current.name || updated.sort_order != current.sort_order;
    let moved = updated.parent_id != current.parent_id;
    if (renamed || moved) && !view.may(id, Rights::RENAME) {
        return Err(forbidden("the Mailbox does not grant mayRename"));
    }
    if moved {
        let Some(parent_id) = updated.parent_id else {
            return Err(forbidden(
                "a shared account's top level is its owner's (mayCreateTopLevelMailbox is false)",
            ));
        };
        if !view.may(parent_id, Rights::CREATE_CHILD) {
            return Err(forbidden("the new parent does not grant mayCreateChild"));
        }
    }
    Ok(())
}

/// May a grantee destroy the Mailbox (and, with `remove_emails`, take its Emails out)?
pub fn check_destroy(view: &SharedView, id: u64, remove_emails: bool) -> Result<(), SetError> {
    if !view.shows(id) {
        return Err(SetError::not_found());
    }
    if !view.may(id, Rights::DELETE) {
        return Err(forbidden("the Mailbox does not grant mayDelete"));
    }
    if remove_emails && !view.may(id, Rights::REMOVE_ITEMS) {
        return Err(forbidden("the Mailbox does not grant mayRemoveItems"));
    }
    Ok(())
}

/// The Mailbox a grantee's update asks for: `patched` is the grantee's view with their patch
/// applied, compared with `shown` (their view before) to see what they changed. Name, parent
/// and sort order apply to the Mailbox (`check_update` decides whether the rights allow it),
/// `isSubscribed` to the grantee's own subscription; roles and grants are refused.
pub fn grantee_patch(
    viewer_id: u32,
    current: &Mailbox,
    shown: &Map<String, Value>,
    patched: &Map<String, Value>,
) -> Result<(Map<String, Value>, BTreeSet<u32>), SetError> {
    let touched = |property: &str| patched.get(property) != shown.get(property);
    if touched("role") || touched("shareWith") {
        return Err(forbidden("roles and grants are set by the account's owner"));
    }
    let mut owner_view = Map::new();
    owner_view.insert("name".into(), json!(current.name));
    owner_view.insert(
        "parentId".into(),
        current
            .parent_id
            .map_or(Value::Null, super::mailbox_id_json),
    );
    owner_view.insert("sortOrder".into(), json!(current.sort_order));
    for property in ["name", "parentId", "sortOrder"] {
        if touched(property)
            && let Some(value) = patched.get(property)
        {
            owner_view.insert(property.into(), value.clone());
        }
    }
    let mut unsubscribed = current.unsubscribed.clone();
    if touched("isSubscribed") {
        match patched.get("isSubscribed") {
            Some(Value::Bool(true)) => {
                unsubscribed.remove(&viewer_id);
            }
            Some(Value::Bool(false)) => {
                unsubscribed.insert(viewer_id);
            }
            _ => {
                return Err(SetError::invalid_properties(
                    ["isSubscribed"],
                    "isSubscribed must be a Boolean",
                ));
            }
        }
    }
    Ok((owner_view, unsubscribed))
}

/// Queues a ShareNotification (RFC 9670 §3) for every individual whose rights in Mailbox
/// `id` change from `before` to `after`, in the owner's commit (`mail::sharing::notices`).
/// Groups get none (RFC 9670 §3: not for changes to a group principal).
pub async fn queue_notices(
    tx: &mut dyn Transaction,
    owner: u32,
    before: &Mailboxes,
    after: &Mailboxes,
    id: u64,
) -> StoreResult<()> {
    let grants = |mailboxes: &Mailboxes| {
        mailboxes
            .get(&id)
            .map(|mailbox| mailbox.share_with.clone())
            .unwrap_or_default()
    };
    let (old, new) = (grants(before), grants(after));
    let Some(mailbox) = after.get(&id).or_else(|| before.get(&id)) else {
        return Ok(());
    };
    let owner_email = account_email_in(tx, owner)
        .await
        .map_err(|error| StoreError::io(error.to_string()))?
        .unwrap_or_default();
    // The commit being made will be the account's next version.
    let version = read_account_version(tx, owner).await? + 1;
    let principals: std::collections::BTreeSet<u32> =
        old.keys().chain(new.keys()).copied().collect();
    for grantee in principals {
        let (was, is) = (old.get(&grantee), new.get(&grantee));
        if was == is {
            continue;
        }
        let is_group = principal(tx, grantee)
            .await?
            .is_none_or(|principal| principal.is_group);
        if is_group {
            continue;
        }
        let notice = json!({
            "created": UtcDate::now().to_string(),
            "changedBy": {
                "name": owner_email,
                "email": owner_email,
                "principalId": AccountId::new(owner).to_string(),
            },
            "objectType": "Mailbox",
            "objectAccountId": AccountId::new(owner).to_string(),
            "objectId": super::mailbox_id_json(id),
            "name": mailbox.name,
            "oldRights": was.map_or(Value::Null, |rights| rights_json(*rights)),
            "newRights": is.map_or(Value::Null, |rights| rights_json(*rights)),
        });
        notices::queue(tx, grantee, owner, version, id, &notice)?;
    }
    Ok(())
}

/// The grants a new child given none starts with: the parent's (RFC 4314 §3.3 inheritance).
pub fn inherited_grants(all: &Mailboxes, parent_id: Option<u64>) -> BTreeMap<u32, Rights> {
    parent_id
        .and_then(|parent_id| all.get(&parent_id))
        .map(|parent| parent.share_with.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn share_with_parses_and_drops_empty_grants() {
        let grants = parse_share_with(&json!({
            "a2": {"mayReadItems": true, "maySetSeen": false},
            "a3": {"mayReadItems": false},
        }))
        .unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[&2], Rights::READ_ITEMS);
        assert!(parse_share_with(&json!({"a2": {"mayAdmin": true}})).is_err());
        assert!(parse_share_with(&json!({"a2": {"mayReadItems": 1}})).is_err());
        assert!(parse_share_with(&json!({"not an id": {}})).is_err());
        assert!(parse_share_with(&json!([])).is_err());
        assert!(parse_share_with(&Value::Null).unwrap().is_empty());
    }

    #[test]
    fn rights_json_names_every_right() {
        let value = rights_json(Rights::READ_ITEMS.union(Rights::SUBMIT));
        assert_eq!(value["mayReadItems"], true);
        assert_eq!(value["maySubmit"], true);
        assert_eq!(value["mayDelete"], false);
        assert_eq!(value.as_object().map(Map::len), Some(9));
    }
}
