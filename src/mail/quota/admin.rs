//! Operating quotas: `tern account quota` (and its admin endpoint), the `[quota]`
//! configuration, and sizes as operators write them.

use super::{Limits, Overrides, limits, own_overrides, set_own_limits, usage};
use crate::store::commit::DataType;
use crate::store::{StoreError, StoreResult, Transaction};

/// A change of one account's limits (`tern account quota`): `None` keeps the current value,
/// `Some(0)` is "no limit"; `reset` drops the account's own limits (back to the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LimitsChange {
    pub reset: bool,
    pub storage: Option<u64>,
    pub messages: Option<u64>,
    pub warn_percent: Option<u8>,
}

impl LimitsChange {
    pub fn is_empty(&self) -> bool {
        *self == LimitsChange::default()
    }
}

/// An account's quota as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaReport {
    /// 0: no limit.
    pub storage_limit: u64,
    pub message_limit: u64,
    pub warn_percent: u8,
    /// The account has limits of its own (else the defaults apply).
    pub own: bool,
    pub used_octets: u64,
    pub used_messages: u64,
}

impl std::fmt::Display for QuotaReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit = |value: u64| match value {
            0 => "no limit".to_owned(),
            value => value.to_string(),
        };
        write!(
            f,
            "storage: {} of {} octets\nmessages: {} of {}\nwarning at {}%{}",
            self.used_octets,
            limit(self.storage_limit),
            self.used_messages,
            limit(self.message_limit),
            self.warn_percent,
            if self.own { "" } else { " (server defaults)" }
        )
    }
}

async fn report_in(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<QuotaReport> {
    let own = own_overrides(tx, account_id).await?.is_some();
    let limits = limits(tx, account_id).await?;
    let usage = usage(tx, account_id).await?;
    Ok(QuotaReport {
        storage_limit: limits.storage.unwrap_or(0),
        message_limit: limits.messages.unwrap_or(0),
        warn_percent: limits.warn_percent,
        own,
        used_octets: usage.octets,
        used_messages: usage.count,
    })
}

/// The account's limits and usage.
pub async fn report(store: &crate::store::Store, account_id: u32) -> StoreResult<QuotaReport> {
    store
        .read(move |tx| Box::pin(report_in(tx, account_id)))
        .await
}

/// Applies `change` to the account's limits in one `commit_account` (Quota state moves and is
/// pushed); answers the result.
pub async fn change_limits(
    store: &crate::store::Store,
    account_id: u32,
    change: LimitsChange,
) -> StoreResult<QuotaReport> {
    if change.warn_percent.is_some_and(|percent| percent > 100) {
        return Err(StoreError::new(
            crate::store::StoreErrorKind::Io,
            "the warning percentage must be 0 to 100",
        ));
    }
    let committed = crate::store::commit::commit_account(store, account_id, |tx, changes| {
        let change = change.clone();
        Box::pin(async move {
            let own = if change.reset {
                None
            } else {
                let current = own_overrides(tx, account_id).await?.unwrap_or_default();
                let pick = |given: Option<u64>, current: Option<Option<u64>>| match given {
                    Some(0) => Some(None),
                    Some(limit) => Some(Some(limit)),
                    None => current,
                };
                Some(Overrides {
                    storage: pick(change.storage, current.storage),
                    messages: pick(change.messages, current.messages),
                    warn_percent: change.warn_percent.or(current.warn_percent),
                })
            };
            set_own_limits(tx, changes, account_id, own).await?;
            report_in(tx, account_id).await
        })
    })
    .await?;
    Ok(committed.value)
}

/// A domain's quota as an operator sees it (`tern domain quota`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainQuotaReport {
    pub domain: String,
    /// 0: no limit.
    pub storage_limit: u64,
    pub message_limit: u64,
    pub warn_percent: u8,
    pub used_octets: u64,
    pub used_messages: u64,
    /// Accounts whose Quota state could not be moved (owned by another live node of a
    /// cluster); their clients see the new limits at their next Quota/get.
    #[serde(default)]
    pub accounts_not_notified: u32,
}

impl std::fmt::Display for DomainQuotaReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit = |value: u64| match value {
            0 => "no limit".to_owned(),
            value => value.to_string(),
        };
        write!(
            f,
            "domain {}\nstorage: {} of {} octets\nmessages: {} of {}\nwarning at {}%",
            self.domain,
            self.used_octets,
            limit(self.storage_limit),
            self.used_messages,
            limit(self.message_limit),
            self.warn_percent,
        )?;
        if self.accounts_not_notified > 0 {
            write!(
                f,
                "\n{} accounts owned by other nodes see the change at their next Quota/get",
                self.accounts_not_notified
            )?;
        }
        Ok(())
    }
}

async fn domain_report_in(
    tx: &mut dyn Transaction,
    domain: &str,
) -> StoreResult<DomainQuotaReport> {
    let limits = super::domain::limits(tx, domain).await?;
    let usage = super::domain::usage(tx, domain).await?;
    Ok(DomainQuotaReport {
        domain: domain.to_owned(),
        storage_limit: limits.and_then(|limits| limits.storage).unwrap_or(0),
        message_limit: limits.and_then(|limits| limits.messages).unwrap_or(0),
        warn_percent: limits.map_or(Limits::default().warn_percent, |limits| limits.warn_percent),
        used_octets: usage.octets,
        used_messages: usage.count,
        accounts_not_notified: 0,
    })
}

/// The domain's limits and what its accounts use together.
pub async fn domain_report(
    store: &crate::store::Store,
    domain: &str,
) -> StoreResult<DomainQuotaReport> {
    let domain = domain.to_owned();
    store
        .read(move |tx| {
            let domain = domain.clone();
            Box::pin(async move { domain_report_in(tx, &domain).await })
        })
        .await
}

/// Applies `change` to the domain's limits, then moves the Quota state of each of its
/// `accounts` (one `commit_account` each: created, updated or destroyed as the domain's Quota
/// objects appear, change or disappear), so that /changes and push report it. Accounts owned
/// by another live node are counted in the report, not failed.
pub async fn change_domain_limits(
    store: &crate::store::Store,
    domain: &str,
    change: LimitsChange,
    accounts: &[u32],
) -> StoreResult<DomainQuotaReport> {
    if change.warn_percent.is_some_and(|percent| percent > 100) {
        return Err(StoreError::new(
            crate::store::StoreErrorKind::Io,
            "the warning percentage must be 0 to 100",
        ));
    }
    let shared = std::sync::Arc::new((domain.to_owned(), change));
    let (before, after) = store
        .transact(|tx| {
            let shared = std::sync::Arc::clone(&shared);
            Box::pin(async move {
                let (domain, change) = &*shared;
                let before = super::domain::limits(tx, domain).await?;
                let after = super::domain::change_limits(tx, domain, change).await?;
                Ok((before, after))
            })
        })
        .await?;
    let mut not_notified = 0u32;
    for &account_id in accounts {
        let touched = crate::store::commit::commit_account(store, account_id, |_, changes| {
            Box::pin(async move {
                for resource in super::Resource::ALL {
                    let id = resource.domain_quota_id();
                    let hard = |limits: Option<Limits>| limits.and_then(|l| l.hard(resource));
                    match (hard(before), hard(after)) {
                        (None, Some(_)) => changes.created(DataType::Quota, id),
                        (Some(_), None) => changes.destroyed(DataType::Quota, id),
                        (Some(_), Some(_)) => changes.updated(DataType::Quota, id),
                        (None, None) => {}
                    }
                }
                changes.touched(DataType::Quota);
                Ok(())
            })
        })
        .await;
        match touched {
            Ok(_) => {}
            Err(error) if error.kind == crate::store::StoreErrorKind::NotOwner => {
                not_notified += 1;
            }
            Err(error) => return Err(error),
        }
    }
    let mut report = domain_report(store, domain).await?;
    report.accounts_not_notified = not_notified;
    Ok(report)
}

/// Parses a size: a number of octets, or with a unit: `kB`, `MB`, `GB`, `TB` (powers of 1000)
/// or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), case-insensitive. `0` is "no limit".
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 5GB, 500MiB, 1048576)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "tb" | "t" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `[quota]`: the limits of every account without limits of its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Octets of Emails per account (`parse_size`); "0": no limit.
    pub storage: String,
    /// Emails per account; 0: no limit.
    pub messages: u64,
    /// `warnLimit` as a percentage of the hard limit; 0: no warning.
    pub warn_percent: u8,
}

impl Default for QuotaConfig {
    fn default() -> QuotaConfig {
        QuotaConfig {
            storage: "10GB".to_owned(),
            messages: 0,
            warn_percent: 90,
        }
    }
}

impl QuotaConfig {
    pub fn limits(&self) -> Result<Limits, String> {
        if self.warn_percent > 100 {
            return Err("quota.warn_percent must be 0 to 100".to_owned());
        }
        let storage =
            parse_size(&self.storage).map_err(|error| format!("quota.storage: {error}"))?;
        Ok(Limits {
            storage: (storage > 0).then_some(storage),
            messages: (self.messages > 0).then_some(self.messages),
            warn_percent: self.warn_percent,
        })
    }
}
