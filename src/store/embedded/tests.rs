//! Runs the backend test suite, and the embedded store's own tests (durability across
//! reopen, the lock, the format version), against a temporary data directory.

use std::sync::Arc;

use super::*;
use crate::store::testsuite;
use crate::store::{Store, keys};

fn open_store(dir: &Path) -> Store {
    Store::new(Arc::new(
        EmbeddedBackend::open(dir).expect("open embedded store"),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    testsuite::run_all(&store).await;
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_survive_reopen_and_the_format_version_is_stamped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let key = keys::KeyBuilder::new(keys::SUBSPACE_TEST)
        .str("durable")
        .build();
    testsuite::put(&store, &[(key.clone(), b"kept".to_vec())]).await;
    store.close().await.expect("close");
    let mut late = store
        .backend()
        .begin()
        .await
        .err()
        .expect("closed store refuses begin");
    late.message.clear();

    let reopened = open_store(dir.path());
    assert_eq!(
        testsuite::get(&reopened, &key).await,
        Some(b"kept".to_vec())
    );
    assert_eq!(
        testsuite::get(&reopened, keys::META_FORMAT_VERSION).await,
        Some(keys::FORMAT_VERSION.to_be_bytes().to_vec())
    );
    reopened.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_data_dir_is_locked_and_an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let error = EmbeddedBackend::open(dir.path()).expect_err("second open must fail");
    assert_eq!(error.kind, StoreErrorKind::Locked, "{error}");
    assert!(error.message.contains("in use"), "{error}");

    // A store of the previous format opens and is stamped with the current one.
    store
        .transact(|tx| {
            Box::pin(async move { tx.set(keys::META_FORMAT_VERSION, &1u32.to_be_bytes()) })
        })
        .await
        .expect("set version");
    store.close().await.expect("close");
    let store = open_store(dir.path());
    assert_eq!(
        testsuite::get(&store, keys::META_FORMAT_VERSION).await,
        Some(keys::FORMAT_VERSION.to_be_bytes().to_vec())
    );

    // Pretend a future release wrote the store.
    store
        .transact(|tx| {
            Box::pin(async move { tx.set(keys::META_FORMAT_VERSION, &99u32.to_be_bytes()) })
        })
        .await
        .expect("set version");
    store.close().await.expect("close");
    let error = EmbeddedBackend::open(dir.path()).expect_err("unknown format");
    assert_eq!(error.kind, StoreErrorKind::Corrupt, "{error}");
    assert!(error.message.contains("format version 99"), "{error}");
}

/// Set in the child process of [`acknowledged_commits_survive_kill_9`].
const CRASH_CHILD_DIR: &str = "TERN_STORE_CRASH_CHILD_DIR";
const CRASH_TEST_NAME: &str = "store::embedded::tests::acknowledged_commits_survive_kill_9";

fn crash_key(writer: u64, sequence: u64) -> Vec<u8> {
    keys::KeyBuilder::new(keys::SUBSPACE_TEST)
        .str("crash")
        .u64(writer)
        .u64(sequence)
        .build()
}

/// The child: commits forever from 8 concurrent writers (so commits share fsyncs) and prints
/// each commit once it is acknowledged.
fn run_crash_child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = open_store(dir);
        let mut writers = Vec::new();
        for writer in 0..8u64 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for sequence in 0u64.. {
                    let key = crash_key(writer, sequence);
                    store
                        .transact(|tx| {
                            let key = key.clone();
                            Box::pin(async move { tx.set(&key, b"acknowledged") })
                        })
                        .await
                        .expect("commit");
                    println!("acked {writer} {sequence}");
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
    });
}

/// An acknowledged commit survives `kill -9` of the process: a child process commits and
/// reports acknowledgements; it is killed mid-stream; every acknowledged key must be there.
#[test]
fn acknowledged_commits_survive_kill_9() {
    use std::io::BufRead;

    if let Some(child_dir) = std::env::var_os(CRASH_CHILD_DIR) {
        run_crash_child(Path::new(&child_dir));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            CRASH_TEST_NAME,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the committing child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acknowledged = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        let Some(rest) = line.strip_prefix("acked ") else {
            continue;
        };
        let mut numbers = rest
            .split(' ')
            .map(|number| number.parse::<u64>().expect("number"));
        let (Some(writer), Some(sequence)) = (numbers.next(), numbers.next()) else {
            panic!("malformed line {line:?}");
        };
        acknowledged.push((writer, sequence));
        if acknowledged.len() >= 400 {
            break;
        }
    }
    // SIGKILL: no destructor, no flush, no clean close.
    child.kill().expect("kill -9 the child");
    child.wait().expect("reap the child");
    assert!(acknowledged.len() >= 400, "the child stopped early");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = open_store(dir.path());
        for (writer, sequence) in &acknowledged {
            assert_eq!(
                testsuite::get(&store, &crash_key(*writer, *sequence)).await,
                Some(b"acknowledged".to_vec()),
                "acknowledged commit {writer}/{sequence} was lost"
            );
        }
        store.close().await.expect("close");
    });
}
