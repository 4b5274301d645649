//! Training from what the user does. `mail::store::update_email` calls `on_email_updated`
//! (`mail::followup::training`)
//! inside the update's own transaction; when the change says "this is spam" (moved into Junk,
//! `$junk` set) or "this is not spam" (moved out of Junk other than to Trash, `$notjunk` set),
//! a durable task `QUEUE_SPAM_TRAINING, account_id, email_id` → class is written there, and the
//! delivery actor's trainer ([`run_pending`]) consumes it: it tokenizes the Email's message and
//! trains the account's classifier in one transaction that also clears the task (only if the
//! task still says the same class — a newer judgement wins). Replaying is harmless: the
//! classifier remembers what each Email was trained as (`bayes::train`).

pub use crate::mail::followup::training::{enqueue, on_email_updated, task_key, version_key};
use crate::mail::store::load_record;
use crate::store::blob::BlobStore;
use crate::store::commit::commit_account;
use crate::store::keys::{KeyBuilder, QUEUE_SPAM_TRAINING, SUBSPACE_QUEUE};
use crate::store::{KeyRange, RangeOptions, Store, StoreResult};

use super::bayes::{self, Class};
use super::tokens::tokenize;

/// Messages larger than this are not read for training.
const MAX_TRAINING_BYTES: u64 = 4 * 1024 * 1024;

/// One pending task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingTask {
    pub account_id: u32,
    pub email_id: u64,
    pub class: Class,
}

/// Up to `limit` pending tasks.
pub async fn pending(store: &Store, limit: usize) -> StoreResult<Vec<TrainingTask>> {
    let prefix = KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_SPAM_TRAINING)
        .build();
    let pairs = store
        .read(move |tx| {
            Box::pin(async move {
                let options = RangeOptions {
                    limit,
                    reverse: false,
                };
                tx.get_range(&KeyRange::prefix(&prefix), options).await
            })
        })
        .await?;
    Ok(pairs
        .iter()
        .filter_map(|(key, value)| {
            let rest = key.get(2..14)?;
            Some(TrainingTask {
                account_id: u32::from_be_bytes(rest[..4].try_into().ok()?),
                email_id: u64::from_be_bytes(rest[4..].try_into().ok()?),
                class: Class::from_u8(*value.first()?)?,
            })
        })
        .collect())
}

/// Consumes up to `limit` tasks; returns how many were handled.
pub async fn run_pending(store: &Store, blobs: &BlobStore, limit: usize) -> StoreResult<usize> {
    let tasks = pending(store, limit).await?;
    for task in &tasks {
        train_one(store, blobs, *task).await?;
    }
    Ok(tasks.len())
}

async fn train_one(store: &Store, blobs: &BlobStore, task: TrainingTask) -> StoreResult<()> {
    let TrainingTask {
        account_id,
        email_id,
        class,
    } = task;
    let record = store
        .read(move |tx| Box::pin(async move { load_record(tx, account_id, email_id).await }))
        .await?;
    let tokens = match &record {
        Some(record) => match blobs
            .read_held_to_vec(&record.blob, MAX_TRAINING_BYTES)
            .await
        {
            Ok(raw) => Some(tokenize(&raw)),
            Err(error) => {
                tracing::debug!(account_id, email_id, %error, "spam training: message unreadable");
                None
            }
        },
        None => None,
    };
    let tokens = std::sync::Arc::new(tokens);
    commit_account(store, account_id, move |tx, _changes| {
        let tokens = std::sync::Arc::clone(&tokens);
        Box::pin(async move {
            let key = task_key(account_id, email_id);
            // A newer judgement replaced this task meanwhile: leave it for the next round.
            if tx.get(&key).await?.as_deref() != Some(&[class as u8][..]) {
                return Ok(());
            }
            if let Some(tokens) = tokens.as_ref() {
                bayes::train(tx, account_id, email_id, tokens, class).await?;
            }
            tx.clear(&key)
        })
    })
    .await?;
    tracing::debug!(account_id, email_id, ?class, "spam classifier trained");
    Ok(())
}
