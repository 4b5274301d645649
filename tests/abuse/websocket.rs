//! WebSocket misuse (issue 13, defects 5 and 6): a client's Close frame is answered with a
//! Close frame (RFC 6455 §5.5.1) and a malformed `Sec-WebSocket-Key` is refused with 400
//! (RFC 6455 §4.2.1), not upgraded.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::common::{TestServer, TestUser};

const WAIT: Duration = Duration::from_secs(10);

/// Sends an upgrade request with `key` and returns the status and head of the answer.
async fn handshake(server: &TestServer, user: &TestUser, key: &str) -> (TcpStream, u16, String) {
    let mut stream = TcpStream::connect(server.running().http_addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /jmap/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\n\
         Authorization: {}\r\n\r\n",
        user.authorization()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write handshake");
    // Byte by byte: nothing after the head may be consumed (frames follow a 101).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, stream.read_u8())
            .await
            .expect("an answer in time")
            .expect("read handshake answer");
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    (stream, status, head)
}

#[tokio::test]
async fn malformed_websocket_keys_are_refused_with_400() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    for key in [
        "short",
        "not base64 at all!!!!!!!",
        // Valid base64, but of 15 and of 17 bytes.
        "dGhlIHNhbXBsZSBub25j",
        "dGhlIHNhbXBsZSBub25jZSE=",
    ] {
        let (_stream, status, head) = handshake(&server, &alice, key).await;
        assert_eq!(status, 400, "RFC 6455 §4.2.1: key {key:?} → {head}");
    }
    let (_stream, status, head) = handshake(&server, &alice, "dGhlIHNhbXBsZSBub25jZQ==").await;
    assert_eq!(status, 101, "a well-formed key is accepted: {head}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_close_frame_is_answered_with_a_close_frame() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let (stream, status, head) = handshake(&server, &alice, "dGhlIHNhbXBsZSBub25jZQ==").await;
    assert_eq!(status, 101, "{head}");
    let mut socket = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .expect("send Close");
    // RFC 6455 §5.5.1: the server answers with a Close frame (echoing the status code).
    let answer = loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Err(_) => panic!("no Close frame within {WAIT:?}"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => break other,
        }
    };
    match answer {
        Some(Ok(Message::Close(frame))) => {
            let code = frame.map(|frame| frame.code);
            assert!(
                matches!(code, None | Some(CloseCode::Normal)),
                "the Close answer echoes 1000: {code:?}"
            );
        }
        other => {
            panic!("expected a Close frame, the server sent {other:?} (a dropped TCP is 1006)")
        }
    }
    // Then the connection ends cleanly (the server closes TCP, RFC 6455 §7.1.1).
    let end = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("closed in time");
    assert!(
        matches!(end, None | Some(Err(_))),
        "nothing after the Close: {end:?}"
    );
    server.shutdown().await;
}

/// A flood: 8 WebSockets each pipelining 32 Core/echo requests of 4 KB at once, again and
/// again. Each socket holds at most `max_in_flight` requests (the rest get a `limit`
/// RequestError, RFC 8620 §3.6.1, on the same socket, which stays open), and a normal client
/// on HTTP keeps getting Core/echo answers within the bound the whole time.
#[tokio::test]
async fn a_websocket_flood_is_bounded_per_socket_and_other_clients_are_served() {
    const SOCKETS: usize = 8;
    const PIPELINED: usize = 32;
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let request = serde_json::json!({"@type": "Request", "id": "flood",
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [["Core/echo", {"flood": "x".repeat(4 * 1024)}, "0"]]})
    .to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = tokio::task::JoinSet::new();
    for _ in 0..SOCKETS {
        let (stream, status, head) = handshake(&server, &alice, "dGhlIHNhbXBsZSBub25jZQ==").await;
        assert_eq!(status, 101, "{head}");
        let mut socket = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
        let request = request.clone();
        let stop = std::sync::Arc::clone(&stop);
        flooders.spawn(async move {
            let (mut answered, mut limited) = (0usize, 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..PIPELINED {
                    socket
                        .send(Message::text(request.clone()))
                        .await
                        .expect("the flooded socket stays open");
                }
                let mut pending = PIPELINED;
                while pending > 0 {
                    match tokio::time::timeout(WAIT, socket.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) => {
                            pending -= 1;
                            if text.as_str().contains("urn:ietf:params:jmap:error:limit") {
                                limited += 1;
                            } else {
                                assert!(text.as_str().contains("Core/echo"), "{text}");
                                answered += 1;
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        other => panic!("the flooded socket ended: {other:?}"),
                    }
                }
            }
            (answered, limited)
        });
    }
    let mut probes = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        let started = std::time::Instant::now();
        let answer = server
            .post_api(&alice, &crate::common::echo_request(1))
            .await;
        assert_eq!(answer.status, 200, "Core/echo during the flood");
        probes.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut answered, mut limited) = (0, 0);
    for (socket_answered, socket_limited) in flooders.join_all().await {
        answered += socket_answered;
        limited += socket_limited;
    }
    probes.sort();
    let p99 = probes[(probes.len() * 99).div_ceil(100) - 1];
    println!(
        "flood: {answered} answered, {limited} limited; probe n={} p50={:?} p99={p99:?}",
        probes.len(),
        probes[probes.len() / 2]
    );
    assert!(
        answered > 0 && limited > 0,
        "{answered} answered, {limited} limited"
    );
    // Debug build on a loaded 2-core machine: the 100 ms, with room for the noise.
    assert!(
        p99 < Duration::from_millis(250),
        "probe p99 {p99:?} during the flood"
    );
    server.shutdown().await;
}
