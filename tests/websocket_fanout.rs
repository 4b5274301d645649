//! The direct fan-out of StateChanges to many WebSockets (the hub writes one pre-encoded frame
//! to each idle socket itself), through raw client sockets: every socket gets every change, in
//! order, as well-formed frames, also when its own responses fill the socket at the same time;
//! and the API's `Server-Timing` header that lets a bench place the commit instant.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::TestServer;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tern::jmap::types::{AccountId, State};
use tern::store::commit::{DataType, commit_account};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

const WAIT: Duration = Duration::from_secs(10);

/// Answers this large outgrow any socket buffer, so writing one takes many `write`s.
const PADDING: usize = 1_000_000;

type Socket = WebSocketStream<TcpStream>;

fn account_number(user: &common::TestUser) -> u32 {
    AccountId::parse(&user.account_id)
        .expect("account id")
        .number()
}

/// A commit by another writer, through the one write path. Returns the new account version.
async fn commit_change(server: &TestServer, account_id: u32) -> u64 {
    let committed = commit_account(server.running().store(), account_id, |_tx, changes| {
        Box::pin(async move {
            changes.updated(DataType::Email, 1);
            Ok(())
        })
    })
    .await
    .expect("commit");
    committed.version
}

/// An upgraded socket with push enabled for every type, once the server has processed the
/// enable (an echo sent after it was answered). `receive_buffer`: a small one makes the
/// server's writes to this socket block sooner.
async fn push_socket(
    server: &TestServer,
    user: &common::TestUser,
    receive_buffer: Option<u32>,
) -> Socket {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).expect("rcvbuf");
    }
    let mut stream = socket
        .connect(server.running().http_addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /jmap/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: jmap\r\nAuthorization: {}\r\n\r\n",
        user.authorization()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    // Byte by byte: the frames that follow the head must stay unread.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("read head"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgraded");
    let mut socket = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
    send(&mut socket, &json!({"@type": "WebSocketPushEnable"})).await;
    send(&mut socket, &echo("sync", json!({}))).await;
    loop {
        let message = next_json(&mut socket).await;
        if message["requestId"] == "sync" {
            return socket;
        }
    }
}

fn echo(id: &str, payload: Value) -> Value {
    json!({
        "@type": "Request",
        "id": id,
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [["Core/echo", payload, "c0"]],
    })
}

async fn send(socket: &mut Socket, value: &Value) {
    socket
        .send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// The next text message as JSON; a malformed or interleaved frame fails here.
async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("a well-formed frame");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn email_state(change: &Value, account: &str) -> u64 {
    let text = change["changed"][account]["Email"]
        .as_str()
        .expect("an Email state");
    State::parse(text)
        .expect("a state this server made")
        .version()
}

#[tokio::test]
async fn every_socket_gets_every_change_in_order() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let account = account_number(&alice);
    // Enough sockets for the fan-out to run on both worker threads.
    let count = 160;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(push_socket(&server, &alice, None).await);
    }
    for _ in 0..5 {
        let version = commit_change(&server, account).await;
        for socket in &mut sockets {
            let change = next_json(socket).await;
            assert_eq!(change["@type"], "StateChange");
            assert_eq!(email_state(&change, &alice.account_id), version);
            assert!(change["pushState"].is_string(), "RFC 8887 pushState");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn pushes_never_split_or_reorder_the_sockets_own_responses() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let account = account_number(&alice);
    // A small receive buffer and a slow reader: the server's writes to this socket end
    // partway through frames, while the fan-out keeps offering StateChanges.
    let socket = push_socket(&server, &alice, Some(8192)).await;
    let (mut sink, mut stream) = socket.split();
    let requests = 12;
    // Within the server's limit of requests in flight: a permit per answer read.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(4));
    let sending_permits = Arc::clone(&in_flight);
    let sending = tokio::spawn(async move {
        for index in 0..requests {
            sending_permits.acquire().await.expect("open").forget();
            let request = echo(
                &format!("r{index}"),
                json!({"padding": "p".repeat(PADDING)}),
            );
            sink.send(Message::text(request.to_string()))
                .await
                .expect("send");
        }
        sink
    });
    let mut committing = Some({
        let store = server.running().store().clone();
        tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..40 {
                last = commit_account(&store, account, |_tx, changes| {
                    Box::pin(async move {
                        changes.updated(DataType::Email, 1);
                        Ok(())
                    })
                })
                .await
                .expect("commit")
                .version;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            last
        })
    });
    let mut responses = 0;
    let mut seen_states: Vec<u64> = Vec::new();
    let mut last = None;
    while responses < requests || last.is_none_or(|last| seen_states.last() != Some(&last)) {
        if responses == requests && last.is_none() {
            // The commits never wait for this reader; the pushes they cause are coalesced.
            let commits = committing.take().expect("awaited once");
            last = Some(commits.await.expect("commits"));
            continue;
        }
        let message = next_json(&mut stream).await;
        match message["@type"].as_str() {
            Some("Response") => {
                let padding = message["methodResponses"][0][1]["padding"].as_str();
                assert_eq!(padding.map(str::len), Some(PADDING), "the whole answer");
                responses += 1;
                in_flight.add_permits(1);
                if responses % 3 == 1 {
                    // Slow reader: the server's socket buffer fills and its writes stop
                    // partway through an answer while commits keep coming.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            }
            Some("StateChange") => seen_states.push(email_state(&message, &alice.account_id)),
            _ => panic!("unexpected {message}"),
        }
    }
    drop(sending.await.expect("requests sent"));
    assert_eq!(responses, requests);
    assert!(
        seen_states.windows(2).all(|pair| pair[0] < pair[1]),
        "StateChanges out of order or repeated: {seen_states:?}"
    );
    server.shutdown().await;
}

/// The `dur` of each metric of a W3C Server-Timing header, in milliseconds.
fn server_timing(answer: &common::Answer) -> Vec<(String, f64)> {
    let header = answer.header("server-timing").expect("Server-Timing");
    header
        .split(',')
        .map(|metric| {
            let (name, duration) = metric.trim().split_once(";dur=").expect("name;dur=<ms>");
            (name.to_owned(), duration.parse().expect("milliseconds"))
        })
        .collect()
}

fn create_mailbox(user: &common::TestUser, name: &str) -> Value {
    json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [["Mailbox/set", {"accountId": user.account_id,
            "create": {"m": {"name": name}}}, "0"]],
    })
}

#[tokio::test]
async fn api_responses_say_when_the_commit_was_seen() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    // Nobody listens to Bob's account: only the handler's own time.
    let answer = server
        .post_api(server.bob(), &create_mailbox(server.bob(), "quiet"))
        .await;
    assert_eq!(answer.json()["methodResponses"][0][0], "Mailbox/set");
    let metrics = server_timing(&answer);
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    assert_eq!(metrics[0].0, "app");
    // With a listener on Alice's account, the commit's instant as push saw it comes along,
    // inside the handler's time.
    let _listener = push_socket(&server, &alice, None).await;
    let answer = server
        .post_api(&alice, &create_mailbox(&alice, "timed"))
        .await;
    assert_eq!(answer.json()["methodResponses"][0][0], "Mailbox/set");
    let metrics = server_timing(&answer);
    let duration = |name: &str| {
        metrics
            .iter()
            .find(|(metric, _)| metric == name)
            .map(|(_, duration)| *duration)
            .unwrap_or_else(|| panic!("no {name} metric in {metrics:?}"))
    };
    assert!(duration("commit") > 0.0, "{metrics:?}");
    assert!(duration("commit") <= duration("app"), "{metrics:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn pushes_reach_a_websocket_over_tls_through_its_task() {
    // Over TLS the hub cannot write frames itself: the connection's task sends them.
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/testdata");
    // Started here: TestServer's own HTTP client would not trust the test certificate.
    let data_dir = tempfile::tempdir().expect("data dir");
    let mut config = tern::config::Config::default();
    config.server.data_dir = data_dir.path().to_path_buf();
    config.server.http = "127.0.0.1:0".parse().expect("address");
    config.server.shutdown_grace_seconds = 2;
    config.admin.enabled = false;
    config.server.tls_cert = Some(testdata.join("cert.pem"));
    config.server.tls_key = Some(testdata.join("key.pem"));
    let server = tern::server::Server::start(config).await.expect("starts");
    let (email, password) = ("carol@example.test", "carol-password-3");
    let account = server
        .directory()
        .create_account(email, password)
        .await
        .expect("account")
        .account_id;
    let account_name = AccountId::new(account).to_string();
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"))
    );
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(testdata.join("cert.pem")).expect("cert");
    for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(certificate.expect("PEM")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = TcpStream::connect(server.http_addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let request = format!(
        "GET /jmap/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: jmap\r\nAuthorization: {authorization}\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tls.read_u8().await.expect("read head"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgraded over TLS");
    let mut socket = WebSocketStream::from_raw_socket(tls, Role::Client, None).await;
    socket
        .send(Message::text(
            json!({"@type": "WebSocketPushEnable"}).to_string(),
        ))
        .await
        .expect("send");
    socket
        .send(Message::text(echo("sync", json!({})).to_string()))
        .await
        .expect("send");
    while next_json(&mut socket).await["requestId"] != "sync" {}
    for _ in 0..3 {
        let version = commit_account(server.store(), account, |_tx, changes| {
            Box::pin(async move {
                changes.updated(DataType::Email, 1);
                Ok(())
            })
        })
        .await
        .expect("commit")
        .version;
        let change = next_json(&mut socket).await;
        assert_eq!(change["@type"], "StateChange");
        assert_eq!(email_state(&change, &account_name), version);
    }
    server.shutdown().await;
}
