//! Helpers of the delivery tests: a server whose DNS is a local port (a dnsmasq, or a dead
//! port that fails at once), queue entries written the way the SMTP listener writes them, and
//! jmap-client calls to look at the result.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jmap_client::client::Client;
use jmap_client::core::query::{Filter, QueryResponse};
use jmap_client::email;
use serde_json::{Value, json};
use tern::smtp::incoming::{self, BodyType, IncomingMessage, IncomingRecipient};
use tern::store::blob::{self, BlobHash};

use crate::common::{TestServer, TestUser};
pub use crate::common::{mail_request as mail, mailbox_with_role};

/// A DNS server in a thread of the test process that answers every query NXDOMAIN, so that
/// SPF/DKIM/DMARC come out `none` at once (a closed port would wait for timeouts).
pub fn nxdomain_server() -> std::net::SocketAddr {
    static SERVER: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();
    *SERVER.get_or_init(|| {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let address = socket.local_addr().expect("address");
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while let Ok((length, peer)) = socket.recv_from(&mut buffer) {
                if length < 12 {
                    continue;
                }
                let mut answer = buffer[..length].to_vec();
                // QR=1, opcode and RD kept, RA=1, RCODE=3 (NXDOMAIN); no records.
                answer[2] |= 0x80;
                answer[3] = 0x80 | 0x03;
                answer[6..12].fill(0);
                let _ = socket.send_to(&answer, peer);
            }
        });
        address
    })
}

/// A server whose resolver asks `dns` (default: [`nxdomain_server`]).
pub async fn start_server(
    dns: Option<std::net::SocketAddr>,
    adjust: impl FnOnce(&mut tern::config::Config),
) -> TestServer {
    TestServer::start_with(|config| {
        config.dns.nameserver = Some(dns.unwrap_or_else(nxdomain_server));
        config.dns.timeout_ms = 1000;
        config.dns.attempts = 1;
        config.delivery.hostname = Some("mx.example.test".to_owned());
        adjust(config);
    })
    .await
}

pub async fn account_number(server: &TestServer, user: &TestUser) -> u32 {
    server
        .running()
        .directory()
        .account(&user.email)
        .await
        .expect("account")
        .account_id
}

/// The envelope of a test message.
pub struct Envelope<'a> {
    pub mail_from: &'a str,
    pub recipients: Vec<(&'a str, u32)>,
    pub client_ip: Option<IpAddr>,
    pub helo: &'a str,
}

/// Stores `raw` and queues it in one transaction, as the SMTP listener does before its `250`.
pub async fn enqueue(server: &TestServer, envelope: &Envelope<'_>, raw: &[u8]) -> u64 {
    let message = IncomingMessage {
        queue_id: incoming::new_queue_id(),
        blob: BlobHash::of(raw),
        size: raw.len() as u64,
        mail_from: envelope.mail_from.to_owned(),
        recipients: envelope
            .recipients
            .iter()
            .map(|(address, account_id)| IncomingRecipient {
                address: (*address).to_owned(),
                account_id: *account_id,
                delivered: false,
                notify: None,
                orcpt: None,
            })
            .collect(),
        client_ip: envelope.client_ip,
        helo: envelope.helo.to_owned(),
        tls: false,
        authenticated_as: None,
        received_at: incoming::unix_now(),
        env_id: None,
        ret: None,
        body_type: BodyType::EightBitMime,
        smtputf8: false,
        attempts: 0,
        not_before: 0,
    };
    let queue_id = message.queue_id;
    let queued = Arc::new(message);
    let finish: blob::FinishStep = Arc::new(move |tx, _info| {
        let queued = Arc::clone(&queued);
        Box::pin(async move { incoming::enqueue(tx, &queued).await })
    });
    let body = futures_util::stream::iter([Ok::<Bytes, std::convert::Infallible>(
        Bytes::copy_from_slice(raw),
    )]);
    server
        .running()
        .engine()
        .blobs()
        .put_with(body, u64::MAX, finish)
        .await
        .expect("store and enqueue");
    queue_id
}

/// A plain message from `from` to `to`.
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sun, 22 Nov 2026 07:00:00 +0000\r\nMessage-ID: <{}@remote.example>\r\n\r\n{body}\r\n",
        rand::random::<u64>()
    )
    .into_bytes()
}

/// Waits until the incoming queue is empty (every entry delivered).
pub async fn wait_until_delivered(server: &TestServer) {
    let store = server.running().store().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = incoming::count(&store).await.expect("queue count");
        if left == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{left} entries still queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The Email ids in a Mailbox (Email/query through jmap-client).
pub async fn emails_in(client: &Client, mailbox_id: &str) -> Vec<String> {
    let mut request = mail(client);
    request
        .query_email()
        .filter(Filter::from(email::query::Filter::in_mailbox(mailbox_id)));
    request
        .send_single::<QueryResponse>()
        .await
        .expect("Email/query")
        .take_ids()
}

/// Email/get of the trace headers, keywords and blobId (raw JSON: jmap-client has no typed
/// `header:…:all` property).
pub async fn email_details(server: &TestServer, user: &TestUser, id: &str) -> Value {
    let request = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [["Email/get", {
            "accountId": user.account_id,
            "ids": [id],
            "properties": ["blobId", "keywords", "mailboxIds", "subject",
                "header:Received:all", "header:Authentication-Results:asText:all",
                "header:Return-Path", "header:X-Tern-Spam:asText"]
        }, "0"]]
    });
    let answer = server.post_api(user, &request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut email = answer.json()["methodResponses"][0][1]["list"][0].clone();
    assert!(email.is_object(), "Email/get: {}", answer.text());
    // Received and Return-Path come raw (RFC 8621 §4.1.2): unfolded here for the assertions.
    let unfold = |value: &Value| {
        Value::String(
            value
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    let received: Vec<Value> = email["header:Received:all"]
        .as_array()
        .map(|all| all.iter().map(unfold).collect())
        .unwrap_or_default();
    email["received"] = Value::Array(received);
    email["returnPath"] = unfold(&email["header:Return-Path"]);
    email
}

/// Moves an Email to another Mailbox with jmap-client's Email/set.
pub async fn move_email(client: &Client, id: &str, mailbox_id: &str) {
    let mut request = mail(client);
    request.set_email().update(id).mailbox_ids([mailbox_id]);
    request
        .send_single::<jmap_client::core::response::EmailSetResponse>()
        .await
        .expect("Email/set")
        .updated(id)
        .expect("moved");
}

/// Waits until the spam-training tasks are consumed.
pub async fn wait_until_trained(server: &TestServer) {
    let store = server.running().store().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tern::smtp::spam::training::pending(&store, 1)
        .await
        .expect("pending")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "training tasks left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free local port (TCP and UDP bound then released).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether a program is installed (tests of optional peers skip without it).
pub fn have(program: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|dir| std::path::Path::new(dir).join(program).exists())
}

/// Sends a message with swaks to the server's MX listener; returns (success, transcript).
/// `None` when swaks is not installed.
pub async fn swaks(server: &TestServer, args: &[&str]) -> Option<(bool, String)> {
    if !have("swaks") {
        eprintln!("swaks is not installed: skipping");
        return None;
    }
    let mx = server.running().smtp.mx.expect("the MX listener runs");
    let mut command = vec![
        "--server".to_owned(),
        mx.ip().to_string(),
        "--port".to_owned(),
        mx.port().to_string(),
        "--helo".to_owned(),
        "client.remote.example".to_owned(),
        "--timeout".to_owned(),
        "20".to_owned(),
    ];
    command.extend(args.iter().map(|arg| (*arg).to_owned()));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("swaks")
            .args(&command)
            .output()
            .expect("swaks runs")
    })
    .await
    .expect("swaks task");
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), transcript))
}
