//! A small SMTP server for the tests: answers every command with what the test scripts
//! (per RCPT address, or for the end of data), records what it accepted, and can hang after
//! accepting DATA (to kill the sender mid-send).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the peer answers.
#[derive(Clone, Default)]
pub struct Script {
    /// `(address substring, reply)` for RCPT TO; unmatched addresses get `250 2.1.5 ok`.
    pub rcpt: Vec<(String, String)>,
    /// The reply to the end of data; `None`: `250 2.0.0 queued`.
    pub data: Option<String>,
    /// Offer PIPELINING.
    pub pipelining: bool,
    /// Never answer the end of data of a message to a recipient containing this.
    pub hang_for: Option<String>,
    /// Wait this long before answering the end of data (a slow server, a big message).
    pub data_delay: Option<Duration>,
    /// Close the connection right after answering the end of data (a server that keeps no
    /// idle sessions).
    pub close_after_data: bool,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Clone)]
pub struct Peer {
    pub port: u16,
    script: Arc<Mutex<Script>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Every RCPT TO seen (accepted or not), to count attempts.
    pub rcpt_seen: Arc<Mutex<Vec<String>>>,
    /// Connections accepted, and RSET commands received (session reuse).
    pub connections: Arc<AtomicUsize>,
    pub resets: Arc<AtomicUsize>,
    /// QUIT commands received (sessions the sender closed).
    pub quits: Arc<AtomicUsize>,
}

impl Peer {
    pub async fn start(script: Script) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let peer = Peer {
            port,
            script: Arc::new(Mutex::new(script)),
            received: Arc::default(),
            rcpt_seen: Arc::default(),
            connections: Arc::default(),
            resets: Arc::default(),
            quits: Arc::default(),
        };
        let serving = peer.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let peer = serving.clone();
                tokio::spawn(async move {
                    let _ = peer.session(stream).await;
                });
            }
        });
        peer
    }

    pub fn set_script(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` messages arrived (at most `timeout`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count || tokio::time::Instant::now() > deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn session(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 peer.test ESMTP\r\n").await?;
        let mut mail_from = String::new();
        let mut recipients = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            let script = self.script.lock().unwrap().clone();
            if upper.starts_with("EHLO") {
                let extensions = if script.pipelining {
                    "250-peer.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                } else {
                    "250-peer.test\r\n250 8BITMIME\r\n"
                };
                write.write_all(extensions.as_bytes()).await?;
            } else if upper.starts_with("HELO") {
                write.write_all(b"250 peer.test\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                mail_from = address_of(&command);
                recipients.clear();
                write.write_all(b"250 2.1.0 ok\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                let address = address_of(&command);
                self.rcpt_seen.lock().unwrap().push(address.clone());
                let reply = script
                    .rcpt
                    .iter()
                    .find(|(pattern, _)| address.contains(pattern.as_str()))
                    .map(|(_, reply)| reply.clone())
                    .unwrap_or_else(|| "250 2.1.5 ok".to_owned());
                if reply.starts_with('2') {
                    recipients.push(address);
                }
                write.write_all(format!("{reply}\r\n").as_bytes()).await?;
            } else if upper == "DATA" {
                if recipients.is_empty() {
                    write
                        .write_all(b"554 5.5.1 no valid recipients\r\n")
                        .await?;
                    continue;
                }
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.extend_from_slice(unstuffed.as_bytes());
                }
                let reply = script
                    .data
                    .clone()
                    .unwrap_or_else(|| "250 2.0.0 queued".to_owned());
                let hang = script
                    .hang_for
                    .as_deref()
                    .is_some_and(|pattern| recipients.iter().any(|r| r.contains(pattern)));
                if reply == "HANG" || hang {
                    // Keeps the connection open without an answer.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return Ok(());
                }
                if let Some(delay) = script.data_delay {
                    tokio::time::sleep(delay).await;
                }
                if reply.starts_with('2') {
                    self.received.lock().unwrap().push(Received {
                        mail_from: mail_from.clone(),
                        recipients: std::mem::take(&mut recipients),
                        data,
                    });
                }
                write.write_all(format!("{reply}\r\n").as_bytes()).await?;
                if script.close_after_data {
                    return Ok(());
                }
            } else if upper == "QUIT" {
                self.quits.fetch_add(1, Ordering::SeqCst);
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            } else if upper == "RSET" {
                self.resets.fetch_add(1, Ordering::SeqCst);
                recipients.clear();
                write.write_all(b"250 2.0.0 ok\r\n").await?;
            } else if upper == "NOOP" {
                write.write_all(b"250 2.0.0 ok\r\n").await?;
            } else {
                write.write_all(b"502 5.5.2 not implemented\r\n").await?;
            }
        }
    }
}

fn address_of(command: &str) -> String {
    let start = command.find('<').map_or(0, |at| at + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |at| start + at);
    command[start..end].to_owned()
}
