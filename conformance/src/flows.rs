//! Cases that need several steps or values only known at run time: limits taken from the
//! session, upload then (ranged) download, Blob/copy of an uploaded blob, authentication on the
//! binary endpoints, and isolation between two users.

use serde_json::{Value, json};

use crate::http::{Answer, Auth, Outgoing, expand_template};
use crate::matcher::{abbreviate, is_jmap_id, matches};
use crate::raw;
use crate::session::Target;
use crate::{Outcome, Recorder, sections};

/// The largest body the runner is willing to send to provoke a size limit.
const LARGEST_PROBE_BODY: u64 = 64 * 1024 * 1024;

pub(crate) async fn run_all(target: &Target, recorder: &mut Recorder<'_>) {
    if recorder.wants(sections::REQUEST_ERRORS) {
        limits(target, recorder).await;
    }
    let wants_blobs = [
        sections::UPLOAD,
        sections::DOWNLOAD,
        sections::BLOB_COPY,
        sections::AUTH,
        sections::ISOLATION,
    ]
    .iter()
    .any(|section| recorder.wants(section));
    if wants_blobs {
        blobs(target, recorder).await;
    }
}

fn echo_request(calls: usize) -> Value {
    let method_calls: Vec<Value> = (0..calls)
        .map(|index| json!(["Core/echo", {"i": index}, format!("c{index}")]))
        .collect();
    json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": method_calls})
}

fn expect_limit_problem(answer: &Answer, limit: &str, statuses: &[u16]) -> Result<(), String> {
    if !statuses.contains(&answer.status) {
        return Err(format!(
            "HTTP {} (expected one of {statuses:?}): {}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
        ));
    }
    let problem = answer.json()?;
    matches(
        &json!({"type": "urn:ietf:params:jmap:error:limit", "limit": limit}),
        &problem,
    )
    .map_err(|difference| format!("{difference}; problem: {}", abbreviate(&problem)))
}

async fn limits(target: &Target, recorder: &mut Recorder<'_>) {
    let section = sections::REQUEST_ERRORS;
    match target.core_limit("maxCallsInRequest") {
        Some(max_calls) if max_calls <= 10_000 => {
            let calls = usize::try_from(max_calls).unwrap_or(usize::MAX);
            let at_limit = async {
                let answer = target
                    .http
                    .post_json(&target.api_url, &target.auth, &echo_request(calls))
                    .await?;
                let body = answer.json()?;
                let responses = body["methodResponses"].as_array().map_or(0, Vec::len);
                if answer.status == 200 && responses == calls {
                    Ok(())
                } else {
                    Err(format!(
                        "HTTP {} with {responses} responses for {calls} calls",
                        answer.status
                    ))
                }
            };
            recorder.check(
                section,
                "maxCallsInRequest calls are accepted",
                at_limit.await,
            );
            let over_limit = async {
                let answer = target
                    .http
                    .post_json(&target.api_url, &target.auth, &echo_request(calls + 1))
                    .await?;
                expect_limit_problem(&answer, "maxCallsInRequest", &[400])
            };
            recorder.check(
                section,
                "limit: maxCallsInRequest + 1 calls",
                over_limit.await,
            );
        }
        _ => recorder.record(
            section,
            "limit: maxCallsInRequest + 1 calls",
            Outcome::Skip("maxCallsInRequest missing or above 10000".to_owned()),
        ),
    }

    match target.core_limit("maxSizeRequest") {
        Some(max_size) if max_size < LARGEST_PROBE_BODY => {
            let outcome = oversized_request(target, max_size + 1).await;
            recorder.record(
                section,
                "limit: a request of maxSizeRequest + 1 bytes",
                outcome,
            );
        }
        _ => recorder.record(
            section,
            "limit: a request of maxSizeRequest + 1 bytes",
            Outcome::Skip("maxSizeRequest missing or too large to probe".to_owned()),
        ),
    }
}

/// Sends a syntactically valid request padded with whitespace to `size` bytes, so a server that
/// ignores its own limit would answer 200.
async fn oversized_request(target: &Target, size: u64) -> Outcome {
    let prefix = br#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[]}"#;
    let result = raw::post_padded(
        &target.api_url,
        &target.auth,
        "application/json",
        prefix,
        size,
        target.config.request_timeout,
    )
    .await;
    match result {
        Err(raw::RawError::Unsupported(reason)) => Outcome::Skip(reason),
        Err(raw::RawError::Failed(reason)) => Outcome::Fail(reason),
        Ok(answer) => match expect_limit_problem(&answer, "maxSizeRequest", &[400, 413]) {
            Ok(()) => Outcome::Pass,
            Err(reason) => Outcome::Fail(reason),
        },
    }
}

/// A deterministic, non-repeating payload so ranges are checked against distinct bytes and two
/// runs (or two users) do not deduplicate into the same blob unless intended.
fn payload(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

pub(crate) fn run_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| {
            u64::try_from(elapsed.as_nanos() & u128::from(u64::MAX)).unwrap_or(1)
        })
}

struct Uploaded {
    blob_id: String,
    content: Vec<u8>,
}

const UPLOAD_TYPE: &str = "application/x-tern-conformance";

async fn upload(
    target: &Target,
    auth: &Auth,
    account_id: &str,
    content: &[u8],
) -> Result<Answer, String> {
    let url = expand_template(&target.upload_url, &[("accountId", account_id)]);
    target
        .http
        .post_bytes(&url, auth, UPLOAD_TYPE, content.to_vec())
        .await
}

fn check_upload_answer(
    answer: &Answer,
    account_id: &str,
    content: &[u8],
) -> Result<String, String> {
    if !(200..300).contains(&answer.status) {
        return Err(format!(
            "HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
        ));
    }
    let body = answer.json()?;
    let pattern = json!({"accountId": account_id, "blobId": "$id", "type": UPLOAD_TYPE, "size": content.len()});
    matches(&pattern, &body)
        .map_err(|difference| format!("{difference}; answer: {}", abbreviate(&body)))?;
    Ok(body["blobId"].as_str().unwrap_or_default().to_owned())
}

fn download_url(
    target: &Target,
    account_id: &str,
    blob_id: &str,
    name: &str,
    media_type: &str,
) -> String {
    expand_template(
        &target.download_url,
        &[
            ("accountId", account_id),
            ("blobId", blob_id),
            ("name", name),
            ("type", media_type),
        ],
    )
}

async fn download(
    target: &Target,
    auth: &Auth,
    url: &str,
    range: Option<&str>,
) -> Result<Answer, String> {
    let range_header = range.map(|value| ("range", value));
    let extra_headers: Vec<(&str, &str)> = range_header.into_iter().collect();
    target
        .http
        .send(Outgoing {
            method: reqwest::Method::GET,
            url,
            auth,
            content_type: None,
            extra_headers: &extra_headers,
            body: Vec::new(),
        })
        .await
}

async fn blobs(target: &Target, recorder: &mut Recorder<'_>) {
    let seed = run_seed();
    let content = payload(1000, seed);
    let uploaded = match upload(target, &target.auth, &target.account_id, &content).await {
        Ok(answer) => check_upload_answer(&answer, &target.account_id, &content),
        Err(error) => Err(error),
    };
    if recorder.wants(sections::UPLOAD) {
        recorder.check(
            sections::UPLOAD,
            "upload answers accountId, blobId, type and size",
            uploaded.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        upload_limits(target, recorder).await;
    }
    let uploaded = uploaded.ok().map(|blob_id| Uploaded { blob_id, content });

    if recorder.wants(sections::AUTH) {
        let url = expand_template(&target.upload_url, &[("accountId", &target.account_id)]);
        let result = target
            .http
            .post_bytes(&url, &Auth::Anonymous, UPLOAD_TYPE, b"anonymous".to_vec())
            .await
            .and_then(|answer| expect_status(&answer, &[401]));
        recorder.check(sections::AUTH, "upload without credentials: 401", result);
        // Authentication comes before any lookup, so an unknown blob id does as well when the
        // upload failed.
        let blob_id = uploaded
            .as_ref()
            .map_or("GnoSuchBlob0", |blob| blob.blob_id.as_str());
        let url = download_url(target, &target.account_id, blob_id, "f.bin", UPLOAD_TYPE);
        let result = download(target, &Auth::Anonymous, &url, None)
            .await
            .and_then(|answer| expect_status(&answer, &[401]));
        recorder.check(sections::AUTH, "download without credentials: 401", result);
        if let Some(token) = &target.config.bearer {
            let result = target
                .http
                .get(&target.config.session_url, &Auth::bearer(token))
                .await
                .and_then(|answer| expect_status(&answer, &[200]));
            recorder.check(sections::AUTH, "bearer token is accepted", result);
            let result = target
                .http
                .get(
                    &target.config.session_url,
                    &Auth::bearer(&format!("{token}x")),
                )
                .await
                .and_then(|answer| expect_status(&answer, &[401]));
            recorder.check(sections::AUTH, "a wrong bearer token: 401", result);
        }
    }

    if recorder.wants(sections::DOWNLOAD) {
        match &uploaded {
            Some(blob) => download_cases(target, recorder, blob).await,
            None => recorder.record(
                sections::DOWNLOAD,
                "download cases",
                Outcome::Skip("upload failed".to_owned()),
            ),
        }
    }
    if recorder.wants(sections::BLOB_COPY) {
        match &uploaded {
            Some(blob) => blob_copy_cases(target, recorder, blob).await,
            None => recorder.record(
                sections::BLOB_COPY,
                "copy an uploaded blob",
                Outcome::Skip("upload failed".to_owned()),
            ),
        }
    }
    if recorder.wants(sections::ISOLATION) {
        isolation_cases(target, recorder, uploaded.as_ref(), seed).await;
    }
}

fn expect_status(answer: &Answer, statuses: &[u16]) -> Result<(), String> {
    if statuses.contains(&answer.status) {
        return Ok(());
    }
    Err(format!(
        "HTTP {} (expected one of {statuses:?}): {}",
        answer.status,
        String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
    ))
}

async fn upload_limits(target: &Target, recorder: &mut Recorder<'_>) {
    let name = "an upload over maxSizeUpload is refused";
    let Some(max_upload) = target.core_limit("maxSizeUpload") else {
        recorder.record(
            sections::UPLOAD,
            name,
            Outcome::Skip("no maxSizeUpload".to_owned()),
        );
        return;
    };
    if max_upload >= LARGEST_PROBE_BODY {
        recorder.record(
            sections::UPLOAD,
            name,
            Outcome::Skip(format!("maxSizeUpload {max_upload} is too large to probe")),
        );
        return;
    }
    let url = expand_template(&target.upload_url, &[("accountId", &target.account_id)]);
    let outcome = match raw::post_padded(
        &url,
        &target.auth,
        UPLOAD_TYPE,
        b"",
        max_upload + 1,
        target.config.request_timeout,
    )
    .await
    {
        Err(raw::RawError::Unsupported(reason)) => Outcome::Skip(reason),
        Err(raw::RawError::Failed(reason)) => Outcome::Fail(reason),
        Ok(answer) if matches!(answer.status, 400 | 413) => Outcome::Pass,
        Ok(answer) => Outcome::Fail(format!("HTTP {} (expected 413 or 400)", answer.status)),
    };
    recorder.record(sections::UPLOAD, name, outcome);
}

async fn download_cases(target: &Target, recorder: &mut Recorder<'_>, blob: &Uploaded) {
    let section = sections::DOWNLOAD;
    let size = blob.content.len();
    let url = download_url(
        target,
        &target.account_id,
        &blob.blob_id,
        "report.bin",
        "application/pdf",
    );

    let whole = async {
        let answer = download(target, &target.auth, &url, None).await?;
        expect_status(&answer, &[200])?;
        if answer.body != blob.content {
            return Err(format!(
                "body differs ({} bytes, uploaded {size})",
                answer.body.len()
            ));
        }
        if answer.media_type() != "application/pdf" {
            return Err(format!(
                "Content-Type {:?}, asked for application/pdf",
                answer.header("content-type")
            ));
        }
        match answer.header("content-disposition") {
            Some(disposition) if !disposition.contains("report.bin") => Err(format!(
                "Content-Disposition {disposition:?} lacks the name report.bin"
            )),
            _ => Ok(()),
        }
    };
    recorder.check(
        section,
        "download returns the bytes with the requested type and name",
        whole.await,
    );

    let unusual_name = async {
        let url = download_url(
            target,
            &target.account_id,
            &blob.blob_id,
            "résumé 2026 \"final\".txt",
            "text/plain",
        );
        let answer = download(target, &target.auth, &url, None).await?;
        expect_status(&answer, &[200])?;
        if answer.body == blob.content {
            Ok(())
        } else {
            Err("body differs".to_owned())
        }
    };
    recorder.check(
        section,
        "a name with spaces, quotes and non-ASCII characters",
        unusual_name.await,
    );

    let ranged = async {
        let answer = download(target, &target.auth, &url, Some("bytes=10-19")).await?;
        expect_status(&answer, &[206])?;
        if answer.body != blob.content[10..20] {
            return Err(format!("body {:?} is not bytes 10-19", answer.body));
        }
        let expected_range = format!("bytes 10-19/{size}");
        match answer.header("content-range") {
            Some(range) if range == expected_range => Ok(()),
            other => Err(format!(
                "Content-Range {other:?}, expected {expected_range:?}"
            )),
        }
    };
    recorder.check(
        section,
        "Range: bytes=10-19 gives 206 with Content-Range",
        ranged.await,
    );

    let suffix = async {
        let answer = download(target, &target.auth, &url, Some("bytes=-7")).await?;
        expect_status(&answer, &[206])?;
        if answer.body == blob.content[size - 7..] {
            Ok(())
        } else {
            Err("body is not the last 7 bytes".to_owned())
        }
    };
    recorder.check(
        section,
        "Range: bytes=-7 gives the last 7 bytes",
        suffix.await,
    );

    let open_ended = async {
        let answer = download(target, &target.auth, &url, Some("bytes=990-")).await?;
        expect_status(&answer, &[206])?;
        if answer.body == blob.content[990..] {
            Ok(())
        } else {
            Err("body is not bytes 990-".to_owned())
        }
    };
    recorder.check(
        section,
        "Range: bytes=990- gives the tail",
        open_ended.await,
    );

    let unsatisfiable = async {
        let range = format!("bytes={}-", size + 10);
        let answer = download(target, &target.auth, &url, Some(&range)).await?;
        expect_status(&answer, &[416])
    };
    recorder.check(
        section,
        "a range past the end gives 416",
        unsatisfiable.await,
    );

    let unknown = async {
        let url = download_url(
            target,
            &target.account_id,
            "GnoSuchBlob0",
            "x.bin",
            UPLOAD_TYPE,
        );
        let answer = download(target, &target.auth, &url, None).await?;
        expect_status(&answer, &[404])
    };
    recorder.check(section, "an unknown blobId gives 404", unknown.await);
}

async fn blob_copy_cases(target: &Target, recorder: &mut Recorder<'_>, blob: &Uploaded) {
    let copy = async {
        let request = json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [
            ["Blob/copy", {"fromAccountId": target.account_id, "accountId": target.account_id,
                           "blobIds": [blob.blob_id]}, "c1"]]});
        let answer = target
            .http
            .post_json(&target.api_url, &target.auth, &request)
            .await?;
        expect_status(&answer, &[200])?;
        let body = answer.json()?;
        let pattern = json!({"methodResponses": [["Blob/copy", {
            "fromAccountId": target.account_id, "accountId": target.account_id,
            "copied": {"$exact": true, blob.blob_id.as_str(): "$id"}}, "c1"]]});
        matches(&pattern, &body)
            .map_err(|difference| format!("{difference}; answer: {}", abbreviate(&body)))?;
        let copied_id = body["methodResponses"][0][1]["copied"][&blob.blob_id]
            .as_str()
            .unwrap_or_default();
        debug_assert!(is_jmap_id(copied_id));
        let url = download_url(
            target,
            &target.account_id,
            copied_id,
            "copy.bin",
            UPLOAD_TYPE,
        );
        let downloaded = download(target, &target.auth, &url, None).await?;
        expect_status(&downloaded, &[200])?;
        if downloaded.body == blob.content {
            Ok(())
        } else {
            Err("the copy's bytes differ".to_owned())
        }
    };
    recorder.check(
        sections::BLOB_COPY,
        "copy an uploaded blob, then download the copy",
        copy.await,
    );
}

async fn isolation_cases(
    target: &Target,
    recorder: &mut Recorder<'_>,
    own_blob: Option<&Uploaded>,
    seed: u64,
) {
    let section = sections::ISOLATION;
    let Some(other) = &target.other_user else {
        recorder.record(
            section,
            "isolation between two users",
            Outcome::Skip("needs a second user".to_owned()),
        );
        return;
    };
    let other_content = payload(500, seed.wrapping_add(1));
    let other_blob = match upload(target, &other.auth, &other.account_id, &other_content).await {
        Ok(answer) => check_upload_answer(&answer, &other.account_id, &other_content),
        Err(error) => Err(error),
    };
    let Ok(other_blob_id) = other_blob else {
        recorder.record(
            section,
            "isolation between two users",
            Outcome::Fail("second user's upload failed".to_owned()),
        );
        return;
    };

    let through_own_account = async {
        let url = download_url(
            target,
            &target.account_id,
            &other_blob_id,
            "x.bin",
            UPLOAD_TYPE,
        );
        let answer = download(target, &target.auth, &url, None).await?;
        expect_status(&answer, &[404])
    };
    recorder.check(
        section,
        "another user's blob through one's own account: 404",
        through_own_account.await,
    );

    let through_other_account = async {
        let url = download_url(
            target,
            &other.account_id,
            &other_blob_id,
            "x.bin",
            UPLOAD_TYPE,
        );
        let answer = download(target, &target.auth, &url, None).await?;
        expect_status(&answer, &[403, 404])
    };
    recorder.check(
        section,
        "another user's blob through their account id: 403/404",
        through_other_account.await,
    );

    let upload_elsewhere = async {
        let answer = upload(target, &target.auth, &other.account_id, b"intrusion").await?;
        expect_status(&answer, &[403, 404])
    };
    recorder.check(
        section,
        "upload into another user's account: 403/404",
        upload_elsewhere.await,
    );

    // RFC 8620 §6.3: a blob that cannot be found is notCopied, with `blobNotFound` (RFC 8621
    // §10.6.3, what clients and the public JMAP suites expect; RFC 8620 names no type, so
    // `notFound` is accepted too); another user's blob must look exactly like one that does
    // not exist.
    let copy_other = async {
        let request = json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [
            ["Blob/copy", {"fromAccountId": target.account_id, "accountId": target.account_id,
                           "blobIds": [other_blob_id]}, "c1"]]});
        let answer = target
            .http
            .post_json(&target.api_url, &target.auth, &request)
            .await?;
        let body = answer.json()?;
        let pattern = |kind: &str| {
            json!({"methodResponses": [["Blob/copy", {"copied": null,
                "notCopied": {other_blob_id.as_str(): {"type": kind}}}, "c1"]]})
        };
        matches(&pattern("blobNotFound"), &body)
            .or_else(|_| matches(&pattern("notFound"), &body))
            .map_err(|difference| format!("{difference}; answer: {}", abbreviate(&body)))
    };
    recorder.check(
        section,
        "Blob/copy of another user's blob id: blobNotFound",
        copy_other.await,
    );

    if let Some(blob) = own_blob {
        let other_reads_mine = async {
            let url = download_url(
                target,
                &other.account_id,
                &blob.blob_id,
                "x.bin",
                UPLOAD_TYPE,
            );
            let answer = download(target, &other.auth, &url, None).await?;
            expect_status(&answer, &[404])
        };
        recorder.check(
            section,
            "the second user cannot read the first user's blob",
            other_reads_mine.await,
        );
    }
}
