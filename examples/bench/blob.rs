//! Blob scenarios: `blob` (upload and download over HTTP, RFC 8620 §6) and `blob-range`
//! (RFC 9404 Blob/get of a small range of one large blob).

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::{
    Connection, MAX_DURATION, Options, RunFigures, Samples, Target, build_request,
    loopback_endpoint,
};

/// Octets each `blob-range` Blob/get asks for (the "1 KB range").
const RANGE_LENGTH: usize = 1024;

pub(crate) fn blob_content(size: usize, iteration: u64) -> Bytes {
    // Distinct content per iteration so a deduplicating store still does the full work.
    let mut state = iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut content = Vec::with_capacity(size + 8);
    while content.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.extend_from_slice(&state.to_le_bytes());
    }
    content.truncate(size);
    Bytes::from(content)
}

/// Uploads `content` (RFC 8620 §6.1) and answers its blob id.
async fn upload(
    connection: &mut Connection,
    target: &Target,
    content: Bytes,
) -> Result<String, String> {
    let request = build_request(
        "POST",
        &target.upload,
        &target.upload.path_and_query,
        &target.authorization,
        Some("application/octet-stream"),
        content,
    )?;
    let (status, body) = connection.exchange(request).await?;
    if !(200..300).contains(&status) {
        return Err(format!(
            "upload answered HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let answer: Value =
        serde_json::from_slice(&body).map_err(|error| format!("upload answer: {error}"))?;
    answer["blobId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "upload answer lacks blobId".to_owned())
}

/// Uploads then downloads `--iterations` blobs of `--blob-size` octets over one connection.
pub(crate) async fn transfer(
    options: &Options,
    target: &Target,
    run: usize,
) -> Result<RunFigures, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let mut upload_time = Duration::ZERO;
    let mut download_time = Duration::ZERO;
    let mut round_trips = Samples::default();
    let deadline = Instant::now() + MAX_DURATION;
    let seed = (u64::from(std::process::id()) << 32) | ((run as u64) << 20);
    for iteration in 0..options.iterations {
        if Instant::now() > deadline {
            break;
        }
        let content = blob_content(options.blob_size, seed + iteration);
        let started = Instant::now();
        let blob_id = upload(&mut connection, target, content.clone()).await?;
        let uploaded = started.elapsed();
        let download_url = target
            .download_template
            .replace("{accountId}", &target.account_id)
            .replace("{blobId}", &blob_id)
            .replace("{name}", "bench.bin")
            .replace("{type}", "application%2Foctet-stream");
        let download_endpoint = loopback_endpoint(&download_url)?;
        let download_started = Instant::now();
        let request = build_request(
            "GET",
            &download_endpoint,
            &download_endpoint.path_and_query,
            &target.authorization,
            None,
            Bytes::new(),
        )?;
        let (status, downloaded) = connection.exchange(request).await?;
        let download_elapsed = download_started.elapsed();
        if status != 200 || downloaded != content {
            return Err(format!(
                "download answered HTTP {status} with {} bytes",
                downloaded.len()
            ));
        }
        upload_time += uploaded;
        download_time += download_elapsed;
        round_trips.push(started.elapsed());
    }
    let megabytes = |count: usize| count as f64 * options.blob_size as f64 / 1e6;
    let summary = round_trips.summary();
    let moved = megabytes(summary.count);
    let upload_rate = moved / upload_time.as_secs_f64();
    let download_rate = moved / download_time.as_secs_f64();
    let combined_rate = 2.0 * moved / (upload_time + download_time).as_secs_f64();
    println!(
        "  blob ({} bytes x {}): upload {upload_rate:.0} MB/s, download {download_rate:.0} MB/s, \
         upload+download {combined_rate:.0} MB/s; round trip {summary}",
        options.blob_size, summary.count
    );
    Ok(RunFigures {
        headline: upload_rate.min(download_rate),
        headline_unit: "MB/s (slower direction)",
        p50: summary.p50,
        p99: summary.p99,
    })
}

/// Uploads one blob of `--blob-size` octets, then times `--requests` Blob/get calls of a
/// 1 KB range at pseudo-random offsets (`data:asBase64`), each checked against the content.
pub(crate) async fn range_get(
    options: &Options,
    target: &Target,
    run: usize,
) -> Result<RunFigures, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let size = options.blob_size.max(RANGE_LENGTH);
    let content = blob_content(size, (u64::from(std::process::id()) << 32) | run as u64);
    let blob_id = upload(&mut connection, target, content.clone()).await?;
    let using = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:blob"];
    let mut samples = Samples::default();
    let deadline = Instant::now() + MAX_DURATION;
    let began = Instant::now();
    let mut offset_state = 0x2545_F491_4F6C_DD1Du64 ^ run as u64;
    for _ in 0..options.requests {
        if Instant::now() > deadline {
            break;
        }
        offset_state ^= offset_state << 13;
        offset_state ^= offset_state >> 7;
        offset_state ^= offset_state << 17;
        let offset = (offset_state % (size - RANGE_LENGTH + 1) as u64) as usize;
        let calls = json!([["Blob/get", {"accountId": target.account_id, "ids": [blob_id],
            "offset": offset, "length": RANGE_LENGTH, "properties": ["data:asBase64"]}, "g"]]);
        let started = Instant::now();
        let response = crate::mail::call_using(&mut connection, target, &using, calls).await?;
        samples.push(started.elapsed());
        let encoded = response["methodResponses"][0][1]["list"][0]["data:asBase64"]
            .as_str()
            .ok_or_else(|| format!("Blob/get answered {response}"))?;
        let octets = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| format!("Blob/get base64: {error}"))?;
        if octets[..] != content[offset..offset + RANGE_LENGTH] {
            return Err(format!("Blob/get at {offset} returned other octets"));
        }
    }
    let elapsed = began.elapsed();
    let summary = samples.summary();
    println!(
        "  blob-range (1024 of {size} octets, Blob/get x {}): {summary}",
        summary.count
    );
    Ok(RunFigures {
        headline: summary.count as f64 / elapsed.as_secs_f64(),
        headline_unit: "Blob/get/s",
        p50: summary.p50,
        p99: summary.p99,
    })
}
