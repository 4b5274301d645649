//! Domain quotas (RFC 9425 scope `domain`): one limit over every account of a mail domain.
//!
//! - Each account belongs to the domain of its address (a group's account to its group
//!   address's), recorded on the account (`ACCT_QUOTA, 0x04`) when it is created, or by the
//!   start-up upgrade for older accounts ([`join`]).
//! - The domain's usage is two atomic-add counters moved in the same transaction as the
//!   account's own (`mail::quota`), so it is exact like them: the sum of its accounts' usage.
//!   Deleting an account takes its usage off ([`leave`]).
//! - Readers of the domain counters use [`Transaction::get_unconflicted`]: thousands of
//!   accounts of one domain import at once, and an ordinary read would make every one of
//!   their transactions conflict with every other's adds. The hard-limit check may therefore
//!   let a domain overshoot by what is in flight at that instant (a few messages), the
//!   price of not serializing a whole domain's deliveries; the account's own limit is exact.
//! - Limits are set by `tern domain quota` and stored per domain; without them a domain has no
//!   Quota objects and costs one read per check.

use super::{Limits, Overrides, Resource, Usage};
use crate::store::keys::{self, ACCT_QUOTA, DIR_DOMAIN_QUOTA, KeyBuilder, SUBSPACE_DIRECTORY};
use crate::store::{StoreError, StoreResult, Transaction};

/// `..., ACCT_QUOTA, 0x04` → the domain (UTF-8) whose quota counts the account.
pub(super) fn account_domain_key(account_id: u32) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_QUOTA)
        .u8(0x04)
        .build()
}

fn domain_prefix(domain: &str) -> KeyBuilder {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_DOMAIN_QUOTA)
        .str(domain)
}

/// `DIRECTORY, DIR_DOMAIN_QUOTA, domain, 0x00, resource` → i64 LE (atomic add).
pub(super) fn used_key(domain: &str, resource: Resource) -> Vec<u8> {
    domain_prefix(domain).u8(0x00).u8(resource as u8).build()
}

/// `DIRECTORY, DIR_DOMAIN_QUOTA, domain, 0x01` → the domain's limits (`Limits` encoding).
fn limits_key(domain: &str) -> Vec<u8> {
    domain_prefix(domain).u8(0x01).build()
}

/// `DIRECTORY, DIR_DOMAIN_QUOTA, domain, 0x02, resource` → (): a warning for crossing the
/// domain's `warnLimit` was queued (cleared when usage falls back under it).
pub(super) fn warned_key(domain: &str, resource: Resource) -> Vec<u8> {
    domain_prefix(domain).u8(0x02).u8(resource as u8).build()
}

/// The domain of a login address, as the directory stores domains (lowercase, no root dot).
pub fn domain_of_address(email: &str) -> Option<String> {
    let (_, domain) = email.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// The domain an account's usage counts towards, if any.
pub async fn domain_of(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Option<String>> {
    match tx.get(&account_domain_key(account_id)).await? {
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| StoreError::corrupt("an account's quota domain is not UTF-8")),
        None => Ok(None),
    }
}

/// The domain's limits; `None`: the domain has none.
pub async fn limits(tx: &mut dyn Transaction, domain: &str) -> StoreResult<Option<Limits>> {
    match tx.get(&limits_key(domain)).await? {
        Some(bytes) => Limits::decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// What the domain's accounts use together (read without a conflict; see the module docs).
pub async fn usage(tx: &mut dyn Transaction, domain: &str) -> StoreResult<Usage> {
    Ok(Usage {
        octets: used(tx, domain, Resource::Octets).await?,
        count: used(tx, domain, Resource::Count).await?,
    })
}

async fn used(tx: &mut dyn Transaction, domain: &str, resource: Resource) -> StoreResult<u64> {
    let bytes = tx.get_unconflicted(&used_key(domain, resource)).await?;
    Ok(bytes.map_or(0, |bytes| keys::le_i64(&bytes).max(0) as u64))
}

/// Counts `account_id` (and what it already uses) in `domain`, inside the transaction that
/// creates the account or, for accounts from before domain quotas, the start-up upgrade.
/// Does nothing if the account already belongs to a domain: replaying it adds nothing twice.
pub async fn join(tx: &mut dyn Transaction, account_id: u32, domain: &str) -> StoreResult<bool> {
    let key = account_domain_key(account_id);
    if tx.get(&key).await?.is_some() {
        return Ok(false);
    }
    tx.set(&key, domain.as_bytes())?;
    let own = super::usage(tx, account_id).await?;
    for resource in Resource::ALL {
        let delta = i64::try_from(own.of(resource)).unwrap_or(i64::MAX);
        if delta != 0 {
            tx.atomic_add(&used_key(domain, resource), delta)?;
        }
    }
    Ok(true)
}

/// Takes a deleted account's usage off its domain (in the deleting transaction; the purge
/// that follows removes the data without moving counters).
pub async fn leave(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<()> {
    let Some(domain) = domain_of(tx, account_id).await? else {
        return Ok(());
    };
    let own = super::usage(tx, account_id).await?;
    for resource in Resource::ALL {
        let delta = i64::try_from(own.of(resource)).unwrap_or(i64::MAX);
        if delta != 0 {
            tx.atomic_add(&used_key(&domain, resource), -delta)?;
        }
    }
    tx.clear(&account_domain_key(account_id))
}

/// Applies a change to the domain's limits (`tern domain quota`): like an account's, each
/// field given replaces the current value, `Some(0)` removes that limit, `reset` removes all.
/// Answers the limits now in force (`None`: none).
pub async fn change_limits(
    tx: &mut dyn Transaction,
    domain: &str,
    change: &super::LimitsChange,
) -> StoreResult<Option<Limits>> {
    let current = limits(tx, domain).await?;
    let next = if change.reset {
        None
    } else {
        let base = current.map(Overrides::fixed).unwrap_or(Overrides {
            storage: Some(None),
            messages: Some(None),
            warn_percent: None,
        });
        let pick = |given: Option<u64>, current: Option<Option<u64>>| match given {
            Some(0) => Some(None),
            Some(limit) => Some(Some(limit)),
            None => current,
        };
        let limits = Overrides {
            storage: pick(change.storage, base.storage),
            messages: pick(change.messages, base.messages),
            warn_percent: change.warn_percent.or(base.warn_percent),
        }
        .apply(Limits::default());
        (!limits.is_unlimited()).then_some(limits)
    };
    match next {
        Some(limits) => tx.set(&limits_key(domain), &limits.encode())?,
        None => tx.clear(&limits_key(domain))?,
    }
    // The warnings re-arm against the new limits.
    for resource in Resource::ALL {
        tx.clear(&warned_key(domain, resource))?;
    }
    Ok(next)
}
