//! A short-lived cache of successful credential checks, so that the hot path (thousands of
//! requests per second with the same Basic credentials) does not run argon2 per request.
//!
//! Keys are SHA-256 digests of the presented credentials, never the credentials themselves;
//! only successful checks are cached; a password change or an account deletion through the
//! [`super::Directory`] forgets every entry of that account at once, and one in another process
//! sharing the store (the CLI on FoundationDB, another node) clears the whole cache when the
//! store's watch on the credentials version fires (`Directory::forget_on_credential_changes`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Principal;

/// Beyond this many entries the cache drops expired ones, then everything: a flood of
/// distinct valid credentials must not grow memory without bound.
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    principal: Principal,
    expires_at: Instant,
}

pub struct CredentialCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl CredentialCache {
    /// A zero `ttl` disables caching.
    pub fn new(ttl: Duration) -> CredentialCache {
        CredentialCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Principal> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        let entry = entries.get(key)?;
        if entry.expires_at <= Instant::now() {
            entries.remove(key);
            return None;
        }
        Some(entry.principal.clone())
    }

    pub fn insert(&self, key: [u8; 32], principal: Principal) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| entry.expires_at > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                principal,
                expires_at: now + self.ttl,
            },
        );
    }

    /// Forgets every cached credential of `account_id` (password changed, account deleted).
    pub fn forget_account(&self, account_id: u32) {
        self.lock()
            .retain(|_, entry| entry.principal.account_id != account_id);
    }

    /// Forgets everything (a credential changed in another process: which is not known).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent (single calls).
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(account_id: u32) -> Principal {
        Principal {
            account_id,
            email: format!("u{account_id}@example.test"),
        }
    }

    #[test]
    fn hit_miss_and_forget() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        cache.insert([1; 32], principal(1));
        cache.insert([2; 32], principal(2));
        assert_eq!(cache.get(&[1; 32]), Some(principal(1)));
        assert_eq!(cache.get(&[3; 32]), None);
        cache.forget_account(1);
        assert_eq!(cache.get(&[1; 32]), None);
        assert_eq!(cache.get(&[2; 32]), Some(principal(2)));
    }

    #[test]
    fn entries_expire() {
        let cache = CredentialCache::new(Duration::from_millis(1));
        cache.insert([1; 32], principal(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(cache.get(&[1; 32]), None);
    }

    #[test]
    fn zero_ttl_disables() {
        let cache = CredentialCache::new(Duration::ZERO);
        cache.insert([1; 32], principal(1));
        assert_eq!(cache.get(&[1; 32]), None);
    }

    #[test]
    fn size_is_bounded() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        for index in 0..(MAX_ENTRIES as u32 + 5) {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&index.to_be_bytes());
            cache.insert(key, principal(index));
        }
        assert!(cache.lock().len() <= MAX_ENTRIES);
    }
}
