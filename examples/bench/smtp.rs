//! SMTP ingress scenarios, against any SMTP server (`--smtp ADDR`, recipient `--user`):
//! - `smtp-ingress`: `--connections` sessions (16 by default in BENCHMARKS.md; spread over
//!   the addresses of `--smtp A,B,C`, e.g. a cluster's nodes) each send
//!   messages of `--message-size` bytes back to back (MAIL/RCPT/DATA pipelined, sessions kept
//!   open) until `--messages` were accepted in all; reports accepted messages/s, the latency
//!   from sending a message to its `250` (p50/p99), and the delivered rate: the time from the
//!   first message until the recipient's Mailboxes (JMAP Mailbox/get, `totalEmails` summed,
//!   polled every 10 ms) hold them all. The headline is the delivered rate.
//! - `smtp-idle`: opens `--connections` sessions, says EHLO on each and leaves them idle;
//!   reports the server's RSS growth per session (`--server-pid`), in KB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use serde_json::json;

use super::{Connection, Options, RunFigures, Samples, Target};

/// A line-oriented SMTP client session (also used by `smtp-push-latency`).
pub(crate) struct Session {
    reader: BufReader<TcpStream>,
}

impl Session {
    pub(crate) async fn open(address: std::net::SocketAddr) -> Result<Session, String> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|error| format!("SMTP connect {address}: {error}"))?;
        stream
            .set_nodelay(true)
            .map_err(|error| error.to_string())?;
        let mut session = Session {
            reader: BufReader::new(stream),
        };
        session.reply(220).await?;
        session.write(b"EHLO bench.example\r\n").await?;
        session.reply(250).await?;
        Ok(session)
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.reader
            .get_mut()
            .write_all(bytes)
            .await
            .map_err(|error| error.to_string())
    }

    pub(crate) async fn reply(&mut self, code: u16) -> Result<(), String> {
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(60), self.reader.read_line(&mut line))
                    .await
                    .map_err(|_| "SMTP reply timed out".to_owned())?
                    .map_err(|error| error.to_string())?;
            if read == 0 {
                return Err("SMTP connection closed".to_owned());
            }
            if !line.starts_with(&code.to_string()) {
                return Err(format!("expected {code}, got {line:?}"));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
}

/// A message of about `size` bytes in lines of 78 characters, unique per (run, session,
/// number) so that duplicate suppression never drops one.
fn message(recipient: &str, run: u64, session: usize, number: u64, size: usize) -> Vec<u8> {
    let mut text = format!(
        "MAIL FROM:<bench@remote.example>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n\
         From: bench@remote.example\r\nTo: {recipient}\r\nSubject: ingress {session}-{number}\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <ingress-{run:016x}-{session}-{number}@remote.example>\r\n\r\n"
    );
    let line = "The quick brown fox jumps over the lazy dog; SMTP ingress bench filler text.\r\n";
    while text.len() < size {
        text.push_str(line);
    }
    text.push_str(".\r\n");
    text.into_bytes()
}

/// The Emails in the account: `totalEmails` summed over its Mailboxes (each delivered
/// message is in exactly one, Inbox or Junk).
async fn emails_in_account(connection: &mut Connection, target: &Target) -> Result<u64, String> {
    let response = super::mail::call(
        connection,
        target,
        json!([["Mailbox/get", {"accountId": target.account_id, "properties": ["totalEmails"]}, "m"]]),
    )
    .await?;
    let list = response["methodResponses"][0][1]["list"]
        .as_array()
        .ok_or("Mailbox/get answered no list")?;
    Ok(list
        .iter()
        .map(|mailbox| mailbox["totalEmails"].as_u64().unwrap_or(0))
        .sum())
}

/// Polls until the account holds `expected` Emails; answers when (since `started`) it did.
async fn wait_for_delivery(
    target: Target,
    expected: u64,
    started: Instant,
) -> Result<Duration, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let deadline = started + super::MAX_DURATION;
    loop {
        if emails_in_account(&mut connection, &target).await? >= expected {
            return Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "fewer than {expected} Emails after {:?}",
                super::MAX_DURATION
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn ingress(options: &Options, target: &Target) -> Result<RunFigures, String> {
    options.smtp.ok_or("smtp-ingress needs --smtp ADDR")?;
    let addresses = options.smtp_spread.clone();
    let recipient = options
        .user
        .clone()
        .ok_or("smtp-ingress needs --user (the recipient)")?;
    let total = options.messages;
    let claimed = Arc::new(AtomicU64::new(0));
    let run: u64 = rand::random();
    let before = {
        let mut connection = Connection::open(target.api.address).await?;
        emails_in_account(&mut connection, target).await?
    };
    let started = Instant::now();
    let delivered = tokio::spawn(wait_for_delivery(target.clone(), before + total, started));
    let mut sessions = Vec::new();
    for index in 0..options.connections {
        let claimed = Arc::clone(&claimed);
        let recipient = recipient.clone();
        let size = options.message_size;
        // Session i goes to address i mod n (`--smtp A,B,C`: the nodes of a cluster).
        let address = addresses[index % addresses.len()];
        sessions.push(tokio::spawn(async move {
            let mut session = Session::open(address).await?;
            let mut samples = Samples::default();
            loop {
                let number = claimed.fetch_add(1, Ordering::Relaxed);
                if number >= total {
                    break;
                }
                let bytes = message(&recipient, run, index, number, size);
                let sent = Instant::now();
                session.write(&bytes).await?;
                session.reply(250).await?;
                session.reply(250).await?;
                session.reply(354).await?;
                session.reply(250).await?;
                samples.push(sent.elapsed());
            }
            session.write(b"QUIT\r\n").await?;
            Ok::<Samples, String>(samples)
        }));
    }
    let mut all = Samples::default();
    for session in sessions {
        let samples = session.await.map_err(|error| error.to_string())??;
        all.nanos.extend(samples.nanos);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = all.nanos.len();
    let summary = all.summary();
    let rate = accepted as f64 / elapsed;
    let delivered_after = delivered
        .await
        .map_err(|error| error.to_string())??
        .as_secs_f64();
    let delivered_rate = accepted as f64 / delivered_after;
    println!(
        "smtp-ingress: {accepted} messages of {} bytes over {} sessions: accepted in {elapsed:.2} s \
         ({rate:.0} messages/s), delivered in {delivered_after:.2} s ({delivered_rate:.0} messages/s); \
         250 latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        options.message_size, options.connections, summary.p50, summary.p99, summary.max
    );
    Ok(RunFigures {
        headline: delivered_rate,
        headline_unit: "messages/s accepted and delivered",
        p50: summary.p50,
        p99: summary.p99,
    })
}

pub async fn idle(options: &Options) -> Result<RunFigures, String> {
    let address = options.smtp.ok_or("smtp-idle needs --smtp ADDR")?;
    let pid = options.server_pid.ok_or("smtp-idle needs --server-pid")?;
    let before = super::process::read_rss(pid)?.0;
    let mut sessions = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        sessions.push(Session::open(address).await?);
    }
    // Let the server settle (allocator, task wake-ups) before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = super::process::read_rss(pid)?.0;
    // /proc reports kB.
    let per_session_kb = after.saturating_sub(before) as f64 / sessions.len() as f64;
    println!(
        "smtp-idle: {} idle sessions: server RSS {:.1} MB → {:.1} MB, {per_session_kb:.1} KB per session",
        sessions.len(),
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    drop(sessions);
    Ok(RunFigures {
        headline: per_session_kb,
        headline_unit: "KB per idle session",
        p50: f64::NAN,
        p99: f64::NAN,
    })
}
