//! SMTP conformance: C:/S: transcripts (`conformance/cases/smtp-*.json`) replayed against any
//! SMTP server by address. A case is a list of steps: `{"c": "line"}` sends the line (CRLF
//! added; `{"c": "…", "raw": true}` sends it as is, for DATA content), `{"s": "250"}` reads
//! one (possibly multi-line) reply and checks that it starts with the given prefix (a code,
//! or a code and an enhanced status code); `{"s": "250", "contains": "PIPELINING"}` also
//! checks the text. Every case opens a fresh connection and reads the `220` greeting first.
//! Placeholders: `{rcpt}` is the local recipient given to the runner, `{domain}` its domain.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The cases shipped with the runner: (file name, JSON).
pub const CASES: &[(&str, &str)] = &[
    (
        "smtp-session.json",
        include_str!("../cases/smtp-session.json"),
    ),
    (
        "smtp-policy.json",
        include_str!("../cases/smtp-policy.json"),
    ),
];

#[derive(Debug, Deserialize)]
struct Case {
    section: String,
    name: String,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
struct Step {
    c: Option<String>,
    #[serde(default)]
    raw: bool,
    s: Option<String>,
    contains: Option<String>,
}

/// The outcome of one transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpOutcome {
    pub section: String,
    pub name: String,
    /// `None`: passed; otherwise what went wrong.
    pub failure: Option<String>,
}

/// Runs every shipped case against `address`, delivering to `recipient` where one is needed.
pub async fn run(address: SocketAddr, recipient: &str) -> Result<Vec<SmtpOutcome>, String> {
    let mut outcomes = Vec::new();
    for (file, json) in CASES {
        let cases: Vec<Case> =
            serde_json::from_str(json).map_err(|error| format!("{file}: {error}"))?;
        for case in cases {
            let failure = run_case(address, recipient, &case).await.err();
            outcomes.push(SmtpOutcome {
                section: case.section,
                name: case.name,
                failure,
            });
        }
    }
    Ok(outcomes)
}

async fn read_reply(reader: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .map_err(|_| "no reply within 10 s".to_owned())?
            .map_err(|error| error.to_string())?;
        if read == 0 {
            return Err(format!("connection closed after {lines:?}"));
        }
        let line = line.trim_end().to_owned();
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if last {
            return Ok(lines.join("\n"));
        }
    }
}

async fn run_case(address: SocketAddr, recipient: &str, case: &Case) -> Result<(), String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let mut reader = BufReader::new(stream);
    let greeting = read_reply(&mut reader).await?;
    if !greeting.starts_with("220") {
        return Err(format!("greeting {greeting:?}"));
    }
    for (index, step) in case.steps.iter().enumerate() {
        if let Some(line) = &step.c {
            let domain = recipient.rsplit_once('@').map_or("", |(_, domain)| domain);
            let line = line
                .replace("{rcpt}", recipient)
                .replace("{domain}", domain);
            let bytes = if step.raw {
                line.replace("\\r\\n", "\r\n")
            } else {
                format!("{line}\r\n")
            };
            reader
                .get_mut()
                .write_all(bytes.as_bytes())
                .await
                .map_err(|error| format!("step {index}: write: {error}"))?;
        }
        if let Some(expected) = &step.s {
            let reply = read_reply(&mut reader)
                .await
                .map_err(|error| format!("step {index}: {error}"))?;
            if !reply.starts_with(expected.as_str()) {
                return Err(format!(
                    "step {index}: expected {expected:?}, got {reply:?}"
                ));
            }
            if let Some(text) = &step.contains
                && !reply.contains(text.as_str())
            {
                return Err(format!("step {index}: {text:?} not in {reply:?}"));
            }
        }
    }
    Ok(())
}
