//! Values of any size under one logical key, stored as chunks of at most [`CHUNK_BYTES`] so
//! that every stored value respects FoundationDB's 100 KB value limit.
//!
//! Layout: the chunks of the value at `key` live at `key ++ chunk_index: u32 BE`, chunk 0
//! first. Logical keys come from `keys` and are prefix-free, so the chunk keys of one value
//! never mix with another value's, and `KeyRange::prefix(key)` covers exactly its chunks.
//! Invariants:
//! - a stored value has chunks `0..n` with no gap, all full except the last; an empty value is
//!   one empty chunk (so "empty" and "absent" differ);
//! - [`write`] clears the whole prefix before writing, so a shorter value written over a
//!   longer one leaves no stale chunk behind;
//! - one value is written in one transaction, so it must fit in the 10 MB transaction limit;
//!   bigger content goes to the blob store, which streams across transactions.

use super::{KeyRange, MAX_VALUE_BYTES, RangeOptions, StoreError, StoreResult, Transaction};

/// The size of every chunk but the last.
pub const CHUNK_BYTES: usize = MAX_VALUE_BYTES;

/// The key of chunk `index` of the value at `key`.
pub fn chunk_key(key: &[u8], index: u32) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(key.len() + 4);
    chunk.extend_from_slice(key);
    chunk.extend_from_slice(&index.to_be_bytes());
    chunk
}

/// Replaces the value at `key` with `value`, clearing any chunk of an earlier value.
pub fn write(tx: &mut dyn Transaction, key: &[u8], value: &[u8]) -> StoreResult<()> {
    tx.clear_range(&KeyRange::prefix(key))?;
    if value.is_empty() {
        return tx.set(&chunk_key(key, 0), &[]);
    }
    for (index, chunk) in value.chunks(CHUNK_BYTES).enumerate() {
        let index = u32::try_from(index)
            .map_err(|_| StoreError::corrupt("value has more than u32::MAX chunks"))?;
        tx.set(&chunk_key(key, index), chunk)?;
    }
    Ok(())
}

/// The value at `key`, reassembled, or `None` when there is none.
pub async fn read(tx: &mut dyn Transaction, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
    let chunks = tx
        .get_range(&KeyRange::prefix(key), RangeOptions::default())
        .await?;
    if chunks.is_empty() {
        return Ok(None);
    }
    let mut value = Vec::with_capacity(chunks.iter().map(|(_, chunk)| chunk.len()).sum());
    for (expected_index, (chunk_key_bytes, chunk)) in chunks.iter().enumerate() {
        let suffix = &chunk_key_bytes[key.len()..];
        let index = <[u8; 4]>::try_from(suffix)
            .map(u32::from_be_bytes)
            .map_err(|_| {
                StoreError::corrupt("a chunked value has a key that is not a chunk key")
            })?;
        if usize::try_from(index).ok() != Some(expected_index) {
            return Err(StoreError::corrupt(format!(
                "chunked value is missing chunk {expected_index}"
            )));
        }
        let is_last = expected_index + 1 == chunks.len();
        if !is_last && chunk.len() != CHUNK_BYTES {
            return Err(StoreError::corrupt(format!(
                "chunk {expected_index} of a chunked value is short"
            )));
        }
        value.extend_from_slice(chunk);
    }
    Ok(Some(value))
}

/// Removes the value at `key` (every chunk).
pub fn clear(tx: &mut dyn Transaction, key: &[u8]) -> StoreResult<()> {
    tx.clear_range(&KeyRange::prefix(key))
}

/// The chunked-value part of the backend test suite.
pub mod suite {
    use super::*;
    use crate::store::Store;
    use crate::store::testsuite::{Scratch, SuiteTest, scan, suite_test};

    pub fn tests() -> Vec<SuiteTest> {
        vec![
            suite_test!(chunked_values_round_trip_at_every_size),
            suite_test!(overwriting_with_a_shorter_value_leaves_no_stale_chunk),
        ]
    }

    fn patterned(length: usize) -> Vec<u8> {
        (0..length).map(|index| (index % 251) as u8).collect()
    }

    async fn store_value(store: &Store, key: &[u8], value: &[u8]) {
        let owned_key = key.to_vec();
        let owned_value = value.to_vec();
        store
            .transact(|tx| {
                let key = owned_key.clone();
                let value = owned_value.clone();
                Box::pin(async move { write(tx, &key, &value) })
            })
            .await
            .expect("chunked write");
    }

    async fn load(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
        let mut tx = store.backend().begin().await.expect("begin");
        read(tx.as_mut(), key).await.expect("chunked read")
    }

    pub async fn chunked_values_round_trip_at_every_size(store: &Store) {
        let scratch = Scratch::new();
        let key = scratch.key(b"value\x00");
        assert_eq!(load(store, &key).await, None);
        for length in [
            0,
            1,
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            CHUNK_BYTES + 1,
            3 * CHUNK_BYTES + 7,
        ] {
            let value = patterned(length);
            store_value(store, &key, &value).await;
            assert_eq!(load(store, &key).await, Some(value), "length {length}");
            let chunk_count = scan(store, &KeyRange::prefix(&key), RangeOptions::default())
                .await
                .len();
            assert_eq!(
                chunk_count,
                length.div_ceil(CHUNK_BYTES).max(1),
                "length {length}"
            );
        }
        // A transaction reads its own chunked write.
        let mut tx = store.backend().begin().await.expect("begin");
        write(tx.as_mut(), &key, b"fresh").expect("write");
        assert_eq!(
            read(tx.as_mut(), &key).await.expect("read"),
            Some(b"fresh".to_vec())
        );
        clear(tx.as_mut(), &key).expect("clear");
        assert_eq!(read(tx.as_mut(), &key).await.expect("read"), None);
        tx.commit().await.expect("commit");
        assert_eq!(load(store, &key).await, None);
        scratch.cleanup(store).await;
    }

    pub async fn overwriting_with_a_shorter_value_leaves_no_stale_chunk(store: &Store) {
        let scratch = Scratch::new();
        let key = scratch.key(b"doc\x00");
        let neighbour = scratch.key(b"doc\x01");
        store_value(store, &neighbour, b"next door").await;
        store_value(store, &key, &patterned(5 * CHUNK_BYTES)).await;
        store_value(store, &key, &patterned(CHUNK_BYTES + 10)).await;
        let chunks = scan(store, &KeyRange::prefix(&key), RangeOptions::default()).await;
        assert_eq!(chunks.len(), 2, "stale chunks must be cleared on overwrite");
        assert_eq!(load(store, &key).await, Some(patterned(CHUNK_BYTES + 10)));
        assert_eq!(load(store, &neighbour).await, Some(b"next door".to_vec()));
        scratch.cleanup(store).await;
    }
}
