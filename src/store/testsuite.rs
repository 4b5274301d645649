//! The ONE backend test suite. Every backend runs exactly these tests (the embedded store in
//! `embedded/tests.rs`, FoundationDB in `fdb.rs` when `FDB_CLUSTER_FILE` is set), so a
//! behaviour the server relies on cannot differ between them.
//!
//! Each test is a plain `async fn(&Store)` that panics on failure; [`all_tests`] lists them
//! by name and [`run_all`] runs every one, reporting all failures rather than the first.
//! Store tests write only under a random prefix of `keys::SUBSPACE_TEST` and clear it, so the
//! suite can run against a shared cluster. Other layers add their tests to [`all_tests`]
//! (the commit path's live in `commit::suite`).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

use super::keys::{KeyBuilder, SUBSPACE_TEST};
use super::{
    BoxFuture, KeyRange, KeyValue, MAX_KEY_BYTES, MAX_TRANSACTION_AGE, MAX_VALUE_BYTES,
    RangeOptions, Store, StoreErrorKind, StoreResult,
};

/// One named test of the suite.
#[derive(Clone, Copy)]
pub struct SuiteTest {
    pub name: &'static str,
    pub run: for<'a> fn(&'a Store) -> BoxFuture<'a, ()>,
}

/// Wraps `async fn name(store: &Store)` as a [`SuiteTest`].
macro_rules! suite_test {
    ($test:path) => {{
        fn run(store: &$crate::store::Store) -> $crate::store::BoxFuture<'_, ()> {
            Box::pin($test(store))
        }
        $crate::store::testsuite::SuiteTest {
            name: stringify!($test),
            run,
        }
    }};
}
pub(crate) use suite_test;

/// Every test of the suite, in the order [`run_all`] runs them.
pub fn all_tests() -> Vec<SuiteTest> {
    let mut tests = vec![
        suite_test!(set_get_clear_and_snapshot_isolation),
        suite_test!(read_your_writes_in_gets_and_ranges),
        suite_test!(prefetched_reads_answer_like_plain_reads),
        suite_test!(conflicting_read_write_fails_one_commit),
        suite_test!(simultaneous_conflicting_commits_admit_exactly_one),
        suite_test!(transact_retries_until_every_increment_lands),
        suite_test!(atomic_adds_never_conflict),
        suite_test!(unconflicted_reads_see_counters_without_conflicting),
        suite_test!(range_reads_at_limit_conflict_only_up_to_last_key),
        suite_test!(ranges_forward_reverse_limits_and_prefixes),
        suite_test!(clear_range_is_half_open),
        suite_test!(limits_are_foundationdb_limits),
        suite_test!(old_transactions_fail_as_too_old),
        suite_test!(watches_fire_on_set_clear_add_and_clear_range),
    ];
    tests.extend(super::chunked::suite::tests());
    tests.extend(super::blob::suite::tests());
    tests.extend(super::ownership_suite::tests());
    tests.extend(crate::search::queue::suite::tests());
    tests.extend(crate::outbound::suite::tests());
    tests.extend(crate::smtp::incoming::suite::tests());
    tests.extend(crate::smtp::delivery::suite::tests());
    tests.extend([
        suite_test!(super::commit::suite::change_log_round_trip),
        suite_test!(super::commit::suite::change_log_pruning),
        suite_test!(super::commit::suite::account_watch_fires_after_commit),
        suite_test!(super::commit::suite::concurrent_commits_serialize),
        suite_test!(super::purge::suite::purge_removes_account_data_and_releases_blob_links),
        suite_test!(crate::mail::store::suite::threads_merge_and_counts_stay_exact),
        suite_test!(crate::mail::store::suite::removing_a_mailbox_from_its_emails),
        suite_test!(crate::mail::store::suite::quota_usage_is_exact_and_the_warning_fires_once),
        suite_test!(crate::mail::store::suite::quota_backfill_counts_older_accounts_once),
        suite_test!(crate::mail::store::suite::blob_index_follows_imports_destroys_and_the_upgrade),
        suite_test!(crate::mail::quota::suite::domain_usage_is_the_sum_of_its_accounts),
        suite_test!(crate::mail::quota::suite::accounts_of_a_limited_domain_do_not_conflict),
        suite_test!(crate::mail::parsed::suite::email_metadata_reads_in_both_stored_forms),
    ]);
    tests
}

/// Runs every test of [`all_tests`] against `store` and panics listing each failure.
pub async fn run_all(store: &Store) {
    run(store, &all_tests()).await;
}

/// Runs `tests` in order; a failing test does not stop the others.
pub async fn run(store: &Store, tests: &[SuiteTest]) {
    let mut failures = Vec::new();
    for test in tests {
        let started = std::time::Instant::now();
        let outcome = AssertUnwindSafe((test.run)(store)).catch_unwind().await;
        match outcome {
            Ok(()) => eprintln!("store suite: {} ok ({:?})", test.name, started.elapsed()),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                eprintln!("store suite: {} FAILED: {message}", test.name);
                failures.push(format!("{}: {message}", test.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} store suite test(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A private corner of the key space for one test.
pub(crate) struct Scratch {
    prefix: Vec<u8>,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch {
            prefix: KeyBuilder::new(SUBSPACE_TEST).u64(rand::random()).build(),
        }
    }

    pub(crate) fn key(&self, name: &[u8]) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(name);
        key
    }

    pub(crate) fn range(&self, begin: &[u8], end: &[u8]) -> KeyRange {
        KeyRange {
            begin: self.key(begin),
            end: self.key(end),
        }
    }

    pub(crate) fn all(&self) -> KeyRange {
        KeyRange::prefix(&self.prefix)
    }

    /// Strips the prefix from every key of `pairs`, for readable assertions.
    pub(crate) fn names(&self, pairs: &[KeyValue]) -> Vec<Vec<u8>> {
        pairs
            .iter()
            .map(|(key, _)| key[self.prefix.len()..].to_vec())
            .collect()
    }

    pub(crate) async fn cleanup(&self, store: &Store) {
        let range = self.all();
        store
            .transact(|tx| {
                let range = range.clone();
                Box::pin(async move { tx.clear_range(&range) })
            })
            .await
            .expect("clear scratch space");
    }
}

pub(crate) async fn put(store: &Store, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let owned = pairs.to_vec();
    store
        .transact(|tx| {
            let owned = owned.clone();
            Box::pin(async move {
                for (key, value) in &owned {
                    tx.set(key, value)?;
                }
                Ok(())
            })
        })
        .await
        .expect("put");
}

pub(crate) async fn get(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
    let mut tx = store.backend().begin().await.expect("begin");
    tx.get(key).await.expect("get")
}

pub(crate) async fn scan(store: &Store, range: &KeyRange, options: RangeOptions) -> Vec<KeyValue> {
    let mut tx = store.backend().begin().await.expect("begin");
    tx.get_range(range, options).await.expect("get_range")
}

fn names(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|name| name.as_bytes().to_vec()).collect()
}

fn opts(limit: usize, reverse: bool) -> RangeOptions {
    RangeOptions { limit, reverse }
}

fn expect_kind<T: std::fmt::Debug>(result: StoreResult<T>, kind: StoreErrorKind, what: &str) {
    match result {
        Err(error) => assert_eq!(error.kind, kind, "{what}: {error}"),
        Ok(value) => panic!("{what}: expected {kind:?}, got Ok({value:?})"),
    }
}

pub async fn set_get_clear_and_snapshot_isolation(store: &Store) {
    let scratch = Scratch::new();
    let key = scratch.key(b"k");
    let mut tx = store.backend().begin().await.expect("begin");
    assert_eq!(tx.get(&key).await.expect("get"), None);
    tx.set(&key, b"one").expect("set");
    assert_eq!(tx.get(&key).await.expect("get"), Some(b"one".to_vec()));
    tx.commit().await.expect("commit");
    assert_eq!(get(store, &key).await, Some(b"one".to_vec()));

    // A transaction keeps reading its snapshot after a later commit.
    let mut reader = store.backend().begin().await.expect("begin");
    assert_eq!(reader.get(&key).await.expect("get"), Some(b"one".to_vec()));
    put(store, &[(key.clone(), b"two".to_vec())]).await;
    assert_eq!(reader.get(&key).await.expect("get"), Some(b"one".to_vec()));
    assert_eq!(get(store, &key).await, Some(b"two".to_vec()));

    // Dropping a transaction discards its writes.
    let mut abandoned = store.backend().begin().await.expect("begin");
    abandoned.set(&key, b"never").expect("set");
    drop(abandoned);
    assert_eq!(get(store, &key).await, Some(b"two".to_vec()));

    let mut clearer = store.backend().begin().await.expect("begin");
    clearer.clear(&key).expect("clear");
    assert_eq!(clearer.get(&key).await.expect("get"), None);
    clearer.commit().await.expect("commit");
    assert_eq!(get(store, &key).await, None);
    scratch.cleanup(store).await;
}

pub async fn read_your_writes_in_gets_and_ranges(store: &Store) {
    let scratch = Scratch::new();
    let committed: Vec<(Vec<u8>, Vec<u8>)> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|name| (scratch.key(name.as_bytes()), name.as_bytes().to_vec()))
        .collect();
    put(store, &committed).await;
    put(store, &[(scratch.key(b"n"), 40i64.to_le_bytes().to_vec())]).await;

    let mut tx = store.backend().begin().await.expect("begin");
    tx.set(&scratch.key(b"b"), b"B").expect("set");
    tx.set(&scratch.key(b"bb"), b"BB").expect("set");
    tx.clear(&scratch.key(b"c")).expect("clear");
    tx.clear_range(&scratch.range(b"d", b"f"))
        .expect("clear_range");
    tx.set(&scratch.key(b"e"), b"E")
        .expect("set after clear_range");
    tx.atomic_add(&scratch.key(b"n"), 2).expect("add");
    tx.atomic_add(&scratch.key(b"m"), -5).expect("add");

    assert_eq!(
        tx.get(&scratch.key(b"b")).await.expect("get"),
        Some(b"B".to_vec())
    );
    assert_eq!(tx.get(&scratch.key(b"c")).await.expect("get"), None);
    assert_eq!(tx.get(&scratch.key(b"d")).await.expect("get"), None);
    assert_eq!(
        tx.get(&scratch.key(b"e")).await.expect("get"),
        Some(b"E".to_vec())
    );
    assert_eq!(
        tx.get(&scratch.key(b"n")).await.expect("get"),
        Some(42i64.to_le_bytes().to_vec())
    );

    let all = tx
        .get_range(&scratch.all(), opts(0, false))
        .await
        .expect("range");
    assert_eq!(
        scratch.names(&all),
        names(&["a", "b", "bb", "e", "f", "m", "n"])
    );
    assert_eq!(all[1].1, b"B".to_vec());
    assert_eq!(all[5].1, (-5i64).to_le_bytes().to_vec());
    assert_eq!(all[6].1, 42i64.to_le_bytes().to_vec());
    let reversed = tx
        .get_range(&scratch.all(), opts(3, true))
        .await
        .expect("range");
    assert_eq!(scratch.names(&reversed), names(&["n", "m", "f"]));
    let limited = tx
        .get_range(&scratch.all(), opts(3, false))
        .await
        .expect("range");
    assert_eq!(scratch.names(&limited), names(&["a", "b", "bb"]));
    tx.commit().await.expect("commit");

    let after = scan(store, &scratch.all(), opts(0, false)).await;
    assert_eq!(
        scratch.names(&after),
        names(&["a", "b", "bb", "e", "f", "m", "n"])
    );
    assert_eq!(after[6].1, 42i64.to_le_bytes().to_vec());
    scratch.cleanup(store).await;
}

/// `Transaction::prefetch` is only a hint: whatever it warmed, later reads answer exactly as
/// without it (own writes, limits, reversed ranges, a concurrent commit it must not see), and
/// a prefetched key that is then read conflicts like any read.
pub async fn prefetched_reads_answer_like_plain_reads(store: &Store) {
    let scratch = Scratch::new();
    let committed: Vec<(Vec<u8>, Vec<u8>)> = ["a", "p1", "p2", "p3", "q"]
        .iter()
        .map(|name| (scratch.key(name.as_bytes()), name.as_bytes().to_vec()))
        .collect();
    put(store, &committed).await;

    let mut tx = store.backend().begin().await.expect("begin");
    tx.set(&scratch.key(b"p2"), b"P2")
        .expect("set before prefetch");
    let keys = vec![scratch.key(b"a"), scratch.key(b"missing")];
    let ranges = vec![
        scratch.range(b"p", b"q"),
        // Empty and inverted ranges are fine.
        scratch.range(b"z", b"z"),
        scratch.range(b"z", b"y"),
    ];
    tx.prefetch(&keys, &ranges).await.expect("prefetch");
    // Another commit after the prefetch: invisible to this transaction's reads.
    put(store, &[(scratch.key(b"a"), b"A".to_vec())]).await;
    tx.set(&scratch.key(b"p3"), b"P3")
        .expect("set after prefetch");
    assert_eq!(
        tx.get(&scratch.key(b"a")).await.expect("get"),
        Some(b"a".to_vec())
    );
    assert_eq!(tx.get(&scratch.key(b"missing")).await.expect("get"), None);
    let forward = tx
        .get_range(&scratch.range(b"p", b"q"), opts(2, false))
        .await
        .expect("range");
    assert_eq!(scratch.names(&forward), names(&["p1", "p2"]));
    assert_eq!(forward[1].1, b"P2".to_vec());
    let backward = tx
        .get_range(&scratch.range(b"p", b"q"), opts(0, true))
        .await
        .expect("range");
    assert_eq!(scratch.names(&backward), names(&["p3", "p2", "p1"]));
    assert_eq!(backward[0].1, b"P3".to_vec());
    // `a` was read and has changed since: this transaction must not commit.
    expect_kind(
        tx.commit().await,
        StoreErrorKind::Conflict,
        "commit after reading a changed key",
    );
    assert_eq!(get(store, &scratch.key(b"p3")).await, Some(b"p3".to_vec()));
    scratch.cleanup(store).await;
}

pub async fn conflicting_read_write_fails_one_commit(store: &Store) {
    let scratch = Scratch::new();
    let key = scratch.key(b"x");
    put(store, &[(key.clone(), b"0".to_vec())]).await;
    let mut first = store.backend().begin().await.expect("begin");
    let mut second = store.backend().begin().await.expect("begin");
    first.get(&key).await.expect("get");
    second.get(&key).await.expect("get");
    first.set(&key, b"1").expect("set");
    second.set(&key, b"2").expect("set");
    first.commit().await.expect("first commit wins");
    expect_kind(
        second.commit().await,
        StoreErrorKind::Conflict,
        "second commit",
    );
    assert_eq!(get(store, &key).await, Some(b"1".to_vec()));

    // Blind writes (no reads) never conflict; the last commit wins.
    let mut blind_a = store.backend().begin().await.expect("begin");
    let mut blind_b = store.backend().begin().await.expect("begin");
    blind_a.set(&key, b"a").expect("set");
    blind_b.set(&key, b"b").expect("set");
    blind_a.commit().await.expect("blind commit");
    blind_b.commit().await.expect("blind commit");
    assert_eq!(get(store, &key).await, Some(b"b".to_vec()));

    // A read of a key that a concurrent transaction did not write does not conflict.
    let other = scratch.key(b"y");
    let mut reader = store.backend().begin().await.expect("begin");
    reader.get(&other).await.expect("get");
    reader.set(&other, b"mine").expect("set");
    put(store, &[(key.clone(), b"c".to_vec())]).await;
    reader.commit().await.expect("disjoint commit");

    // A range read conflicts with an insert into the range.
    let mut scanner = store.backend().begin().await.expect("begin");
    scanner
        .get_range(&scratch.range(b"m", b"z"), opts(0, false))
        .await
        .expect("range");
    scanner.set(&scratch.key(b"summary"), b"1").expect("set");
    put(store, &[(scratch.key(b"p"), b"new".to_vec())]).await;
    expect_kind(
        scanner.commit().await,
        StoreErrorKind::Conflict,
        "phantom insert",
    );
    scratch.cleanup(store).await;
}

/// Commits sent at the same moment (on the embedded store they share one group commit) are
/// still checked against each other.
pub async fn simultaneous_conflicting_commits_admit_exactly_one(store: &Store) {
    let scratch = Scratch::new();
    let key = scratch.key(b"contended");
    for round in 0u8..5 {
        // Every contender reads before any commits (a commit may start as soon as it is
        // called): each one's snapshot precedes every write, so exactly one may win.
        let mut transactions = Vec::new();
        for contender in 0u8..4 {
            let mut tx = store.backend().begin().await.expect("begin");
            tx.get(&key).await.expect("get");
            tx.set(&key, &[round, contender]).expect("set");
            transactions.push(tx);
        }
        let contenders: Vec<_> = transactions.into_iter().map(|tx| tx.commit()).collect();
        let outcomes = futures_util::future::join_all(contenders).await;
        let committed = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(committed, 1, "round {round}: {outcomes:?}");
        for outcome in outcomes {
            if let Err(error) = outcome {
                assert_eq!(error.kind, StoreErrorKind::Conflict, "{error}");
            }
        }
    }
    scratch.cleanup(store).await;
}

pub async fn transact_retries_until_every_increment_lands(store: &Store) {
    let scratch = Scratch::new();
    let key = scratch.key(b"counter");
    let workers = 8;
    let increments_each = 5;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let store = store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..increments_each {
                store
                    .transact(|tx| {
                        let key = key.clone();
                        Box::pin(async move {
                            let current = tx
                                .get(&key)
                                .await?
                                .map(|bytes| super::keys::be_u64(&bytes).unwrap_or(0))
                                .unwrap_or(0);
                            tokio::task::yield_now().await;
                            tx.set(&key, &(current + 1).to_be_bytes())
                        })
                    })
                    .await
                    .expect("transact");
            }
        }));
    }
    for task in tasks {
        task.await.expect("join");
    }
    let total = get(store, &key)
        .await
        .and_then(|bytes| super::keys::be_u64(&bytes));
    assert_eq!(total, Some(workers * increments_each));
    scratch.cleanup(store).await;
}

pub async fn atomic_adds_never_conflict(store: &Store) {
    let scratch = Scratch::new();
    let key = scratch.key(b"n");
    let mut first = store.backend().begin().await.expect("begin");
    let mut second = store.backend().begin().await.expect("begin");
    first.atomic_add(&key, 5).expect("add");
    second.atomic_add(&key, -2).expect("add");
    first.commit().await.expect("commit");
    second.commit().await.expect("add does not conflict");
    assert_eq!(get(store, &key).await, Some(3i64.to_le_bytes().to_vec()));
    scratch.cleanup(store).await;
}

/// Two accounts' commits that both read a shared counter without a conflict and add to it
/// both land (a domain's usage); an ordinary read of it would fail the later one.
pub async fn unconflicted_reads_see_counters_without_conflicting(store: &Store) {
    let scratch = Scratch::new();
    let counter = scratch.key(b"shared");
    put(store, &[(counter.clone(), 10i64.to_le_bytes().to_vec())]).await;
    let mut first = store.backend().begin().await.expect("begin");
    let mut second = store.backend().begin().await.expect("begin");
    for tx in [&mut first, &mut second] {
        let seen = tx.get_unconflicted(&counter).await.expect("read");
        assert_eq!(seen, Some(10i64.to_le_bytes().to_vec()));
        tx.atomic_add(&counter, 1).expect("add");
        // Its own add is seen, still without a conflict.
        let mine = tx.get_unconflicted(&counter).await.expect("read own");
        assert_eq!(mine, Some(11i64.to_le_bytes().to_vec()));
    }
    first.commit().await.expect("commit");
    second
        .commit()
        .await
        .expect("an unconflicted read does not conflict");
    assert_eq!(
        get(store, &counter).await,
        Some(12i64.to_le_bytes().to_vec())
    );

    // The same with an ordinary read: the later commit is refused.
    let mut reader = store.backend().begin().await.expect("begin");
    let mut writer = store.backend().begin().await.expect("begin");
    reader.get(&counter).await.expect("read");
    reader.atomic_add(&counter, 1).expect("add");
    writer.atomic_add(&counter, 1).expect("add");
    writer.commit().await.expect("commit");
    expect_kind(
        reader.commit().await,
        StoreErrorKind::Conflict,
        "ordinary read",
    );
    scratch.cleanup(store).await;
}

pub async fn range_reads_at_limit_conflict_only_up_to_last_key(store: &Store) {
    let scratch = Scratch::new();
    put(
        store,
        &[
            (scratch.key(b"a"), b"1".to_vec()),
            (scratch.key(b"b"), b"1".to_vec()),
            (scratch.key(b"c"), b"1".to_vec()),
        ],
    )
    .await;
    let mut first_two = store.backend().begin().await.expect("begin");
    let page = first_two
        .get_range(&scratch.all(), opts(2, false))
        .await
        .expect("range");
    assert_eq!(scratch.names(&page), names(&["a", "b"]));
    first_two.set(&scratch.key(b"out"), b"1").expect("set");
    // Beyond the last key read: no conflict.
    put(store, &[(scratch.key(b"bz"), b"1".to_vec())]).await;
    first_two
        .commit()
        .await
        .expect("insert after the page does not conflict");

    let mut last_two = store.backend().begin().await.expect("begin");
    let page = last_two
        .get_range(&scratch.range(b"a", b"d"), opts(2, true))
        .await
        .expect("range");
    assert_eq!(scratch.names(&page), names(&["c", "bz"]));
    last_two.set(&scratch.key(b"out"), b"2").expect("set");
    put(store, &[(scratch.key(b"bzz"), b"1".to_vec())]).await;
    expect_kind(
        last_two.commit().await,
        StoreErrorKind::Conflict,
        "insert inside a reverse page",
    );
    scratch.cleanup(store).await;
}

pub async fn ranges_forward_reverse_limits_and_prefixes(store: &Store) {
    let scratch = Scratch::new();
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0u8..20)
        .map(|index| (scratch.key(&[b'k', index]), vec![index]))
        .collect();
    put(store, &pairs).await;
    // A neighbour whose key extends a prefix must stay outside that prefix's range.
    put(store, &[(scratch.key(b"l"), b"neighbour".to_vec())]).await;
    let subspace = KeyRange::prefix(&scratch.key(b"k"));

    let forward = scan(store, &subspace, opts(0, false)).await;
    assert_eq!(forward, pairs);
    let reverse = scan(store, &subspace, opts(0, true)).await;
    let mut expected_reverse = pairs.clone();
    expected_reverse.reverse();
    assert_eq!(reverse, expected_reverse);
    assert_eq!(
        scan(store, &subspace, opts(5, false)).await,
        pairs[..5].to_vec()
    );
    assert_eq!(
        scan(store, &subspace, opts(5, true)).await,
        expected_reverse[..5].to_vec()
    );
    assert_eq!(scan(store, &subspace, opts(50, false)).await.len(), 20);
    let middle = KeyRange {
        begin: scratch.key(&[b'k', 5]),
        end: scratch.key(&[b'k', 8]),
    };
    assert_eq!(
        scan(store, &middle, opts(0, false)).await,
        pairs[5..8].to_vec()
    );
    let empty = KeyRange {
        begin: scratch.key(&[b'k', 8]),
        end: scratch.key(&[b'k', 5]),
    };
    assert!(scan(store, &empty, opts(0, false)).await.is_empty());
    assert_eq!(scan(store, &scratch.all(), opts(0, false)).await.len(), 21);

    // Keys with 0x00 and 0xFF bytes sort bytewise.
    let binary = vec![
        (scratch.key(b"z\x00"), b"1".to_vec()),
        (scratch.key(b"z\x00\x00"), b"2".to_vec()),
        (scratch.key(b"z\x01"), b"3".to_vec()),
        (scratch.key(b"z\xff"), b"4".to_vec()),
    ];
    put(store, &binary).await;
    assert_eq!(
        scan(store, &KeyRange::prefix(&scratch.key(b"z")), opts(0, false)).await,
        binary
    );
    scratch.cleanup(store).await;
    assert!(scan(store, &scratch.all(), opts(0, false)).await.is_empty());
}

pub async fn clear_range_is_half_open(store: &Store) {
    let scratch = Scratch::new();
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = ["a", "b", "c", "d"]
        .iter()
        .map(|name| (scratch.key(name.as_bytes()), b"v".to_vec()))
        .collect();
    put(store, &pairs).await;
    let range = scratch.range(b"b", b"d");
    store
        .transact(|tx| {
            let range = range.clone();
            Box::pin(async move { tx.clear_range(&range) })
        })
        .await
        .expect("clear_range");
    let left = scan(store, &scratch.all(), opts(0, false)).await;
    assert_eq!(scratch.names(&left), names(&["a", "d"]));
    scratch.cleanup(store).await;
}

pub async fn limits_are_foundationdb_limits(store: &Store) {
    let scratch = Scratch::new();
    let mut tx = store.backend().begin().await.expect("begin");
    let long_key = vec![SUBSPACE_TEST; MAX_KEY_BYTES + 1];
    expect_kind(
        tx.set(&long_key, b"v"),
        StoreErrorKind::LimitExceeded,
        "long key",
    );
    let big_value = vec![7u8; MAX_VALUE_BYTES + 1];
    expect_kind(
        tx.set(&scratch.key(b"big"), &big_value),
        StoreErrorKind::LimitExceeded,
        "big value",
    );
    tx.set(&scratch.key(b"max"), &big_value[..MAX_VALUE_BYTES])
        .expect("a value at the limit is fine");
    tx.commit().await.expect("commit at the limits");
    assert_eq!(
        get(store, &scratch.key(b"max"))
            .await
            .map(|value| value.len()),
        Some(MAX_VALUE_BYTES)
    );

    // 101 values of 100 KB exceed the 10 MB transaction limit, at a write or at commit.
    let mut oversized = store.backend().begin().await.expect("begin");
    let mut refused = false;
    for index in 0u32..101 {
        if oversized
            .set(
                &scratch.key(&index.to_be_bytes()),
                &big_value[..MAX_VALUE_BYTES],
            )
            .is_err()
        {
            refused = true;
            break;
        }
    }
    if !refused {
        expect_kind(
            oversized.commit().await,
            StoreErrorKind::LimitExceeded,
            "oversized transaction",
        );
    }
    assert_eq!(get(store, &scratch.key(&0u32.to_be_bytes())).await, None);
    scratch.cleanup(store).await;
}

pub async fn old_transactions_fail_as_too_old(store: &Store) {
    let scratch = Scratch::new();
    let key = scratch.key(b"k");
    let mut tx = store.backend().begin().await.expect("begin");
    tx.get(&key).await.expect("fresh read");
    tokio::time::sleep(MAX_TRANSACTION_AGE + Duration::from_millis(300)).await;
    let late_read = tx.get(&key).await;
    tx.set(&key, b"late").expect("set");
    let late_commit = tx.commit().await;
    assert!(
        late_read.is_err() || late_commit.is_err(),
        "a transaction older than the age limit must fail"
    );
    let error = late_read.err().or(late_commit.err()).expect("an error");
    assert_eq!(error.kind, StoreErrorKind::TransactionTooOld, "{error}");
    assert!(error.kind.is_retryable());
    assert_eq!(get(store, &key).await, None);
}

pub async fn watches_fire_on_set_clear_add_and_clear_range(store: &Store) {
    let scratch = Scratch::new();
    let key = scratch.key(b"watched");
    let patience = Duration::from_secs(10);

    let watch = store.watch(&key);
    put(store, &[(scratch.key(b"other"), b"1".to_vec())]).await;
    let mut watch = Box::pin(watch);
    let early = tokio::time::timeout(Duration::from_millis(200), &mut watch).await;
    assert!(
        early.is_err(),
        "a write to another key must not fire the watch"
    );
    put(store, &[(key.clone(), b"1".to_vec())]).await;
    tokio::time::timeout(patience, watch)
        .await
        .expect("set fires the watch")
        .expect("watch");

    let watch = store.watch(&key);
    let add_key = key.clone();
    store
        .transact(|tx| {
            let add_key = add_key.clone();
            Box::pin(async move { tx.atomic_add(&add_key, 1) })
        })
        .await
        .expect("add");
    tokio::time::timeout(patience, watch)
        .await
        .expect("atomic_add fires the watch")
        .expect("watch");

    let watch = store.watch(&key);
    let range = scratch.all();
    store
        .transact(|tx| {
            let range = range.clone();
            Box::pin(async move { tx.clear_range(&range) })
        })
        .await
        .expect("clear_range");
    tokio::time::timeout(patience, watch)
        .await
        .expect("clear_range fires the watch")
        .expect("watch");

    put(store, &[(key.clone(), b"2".to_vec())]).await;
    let watch = store.watch(&key);
    let clear_key = key.clone();
    store
        .transact(|tx| {
            let clear_key = clear_key.clone();
            Box::pin(async move { tx.clear(&clear_key) })
        })
        .await
        .expect("clear");
    tokio::time::timeout(patience, watch)
        .await
        .expect("clear fires the watch")
        .expect("watch");
    scratch.cleanup(store).await;
}
