//! SMTP sessions (issue 13, defect 3): per-address and per-network session caps answer
//! `421 4.7.0` to the offender while another network still gets `220`, and a command or a
//! message trickled one byte at a time is cut at its whole-command or whole-DATA deadline
//! (`421 4.4.2`) instead of living forever on per-read timeouts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use crate::connections::connect_from;
use crate::smtp_in_common::{Client, Harness, start};

fn mx(harness: &Harness) -> SocketAddr {
    harness.server.smtp.mx.expect("MX listener")
}

/// A session from `source`, with its first reply (the greeting or a refusal).
async fn session_from(source: &str, target: SocketAddr) -> (Client, String) {
    let stream = connect_from(source, target).await;
    let mut client = Client {
        reader: BufReader::new(stream),
    };
    let greeting = client.reply().await;
    (client, greeting)
}

#[tokio::test]
async fn per_address_and_per_network_caps_leave_other_networks_served() {
    let harness = start(|config| {
        config.smtp.max_connections_per_address = 3;
        config.smtp.max_connections_per_network = 5;
    })
    .await;
    let target = mx(&harness);
    let mut held = Vec::new();
    for _ in 0..3 {
        let (client, greeting) = session_from("127.0.1.1", target).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        held.push(client);
    }
    let (mut over, refused) = session_from("127.0.1.1", target).await;
    assert!(refused.starts_with("421 4.7.0"), "{refused}");
    assert!(refused.contains("your address"), "{refused}");
    assert!(over.closed().await);
    // The same /24 from other addresses: two more, then the network is full.
    for host in [2, 3] {
        let (client, greeting) = session_from(&format!("127.0.1.{host}"), target).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        held.push(client);
    }
    let (_over, refused) = session_from("127.0.1.4", target).await;
    assert!(refused.starts_with("421 4.7.0"), "{refused}");
    assert!(refused.contains("your network"), "{refused}");
    // Another network, 127.0.0.1 included, is served at once.
    for source in ["127.0.2.1", "127.0.0.1"] {
        let started = Instant::now();
        let (mut client, greeting) = session_from(source, target).await;
        assert!(greeting.starts_with("220 "), "{source}: {greeting}");
        assert!(client.command("EHLO probe").await.starts_with("250"));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    drop(held);
    harness.server.shutdown().await;
}

/// Sends `prefix`, then one byte of `trickle` every `interval` until the server answers or
/// closes; returns the answer and how long after the prefix it came.
async fn trickle(client: &mut Client, trickle: &[u8], interval: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    for byte in trickle.iter().cycle() {
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
        if client.reader.get_mut().write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut buffer = [0u8; 512];
        match tokio::time::timeout(interval, client.reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => {
                answer.extend_from_slice(&buffer[..read]);
                break;
            }
            Err(_) => {}
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_trickled_command_is_cut_at_the_whole_command_deadline() {
    let harness = start(|config| config.smtp.command_timeout_seconds = 1).await;
    let (mut client, greeting) = session_from("127.0.3.1", mx(&harness)).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(client.command("EHLO slow").await.starts_with("250"));
    // A command line that never ends, one byte every 300 ms (each well inside the timeout).
    let (answer, elapsed) = trickle(&mut client, b"NOOP", Duration::from_millis(300)).await;
    assert!(
        answer.starts_with("421 4.4.2"),
        "{answer:?} after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "cut after {elapsed:?}"
    );
    assert!(client.closed().await);
    harness.server.shutdown().await;
}

#[tokio::test]
async fn trickled_message_data_is_cut_at_the_whole_data_deadline() {
    let harness = start(|config| {
        config.smtp.data_timeout_seconds = 1;
        config.smtp.min_data_rate = 1000;
    })
    .await;
    let (mut client, _) = session_from("127.0.4.1", mx(&harness)).await;
    assert!(client.command("EHLO slow").await.starts_with("250"));
    assert!(
        client
            .command("MAIL FROM:<s@remote.test>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<alice@example.test>")
            .await
            .starts_with("250")
    );
    assert!(client.command("DATA").await.starts_with("354"));
    // Message content at 5 bytes a second: each byte well inside the data timeout.
    let (answer, elapsed) = trickle(&mut client, b"x", Duration::from_millis(200)).await;
    assert!(
        answer.starts_with("421 4.4.2"),
        "{answer:?} after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "cut after {elapsed:?}"
    );
    // Nothing of the cut message was queued, and the listener serves the next client.
    let (mut next, greeting) = session_from("127.0.4.2", mx(&harness)).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(next.command("QUIT").await.starts_with("221"));
    let mut rest = Vec::new();
    let _ = next.reader.read_to_end(&mut rest).await;
    harness.server.shutdown().await;
}

#[tokio::test]
async fn a_full_listener_keeps_its_last_slots_for_new_networks() {
    // 20 sessions, the last 2 for networks holding fewer than 4.
    let harness = start(|config| {
        config.smtp.max_connections = 20;
        config.smtp.max_connections_per_address = 8;
        config.smtp.max_connections_per_network = 8;
    })
    .await;
    let target = mx(&harness);
    let mut held = Vec::new();
    for (source, count) in [("127.0.5.1", 8), ("127.0.6.1", 6), ("127.0.7.1", 4)] {
        for _ in 0..count {
            let (client, greeting) = session_from(source, target).await;
            assert!(greeting.starts_with("220 "), "{source}: {greeting}");
            held.push(client);
        }
    }
    // 18 of 20 taken: a network holding 4 is refused, ...
    let (_refused, reply) = session_from("127.0.7.2", target).await;
    assert!(reply.starts_with("421 4.7.0"), "{reply}");
    // ... a new one is served.
    let (mut probe, greeting) = session_from("127.0.0.1", target).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(probe.command("EHLO probe").await.starts_with("250"));
    drop(held);
    harness.server.shutdown().await;
}
