//! Cluster scenarios of the bench tool (several nodes of one server behind different URLs;
//! any JMAP server with Mailbox/set and RFC 8887 push):
//! - `cluster-push`: a WebSocket with push enabled at `--observe-url` (another node's base
//!   URL); `--requests N` commits (Mailbox creates) through `--session-url`; latency from the
//!   commit instant (the `Server-Timing` commit metric, as in `push-latency`; the send
//!   instant without it) to the StateChange on the other node's socket.
//! - `failover`: per run, starts the owner with `--server-cmd` (a node serving
//!   `--session-url`), makes it the account's owner with one request, then writes through
//!   `--observe-url` while it SIGKILLs the owner (`--claim-cmd` first makes the new node
//!   the owner, e.g. `tern cluster move USER a`), and measures kill → the first successful
//!   write (Mailbox/set create answered `created`) through the other node. The killed node is
//!   started again by the next run.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::mail::call;
use super::push::{open_socket, rand_nonce};
use super::{Connection, Options, RunFigures, Samples, Target, build_request, loopback_endpoint};

/// `--observe-url`'s session, as a target of its own (same credentials).
async fn observed(options: &Options) -> Result<(String, Target), String> {
    let base = options
        .observe_url
        .as_deref()
        .ok_or("this scenario needs --observe-url http://127.0.0.1:PORT (another node)")?
        .trim_end_matches('/')
        .to_owned();
    let target =
        super::discover_session(&format!("{base}/.well-known/jmap"), &options.authorization)
            .await?;
    Ok((base, target))
}

/// Creates one Mailbox; `Ok(Some(server-timing commit ms))` when created.
async fn create_mailbox(
    connection: &mut Connection,
    target: &Target,
    name: &str,
) -> Result<Option<f64>, String> {
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [["Mailbox/set", {"accountId": target.account_id,
            "create": {"m": {"name": name}}}, "0"]],
    });
    let request = build_request(
        "POST",
        &target.api,
        &target.api.path_and_query,
        &target.authorization,
        Some("application/json"),
        Bytes::from(body.to_string()),
    )?;
    let (status, headers, body) = connection.exchange_with_headers(request).await?;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|error| error.to_string())?;
    if !value["methodResponses"][0][1]["created"]["m"]["id"].is_string() {
        return Err(format!("not created: {}", value["methodResponses"][0]));
    }
    let commit_ms = headers
        .get("server-timing")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| {
            text.split(',')
                .find(|metric| metric.trim_start().starts_with("commit"))
                .and_then(|metric| metric.split("dur=").nth(1))
                .and_then(|dur| dur.trim().parse::<f64>().ok())
        });
    Ok(commit_ms)
}

pub async fn cluster_push(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let (base, _) = observed(options).await?;
    let ws_url = format!("ws{}/jmap/ws", base.trim_start_matches("http"));
    let mut socket = open_socket(&ws_url, &options.authorization).await?;
    use futures_util::SinkExt as _;
    socket
        .send(Message::text(
            json!({"@type": "WebSocketPushEnable"}).to_string(),
        ))
        .await
        .map_err(|error| error.to_string())?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut connection = Connection::open(target.api.address).await?;
    let nonce = rand_nonce();
    let mut samples = Samples::default();
    let mut upper = Samples::default();
    let mut answered = Samples::default();
    for round in 0..options.requests {
        let sent = Instant::now();
        let commit_ms =
            create_mailbox(&mut connection, target, &format!("cp{nonce}-{round}")).await?;
        answered.push(sent.elapsed());
        let committed = sent + Duration::from_secs_f64(commit_ms.unwrap_or(0.0) / 1e3);
        let deadline = sent + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(left, socket.next())
                .await
                .map_err(|_| format!("no StateChange at {base} within 5 s"))?;
            let Some(Ok(Message::Text(text))) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            if value["@type"] == "StateChange"
                && value["changed"][&target.account_id]["Mailbox"].is_string()
            {
                let now = Instant::now();
                samples.push(now.saturating_duration_since(committed));
                upper.push(now - sent);
                break;
            }
        }
        // One commit at a time, idle in between, as push-latency does.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = samples.summary();
    let from_sending = upper.summary();
    let (p50, p99) = (summary.p50, summary.p99);
    println!(
        "  commit → StateChange on another node: {summary} (from sending: {from_sending}; \
         the commit request itself, sent → answered: {})",
        answered.summary()
    );
    Ok(RunFigures {
        headline: p50,
        headline_unit: "ms p50",
        p50,
        p99,
    })
}

pub async fn failover(options: &Options, run: usize) -> Result<RunFigures, String> {
    let command_line = options
        .server_cmd
        .as_deref()
        .ok_or("failover needs --server-cmd \"tern serve --config owner.toml\"")?;
    let mut words = command_line.split_whitespace();
    let program = words.next().ok_or("empty --server-cmd")?;
    let session = loopback_endpoint(&options.session_url)?;
    let mut child = std::process::Command::new(program)
        .args(words)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start {program}: {error}"))?;
    let started = Instant::now();
    // Ready (the session answers), then the owner: `--claim-cmd` moves the account to it,
    // or one request through it claims an account nobody owns.
    while super::discover(options).await.is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err("the owner node did not start within 30 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(claim) = &options.claim_cmd {
        let status = std::process::Command::new("sh")
            .args(["-c", claim])
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|error| format!("--claim-cmd: {error}"))?;
        if !status.success() {
            let _ = child.kill();
            return Err(format!("--claim-cmd failed: {status}"));
        }
    }
    let owner = loop {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err("the owner node did not start within 30 s".to_owned());
        }
        if let Ok(target) = super::discover(options).await
            && let Ok(mut connection) = Connection::open(session.address).await
            && call(
                &mut connection,
                &target,
                json!([["Mailbox/get", {"accountId": target.account_id, "ids": []}, "0"]]),
            )
            .await
            .is_ok()
        {
            break target;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The node answering must be the one started here (not another still on its port).
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!(
            "the owner node exited at start ({status}): is its port taken?"
        ));
    }
    let (_, other) = observed(options).await?;
    let mut connection = Connection::open(other.api.address).await?;
    let nonce = rand_nonce();
    // Writes through the other node work (forwarded to the owner) before the kill; right
    // after a move the other node may still answer for the account once (then it learns).
    let settle = Instant::now();
    while let Err(error) =
        create_mailbox(&mut connection, &other, &format!("fo{nonce}-before")).await
    {
        if settle.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return Err(format!(
                "writes through the other node fail before the kill: {error}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = Instant::now();
    child.kill().map_err(|error| format!("kill: {error}"))?;
    let _ = child.wait();
    let mut attempts = 0u32;
    let recovered = loop {
        attempts += 1;
        if killed.elapsed() > Duration::from_secs(60) {
            return Err("no write succeeded through the other node within 60 s".to_owned());
        }
        match create_mailbox(&mut connection, &other, &format!("fo{nonce}-{attempts}")).await {
            Ok(_) => break killed.elapsed(),
            Err(_) => {
                if connection.sender.is_closed() {
                    connection = Connection::open(other.api.address).await?;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    drop(owner);
    let ms = recovered.as_secs_f64() * 1e3;
    println!(
        "  failover run {run}: kill -9 → first write through the other node {ms:.0} ms ({attempts} attempts)"
    );
    Ok(RunFigures {
        headline: ms,
        headline_unit: "ms failover",
        p50: ms,
        p99: ms,
    })
}
