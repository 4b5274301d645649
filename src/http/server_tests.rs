//! HTTP error paths and blob transfer against a real server on an ephemeral port, spoken to
//! with raw HTTP/1.1 bytes (so nothing a client library does hides what goes over the wire),
//! plus TLS with ALPN h2 through hyper's HTTP/2 client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::server::{RunningServer, Server};

const ALICE: (&str, &str) = ("alice@example.test", "alice-password");
const BOB: (&str, &str) = ("bob@example.test", "bob-password");

struct Harness {
    server: RunningServer,
    _dir: tempfile::TempDir,
}

async fn start(configure: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_owned();
    config.server.http = "127.0.0.1:0".parse().unwrap();
    configure(&mut config);
    let server = Server::start(config).await.expect("server starts");
    for (email, password) in [ALICE, BOB] {
        server.create_account(email, password).await.unwrap();
    }
    Harness { server, _dir: dir }
}

fn basic((email, password): (&str, &str)) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    format!("Basic {encoded}")
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn parse_response(bytes: &[u8]) -> RawResponse {
    let split = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: bytes[split + 4..].to_vec(),
    }
}

/// Reads one response off `stream` until the server closes it (requests say
/// `Connection: close`), with a timeout so a hang fails the test.
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut bytes))
        .await
        .expect("response in time")
        .ok();
    parse_response(&bytes)
}

async fn send(server: &RunningServer, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    // RFC 8620 §3.1: API requests are application/json.
    if method == "POST"
        && path.starts_with("/jmap/api")
        && !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        text.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || method == "POST" {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

const ECHO: &[u8] =
    br#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"x":1},"c0"]]}"#;

#[tokio::test]
async fn missing_or_bad_credentials_get_401_with_both_challenges() {
    let harness = start(|_| {}).await;
    let server = &harness.server;
    for authorization in [
        None,
        Some(basic((ALICE.0, "wrong"))),
        Some("Bearer tern_nope".into()),
    ] {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| vec![("Authorization", value)])
            .unwrap_or_default();
        let response = send(server, &request("GET", "/.well-known/jmap", &headers, b"")).await;
        assert_eq!(response.status, 401);
        assert_eq!(
            response.header("www-authenticate"),
            Some("Basic realm=\"tern\", Bearer realm=\"tern\"")
        );
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(response.json()["status"], 401);
    }
    let token = server.create_token(ALICE.0).await.unwrap();
    let bearer = format!("Bearer {token}");
    let ok = send(
        server,
        &request(
            "GET",
            "/.well-known/jmap",
            &[("Authorization", &bearer)],
            b"",
        ),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["username"], ALICE.0);
    harness.server.shutdown().await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    // No slowing down (max delay 0): an empty bucket refuses at once.
    let harness = start(|config| {
        config.auth.failed_login_burst = 2;
        config.auth.failed_login_max_delay_seconds = 0;
    })
    .await;
    let wrong = basic((ALICE.0, "wrong"));
    let wrong_request = request(
        "GET",
        "/.well-known/jmap",
        &[("Authorization", &wrong)],
        b"",
    );
    for _ in 0..2 {
        assert_eq!(send(&harness.server, &wrong_request).await.status, 401);
    }
    let limited = send(&harness.server, &wrong_request).await;
    assert_eq!(limited.status, 429);
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry_after), "{retry_after}");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn oversized_request_is_refused_before_the_body_is_read() {
    let harness = start(|_| {}).await;
    let auth = basic(ALICE);
    let mut stream = TcpStream::connect(harness.server.http_addr).await.unwrap();
    // Headers only: the server must answer without waiting for 100 MB that never come.
    let head = format!(
        "POST /jmap/api HTTP/1.1\r\nHost: test\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 413);
    let problem = response.json();
    assert_eq!(problem["type"], "urn:ietf:params:jmap:error:limit");
    assert_eq!(problem["limit"], "maxSizeRequest");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn oversized_chunked_request_is_cut_off_at_the_limit() {
    let harness = start(|config| config.jmap.max_size_request = 1000).await;
    let auth = basic(ALICE);
    let chunk = vec![b' '; 800];
    let mut bytes = format!(
        "POST /jmap/api HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..2 {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(&chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let response = send(&harness.server, &bytes).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["limit"], "maxSizeRequest");
    // A request under the limit still works.
    let ok = send(
        &harness.server,
        &request("POST", "/jmap/api", &[("Authorization", &auth)], ECHO),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    harness.server.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_over_the_limit_get_429() {
    let harness = start(|config| config.jmap.max_concurrent_requests = 1).await;
    let auth = basic(ALICE);
    // The first request holds its slot while its body is incomplete.
    let mut held = TcpStream::connect(harness.server.http_addr).await.unwrap();
    let head = format!(
        "POST /jmap/api HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        ECHO.len()
    );
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(&ECHO[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = send(
        &harness.server,
        &request("POST", "/jmap/api", &[("Authorization", &auth)], ECHO),
    )
    .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["limit"], "maxConcurrentRequests");
    // Another account is not affected.
    let bob = basic(BOB);
    let other = send(
        &harness.server,
        &request("POST", "/jmap/api", &[("Authorization", &bob)], ECHO),
    )
    .await;
    assert_eq!(other.status, 200);
    held.write_all(&ECHO[10..]).await.unwrap();
    assert_eq!(read_response(&mut held).await.status, 200);
    let after = send(
        &harness.server,
        &request("POST", "/jmap/api", &[("Authorization", &auth)], ECHO),
    )
    .await;
    assert_eq!(after.status, 200, "the slot is freed");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_and_actual_request() {
    let harness = start(|config| {
        config.cors.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let preflight = send(
        &harness.server,
        &request(
            "OPTIONS",
            "/jmap/api",
            &[
                ("Origin", "https://app.example"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            b"",
        ),
    )
    .await;
    assert_eq!(
        preflight.status, 204,
        "no credentials needed for a preflight"
    );
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("Authorization")
    );
    let refused = send(
        &harness.server,
        &request(
            "OPTIONS",
            "/jmap/api",
            &[
                ("Origin", "https://evil.example"),
                ("Access-Control-Request-Method", "POST"),
            ],
            b"",
        ),
    )
    .await;
    assert_eq!(refused.status, 403);
    let auth = basic(ALICE);
    let actual = send(
        &harness.server,
        &request(
            "POST",
            "/jmap/api",
            &[("Authorization", &auth), ("Origin", "https://app.example")],
            ECHO,
        ),
    )
    .await;
    assert_eq!(actual.status, 200);
    assert_eq!(
        actual.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    // Errors carry CORS headers too, so a browser client can read them.
    let unauthorized = send(
        &harness.server,
        &request(
            "POST",
            "/jmap/api",
            &[("Origin", "https://app.example")],
            ECHO,
        ),
    )
    .await;
    assert_eq!(unauthorized.status, 401);
    assert!(
        unauthorized
            .header("access-control-expose-headers")
            .unwrap()
            .contains("WWW-Authenticate")
    );
    harness.server.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let harness = start(|_| {}).await;
    let missing = send(&harness.server, &request("GET", "/nope", &[], b"")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    // The cluster's internal hint route exists only on a cluster node.
    let hints = send(
        &harness.server,
        &request("POST", "/internal/cluster/commits", &[], b"1,2"),
    )
    .await;
    assert_eq!(hints.status, 404);
    let wrong = send(&harness.server, &request("GET", "/jmap/api", &[], b"")).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST, OPTIONS"));
    let auth = basic(ALICE);
    let not_json = send(
        &harness.server,
        &request("POST", "/jmap/api", &[("Authorization", &auth)], b"{"),
    )
    .await;
    assert_eq!(not_json.status, 400);
    assert_eq!(
        not_json.json()["type"],
        "urn:ietf:params:jmap:error:notJSON"
    );
    harness.server.shutdown().await;
}

async fn upload(
    server: &RunningServer,
    who: (&str, &str),
    account: &str,
    body: &[u8],
) -> RawResponse {
    let auth = basic(who);
    let path = format!("/jmap/upload/{account}/");
    send(
        server,
        &request(
            "POST",
            &path,
            &[("Authorization", &auth), ("Content-Type", "image/png")],
            body,
        ),
    )
    .await
}

#[tokio::test]
async fn upload_download_ranges_caching_and_isolation() {
    let harness = start(|config| config.jmap.max_size_upload = 300_000).await;
    let server = &harness.server;
    let content: Vec<u8> = (0..250_000u32).map(|index| (index % 251) as u8).collect();
    let uploaded = upload(server, ALICE, "a1", &content).await;
    assert_eq!(
        uploaded.status,
        201,
        "{}",
        String::from_utf8_lossy(&uploaded.body)
    );
    let info = uploaded.json();
    assert_eq!(info["accountId"], "a1");
    assert_eq!(info["type"], "image/png");
    assert_eq!(info["size"], 250_000);
    let blob_id = info["blobId"].as_str().unwrap().to_owned();

    let auth = basic(ALICE);
    let path = format!("/jmap/download/a1/{blob_id}/caf%C3%A9.png?type=image%2Fpng");
    let full = send(
        server,
        &request("GET", &path, &[("Authorization", &auth)], b""),
    )
    .await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body, content);
    assert_eq!(full.header("content-type"), Some("image/png"));
    assert_eq!(
        full.header("content-disposition"),
        Some("attachment; filename=\"caf_.png\"; filename*=UTF-8''caf%C3%A9.png")
    );
    let etag = full.header("etag").unwrap().to_owned();

    let partial = send(
        server,
        &request(
            "GET",
            &path,
            &[("Authorization", &auth), ("Range", "bytes=100000-100009")],
            b"",
        ),
    )
    .await;
    assert_eq!(partial.status, 206);
    assert_eq!(
        partial.header("content-range"),
        Some("bytes 100000-100009/250000")
    );
    assert_eq!(partial.body, content[100_000..100_010]);
    let suffix = send(
        server,
        &request(
            "GET",
            &path,
            &[("Authorization", &auth), ("Range", "bytes=-5")],
            b"",
        ),
    )
    .await;
    assert_eq!(suffix.body, content[249_995..]);
    let outside = send(
        server,
        &request(
            "GET",
            &path,
            &[("Authorization", &auth), ("Range", "bytes=250000-")],
            b"",
        ),
    )
    .await;
    assert_eq!(outside.status, 416);
    assert_eq!(outside.header("content-range"), Some("bytes */250000"));
    let cached = send(
        server,
        &request(
            "GET",
            &path,
            &[("Authorization", &auth), ("If-None-Match", &etag)],
            b"",
        ),
    )
    .await;
    assert_eq!(cached.status, 304);

    // Bob sees nothing of Alice's: not her account, not her blob under his own account.
    let bob = basic(BOB);
    let foreign = send(
        server,
        &request("GET", &path, &[("Authorization", &bob)], b""),
    )
    .await;
    assert_eq!(foreign.status, 404);
    let own_path = format!("/jmap/download/a2/{blob_id}/x");
    let unlinked = send(
        server,
        &request("GET", &own_path, &[("Authorization", &bob)], b""),
    )
    .await;
    assert_eq!(unlinked.status, 404);
    let never = format!("/jmap/download/a2/G{}/x", "0".repeat(64));
    let missing = send(
        server,
        &request("GET", &never, &[("Authorization", &bob)], b""),
    )
    .await;
    assert_eq!(
        (missing.status, missing.body.clone()),
        (unlinked.status, unlinked.body.clone())
    );
    assert_eq!(upload(server, BOB, "a1", b"x").await.status, 404);

    let too_large = upload(server, ALICE, "a1", &vec![0u8; 300_001]).await;
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["limit"], "maxSizeUpload");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn concurrent_uploads_over_the_limit_get_429() {
    let harness = start(|config| config.jmap.max_concurrent_upload = 1).await;
    let auth = basic(ALICE);
    let mut held = TcpStream::connect(harness.server.http_addr).await.unwrap();
    let head = format!(
        "POST /jmap/upload/a1/ HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Authorization: {auth}\r\nContent-Length: 10\r\n\r\n01234"
    );
    held.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = upload(&harness.server, ALICE, "a1", b"abc").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["limit"], "maxConcurrentUpload");
    held.write_all(b"56789").await.unwrap();
    let finished = read_response(&mut held).await;
    assert_eq!(finished.status, 201);
    assert_eq!(finished.json()["size"], 10);
    harness.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let harness = start(|_| {}).await;
    let auth = basic(ALICE);
    let mut in_flight = TcpStream::connect(harness.server.http_addr).await.unwrap();
    let head = format!(
        "POST /jmap/api HTTP/1.1\r\nHost: test\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        ECHO.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&ECHO[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let http_addr = harness.server.http_addr;
    let shutdown = tokio::spawn(harness.server.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(http_addr).await.is_err(),
        "no longer accepting"
    );
    in_flight.write_all(&ECHO[5..]).await.unwrap();
    let response = read_response(&mut in_flight).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["methodResponses"][0][1]["x"], 1);
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown completes")
        .unwrap();
}

#[tokio::test]
async fn tls_with_alpn_h2() {
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/testdata");
    let harness = start(|config| {
        config.server.tls_cert = Some(testdata.join("cert.pem"));
        config.server.tls_key = Some(testdata.join("key.pem"));
    })
    .await;
    assert!(harness.server.base_url.starts_with("https://"));

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(testdata.join("cert.pem")).unwrap();
    for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = TcpStream::connect(harness.server.http_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .uri(format!("{}/.well-known/jmap", harness.server.base_url))
        .header("authorization", basic(ALICE))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    harness.server.shutdown().await;
}

#[tokio::test]
async fn bad_tls_files_fail_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_owned();
    config.server.http = "127.0.0.1:0".parse().unwrap();
    config.server.tls_cert = Some(dir.path().join("missing.pem"));
    config.server.tls_key = Some(dir.path().join("missing-key.pem"));
    let Err(error) = Server::start(config).await else {
        panic!("started without a certificate");
    };
    assert_eq!(error.kind, crate::server::StartErrorKind::Tls);
    assert!(error.message.contains("missing.pem") && !error.message.contains('\n'));
}
