//! Reading the content behind a blob id: a stored blob as it is, or a MIME part of a stored
//! message decoded (RFC 8621 §4.1.4: a part's blobId names "the raw octets of the contents of
//! the part, after decoding any known Content-Transfer-Encoding"). Access is the stored
//! blob's: whoever may read the message may read its parts.

use futures_util::StreamExt as _;

use super::decode::transfer_decode;
use crate::jmap::types::BlobId;
use crate::store::blob::{BlobError, BlobErrorKind, BlobHash, BlobStore};

/// The content of `blob` as `account_id` may read it, refusing more than `max_size` octets
/// of the stored range (`TooLarge`). `NotFound` when the account may not read the stored
/// blob or a part range lies outside it.
pub async fn read_blob(
    blobs: &BlobStore,
    account_id: u32,
    blob: &BlobId,
    max_size: u64,
) -> Result<Vec<u8>, BlobError> {
    let hash = BlobHash(*blob.digest());
    let Some((first, rest)) = blob.sections().split_first() else {
        return blobs.read_to_vec(account_id, &hash, max_size).await;
    };
    let range = u64::from(first.start)..u64::from(first.end);
    if range.end - range.start > max_size {
        return Err(BlobError {
            kind: BlobErrorKind::TooLarge,
            message: format!("the part exceeds the {max_size}-byte limit"),
            store_kind: None,
        });
    }
    let download = blobs.get(account_id, &hash, range.clone()).await?;
    // A range this server never produced for this blob: no such part.
    if download.range != range {
        return Err(part_not_found());
    }
    let mut raw = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
    let mut stream = download.stream;
    while let Some(piece) = stream.next().await {
        raw.extend_from_slice(&piece?);
    }
    let mut content = transfer_decode(&raw, first.encoding).0.into_owned();
    for section in rest {
        let inner = content
            .get(section.start as usize..section.end as usize)
            .ok_or_else(part_not_found)?;
        content = transfer_decode(inner, section.encoding).0.into_owned();
    }
    Ok(content)
}

fn part_not_found() -> BlobError {
    BlobError {
        kind: BlobErrorKind::NotFound,
        message: "no such part".to_owned(),
        store_kind: None,
    }
}
