//! Backend-suite tests of the delivery keys (registered in `store::testsuite`, so they run on
//! FoundationDB too): the classifier's counts under repeated and reversed training, and the
//! duplicate window.

use std::collections::BTreeSet;

use crate::smtp::delivery::duplicate::{self, Fingerprint};
use crate::smtp::spam::bayes::{self, Class};
use crate::store::testsuite::{SuiteTest, suite_test};
use crate::store::{KeyRange, Store, keys};

pub fn tests() -> Vec<SuiteTest> {
    vec![
        suite_test!(training_twice_counts_once_and_a_reversal_moves_the_counts),
        suite_test!(a_fingerprint_is_a_duplicate_only_under_another_queue_id_in_the_window),
    ]
}

fn random_account() -> u32 {
    // Far from the accounts other suites use; cleared at the end.
    0x7000_0000 | (rand::random::<u32>() >> 4)
}

async fn clear_account(store: &Store, account_id: u32) {
    store
        .transact(move |tx| {
            Box::pin(async move {
                tx.clear_range(&KeyRange::prefix(&keys::account_prefix(account_id).build()))
            })
        })
        .await
        .expect("clear");
}

pub async fn training_twice_counts_once_and_a_reversal_moves_the_counts(store: &Store) {
    let account_id = random_account();
    let tokens: BTreeSet<u64> = [1u64, 2, 3].into_iter().collect();
    let train = |class: Class| {
        let tokens = tokens.clone();
        store.transact(move |tx| {
            let tokens = tokens.clone();
            Box::pin(async move { bayes::train(tx, account_id, 42, &tokens, class).await })
        })
    };
    assert!(train(Class::Spam).await.expect("train"));
    assert!(
        !train(Class::Spam).await.expect("again"),
        "a replay counts once"
    );
    let totals = |store: Store| async move {
        store
            .read(move |tx| Box::pin(bayes::totals(tx, account_id)))
            .await
            .expect("totals")
    };
    assert_eq!(totals(store.clone()).await, (1, 0));
    let spammy = store
        .read({
            let tokens = tokens.clone();
            move |tx| Box::pin(async move { bayes::classify(tx, account_id, &tokens, 1).await })
        })
        .await
        .expect("classify")
        .expect("votes after one spam");
    // Three tokens seen once, in spam only: each f(w) = 0.75; combined clearly spammy.
    assert!(spammy > 0.8, "{spammy}");
    assert!(train(Class::Ham).await.expect("reverse"));
    assert_eq!(
        totals(store.clone()).await,
        (0, 1),
        "the spam counts moved to ham"
    );
    clear_account(store, account_id).await;
}

pub async fn a_fingerprint_is_a_duplicate_only_under_another_queue_id_in_the_window(store: &Store) {
    let account_id = random_account();
    let fingerprint = Fingerprint::of(Some("<x@y>"), b"body").expect("fingerprint");
    let day = 86_400;
    let now = 20_000 * day + 100;
    let check = |queue_id: u64, at: i64| {
        store.read(move |tx| {
            Box::pin(async move {
                duplicate::is_duplicate(tx, account_id, fingerprint, queue_id, at).await
            })
        })
    };
    assert!(!check(1, now).await.expect("check"));
    store
        .transact(move |tx| {
            Box::pin(async move { duplicate::remember(tx, account_id, fingerprint, 1, now) })
        })
        .await
        .expect("remember");
    assert!(
        !check(1, now).await.expect("same entry"),
        "a replay of the same entry"
    );
    assert!(
        check(2, now).await.expect("retry"),
        "a retried transmission"
    );
    assert!(
        check(2, now + day).await.expect("next day"),
        "still in the window"
    );
    assert!(
        !check(2, now + 2 * day).await.expect("later"),
        "out of the window"
    );
    // A write two days later forgets the old day.
    store
        .transact(move |tx| {
            Box::pin(
                async move { duplicate::remember(tx, account_id, fingerprint, 3, now + 2 * day) },
            )
        })
        .await
        .expect("remember later");
    let old_day_left = store
        .read(move |tx| {
            Box::pin(async move {
                let prefix = keys::account_prefix(account_id)
                    .u8(keys::ACCT_DELIVERY_SEEN)
                    .u32(20_000)
                    .build();
                tx.get_range(&KeyRange::prefix(&prefix), Default::default())
                    .await
            })
        })
        .await
        .expect("range");
    assert!(old_day_left.is_empty());
    clear_account(store, account_id).await;
}
