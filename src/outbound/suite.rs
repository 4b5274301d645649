//! The outbound queue's part of the backend test suite (`store::testsuite` runs it on every
//! backend). Entries live in the real queue subspace; each test uses its own times and ids
//! and removes what it created, so it can run against a shared cluster.

use bytes::Bytes;

use super::queue::{self, OutboundMessage, RecipientState};
use crate::store::blob::{BlobHash, BlobStore};
use crate::store::keys::{BLOB_REFCOUNT, blob_by_digest, le_i64};
use crate::store::testsuite::{SuiteTest, suite_test};
use crate::store::{Store, StoreError};

pub fn tests() -> Vec<SuiteTest> {
    vec![
        suite_test!(enqueue_holds_the_blob_and_cancel_releases_it),
        suite_test!(the_schedule_is_a_range_read_in_due_order),
        suite_test!(claims_hide_an_entry_until_they_lapse),
        suite_test!(held_entries_leave_the_schedule_until_retried),
        suite_test!(the_rate_limit_refuses_then_refills),
    ]
}

/// A time far from any other test's (and from now), so due sets do not mix.
fn base_time() -> i64 {
    1_000_000_000_000 + i64::from(rand::random::<u32>() >> 2) * 1_000
}

async fn stored_blob(store: &Store) -> BlobHash {
    let content = format!(
        "Subject: queue test {}\r\n\r\nbody\r\n",
        rand::random::<u64>()
    );
    BlobStore::new(store.clone())
        .put(9_201, Bytes::from(content))
        .await
        .expect("blob")
        .id
}

async fn refcount(store: &Store, hash: &BlobHash) -> i64 {
    let key = blob_by_digest(BLOB_REFCOUNT, hash.as_bytes());
    store
        .read(|tx| Box::pin(async move { tx.get(&key).await }))
        .await
        .expect("read")
        .map_or(0, |bytes| le_i64(&bytes))
}

async fn enqueue_at(store: &Store, hash: BlobHash, send_at: i64, now: i64) -> u64 {
    let mut message = OutboundMessage::new(
        9_201,
        hash,
        10,
        "sender@example.test",
        ["rcpt@example.net".to_owned()],
        send_at,
    );
    // Bounces are not rate limited: these tests are about the schedule.
    message.kind = queue::MessageKind::Bounce;
    message.created_at = now;
    store
        .transact(|tx| {
            let message = message.clone();
            Box::pin(async move {
                queue::enqueue(tx, &message)
                    .await
                    .map_err(|error| StoreError::io(error.to_string()))
            })
        })
        .await
        .expect("enqueue")
}

async fn due_ids(store: &Store, now: i64) -> Vec<u64> {
    store
        .read(|tx| Box::pin(async move { queue::due(tx, now, 0).await }))
        .await
        .expect("due")
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

async fn remove(store: &Store, id: u64) {
    store
        .transact(|tx| Box::pin(async move { queue::remove(tx, id).await }))
        .await
        .expect("remove");
}

pub async fn enqueue_holds_the_blob_and_cancel_releases_it(store: &Store) {
    let hash = stored_blob(store).await;
    let before = refcount(store, &hash).await;
    let now = base_time();
    let id = enqueue_at(store, hash, now, now).await;
    assert_eq!(refcount(store, &hash).await, before + 1, "enqueue holds");
    let loaded = store
        .read(|tx| Box::pin(async move { queue::load(tx, id).await }))
        .await
        .expect("load")
        .expect("queued");
    assert_eq!(loaded.recipients[0].state, RecipientState::Pending);
    assert_eq!(loaded.recipients[0].next_attempt_at, now);
    assert_eq!(loaded.scheduled_at, Some(now));

    let cancel = |store: Store| async move {
        store
            .transact(|tx| Box::pin(async move { queue::cancel(tx, id).await }))
            .await
            .expect("cancel")
    };
    assert!(cancel(store.clone()).await, "a pending message cancels");
    assert!(!cancel(store.clone()).await, "and only once");
    assert_eq!(refcount(store, &hash).await, before, "cancel releases");
    assert!(!due_ids(store, now).await.contains(&id));

    // A missing blob is refused.
    let mut orphan = OutboundMessage::new(1, BlobHash::of(b"never stored"), 1, "", [], 0);
    orphan.recipients = vec![queue::OutboundRecipient::new("a@example.net")];
    let refused = store
        .transact(|tx| {
            let orphan = orphan.clone();
            Box::pin(async move { Ok(queue::enqueue(tx, &orphan).await.is_err()) })
        })
        .await
        .expect("transact");
    assert!(refused, "a message without its blob is refused");
}

pub async fn the_schedule_is_a_range_read_in_due_order(store: &Store) {
    let hash = stored_blob(store).await;
    let base = base_time();
    let mut ids = Vec::new();
    // Enqueued out of order; due order is by send time.
    for offset in [5_000, 1_000, 3_000, 2_000, 4_000] {
        ids.push((
            base + offset,
            enqueue_at(store, hash, base + offset, base).await,
        ));
    }
    let ours = |due: Vec<u64>| -> Vec<u64> {
        due.into_iter()
            .filter(|id| ids.iter().any(|(_, ours)| ours == id))
            .collect()
    };
    assert!(
        ours(due_ids(store, base).await).is_empty(),
        "nothing due yet"
    );
    let due_at_3 = ours(due_ids(store, base + 3_000).await);
    let mut expected: Vec<(i64, u64)> = ids
        .iter()
        .copied()
        .filter(|(at, _)| *at <= base + 3_000)
        .collect();
    expected.sort();
    assert_eq!(
        due_at_3,
        expected.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        "due entries earliest first"
    );
    let limited = store
        .read(|tx| Box::pin(async move { queue::due(tx, base + 10_000, 2).await }))
        .await
        .expect("due");
    assert_eq!(limited.len(), 2, "the limit bounds the read");
    for (_, id) in &ids {
        remove(store, *id).await;
    }
    assert!(ours(due_ids(store, base + 10_000).await).is_empty());
}

pub async fn claims_hide_an_entry_until_they_lapse(store: &Store) {
    let hash = stored_blob(store).await;
    let now = base_time();
    let id = enqueue_at(store, hash, now, now).await;
    let claim = |store: Store, owner: u64, at: i64| async move {
        store
            .transact(|tx| {
                Box::pin(async move {
                    match queue::load(tx, id).await?.and_then(|m| m.scheduled_at) {
                        Some(key_at) => queue::claim(tx, key_at, id, owner, at, at + 60_000).await,
                        None => Ok(None),
                    }
                })
            })
            .await
            .expect("claim")
    };
    assert!(
        claim(store.clone(), 1, now).await.is_some(),
        "due entries can be claimed"
    );
    assert!(
        claim(store.clone(), 2, now).await.is_none(),
        "a live claim excludes others"
    );
    assert!(!due_ids(store, now + 59_999).await.contains(&id));
    assert!(
        due_ids(store, now + 60_000).await.contains(&id),
        "a lapsed claim is due again"
    );
    let cancelled = store
        .transact(|tx| Box::pin(async move { queue::cancel(tx, id).await }))
        .await
        .expect("cancel");
    assert!(!cancelled, "a message being sent cannot be canceled");
    // Start-up recovery drops the claims of a dead process.
    let released = store
        .transact(|tx| Box::pin(async move { queue::release_stale_claims(tx, 99, 0).await }))
        .await
        .expect("release");
    assert!(released >= 1);
    assert!(due_ids(store, now).await.contains(&id), "due at once again");
    remove(store, id).await;
}

pub async fn held_entries_leave_the_schedule_until_retried(store: &Store) {
    let hash = stored_blob(store).await;
    let now = base_time();
    let id = enqueue_at(store, hash, now, now).await;
    store
        .transact(|tx| Box::pin(async move { queue::hold(tx, id, "no valid recipient").await }))
        .await
        .expect("hold");
    assert!(!due_ids(store, now + 1_000_000).await.contains(&id));
    let held = store
        .read(|tx| Box::pin(async move { queue::held_ids(tx, 0).await }))
        .await
        .expect("held");
    assert!(held.contains(&id));
    store
        .transact(|tx| Box::pin(async move { queue::retry_now(tx, id, now + 5).await }))
        .await
        .expect("retry");
    assert!(due_ids(store, now + 5).await.contains(&id));
    let held = store
        .read(|tx| Box::pin(async move { queue::held_ids(tx, 0).await }))
        .await
        .expect("held");
    assert!(!held.contains(&id));
    let before = refcount(store, &hash).await;
    remove(store, id).await;
    assert_eq!(refcount(store, &hash).await, before - 1);
}

pub async fn the_rate_limit_refuses_then_refills(store: &Store) {
    use super::rate;
    let account_id = 0x4000_0000 | (rand::random::<u32>() >> 2);
    let now = base_time();
    let take = |store: Store, count: u64, at: i64| async move {
        store
            .transact(|tx| Box::pin(async move { rate::take(tx, account_id, count, at).await }))
            .await
            .expect("take")
    };
    // The default bucket: 200 recipients, refilled at 1,000 an hour (one per 3.6 s).
    assert_eq!(take(store.clone(), 150, now).await, Ok(()));
    assert_eq!(take(store.clone(), 50, now).await, Ok(()));
    let refused = take(store.clone(), 2, now).await;
    assert_eq!(refused, Err(8), "2 tokens take 7.2 s to come back");
    assert_eq!(take(store.clone(), 1, now + 3_600).await, Ok(()));
    assert!(take(store.clone(), 1, now + 3_600).await.is_err());
}
