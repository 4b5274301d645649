//! `smtp-push-latency`: how long after the SMTP `250` a JMAP client learns of the new mail.
//! One WebSocket (RFC 8887) with push enabled for `--user`, one SMTP connection to `--smtp`
//! sending `--requests` messages (`--message-size` bytes each, after `--warmup` unmeasured
//! ones) to that same user, one at a time: for each, the time from reading the `250` after
//! DATA to the arrival of the Email StateChange on the socket. Works with any server that
//! speaks SMTP and JMAP over WebSocket.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::push::open_socket;
use super::smtp::Session;
use super::{Options, RunFigures, Samples, build_request, loopback_endpoint};

/// Sends one message over `session`; returns when the `250` after DATA was read.
async fn send(session: &mut Session, to: &str, body: &[u8]) -> Result<Instant, String> {
    // One command at a time: the server need not offer PIPELINING.
    session
        .write(b"MAIL FROM:<bench@remote.example>\r\n")
        .await?;
    session.reply(250).await?;
    session
        .write(format!("RCPT TO:<{to}>\r\n").as_bytes())
        .await?;
    session.reply(250).await?;
    session.write(b"DATA\r\n").await?;
    session.reply(354).await?;
    session.write(body).await?;
    session.write(b".\r\n").await?;
    session.reply(250).await?;
    Ok(Instant::now())
}

fn message(index: u64, size: usize) -> Vec<u8> {
    let mut text = format!(
        "From: bench@remote.example\r\nTo: bench\r\nSubject: bench {index}\r\nMessage-ID: <{index}.{}@bench.example>\r\nDate: Sun, 22 Nov 2026 08:00:00 +0000\r\n\r\n",
        rand::random::<u64>()
    );
    // Lines of 76 characters; a leading dot would need stuffing, so none starts with one.
    while text.len() < size {
        text.push_str(&"x".repeat(76));
        text.push_str("\r\n");
    }
    text.into_bytes()
}

async fn websocket_url(options: &Options) -> Result<String, String> {
    let endpoint = loopback_endpoint(&options.session_url)?;
    let mut connection = super::Connection::open(endpoint.address).await?;
    let request = build_request(
        "GET",
        &endpoint,
        &endpoint.path_and_query,
        &options.authorization,
        None,
        bytes::Bytes::new(),
    )?;
    let (_, body) = connection.exchange(request).await?;
    let session: Value = serde_json::from_slice(&body).map_err(|error| error.to_string())?;
    session["capabilities"]["urn:ietf:params:jmap:websocket"]["url"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the session has no WebSocket url".to_owned())
}

pub async fn smtp_push_latency(options: &Options) -> Result<RunFigures, String> {
    let smtp_address = options
        .smtp
        .ok_or("smtp-push-latency needs --smtp ADDR (the MX listener)")?;
    let user = options
        .user
        .clone()
        .ok_or("smtp-push-latency needs --user (the recipient)")?;
    let url = websocket_url(options).await?;
    let mut socket = open_socket(&url, &options.authorization).await?;
    socket
        .send(Message::text(
            json!({"@type": "WebSocketPushEnable", "dataTypes": ["Email"]}).to_string(),
        ))
        .await
        .map_err(|error| error.to_string())?;
    let mut smtp = Session::open(smtp_address).await?;
    let mut samples = Samples::default();
    let body = |index| message(index, options.message_size.min(10 * 1024 * 1024));
    for index in 0..options.warmup + options.requests {
        let accepted = send(&mut smtp, &user, &body(index)).await?;
        let arrived = loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .map_err(|_| format!("message {index}: no StateChange within 10 s"))?
                .ok_or("socket closed")?
                .map_err(|error| error.to_string())?;
            if let Message::Text(text) = frame
                && text.as_str().contains("\"StateChange\"")
                && text.as_str().contains("\"Email\"")
            {
                break Instant::now();
            }
        };
        if index >= options.warmup {
            samples.push(arrived.saturating_duration_since(accepted));
        }
    }
    let _ = smtp.write(b"QUIT\r\n").await;
    let summary = samples.summary();
    println!(
        "smtp-push-latency ({} B messages): SMTP 250 → Email StateChange {summary}",
        options.message_size
    );
    Ok(RunFigures {
        headline: summary.p50,
        headline_unit: "ms from the SMTP 250 to the StateChange (p50)",
        p50: summary.p50,
        p99: summary.p99,
    })
}
