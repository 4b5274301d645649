//! `Blob/get` (RFC 9404 §4.2): a range of each blob's octets as text or base64, its size and
//! digests of the range. A stored blob's range is read chunk by chunk from the store (a 1 KB
//! range of a 50 MB blob reads one or two chunks); a MIME part's id is decoded in memory
//! within `maxSizeUpload`. The octets one call may return are bounded by the per-request
//! response limit (`[server] memory_budget_mb`), checked before anything is read.

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::resolve_blob_id;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::types::{AccountId, BlobId};
use crate::mail::parsed::blob::read_blob;
use crate::store::blob::{BlobError, BlobErrorKind, BlobHash};
use crate::store::{BoxFuture, StoreError, StoreErrorKind};

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(get(context, arguments))
}

/// What the client asked to see of each blob.
#[derive(Debug, Default, Clone, Copy)]
struct Wanted {
    /// `data`: text when the range is UTF-8, else base64.
    data: bool,
    as_text: bool,
    as_base64: bool,
    size: bool,
    sha: bool,
    sha256: bool,
}

impl Wanted {
    fn parse(properties: Option<Vec<String>>) -> Result<Wanted, MethodError> {
        let Some(properties) = properties else {
            // RFC 9404 §4.2: by default `data` and `size`.
            return Ok(Wanted {
                data: true,
                size: true,
                ..Wanted::default()
            });
        };
        let mut wanted = Wanted::default();
        for property in properties {
            match property.as_str() {
                "id" => {}
                "data" => wanted.data = true,
                "data:asText" => wanted.as_text = true,
                "data:asBase64" => wanted.as_base64 = true,
                "size" => wanted.size = true,
                "digest:sha" => wanted.sha = true,
                "digest:sha-256" => wanted.sha256 = true,
                other => {
                    return Err(MethodError::invalid_arguments(format!(
                        "Blob/get has no property {other:?}"
                    )));
                }
            }
        }
        Ok(wanted)
    }

    fn needs_octets(&self) -> bool {
        self.data || self.as_text || self.as_base64 || self.sha || self.sha256
    }
}

async fn get(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let ids = arguments.take_string_list("ids")?.ok_or_else(|| {
        // A blob has no list of all: the ids must be given.
        MethodError::invalid_arguments("\"ids\" is required for Blob/get")
    })?;
    let wanted = Wanted::parse(arguments.take_string_list("properties")?)?;
    let offset = arguments
        .take_unsigned("offset")?
        .map_or(0, |value| value.get());
    let length = arguments.take_unsigned("length")?.map(|value| value.get());
    arguments.finish()?;
    let max_objects = context.engine.limits.max_objects_in_get;
    if ids.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInGet ({max_objects}) ids"),
        ));
    }
    // Base64 makes 3 octets 4 bytes of JSON: the octets all blobs may return together.
    let octet_budget = context.engine.memory.max_response_bytes / 4 * 3;
    let mut spent = 0u64;
    let mut list = Vec::with_capacity(ids.len());
    let mut not_found = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    for text in ids {
        if !seen.insert(text.clone()) {
            continue;
        }
        let Some(blob) = resolve_blob_id(context, &text) else {
            not_found.push(Value::String(text));
            continue;
        };
        let selected = match select(
            context,
            account,
            &blob,
            offset,
            length,
            wanted,
            octet_budget - spent,
        )
        .await?
        {
            Some(selected) => selected,
            None => {
                not_found.push(Value::String(text));
                continue;
            }
        };
        spent += selected
            .octets
            .as_ref()
            .map_or(0, |octets| octets.len() as u64);
        list.push(Value::Object(render(&blob, &selected, wanted)));
    }
    Ok(json!({
        "accountId": account,
        "list": list,
        "notFound": not_found,
    }))
}

/// The selected range of one blob.
struct Selected {
    /// The whole blob's size (RFC 9404 §4.2: regardless of offset and length).
    size: u64,
    /// The octets of the range, when asked for.
    octets: Option<Vec<u8>>,
    /// The range asked for reaches past the end of the blob.
    truncated: bool,
}

fn store_failure(error: BlobError) -> MethodError {
    let kind = error.store_kind.unwrap_or(StoreErrorKind::Io);
    MethodError::from_store(&StoreError::new(kind, error.message))
}

fn over_budget(budget: u64) -> MethodError {
    MethodError::with_description(
        MethodErrorType::RequestTooLarge,
        format!(
            "the selected ranges exceed the {budget} octets one response may carry; ask for \
             fewer blobs or a shorter length"
        ),
    )
}

/// `None`: the blob does not exist for this account (or a part id names no part).
async fn select(
    context: &CallContext<'_>,
    account: AccountId,
    blob: &BlobId,
    offset: u64,
    length: Option<u64>,
    wanted: Wanted,
    budget: u64,
) -> Result<Option<Selected>, MethodError> {
    let blobs = &context.engine.blobs;
    let range_of = |size: u64| {
        let end = match length {
            Some(length) => offset.saturating_add(length),
            None => size,
        };
        let truncated = end > size || offset > size;
        let start = offset.min(size);
        (start, end.min(size).max(start), truncated)
    };
    if blob.is_part() {
        let limit = context.engine.limits.max_size_upload;
        let content = match read_blob(blobs, account.number(), blob, limit).await {
            Ok(content) => content,
            Err(error) if error.kind == BlobErrorKind::NotFound => return Ok(None),
            Err(error) if error.kind == BlobErrorKind::TooLarge => return Err(over_budget(limit)),
            Err(error) => return Err(store_failure(error)),
        };
        let size = content.len() as u64;
        let (start, end, truncated) = range_of(size);
        if wanted.needs_octets() && end - start > budget {
            return Err(over_budget(budget));
        }
        let octets = wanted
            .needs_octets()
            .then(|| content[start as usize..end as usize].to_vec());
        return Ok(Some(Selected {
            size,
            octets,
            truncated,
        }));
    }
    let hash = BlobHash(*blob.digest());
    let info = match blobs.info(account.number(), &hash).await {
        Ok(info) => info,
        Err(error) if error.kind == BlobErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(store_failure(error)),
    };
    let (start, end, truncated) = range_of(info.size);
    if !wanted.needs_octets() {
        return Ok(Some(Selected {
            size: info.size,
            octets: None,
            truncated,
        }));
    }
    if end - start > budget {
        return Err(over_budget(budget));
    }
    let download = match blobs.get(account.number(), &hash, start..end).await {
        Ok(download) => download,
        Err(error) if error.kind == BlobErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(store_failure(error)),
    };
    let mut octets = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    let mut stream = download.stream;
    while let Some(piece) = stream.next().await {
        octets.extend_from_slice(&piece.map_err(store_failure)?);
    }
    Ok(Some(Selected {
        size: info.size,
        octets: Some(octets),
        truncated,
    }))
}

fn render(blob: &BlobId, selected: &Selected, wanted: Wanted) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("id".into(), json!(blob.to_string()));
    let base64 = |octets: &[u8]| base64::engine::general_purpose::STANDARD.encode(octets);
    if let Some(octets) = &selected.octets {
        let text = std::str::from_utf8(octets).ok();
        // RFC 9404 §4.2: octets that are not UTF-8 (a range may cut a character) give
        // `data:asText` null and `isEncodingProblem`; `data` then falls back to base64.
        if (wanted.as_text || wanted.data) && text.is_none() {
            object.insert("isEncodingProblem".into(), Value::Bool(true));
        }
        if wanted.as_text {
            object.insert("data:asText".into(), json!(text));
        }
        if wanted.as_base64 || (wanted.data && text.is_none()) {
            object.insert("data:asBase64".into(), json!(base64(octets)));
        }
        if wanted.data
            && let Some(text) = text
        {
            object.insert("data:asText".into(), json!(text));
        }
        if wanted.sha {
            object.insert("digest:sha".into(), json!(base64(&Sha1::digest(octets))));
        }
        if wanted.sha256 {
            object.insert(
                "digest:sha-256".into(),
                json!(base64(&Sha256::digest(octets))),
            );
        }
    }
    if selected.truncated {
        object.insert("isTruncated".into(), Value::Bool(true));
    }
    if wanted.size {
        object.insert("size".into(), json!(selected.size));
    }
    object
}

#[cfg(test)]
mod tests {
    use super::{Selected, Wanted, render};
    use crate::jmap::types::BlobId;

    fn blob() -> BlobId {
        BlobId::from_digest([7; 32])
    }

    #[test]
    fn data_is_text_when_utf8_and_base64_with_an_encoding_problem_otherwise() {
        let wanted = Wanted::parse(None).expect("defaults");
        let text = Selected {
            size: 46,
            octets: Some(b"quick bro".to_vec()),
            truncated: false,
        };
        let object = render(&blob(), &text, wanted);
        assert_eq!(object["data:asText"], "quick bro");
        assert_eq!(object["size"], 46);
        assert!(object.get("data:asBase64").is_none());
        assert!(object.get("isEncodingProblem").is_none());
        // "é" cut in half.
        let cut = Selected {
            size: 2,
            octets: Some(vec![0xC3]),
            truncated: true,
        };
        let object = render(&blob(), &cut, wanted);
        assert_eq!(object["data:asBase64"], "ww==");
        assert_eq!(object["isEncodingProblem"], true);
        assert_eq!(object["isTruncated"], true);
        assert!(object.get("data:asText").is_none());
        let as_text = Wanted::parse(Some(vec!["data:asText".into()])).expect("parse");
        let object = render(&blob(), &cut, as_text);
        assert_eq!(object["data:asText"], serde_json::Value::Null);
        assert!(object.get("size").is_none());
    }

    #[test]
    fn digests_cover_the_selected_range() {
        let wanted =
            Wanted::parse(Some(vec!["digest:sha".into(), "digest:sha-256".into()])).expect("parse");
        let object = render(
            &blob(),
            &Selected {
                size: 3,
                octets: Some(b"abc".to_vec()),
                truncated: false,
            },
            wanted,
        );
        // FIPS 180 test vectors for "abc".
        assert_eq!(object["digest:sha"], "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        assert_eq!(
            object["digest:sha-256"],
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert!(Wanted::parse(Some(vec!["digest:md5".into()])).is_err());
    }
}
