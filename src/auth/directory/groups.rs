//! Groups (`tern group create|add|remove`): a group is a principal with an address and an
//! account of its own (a team inbox), no login, and members. What is shared with a group is
//! shared with each member (`mail::sharing::Viewer::groups`), and a member has every right
//! in the group's own account.
//!
//! `DIR_GROUP_MEMBER, member, group` → () indexes the membership for the per-request lookup;
//! the group's record lists its members for display. Both change in one transaction, with the
//! principal change log (`principals.rs`).

use serde::{Deserialize, Serialize};

use super::principals::{PrincipalChange, log_change, member_key};
use super::{
    AccountInfo, Directory, DirectoryError, DirectoryErrorKind, Email, account_key, decode_account,
    decode_account_id, email_key, encode,
};
use crate::store::StoreError;

/// What a group's account record holds besides the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRecord {
    pub name: String,
    #[serde(default)]
    pub members: Vec<u32>,
}

/// A password hash nothing verifies against: groups have no login.
pub const NO_LOGIN: &str = "!group";

/// How many members one group may have (its record is read on every membership change).
pub const MAX_GROUP_MEMBERS: usize = 10_000;

impl Directory {
    /// Creates a group with address `email` and display name `name`.
    pub async fn create_group(
        &self,
        email: &str,
        name: &str,
    ) -> Result<AccountInfo, DirectoryError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            return Err(DirectoryError::new(
                DirectoryErrorKind::InvalidEmail,
                "a group name is 1 to 255 printable characters",
            ));
        }
        let group = GroupRecord {
            name: name.to_owned(),
            members: Vec::new(),
        };
        self.create_account_record(email, NO_LOGIN.to_owned(), Some(group))
            .await
    }

    /// Adds `member_email` to the group `group_email`; adding a member twice is harmless.
    pub async fn add_group_member(
        &self,
        group_email: &str,
        member_email: &str,
    ) -> Result<(), DirectoryError> {
        self.change_membership(group_email, member_email, true)
            .await
    }

    /// Removes `member_email` from the group; the member loses what was shared with the group
    /// at once (the next request reads the membership).
    pub async fn remove_group_member(
        &self,
        group_email: &str,
        member_email: &str,
    ) -> Result<(), DirectoryError> {
        self.change_membership(group_email, member_email, false)
            .await
    }

    async fn change_membership(
        &self,
        group_email: &str,
        member_email: &str,
        join: bool,
    ) -> Result<(), DirectoryError> {
        let group_email = Email::parse(group_email)?;
        let member_email = Email::parse(member_email)?;
        let outcome = self
            .store
            .transact(|tx| {
                let group_key = email_key(&group_email);
                let member_key_by_email = email_key(&member_email);
                Box::pin(async move {
                    let (Some(group_id), Some(member_id)) = (
                        tx.get(&group_key).await?,
                        tx.get(&member_key_by_email).await?,
                    ) else {
                        return Ok(Err("no such group or member"));
                    };
                    let group_id = decode_account_id(&group_id)?;
                    let member_id = decode_account_id(&member_id)?;
                    let key = account_key(group_id);
                    let Some(bytes) = tx.get(&key).await? else {
                        return Err(StoreError::corrupt("email index points at missing account"));
                    };
                    let mut record = decode_account(&bytes)?;
                    let member = tx.get(&account_key(member_id)).await?;
                    let member_is_group = match member {
                        Some(bytes) => decode_account(&bytes)?.group.is_some(),
                        None => return Ok(Err("no such member")),
                    };
                    let Some(group) = record.group.as_mut() else {
                        return Ok(Err("not a group"));
                    };
                    if member_is_group {
                        return Ok(Err("groups hold individuals, not groups"));
                    }
                    let present = group.members.contains(&member_id);
                    if join == present {
                        return Ok(Ok(()));
                    }
                    if join {
                        if group.members.len() >= MAX_GROUP_MEMBERS {
                            return Ok(Err("the group is full"));
                        }
                        group.members.push(member_id);
                        group.members.sort_unstable();
                        tx.set(&member_key(member_id, group_id), &[])?;
                    } else {
                        group.members.retain(|id| *id != member_id);
                        tx.clear(&member_key(member_id, group_id))?;
                    }
                    tx.set(&key, &encode(&record)?)?;
                    log_change(tx, PrincipalChange::Updated, group_id).await?;
                    Ok(Ok(()))
                })
            })
            .await?;
        outcome.map_err(|reason| {
            DirectoryError::new(
                DirectoryErrorKind::UnknownAccount,
                format!("{group_email} / {member_email}: {reason}"),
            )
        })
    }
}
