//! PushSubscription (RFC 8620 §7.2): a user's registration of a Web Push URL. Stored as
//! small JSON documents in the principal's own account (`DataType::PushSubscription`), with
//! the account listed under `QUEUE_PUSH_ACCOUNT` while it has any, so the Web Push deliverer
//! (`push::deliverer`) knows whom to watch.
//!
//! Stored members: `deviceClientId`, `url`, `keys` (`{p256dh, auth}` or null), `expires`
//! (UTCDate or null), `types` (String[] or null), `expectedCode` (the verification code the
//! server pushed) and `verificationCode` (what the client sent back; push starts once it
//! equals `expectedCode`, RFC 8620 §7.2.2).

pub mod get;
pub mod set;

use serde_json::{Map, Value};

use crate::jmap::generic::storage;
use crate::store::commit::DataType;
use crate::store::keys::{
    KeyBuilder, QUEUE_PUSH_ACCOUNT, QUEUE_PUSH_ACCOUNTS_VERSION, SUBSPACE_QUEUE,
};
use crate::store::{StoreResult, Transaction};

/// The id prefix of PushSubscription ids (`Id::from_number`).
pub const ID_PREFIX: char = 'p';

/// A user's subscriptions are few (one per device and app); this bounds abuse.
pub const MAX_SUBSCRIPTIONS_PER_ACCOUNT: usize = 100;

/// One stored subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubscription {
    pub id: u64,
    pub document: Map<String, Value>,
}

impl StoredSubscription {
    pub fn url(&self) -> &str {
        self.document
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn is_verified(&self) -> bool {
        let expected = self.document.get("expectedCode").and_then(Value::as_str);
        expected.is_some()
            && self
                .document
                .get("verificationCode")
                .and_then(Value::as_str)
                == expected
    }

    pub fn expected_code(&self) -> Option<&str> {
        self.document.get("expectedCode").and_then(Value::as_str)
    }

    /// Unix seconds of `expires`, if set.
    pub fn expires_unix(&self) -> Option<i64> {
        self.document
            .get("expires")
            .and_then(Value::as_str)
            .and_then(|text| crate::jmap::types::UtcDate::parse(text).ok())
            .map(|date| date.unix_seconds())
    }

    /// `(p256dh, auth)` as stored (base64url).
    pub fn keys(&self) -> Option<(&str, &str)> {
        let keys = self.document.get("keys")?.as_object()?;
        Some((keys.get("p256dh")?.as_str()?, keys.get("auth")?.as_str()?))
    }

    /// `types`: `None` for every type.
    pub fn types(&self) -> Option<Vec<&str>> {
        let types = self.document.get("types")?.as_array()?;
        Some(types.iter().filter_map(Value::as_str).collect())
    }
}

/// Every subscription of the account.
pub async fn list(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<Vec<StoredSubscription>> {
    let ids = storage::list_ids(tx, account_id, DataType::PushSubscription).await?;
    let mut subscriptions = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(document) =
            storage::load(tx, account_id, DataType::PushSubscription, id).await?
        {
            subscriptions.push(StoredSubscription { id, document });
        }
    }
    Ok(subscriptions)
}

fn push_account_key(account_id: u32) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_PUSH_ACCOUNT)
        .u32(account_id)
        .build()
}

/// The key the deliverer watches: bumped when an account enters or leaves the set.
pub fn push_accounts_version_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_PUSH_ACCOUNTS_VERSION)
        .build()
}

/// Keeps `QUEUE_PUSH_ACCOUNT` in step with whether the account has subscriptions; call in
/// the commit that created or destroyed some.
pub async fn sync_push_account(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<()> {
    let has_any = !storage::list_ids(tx, account_id, DataType::PushSubscription)
        .await?
        .is_empty();
    let key = push_account_key(account_id);
    let listed = tx.get(&key).await?.is_some();
    if has_any == listed {
        return Ok(());
    }
    if has_any {
        tx.set(&key, &[])?;
    } else {
        tx.clear(&key)?;
    }
    let version_key = push_accounts_version_key();
    let version = tx
        .get(&version_key)
        .await?
        .and_then(|bytes| crate::store::keys::be_u64(&bytes))
        .unwrap_or(0);
    tx.set(&version_key, &(version + 1).to_be_bytes())
}

/// Every account listed as having subscriptions.
pub async fn push_accounts(tx: &mut dyn Transaction) -> StoreResult<Vec<u32>> {
    let prefix = KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_PUSH_ACCOUNT)
        .build();
    let pairs = tx
        .get_range(
            &crate::store::KeyRange::prefix(&prefix),
            crate::store::RangeOptions::default(),
        )
        .await?;
    Ok(pairs
        .into_iter()
        .filter_map(|(key, _)| {
            let suffix: [u8; 4] = key.get(prefix.len()..)?.try_into().ok()?;
            Some(u32::from_be_bytes(suffix))
        })
        .collect())
}
