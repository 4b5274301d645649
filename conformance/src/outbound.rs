//! Sending conformance (RFC 8621 §7 EmailSubmission, delivery side): the runner is the
//! server's next hop. It listens on an address as a minimal SMTP server that answers each
//! recipient as the cases script it (e.g. `550 5.1.1` for one of them); the server under test
//! must relay there (Tern: `tern serve --relay ADDR`). Each case submits one Email with an
//! explicit envelope, waits until every recipient's `deliveryStatus` left `queued`, then
//! checks the statuses (delivered, smtpReply), undoStatus `final`, `dsnBlobIds` (a DSN,
//! RFC 3464, that names the failed recipients) and what the next hop received.
//!
//! The cases are data: `conformance/cases/email-submission-outbound.json`. Recipient local
//! parts in a case (`accepted`, `refused`, …) become `LOCAL-RUN@conformance-sink.example`,
//! RUN being unique per run, so the cases do not see each other's mail.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::http::expand_template;
use crate::session::Target;
use crate::{Config, Outcome, Recorder, Report};

/// The shipped cases.
pub const CASES: &str = include_str!("../cases/email-submission-outbound.json");

/// The domain of every recipient (not a domain of the server under test, so it relays).
const DOMAIN: &str = "conformance-sink.example";
/// How long a submission may take to reach a final deliveryStatus.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    section: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Recipient local parts, in envelope order.
    to: Vec<String>,
    /// Local part → the next hop's reply to its RCPT TO (others get `250 2.1.5 ok`).
    #[serde(default)]
    rcpt: BTreeMap<String, String>,
    /// The reply to the end of DATA when not `250 2.0.0 queued`.
    #[serde(default)]
    data: Option<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Local part → acceptable `delivered` values and the prefix of `smtpReply`.
    #[serde(rename = "deliveryStatus")]
    delivery_status: BTreeMap<String, ExpectedStatus>,
    /// The recipients (local parts) the next hop accepted a message for.
    received: Vec<String>,
    /// A DSN in dsnBlobIds, naming these recipients (empty: dsnBlobIds stays empty).
    #[serde(rename = "dsnFor")]
    dsn_for: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedStatus {
    delivered: Vec<String>,
    #[serde(rename = "smtpReply")]
    smtp_reply: String,
}

/// What the next hop is told to answer and what it accepted, shared by every case.
#[derive(Default)]
struct Sink {
    rcpt: Mutex<BTreeMap<String, String>>,
    data: Mutex<BTreeMap<String, String>>,
    /// The recipients of each accepted message.
    accepted: Mutex<Vec<Vec<String>>>,
}

/// Runs the sending cases against the server of `config`, which relays to `sink`.
pub async fn run(config: &Config, sink: SocketAddr) -> Report {
    let mut recorder = Recorder::new(config);
    let file: CaseFile = match serde_json::from_str(CASES) {
        Ok(file) => file,
        Err(error) => {
            recorder.record(
                "RFC 8621 §7 EmailSubmission delivery",
                "email-submission-outbound.json parses",
                Outcome::Fail(error.to_string()),
            );
            return recorder.report;
        }
    };
    let section = file.section.clone();
    if !recorder.wants(&section) {
        return recorder.report;
    }
    let target = match Target::connect(config).await {
        Ok(target) => target,
        Err(reason) => {
            recorder.record(
                &section,
                "fetch the session resource",
                Outcome::Fail(reason),
            );
            return recorder.report;
        }
    };
    let state = Arc::new(Sink::default());
    let listener = match TcpListener::bind(sink).await {
        Ok(listener) => listener,
        Err(error) => {
            recorder.record(
                &section,
                format!("listen on {sink} as the next hop"),
                Outcome::Fail(error.to_string()),
            );
            return recorder.report;
        }
    };
    let serving = tokio::spawn(serve(listener, Arc::clone(&state)));
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_micros())
    );
    for (index, case) in file.cases.iter().enumerate() {
        let address = |local: &str| format!("{local}-{run_id}-{index}@{DOMAIN}");
        {
            let mut rcpt = state.rcpt.lock().unwrap_or_else(|p| p.into_inner());
            for (local, reply) in &case.rcpt {
                rcpt.insert(address(local), reply.clone());
            }
            if let Some(reply) = &case.data {
                let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
                for local in &case.to {
                    data.insert(address(local), reply.clone());
                }
            }
        }
        let result = run_case(&target, &state, case, &address).await;
        recorder.check(&section, case.name.clone(), result);
    }
    serving.abort();
    recorder.report
}

async fn call(target: &Target, calls: Value) -> Result<Value, String> {
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail",
                  "urn:ietf:params:jmap:submission"],
        "methodCalls": calls,
    });
    let answer = target
        .http
        .post_json(&target.api_url, &target.auth, &body)
        .await?;
    if answer.status != 200 {
        return Err(format!("API answered HTTP {}", answer.status));
    }
    let value = answer.json()?;
    if let Some(error) = value["methodResponses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|response| response[0] == "error")
    {
        return Err(format!("method error: {}", error[1]));
    }
    Ok(value)
}

async fn run_case(
    target: &Target,
    sink: &Sink,
    case: &Case,
    address: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    let account = target.account_id.clone();
    let me = target.config.credentials.user.clone();
    let recipients: Vec<String> = case.to.iter().map(|local| address(local)).collect();
    let drafts = call(
        target,
        json!([["Mailbox/query", {"accountId": account, "filter": {"role": "drafts"}}, "q"]]),
    )
    .await?;
    let drafts = drafts["methodResponses"][0][1]["ids"][0]
        .as_str()
        .ok_or("the account has no Drafts mailbox")?
        .to_owned();
    let created = call(
        target,
        json!([
            ["Identity/set", {"accountId": account, "create": {"me": {"name": "Conformance sender", "email": me}}}, "c1"],
            ["Email/set", {"accountId": account, "create": {"draft": {
                "mailboxIds": {drafts: true},
                "from": [{"email": me}],
                "to": recipients.iter().map(|email| json!({"email": email})).collect::<Vec<_>>(),
                "subject": format!("Conformance delivery: {}", case.name),
                "bodyValues": {"t": {"value": "Sent by the conformance runner."}},
                "textBody": [{"partId": "t", "type": "text/plain"}]}}}, "c2"],
        ]),
    )
    .await?;
    let identity = created["methodResponses"][0][1]["created"]["me"]["id"]
        .as_str()
        .ok_or_else(|| format!("Identity/set: {}", created["methodResponses"][0][1]))?
        .to_owned();
    let email = created["methodResponses"][1][1]["created"]["draft"]["id"]
        .as_str()
        .ok_or_else(|| format!("Email/set: {}", created["methodResponses"][1][1]))?
        .to_owned();
    let sent = call(
        target,
        json!([["EmailSubmission/set", {"accountId": account, "create": {"send": {
            "identityId": identity, "emailId": email,
            "envelope": {"mailFrom": {"email": me, "parameters": null},
                         "rcptTo": recipients.iter().map(|email| json!({"email": email, "parameters": null})).collect::<Vec<_>>()}}}}, "s"]]),
    )
    .await?;
    let submission = sent["methodResponses"][0][1]["created"]["send"]["id"]
        .as_str()
        .ok_or_else(|| format!("EmailSubmission/set: {}", sent["methodResponses"][0][1]))?
        .to_owned();

    // Wait until no recipient is queued any more and, when a bounce is expected, until its
    // DSN is listed: a server may record the DSN after the final status (RFC 8621 §7 lists
    // the DSNs received for a submission, which in general arrive later).
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let record = loop {
        let got = call(
            target,
            json!([["EmailSubmission/get", {"accountId": account, "ids": [submission]}, "g"]]),
        )
        .await?;
        let record = got["methodResponses"][0][1]["list"][0].clone();
        let settled = record["deliveryStatus"]
            .as_object()
            .is_some_and(|statuses| {
                statuses.len() == recipients.len()
                    && statuses
                        .values()
                        .all(|status| status["delivered"] != "queued")
            });
        let dsn_listed = case.expect.dsn_for.is_empty()
            || record["dsnBlobIds"]
                .as_array()
                .is_some_and(|ids| !ids.is_empty());
        if settled && dsn_listed {
            break record;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not settled after {SETTLE_TIMEOUT:?}: deliveryStatus {}, dsnBlobIds {}",
                record["deliveryStatus"], record["dsnBlobIds"]
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let check = || -> Result<(), String> {
        if record["undoStatus"] != "final" {
            return Err(format!(
                "undoStatus {} (expected final)",
                record["undoStatus"]
            ));
        }
        for (local, expected) in &case.expect.delivery_status {
            let status = record["deliveryStatus"]
                .as_object()
                .and_then(|statuses| {
                    statuses
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(&address(local)))
                })
                .map(|(_, status)| status)
                .ok_or_else(|| format!("no deliveryStatus for {local}"))?;
            let delivered = status["delivered"].as_str().unwrap_or_default();
            if !expected.delivered.iter().any(|value| value == delivered) {
                return Err(format!(
                    "{local}: delivered {delivered:?}, expected one of {:?}",
                    expected.delivered
                ));
            }
            let reply = status["smtpReply"].as_str().unwrap_or_default();
            if !reply.starts_with(&expected.smtp_reply) {
                return Err(format!(
                    "{local}: smtpReply {reply:?} does not start with {:?}",
                    expected.smtp_reply
                ));
            }
        }
        Ok(())
    };
    check()?;

    let expected: BTreeSet<String> = case.expect.received.iter().map(|l| address(l)).collect();
    let received: BTreeSet<String> = sink
        .accepted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .flatten()
        .filter(|rcpt| {
            recipients
                .iter()
                .any(|ours| ours.eq_ignore_ascii_case(rcpt))
        })
        .cloned()
        .collect();
    if received != expected {
        return Err(format!(
            "the next hop accepted mail for {received:?}, expected {expected:?}"
        ));
    }

    let dsn_ids: Vec<String> = record["dsnBlobIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    if case.expect.dsn_for.is_empty() {
        if !dsn_ids.is_empty() {
            return Err(format!("unexpected dsnBlobIds {dsn_ids:?}"));
        }
    } else {
        let blob = dsn_ids
            .first()
            .ok_or("no DSN in dsnBlobIds for a failed recipient")?;
        let url = expand_template(
            &target.download_url,
            &[
                ("accountId", &account),
                ("blobId", blob),
                ("name", "dsn.eml"),
                ("type", "message/rfc822"),
            ],
        );
        let answer = target.http.get(&url, &target.auth).await?;
        if answer.status != 200 {
            return Err(format!("downloading the DSN: HTTP {}", answer.status));
        }
        let text = String::from_utf8_lossy(&answer.body).to_ascii_lowercase();
        if !text.contains("multipart/report") || !text.contains("message/delivery-status") {
            return Err("the DSN is not an RFC 3464 multipart/report".to_owned());
        }
        for local in &case.expect.dsn_for {
            let final_recipient = format!("rfc822; {}", address(local)).to_ascii_lowercase();
            if !text.contains(&final_recipient) {
                return Err(format!("the DSN does not name {local} (Final-Recipient)"));
            }
        }
        for local in &case.to {
            if !case.expect.dsn_for.contains(local)
                && text.contains(
                    &format!("final-recipient: rfc822; {}", address(local)).to_ascii_lowercase(),
                )
            {
                return Err(format!("the DSN names {local}, which did not fail"));
            }
        }
    }
    // Leave nothing behind but the sent mail and its reports.
    let _ = call(
        target,
        json!([
            ["EmailSubmission/set", {"accountId": account, "destroy": [submission]}, "d1"],
            ["Email/set", {"accountId": account, "destroy": [email]}, "d2"],
            ["Identity/set", {"accountId": account, "destroy": [identity]}, "d3"],
        ]),
    )
    .await;
    Ok(())
}

/// The next hop: EHLO with PIPELINING, each RCPT answered as scripted, the end of DATA too.
async fn serve(listener: TcpListener, sink: Arc<Sink>) {
    while let Ok((stream, _)) = listener.accept().await {
        let sink = Arc::clone(&sink);
        tokio::spawn(async move {
            let _ = session(stream, &sink).await;
        });
    }
}

async fn session(stream: tokio::net::TcpStream, sink: &Sink) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 conformance-sink ESMTP\r\n").await?;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-conformance-sink\r\n250-PIPELINING\r\n250 8BITMIME".to_owned()
        } else if upper.starts_with("HELO") {
            "250 conformance-sink".to_owned()
        } else if upper.starts_with("MAIL FROM:") || upper == "RSET" || upper == "NOOP" {
            recipients.clear();
            "250 2.0.0 ok".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            let start = command.find('<').map_or(0, |at| at + 1);
            let end = command[start..]
                .find('>')
                .map_or(command.len(), |at| start + at);
            let address = command[start..end].to_ascii_lowercase();
            let scripted = sink
                .rcpt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&address)
                .cloned();
            let reply = scripted.unwrap_or_else(|| "250 2.1.5 ok".to_owned());
            if reply.starts_with('2') {
                recipients.push(address);
            }
            reply
        } else if upper == "DATA" {
            if recipients.is_empty() {
                "554 5.5.1 no valid recipients".to_owned()
            } else {
                write.write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                let scripted = {
                    let data = sink.data.lock().unwrap_or_else(|p| p.into_inner());
                    recipients.iter().find_map(|rcpt| data.get(rcpt).cloned())
                };
                let reply = scripted.unwrap_or_else(|| "250 2.0.0 queued".to_owned());
                if reply.starts_with('2') {
                    sink.accepted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(std::mem::take(&mut recipients));
                }
                recipients.clear();
                reply
            }
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 not implemented".to_owned()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}
