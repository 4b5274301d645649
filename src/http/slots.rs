//! Per-account concurrency slots: RFC 8620 §2 `maxConcurrentRequests` and
//! `maxConcurrentUpload`. A request that finds no free slot is refused at once with a `limit`
//! problem rather than queued, so one account cannot tie up the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct AccountSlots {
    max_per_account: u64,
    in_use: Mutex<HashMap<u32, u64>>,
}

/// A held slot; dropping it frees the slot (also when a request is cancelled).
pub struct SlotGuard {
    slots: Arc<AccountSlots>,
    account_id: u32,
}

impl AccountSlots {
    pub fn new(max_per_account: u64) -> Arc<AccountSlots> {
        Arc::new(AccountSlots {
            max_per_account,
            in_use: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `account_id`, or `None` when it already holds the maximum.
    pub fn try_acquire(self: &Arc<Self>, account_id: u32) -> Option<SlotGuard> {
        let mut in_use = self.lock();
        let count = in_use.entry(account_id).or_insert(0);
        if *count >= self.max_per_account {
            return None;
        }
        *count += 1;
        Some(SlotGuard {
            slots: Arc::clone(self),
            account_id,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, u64>> {
        self.in_use
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut in_use = self.slots.lock();
        if let Some(count) = in_use.get_mut(&self.account_id) {
            debug_assert!(*count > 0);
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_use.remove(&self.account_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_account_and_freed_on_drop() {
        let slots = AccountSlots::new(2);
        let first = slots.try_acquire(1).unwrap();
        let _second = slots.try_acquire(1).unwrap();
        assert!(slots.try_acquire(1).is_none());
        assert!(slots.try_acquire(2).is_some());
        drop(first);
        assert!(slots.try_acquire(1).is_some());
    }
}
