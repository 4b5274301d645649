//! A minimal HTTP/1.1 exchange over a plain TCP socket, for oversized bodies: the body is
//! written while the answer is read, so a server that refuses early (and perhaps closes the
//! connection mid-body) is observed the same way as one that reads everything first. A
//! general-purpose client would report the early close as a failed request instead.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::{Answer, Auth};

#[derive(Debug)]
pub enum RawError {
    /// The probe cannot run here (e.g. an `https` URL); the case is skipped.
    Unsupported(String),
    Failed(String),
}

const CHUNK: usize = 64 * 1024;
const MAX_ANSWER: usize = 1024 * 1024;

/// POSTs `prefix` followed by spaces up to `total_size` bytes and returns the server's answer.
pub async fn post_padded(
    url: &str,
    auth: &Auth,
    content_type: &str,
    prefix: &[u8],
    total_size: u64,
    timeout: Duration,
) -> Result<Answer, RawError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| RawError::Failed(format!("bad URL {url}: {error}")))?;
    if parsed.scheme() != "http" {
        return Err(RawError::Unsupported(
            "the oversize probe needs a plain http:// URL".to_owned(),
        ));
    }
    let host = parsed.host_str().unwrap_or("localhost").to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut target = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {total_size}\r\nConnection: close\r\n"
    );
    if let Auth::Header(value) = auth {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    head.push_str("\r\n");

    let exchange = async {
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|error| RawError::Failed(format!("connect {host}:{port}: {error}")))?;
        let (mut reader, mut writer) = stream.into_split();
        let prefix = prefix.to_vec();
        let writer_task = tokio::spawn(async move {
            // Write errors are expected when the server refuses early and closes.
            if writer.write_all(head.as_bytes()).await.is_err()
                || writer.write_all(&prefix).await.is_err()
            {
                return;
            }
            let mut remaining = total_size.saturating_sub(prefix.len() as u64);
            let padding = vec![b' '; CHUNK];
            while remaining > 0 {
                let this_chunk = usize::try_from(remaining).map_or(CHUNK, |left| left.min(CHUNK));
                if writer.write_all(&padding[..this_chunk]).await.is_err() {
                    return;
                }
                remaining -= this_chunk as u64;
            }
        });
        let answer = read_answer(&mut reader).await;
        writer_task.abort();
        answer
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| RawError::Failed(format!("no answer within {timeout:?}")))?
}

async fn read_answer(reader: &mut (impl AsyncReadExt + Unpin)) -> Result<Answer, RawError> {
    let mut received = Vec::with_capacity(4096);
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(position) = find(&received, b"\r\n\r\n") {
            break position;
        }
        let read = reader
            .read(&mut buffer)
            .await
            .map_err(|error| RawError::Failed(format!("reading the answer: {error}")))?;
        if read == 0 {
            return Err(RawError::Failed(
                "connection closed before an answer".to_owned(),
            ));
        }
        received.extend_from_slice(&buffer[..read]);
        if received.len() > MAX_ANSWER {
            return Err(RawError::Failed("answer head too large".to_owned()));
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| RawError::Failed(format!("bad status line {status_line:?}")))?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let mut body = received[head_end + 4..].to_vec();
    let content_length = headers
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    // Read until the declared length, or until the server closes (Connection: close was asked).
    loop {
        if content_length.is_some_and(|length| body.len() >= length) || body.len() > MAX_ANSWER {
            break;
        }
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => body.extend_from_slice(&buffer[..read]),
        }
    }
    if let Some(length) = content_length {
        body.truncate(length);
    }
    let chunked = headers
        .get("transfer-encoding")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        let start = line_end + 2;
        if size == 0 || start + size > data.len() {
            break;
        }
        body.extend_from_slice(&data[start..start + size]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"), b"abcde");
    }

    #[tokio::test]
    async fn answers_are_parsed_with_content_length() {
        let wire: &[u8] =
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}extra";
        let mut reader = wire;
        let answer = read_answer(&mut reader).await.unwrap();
        assert_eq!(answer.status, 413);
        assert_eq!(answer.body, b"{}");
        assert_eq!(answer.header("x-a"), Some("b"));
    }
}
