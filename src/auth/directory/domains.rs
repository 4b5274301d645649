//! Local domains (`DIR_DOMAIN`): mail for a domain is accepted while an account in it exists
//! or an explicit [`Directory::add_domain`] holds it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Directory, DirectoryError, DirectoryErrorKind, encode};
use crate::store::StoreError;
use crate::store::keys::{DIR_DOMAIN, KeyBuilder, SUBSPACE_DIRECTORY};

fn domain_key(domain: &str) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_DOMAIN)
        .str(domain)
        .build()
}

/// A domain as stored: trimmed, lowercase, without a trailing root dot. `None` if it cannot
/// be a domain.
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().trim_end_matches('.').to_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with('.')
        && !domain.contains("..")
        && !domain
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@');
    valid.then_some(domain)
}

/// The stored domain record (`DIR_DOMAIN`), JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainRecord {
    /// Accounts whose login is in the domain.
    #[serde(default)]
    pub accounts: u32,
    /// Added with `add_domain` (`tern domain add`): stays local without accounts.
    #[serde(default)]
    pub explicit: bool,
}

async fn read_domain(
    tx: &mut dyn crate::store::Transaction,
    domain: &str,
) -> Result<Option<DomainRecord>, StoreError> {
    match tx.get(&domain_key(domain)).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::corrupt(format!("domain record: {error}"))),
        None => Ok(None),
    }
}

/// Writes `record`, or removes the domain when nothing holds it any more.
fn write_domain(
    tx: &mut dyn crate::store::Transaction,
    domain: &str,
    record: DomainRecord,
) -> Result<(), StoreError> {
    if record.accounts == 0 && !record.explicit {
        tx.clear(&domain_key(domain))
    } else {
        tx.set(&domain_key(domain), &encode(&record)?)
    }
}

/// Adds `delta` accounts to the domain of `email`, inside the account's transaction.
pub(super) async fn count_account_in_domain(
    tx: &mut dyn crate::store::Transaction,
    email: &str,
    delta: i32,
) -> Result<(), StoreError> {
    let Some(domain) = email
        .rsplit_once('@')
        .and_then(|(_, d)| normalize_domain(d))
    else {
        return Ok(());
    };
    let mut record = read_domain(tx, &domain).await?.unwrap_or_default();
    record.accounts = record.accounts.saturating_add_signed(delta);
    write_domain(tx, &domain, record)
}

impl Directory {
    /// Makes `domain` local even without accounts (`tern domain add`). Returns `false` if it
    /// was already added explicitly.
    pub async fn add_domain(&self, domain: &str) -> Result<bool, DirectoryError> {
        self.set_domain_explicit(domain, true).await
    }

    /// Undoes [`add_domain`](Self::add_domain); the domain stays local while it has accounts.
    /// Returns `false` if it was not added explicitly.
    pub async fn remove_domain(&self, domain: &str) -> Result<bool, DirectoryError> {
        self.set_domain_explicit(domain, false).await
    }

    async fn set_domain_explicit(
        &self,
        domain: &str,
        explicit: bool,
    ) -> Result<bool, DirectoryError> {
        let domain = normalize_domain(domain).ok_or_else(|| {
            DirectoryError::new(
                DirectoryErrorKind::InvalidEmail,
                format!("{domain:?} is not a valid domain"),
            )
        })?;
        let changed = self
            .store
            .transact(|tx| {
                let domain = domain.clone();
                Box::pin(async move {
                    let mut record = read_domain(tx, &domain).await?.unwrap_or_default();
                    if record.explicit == explicit {
                        return Ok(false);
                    }
                    record.explicit = explicit;
                    write_domain(tx, &domain, record)?;
                    Ok(true)
                })
            })
            .await?;
        tracing::info!(%domain, explicit, changed, "local domain updated");
        Ok(changed)
    }

    /// `tern domain quota`: the domain's quota (RFC 9425 scope `domain`) after applying
    /// `change` (an empty change only reads). A change moves the Quota state of every
    /// account in the domain (`mail::quota::change_domain_limits`).
    pub async fn domain_quota(
        &self,
        domain: &str,
        change: crate::mail::quota::LimitsChange,
    ) -> Result<crate::mail::quota::DomainQuotaReport, DirectoryError> {
        let domain = normalize_domain(domain).ok_or_else(|| {
            DirectoryError::new(
                DirectoryErrorKind::InvalidEmail,
                format!("{domain:?} is not a valid domain"),
            )
        })?;
        if change.is_empty() {
            return Ok(crate::mail::quota::domain_report(&self.store, &domain).await?);
        }
        let accounts: Vec<u32> = self
            .list_accounts()
            .await?
            .into_iter()
            .filter(|account| {
                crate::mail::quota::domain::domain_of_address(&account.email).as_deref()
                    == Some(domain.as_str())
            })
            .map(|account| account.account_id)
            .collect();
        let report =
            crate::mail::quota::change_domain_limits(&self.store, &domain, change, &accounts)
                .await?;
        tracing::info!(%domain, storage = report.storage_limit, messages = report.message_limit, "domain quota changed");
        Ok(report)
    }

    /// Whether mail for `domain` is accepted here (case-insensitive).
    pub async fn is_local_domain(&self, domain: &str) -> Result<bool, DirectoryError> {
        let Some(domain) = normalize_domain(domain) else {
            return Ok(false);
        };
        let found = self
            .store
            .read(move |tx| Box::pin(async move { read_domain(tx, &domain).await }))
            .await?;
        Ok(found.is_some())
    }

    /// Every local domain with its record, in byte order.
    pub async fn list_domains(&self) -> Result<Vec<(String, DomainRecord)>, DirectoryError> {
        let (prefix, pairs) = self.read_table(DIR_DOMAIN).await?;
        let mut domains = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            // The key's string component: escaped bytes ending in 0x00 (no NUL in domains).
            let name = key
                .get(prefix.len()..key.len().saturating_sub(1))
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default();
            let record: DomainRecord = serde_json::from_slice(&value)
                .map_err(|error| StoreError::corrupt(format!("domain record: {error}")))?;
            domains.push((name, record));
        }
        Ok(domains)
    }

    /// Builds the domain index for accounts created before it existed: when no domain is
    /// recorded but accounts exist, counts them per domain. Called at start-up; a no-op
    /// afterwards.
    pub async fn ensure_domain_index(&self) -> Result<(), DirectoryError> {
        if !self.list_domains().await?.is_empty() {
            return Ok(());
        }
        let accounts = self.list_accounts().await?;
        if accounts.is_empty() {
            return Ok(());
        }
        let mut counts: std::collections::BTreeMap<String, u32> = Default::default();
        for account in &accounts {
            if let Some(domain) = account
                .email
                .rsplit_once('@')
                .and_then(|(_, domain)| normalize_domain(domain))
            {
                *counts.entry(domain).or_default() += 1;
            }
        }
        let counts = Arc::new(counts);
        self.store
            .transact(|tx| {
                let counts = Arc::clone(&counts);
                Box::pin(async move {
                    for (domain, accounts) in counts.iter() {
                        let mut record = read_domain(tx, domain).await?.unwrap_or_default();
                        record.accounts = *accounts;
                        write_domain(tx, domain, record)?;
                    }
                    Ok(())
                })
            })
            .await?;
        tracing::info!(
            domains = counts.len(),
            "local domain index built from accounts"
        );
        Ok(())
    }
}
