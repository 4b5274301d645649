//! HTTP connections (issue 13, defect 2): zero-byte and trickling connections are closed at
//! their deadlines, idle keep-alive connections too, connections over the total or
//! per-address caps are refused with 429/503 and `Retry-After`, and meanwhile a client from
//! another address is served at once; push connections outlive the idle timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{TestServer, echo_request};

/// A TCP connection to `target` from the loopback address `source` (Linux routes all of
/// 127/8 to `lo`, so each 127.0.0.x is another client address).
pub async fn connect_from(source: &str, target: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let local: SocketAddr = format!("{source}:0").parse().expect("source address");
    socket.bind(local).expect("bind the source address");
    socket.connect(target).await.expect("connect")
}

/// Reads until the peer closes (`true`) or `within` passes (`false`).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0u8; 4096];
    let read_to_end = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

/// What the server sent within `within`, without waiting for more (empty: nothing yet).
async fn early_answer(stream: &mut TcpStream, within: Duration) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let _ = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&received).into_owned()
}

/// Core/echo through a fresh client bound to `source`; returns how long it took.
async fn echo_from(server: &TestServer, source: &str) -> Duration {
    let address: IpAddr = source.parse().expect("source address");
    let client = reqwest::Client::builder()
        .local_address(address)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let started = Instant::now();
    let response = client
        .post(server.api_url())
        .header("authorization", server.alice().authorization())
        .header("content-type", "application/json")
        .body(echo_request(1).to_string())
        .send()
        .await
        .expect("Core/echo answered");
    assert_eq!(response.status(), 200, "Core/echo from {source}");
    started.elapsed()
}

fn http_addr(server: &TestServer) -> SocketAddr {
    server.running().http_addr
}

#[tokio::test]
async fn zero_byte_connections_are_closed_at_the_first_byte_deadline() {
    let server = TestServer::start_with(|config| {
        config.http.first_byte_timeout_seconds = 1;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(connect_from("127.0.0.3", http_addr(&server)).await);
    }
    let started = Instant::now();
    for stream in &mut idle {
        assert!(
            closed_within(stream, Duration::from_secs(4)).await,
            "a connection that never sent a byte is still open after {:?}",
            started.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server is fine afterwards.
    assert!(echo_from(&server, "127.0.0.4").await < Duration::from_secs(2));
    server.shutdown().await;
}

#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_deadline() {
    let server = TestServer::start_with(|config| {
        config.http.first_byte_timeout_seconds = 1;
        config.http.header_timeout_seconds = 1;
    })
    .await;
    let mut stream = connect_from("127.0.0.5", http_addr(&server)).await;
    let started = Instant::now();
    stream
        .write_all(b"GET /.well-known/jmap HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("first line");
    // One header byte every 200 ms: a per-read timeout never fires, a deadline does.
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(6) {
        if stream.write_all(b"X").await.is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut stream, Duration::from_millis(200)).await {
            cut = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        cut,
        "a trickled request head is still being read after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "cut after {elapsed:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let server = TestServer::start_with(|config| {
        config.http.idle_timeout_seconds = 1;
    })
    .await;
    let mut stream = connect_from("127.0.0.6", http_addr(&server)).await;
    stream
        .write_all(b"GET /.well-known/jmap HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let answer = early_answer(&mut stream, Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let started = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(4)).await,
        "an idle keep-alive connection is still open"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    server.shutdown().await;
}

#[tokio::test]
async fn over_the_caps_connections_are_refused_while_another_address_is_served() {
    let server = TestServer::start_with(|config| {
        // 50 slots, the last 5 of them for addresses holding fewer than 4.
        config.http.max_connections = 50;
        config.http.max_connections_per_address = 10;
        config.http.retry_after_seconds = 3;
    })
    .await;
    let target = http_addr(&server);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(connect_from("127.0.0.7", target).await);
    }
    // Over the per-address cap: 429 with Retry-After, at once.
    let mut over = connect_from("127.0.0.7", target).await;
    let answer = early_answer(&mut over, Duration::from_secs(2)).await;
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    assert!(answer.contains("Retry-After: 3\r\n"), "{answer}");
    assert!(answer.contains("your address"), "{answer}");
    // Fill the listener from a few addresses until it refuses with 503.
    let mut full = None;
    'fill: for host in 10..20 {
        let source = format!("127.0.0.{host}");
        for _ in 0..10 {
            let mut stream = connect_from(&source, target).await;
            let answer = early_answer(&mut stream, Duration::from_millis(50)).await;
            if answer.is_empty() {
                held.push(stream);
            } else {
                full = Some(answer);
                break 'fill;
            }
        }
    }
    let full = full.expect("the total cap refuses");
    assert!(full.starts_with("HTTP/1.1 503 "), "{full}");
    assert!(full.contains("Retry-After: 3\r\n"), "{full}");
    // A new client address still gets in (the fair-share reserve), quickly.
    let latency = echo_from(&server, "127.0.0.100").await;
    assert!(
        latency < Duration::from_millis(1000),
        "Core/echo took {latency:?}"
    );
    drop(held);
    server.shutdown().await;
}

#[tokio::test]
async fn push_connections_outlive_the_idle_timeout_and_have_their_own_bound() {
    let server = TestServer::start_with(|config| {
        config.http.idle_timeout_seconds = 1;
        config.http.max_push_connections_per_address = 1;
    })
    .await;
    let open_eventsource = |source: &'static str| {
        let token = server.alice_token().to_owned();
        let target = http_addr(&server);
        async move {
            let mut stream = connect_from(source, target).await;
            let request = format!(
                "GET /jmap/eventsource?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {token}\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.expect("request");
            let answer = early_answer(&mut stream, Duration::from_millis(500)).await;
            (stream, answer)
        }
    };
    let (mut push, answer) = open_eventsource("127.0.0.8").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A second push connection from the same address is over its bound.
    let (_second, answer) = open_eventsource("127.0.0.8").await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: "),
        "{answer}"
    );
    // Twice the idle timeout later, the first one is still open.
    assert!(
        !closed_within(&mut push, Duration::from_millis(2500)).await,
        "an EventSource connection was closed by the idle timeout"
    );
    server.shutdown().await;
}
