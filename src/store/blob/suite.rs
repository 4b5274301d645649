//! The blob part of the backend test suite. Accounts are random ids so runs never collide;
//! content is random so deduplication with earlier runs cannot hide a bug.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;

use super::*;
use crate::store::testsuite::{SuiteTest, scan, suite_test};

pub fn tests() -> Vec<SuiteTest> {
    vec![
        suite_test!(blobs_round_trip_with_byte_ranges),
        suite_test!(streamed_uploads_span_many_transactions),
        suite_test!(identical_content_is_stored_once),
        suite_test!(accounts_read_only_blobs_they_reference),
        suite_test!(oversized_and_failed_uploads_leave_nothing_behind),
        suite_test!(collection_honours_links_and_upload_expiry),
        suite_test!(collection_deletes_interrupted_uploads),
        suite_test!(chunks_are_page_sized_and_compressed_when_it_helps),
        suite_test!(blobs_of_the_first_format_still_read),
        suite_test!(whole_reads_take_small_blobs_in_one_transaction),
    ]
}

fn random_content(length: usize) -> Vec<u8> {
    (0..length).map(|_| rand::random::<u8>()).collect()
}

fn random_account() -> u32 {
    rand::random::<u32>() | 1
}

async fn download(
    blobs: &BlobStore,
    account_id: u32,
    hash: &BlobHash,
    range: Range<u64>,
) -> Vec<u8> {
    let download = blobs.get(account_id, hash, range).await.expect("get");
    let mut content = Vec::new();
    let mut stream = download.stream;
    while let Some(piece) = stream.next().await {
        let piece = piece.expect("piece");
        assert!(piece.len() <= format::V1_CHUNK_BYTES as usize);
        content.extend_from_slice(&piece);
    }
    content
}

/// Every key of one blob section, for counting.
async fn section_len(store: &Store, section: u8) -> usize {
    scan(
        store,
        &KeyRange::prefix(&keys::blob_section(section)),
        RangeOptions::default(),
    )
    .await
    .len()
}

async fn stored_meta(store: &Store, hash: &BlobHash) -> Option<BlobMeta> {
    let mut tx = store.backend().begin().await.expect("begin");
    read_meta(tx.as_mut(), hash).await.expect("meta")
}

async fn chunk_count(store: &Store, storage_id: u64) -> usize {
    scan(
        store,
        &KeyRange::prefix(&keys::blob_chunk_prefix(storage_id)),
        RangeOptions::default(),
    )
    .await
    .len()
}

pub async fn blobs_round_trip_with_byte_ranges(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let account = random_account();
    let content = random_content(2 * BLOB_CHUNK_BYTES + 12_345);
    let info = blobs
        .put(account, Bytes::from(content.clone()))
        .await
        .expect("put");
    assert_eq!(info.id, BlobHash::of(&content));
    assert_eq!(info.size, content.len() as u64);
    assert_eq!(BlobHash::from_hex(&info.id.to_hex()), Some(info.id));
    assert_eq!(
        BlobHash::from_hex(&info.id.to_hex().to_uppercase()),
        Some(info.id)
    );
    assert_eq!(BlobHash::from_hex("zz"), None);

    assert_eq!(
        download(&blobs, account, &info.id, 0..u64::MAX).await,
        content
    );
    let boundary = BLOB_CHUNK_BYTES as u64;
    for range in [
        0..10,
        boundary - 5..boundary + 5,
        5..2 * boundary + 1,
        boundary..boundary,
    ] {
        let expected = content[range.start as usize..range.end as usize].to_vec();
        assert_eq!(
            download(&blobs, account, &info.id, range.clone()).await,
            expected,
            "{range:?}"
        );
    }
    let tail = blobs
        .get(account, &info.id, 2 * boundary..u64::MAX)
        .await
        .expect("get");
    assert_eq!(tail.range, 2 * boundary..content.len() as u64);
    assert_eq!(tail.size, content.len() as u64);
    let beyond = blobs
        .get(account, &info.id, u64::MAX - 1..u64::MAX)
        .await
        .expect("get");
    assert!(beyond.range.is_empty());

    let empty = blobs.put(account, Bytes::new()).await.expect("put empty");
    assert_eq!(empty.size, 0);
    assert_eq!(empty.id, BlobHash::of(b""));
    assert!(
        download(&blobs, account, &empty.id, 0..u64::MAX)
            .await
            .is_empty()
    );
    assert_eq!(
        blobs
            .read_to_vec(account, &info.id, u64::MAX)
            .await
            .expect("read"),
        content
    );
    let refused = blobs
        .read_to_vec(account, &info.id, 10)
        .await
        .expect_err("too large");
    assert_eq!(refused.kind, BlobErrorKind::TooLarge);
}

pub async fn streamed_uploads_span_many_transactions(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let account = random_account();
    // 3 MB in uneven 7 KB pieces: more than one write batch, chunks straddling pieces.
    let content = random_content(3 * 1024 * 1024 + 1);
    let pieces: Vec<Result<Bytes, std::io::Error>> = content
        .chunks(7_000)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    let info = blobs
        .put_stream(account, futures_util::stream::iter(pieces), 4 * 1024 * 1024)
        .await
        .expect("put_stream");
    assert_eq!(info.id, BlobHash::of(&content));
    let meta = stored_meta(store, &info.id).await.expect("meta");
    assert_eq!(
        chunk_count(store, meta.storage_id).await,
        content.len().div_ceil(BLOB_CHUNK_BYTES)
    );
    assert_eq!(
        download(&blobs, account, &info.id, 0..u64::MAX).await,
        content
    );
}

pub async fn identical_content_is_stored_once(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let (alice, bob) = (random_account(), random_account());
    let content = random_content(BLOB_CHUNK_BYTES * 3 / 2);
    let first = blobs
        .put(alice, Bytes::from(content.clone()))
        .await
        .expect("put");
    let chunks_before = section_len(store, keys::BLOB_CHUNK).await;
    let pending_before = section_len(store, BLOB_PENDING).await;
    let second = blobs
        .put(bob, Bytes::from(content.clone()))
        .await
        .expect("put again");
    assert_eq!(first, second);
    assert_eq!(
        section_len(store, keys::BLOB_CHUNK).await,
        chunks_before,
        "the duplicate's chunks must be deleted"
    );
    assert_eq!(section_len(store, BLOB_PENDING).await, pending_before);
    // Both accounts reference it; the count holds one upload reference each.
    let mut tx = store.backend().begin().await.expect("begin");
    let count = tx
        .get(&keys::blob_by_digest(BLOB_REFCOUNT, first.id.as_bytes()))
        .await
        .expect("get")
        .map(|bytes| keys::le_i64(&bytes));
    assert_eq!(count, Some(2));
    assert_eq!(
        download(&blobs, bob, &second.id, 0..u64::MAX).await,
        content
    );
}

pub async fn accounts_read_only_blobs_they_reference(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let (owner, stranger, friend) = (random_account(), random_account(), random_account());
    let info = blobs
        .put(owner, Bytes::from(random_content(1_000)))
        .await
        .expect("put");
    let denied = blobs
        .get(stranger, &info.id, 0..u64::MAX)
        .await
        .err()
        .expect("denied");
    assert_eq!(denied.kind, BlobErrorKind::NotFound);
    let unknown = BlobHash::of(b"never stored by anyone in this test");
    let missing = blobs
        .get(owner, &unknown, 0..u64::MAX)
        .await
        .err()
        .expect("missing");
    assert_eq!(missing.kind, BlobErrorKind::NotFound);
    assert_eq!(
        denied.message, missing.message,
        "denied and missing must look alike"
    );
    assert_eq!(
        blobs.info(stranger, &info.id).await.expect_err("info").kind,
        BlobErrorKind::NotFound
    );
    let hash = info.id;
    let linked = store
        .transact(|tx| {
            Box::pin(async move { Ok(link(tx, stranger, &hash).await.map_err(|error| error.kind)) })
        })
        .await
        .expect("transact");
    assert_eq!(
        linked,
        Err(BlobErrorKind::NotFound),
        "a stranger cannot link it"
    );
    let copy_denied = blobs.copy(stranger, friend, &hash).await.expect_err("copy");
    assert_eq!(copy_denied.kind, BlobErrorKind::NotFound);
    let copied = blobs.copy(owner, friend, &hash).await.expect("copy");
    assert_eq!(copied, info);
    assert_eq!(
        blobs
            .info(friend, &hash)
            .await
            .expect("friend reads the copy"),
        info
    );
}

pub async fn oversized_and_failed_uploads_leave_nothing_behind(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let account = random_account();
    let chunks_before = section_len(store, keys::BLOB_CHUNK).await;
    let pending_before = section_len(store, BLOB_PENDING).await;
    let big: Vec<Result<Bytes, std::io::Error>> = (0..40)
        .map(|_| Ok(Bytes::from(random_content(100_000))))
        .collect();
    let too_large = blobs
        .put_stream(account, futures_util::stream::iter(big), 3_000_000)
        .await
        .expect_err("over the limit");
    assert_eq!(too_large.kind, BlobErrorKind::TooLarge);

    let failing: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(random_content(2_500_000))),
        Err(std::io::Error::other("client went away")),
    ];
    let aborted = blobs
        .put_stream(account, futures_util::stream::iter(failing), u64::MAX)
        .await
        .expect_err("body failed");
    assert_eq!(aborted.kind, BlobErrorKind::Aborted);
    assert!(aborted.message.contains("client went away"));
    assert_eq!(section_len(store, keys::BLOB_CHUNK).await, chunks_before);
    assert_eq!(section_len(store, BLOB_PENDING).await, pending_before);
}

pub async fn collection_honours_links_and_upload_expiry(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let (account, uploader) = (random_account(), random_account());
    let linked = blobs
        .put(account, Bytes::from(random_content(250_000)))
        .await
        .expect("put");
    let unlinked = blobs
        .put(uploader, Bytes::from(random_content(1_000)))
        .await
        .expect("put");
    let hash = linked.id;
    store
        .transact(|tx| Box::pin(async move { link(tx, account, &hash).await.map_err(store_error) }))
        .await
        .expect("link");
    let linked_meta = stored_meta(store, &hash).await.expect("meta");
    let unlinked_meta = stored_meta(store, &unlinked.id).await.expect("meta");

    // Within the upload lifetime nothing is collected.
    blobs.gc().await.expect("gc");
    assert!(stored_meta(store, &unlinked.id).await.is_some());

    let later = SystemTime::now() + UPLOAD_REFERENCE_LIFETIME + Duration::from_secs(60);
    let report = blobs.gc_as_of(later).await.expect("gc");
    assert!(report.expired_upload_references >= 2, "{report:?}");
    assert!(report.deleted_blobs >= 1, "{report:?}");
    assert_eq!(stored_meta(store, &unlinked.id).await, None);
    assert_eq!(chunk_count(store, unlinked_meta.storage_id).await, 0);
    // The link keeps the other alive, readable through the link alone.
    assert_eq!(stored_meta(store, &hash).await, Some(linked_meta));
    assert_eq!(blobs.info(account, &hash).await.expect("linked"), linked);

    store
        .transact(|tx| {
            Box::pin(async move { unlink(tx, account, &hash).await.map_err(store_error) })
        })
        .await
        .expect("unlink");
    let unlinked_twice = store
        .transact(|tx| {
            Box::pin(
                async move { Ok(unlink(tx, account, &hash).await.map_err(|error| error.kind)) },
            )
        })
        .await
        .expect("transact");
    assert_eq!(unlinked_twice, Err(BlobErrorKind::NotFound));
    let report = blobs.gc().await.expect("gc");
    assert!(report.deleted_blobs >= 1, "{report:?}");
    assert_eq!(stored_meta(store, &hash).await, None);
    assert_eq!(chunk_count(store, linked_meta.storage_id).await, 0);
    assert_eq!(
        blobs.info(account, &hash).await.expect_err("gone").kind,
        BlobErrorKind::NotFound
    );
}

pub async fn collection_deletes_interrupted_uploads(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let storage_id: u64 = rand::random();
    let started = unix_seconds(SystemTime::now());
    store
        .transact(|tx| {
            Box::pin(async move {
                tx.set(&keys::blob_pending(storage_id), &started.to_be_bytes())?;
                tx.set(&keys::blob_chunk(storage_id, 0), &[1; 100])?;
                tx.set(&keys::blob_chunk(storage_id, 1), &[2; 100])
            })
        })
        .await
        .expect("simulate an interrupted upload");
    blobs.gc().await.expect("gc");
    assert_eq!(
        chunk_count(store, storage_id).await,
        2,
        "a young upload is left alone"
    );
    let later = SystemTime::now() + INTERRUPTED_UPLOAD_GRACE + Duration::from_secs(60);
    let report = blobs.gc_as_of(later).await.expect("gc");
    assert!(report.interrupted_uploads >= 1, "{report:?}");
    assert_eq!(chunk_count(store, storage_id).await, 0);
    let mut tx = store.backend().begin().await.expect("begin");
    assert_eq!(
        tx.get(&keys::blob_pending(storage_id)).await.expect("get"),
        None
    );
}

pub async fn chunks_are_page_sized_and_compressed_when_it_helps(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let account = random_account();
    // Text compresses; a random tail does not. Ranges cross chunk boundaries of both kinds.
    let mut content = format!("Subject: {}\r\n\r\n", rand::random::<u64>()).into_bytes();
    while content.len() < 5 * BLOB_CHUNK_BYTES {
        content.extend_from_slice(b"the quick brown fox jumps over the lazy dog\r\n");
    }
    content.extend(random_content(2 * BLOB_CHUNK_BYTES + 77));
    let info = blobs
        .put(account, Bytes::from(content.clone()))
        .await
        .expect("put");
    let meta = stored_meta(store, &info.id).await.expect("meta");
    assert_eq!(
        meta,
        format::BlobMeta::new(meta.storage_id, content.len() as u64)
    );
    let stored = scan(
        store,
        &KeyRange::prefix(&keys::blob_chunk_prefix(meta.storage_id)),
        RangeOptions::default(),
    )
    .await;
    assert_eq!(stored.len(), content.len().div_ceil(BLOB_CHUNK_BYTES));
    let codecs: Vec<u8> = stored.iter().map(|(_, value)| value[0]).collect();
    assert_eq!(codecs[0], format::CODEC_LZ4, "text is compressed");
    assert!(stored[0].1.len() < BLOB_CHUNK_BYTES / 4);
    assert_eq!(
        codecs[codecs.len() - 2],
        format::CODEC_RAW,
        "random bytes are not"
    );
    for (key, value) in &stored {
        assert!(key.len() + value.len() <= 4096 - 12, "fits one engine page");
    }
    let chunk = BLOB_CHUNK_BYTES as u64;
    let total = content.len() as u64;
    for range in [
        0..total,
        chunk - 3..chunk + 3,
        4 * chunk + 1..6 * chunk + 9,
        total - 80..total,
        chunk..chunk,
    ] {
        assert_eq!(
            download(&blobs, account, &info.id, range.clone()).await,
            content[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
}

/// Blobs written before chunks were sized for the engine (format tag 0x01, raw chunks of
/// 100,000 bytes) read as before, whole and by range.
pub async fn blobs_of_the_first_format_still_read(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let account = random_account();
    let content = random_content(2 * format::V1_CHUNK_BYTES as usize + 4_321);
    let hash = BlobHash::of(&content);
    let storage_id: u64 = rand::random();
    let mut old_meta = vec![0x01];
    old_meta.extend_from_slice(&storage_id.to_be_bytes());
    old_meta.extend_from_slice(&(content.len() as u64).to_be_bytes());
    let written = content.clone();
    store
        .transact(|tx| {
            let written = written.clone();
            let old_meta = old_meta.clone();
            Box::pin(async move {
                for (index, chunk) in (0u32..).zip(written.chunks(format::V1_CHUNK_BYTES as usize))
                {
                    tx.set(&keys::blob_chunk(storage_id, index), chunk)?;
                }
                tx.set(&keys::blob_by_digest(BLOB_META, hash.as_bytes()), &old_meta)?;
                grant_upload_reference(tx, account, &hash, SystemTime::now()).await
            })
        })
        .await
        .expect("write a first-format blob");
    let info = blobs.info(account, &hash).await.expect("info");
    assert_eq!(info.size, content.len() as u64);
    let boundary = u64::from(format::V1_CHUNK_BYTES);
    for range in [
        0..u64::MAX,
        boundary - 7..boundary + 7,
        2 * boundary..u64::MAX,
    ] {
        let end = range.end.min(content.len() as u64);
        assert_eq!(
            download(&blobs, account, &hash, range.clone()).await,
            content[range.start as usize..end as usize],
            "{range:?}"
        );
    }
    // Uploading the same content again deduplicates onto the old blob.
    let again = blobs
        .put(account, Bytes::from(content.clone()))
        .await
        .expect("put");
    assert_eq!(again.id, hash);
    assert_eq!(
        stored_meta(store, &hash).await.map(|meta| meta.storage_id),
        Some(storage_id)
    );
}

fn store_error(error: BlobError) -> StoreError {
    StoreError::new(StoreErrorKind::Io, error.to_string())
}

/// `read_whole_in` answers a small blob from the caller's transaction and leaves blobs over one
/// read batch to the streaming reader; `read_to_vec` and `read_held_to_vec` agree on both paths
/// and still refuse what the account may not read or what exceeds the caller's limit.
pub async fn whole_reads_take_small_blobs_in_one_transaction(store: &Store) {
    let blobs = BlobStore::new(store.clone());
    let (owner, stranger) = (random_account(), random_account());
    let small = random_content(3 * BLOB_CHUNK_BYTES + 17);
    let large = random_content(BYTES_PER_READ as usize + 2 * BLOB_CHUNK_BYTES + 5);
    let small_info = blobs
        .put(owner, Bytes::from(small.clone()))
        .await
        .expect("put");
    let large_info = blobs
        .put(owner, Bytes::from(large.clone()))
        .await
        .expect("put");
    let unknown = BlobHash::of(b"whole reads: never stored");
    let (small_hash, large_hash) = (small_info.id, large_info.id);
    let found = store
        .read(move |tx| {
            Box::pin(async move {
                Ok((
                    read_whole_in(tx, &small_hash, u64::MAX).await?,
                    read_whole_in(tx, &small_hash, 10).await?,
                    read_whole_in(tx, &large_hash, u64::MAX).await?,
                    read_whole_in(tx, &unknown, u64::MAX).await?,
                ))
            })
        })
        .await
        .expect("read");
    assert_eq!(found.0, WholeBlob::Content(small.clone()));
    assert_eq!(found.1, WholeBlob::TooLarge(small.len() as u64));
    assert_eq!(found.2, WholeBlob::Large);
    assert_eq!(found.3, WholeBlob::Missing);
    for (hash, content) in [(small_hash, &small), (large_hash, &large)] {
        assert_eq!(
            &blobs
                .read_to_vec(owner, &hash, u64::MAX)
                .await
                .expect("read"),
            content
        );
        assert_eq!(
            &blobs.read_held_to_vec(&hash, u64::MAX).await.expect("held"),
            content
        );
        let denied = blobs
            .read_to_vec(stranger, &hash, u64::MAX)
            .await
            .expect_err("denied");
        assert_eq!(denied.kind, BlobErrorKind::NotFound);
        let refused = blobs
            .read_held_to_vec(&hash, 100)
            .await
            .expect_err("too large");
        assert_eq!(refused.kind, BlobErrorKind::TooLarge);
    }
    let missing = blobs
        .read_held_to_vec(&unknown, u64::MAX)
        .await
        .expect_err("missing");
    assert_eq!(missing.kind, BlobErrorKind::NotFound);
}
