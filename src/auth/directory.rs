//! The directory: accounts, password hashes and API tokens, stored in the store's
//! `SUBSPACE_DIRECTORY` (see `crate::store::keys`, `DIR_*`).
//!
//! Invariants:
//! - an email is stored normalized (trimmed, lowercase) and maps to at most one account;
//! - account ids come from a monotonic counter and are never reused, so data left under a
//!   deleted account's id can never become visible to a new account;
//! - a token is stored only as its SHA-256 digest; the token text is shown once;
//! - every token of an account is listed in the account record, so deleting the account
//!   deletes its tokens in the same transaction;
//! - a domain is local (mail for it is accepted, `DIR_DOMAIN`) while an account in it exists
//!   or an explicit [`Directory::add_domain`] holds it; account creation and deletion update
//!   the domain's count in their own transaction.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Principal;
use super::cache::CredentialCache;
use super::password::{self, PasswordError};
use crate::store::keys::{
    DIR_ACCOUNT, DIR_ACCOUNT_BY_EMAIL, DIR_CREDENTIALS_VERSION, DIR_NEXT_ACCOUNT_ID, DIR_TOKEN,
    KeyBuilder, SUBSPACE_DIRECTORY, le_i64,
};
use crate::store::{
    KeyRange, KeyValue, RangeOptions, Store, StoreError, StoreErrorKind, ownership, purge,
};

use domains::count_account_in_domain;
pub use groups::GroupRecord;
use principals::PrincipalChange;

/// A deleted account leaves its groups, and a deleted group releases its members.
async fn forget_memberships(
    tx: &mut dyn crate::store::Transaction,
    record: &AccountRecord,
) -> Result<(), StoreError> {
    let account_id = record.account_id;
    if let Some(group) = &record.group {
        for member in &group.members {
            tx.clear(&principals::member_key(*member, account_id))?;
        }
    }
    for group_id in principals::groups_of(tx, account_id).await? {
        tx.clear(&principals::member_key(account_id, group_id))?;
        let key = account_key(group_id);
        if let Some(bytes) = tx.get(&key).await? {
            let mut group_record = decode_account(&bytes)?;
            if let Some(group) = group_record.group.as_mut() {
                group.members.retain(|member| *member != account_id);
            }
            tx.set(&key, &encode(&group_record)?)?;
            principals::log_change(tx, PrincipalChange::Updated, group_id).await?;
        }
    }
    Ok(())
}
pub use domains::{DomainRecord, normalize_domain};

/// Tokens look like `tern_<43 characters>`: the prefix makes leaked tokens easy to grep for.
const TOKEN_PREFIX: &str = "tern_";
const TOKEN_RANDOM_BYTES: usize = 32;
/// RFC 5321 §4.5.3.1: the longest usable address.
const MAX_EMAIL_BYTES: usize = 254;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DirectoryError {
    pub kind: DirectoryErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryErrorKind {
    InvalidEmail,
    InvalidPassword,
    AccountExists,
    UnknownAccount,
    /// The store failed (its own kind says whether retrying can help).
    Store(StoreErrorKind),
}

impl DirectoryError {
    fn new(kind: DirectoryErrorKind, message: impl Into<String>) -> DirectoryError {
        DirectoryError {
            kind,
            message: message.into(),
        }
    }
    fn unknown_account(email: &str) -> DirectoryError {
        DirectoryError::new(
            DirectoryErrorKind::UnknownAccount,
            format!("no account {email}"),
        )
    }
}

impl From<StoreError> for DirectoryError {
    fn from(error: StoreError) -> DirectoryError {
        DirectoryError::new(DirectoryErrorKind::Store(error.kind), error.to_string())
    }
}

impl From<PasswordError> for DirectoryError {
    fn from(error: PasswordError) -> DirectoryError {
        let kind = match error {
            PasswordError::Hashing(_) => DirectoryErrorKind::Store(StoreErrorKind::Io),
            PasswordError::Empty | PasswordError::TooLong => DirectoryErrorKind::InvalidPassword,
        };
        DirectoryError::new(kind, error.to_string())
    }
}

/// A login name: an email address, trimmed and lowercased. Valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, DirectoryError> {
        let normalized = text.trim().to_lowercase();
        let invalid = |why: &str| {
            DirectoryError::new(
                DirectoryErrorKind::InvalidEmail,
                format!("{text:?} is not a valid email address: {why}"),
            )
        };
        if normalized.len() > MAX_EMAIL_BYTES {
            return Err(invalid("too long"));
        }
        if normalized
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("it contains spaces or control characters"));
        }
        let Some((local, domain)) = normalized.split_once('@') else {
            return Err(invalid("no @"));
        };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(invalid("bad local part"));
        }
        if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') {
            return Err(invalid("bad domain"));
        }
        Ok(Email(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// What the directory tells about an account (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    pub account_id: u32,
    pub email: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// A group (no login): `tern group`.
    #[serde(default)]
    pub is_group: bool,
}

impl AccountInfo {
    pub fn principal(&self) -> Principal {
        Principal {
            account_id: self.account_id,
            email: self.email.clone(),
        }
    }
}

/// The stored account record (`DIR_ACCOUNT`), JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountRecord {
    account_id: u32,
    email: String,
    created_at: u64,
    password_hash: String,
    /// Hex SHA-256 digests of the account's API tokens.
    #[serde(default)]
    tokens: Vec<String>,
    /// Set for a group (no login; `groups.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<GroupRecord>,
}

impl AccountRecord {
    fn info(&self) -> AccountInfo {
        AccountInfo {
            account_id: self.account_id,
            email: self.email.clone(),
            created_at: self.created_at,
            is_group: self.group.is_some(),
        }
    }
}

/// The stored token record (`DIR_TOKEN`), JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRecord {
    account_id: u32,
    created_at: u64,
}

fn account_key(account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_ACCOUNT)
        .u32(account_id)
        .build()
}

fn email_key(email: &Email) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_ACCOUNT_BY_EMAIL)
        .str(email.as_str())
        .build()
}

fn token_key(digest: &[u8; 32]) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_TOKEN)
        .raw(digest)
        .build()
}

fn credentials_version_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_CREDENTIALS_VERSION)
        .build()
}

fn next_account_id_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_DIRECTORY)
        .u8(DIR_NEXT_ACCOUNT_ID)
        .build()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (index, slot) in digest.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(digest)
}

fn decode_account(bytes: &[u8]) -> Result<AccountRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|error| StoreError::corrupt(format!("account record: {error}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(StoreError::io)
}

fn decode_account_id(bytes: &[u8]) -> Result<u32, StoreError> {
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("account id index value is not 4 bytes"))?;
    Ok(u32::from_be_bytes(array))
}

/// The login address of account `account_id`, read inside the caller's transaction (mail
/// code checks the From addresses of Identities against it); `None` if there is no such
/// account.
pub async fn account_email_in(
    tx: &mut dyn crate::store::Transaction,
    account_id: u32,
) -> Result<Option<String>, StoreError> {
    match tx.get(&account_key(account_id)).await? {
        Some(bytes) => Ok(Some(decode_account(&bytes)?.email)),
        None => Ok(None),
    }
}

/// The account whose login is `email`, read inside the caller's transaction; `None` if
/// there is none (or `email` is not an address).
pub async fn account_id_by_email_in(
    tx: &mut dyn crate::store::Transaction,
    email: &str,
) -> Result<Option<u32>, StoreError> {
    let Ok(email) = Email::parse(email) else {
        return Ok(None);
    };
    match tx.get(&email_key(&email)).await? {
        Some(bytes) => decode_account_id(&bytes).map(Some),
        None => Ok(None),
    }
}

/// The directory handle: cheap to clone, shared by the server and the CLI.
#[derive(Clone)]
pub struct Directory {
    store: Store,
    cache: Arc<CredentialCache>,
    /// Every password check (HTTP and SMTP AUTH) runs here, at most
    /// `[auth] max_concurrent_password_checks` at once.
    verifier: Arc<super::verifier::Verifier>,
}

impl Directory {
    /// The store the directory lives in (admin operations on account data use it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A directory with a 60 s credential cache.
    pub fn new(store: Store) -> Directory {
        Directory::with_cache_ttl(store, Duration::from_secs(60))
    }

    pub fn with_cache_ttl(store: Store, cache_ttl: Duration) -> Directory {
        let checks = crate::config::AuthConfig::default().max_concurrent_password_checks;
        Directory::with_limits(store, cache_ttl, checks)
    }

    /// A directory whose password checks run at most `password_checks` at once.
    pub fn with_limits(store: Store, cache_ttl: Duration, password_checks: usize) -> Directory {
        Directory {
            store,
            cache: Arc::new(CredentialCache::new(cache_ttl)),
            verifier: Arc::new(super::verifier::Verifier::new(password_checks)),
        }
    }

    pub fn credential_cache(&self) -> &CredentialCache {
        &self.cache
    }

    /// The password verifier (its bound and the most verifications that ever ran at once).
    pub fn verifier(&self) -> &super::verifier::Verifier {
        &self.verifier
    }

    /// Creates an account. The password is hashed off the async runtime.
    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
    ) -> Result<AccountInfo, DirectoryError> {
        let password_hash = password::hash_blocking(password.to_owned()).await?;
        self.create_account_record(email, password_hash, None).await
    }

    /// Creates an account (or, with `group`, a group) with the given password hash.
    async fn create_account_record(
        &self,
        email: &str,
        password_hash: String,
        group: Option<GroupRecord>,
    ) -> Result<AccountInfo, DirectoryError> {
        let email = Email::parse(email)?;
        let created_at = now_unix();
        let outcome = self
            .store
            .transact(|tx| {
                let email = email.clone();
                let password_hash = password_hash.clone();
                let group = group.clone();
                Box::pin(async move {
                    let by_email = email_key(&email);
                    if tx.get(&by_email).await?.is_some() {
                        return Ok(None);
                    }
                    let counter_key = next_account_id_key();
                    let last = tx
                        .get(&counter_key)
                        .await?
                        .map_or(0, |bytes| le_i64(&bytes));
                    let next = last + 1;
                    let account_id = u32::try_from(next).map_err(|_| {
                        StoreError::new(StoreErrorKind::LimitExceeded, "account ids exhausted")
                    })?;
                    tx.set(&counter_key, &next.to_le_bytes())?;
                    let record = AccountRecord {
                        account_id,
                        email: email.as_str().to_owned(),
                        created_at,
                        password_hash,
                        tokens: Vec::new(),
                        group,
                    };
                    tx.set(&account_key(account_id), &encode(&record)?)?;
                    tx.set(&by_email, &account_id.to_be_bytes())?;
                    count_account_in_domain(tx, email.as_str(), 1).await?;
                    // The account's usage counts in its domain's quota from the start.
                    if let Some(domain) =
                        crate::mail::quota::domain::domain_of_address(email.as_str())
                    {
                        crate::mail::quota::domain::join(tx, account_id, &domain).await?;
                    }
                    principals::log_change(tx, PrincipalChange::Created, account_id).await?;
                    Ok(Some(record.info()))
                })
            })
            .await?;
        let info = outcome.ok_or_else(|| {
            DirectoryError::new(
                DirectoryErrorKind::AccountExists,
                format!("account {email} already exists"),
            )
        })?;
        tracing::info!(account_id = info.account_id, email = %info.email, "account created");
        // RFC 8621 §2: a new account starts with the standard Mailboxes (inbox, drafts, …).
        // A failure here leaves the account usable: Mailbox methods create them lazily.
        if let Err(error) =
            crate::mail::mailbox::ensure_default_mailboxes(&self.store, info.account_id).await
        {
            tracing::warn!(account_id = info.account_id, %error, "default mailboxes not created yet");
        }
        // RFC 8621 §6: and with its default Identity (Identity methods also create it lazily).
        if let Err(error) =
            crate::jmap::mail::identity::ensure_default_identity(&self.store, info.account_id).await
        {
            tracing::warn!(account_id = info.account_id, %error, "default identity not created yet");
        }
        Ok(info)
    }

    /// Every entry of one directory table (`DIR_*`), in key order; also its key prefix.
    async fn read_table(&self, table: u8) -> Result<(Vec<u8>, Vec<KeyValue>), StoreError> {
        let prefix = KeyBuilder::new(SUBSPACE_DIRECTORY).u8(table).build();
        let range = KeyRange::prefix(&prefix);
        let pairs = self
            .store
            .read(move |tx| {
                Box::pin(async move { tx.get_range(&range, RangeOptions::default()).await })
            })
            .await?;
        Ok((prefix, pairs))
    }

    /// Every account, in account id order.
    pub async fn list_accounts(&self) -> Result<Vec<AccountInfo>, DirectoryError> {
        let (_, pairs) = self.read_table(DIR_ACCOUNT).await?;
        let mut accounts = Vec::with_capacity(pairs.len());
        for (_, value) in pairs {
            accounts.push(decode_account(&value)?.info());
        }
        Ok(accounts)
    }

    /// The account with login `email`.
    pub async fn account(&self, email: &str) -> Result<AccountInfo, DirectoryError> {
        let email = Email::parse(email)?;
        self.read_record(&email)
            .await?
            .map(|record| record.info())
            .ok_or_else(|| DirectoryError::unknown_account(email.as_str()))
    }

    async fn read_record(&self, email: &Email) -> Result<Option<AccountRecord>, StoreError> {
        let by_email = email_key(email);
        self.store
            .read(move |tx| {
                Box::pin(async move {
                    let Some(id_bytes) = tx.get(&by_email).await? else {
                        return Ok(None);
                    };
                    let account_id = decode_account_id(&id_bytes)?;
                    match tx.get(&account_key(account_id)).await? {
                        Some(bytes) => Ok(Some(decode_account(&bytes)?)),
                        None => Err(StoreError::corrupt(format!(
                            "email index points at missing account {account_id}"
                        ))),
                    }
                })
            })
            .await
    }

    /// Applies `change` to the record of `email` in one transaction; `None` if no such account.
    async fn update_record<F>(
        &self,
        email: &Email,
        change: F,
    ) -> Result<Option<AccountRecord>, StoreError>
    where
        F: Fn(&mut AccountRecord, &mut dyn crate::store::Transaction) -> Result<(), StoreError>
            + Send
            + Sync
            + 'static,
    {
        // Transaction closures may be re-run and their futures must own what they use.
        let change = Arc::new(change);
        self.store
            .transact(|tx| {
                let by_email = email_key(email);
                let change = Arc::clone(&change);
                Box::pin(async move {
                    let Some(id_bytes) = tx.get(&by_email).await? else {
                        return Ok(None);
                    };
                    let key = account_key(decode_account_id(&id_bytes)?);
                    let Some(bytes) = tx.get(&key).await? else {
                        return Err(StoreError::corrupt("email index points at missing account"));
                    };
                    let mut record = decode_account(&bytes)?;
                    change(&mut record, tx)?;
                    tx.set(&key, &encode(&record)?)?;
                    Ok(Some(record))
                })
            })
            .await
    }

    /// Deletes the account and its tokens. Its data goes with later issues' cleanup; its id
    /// is never reused, so that data stays unreachable.
    pub async fn delete_account(&self, email: &str) -> Result<AccountInfo, DirectoryError> {
        let email = Email::parse(email)?;
        let deleted = self
            .store
            .transact(|tx| {
                let by_email = email_key(&email);
                Box::pin(async move {
                    let Some(id_bytes) = tx.get(&by_email).await? else {
                        return Ok(None);
                    };
                    let account_id = decode_account_id(&id_bytes)?;
                    let key = account_key(account_id);
                    let record = match tx.get(&key).await? {
                        Some(bytes) => decode_account(&bytes)?,
                        None => return Err(StoreError::corrupt("dangling email index")),
                    };
                    for digest in record.tokens.iter().filter_map(|text| unhex(text)) {
                        tx.clear(&token_key(&digest))?;
                    }
                    tx.clear(&key)?;
                    tx.clear(&by_email)?;
                    count_account_in_domain(tx, &record.email, -1).await?;
                    // Its usage leaves its domain's quota (the purge moves no counters).
                    crate::mail::quota::domain::leave(tx, account_id).await?;
                    forget_memberships(tx, &record).await?;
                    // Nothing stays shared from or with the account, nor announced to it.
                    let mailboxes = crate::mail::mailbox::load_all(tx, account_id).await?;
                    crate::mail::sharing::forget_account(tx, account_id, &mailboxes).await?;
                    crate::mail::sharing::notices::forget_grantee(tx, account_id)?;
                    principals::log_change(tx, PrincipalChange::Destroyed, account_id).await?;
                    // Every server drops its cached logins (`forget_on_credential_changes`).
                    tx.atomic_add(&credentials_version_key(), 1)?;
                    // No node may write the account from now on (a request in flight on
                    // its owner is refused by the fence), so nothing lands behind the purge.
                    ownership::retire(tx, account_id).await?;
                    // The data goes after the login, durably queued with it (store::purge).
                    purge::queue_purge(tx, account_id)?;
                    Ok(Some(record.info()))
                })
            })
            .await?
            .ok_or_else(|| DirectoryError::unknown_account(email.as_str()))?;
        self.cache.forget_account(deleted.account_id);
        tracing::info!(account_id = deleted.account_id, email = %deleted.email, "account deleted");
        if let Err(error) = purge::purge_account(&self.store, deleted.account_id).await {
            // Still queued: the next start-up finishes it.
            tracing::warn!(account_id = deleted.account_id, %error, "account purge interrupted");
        }
        Ok(deleted)
    }

    /// Replaces the password; cached logins with the old one stop working at once.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<(), DirectoryError> {
        let email = Email::parse(email)?;
        let password_hash = password::hash_blocking(password.to_owned()).await?;
        let updated = self
            .update_record(&email, move |record, tx| {
                record.password_hash = password_hash.clone();
                // Every server drops its cached logins (`forget_on_credential_changes`).
                tx.atomic_add(&credentials_version_key(), 1)?;
                Ok(())
            })
            .await?
            .ok_or_else(|| DirectoryError::unknown_account(email.as_str()))?;
        self.cache.forget_account(updated.account_id);
        tracing::info!(account_id = updated.account_id, "password changed");
        Ok(())
    }

    /// Clears the credential cache whenever any process sharing the store changes a password
    /// or deletes an account, until `stop` turns true. The server runs it: the CLI on
    /// FoundationDB and the other nodes of a cluster write the same directory, and a revoked
    /// password must stop working at once everywhere, not when a cached check expires.
    pub async fn forget_on_credential_changes(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let key = credentials_version_key();
        loop {
            // Registered before the clear: a change after it fires the next wait.
            let changed = self.store.watch(&key);
            self.cache.clear();
            let fired = tokio::select! {
                fired = changed => fired,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            if let Err(error) = fired {
                tracing::debug!(%error, "credentials watch failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        }
    }

    /// Creates a bearer token for the account; the returned text is the only copy.
    pub async fn create_token(&self, email: &str) -> Result<String, DirectoryError> {
        let email = Email::parse(email)?;
        let random: [u8; TOKEN_RANDOM_BYTES] = rand::random();
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let digest = token_digest(&token);
        let created_at = now_unix();
        let updated = self
            .update_record(&email, move |record, tx| {
                let token_record = TokenRecord {
                    account_id: record.account_id,
                    created_at,
                };
                tx.set(&token_key(&digest), &encode(&token_record)?)?;
                let digest_hex = hex(&digest);
                if !record.tokens.contains(&digest_hex) {
                    record.tokens.push(digest_hex);
                }
                Ok(())
            })
            .await?
            .ok_or_else(|| DirectoryError::unknown_account(email.as_str()))?;
        tracing::info!(account_id = updated.account_id, "API token created");
        Ok(token)
    }

    /// The account that receives mail for `address`: the account whose login it is, or, for
    /// a subaddress `user+detail@domain` (RFC 5233), the account `user@domain`. `None` when
    /// no account matches (SMTP answers `550 5.1.1`).
    pub async fn account_for_address(
        &self,
        address: &str,
    ) -> Result<Option<AccountInfo>, DirectoryError> {
        let Ok(email) = Email::parse(address) else {
            return Ok(None);
        };
        if let Some(record) = self.read_record(&email).await? {
            return Ok(Some(record.info()));
        }
        let Some((local, domain)) = email.as_str().split_once('@') else {
            return Ok(None);
        };
        let Some((base, _detail)) = local.split_once('+') else {
            return Ok(None);
        };
        let Ok(base) = Email::parse(&format!("{base}@{domain}")) else {
            return Ok(None);
        };
        Ok(self.read_record(&base).await?.map(|record| record.info()))
    }

    /// Checks a login. An unknown account costs one argon2 verification too, so timing does
    /// not tell which accounts exist. Runs argon2 on the blocking pool.
    pub async fn verify_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<Principal>, DirectoryError> {
        let record = match Email::parse(email) {
            Ok(email) => self.read_record(&email).await?,
            Err(_) => None,
        };
        // A group has no login: it answers like an unknown address.
        let record = record.filter(|record| record.group.is_none());
        let (stored_hash, principal) = match &record {
            Some(record) => (
                record.password_hash.clone(),
                Some(Principal {
                    account_id: record.account_id,
                    email: record.email.clone(),
                }),
            ),
            None => (password::decoy_hash().to_owned(), None),
        };
        let matches = self.verifier.verify(password.to_owned(), stored_hash).await;
        Ok(principal.filter(|_| matches))
    }

    /// The principal a bearer token stands for, if the token exists.
    pub async fn principal_for_token(
        &self,
        token: &str,
    ) -> Result<Option<Principal>, DirectoryError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let key = token_key(&token_digest(token));
        let found = self
            .store
            .read(move |tx| {
                Box::pin(async move {
                    let Some(bytes) = tx.get(&key).await? else {
                        return Ok(None);
                    };
                    let token: TokenRecord = serde_json::from_slice(&bytes)
                        .map_err(|error| StoreError::corrupt(format!("token record: {error}")))?;
                    let record = match tx.get(&account_key(token.account_id)).await? {
                        Some(bytes) => decode_account(&bytes)?,
                        None => return Ok(None),
                    };
                    Ok(Some(Principal {
                        account_id: record.account_id,
                        email: record.email,
                    }))
                })
            })
            .await?;
        Ok(found)
    }
}

mod domains;
mod groups;
pub mod principals;
#[cfg(test)]
mod tests;
