//! The attackers of `bench abuse`: each runs until the context's stop flag, bounded by
//! `--connections`, and records what it got in the context's tally.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::{AttackContext, connect_from, messages, post_api};
use crate::Connection;

pub async fn run(name: String, context: Arc<AttackContext>) -> Result<(), String> {
    match name.as_str() {
        "idle-http" => hold_connections(&context, context.target.api.address, None).await,
        "slowloris-http" => {
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nX-Slow: {}",
                context.target.api.path_and_query,
                context.target.api.host_header,
                "a".repeat(4096)
            );
            hold_connections(
                &context,
                context.target.api.address,
                Some(head.into_bytes()),
            )
            .await
        }
        "heavy-get" => heavy_get(&context).await,
        "login-guess" => login_guess(&context).await,
        "ws-flood" => websocket_flood(&context).await,
        "idle-smtp" => {
            let smtp = context.smtp.ok_or("no --smtp")?;
            hold_connections(&context, smtp, None).await
        }
        "slowloris-smtp" => {
            let smtp = context.smtp.ok_or("no --smtp")?;
            let command = b"EHLO slow.example\r\nMAIL FROM:<slow@remote.example>\r\n".repeat(64);
            hold_connections(&context, smtp, Some(command)).await
        }
        other => Err(format!("no attack {other}")),
    }
}

/// `--connections` connections to `to` from the attack addresses, opened 200 at a time.
/// With `trickle`, each sends it one byte every second (slowloris); without, nothing at all.
/// Whatever the server sends is read and counted; a close by the server is recorded.
async fn hold_connections(
    context: &Arc<AttackContext>,
    to: std::net::SocketAddr,
    trickle: Option<Vec<u8>>,
) -> Result<(), String> {
    let trickle = trickle.map(Arc::new);
    let mut holders = JoinSet::new();
    for index in 0..context.connections {
        if context.stopped() {
            break;
        }
        if index % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let context = Arc::clone(context);
        let trickle = trickle.clone();
        holders.spawn(async move {
            let tally = &context.tally;
            let stream = match tokio::time::timeout(
                Duration::from_secs(3),
                connect_from(context.source(index), to),
            )
            .await
            {
                Ok(Ok(stream)) => stream,
                _ => {
                    tally.connect_failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            tally.connections.fetch_add(1, Ordering::Relaxed);
            hold(stream, &context, trickle.as_deref().map(Vec::as_slice)).await;
        });
    }
    while !context.stopped() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holders.shutdown().await;
    Ok(())
}

async fn hold(mut stream: TcpStream, context: &AttackContext, trickle: Option<&[u8]>) {
    let mut buffer = [0u8; 4096];
    let mut sent = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => {
                    context.tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(read) => {
                    context.tally.bytes_received.fetch_add(read as u64, Ordering::Relaxed);
                }
            },
            _ = tick.tick() => {
                if context.stopped() {
                    return;
                }
                if let Some(bytes) = trickle
                    && sent < bytes.len()
                {
                    if stream.write_all(&bytes[sent..=sent]).await.is_err() {
                        context.tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    sent += 1;
                }
            }
        }
    }
}

/// Imports the two pathological messages, then 4 clients repeat the 64-call heavy request.
async fn heavy_get(context: &Arc<AttackContext>) -> Result<(), String> {
    let target = &context.target;
    let mut connection = Connection::open(target.api.address).await?;
    let inbox = crate::mail::inbox_id(&mut connection, target).await?;
    let mut ids = Vec::new();
    for raw in [messages::many_parts(10_000), messages::deep_nesting(5_000)] {
        let blob_id = crate::mail::upload(&mut connection, target, raw).await?;
        let answer = crate::mail::call_counting_refusals(
            &mut connection,
            target,
            &["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            json!([["Email/import", {"accountId": target.account_id, "emails": {
                "h": {"blobId": blob_id, "mailboxIds": {inbox.clone(): true}}
            }}, "i"]]),
        )
        .await?;
        match answer["methodResponses"][0][1]["created"]["h"]["id"].as_str() {
            Some(id) => ids.push(id.to_owned()),
            None => println!(
                "    the server refused a pathological message: {}",
                answer["methodResponses"][0][1]["notCreated"]
            ),
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let calls: Vec<_> = (0..64)
        .map(|index| {
            json!(["Email/get", {"accountId": target.account_id, "ids": [ids[index % ids.len()]],
                "properties": null, "fetchAllBodyValues": true}, index.to_string()])
        })
        .collect();
    let body = Bytes::from(
        json!({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            "methodCalls": calls})
        .to_string(),
    );
    let mut clients = JoinSet::new();
    for _ in 0..4 {
        let context = Arc::clone(context);
        let body = body.clone();
        clients.spawn(async move {
            let target = &context.target;
            let tally = &context.tally;
            while !context.stopped() {
                let Ok(mut connection) = Connection::open(target.api.address).await else {
                    tally.connect_failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                tally.connections.fetch_add(1, Ordering::Relaxed);
                match post_api(&mut connection, target, &target.authorization, body.clone()).await {
                    Ok((status, answer)) => {
                        tally
                            .bytes_received
                            .fetch_add(answer.len() as u64, Ordering::Relaxed);
                        let refused =
                            status != 200 || answer.windows(8).any(|window| window == b"\"error\"");
                        let counter = if refused {
                            &tally.answers_refused
                        } else {
                            &tally.answers_ok
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    clients.join_all().await;
    Ok(())
}

/// 40 clients, each from one of the attack addresses, send wrong passwords for the user.
async fn login_guess(context: &Arc<AttackContext>) -> Result<(), String> {
    let mut clients = JoinSet::new();
    for client in 0..40 {
        let context = Arc::clone(context);
        clients.spawn(async move {
            let target = &context.target;
            let tally = &context.tally;
            let mut guess = 0u64;
            while !context.stopped() {
                guess += 1;
                let credentials = format!("{}:wrong-{client}-{guess}", context.options_user);
                let authorization = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                );
                let stream = match connect_from(context.source(client), target.api.address).await {
                    Ok(stream) => stream,
                    Err(_) => {
                        tally.connect_failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                tally.connections.fetch_add(1, Ordering::Relaxed);
                let Ok(mut connection) = Connection::from_stream(stream).await else {
                    continue;
                };
                let body = Bytes::from_static(crate::ECHO_BODY.as_bytes());
                match post_api(&mut connection, target, &authorization, body).await {
                    Ok((200, _)) => {
                        tally.answers_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, _)) => {
                        tally.answers_refused.fetch_add(1, Ordering::Relaxed);
                        if status == 429 {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    Err(_) => {
                        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    clients.join_all().await;
    Ok(())
}

/// `--connections`/10 WebSockets each sending Core/echo as fast as the server answers.
async fn websocket_flood(context: &Arc<AttackContext>) -> Result<(), String> {
    let url = context
        .websocket_url
        .clone()
        .ok_or("the session advertises no WebSocket")?;
    let mut clients = JoinSet::new();
    for _ in 0..(context.connections / 10).max(1) {
        let context = Arc::clone(context);
        let url = url.clone();
        clients.spawn(async move {
            let tally = &context.tally;
            let Ok(mut socket) =
                crate::push::open_socket(&url, &context.target.authorization).await
            else {
                tally.connect_failures.fetch_add(1, Ordering::Relaxed);
                return;
            };
            tally.connections.fetch_add(1, Ordering::Relaxed);
            let request = json!({"@type": "Request", "id": "flood",
                "using": ["urn:ietf:params:jmap:core"],
                "methodCalls": [["Core/echo", {"flood": "x".repeat(1024)}, "0"]]})
            .to_string();
            while !context.stopped() {
                // Eight in flight per socket: a flood, not a ping-pong.
                for _ in 0..8 {
                    if socket.send(Message::text(request.clone())).await.is_err() {
                        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                for _ in 0..8 {
                    match socket.next().await {
                        Some(Ok(Message::Text(text))) => {
                            tally
                                .bytes_received
                                .fetch_add(text.len() as u64, Ordering::Relaxed);
                            let counter = if text.as_str().contains("\"error\"") {
                                &tally.answers_refused
                            } else {
                                &tally.answers_ok
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok(_)) => {}
                        _ => {
                            tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
            let _ = socket.close(None).await;
        });
    }
    clients.join_all().await;
    Ok(())
}
