//! Virus scanning through ClamAV's clamd, when `[antivirus] clamd` is configured
//! (`HOST:PORT`, or the path of clamd's unix socket).
//!
//! Protocol (clamd(8), INSTREAM): send `zINSTREAM\0`, then the message as chunks, each a
//! 4-byte big-endian length and that many bytes, then a zero length; clamd answers one
//! NUL-terminated line: `stream: OK`, `stream: <name> FOUND` or `<reason> ERROR`.
//!
//! Two callers: the SMTP session scans at DATA, before the `250`, so that infected mail is
//! refused with `554 5.7.1` when `action = "reject"`; the delivery actor scans what was not
//! scanned there (a local hand-over, `action = "quarantine"`, or clamd unavailable at DATA) and
//! quarantines infected mail, since it can no longer refuse it. A message scanned clean at DATA
//! carries a marker (`delivery::prepared::mark_scanned`, in its enqueue transaction), so it is
//! scanned once.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `[antivirus]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AntivirusConfig {
    /// `HOST:PORT` or a unix socket path (starting with `/`); unset: no scanning.
    pub clamd: Option<String>,
    pub action: VirusAction,
    pub timeout_ms: u64,
    /// Bytes per INSTREAM chunk (clamd's StreamMaxLength bounds the whole stream).
    pub chunk_bytes: usize,
}

impl Default for AntivirusConfig {
    fn default() -> AntivirusConfig {
        AntivirusConfig {
            clamd: None,
            action: VirusAction::Reject,
            timeout_ms: 30_000,
            chunk_bytes: 64 * 1024,
        }
    }
}

/// What happens to an infected message.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VirusAction {
    /// Refused at DATA with `554 5.7.1` (quarantined if found only after the `250`).
    #[default]
    Reject,
    /// Accepted and kept out of every mailbox (`QUEUE_DELIVERY_QUARANTINE`).
    Quarantine,
}

/// The result of one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The signature name clamd reported.
    Infected(String),
    /// clamd could not be reached or answered an error; the message was not scanned.
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Tcp(String),
    Unix(PathBuf),
}

/// A clamd client. Cheap to clone; one connection per scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Antivirus {
    endpoint: Endpoint,
    timeout: Duration,
    chunk_bytes: usize,
    action: VirusAction,
}

impl Antivirus {
    /// `None` when no clamd is configured.
    pub fn from_config(config: &AntivirusConfig) -> Option<Antivirus> {
        let address = config.clamd.as_ref()?;
        let endpoint = if address.starts_with('/') {
            Endpoint::Unix(PathBuf::from(address))
        } else {
            Endpoint::Tcp(address.clone())
        };
        Some(Antivirus {
            endpoint,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            chunk_bytes: config.chunk_bytes.clamp(1024, 1 << 20),
            action: config.action,
        })
    }

    pub fn action(&self) -> VirusAction {
        self.action
    }

    /// Scans `message`. Never fails: trouble with clamd is [`Verdict::Unavailable`].
    pub async fn scan(&self, message: &[u8]) -> Verdict {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.scan_inner(message)).await;
        let verdict = match outcome {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(error)) => Verdict::Unavailable(error.to_string()),
            Err(_) => Verdict::Unavailable(format!("no answer within {:?}", self.timeout)),
        };
        tracing::debug!(
            ?verdict,
            bytes = message.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "clamd scan"
        );
        verdict
    }

    async fn scan_inner(&self, message: &[u8]) -> std::io::Result<Verdict> {
        match &self.endpoint {
            Endpoint::Tcp(address) => {
                let stream = tokio::net::TcpStream::connect(address).await?;
                instream(stream, message, self.chunk_bytes).await
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await?;
                instream(stream, message, self.chunk_bytes).await
            }
            #[cfg(not(unix))]
            Endpoint::Unix(_) => Err(std::io::Error::other("unix sockets need a unix system")),
        }
    }
}

/// The scan at the end of DATA, before the `250`: with `action = "reject"` an infected message
/// is refused with `554 5.7.1` and never stored. With `quarantine` (or clamd unavailable) the
/// message is accepted and the delivery actor scans and quarantines it.
impl crate::smtp::policy::DataFilter for Antivirus {
    fn check<'a>(
        &'a self,
        message: &'a [u8],
    ) -> crate::store::BoxFuture<'a, crate::smtp::policy::DataVerdict> {
        use crate::smtp::policy::DataVerdict;
        Box::pin(async move {
            if self.action != VirusAction::Reject {
                return DataVerdict::Accept;
            }
            match self.scan(message).await {
                // RFC 3463 5.7.1: delivery not authorized, message refused.
                Verdict::Infected(name) => DataVerdict::Reject(crate::smtp::session::Reply::new(
                    554,
                    (5, 7, 1),
                    format!("message refused: virus {name} found"),
                )),
                Verdict::Clean => DataVerdict::Scanned,
                Verdict::Unavailable(_) => DataVerdict::Accept,
            }
        })
    }
}

/// The longest answer read (a line with a signature name).
const MAX_ANSWER_BYTES: u64 = 4096;

async fn instream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    message: &[u8],
    chunk_bytes: usize,
) -> std::io::Result<Verdict> {
    stream.write_all(b"zINSTREAM\0").await?;
    for chunk in message.chunks(chunk_bytes) {
        let length = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        stream.write_all(&length.to_be_bytes()).await?;
        stream.write_all(chunk).await?;
    }
    stream.write_all(&0u32.to_be_bytes()).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
        .await?;
    Ok(parse_answer(&answer))
}

/// Parses clamd's NUL- (or newline-) terminated answer.
pub fn parse_answer(answer: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(answer);
    let line = text.trim_end_matches(['\0', '\n', '\r']).trim();
    let result = line.split_once(": ").map_or(line, |(_, result)| result);
    if result == "OK" {
        Verdict::Clean
    } else if let Some(name) = result.strip_suffix(" FOUND") {
        Verdict::Infected(name.trim().to_owned())
    } else if line.is_empty() {
        Verdict::Unavailable("clamd closed without an answer".to_owned())
    } else {
        Verdict::Unavailable(format!("clamd: {line}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        assert_eq!(parse_answer(b"stream: OK\0"), Verdict::Clean);
        assert_eq!(
            parse_answer(b"stream: Eicar-Test-Signature FOUND\0"),
            Verdict::Infected("Eicar-Test-Signature".into())
        );
        assert!(matches!(
            parse_answer(b"INSTREAM size limit exceeded. ERROR\0"),
            Verdict::Unavailable(_)
        ));
        assert!(matches!(parse_answer(b""), Verdict::Unavailable(_)));
    }

    #[test]
    fn the_config_picks_tcp_or_unix() {
        assert_eq!(Antivirus::from_config(&AntivirusConfig::default()), None);
        let tcp = Antivirus::from_config(&AntivirusConfig {
            clamd: Some("127.0.0.1:3310".into()),
            ..AntivirusConfig::default()
        })
        .unwrap();
        assert_eq!(tcp.endpoint, Endpoint::Tcp("127.0.0.1:3310".into()));
        let unix = Antivirus::from_config(&AntivirusConfig {
            clamd: Some("/run/clamav/clamd.ctl".into()),
            ..AntivirusConfig::default()
        })
        .unwrap();
        assert!(matches!(unix.endpoint, Endpoint::Unix(_)));
    }
}
