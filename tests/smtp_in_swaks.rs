//! The SMTP listeners against real peers: swaks (ESMTP, PIPELINING, STARTTLS, implicit TLS,
//! AUTH PLAIN/LOGIN) and postfix's smtp-source (concurrent sessions). Every 250 must leave
//! the message durably held (queued or delivered).

mod smtp_in_common;

use std::process::Command;
use std::time::Duration;

use smtp_in_common::{Harness, delivered_subjects, start, tls_paths};
use tern::smtp::incoming;

/// Runs swaks with `args` against `address`; returns (exit success, transcript).
async fn swaks(address: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("swaks");
    command
        .args(["--server", &address.ip().to_string()])
        .args(["--port", &address.port().to_string()])
        .args(["--timeout", "10"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("swaks runs (Debian package swaks)");
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), transcript)
}

/// Messages accepted so far: queued, plus delivered into any account (waits briefly for the
/// delivery actor to settle so counts are comparable).
async fn queued_or_delivered_marker(harness: &Harness, marker: &str) -> bool {
    for _ in 0..50 {
        let queued = incoming::load_pending(harness.server.store(), 10_000)
            .await
            .expect("queue");
        if !queued.is_empty()
            || delivered_subjects(harness)
                .await
                .iter()
                .any(|s| s.contains(marker))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn swaks_delivers_over_esmtp_and_is_refused_as_a_relay() {
    let harness = start(|_| {}).await;
    let mx = harness.server.smtp.mx.expect("MX");
    let (ok, transcript) = swaks(
        mx,
        &[
            "--to",
            "alice@example.test",
            "--from",
            "someone@remote.test",
            "--header",
            "Subject: swaks-esmtp-1",
            "--pipeline",
        ],
    )
    .await;
    assert!(ok, "{transcript}");
    assert!(
        transcript.contains("250 2.0.0 OK queued as"),
        "{transcript}"
    );
    assert!(queued_or_delivered_marker(&harness, "swaks-esmtp-1").await);
    // Relaying through the MX is refused (exit code 24: RCPT failed).
    let (ok, transcript) = swaks(
        mx,
        &[
            "--to",
            "someone@elsewhere.test",
            "--from",
            "alice@example.test",
        ],
    )
    .await;
    assert!(!ok, "{transcript}");
    assert!(transcript.contains("550 5.7.1"), "{transcript}");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn swaks_submits_with_starttls_and_implicit_tls_and_auth() {
    let (cert, key) = tls_paths();
    let harness = start(|config| {
        config.server.tls_cert = Some(cert);
        config.server.tls_key = Some(key);
        config.smtp.submissions = Some("127.0.0.1:0".parse().unwrap());
        // As for a remote client: AUTH only after TLS.
        config.smtp.loopback_auth_without_tls = false;
    })
    .await;
    let submission = harness.server.smtp.submission.expect("submission");
    // Without TLS, AUTH is not offered and MAIL needs it.
    let (ok, transcript) = swaks(
        submission,
        &["--to", "bob@example.test", "--from", "alice@example.test"],
    )
    .await;
    assert!(!ok && transcript.contains("530 5.7.0"), "{transcript}");
    for mechanism in ["PLAIN", "LOGIN"] {
        let subject = format!("Subject: starttls-{mechanism}");
        let (ok, transcript) = swaks(
            submission,
            &[
                "--to",
                "bob@example.test",
                "--from",
                "alice@example.test",
                "--tls",
                "--auth",
                mechanism,
                "--auth-user",
                "alice@example.test",
                "--auth-password",
                "alice-password",
                "--header",
                &subject,
            ],
        )
        .await;
        assert!(ok, "{transcript}");
        assert!(transcript.contains("235 2.7.0"), "{transcript}");
        assert!(
            transcript.contains("250 2.0.0 OK queued as"),
            "{transcript}"
        );
    }
    // A wrong password: 535.
    let (ok, transcript) = swaks(
        submission,
        &[
            "--to",
            "bob@example.test",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@example.test",
            "--auth-password",
            "wrong",
        ],
    )
    .await;
    assert!(!ok && transcript.contains("535 5.7.8"), "{transcript}");
    // Implicit TLS (465 style).
    let submissions = harness.server.smtp.submissions.expect("submissions");
    let (ok, transcript) = swaks(
        submissions,
        &[
            "--to",
            "bob@example.test",
            "--from",
            "alice@example.test",
            "--tls-on-connect",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@example.test",
            "--auth-password",
            "alice-password",
        ],
    )
    .await;
    assert!(ok, "{transcript}");
    assert!(
        transcript.contains("250 2.0.0 OK queued as"),
        "{transcript}"
    );
    harness.server.shutdown().await;
}

#[tokio::test]
async fn smtp_source_sessions_in_parallel_are_all_acknowledged() {
    // smtp-source opens one connection per message: lift the per-address rate limit.
    let harness = start(|config| config.smtp.connection_rate_burst = 100_000).await;
    let mx = harness.server.smtp.mx.expect("MX");
    let target = format!("{}:{}", mx.ip(), mx.port());
    // 8 parallel sessions, 200 messages of ~10 KB, to alice.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("/usr/sbin/smtp-source")
            .args([
                "-s",
                "8",
                "-m",
                "200",
                "-l",
                "10240",
                "-t",
                "alice@example.test",
            ])
            .args(["-f", "load@remote.test", "-c", &target])
            .output()
    })
    .await
    .expect("join")
    .expect("smtp-source runs (Debian package postfix)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // smtp-source exits non-zero on any non-2xx reply; all 200 were acknowledged, so all
    // 200 are queued or delivered (the sum never drops: delivery removes an entry only in
    // the commit that files it).
    // Delivery marks a recipient delivered in the commit that files the Email and removes
    // the entry later, so count entries that still have a pending recipient.
    let mut settled = 0;
    for _ in 0..100 {
        let pending = incoming::load_pending(harness.server.store(), 10_000)
            .await
            .expect("queue")
            .iter()
            .filter(|entry| entry.pending_recipients().next().is_some())
            .count();
        let delivered = delivered_count(&harness).await;
        settled = pending + delivered;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(settled, 200);
    harness.server.shutdown().await;
}

async fn delivered_count(harness: &Harness) -> usize {
    let account = harness.alice_id;
    let request = serde_json::json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [["Email/query", {"accountId": tern::jmap::types::AccountId::new(account).to_string(), "calculateTotal": true, "limit": 1}, "q"]]
    });
    let response = reqwest::Client::new()
        .post(format!("{}/jmap/api", harness.server.base_url))
        .basic_auth("alice@example.test", Some("alice-password"))
        .json(&request)
        .send()
        .await
        .expect("JMAP");
    let body: serde_json::Value = response.json().await.expect("JSON");
    body["methodResponses"][0][1]["total"].as_u64().unwrap_or(0) as usize
}
