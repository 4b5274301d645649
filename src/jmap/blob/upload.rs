//! `Blob/upload` (RFC 9404 §4.1): blobs created inside a JMAP request from inline text or
//! base64 and from ranges of other blobs, joined in order. Each created blob is an upload of
//! the account (RFC 8620 §6.1: it expires unless something links it), and its creation id
//! names it in later calls of the same request (`#creationId`).

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

use super::{MAX_DATA_SOURCES, resolve_blob_id};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::types::{AccountId, BlobId, Id, UnsignedInt};
use crate::mail::parsed::blob::read_blob;
use crate::store::blob::{BlobError, BlobErrorKind, BlobHash};
use crate::store::{BoxFuture, StoreError, StoreErrorKind};

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(upload(context, arguments))
}

async fn upload(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let create = arguments.take_object("create")?.unwrap_or_default();
    arguments.finish()?;
    let max_objects = context.engine.limits.max_objects_in_set;
    if create.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInSet ({max_objects}) blobs"),
        ));
    }
    let mut created = Map::new();
    let mut not_created = Map::new();
    for (creation_id, object) in create {
        let Ok(creation) = Id::parse(&creation_id) else {
            return Err(MethodError::invalid_arguments(format!(
                "{creation_id:?} is not a creation id"
            )));
        };
        match create_one(context, account, object).await? {
            Ok((blob_id, media_type, size)) => {
                if let Ok(id) = Id::parse(&blob_id.to_string()) {
                    context.record_created(creation, id);
                }
                created.insert(
                    creation_id,
                    json!({"id": blob_id.to_string(), "type": media_type, "size": size}),
                );
            }
            Err(error) => {
                not_created.insert(creation_id, error.to_json());
            }
        }
    }
    let or_null = |map: Map<String, Value>| match map.is_empty() {
        true => Value::Null,
        false => Value::Object(map),
    };
    Ok(json!({
        "accountId": account,
        "created": or_null(created),
        "notCreated": or_null(not_created),
    }))
}

/// One data source (RFC 9404 §4.1 DataSourceObject).
enum Source {
    Octets(Vec<u8>),
    Range {
        blob: BlobId,
        offset: u64,
        length: Option<u64>,
    },
}

fn invalid(description: impl Into<String>) -> SetError {
    SetError::invalid_properties(["data"], description)
}

fn parse_source(context: &CallContext<'_>, value: &Value) -> Result<Source, SetError> {
    let Value::Object(members) = value else {
        return Err(invalid("each data source is an object"));
    };
    let text = members.get("data:asText").filter(|value| !value.is_null());
    let base64 = members
        .get("data:asBase64")
        .filter(|value| !value.is_null());
    let blob = members.get("blobId").filter(|value| !value.is_null());
    let allowed: &[&str] = match (text, base64, blob) {
        (Some(_), None, None) => &["data:asText"],
        (None, Some(_), None) => &["data:asBase64"],
        (None, None, Some(_)) => &["blobId", "offset", "length"],
        // RFC 9404 §4.1: exactly one kind of source; the server MUST NOT guess.
        _ => {
            return Err(invalid(
                "a data source has exactly one of data:asText, data:asBase64, blobId",
            ));
        }
    };
    if let Some(unknown) = members
        .keys()
        .find(|name| !allowed.contains(&name.as_str()))
    {
        return Err(invalid(format!("unknown data source property {unknown:?}")));
    }
    if let Some(text) = text {
        let Value::String(text) = text else {
            return Err(invalid("data:asText must be a String"));
        };
        return Ok(Source::Octets(text.as_bytes().to_vec()));
    }
    if let Some(encoded) = base64 {
        let Value::String(encoded) = encoded else {
            return Err(invalid("data:asBase64 must be a String"));
        };
        // RFC 9404 §4.1: invalid base64 is an error, not something to guess around.
        return base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map(Source::Octets)
            .map_err(|error| invalid(format!("data:asBase64 is not base64: {error}")));
    }
    let Some(Value::String(text)) = blob else {
        return Err(invalid("blobId must be a String"));
    };
    let blob = resolve_blob_id(context, text).ok_or_else(blob_not_found)?;
    let unsigned = |name: &str| -> Result<Option<u64>, SetError> {
        match members.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => UnsignedInt::from_json(value)
                .map(|number| Some(number.get()))
                .ok_or_else(|| invalid(format!("{name} must be an UnsignedInt"))),
        }
    };
    Ok(Source::Range {
        blob,
        offset: unsigned("offset")?.unwrap_or(0),
        length: unsigned("length")?,
    })
}

fn blob_not_found() -> SetError {
    SetError::with_description(
        SetErrorType::BlobNotFound,
        "a data source's blob does not exist",
    )
}

fn too_large(limit: u64) -> SetError {
    SetError::with_description(
        SetErrorType::TooLarge,
        format!("the blob would be larger than maxSizeBlobSet ({limit} octets)"),
    )
}

fn store_failure(error: BlobError) -> MethodError {
    let kind = error.store_kind.unwrap_or(StoreErrorKind::Io);
    MethodError::from_store(&StoreError::new(kind, error.message))
}

/// Builds and stores one blob: `(id, type, size)`, or why not.
async fn create_one(
    context: &CallContext<'_>,
    account: AccountId,
    object: Value,
) -> Result<Result<(BlobId, Value, u64), SetError>, MethodError> {
    let Value::Object(mut members) = object else {
        return Ok(Err(invalid("a creation is an object")));
    };
    let media_type = match members.remove("type") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(text)) => Value::String(text),
        Some(_) => {
            return Ok(Err(SetError::invalid_properties(
                ["type"],
                "type must be a String",
            )));
        }
    };
    let Some(Value::Array(sources)) = members.remove("data") else {
        return Ok(Err(invalid("data (a list of data sources) is required")));
    };
    if let Some(unknown) = members.keys().next() {
        return Ok(Err(SetError::invalid_properties(
            [unknown.clone()],
            format!("unknown property {unknown:?}"),
        )));
    }
    if sources.len() > MAX_DATA_SOURCES {
        return Ok(Err(invalid(format!(
            "more than maxDataSources ({MAX_DATA_SOURCES}) data sources"
        ))));
    }
    let limit = context.engine.limits.max_size_upload;
    let mut content = Vec::new();
    for source in &sources {
        let source = match parse_source(context, source) {
            Ok(source) => source,
            Err(error) => return Ok(Err(error)),
        };
        let room = limit.saturating_sub(content.len() as u64);
        let piece = match source {
            Source::Octets(octets) => octets,
            Source::Range {
                blob,
                offset,
                length,
            } => match read_range(context, account, &blob, offset, length, room).await {
                Ok(Ok(piece)) => piece,
                Ok(Err(error)) => return Ok(Err(error)),
                Err(error) => return Err(error),
            },
        };
        if piece.len() as u64 > room {
            return Ok(Err(too_large(limit)));
        }
        content.extend_from_slice(&piece);
    }
    let size = content.len() as u64;
    // RFC 9425: a blob counts against the storage left, as an upload does.
    let account_id = account.number();
    let fits = context
        .engine
        .store
        .read(move |tx| Box::pin(crate::mail::quota::check(tx, account_id, size, 0)))
        .await
        .map_err(|error| MethodError::from_store(&error))?;
    if let Err(over) = fits {
        return Ok(Err(SetError::with_description(
            SetErrorType::OverQuota,
            over.to_string(),
        )));
    }
    let info = context
        .engine
        .blobs
        .put(account_id, Bytes::from(content))
        .await
        .map_err(store_failure)?;
    Ok(Ok((BlobId::from_digest(info.id.0), media_type, info.size)))
}

/// `length` octets of `blob` from `offset` (to its end without a length), refusing more than
/// `room` octets; a range past the end is invalid (RFC 9404 §4.1: never guess).
async fn read_range(
    context: &CallContext<'_>,
    account: AccountId,
    blob: &BlobId,
    offset: u64,
    length: Option<u64>,
    room: u64,
) -> Result<Result<Vec<u8>, SetError>, MethodError> {
    let limit = context.engine.limits.max_size_upload;
    let blobs = &context.engine.blobs;
    let (start, end) = if blob.is_part() {
        let content = match read_blob(blobs, account.number(), blob, limit).await {
            Ok(content) => content,
            Err(error) if error.kind == BlobErrorKind::NotFound => {
                return Ok(Err(blob_not_found()));
            }
            Err(error) if error.kind == BlobErrorKind::TooLarge => {
                return Ok(Err(too_large(limit)));
            }
            Err(error) => return Err(store_failure(error)),
        };
        let Some(range) = checked_range(content.len() as u64, offset, length) else {
            return Ok(Err(past_the_end()));
        };
        if range.1 - range.0 > room {
            return Ok(Err(too_large(limit)));
        }
        let slice = content
            .get(range.0 as usize..range.1 as usize)
            .unwrap_or_default();
        return Ok(Ok(slice.to_vec()));
    } else {
        let hash = BlobHash(*blob.digest());
        let info = match blobs.info(account.number(), &hash).await {
            Ok(info) => info,
            Err(error) if error.kind == BlobErrorKind::NotFound => {
                return Ok(Err(blob_not_found()));
            }
            Err(error) => return Err(store_failure(error)),
        };
        match checked_range(info.size, offset, length) {
            Some(range) => range,
            None => return Ok(Err(past_the_end())),
        }
    };
    if end - start > room {
        return Ok(Err(too_large(limit)));
    }
    let hash = BlobHash(*blob.digest());
    let download = match blobs.get(account.number(), &hash, start..end).await {
        Ok(download) => download,
        Err(error) if error.kind == BlobErrorKind::NotFound => return Ok(Err(blob_not_found())),
        Err(error) => return Err(store_failure(error)),
    };
    let mut piece = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    let mut stream = download.stream;
    while let Some(chunk) = stream.next().await {
        piece.extend_from_slice(&chunk.map_err(store_failure)?);
    }
    Ok(Ok(piece))
}

/// `offset..offset + length` (to the end without a length) when it lies inside `size`.
fn checked_range(size: u64, offset: u64, length: Option<u64>) -> Option<(u64, u64)> {
    let end = match length {
        Some(length) => offset.checked_add(length)?,
        None => size,
    };
    (offset <= end && end <= size).then_some((offset, end))
}

fn past_the_end() -> SetError {
    invalid("a data source's range extends past the end of its blob")
}

#[cfg(test)]
mod tests {
    use super::checked_range;

    #[test]
    fn ranges_must_lie_inside_the_blob() {
        assert_eq!(checked_range(10, 0, None), Some((0, 10)));
        assert_eq!(checked_range(10, 3, Some(4)), Some((3, 7)));
        assert_eq!(checked_range(10, 10, None), Some((10, 10)));
        assert_eq!(checked_range(10, 8, Some(3)), None);
        assert_eq!(checked_range(10, 11, None), None);
        assert_eq!(checked_range(10, u64::MAX, Some(2)), None);
    }
}
