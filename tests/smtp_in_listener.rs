//! The SMTP listeners over real sockets, with a raw TCP client: acceptance policy (no open
//! relay), durability before 250, BDAT, limits, timeouts, garbage and disconnects.

mod smtp_in_common;

use std::net::SocketAddr;
use std::time::Duration;

use smtp_in_common::{Client, Harness, delivered_subjects, start};
use tern::smtp::incoming;
use tern::store::blob::{BlobHash, BlobStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether the message with content `body` is durably held: still in the incoming queue,
/// or already delivered (linked into alice's account by the delivery actor).
/// A delivered message's Email holds the blob delivery prepared (with Received and
/// Authentication-Results added), not the queued one: look for its Subject too.
async fn durably_held(harness: &Harness, body: &[u8]) -> bool {
    let hash = BlobHash::of(body);
    let queued = incoming::load_pending(harness.server.store(), 10_000)
        .await
        .expect("queue")
        .iter()
        .any(|entry| entry.blob == hash);
    let blobs = BlobStore::new(harness.server.store().clone());
    if queued || blobs.info(harness.alice_id, &hash).await.is_ok() {
        return true;
    }
    let text = String::from_utf8_lossy(body);
    let Some(subject) = text
        .lines()
        .find_map(|line| line.strip_prefix("Subject: "))
        .map(str::trim)
    else {
        return false;
    };
    delivered_subjects(harness)
        .await
        .iter()
        .any(|s| s == subject)
}

fn mx(harness: &Harness) -> SocketAddr {
    harness.server.smtp.mx.expect("MX listener")
}

#[tokio::test]
async fn a_message_is_durable_before_its_250_and_there_is_no_open_relay() {
    let harness = start(|_| {}).await;
    let (mut client, greeting) = Client::connect(mx(&harness)).await;
    assert!(greeting.starts_with("220 mx.example.test"), "{greeting}");
    let ehlo = client.command("EHLO client.test").await;
    assert!(
        ehlo.contains("PIPELINING") && ehlo.contains("CHUNKING"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("AUTH"), "no AUTH on MX: {ehlo}");
    assert!(
        client
            .command("MAIL FROM:<sender@remote.test>")
            .await
            .starts_with("250")
    );
    // No open relay: a domain that is not local is refused, even with a local sender.
    let relay = client.command("RCPT TO:<victim@elsewhere.test>").await;
    assert!(relay.starts_with("550 5.7.1"), "{relay}");
    let unknown = client.command("RCPT TO:<nobody@example.test>").await;
    assert!(unknown.starts_with("550 5.1.1"), "{unknown}");
    // Case and subaddress reach alice.
    assert!(
        client
            .command("RCPT TO:<Alice+tag@EXAMPLE.test>")
            .await
            .starts_with("250")
    );
    assert!(client.command("DATA").await.starts_with("354"));
    let body = format!("Subject: durable {}\r\n\r\nHello.\r\n", rand_id());
    client.send(format!("{body}.\r\n").as_bytes()).await;
    let accepted = client.reply().await;
    assert!(accepted.starts_with("250 2.0.0"), "{accepted}");
    // Acknowledged means committed: no waiting needed.
    assert!(durably_held(&harness, body.as_bytes()).await);
    // The relay attempt did not queue anything for elsewhere.
    assert!(client.command("MAIL FROM:<>").await.starts_with("250"));
    assert!(
        client
            .command("RCPT TO:<x@elsewhere.test>")
            .await
            .starts_with("550")
    );
    assert!(client.command("DATA").await.starts_with("554"));
    assert!(client.command("QUIT").await.starts_with("221"));
    harness.server.shutdown().await;
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn bdat_pipelined_and_limits() {
    let harness = start(|config| {
        config.smtp.max_message_size = 2000;
        config.smtp.max_recipients = 2;
    })
    .await;
    let (mut client, _) = Client::connect(mx(&harness)).await;
    client.command("EHLO c").await;
    // One pipelined group with BDAT chunks (swaks cannot send BDAT).
    let first = format!("Subject: bdat {}\r\n\r\n", rand_id());
    let second = "chunked body\r\n";
    client
        .send(
            format!(
                "MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT {}\r\n{first}BDAT {} LAST\r\n{second}",
                first.len(),
                second.len()
            )
            .as_bytes(),
        )
        .await;
    for expected in ["250", "250", "250", "250 2.0.0 OK queued"] {
        let reply = client.reply().await;
        assert!(reply.starts_with(expected), "{reply} vs {expected}");
    }
    assert!(durably_held(&harness, format!("{first}{second}").as_bytes()).await);
    // Size: declared and actual.
    assert!(
        client
            .command("MAIL FROM:<s@remote.test> SIZE=5000")
            .await
            .starts_with("552 5.3.4")
    );
    client.command("MAIL FROM:<s@remote.test>").await;
    client.command("RCPT TO:<alice@example.test>").await;
    client.command("RCPT TO:<bob@example.test>").await;
    let third = client.command("RCPT TO:<alice@example.test>").await;
    assert!(third.starts_with("452 4.5.3"), "{third}");
    assert!(client.command("DATA").await.starts_with("354"));
    client.send(&vec![b'x'; 3000]).await;
    client.send(b"\r\n.\r\n").await;
    assert!(client.reply().await.starts_with("552 5.3.4"));
    assert!(client.command("NOOP").await.starts_with("250"));
    harness.server.shutdown().await;
}

#[tokio::test]
async fn garbage_half_close_and_disconnect_mid_data_leave_the_server_serving() {
    let harness = start(|config| config.smtp.max_errors = 5).await;
    let address = mx(&harness);
    // Binary garbage: a few 500s, then 421 and close.
    let (mut client, _) = Client::connect(address).await;
    client
        .send(b"\x00\xff\xfe garbage\r\n\x16\x03\x01\r\nfoo bar\r\n\x01\x02\r\nzz\r\n")
        .await;
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(client.reply().await);
    }
    assert!(
        replies[..5].iter().all(|r| r.starts_with("500")),
        "{replies:?}"
    );
    assert!(replies[5].starts_with("421 4.7.0"), "{replies:?}");
    assert!(client.closed().await);
    // Disconnect in the middle of DATA: nothing is queued, nothing breaks.
    let before = incoming::count(harness.server.store()).await.unwrap();
    let (mut client, _) = Client::connect(address).await;
    client
        .send(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: cut\r\n\r\nhalf")
        .await;
    for _ in 0..4 {
        client.reply().await;
    }
    drop(client);
    // Half-close: the client shuts its write side after QUIT-less commands.
    let (client, _) = Client::connect(address).await;
    let mut stream = client.reader.into_inner();
    stream.write_all(b"EHLO c\r\nNOOP\r\n").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut rest))
        .await
        .expect("the server closes after EOF")
        .unwrap();
    assert!(rest.contains("250 2.0.0 OK"), "{rest}");
    // And the server still serves a full transaction.
    let (mut client, _) = Client::connect(address).await;
    client.command("EHLO c").await;
    client.command("MAIL FROM:<>").await;
    client.command("RCPT TO:<alice@example.test>").await;
    client.command("DATA").await;
    let body = format!("Subject: after {}\r\n\r\nok\r\n", rand_id());
    client.send(format!("{body}.\r\n").as_bytes()).await;
    assert!(client.reply().await.starts_with("250"));
    assert!(durably_held(&harness, body.as_bytes()).await);
    let after = incoming::count(harness.server.store()).await.unwrap();
    assert!(after <= before + 1, "the cut message was not queued");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn slow_clients_time_out_and_connections_are_limited() {
    let harness = start(|config| {
        config.smtp.command_timeout_seconds = 1;
        config.smtp.max_connections = 2;
        config.smtp.connection_rate_burst = 1000;
    })
    .await;
    let address = mx(&harness);
    let (mut slow, _) = Client::connect(address).await;
    let (_other, _) = Client::connect(address).await;
    // Over the connection limit: 421 at once.
    let (mut third, greeting) = Client::connect(address).await;
    assert!(greeting.starts_with("421 4.7.0"), "{greeting}");
    assert!(third.closed().await);
    // RFC 5321 §4.5.3.2: a silent client is dropped with 421 (1 s here).
    let started = std::time::Instant::now();
    let reply = slow.reply().await;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5));
    harness.server.shutdown().await;

    let harness = start(|config| {
        config.smtp.connection_rate_burst = 3;
        config.smtp.connection_rate_refill_ms = 60_000;
    })
    .await;
    let address = mx(&harness);
    for _ in 0..3 {
        let (_client, greeting) = Client::connect(address).await;
        assert!(greeting.starts_with("220"), "{greeting}");
    }
    let (_client, greeting) = Client::connect(address).await;
    assert!(
        greeting.starts_with("421 4.7.0"),
        "rate limited: {greeting}"
    );
    harness.server.shutdown().await;
}

#[tokio::test]
async fn submission_needs_auth_and_relays_nothing_without_it() {
    let harness = start(|_| {}).await;
    let address = harness.server.smtp.submission.expect("submission");
    let (mut client, _) = Client::connect(address).await;
    let ehlo = client.command("EHLO c").await;
    // Loopback without TLS configured: AUTH offered (loopback_auth_without_tls).
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(
        client
            .command("MAIL FROM:<alice@example.test>")
            .await
            .starts_with("530 5.7.0")
    );
    let bad = client
        .command("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==")
        .await;
    assert!(bad.starts_with("535 5.7.8"), "{bad}");
    // "\0alice@example.test\0alice-password"
    let good = client
        .command("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==")
        .await;
    assert!(good.starts_with("235 2.7.0"), "{good}");
    assert!(
        client
            .command("MAIL FROM:<alice@example.test>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<bob@example.test>")
            .await
            .starts_with("250")
    );
    client.command("DATA").await;
    let body = format!("Subject: local submission {}\r\n\r\nhi bob\r\n", rand_id());
    client.send(format!("{body}.\r\n").as_bytes()).await;
    let reply = client.reply().await;
    assert!(reply.starts_with("250"), "{reply}");
    let hash = BlobHash::of(body.as_bytes());
    let entry = incoming::load_pending(harness.server.store(), 10_000)
        .await
        .unwrap()
        .into_iter()
        .find(|entry| entry.blob == hash);
    if let Some(entry) = entry {
        assert_eq!(
            entry.authenticated_as.as_deref(),
            Some("alice@example.test")
        );
        assert_eq!(entry.recipients.len(), 1);
    }
    harness.server.shutdown().await;
}
