//! JMAP over WebSocket (RFC 8887) and the state-change fan-out, through the real `jmap-client`
//! crate (connect_ws, send_ws, enable_push_ws) and through raw frames for the error cases,
//! back-pressure, heartbeat and resumption with pushState.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::{SinkExt as _, StreamExt as _};
use jmap_client::client::Client;
use jmap_client::client_ws::WebSocketMessage;
use jmap_client::core::request::Arguments;
use jmap_client::{DataType as ClientDataType, Method, PushObject, URI};
use serde_json::{Value, json};
use tern::jmap::types::{AccountId, State};
use tern::store::commit::{DataType, commit_account};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

const WAIT: Duration = Duration::from_secs(10);

async fn connect(server: &TestServer, user: &common::TestUser) -> Client {
    Client::new()
        .credentials((user.email.as_str(), user.password.as_str()))
        .follow_redirects(["127.0.0.1"])
        .connect(&server.base_url())
        .await
        .expect("jmap-client connects")
}

fn account_number(user: &common::TestUser) -> u32 {
    AccountId::parse(&user.account_id)
        .expect("account id")
        .number()
}

/// A commit by "some other writer" (SMTP delivery, a background task): straight through the
/// one write path, not through JMAP. Returns the new account version.
async fn commit_change(server: &TestServer, account_id: u32, data_type: DataType) -> u64 {
    let committed = commit_account(server.running().store(), account_id, move |_tx, changes| {
        Box::pin(async move {
            changes.updated(data_type, 1);
            Ok(())
        })
    })
    .await
    .expect("commit");
    committed.version
}

fn state(version: u64) -> String {
    State::new(version).to_string()
}

/// A WebSocket client that speaks raw frames (the handshake written by hand, so every header
/// is under the test's control).
struct RawSocket {
    socket: WebSocketStream<TcpStream>,
}

/// The non-101 answer of a refused upgrade.
#[derive(Debug)]
struct Refused {
    status: u16,
    head: String,
}

async fn raw_handshake(
    stream: &mut TcpStream,
    path: &str,
    extra_headers: &[(&str, &str)],
) -> Result<(), Refused> {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write handshake");
    // Byte by byte: nothing after the head may be consumed (frames follow it).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.expect("read handshake answer");
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    if status == 101 {
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "RFC 6455 accept key: {head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-protocol: jmap")
        );
        Ok(())
    } else {
        Err(Refused { status, head })
    }
}

impl RawSocket {
    async fn open(
        server: &TestServer,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<RawSocket, Refused> {
        let mut stream = TcpStream::connect(server.running().http_addr)
            .await
            .expect("connect");
        raw_handshake(&mut stream, path, extra_headers).await?;
        Ok(RawSocket {
            socket: WebSocketStream::from_raw_socket(stream, Role::Client, None).await,
        })
    }

    async fn authenticated(server: &TestServer, user: &common::TestUser) -> RawSocket {
        let authorization = user.authorization();
        RawSocket::open(
            server,
            "/jmap/ws",
            &[
                ("Authorization", authorization.as_str()),
                ("Sec-WebSocket-Protocol", "jmap"),
            ],
        )
        .await
        .expect("upgrade accepted")
    }

    async fn send_json(&mut self, value: &Value) {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .expect("send");
    }

    /// The next text message as JSON (skipping pings).
    async fn next_json(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("frame");
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Asserts that nothing but pings arrives for `quiet`.
    async fn expect_silence(&mut self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}

/// The reading half of a split socket.
struct RawStream<'s> {
    stream: &'s mut futures_util::stream::SplitStream<WebSocketStream<TcpStream>>,
}

impl RawStream<'_> {
    async fn next_json(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("frame");
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
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

#[tokio::test]
async fn jmap_client_receives_a_state_change_after_any_commit() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let client = connect(&server, &alice).await;
    assert!(
        client.session().websocket_capabilities().is_some(),
        "the session advertises urn:ietf:params:jmap:websocket"
    );
    let mut stream = client.connect_ws().await.expect("connect_ws");
    client
        .enable_push_ws(None::<Vec<ClientDataType>>, None::<String>)
        .await
        .expect("enable push");
    // A request after the enable: once it is answered, push is on (messages are in order).
    let mut request = client.build();
    request.using = vec![URI::Core];
    let payload = Arguments::blob_copy(request.params(Method::Echo), "x".to_owned());
    request.add_method_call(Method::Echo, payload);
    let request_id = client.send_ws(request).await.expect("send_ws");
    match tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("answer")
    {
        Some(Ok(WebSocketMessage::Response(response))) => {
            assert_eq!(response.request_id(), Some(request_id.as_str()));
        }
        other => panic!("expected the echo response, got {other:?}"),
    }

    // Bob's commit is not Alice's business.
    commit_change(&server, account_number(server.bob()), DataType::Email).await;
    let committed_at = Instant::now();
    let version = commit_change(&server, account_number(&alice), DataType::Email).await;
    match tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("push")
    {
        Some(Ok(WebSocketMessage::PushNotification(PushObject::StateChange { changed }))) => {
            assert_eq!(changed.len(), 1, "only Alice's account: {changed:?}");
            let types = changed.get(&alice.account_id).expect("Alice's account");
            assert_eq!(types.get(&ClientDataType::Email), Some(&state(version)));
            assert!(
                committed_at.elapsed() < Duration::from_secs(1),
                "StateChange took {:?}",
                committed_at.elapsed()
            );
        }
        other => panic!("expected a StateChange, got {other:?}"),
    }

    // Disabled: the next commit is not pushed.
    client.disable_push_ws().await.expect("disable");
    let request_id = {
        let mut request = client.build();
        request.using = vec![URI::Core];
        let payload = Arguments::blob_copy(request.params(Method::Echo), "y".to_owned());
        request.add_method_call(Method::Echo, payload);
        client.send_ws(request).await.expect("send_ws")
    };
    match tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("answer")
    {
        Some(Ok(WebSocketMessage::Response(response))) => {
            assert_eq!(response.request_id(), Some(request_id.as_str()));
        }
        other => panic!("expected the echo response, got {other:?}"),
    }
    commit_change(&server, account_number(&alice), DataType::Mailbox).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err(),
        "nothing is pushed after WebSocketPushDisable"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn push_is_filtered_by_data_types() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let mut socket = RawSocket::authenticated(&server, &alice).await;
    socket
        .send_json(&json!({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox", "NoSuchType"]}))
        .await;
    socket.send_json(&echo("sync", json!({}))).await;
    assert_eq!(socket.next_json().await["requestId"], "sync");
    commit_change(&server, account_number(&alice), DataType::Email).await;
    socket.expect_silence(Duration::from_millis(300)).await;
    let version = commit_change(&server, account_number(&alice), DataType::Mailbox).await;
    let change = socket.next_json().await;
    assert_eq!(change["@type"], "StateChange");
    assert_eq!(
        change["changed"],
        json!({ alice.account_id.clone(): {"Mailbox": state(version)} })
    );
    assert!(change["pushState"].is_string());
    server.shutdown().await;
}

#[tokio::test]
async fn requests_run_concurrently_and_are_matched_by_id() {
    let server = TestServer::start().await;
    let mut socket = RawSocket::authenticated(&server, server.alice()).await;
    let count = 6;
    for index in 0..count {
        socket
            .send_json(&echo(&format!("r{index}"), json!({"index": index})))
            .await;
    }
    // A request without an id is answered without a requestId (RFC 8887 §4.3.3).
    socket
        .send_json(&json!({
            "@type": "Request",
            "using": ["urn:ietf:params:jmap:core"],
            "methodCalls": [["Core/echo", {"anonymous": true}, "c0"]],
        }))
        .await;
    let mut seen = Vec::new();
    for _ in 0..=count {
        let answer = socket.next_json().await;
        assert_eq!(answer["@type"], "Response", "{answer}");
        let arguments = &answer["methodResponses"][0][1];
        match answer.get("requestId") {
            Some(id) => {
                let index = arguments["index"].as_u64().expect("echoed index");
                assert_eq!(
                    id,
                    &json!(format!("r{index}")),
                    "answer matched to its request"
                );
                seen.push(index);
            }
            None => assert_eq!(arguments["anonymous"], true),
        }
        assert!(answer["sessionState"].is_string());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..count).collect::<Vec<u64>>());
    server.shutdown().await;
}

#[tokio::test]
async fn upgrades_need_the_jmap_subprotocol_and_credentials() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let authorization = alice.authorization();
    let no_protocol = RawSocket::open(
        &server,
        "/jmap/ws",
        &[("Authorization", authorization.as_str())],
    )
    .await
    .err()
    .expect("refused without the jmap subprotocol");
    assert_eq!(no_protocol.status, 400, "{}", no_protocol.head);
    let other_protocol = RawSocket::open(
        &server,
        "/jmap/ws",
        &[
            ("Authorization", authorization.as_str()),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
        ],
    )
    .await
    .err()
    .expect("refused with other subprotocols only");
    assert_eq!(other_protocol.status, 400);
    let anonymous = RawSocket::open(&server, "/jmap/ws", &[("Sec-WebSocket-Protocol", "jmap")])
        .await
        .err()
        .expect("refused without credentials");
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .head
            .to_ascii_lowercase()
            .contains("www-authenticate")
    );
    // A bearer token works as well as Basic.
    let bearer = format!("Bearer {}", server.alice_token());
    let mut socket = RawSocket::open(
        &server,
        "/jmap/ws",
        &[
            ("Authorization", bearer.as_str()),
            ("Sec-WebSocket-Protocol", "jmap"),
        ],
    )
    .await
    .expect("bearer accepted");
    socket.send_json(&echo("b", json!({}))).await;
    assert_eq!(socket.next_json().await["requestId"], "b");
    // A plain GET (no upgrade) is told to upgrade.
    let plain = server
        .get_with_bearer(
            &format!("{}/jmap/ws", server.base_url()),
            server.alice_token(),
        )
        .await;
    assert_eq!(plain.status, 426);
    server.shutdown().await;
}

#[tokio::test]
async fn browsers_connect_with_a_single_use_ticket() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let answer = server
        .post_raw(
            &format!("{}/jmap/ticket", server.base_url()),
            &alice,
            "application/json",
            Vec::new(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let ticket = answer.json()["ticket"].as_str().expect("ticket").to_owned();
    let path = format!("/jmap/ws?ticket={ticket}");
    let mut socket = RawSocket::open(&server, &path, &[("Sec-WebSocket-Protocol", "jmap")])
        .await
        .expect("the ticket stands for the credentials");
    socket.send_json(&echo("t", json!({}))).await;
    let answer = socket.next_json().await;
    assert_eq!(answer["requestId"], "t");
    let again = RawSocket::open(&server, &path, &[("Sec-WebSocket-Protocol", "jmap")])
        .await
        .err()
        .expect("a used ticket is refused");
    assert_eq!(again.status, 401);
    let anonymous_ticket = server
        .post_or_get_anonymous(&format!("{}/jmap/ticket", server.base_url()))
        .await;
    assert_eq!(anonymous_ticket.status, 401, "tickets need credentials");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_messages_get_request_errors_and_the_socket_stays_usable() {
    let server = TestServer::start_with(|config| config.jmap.max_size_request = 4_000).await;
    let mut socket = RawSocket::authenticated(&server, server.alice()).await;

    socket
        .socket
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    let error = socket.next_json().await;
    assert_eq!(error["@type"], "RequestError");
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:notJSON");

    socket
        .socket
        .send(Message::text("{not json"))
        .await
        .expect("send");
    let error = socket.next_json().await;
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:notJSON");
    assert!(error.get("requestId").is_none());

    socket
        .send_json(&json!({"id": "no-type", "using": []}))
        .await;
    let error = socket.next_json().await;
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:notRequest");
    assert_eq!(error["requestId"], "no-type");

    socket
        .send_json(&json!({"@type": "Gossip", "id": "g"}))
        .await;
    let error = socket.next_json().await;
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:notRequest");
    assert_eq!(error["requestId"], "g");

    socket
        .send_json(&json!({"@type": "Request", "id": "shape", "using": "core"}))
        .await;
    let error = socket.next_json().await;
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:notRequest");
    assert_eq!(error["requestId"], "shape");
    assert_eq!(error["status"], 400);

    socket
        .send_json(&json!({
            "@type": "Request", "id": "cap", "using": ["urn:example:nope"],
            "methodCalls": [["Core/echo", {}, "c0"]],
        }))
        .await;
    let error = socket.next_json().await;
    assert_eq!(
        error["type"],
        "urn:ietf:params:jmap:error:unknownCapability"
    );
    assert_eq!(error["requestId"], "cap");

    socket
        .send_json(&json!({"@type": "WebSocketPushEnable", "dataTypes": "Email"}))
        .await;
    let error = socket.next_json().await;
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:notRequest");

    // Over maxSizeRequest (4,000 bytes): a limit error naming it; the socket lives on.
    socket
        .send_json(&echo("big", json!({"padding": "x".repeat(5_000)})))
        .await;
    let error = socket.next_json().await;
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:limit");
    assert_eq!(error["limit"], "maxSizeRequest");
    assert_eq!(error["requestId"], "big");

    socket.send_json(&echo("after", json!({"ok": 1}))).await;
    let answer = socket.next_json().await;
    assert_eq!(answer["@type"], "Response");
    assert_eq!(answer["requestId"], "after");
    assert_eq!(answer["methodResponses"][0][1]["ok"], 1);

    // Far over the limit (beyond the hard frame cap): closed with 1009 (RFC 6455 §7.4.1).
    socket
        .socket
        .send(Message::text("x".repeat(200_000)))
        .await
        .expect("send");
    let closing = tokio::time::timeout(WAIT, async {
        loop {
            match socket.socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| u16::from(frame.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(closing, Some(1009));
    server.shutdown().await;
}

#[tokio::test]
async fn requests_in_flight_are_limited_per_socket() {
    let server = TestServer::start_with(|config| config.push.websocket_max_in_flight = 1).await;
    let mut socket = RawSocket::authenticated(&server, server.alice()).await;
    let count = 40;
    // All at once, in one write: the server reads them faster than it answers.
    let mut batch = Vec::new();
    for index in 0..count {
        batch.push(Ok(Message::text(
            echo(&format!("r{index}"), json!({"blob": "y".repeat(2_000)})).to_string(),
        )));
    }
    socket
        .socket
        .send_all(&mut futures_util::stream::iter(batch))
        .await
        .expect("send");
    let (mut answered, mut limited) = (0, 0);
    for _ in 0..count {
        let message = socket.next_json().await;
        match message["@type"].as_str() {
            Some("Response") => answered += 1,
            Some("RequestError") => {
                assert_eq!(message["type"], "urn:ietf:params:jmap:error:limit");
                assert_eq!(message["limit"], "maxConcurrentRequests");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        answered + limited,
        count,
        "every request gets exactly one answer"
    );
    assert!(
        answered >= 1 && limited >= 1,
        "answered {answered}, limited {limited}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn reconnecting_with_a_push_state_gets_what_was_missed() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let account = account_number(&alice);
    let mut first = RawSocket::authenticated(&server, &alice).await;
    first
        .send_json(&json!({"@type": "WebSocketPushEnable"}))
        .await;
    first.send_json(&echo("sync", json!({}))).await;
    assert_eq!(first.next_json().await["requestId"], "sync");
    let email_version = commit_change(&server, account, DataType::Email).await;
    let change = first.next_json().await;
    assert_eq!(
        change["changed"][&alice.account_id]["Email"],
        state(email_version)
    );
    let push_state = change["pushState"].as_str().expect("pushState").to_owned();
    drop(first);

    // While disconnected: two commits.
    let mailbox_version = commit_change(&server, account, DataType::Mailbox).await;
    let email_version = commit_change(&server, account, DataType::Email).await;

    let mut second = RawSocket::authenticated(&server, &alice).await;
    second
        .send_json(&json!({"@type": "WebSocketPushEnable", "pushState": push_state}))
        .await;
    let catch_up = second.next_json().await;
    assert_eq!(catch_up["@type"], "StateChange");
    assert_eq!(
        catch_up["changed"],
        json!({ alice.account_id.clone(): {"Mailbox": state(mailbox_version), "Email": state(email_version)} })
    );
    let newest = catch_up["pushState"]
        .as_str()
        .expect("pushState")
        .to_owned();

    // Up to date: nothing at once.
    let mut third = RawSocket::authenticated(&server, &alice).await;
    third
        .send_json(&json!({"@type": "WebSocketPushEnable", "pushState": newest}))
        .await;
    third.send_json(&echo("sync", json!({}))).await;
    assert_eq!(
        third.next_json().await["requestId"],
        "sync",
        "no StateChange first"
    );

    // jmap-client resumes the same way.
    let client = connect(&server, &alice).await;
    let mut stream = client.connect_ws().await.expect("connect_ws");
    client
        .enable_push_ws(None::<Vec<ClientDataType>>, Some(push_state))
        .await
        .expect("enable");
    match tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("catch-up")
    {
        Some(Ok(WebSocketMessage::PushNotification(PushObject::StateChange { changed }))) => {
            let types = changed.get(&alice.account_id).expect("account");
            assert_eq!(
                types.get(&ClientDataType::Email),
                Some(&state(email_version))
            );
            assert_eq!(
                types.get(&ClientDataType::Mailbox),
                Some(&state(mailbox_version))
            );
        }
        other => panic!("expected the catch-up StateChange, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_consumer_is_coalesced_and_never_blocks_others() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let account = account_number(&alice);

    // The stalled client: a tiny receive buffer, push on, then a flood of large answers it
    // does not read, so the server's writes to it block.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket
        .connect(server.running().http_addr)
        .await
        .expect("connect");
    let authorization = alice.authorization();
    raw_handshake(
        &mut stream,
        "/jmap/ws",
        &[
            ("Authorization", authorization.as_str()),
            ("Sec-WebSocket-Protocol", "jmap"),
        ],
    )
    .await
    .expect("upgrade");
    let (mut stalled_sink, mut stalled_stream) =
        WebSocketStream::from_raw_socket(stream, Role::Client, None)
            .await
            .split();
    stalled_sink
        .send(Message::text(
            json!({"@type": "WebSocketPushEnable"}).to_string(),
        ))
        .await
        .expect("send");
    let flood = 8;
    // From another task: the server stops reading while its writes to us are blocked, so a
    // sender that waited would deadlock with itself.
    let flooding = tokio::spawn(async move {
        for index in 0..flood {
            let request = echo(
                &format!("f{index}"),
                json!({"padding": "z".repeat(1_000_000)}),
            );
            stalled_sink
                .send(Message::text(request.to_string()))
                .await
                .expect("send");
        }
        stalled_sink
    });

    // A live client on the same account keeps getting every change promptly.
    let client = connect(&server, &alice).await;
    let mut live = client.connect_ws().await.expect("connect_ws");
    client
        .enable_push_ws(None::<Vec<ClientDataType>>, None::<String>)
        .await
        .expect("enable");
    let mut sync = client.build();
    sync.using = vec![URI::Core];
    let payload = Arguments::blob_copy(sync.params(Method::Echo), "s".to_owned());
    sync.add_method_call(Method::Echo, payload);
    client.send_ws(sync).await.expect("send");
    assert!(matches!(
        tokio::time::timeout(WAIT, live.next()).await.expect("sync"),
        Some(Ok(WebSocketMessage::Response(_)))
    ));
    let commits = 30;
    let mut last_version = 0;
    for _ in 0..commits {
        last_version = commit_change(&server, account, DataType::Email).await;
        let started = Instant::now();
        match tokio::time::timeout(WAIT, live.next())
            .await
            .expect("live push")
        {
            Some(Ok(WebSocketMessage::PushNotification(PushObject::StateChange { changed }))) => {
                assert_eq!(
                    changed[&alice.account_id].get(&ClientDataType::Email),
                    Some(&state(last_version))
                );
            }
            other => panic!("expected a StateChange, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the stalled client held up the live one"
        );
    }

    // Now the stalled client reads: every answer, and only a few StateChanges (coalesced),
    // the last one carrying the newest state.
    let mut responses = 0;
    let mut state_changes = Vec::new();
    while responses < flood
        || state_changes.last().is_none_or(|change: &Value| {
            change["changed"][&alice.account_id]["Email"] != json!(state(last_version))
        })
    {
        let message = RawStream {
            stream: &mut stalled_stream,
        }
        .next_json()
        .await;
        match message["@type"].as_str() {
            Some("Response") => responses += 1,
            Some("StateChange") => state_changes.push(message),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(responses, flood);
    drop(flooding.await.expect("the flood was sent"));
    assert!(
        state_changes.len() < commits / 2,
        "{} StateChanges for {commits} commits: not coalesced",
        state_changes.len()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unresponsive_peer_is_pinged_then_closed() {
    let server = TestServer::start_with(|config| {
        config.push.websocket_ping_seconds = 1;
        config.push.websocket_idle_timeout_seconds = 2;
    })
    .await;
    let mut socket = RawSocket::authenticated(&server, server.alice()).await;
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let mut pings = 0;
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match socket.socket.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Close(frame))) => return frame,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert!(pings >= 1, "heartbeat pings were sent");
    assert_eq!(close.map(|frame| u16::from(frame.code)), Some(1000));

    // A peer that answers pings stays connected past the idle timeout.
    let mut live = RawSocket::authenticated(&server, server.alice()).await;
    let until = Instant::now() + Duration::from_millis(3_500);
    while Instant::now() < until {
        // Reading lets the library answer the server's pings.
        let _ = tokio::time::timeout(Duration::from_millis(200), live.socket.next()).await;
    }
    live.send_json(&echo("alive", json!({}))).await;
    assert_eq!(live.next_json().await["requestId"], "alive");
    server.shutdown().await;
}
