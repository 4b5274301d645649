//! A client of SpamAssassin's spamd (the SPAMC/1.5 protocol over TCP): one `SYMBOLS` request per
//! message, answered with the verdict (`Spam: True ; 15.0 / 5.0`) and the rule names.
//!
//! Protocol (spamd's `spamd/PROTOCOL`): the request is `SYMBOLS SPAMC/1.5`, headers
//! (`Content-length` is required), a blank line and the message; the response is
//! `SPAMD/1.x 0 EX_OK`, headers including `Spam:`, a blank line and the symbols, then spamd
//! closes the connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq)]
pub struct SpamdClient {
    /// `HOST:PORT`.
    pub address: String,
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// spamd's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamdVerdict {
    pub is_spam: bool,
    pub score: f64,
    pub threshold: f64,
    pub symbols: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("spamd: {message}")]
pub struct SpamdError {
    pub kind: SpamdErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpamdErrorKind {
    /// Connecting, writing or reading failed, or it took longer than the timeout.
    Unavailable,
    /// spamd answered something that is not the protocol, or an error code.
    Protocol,
    /// The message is over `max_bytes` and was not sent.
    TooLarge,
}

fn error(kind: SpamdErrorKind, message: impl Into<String>) -> SpamdError {
    SpamdError {
        kind,
        message: message.into(),
    }
}

/// The largest response read (symbols lists are short).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

impl SpamdClient {
    pub async fn check(&self, message: &[u8]) -> Result<SpamdVerdict, SpamdError> {
        if message.len() > self.max_bytes {
            return Err(error(
                SpamdErrorKind::TooLarge,
                format!("{} bytes over the {} limit", message.len(), self.max_bytes),
            ));
        }
        match tokio::time::timeout(self.timeout, self.exchange(message)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(error(
                SpamdErrorKind::Unavailable,
                format!("no answer from {} within {:?}", self.address, self.timeout),
            )),
        }
    }

    async fn exchange(&self, message: &[u8]) -> Result<SpamdVerdict, SpamdError> {
        let unavailable = |e: std::io::Error| error(SpamdErrorKind::Unavailable, e.to_string());
        let mut stream = TcpStream::connect(&self.address)
            .await
            .map_err(unavailable)?;
        let head = format!(
            "SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\nUser: tern\r\n\r\n",
            message.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(unavailable)?;
        stream.write_all(message).await.map_err(unavailable)?;
        // Half-close: spamd then knows the request is complete, whatever it thinks of length.
        stream.shutdown().await.map_err(unavailable)?;
        let mut response = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut response)
            .await
            .map_err(unavailable)?;
        parse_response(&response)
    }
}

/// Parses a SYMBOLS response.
pub fn parse_response(response: &[u8]) -> Result<SpamdVerdict, SpamdError> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_ref(), ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut status_parts = status.split_whitespace();
    let protocol = status_parts.next().unwrap_or_default();
    let code = status_parts.next().unwrap_or_default();
    if !protocol.starts_with("SPAMD/") {
        return Err(error(
            SpamdErrorKind::Protocol,
            format!("unexpected status line {status:?}"),
        ));
    }
    if code != "0" {
        return Err(error(
            SpamdErrorKind::Protocol,
            format!("spamd error {status:?}"),
        ));
    }
    let spam_line = lines
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim().eq_ignore_ascii_case("spam").then_some(value)
        })
        .ok_or_else(|| error(SpamdErrorKind::Protocol, "no Spam: header"))?;
    // `True ; 15.0 / 5.0`
    let (flag, scores) = spam_line
        .split_once(';')
        .ok_or_else(|| error(SpamdErrorKind::Protocol, "malformed Spam: header"))?;
    let (score, threshold) = scores
        .split_once('/')
        .ok_or_else(|| error(SpamdErrorKind::Protocol, "malformed Spam: scores"))?;
    let number = |text: &str| {
        text.trim()
            .parse::<f64>()
            .map_err(|_| error(SpamdErrorKind::Protocol, "malformed Spam: score"))
    };
    let flag = flag.trim();
    Ok(SpamdVerdict {
        is_spam: flag.eq_ignore_ascii_case("true") || flag.eq_ignore_ascii_case("yes"),
        score: number(score)?,
        threshold: number(threshold)?,
        symbols: body
            .split(',')
            .map(str::trim)
            .filter(|symbol| !symbol.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_symbols_response() {
        let response =
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 19\r\nSpam: True ; 1002.3 / 5.0\r\n\r\nGTUBE,MISSING_DATE\r\n";
        let verdict = parse_response(response).unwrap();
        assert!(verdict.is_spam);
        assert_eq!(verdict.score, 1002.3);
        assert_eq!(verdict.threshold, 5.0);
        assert_eq!(verdict.symbols, vec!["GTUBE", "MISSING_DATE"]);
        let ham = parse_response(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.1 / 5.0\r\n\r\n").unwrap();
        assert!(!ham.is_spam && ham.symbols.is_empty());
    }

    #[test]
    fn errors_are_protocol_errors() {
        for bad in [
            &b"SPAMD/1.0 76 Bad header line: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\n\r\n",
            b"",
        ] {
            assert_eq!(
                parse_response(bad).unwrap_err().kind,
                SpamdErrorKind::Protocol
            );
        }
    }
}
