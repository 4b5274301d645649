//! Group commit of deliveries per account. Every commit of an account reads and bumps its
//! version (the change log), so concurrent deliveries to one account conflict and retry one
//! by one. The filer runs at most ONE commit per account at a time, and that commit files every
//! delivery queued for the account while the previous one ran (up to [`MAX_BATCH`]): a burst to
//! one mailbox becomes a few large commits instead of a storm of conflicting small ones.
//!
//! Invariants:
//! - each delivery in a batch still marks its own recipient delivered in the commit that
//!   imports its Email (`deliver::deliver_in_commit`), so a crash or a replay never loses or
//!   doubles one, whatever the batching;
//! - a batch that fails as a whole (an error that is not a conflict) is retried one delivery per
//!   commit, so one bad message cannot hold back the others;
//! - nothing waits forever: a drain task runs while its account has queued deliveries, and
//!   every queued delivery is answered (its requester may have gone; then nobody listens).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::deliver::{RecipientDelivery, RecipientOutcome, commit_reads, deliver_in_commit};
use crate::smtp::incoming::unix_now;
use crate::store::commit::commit_account;
use crate::store::{Store, StoreError, StoreResult};

/// Deliveries filed in one commit at most (bounds the transaction's size and age).
pub const MAX_BATCH: usize = 64;

type Answer = oneshot::Sender<StoreResult<RecipientOutcome>>;

struct Queued {
    delivery: Arc<RecipientDelivery>,
    answer: Answer,
}

/// The per-account queues; an account is present exactly while its drain task runs.
pub struct Filer {
    store: Store,
    accounts: Mutex<HashMap<u32, Vec<Queued>>>,
}

impl Filer {
    pub fn new(store: Store) -> Arc<Filer> {
        Arc::new(Filer {
            store,
            accounts: Mutex::new(HashMap::new()),
        })
    }

    /// Files one recipient's delivery; answers once the commit that holds it is durable.
    pub async fn file(
        self: &Arc<Self>,
        delivery: RecipientDelivery,
    ) -> StoreResult<RecipientOutcome> {
        let account_id = delivery.account_id;
        let (answer, answered) = oneshot::channel();
        let queued = Queued {
            delivery: Arc::new(delivery),
            answer,
        };
        let start_drain = match self.lock().entry(account_id) {
            Entry::Occupied(mut waiting) => {
                waiting.get_mut().push(queued);
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(vec![queued]);
                true
            }
        };
        if start_drain {
            tokio::spawn(Arc::clone(self).drain(account_id));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::io("the delivery filer stopped")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Vec<Queued>>> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits the account's queued deliveries, batch after batch, until none is left.
    async fn drain(self: Arc<Self>, account_id: u32) {
        loop {
            let batch: Vec<Queued> = {
                let mut accounts = self.lock();
                let Some(waiting) = accounts.get_mut(&account_id) else {
                    return;
                };
                if waiting.is_empty() {
                    accounts.remove(&account_id);
                    return;
                }
                let take = waiting.len().min(MAX_BATCH);
                waiting.drain(..take).collect()
            };
            self.commit_batch(account_id, batch).await;
        }
    }

    async fn commit_batch(&self, account_id: u32, batch: Vec<Queued>) {
        let deliveries: Arc<Vec<Arc<RecipientDelivery>>> = Arc::new(
            batch
                .iter()
                .map(|queued| Arc::clone(&queued.delivery))
                .collect(),
        );
        let committed = commit_account(&self.store, account_id, move |tx, changes| {
            let deliveries = Arc::clone(&deliveries);
            Box::pin(async move {
                let now = unix_now();
                let (mut keys, mut ranges) = (Vec::new(), Vec::new());
                for delivery in deliveries.iter() {
                    commit_reads(delivery, now, &mut keys, &mut ranges);
                }
                // Recipients of one message share its entry and prepared record.
                keys.sort_unstable();
                keys.dedup();
                ranges.sort_unstable_by(|a, b| a.begin.cmp(&b.begin));
                ranges.dedup_by(|a, b| a.begin == b.begin && a.end == b.end);
                tx.prefetch(&keys, &ranges).await?;
                let mut outcomes = Vec::with_capacity(deliveries.len());
                for delivery in deliveries.iter() {
                    outcomes.push(deliver_in_commit(tx, changes, delivery).await?);
                }
                Ok(outcomes)
            })
        })
        .await;
        match committed {
            Ok(committed) => {
                tracing::debug!(
                    account_id,
                    deliveries = batch.len(),
                    version = committed.version,
                    "delivery batch committed"
                );
                for (queued, outcome) in batch.into_iter().zip(committed.value) {
                    let _ = queued.answer.send(Ok(outcome));
                }
            }
            Err(error) if batch.len() == 1 => {
                for queued in batch {
                    let _ = queued
                        .answer
                        .send(Err(StoreError::new(error.kind, error.message.clone())));
                }
            }
            Err(error) => {
                // Find the one that fails: each alone, so the others still get through.
                tracing::warn!(account_id, %error, deliveries = batch.len(), "delivery batch failed; filing one by one");
                for queued in batch {
                    let delivery = Arc::clone(&queued.delivery);
                    let alone = commit_account(&self.store, account_id, move |tx, changes| {
                        let delivery = Arc::clone(&delivery);
                        Box::pin(async move { deliver_in_commit(tx, changes, &delivery).await })
                    })
                    .await
                    .map(|committed| committed.value);
                    let _ = queued.answer.send(alone);
                }
            }
        }
    }
}
