//! Reading a small blob whole inside a transaction the caller already has open.
//!
//! Most messages are far under one read batch ([`BYTES_PER_READ`]). Reading their metadata
//! and their chunks in the caller's transaction (next to the record that names the blob)
//! saves one or two read transactions per message on the delivery and indexing paths; on
//! FoundationDB every transaction costs a read-version round trip and CPU on the client's
//! network thread, which is what bounds SMTP throughput on a small cluster. Larger blobs are
//! left to the streaming reader, whose transactions each stay short.

use super::format::BlobMeta;
use super::{BYTES_PER_READ, BlobError, BlobErrorKind, BlobHash, read_meta};
use crate::store::{KeyRange, RangeOptions, StoreError, Transaction, keys};

impl WholeBlob {
    /// The content, or the answer a whole-blob read gives (`NotFound`, `TooLarge`); `None`:
    /// too big for one batch, read it with the streaming reader.
    pub(super) fn settled(self, max_size: u64) -> Result<Option<Vec<u8>>, BlobError> {
        match self {
            WholeBlob::Content(content) => Ok(Some(content)),
            WholeBlob::Missing => Err(BlobError::not_found()),
            WholeBlob::TooLarge(_) => Err(too_large(max_size)),
            WholeBlob::Large => Ok(None),
        }
    }
}

/// `TooLarge` for a blob over the caller's `max_size`.
pub(super) fn too_large(max_size: u64) -> BlobError {
    BlobError::new(
        BlobErrorKind::TooLarge,
        format!("the blob exceeds the {max_size}-byte limit"),
    )
}

/// What [`read_whole_in`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WholeBlob {
    /// No metadata for the digest.
    Missing,
    /// Its size is over the caller's limit (the size is given).
    TooLarge(u64),
    /// Too big for one read batch: read it with the streaming reader.
    Large,
    Content(Vec<u8>),
}

/// Reads the blob `hash` whole in `tx` if it is at most `max_size` bytes and fits in one read
/// batch. No access check: callers read blobs their own records link or their queue holds.
pub async fn read_whole_in(
    tx: &mut dyn Transaction,
    hash: &BlobHash,
    max_size: u64,
) -> Result<WholeBlob, StoreError> {
    let Some(meta) = read_meta(tx, hash).await? else {
        return Ok(WholeBlob::Missing);
    };
    if meta.size > max_size {
        return Ok(WholeBlob::TooLarge(meta.size));
    }
    if meta.size > BYTES_PER_READ {
        return Ok(WholeBlob::Large);
    }
    read_content_in(tx, &meta).await.map(WholeBlob::Content)
}

async fn read_content_in(tx: &mut dyn Transaction, meta: &BlobMeta) -> Result<Vec<u8>, StoreError> {
    let chunk_bytes = u64::from(meta.chunk_bytes).max(1);
    let chunk_count = meta.size.div_ceil(chunk_bytes);
    let end =
        u32::try_from(chunk_count).map_err(|_| StoreError::corrupt("blob chunk index overflow"))?;
    let range = KeyRange {
        begin: keys::blob_chunk(meta.storage_id, 0),
        end: keys::blob_chunk(meta.storage_id, end),
    };
    let chunks = tx.get_range(&range, RangeOptions::default()).await?;
    if chunks.len() as u64 != chunk_count {
        return Err(StoreError::corrupt(format!(
            "blob chunks 0..{chunk_count} of storage {} are missing",
            meta.storage_id
        )));
    }
    let mut content = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
    for (index, (_, stored)) in (0..chunk_count).zip(chunks) {
        content.extend_from_slice(&meta.decode_chunk(index, stored)?);
    }
    Ok(content)
}
