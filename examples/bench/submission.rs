//! Sending scenario of the bench tool (issue 7):
//! - `submission-latency --smtp ADDR`: the bench listens on ADDR as a minimal SMTP sink (the
//!   server must relay there, e.g. `tern serve --relay ADDR` with the outbound rate limit off),
//!   creates one draft, then `--requests N` times (after `--warmup` ones) sends it with
//!   EmailSubmission/set to a fresh recipient and measures from sending the request until the
//!   sink has the whole message (the end of DATA). Percentiles; the headline is p50.
//!
//! Plain JMAP plus SMTP, so it works against any server that relays to a smarthost.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, OnceCell, mpsc};

use super::{Connection, Options, RunFigures, Samples, Target};

const USING: [&str; 3] = [
    "urn:ietf:params:jmap:core",
    "urn:ietf:params:jmap:mail",
    "urn:ietf:params:jmap:submission",
];
/// How long one message may take to reach the sink before the run fails.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounds the number of sends in one run.
const MAX_SENDS: u64 = 5_000;

async fn call(connection: &mut Connection, target: &Target, calls: Value) -> Result<Value, String> {
    super::mail::call_using(connection, target, &USING, calls).await
}

pub async fn submission_latency(
    options: &Options,
    target: &Target,
    run: usize,
) -> Result<RunFigures, String> {
    let sink_address = options
        .smtp
        .ok_or("submission-latency needs --smtp ADDR (where the server relays)")?;
    let mut arrivals = sink(sink_address).await?.lock().await;
    let mut connection = Connection::open(target.api.address).await?;
    let (identity, email_id, from) = prepare(&mut connection, target).await?;
    let mut samples = Samples::default();
    let total = (options.warmup.min(200) + options.requests).min(MAX_SENDS);
    for index in 0..total {
        let recipient = format!("bench-{}-{run}-{index}@sink.example", std::process::id());
        let submission = json!([["EmailSubmission/set", {"accountId": target.account_id,
            "create": {"s": {"identityId": identity, "emailId": email_id,
                "envelope": {"mailFrom": {"email": from}, "rcptTo": [{"email": recipient}]}}}}, "s"]]);
        let started = Instant::now();
        let answer = call(&mut connection, target, submission).await?;
        if answer["methodResponses"][0][1]["created"]["s"].is_null() {
            return Err(format!(
                "EmailSubmission/set refused: {}",
                answer["methodResponses"][0][1]["notCreated"]
            ));
        }
        loop {
            let arrived = tokio::time::timeout(ARRIVAL_TIMEOUT, arrivals.recv())
                .await
                .map_err(|_| format!("{recipient} did not reach the sink in {ARRIVAL_TIMEOUT:?}"))?
                .ok_or("the sink stopped")?;
            if arrived.contains(&recipient) {
                break;
            }
        }
        if index >= total - options.requests.min(total) {
            samples.push(started.elapsed());
        }
    }
    let summary = samples.summary();
    println!("  EmailSubmission/set sent → whole message at the sink: {summary}");
    Ok(RunFigures {
        headline: summary.p50,
        headline_unit: "ms submission → sink p50",
        p50: summary.p50,
        p99: summary.p99,
    })
}

/// The default Identity and a draft to send (created once per run).
async fn prepare(
    connection: &mut Connection,
    target: &Target,
) -> Result<(String, String, String), String> {
    let answer = call(
        connection,
        target,
        json!([
            ["Identity/get", {"accountId": target.account_id}, "i"],
            ["Mailbox/get", {"accountId": target.account_id, "properties": ["role"]}, "m"],
        ]),
    )
    .await?;
    let identity = &answer["methodResponses"][0][1]["list"][0];
    let identity_id = identity["id"].as_str().ok_or("no Identity")?.to_owned();
    let from = identity["email"]
        .as_str()
        .ok_or("no Identity email")?
        .to_owned();
    let drafts = answer["methodResponses"][1][1]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|mailbox| mailbox["role"] == "drafts")
        .and_then(|mailbox| mailbox["id"].as_str())
        .ok_or("no Drafts mailbox")?
        .to_owned();
    let answer = call(
        connection,
        target,
        json!([["Email/set", {"accountId": target.account_id, "create": {"d": {
            "mailboxIds": {drafts: true}, "keywords": {"$draft": true},
            "from": [{"email": from}], "to": [{"email": "bench@sink.example"}],
            "subject": "bench submission",
            "bodyValues": {"t": {"value": "A short message, about the size of a real one.\n".repeat(40)}},
            "textBody": [{"partId": "t", "type": "text/plain"}]}}}, "d"]]),
    )
    .await?;
    let email_id = answer["methodResponses"][0][1]["created"]["d"]["id"]
        .as_str()
        .ok_or_else(|| format!("draft not created: {}", answer["methodResponses"][0][1]))?
        .to_owned();
    Ok((identity_id, email_id, from))
}

/// The sink's arrivals; one sink per process, shared by the runs (the server may keep its
/// connections to it open between runs).
static SINK: OnceCell<Mutex<mpsc::Receiver<Vec<String>>>> = OnceCell::const_new();

async fn sink(address: SocketAddr) -> Result<&'static Mutex<mpsc::Receiver<Vec<String>>>, String> {
    SINK.get_or_try_init(|| async { start_sink(address).await.map(Mutex::new) })
        .await
}

/// A minimal SMTP server that accepts everything and reports, for each message, its RCPT TO
/// addresses once the end of DATA arrived.
async fn start_sink(address: SocketAddr) -> Result<mpsc::Receiver<Vec<String>>, String> {
    if !address.ip().is_loopback() {
        return Err(format!("{address}: the sink only listens on loopback"));
    }
    let listener = TcpListener::bind(address)
        .await
        .map_err(|error| format!("sink bind {address}: {error}"))?;
    let (sender, receiver) = mpsc::channel(1024);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let _ = sink_session(stream, sender).await;
            });
        }
    });
    Ok(receiver)
}

async fn sink_session(
    stream: TcpStream,
    arrivals: mpsc::Sender<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 bench sink ESMTP\r\n").await?;
    let mut recipients = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match command.as_str() {
            "EHLO" => b"250-bench sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "MAIL" | "NOOP" => b"250 2.0.0 ok\r\n",
            "RSET" => {
                recipients.clear();
                b"250 2.0.0 ok\r\n"
            }
            "RCPT" => {
                let address = line
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(address, _)| address.to_owned())
                    .unwrap_or_default();
                recipients.push(address);
                b"250 2.1.5 ok\r\n"
            }
            "DATA" => {
                writer.write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                }
                let _ = arrivals.send(std::mem::take(&mut recipients)).await;
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                writer.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 not here\r\n",
        };
        writer.write_all(reply).await?;
    }
}
