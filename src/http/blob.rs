//! Upload (RFC 8620 §6.1) and download (§6.2): both streamed through the blob store, never
//! holding a whole blob in memory.

use futures_util::TryStreamExt as _;
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, HeaderValue, IF_NONE_MATCH, IF_RANGE, RANGE,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyDataStream, BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::download_headers::{RangeRequest, content_disposition, media_type, parse_range};
use super::response::{
    BoxError, ResponseBody, empty_body, json_response, limit_problem, problem, problem_with,
};
use super::{AppState, declared_length};
use crate::auth::Principal;
use crate::jmap::types::{AccountId, BlobId};
use crate::mail::parsed::blob::read_blob;
use crate::store::blob::{BlobError, BlobErrorKind, BlobHash, BlobInfo};

/// The account of a URL, if the principal may use it. Another account's id answers exactly
/// like a nonexistent one (RFC 8620 §1.6.2 isolation).
fn accessible_account(principal: &Principal, text: &str) -> Option<AccountId> {
    let account = AccountId::parse(text).ok()?;
    principal.may_access(account.number()).then_some(account)
}

fn account_not_found() -> Response<ResponseBody> {
    problem(StatusCode::NOT_FOUND, "no such account")
}

fn blob_not_found() -> Response<ResponseBody> {
    problem(StatusCode::NOT_FOUND, "no such blob")
}

fn store_failure(error: &BlobError) -> Response<ResponseBody> {
    tracing::error!(%error, "blob store failure");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the blob store is unavailable; retry later",
    )
}

/// `maxSizeUpload` (RFC 8620 §6.1) for an upload that declares its size, checked before it is
/// forwarded to the account's owner on a cluster.
pub fn refuse_declared_oversize(
    state: &AppState,
    headers: &http::HeaderMap,
) -> Option<Response<ResponseBody>> {
    let max = state.engine.limits().max_size_upload;
    declared_length(headers)
        .is_some_and(|length| length > max)
        .then(|| {
            limit_problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "maxSizeUpload",
                &format!("the upload is larger than {max} bytes"),
            )
        })
}

/// 403 `overQuota` (the SetError name of RFC 8620 §5.3 as a problem type): the account's
/// storage quota has no room for the upload.
fn over_quota(detail: &str) -> Response<ResponseBody> {
    problem_with(
        StatusCode::FORBIDDEN,
        &json!({
            "type": "urn:ietf:params:jmap:error:overQuota",
            "status": 403,
            "detail": detail,
        }),
    )
}

pub(super) async fn upload(
    state: &AppState,
    principal: &Principal,
    account: &str,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let Some(account) = accessible_account(principal, account) else {
        return account_not_found();
    };
    let limits = state.engine.limits();
    // RFC 8620 §2 maxConcurrentUpload, per account.
    let Some(_slot) = state.upload_slots.try_acquire(account.number()) else {
        return limit_problem(
            StatusCode::TOO_MANY_REQUESTS,
            "maxConcurrentUpload",
            &format!(
                "at most {} concurrent uploads per account",
                limits.max_concurrent_upload
            ),
        );
    };
    let too_large = || {
        limit_problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "maxSizeUpload",
            &format!("the upload is larger than {} bytes", limits.max_size_upload),
        )
    };
    // Refused before reading when the client says its size; the store aborts the stream
    // itself the moment it passes the limit otherwise.
    if declared_length(request.headers()).is_some_and(|length| length > limits.max_size_upload) {
        return too_large();
    }
    // RFC 9425 hard limit: an upload the account's storage has no room for (its declared size,
    // or any upload once the storage is full) is refused before it is read.
    let declared = declared_length(request.headers()).unwrap_or(0).max(1);
    let account_id = account.number();
    let room = state
        .blobs
        .store()
        .read(move |tx| Box::pin(crate::mail::quota::check(tx, account_id, declared, 0)))
        .await;
    match room {
        Ok(Ok(())) => {}
        Ok(Err(over)) => return over_quota(&over.to_string()),
        Err(error) => return store_failure(&error.into()),
    }
    // RFC 8620 §6.1: `type` is the Content-Type of the upload request.
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|text| media_type(Some(text)))
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let body = BodyDataStream::new(request.into_body());
    let stored = state
        .blobs
        .put_stream(account.number(), body, limits.max_size_upload)
        .await;
    let info = match stored {
        Ok(info) => info,
        Err(error) => {
            return match error.kind {
                BlobErrorKind::TooLarge => too_large(),
                BlobErrorKind::Aborted => problem(
                    StatusCode::BAD_REQUEST,
                    &format!("the upload body could not be read: {}", error.message),
                ),
                BlobErrorKind::NotFound | BlobErrorKind::Store => store_failure(&error),
            };
        }
    };
    let blob_id = BlobId::from_digest(*info.id.as_bytes());
    // RFC 8620 §6.1: 201 with accountId, blobId, type and size.
    json_response(
        StatusCode::CREATED,
        &json!({
            "accountId": account.to_string(),
            "blobId": blob_id.to_string(),
            "type": content_type,
            "size": info.size,
        }),
    )
}

/// The raw value of query parameter `name` (percent-decoded; `+` is kept, as RFC 6570
/// expansion of the download template never produces it for a space).
fn query_parameter(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode_str(value).decode_utf8_lossy().into_owned())
    })
}

/// Whether an `If-None-Match` / `If-Range` value names `etag` (RFC 9110 §13.1.2 weak
/// comparison for If-None-Match).
fn etag_listed(header: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(text) = header.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    text.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

pub(super) async fn download(
    state: &AppState,
    principal: &Principal,
    account: &str,
    blob: &str,
    name: &str,
    request: &Request<Incoming>,
) -> Response<ResponseBody> {
    // RFC 9670: a grantee downloads the attachments of what is shared with them.
    let shared = match AccountId::parse(account) {
        Ok(wanted) if !principal.may_access(wanted.number()) => {
            match state.engine.access(principal).await {
                Ok((_, shared)) => shared
                    .iter()
                    .any(|candidate| candidate.account_id == wanted.number())
                    .then_some(wanted),
                Err(_) => None,
            }
        }
        _ => None,
    };
    let Some(account) = accessible_account(principal, account).or(shared) else {
        return account_not_found();
    };
    let Ok(blob_id) = BlobId::parse(blob) else {
        return blob_not_found();
    };
    let hash = BlobHash(*blob_id.digest());
    let name = percent_decode_str(name).decode_utf8_lossy().into_owned();
    let content_type = media_type(query_parameter(request.uri().query(), "type").as_deref());
    // A MIME part of a stored message (RFC 8621 §4.1.4): decoded in memory, with the access
    // check of the message's blob.
    let part_content = if blob_id.is_part() {
        let limit = state.engine.limits().max_size_upload;
        match read_blob(&state.blobs, account.number(), &blob_id, limit).await {
            Ok(content) => Some(bytes::Bytes::from(content)),
            Err(error) if error.kind == BlobErrorKind::NotFound => return blob_not_found(),
            Err(error) if error.kind == BlobErrorKind::TooLarge => {
                return problem(StatusCode::PAYLOAD_TOO_LARGE, "the part is too large");
            }
            Err(error) => return store_failure(&error),
        }
    } else {
        None
    };
    let info = match &part_content {
        Some(content) => BlobInfo {
            id: hash,
            size: content.len() as u64,
        },
        None => match state.blobs.info(account.number(), &hash).await {
            Ok(info) => info,
            Err(error) if error.kind == BlobErrorKind::NotFound => return blob_not_found(),
            Err(error) => return store_failure(&error),
        },
    };
    // Content-addressed: the blob id is a perfect strong validator, and the bytes never change.
    let etag = format!("\"{blob_id}\"");
    let headers = request.headers();
    if etag_listed(headers.get(IF_NONE_MATCH), &etag) {
        let mut response = Response::new(empty_body());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        insert_header(&mut response, ETAG, &etag);
        return response;
    }
    let range_header = headers.get(RANGE).and_then(|value| value.to_str().ok());
    // RFC 9110 §13.1.5: a Range with a stale If-Range gets the whole representation.
    let range_applies =
        headers.get(IF_RANGE).is_none() || etag_listed(headers.get(IF_RANGE), &etag);
    let range = if range_applies {
        parse_range(range_header, info.size)
    } else {
        RangeRequest::Full
    };
    let (status, byte_range) = match range {
        RangeRequest::Full => (StatusCode::OK, 0..info.size),
        RangeRequest::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start..end + 1),
        RangeRequest::Unsatisfiable => {
            let mut response = problem(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "the requested range is outside the blob",
            );
            insert_header(
                &mut response,
                CONTENT_RANGE,
                &format!("bytes */{}", info.size),
            );
            return response;
        }
    };
    let length = byte_range.end - byte_range.start;
    let body = if request.method() == Method::HEAD {
        empty_body()
    } else if let Some(content) = part_content {
        // The range was checked against this content's length; a slice never panics here.
        let start = usize::try_from(byte_range.start).unwrap_or(usize::MAX);
        let end = usize::try_from(byte_range.end).unwrap_or(usize::MAX);
        let piece = if start <= end && end <= content.len() {
            content.slice(start..end)
        } else {
            bytes::Bytes::new()
        };
        http_body_util::Full::new(piece)
            .map_err(|never| match never {})
            .boxed_unsync()
    } else {
        match state
            .blobs
            .get(account.number(), &hash, byte_range.clone())
            .await
        {
            Ok(download) => {
                let frames = download
                    .stream
                    .map_ok(Frame::data)
                    .map_err(|error| Box::new(error) as BoxError);
                StreamBody::new(frames).boxed_unsync()
            }
            Err(error) if error.kind == BlobErrorKind::NotFound => return blob_not_found(),
            Err(error) => return store_failure(&error),
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    insert_header(&mut response, CONTENT_TYPE, &content_type);
    insert_header(
        &mut response,
        CONTENT_DISPOSITION,
        &content_disposition(&name),
    );
    insert_header(&mut response, CONTENT_LENGTH, &length.to_string());
    insert_header(&mut response, ACCEPT_RANGES, "bytes");
    insert_header(&mut response, ETAG, &etag);
    insert_header(
        &mut response,
        CACHE_CONTROL,
        "private, immutable, max-age=31536000",
    );
    insert_header(
        &mut response,
        http::header::X_CONTENT_TYPE_OPTIONS,
        "nosniff",
    );
    if status == StatusCode::PARTIAL_CONTENT {
        insert_header(
            &mut response,
            CONTENT_RANGE,
            &format!(
                "bytes {}-{}/{}",
                byte_range.start,
                byte_range.end.saturating_sub(1),
                info.size
            ),
        );
    }
    response
}

/// Sets a header computed from validated parts; a value that still is not a valid header
/// (it cannot happen with the builders above) is dropped rather than failing the response.
fn insert_header(response: &mut Response<ResponseBody>, name: http::HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(value) => {
            response.headers_mut().insert(name, value);
        }
        Err(_) => debug_assert!(false, "invalid {name} header value {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(
            query_parameter(Some("type=text%2Fplain&x=1"), "type").as_deref(),
            Some("text/plain")
        );
        assert_eq!(query_parameter(Some("x=1"), "type"), None);
        assert_eq!(query_parameter(None, "type"), None);
    }

    #[test]
    fn etags() {
        let etag = "\"Gab\"";
        assert!(etag_listed(
            Some(&HeaderValue::from_static("\"Gab\"")),
            etag
        ));
        assert!(etag_listed(
            Some(&HeaderValue::from_static("W/\"Gab\", \"x\"")),
            etag
        ));
        assert!(etag_listed(Some(&HeaderValue::from_static("*")), etag));
        assert!(!etag_listed(
            Some(&HeaderValue::from_static("\"Gac\"")),
            etag
        ));
        assert!(!etag_listed(None, etag));
    }
}
