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
