//! How a blob's content is laid out in the store: its `BLOB_META` value and the encoding of
//! its chunks. Two formats are read; new blobs are written in the second.
//!
//! - **v1** (tag `0x01`, 17 bytes: storage id, size): chunks of exactly
//!   [`V1_CHUNK_BYTES`] (the last one shorter) holding the raw content.
//! - **v2** (tag `0x02`, 21 bytes: storage id, size, chunk size u32): every chunk but the last
//!   covers exactly `chunk_bytes` of content and is stored *framed*: one codec byte, then
//!   either the raw bytes ([`CODEC_RAW`]) or an LZ4 block ([`CODEC_LZ4`]) that decodes to the
//!   chunk's known length. A chunk is compressed only when that makes it smaller, so stored
//!   bytes never exceed content + 1 byte per chunk.
//!
//! Why v2 (issue 3, store overhead): the embedded engine (redb) stores a leaf in a
//! power-of-two number of 4 KiB pages, so a 6 KB message in one chunk took an 8 KiB page and
//! a 20 KB one a 32 KiB page. v2 chunks are sized so that an incompressible chunk, its key and
//! the leaf's overhead fill exactly one 4 KiB page ([`CHUNK_BYTES`]); compressed chunks are
//! smaller and share leaves. Ranged downloads compute chunk indexes from each blob's own chunk
//! size, so v1 and v2 blobs live side by side and nothing needs migrating.

use bytes::Bytes;

use crate::store::keys;
use crate::store::{MAX_VALUE_BYTES, StoreError};

/// The chunk size of v1 blobs (the FoundationDB value limit).
pub const V1_CHUNK_BYTES: u32 = MAX_VALUE_BYTES as u32;

/// redb's page size (its default; Tern never changes it).
const ENGINE_PAGE_BYTES: usize = 4096;
/// A redb leaf holding one pair: 4 bytes of header, then a u32 key end and a u32 value end.
const LEAF_OVERHEAD_BYTES: usize = 4 + 4 + 4;
/// `BLOB_CHUNK` keys: subspace, section, storage id u64, chunk index u32.
const CHUNK_KEY_BYTES: usize = 1 + 1 + 8 + 4;

/// The content bytes of every v2 chunk but the last: an incompressible chunk (codec byte +
/// content) and its key fill one engine page exactly. Far under the 100 KB value limit.
pub const CHUNK_BYTES: u32 = (ENGINE_PAGE_BYTES - LEAF_OVERHEAD_BYTES - CHUNK_KEY_BYTES - 1) as u32;

const FORMAT_V1: u8 = 0x01;
const FORMAT_V2: u8 = 0x02;
/// v2 chunk codec: the content as is.
pub const CODEC_RAW: u8 = 0x00;
/// v2 chunk codec: an LZ4 block (no size prefix: the length is known from the blob's size).
pub const CODEC_LZ4: u8 = 0x01;

/// Where and how a blob's content is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobMeta {
    pub storage_id: u64,
    pub size: u64,
    /// Content bytes per chunk (all but the last).
    pub chunk_bytes: u32,
    /// v2: chunks carry a codec byte.
    pub framed: bool,
}

impl BlobMeta {
    /// A new blob, in the current format.
    pub fn new(storage_id: u64, size: u64) -> BlobMeta {
        BlobMeta {
            storage_id,
            size,
            chunk_bytes: CHUNK_BYTES,
            framed: true,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(21);
        if self.framed {
            bytes.push(FORMAT_V2);
            bytes.extend_from_slice(&self.storage_id.to_be_bytes());
            bytes.extend_from_slice(&self.size.to_be_bytes());
            bytes.extend_from_slice(&self.chunk_bytes.to_be_bytes());
        } else {
            bytes.push(FORMAT_V1);
            bytes.extend_from_slice(&self.storage_id.to_be_bytes());
            bytes.extend_from_slice(&self.size.to_be_bytes());
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<BlobMeta, StoreError> {
        let unknown = || StoreError::corrupt("blob metadata has an unknown format");
        let (framed, chunk_bytes) = match (bytes.first(), bytes.len()) {
            (Some(&FORMAT_V1), 17) => (false, V1_CHUNK_BYTES),
            (Some(&FORMAT_V2), 21) => {
                let chunk_bytes =
                    u32::from_be_bytes(bytes[17..21].try_into().map_err(|_| unknown())?);
                if chunk_bytes == 0 || chunk_bytes > V1_CHUNK_BYTES {
                    return Err(unknown());
                }
                (true, chunk_bytes)
            }
            _ => return Err(unknown()),
        };
        Ok(BlobMeta {
            storage_id: keys::be_u64(&bytes[1..9]).ok_or_else(unknown)?,
            size: keys::be_u64(&bytes[9..17]).ok_or_else(unknown)?,
            chunk_bytes,
            framed,
        })
    }

    /// How many content bytes chunk `index` holds.
    pub fn chunk_len(&self, index: u64) -> u64 {
        let chunk_bytes = u64::from(self.chunk_bytes);
        self.size
            .saturating_sub(index.saturating_mul(chunk_bytes))
            .min(chunk_bytes)
    }

    /// The content of chunk `index` from its stored value.
    pub fn decode_chunk(&self, index: u64, stored: Vec<u8>) -> Result<Bytes, StoreError> {
        if !self.framed {
            return Ok(Bytes::from(stored));
        }
        let expected = usize::try_from(self.chunk_len(index)).unwrap_or(usize::MAX);
        let corrupt = |what: &str| {
            StoreError::corrupt(format!(
                "blob chunk {index} of storage {}: {what}",
                self.storage_id
            ))
        };
        let content = match stored.split_first() {
            Some((&CODEC_RAW, _)) => Bytes::from(stored).slice(1..),
            Some((&CODEC_LZ4, compressed)) => Bytes::from(
                lz4_flex::block::decompress(compressed, expected)
                    .map_err(|error| corrupt(&format!("LZ4: {error}")))?,
            ),
            _ => return Err(corrupt("unknown chunk codec")),
        };
        if content.len() != expected {
            return Err(corrupt(&format!(
                "{} bytes instead of {expected}",
                content.len()
            )));
        }
        Ok(content)
    }
}

/// The stored value of a v2 chunk: LZ4 when that is smaller, else the raw content.
pub fn encode_chunk(content: &[u8]) -> Vec<u8> {
    let compressed = lz4_flex::block::compress(content);
    let mut stored = Vec::with_capacity(1 + compressed.len().min(content.len()));
    if compressed.len() < content.len() {
        stored.push(CODEC_LZ4);
        stored.extend_from_slice(&compressed);
    } else {
        stored.push(CODEC_RAW);
        stored.extend_from_slice(content);
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_meta_formats_round_trip_and_garbage_is_refused() {
        let v2 = BlobMeta::new(7, 12_345);
        assert_eq!(BlobMeta::decode(&v2.encode()).expect("v2"), v2);
        let v1 = BlobMeta {
            storage_id: 9,
            size: 250_000,
            chunk_bytes: V1_CHUNK_BYTES,
            framed: false,
        };
        let encoded = v1.encode();
        assert_eq!(encoded.len(), 17);
        assert_eq!(encoded[0], 0x01);
        assert_eq!(BlobMeta::decode(&encoded).expect("v1"), v1);
        assert_eq!(v1.chunk_len(2), 50_000);
        assert_eq!(v1.chunk_len(3), 0);
        let mut zero_chunks = v2.encode();
        zero_chunks[17..21].copy_from_slice(&0u32.to_be_bytes());
        for garbage in [&[][..], &[0x03; 21], &encoded[..16], &zero_chunks] {
            assert!(BlobMeta::decode(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn an_incompressible_chunk_fills_one_engine_page() {
        assert!(encode_chunk(&[0x5A; 10]).len() <= 11);
        let random: Vec<u8> = (0..CHUNK_BYTES).map(|_| rand::random::<u8>()).collect();
        let stored = encode_chunk(&random);
        assert_eq!(stored[0], CODEC_RAW);
        assert_eq!(
            LEAF_OVERHEAD_BYTES + CHUNK_KEY_BYTES + stored.len(),
            ENGINE_PAGE_BYTES
        );
        assert_eq!(keys::blob_chunk(u64::MAX, u32::MAX).len(), CHUNK_KEY_BYTES);
    }

    #[test]
    fn chunks_decode_to_their_known_length_and_corruption_is_reported() {
        let meta = BlobMeta::new(1, u64::from(CHUNK_BYTES) + 100);
        let text = b"Subject: hello\r\n".repeat(300);
        let content = &text[..CHUNK_BYTES as usize];
        let stored = encode_chunk(content);
        assert_eq!(stored[0], CODEC_LZ4);
        assert!(stored.len() < content.len() / 4);
        assert_eq!(
            meta.decode_chunk(0, stored.clone()).expect("decode"),
            content
        );
        // The last chunk is shorter: the same value is not a valid last chunk.
        assert!(meta.decode_chunk(1, stored.clone()).is_err());
        let mut broken = stored;
        broken[0] = 0x09;
        assert!(meta.decode_chunk(0, broken).is_err());
        let raw = encode_chunk(&[1, 2, 3]);
        assert_eq!(raw, vec![CODEC_RAW, 1, 2, 3]);
        let tail = BlobMeta::new(1, u64::from(CHUNK_BYTES) + 3);
        assert_eq!(tail.decode_chunk(1, raw).expect("raw"), vec![1u8, 2, 3]);
    }
}
