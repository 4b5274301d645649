//! The outbound queue actor against real peers: a scripted SMTP server (4xx/5xx on demand),
//! postfix's `smtp-sink`, dnsmasq for MX records, a manual clock for the retry timeline, and
//! a `kill -9` of the server binary in the middle of a send.

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod crash;
mod peer;
mod sessions;
mod timeline;

use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use peer::{Peer, Script};
use serde_json::json;
use tern::outbound::queue::{self, OutboundMessage};
use tern::store::blob::BlobStore;
use tern::store::{Store, StoreError};

pub const MESSAGE: &str = "From: Alice <alice@example.test>\r\nTo: someone@remote.example\r\n\
Subject: outbound test\r\nMessage-ID: <outbound-test@example.test>\r\n\r\nHello over SMTP.\r\n.leading dot\r\n";

/// Stores `raw` for `account_id` and queues it for `recipients`; returns the queue id.
pub async fn enqueue(
    store: &Store,
    account_id: u32,
    raw: &str,
    recipients: &[&str],
    adjust: impl FnOnce(&mut OutboundMessage),
) -> u64 {
    let info = BlobStore::new(store.clone())
        .put(account_id, Bytes::from(raw.to_owned()))
        .await
        .expect("blob");
    let mut message = OutboundMessage::new(
        account_id,
        info.id,
        info.size,
        "alice@example.test",
        recipients.iter().map(|address| address.to_string()),
        0,
    );
    adjust(&mut message);
    store
        .transact(|tx| {
            let message = message.clone();
            Box::pin(async move {
                queue::enqueue(tx, &message)
                    .await
                    .map_err(|error| StoreError::io(error.to_string()))
            })
        })
        .await
        .expect("enqueue")
}

pub async fn load(store: &Store, id: u64) -> Option<OutboundMessage> {
    store
        .read(|tx| Box::pin(async move { queue::load(tx, id).await }))
        .await
        .expect("load")
}

/// Waits until the queue no longer holds `id`.
pub async fn wait_gone(store: &Store, id: u64) {
    for _ in 0..500 {
        if load(store, id).await.is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "queue entry {id} is still there: {:?}",
        load(store, id).await
    );
}

async fn alice_id(server: &TestServer) -> u32 {
    server
        .running()
        .directory()
        .account("alice@example.test")
        .await
        .expect("alice")
        .account_id
}

async fn relay_server(port: u16) -> TestServer {
    TestServer::start_with(|config| {
        config.outbound.relay = Some(format!("127.0.0.1:{port}"));
    })
    .await
}

#[tokio::test]
async fn the_relay_gets_the_message_once_and_the_entry_goes() {
    let peer = Peer::start(Script {
        pipelining: true,
        ..Script::default()
    })
    .await;
    let server = relay_server(peer.port).await;
    let store = server.running().store().clone();
    let id = enqueue(
        &store,
        alice_id(&server).await,
        MESSAGE,
        &["someone@remote.example", "other@elsewhere.example"],
        |_| {},
    )
    .await;
    wait_gone(&store, id).await;
    let received = peer.wait_for(2, Duration::from_secs(5)).await;
    // One session per destination domain, both through the relay.
    assert_eq!(received.len(), 2, "{received:?}");
    let mut recipients: Vec<String> = received
        .iter()
        .flat_map(|message| message.recipients.clone())
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["other@elsewhere.example", "someone@remote.example"]
    );
    assert_eq!(received[0].mail_from, "alice@example.test");
    let body = String::from_utf8_lossy(&received[0].data);
    assert!(body.contains("Subject: outbound test"), "{body}");
    assert!(
        body.contains("\r\n.leading dot\r\n"),
        "dot-stuffing undone: {body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn local_recipients_skip_smtp_and_land_in_their_inbox() {
    let peer = Peer::start(Script::default()).await;
    let server = relay_server(peer.port).await;
    let store = server.running().store().clone();
    let id = enqueue(
        &store,
        alice_id(&server).await,
        MESSAGE,
        &["bob@example.test"],
        |_| {},
    )
    .await;
    wait_gone(&store, id).await;
    let subjects = inbox_subjects(&server, 1, 1).await;
    assert_eq!(subjects, ["outbound test"]);
    assert!(peer.rcpt_seen.lock().unwrap().is_empty(), "never over SMTP");
    server.shutdown().await;
}

/// Subjects in the Inbox of user `user` (0 alice, 1 bob), waiting for at least `count`.
async fn inbox_subjects(server: &TestServer, user: usize, count: usize) -> Vec<String> {
    let user = if user == 0 {
        server.alice()
    } else {
        server.bob()
    };
    let request = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [
            ["Email/query", {"accountId": user.account_id}, "q"],
            ["Email/get", {"accountId": user.account_id, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                "properties": ["subject", "bodyStructure", "mailboxIds"]}, "g"]
        ]
    });
    let mut subjects = Vec::new();
    for _ in 0..250 {
        let answer = server.post_api(user, &request).await.json();
        subjects = answer["methodResponses"][1][1]["list"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|email| {
                        format!(
                            "{}{}",
                            email["subject"].as_str().unwrap_or_default(),
                            match email["bodyStructure"]["type"].as_str() {
                                Some("multipart/report") => " [multipart/report]",
                                _ => "",
                            }
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if subjects.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    subjects
}

#[tokio::test]
async fn a_permanent_failure_bounces_into_the_senders_inbox() {
    let peer = Peer::start(Script {
        rcpt: vec![("nobody".into(), "550 5.1.1 no such user".into())],
        ..Script::default()
    })
    .await;
    let server = relay_server(peer.port).await;
    let store = server.running().store().clone();
    let id = enqueue(
        &store,
        alice_id(&server).await,
        MESSAGE,
        &["nobody@remote.example", "someone@remote.example"],
        |_| {},
    )
    .await;
    wait_gone(&store, id).await;
    assert_eq!(peer.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    let subjects = inbox_subjects(&server, 0, 1).await;
    assert_eq!(
        subjects,
        ["Undelivered Mail Returned to Sender [multipart/report]"]
    );
    // The report names the recipient and the server's answer (RFC 3464 fields).
    let raw = first_inbox_message(&server).await;
    assert!(
        raw.contains("report-type=delivery-status")
            || raw.contains("report-type=\"delivery-status\""),
        "{raw}"
    );
    assert!(raw.contains("message/delivery-status"), "{raw}");
    assert!(
        raw.contains("Final-Recipient: rfc822; nobody@remote.example"),
        "{raw}"
    );
    assert!(raw.contains("Action: failed"), "{raw}");
    assert!(raw.contains("Status: 5.1.1"), "{raw}");
    assert!(
        raw.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"),
        "{raw}"
    );
    assert!(
        !raw.contains("Final-Recipient: rfc822; someone@"),
        "only the failed recipient"
    );
    server.shutdown().await;
}

/// A free UDP port for dnsmasq.
/// A loopback port free for both UDP and TCP (dnsmasq binds both; a TCP port taken by a
/// concurrently running test would make it exit).
fn free_dns_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp port");
        let port = udp.local_addr().expect("udp address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_dnsmasq(port: u16, records: &[String]) -> Child {
    let mut command = std::process::Command::new("/usr/sbin/dnsmasq");
    command.args([
        format!("--port={port}"),
        "--listen-address=127.0.0.1".into(),
        "--bind-interfaces".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "-k".into(),
        "--pid-file=".into(),
        "--user=root".into(),
    ]);
    command.args(records);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Child(
        command
            .spawn()
            .expect("dnsmasq runs (apt-get install dnsmasq)"),
    )
}

/// Starts a dnsmasq serving `records` and returns it with its port once it answers a query
/// for `probe`; a port another test grabbed in between means a retry on a new one.
pub async fn dnsmasq(records: &[String], probe: &str) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_dns_port();
        let child = spawn_dnsmasq(port, records);
        if dns_answers(port, probe).await {
            return (child, port);
        }
    }
    panic!("dnsmasq never answered on five ports");
}

#[tokio::test]
async fn mx_records_from_dnsmasq_route_the_mail_and_a_missing_domain_bounces() {
    let sink = tempfile::tempdir().expect("sink dir");
    let sink_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port")
        .port();
    let _sink = Child(
        std::process::Command::new("/usr/sbin/smtp-sink")
            .args([
                "-u",
                "root",
                "-d",
                &format!("{}/%M.", sink.path().display()),
                &format!("127.0.0.1:{sink_port}"),
                "100",
            ])
            .spawn()
            .expect("smtp-sink runs (postfix)"),
    );
    // Two MX hosts: the preferred one has no listener, so the second is used.
    let (_dns, dns_port) = dnsmasq(
        &[
            "--mx-host=mx-test.example,mx1.mx-test.example,10".into(),
            "--mx-host=mx-test.example,mx2.mx-test.example,20".into(),
            "--address=/mx1.mx-test.example/127.0.0.2".into(),
            "--address=/mx2.mx-test.example/127.0.0.1".into(),
            // Answered locally: every name in it is NXDOMAIN.
            "--address=/unknown-domain.example/".into(),
        ],
        "mx-test.example",
    )
    .await;
    let server = TestServer::start_with(|config| {
        config.dns.nameserver = Some(format!("127.0.0.1:{dns_port}").parse().unwrap());
        config.outbound.mx_port = sink_port;
        config.outbound.connect_timeout_seconds = 2;
    })
    .await;
    let store = server.running().store().clone();
    let alice = alice_id(&server).await;
    let id = enqueue(&store, alice, MESSAGE, &["user@mx-test.example"], |_| {}).await;
    wait_gone(&store, id).await;
    let mut files = Vec::new();
    for _ in 0..100 {
        files = std::fs::read_dir(sink.path())
            .expect("sink dir")
            .flatten()
            .map(|entry| entry.path())
            .collect();
        if !files.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(files.len(), 1, "smtp-sink wrote the message");
    let stored = std::fs::read_to_string(&files[0]).expect("read");
    assert!(stored.contains("Subject: outbound test"), "{stored}");

    // A domain dnsmasq does not know: NXDOMAIN is permanent, a bounce comes back.
    let id = enqueue(
        &store,
        alice,
        MESSAGE,
        &["user@unknown-domain.example"],
        |_| {},
    )
    .await;
    wait_gone(&store, id).await;
    let subjects = inbox_subjects(&server, 0, 1).await;
    assert_eq!(
        subjects,
        ["Undelivered Mail Returned to Sender [multipart/report]"]
    );
    server.shutdown().await;
}

/// The raw text of the first message in alice's Inbox.
async fn first_inbox_message(server: &TestServer) -> String {
    let alice = server.alice();
    let answer = server
        .post_api(
            alice,
            &json!({
                "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                "methodCalls": [
                    ["Email/query", {"accountId": alice.account_id}, "q"],
                    ["Email/get", {"accountId": alice.account_id, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                        "properties": ["blobId"]}, "g"]
                ]
            }),
        )
        .await
        .json();
    let blob_id = answer["methodResponses"][1][1]["list"][0]["blobId"]
        .as_str()
        .expect("blobId")
        .to_owned();
    server
        .download(alice, &alice.account_id, &blob_id)
        .await
        .text()
}

#[tokio::test]
async fn a_null_mx_fails_at_once_into_a_bounce_without_retries() {
    // RFC 7505: `nullmx.example. MX 0 .` (preference 0, the root as exchange), written as
    // raw RDATA since dnsmasq's --mx-host cannot name the root.
    let (_dns, dns_port) = dnsmasq(
        &["--dns-rr=nullmx.example,15,000000".into()],
        "nullmx.example",
    )
    .await;
    // Any connection attempt would land on this peer (the A/AAAA fallback must not happen).
    let peer = Peer::start(Script::default()).await;
    let server = TestServer::start_with(|config| {
        config.dns.nameserver = Some(format!("127.0.0.1:{dns_port}").parse().unwrap());
        config.outbound.mx_port = peer.port;
        config.outbound.connect_timeout_seconds = 2;
    })
    .await;
    let store = server.running().store().clone();
    let id = enqueue(
        &store,
        alice_id(&server).await,
        MESSAGE,
        &["user@nullmx.example"],
        |_| {},
    )
    .await;
    // Gone after its first attempt: a temporary failure would stay queued for minutes.
    wait_gone(&store, id).await;
    let subjects = inbox_subjects(&server, 0, 1).await;
    assert_eq!(
        subjects,
        ["Undelivered Mail Returned to Sender [multipart/report]"]
    );
    let raw = first_inbox_message(&server).await;
    assert!(
        raw.contains("Final-Recipient: rfc822; user@nullmx.example"),
        "{raw}"
    );
    assert!(raw.contains("Action: failed"), "{raw}");
    // RFC 7505 §4.3 / RFC 7504: 556 5.1.10 "recipient address has null MX".
    assert!(raw.contains("Status: 5.1.10"), "{raw}");
    assert!(raw.contains("556"), "{raw}");
    assert_eq!(
        peer.connections.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    server.shutdown().await;
}

/// Waits until the DNS server on `port` answers an MX query for `name` (dnsmasq takes a
/// moment to start on a loaded machine; a query it misses is a temporary failure, retried
/// minutes later).
/// Whether a DNS server on `port` answers a query for `name` within 2 s.
async fn dns_answers(port: u16, name: &str) -> bool {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp socket");
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 15, 0, 1]);
    let mut answer = [0u8; 512];
    for _ in 0..20 {
        let _ = socket.send_to(&query, ("127.0.0.1", port)).await;
        let received =
            tokio::time::timeout(Duration::from_millis(100), socket.recv(&mut answer)).await;
        if matches!(received, Ok(Ok(count)) if count >= 12) {
            return true;
        }
    }
    false
}
