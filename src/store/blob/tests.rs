use super::*;

fn assert_send<T: Send>(_: &T) {}

/// HTTP handlers run on a multi-threaded runtime: the blob futures must be `Send`.
#[test]
fn upload_and_download_futures_are_send() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = super::super::embedded::EmbeddedBackend::open(dir.path()).expect("open");
    let blobs = BlobStore::new(Store::new(std::sync::Arc::new(backend)));
    let body = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(Bytes::new())]);
    let upload = blobs.put_stream(1, body, 10);
    assert_send(&upload);
    let hash = BlobHash::of(b"");
    let download = blobs.get(1, &hash, 0..u64::MAX);
    assert_send(&download);
    assert_send(&blobs.gc());
}

#[test]
fn hashes_print_as_hex() {
    let hash = BlobHash::of(b"abc");
    assert_eq!(
        hash.to_hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(format!("{hash}"), hash.to_hex());
}
