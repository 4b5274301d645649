//! Methods on blobs: `Blob/copy` (RFC 8620 §6.3) and the Blob management extension (RFC
//! 9404, `urn:ietf:params:jmap:blob`): `Blob/upload`, `Blob/get`, `Blob/lookup`.

pub mod copy;
pub mod get;
pub mod lookup;
pub mod upload;

use serde_json::{Value, json};

use crate::jmap::context::CallContext;
use crate::jmap::types::BlobId;

/// RFC 9404 §4.1 `maxDataSources`: data sources one Blob/upload creation may join (the RFC
/// asks servers to allow at least 64).
pub const MAX_DATA_SOURCES: usize = 64;

/// The types Blob/lookup answers for (RFC 9404 §4.3).
pub const LOOKUP_TYPE_NAMES: [&str; 3] = ["Mailbox", "Thread", "Email"];

/// RFC 9404 §4.2: the digests Blob/get computes (`digest:sha`, `digest:sha-256`).
pub const DIGEST_ALGORITHMS: [&str; 2] = ["sha", "sha-256"];

/// The account capability value of `urn:ietf:params:jmap:blob` (RFC 9404 §3).
pub fn account_capability(max_size_upload: u64) -> Value {
    json!({
        // RFC 9404 §3: SHOULD be the same as maxSizeUpload.
        "maxSizeBlobSet": max_size_upload,
        "maxDataSources": MAX_DATA_SOURCES,
        "supportedTypeNames": LOOKUP_TYPE_NAMES,
        "supportedDigestAlgorithms": DIGEST_ALGORITHMS,
    })
}

/// A message blob a /parse-like method was given (Email/parse, MDN/parse).
pub enum MessageBlob {
    Read {
        blob: BlobId,
        raw: Vec<u8>,
    },
    /// Not a blob id, or not one the account may read: `notFound`.
    NotFound,
    /// Larger than any message this server takes: `notParsable`.
    TooLarge,
}

/// Reads the message blob named by `text` (an id or `#creationId`) for `account`, at most
/// `maxSizeUpload` octets.
pub async fn read_message_blob(
    context: &CallContext<'_>,
    account: crate::jmap::types::AccountId,
    text: &str,
) -> Result<MessageBlob, crate::jmap::error::MethodError> {
    use crate::store::blob::BlobErrorKind;
    let Some(blob) = resolve_blob_id(context, text) else {
        return Ok(MessageBlob::NotFound);
    };
    let max_size = context.engine.limits.max_size_upload;
    let blobs = &context.engine.blobs;
    match crate::mail::parsed::blob::read_blob(blobs, account.number(), &blob, max_size).await {
        Ok(raw) => Ok(MessageBlob::Read { blob, raw }),
        Err(error) if error.kind == BlobErrorKind::NotFound => Ok(MessageBlob::NotFound),
        Err(error) if error.kind == BlobErrorKind::TooLarge => Ok(MessageBlob::TooLarge),
        Err(error) => {
            let kind = error.store_kind.unwrap_or(crate::store::StoreErrorKind::Io);
            Err(crate::jmap::error::MethodError::from_store(
                &crate::store::StoreError::new(kind, error.message),
            ))
        }
    }
}

/// A blob id argument: a blob id, or `#creationId` of a blob created earlier in the request
/// (RFC 9404 §4.1: "the created blob ids can be referenced by creation id"). `None` when it
/// is neither.
pub fn resolve_blob_id(context: &CallContext<'_>, text: &str) -> Option<BlobId> {
    match text.strip_prefix('#') {
        Some(_) => {
            let resolved = context.resolve_id(text).ok().flatten()?;
            BlobId::parse(resolved.as_str()).ok()
        }
        None => BlobId::parse(text).ok(),
    }
}
