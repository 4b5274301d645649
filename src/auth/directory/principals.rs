//! Principals (RFC 9670 §2): every account of the directory is one — an individual with a
//! login, or a group (`groups.rs`) whose members share what is shared with it. The directory
//! keeps a change log of them so Principal/changes is exact:
//! - `DIR_PRINCIPAL_VERSION` → u64 BE, bumped by every change of a principal;
//! - `DIR_PRINCIPAL_CHANGES, version: u64` → records of (kind u8: 1 created, 2 updated,
//!   3 destroyed; principal id u64 BE), written in the transaction of the change.
//!
//! The log keeps the last [`LOG_KEPT`] versions; older states answer `cannotCalculateChanges`.

use std::collections::BTreeMap;

use super::{AccountRecord, decode_account};
use crate::store::keys::{
    DIR_ACCOUNT, DIR_GROUP_MEMBER, DIR_PRINCIPAL_CHANGES, DIR_PRINCIPAL_VERSION, KeyBuilder,
    SUBSPACE_DIRECTORY, be_u64,
};
use crate::store::{KeyRange, RangeOptions, StoreError, StoreResult, Transaction};

/// How many principal changes stay answerable by Principal/changes.
pub const LOG_KEPT: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalChange {
    Created = 1,
    Updated = 2,
    Destroyed = 3,
}

/// A principal as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalInfo {
    pub id: u32,
    pub email: String,
    /// The display name: a group's name, else the address.
    pub name: String,
    pub is_group: bool,
    /// A group's members (individual principal ids).
    pub members: Vec<u32>,
}

impl PrincipalInfo {
    fn from_record(record: &AccountRecord) -> PrincipalInfo {
        PrincipalInfo {
            id: record.account_id,
            email: record.email.clone(),
            name: record
                .group
                .as_ref()
                .map_or_else(|| record.email.clone(), |group| group.name.clone()),
            is_group: record.group.is_some(),
            members: record
                .group
                .as_ref()
                .map(|group| group.members.clone())
                .unwrap_or_default(),
        }
    }
}

fn version_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_PRINCIPAL_VERSION)
        .build()
}

fn change_key(version: u64) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_PRINCIPAL_CHANGES)
        .u64(version)
        .build()
}

/// The current principal state (0: nothing ever changed).
pub async fn principals_version(tx: &mut dyn Transaction) -> StoreResult<u64> {
    Ok(tx
        .get(&version_key())
        .await?
        .and_then(|bytes| be_u64(&bytes))
        .unwrap_or(0))
}

/// Records a change of `principal_id` in the caller's transaction.
pub async fn log_change(
    tx: &mut dyn Transaction,
    change: PrincipalChange,
    principal_id: u32,
) -> StoreResult<()> {
    let next = principals_version(tx).await? + 1;
    tx.set(&version_key(), &next.to_be_bytes())?;
    let mut record = Vec::with_capacity(9);
    record.push(change as u8);
    record.extend_from_slice(&u64::from(principal_id).to_be_bytes());
    tx.set(&change_key(next), &record)?;
    if next > LOG_KEPT {
        tx.clear(&change_key(next - LOG_KEPT))?;
    }
    Ok(())
}

/// What changed since `since`, collapsed per principal (RFC 8620 §5.2: an id in one list);
/// `None` when `since` is in the future or before what the log keeps.
pub async fn changes_since(
    tx: &mut dyn Transaction,
    since: u64,
) -> StoreResult<Option<(u64, BTreeMap<u32, PrincipalChange>)>> {
    let current = principals_version(tx).await?;
    if since > current || current - since > LOG_KEPT.saturating_sub(1) {
        return Ok(None);
    }
    let range = KeyRange {
        begin: change_key(since + 1),
        end: change_key(current + 1),
    };
    let mut net: BTreeMap<u32, PrincipalChange> = BTreeMap::new();
    for (_, value) in tx.get_range(&range, RangeOptions::default()).await? {
        let (Some(&kind), Some(id)) = (value.first(), value.get(1..).and_then(be_u64)) else {
            return Err(StoreError::corrupt("malformed principal change record"));
        };
        let id = u32::try_from(id).map_err(|_| StoreError::corrupt("principal id"))?;
        let kind = match kind {
            1 => PrincipalChange::Created,
            2 => PrincipalChange::Updated,
            _ => PrincipalChange::Destroyed,
        };
        let merged = match (net.get(&id), kind) {
            (Some(PrincipalChange::Created), PrincipalChange::Updated) => PrincipalChange::Created,
            (_, kind) => kind,
        };
        net.insert(id, merged);
    }
    Ok(Some((current, net)))
}

/// Every principal, by id.
pub async fn all_principals(tx: &mut dyn Transaction) -> StoreResult<Vec<PrincipalInfo>> {
    let prefix = KeyBuilder::new(SUBSPACE_DIRECTORY).u8(DIR_ACCOUNT).build();
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    pairs
        .iter()
        .map(|(_, value)| decode_account(value).map(|record| PrincipalInfo::from_record(&record)))
        .collect()
}

/// One principal.
pub async fn principal(tx: &mut dyn Transaction, id: u32) -> StoreResult<Option<PrincipalInfo>> {
    let key = KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_ACCOUNT)
        .u32(id)
        .build();
    match tx.get(&key).await? {
        Some(bytes) => Ok(Some(PrincipalInfo::from_record(&decode_account(&bytes)?))),
        None => Ok(None),
    }
}

fn member_prefix(member: u32) -> KeyBuilder {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_GROUP_MEMBER)
        .u32(member)
}

pub(super) fn member_key(member: u32, group: u32) -> Vec<u8> {
    member_prefix(member).u32(group).build()
}

/// The groups `member` belongs to.
pub async fn groups_of(tx: &mut dyn Transaction, member: u32) -> StoreResult<Vec<u32>> {
    let prefix = member_prefix(member).build();
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    Ok(pairs
        .iter()
        .filter_map(|(key, _)| {
            key.get(prefix.len()..)
                .and_then(|suffix| <[u8; 4]>::try_from(suffix).ok())
                .map(u32::from_be_bytes)
        })
        .collect())
}
