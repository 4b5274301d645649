//! Mail scenarios of the bench tool (RFC 8621), against any JMAP server:
//! - `mail-populate`: fills the account with `--messages N` messages (default 100,000) of
//!   about `--message-size` bytes in 20 mailboxes, with realistic threads (a third are
//!   replies to a recent message) and keywords (70% `$seen`), over `--connections C`
//!   connections (upload, then Email/import in batches of 50). Prints the rate and the raw
//!   bytes stored, for the store-overhead figure. `--corpus realistic` draws the messages from
//!   `corpus.rs` instead (large vocabulary, varied headers, HTML, incompressible attachments;
//!   their sizes vary, `--message-size` is ignored).
//! - `mail-import`: `--requests N` sequential upload + Email/import of one `--message-size`
//!   message each (durable, one at a time): messages/s and latency.
//! - `mail-query`: on a populated account, `--requests N` times each: Email/query inMailbox,
//!   inMailbox + notKeyword $seen, inMailbox + collapseThreads (receivedAt descending, limit
//!   50), Email/get of 50 Emails with the list properties, Mailbox/get of every Mailbox with
//!   counts. Percentiles per operation.

use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{
    Connection, MAX_DURATION, Options, Percentiles, RunFigures, Samples, Target, build_request,
};

mod corpus;

/// Which messages `mail-populate` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corpus {
    /// About `--message-size` bytes of text from 25 words (LZ4 shrinks it to 0.44 ×).
    Words,
    /// `corpus.rs`: what real mail looks like to the store.
    Realistic,
}

impl Corpus {
    pub fn parse(name: &str) -> Result<Corpus, String> {
        match name {
            "words" => Ok(Corpus::Words),
            "realistic" => Ok(Corpus::Realistic),
            other => Err(format!("--corpus: words or realistic, not {other}")),
        }
    }
}

const MAIL_USING: [&str; 2] = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"];
const MAILBOX_COUNT: usize = 20;
const IMPORT_BATCH: usize = 50;

pub(crate) async fn call(
    connection: &mut Connection,
    target: &Target,
    calls: Value,
) -> Result<Value, String> {
    call_using(connection, target, &MAIL_USING, calls).await
}

/// One API request with these capabilities; an HTTP or method error, or an object the
/// server refused (`notCreated`, `notUpdated`, `notDestroyed`), is an `Err`: a refusal must
/// never count as work done.
pub(crate) async fn call_using(
    connection: &mut Connection,
    target: &Target,
    using: &[&str],
    calls: Value,
) -> Result<Value, String> {
    let response = call_counting_refusals(connection, target, using, calls).await?;
    let refused = refusals(&response);
    if let Some(first) = refused.first() {
        return Err(format!(
            "the server refused {} object(s), first: {first}",
            refused.len()
        ));
    }
    Ok(response)
}

/// The refusals of every /set-like answer in `response`: `"Method id: {SetError}"` each.
pub(crate) fn refusals(response: &Value) -> Vec<String> {
    let mut refused = Vec::new();
    for invocation in response["methodResponses"].as_array().into_iter().flatten() {
        for list in ["notCreated", "notUpdated", "notDestroyed"] {
            for (id, error) in invocation[1][list].as_object().into_iter().flatten() {
                refused.push(format!("{} {id}: {error}", invocation[0]));
            }
        }
    }
    refused
}

/// Like [`call_using`], but refused objects are left for the caller to count.
pub(crate) async fn call_counting_refusals(
    connection: &mut Connection,
    target: &Target,
    using: &[&str],
    calls: Value,
) -> Result<Value, String> {
    let body = json!({"using": using, "methodCalls": calls});
    let request = build_request(
        "POST",
        &target.api,
        &target.api.path_and_query,
        &target.authorization,
        Some("application/json"),
        Bytes::from(body.to_string()),
    )?;
    let (status, body) = connection.exchange(request).await?;
    if status != 200 {
        return Err(format!(
            "API answered HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let response: Value =
        serde_json::from_slice(&body).map_err(|error| format!("response is not JSON: {error}"))?;
    for invocation in response["methodResponses"].as_array().into_iter().flatten() {
        if invocation[0] == "error" {
            return Err(format!("method error: {}", invocation[1]));
        }
    }
    Ok(response)
}

pub(crate) async fn upload(
    connection: &mut Connection,
    target: &Target,
    content: Vec<u8>,
) -> Result<String, String> {
    let request = build_request(
        "POST",
        &target.upload,
        &target.upload.path_and_query,
        &target.authorization,
        Some("message/rfc822"),
        Bytes::from(content),
    )?;
    let (status, body) = connection.exchange(request).await?;
    if status != 200 && status != 201 {
        return Err(format!("upload answered HTTP {status}"));
    }
    let answer: Value =
        serde_json::from_slice(&body).map_err(|error| format!("upload answer: {error}"))?;
    answer["blobId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "upload answer lacks blobId".to_owned())
}

/// A deterministic pseudo-random sequence (xorshift), so runs are comparable.
pub(crate) struct Sequence(pub(crate) u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

const WORDS: &[&str] = &[
    "meeting", "report", "budget", "invoice", "travel", "project", "update", "review", "launch",
    "design", "release", "customer", "support", "contract", "schedule", "quarter", "planning",
    "feedback", "proposal", "summary", "garden", "concert", "holiday", "recipe", "football",
];

fn words(sequence: &mut Sequence, count: usize) -> String {
    (0..count)
        .map(|_| WORDS[sequence.below(WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// One message of about `size` bytes; replies reference their parent.
fn message(
    sequence: &mut Sequence,
    number: u64,
    parent: Option<(u64, &str)>,
    size: usize,
) -> (Vec<u8>, String) {
    let subject = match parent {
        Some((_, subject)) => subject.to_owned(),
        None => words(sequence, 4),
    };
    let sender = sequence.below(200);
    let mut text = format!(
        "From: Sender {sender} <sender{sender}@example.net>\r\nTo: Alice <alice@example.test>\r\n\
         Subject: {}{subject}\r\nMessage-ID: <m{number}@bench.example>\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n",
        if parent.is_some() { "Re: " } else { "" }
    );
    if let Some((parent_number, _)) = parent {
        text.push_str(&format!(
            "In-Reply-To: <m{parent_number}@bench.example>\r\nReferences: <m{parent_number}@bench.example>\r\n"
        ));
    }
    text.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    while text.len() < size {
        text.push_str(&words(sequence, 12));
        text.push_str("\r\n");
    }
    (text.into_bytes(), subject)
}

pub(crate) async fn mailbox_ids(
    connection: &mut Connection,
    target: &Target,
) -> Result<Vec<(String, Option<String>)>, String> {
    let response = call(
        connection,
        target,
        json!([["Mailbox/get", {"accountId": target.account_id, "properties": ["role", "name"]}, "m"]]),
    )
    .await?;
    Ok(response["methodResponses"][0][1]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|mailbox| {
            Some((
                mailbox["id"].as_str()?.to_owned(),
                mailbox["role"].as_str().map(str::to_owned),
            ))
        })
        .collect())
}

/// The id of the account's Inbox.
pub(crate) async fn inbox_id(
    connection: &mut Connection,
    target: &Target,
) -> Result<String, String> {
    mailbox_ids(connection, target)
        .await?
        .into_iter()
        .find(|(_, role)| role.as_deref() == Some("inbox"))
        .map(|(id, _)| id)
        .ok_or_else(|| "no inbox".to_owned())
}

/// Times `requests` sends of `calls` after `warmup` untimed ones; also returns the last
/// warm-up response (`Null` without warm-up).
pub(crate) async fn time_calls(
    connection: &mut Connection,
    target: &Target,
    calls: &Value,
    warmup: u64,
    requests: u64,
) -> Result<(Percentiles, Value), String> {
    let mut warm_response = Value::Null;
    for _ in 0..warmup {
        warm_response = call(connection, target, calls.clone()).await?;
    }
    let mut samples = Samples::default();
    let deadline = Instant::now() + MAX_DURATION;
    for _ in 0..requests {
        if Instant::now() > deadline {
            break;
        }
        let started = Instant::now();
        call(connection, target, calls.clone()).await?;
        samples.push(started.elapsed());
    }
    Ok((samples.summary(), warm_response))
}

pub async fn populate(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let mut mailboxes: Vec<String> = mailbox_ids(&mut connection, target)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let missing = MAILBOX_COUNT.saturating_sub(mailboxes.len());
    if missing > 0 {
        let create: serde_json::Map<String, Value> = (0..missing)
            .map(|index| {
                (
                    format!("b{index}"),
                    json!({"name": format!("Folder {index}")}),
                )
            })
            .collect();
        call(
            &mut connection,
            target,
            json!([["Mailbox/set", {"accountId": target.account_id, "create": create}, "c"]]),
        )
        .await?;
        mailboxes = mailbox_ids(&mut connection, target)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
    }
    let inbox = inbox_id(&mut connection, target).await?;
    let total = options.messages;
    let workers = options.connections.min(16);
    let vocabulary =
        std::sync::Arc::new((options.corpus == Corpus::Realistic).then(corpus::Vocabulary::load));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let target = target.clone();
        let mailboxes = mailboxes.clone();
        let inbox = inbox.clone();
        let size = options.message_size;
        let share = total / workers as u64 + u64::from((worker as u64) < total % workers as u64);
        let vocabulary = vocabulary.clone();
        tasks.push(tokio::spawn(async move {
            let generate = Generator {
                size,
                vocabulary: vocabulary.as_ref().as_ref(),
            };
            populate_worker(target, worker as u64, share, generate, mailboxes, inbox).await
        }));
    }
    let mut tally = PopulateTally::default();
    for task in tasks {
        let worker = task.await.map_err(|error| error.to_string())??;
        tally.raw_bytes += worker.raw_bytes;
        tally.imported += worker.imported;
        tally.refused += worker.refused;
        tally.first_refusal = tally.first_refusal.or(worker.first_refusal);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Only what the server confirmed counts: a refused import is not a message stored.
    let rate = tally.imported as f64 / elapsed;
    println!(
        "  mail-populate: {} of {total} messages imported, {} refused ({:.1} MB raw sent) in \
         {elapsed:.1} s = {rate:.0} messages/s",
        tally.imported,
        tally.refused,
        tally.raw_bytes as f64 / 1e6
    );
    if let Some(first) = &tally.first_refusal {
        println!("  first refusal: {first}");
    }
    Ok(RunFigures {
        headline: rate,
        headline_unit: "messages/s",
        p50: f64::NAN,
        p99: f64::NAN,
    })
}

/// Makes the messages of one populate worker.
struct Generator<'a> {
    size: usize,
    /// The realistic corpus's words; `None`: the 25-word corpus.
    vocabulary: Option<&'a corpus::Vocabulary>,
}

impl Generator<'_> {
    fn message(
        &self,
        sequence: &mut Sequence,
        number: u64,
        parent: Option<(u64, &str)>,
    ) -> (Vec<u8>, String) {
        match self.vocabulary {
            Some(vocabulary) => corpus::message(vocabulary, sequence, number, parent),
            None => message(sequence, number, parent, self.size),
        }
    }
}

/// Imports `count` messages; answers the raw bytes sent.
async fn populate_worker(
    target: Target,
    worker: u64,
    count: u64,
    generate: Generator<'_>,
    mailboxes: Vec<String>,
    inbox: String,
) -> Result<PopulateTally, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let mut sequence =
        Sequence(0x9e37_79b9_7f4a_7c15 ^ (worker + 1).wrapping_mul(0x1234_5678_9abc));
    let mut recent: Vec<(u64, String, usize)> = Vec::new();
    let mut tally = PopulateTally::default();
    let mut done = 0;
    while done < count {
        let batch = (count - done).min(IMPORT_BATCH as u64);
        let mut emails = serde_json::Map::new();
        for index in 0..batch {
            let number = worker * 10_000_000 + done + index;
            let parent = (!recent.is_empty() && sequence.below(3) == 0)
                .then(|| recent[sequence.below(recent.len() as u64) as usize].clone());
            let (raw, subject) = generate.message(
                &mut sequence,
                number,
                parent
                    .as_ref()
                    .map(|(parent, subject, _)| (*parent, subject.as_str())),
            );
            // Half the mail is in the Inbox, the rest spread over the other mailboxes;
            // replies go where their thread is.
            let mailbox = match &parent {
                Some((_, _, mailbox)) => *mailbox,
                None if sequence.below(2) == 0 => usize::MAX,
                None => sequence.below(mailboxes.len() as u64) as usize,
            };
            let mailbox_id = mailboxes.get(mailbox).unwrap_or(&inbox).clone();
            tally.raw_bytes += raw.len() as u64;
            let blob_id = upload(&mut connection, &target, raw).await?;
            let mut keywords = serde_json::Map::new();
            if sequence.below(10) < 7 {
                keywords.insert("$seen".into(), Value::Bool(true));
            }
            if sequence.below(20) == 0 {
                keywords.insert("$flagged".into(), Value::Bool(true));
            }
            let received = 1_764_000_000 + (number % 10_000_000) as i64 * 37 + worker as i64;
            emails.insert(
                format!("i{index}"),
                json!({
                    "blobId": blob_id,
                    "mailboxIds": {mailbox_id: true},
                    "keywords": keywords,
                    "receivedAt": utc(received),
                }),
            );
            recent.push((number, subject, mailbox));
            if recent.len() > 200 {
                recent.remove(0);
            }
        }
        let answer = call_counting_refusals(
            &mut connection,
            &target,
            &MAIL_USING,
            json!([["Email/import", {"accountId": target.account_id, "emails": emails}, "i"]]),
        )
        .await?;
        let refused = refusals(&answer);
        if let Some(first) = refused.first()
            && tally.first_refusal.is_none()
        {
            tally.first_refusal = Some(first.clone());
        }
        tally.refused += refused.len() as u64;
        tally.imported += answer["methodResponses"][0][1]["created"]
            .as_object()
            .map_or(0, |created| created.len() as u64);
        done += batch;
    }
    Ok(tally)
}

/// What one populate worker did: imports the server confirmed, and the ones it refused.
#[derive(Debug, Default)]
struct PopulateTally {
    raw_bytes: u64,
    imported: u64,
    refused: u64,
    first_refusal: Option<String>,
}

fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

pub async fn import(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let inbox = inbox_id(&mut connection, target).await?;
    let mut sequence = Sequence(0x5eed);
    let mut samples = Samples::default();
    let mut import_samples = Samples::default();
    let mut import_seconds = 0.0;
    let deadline = Instant::now() + MAX_DURATION;
    let started = Instant::now();
    let base = 900_000_000 + u64::from(std::process::id()) * 100_000;
    for index in 0..options.requests {
        if Instant::now() > deadline {
            break;
        }
        let (raw, _) = message(&mut sequence, base + index, None, options.message_size);
        let one = Instant::now();
        let blob_id = upload(&mut connection, target, raw).await?;
        let import_started = Instant::now();
        call(
            &mut connection,
            target,
            json!([["Email/import", {"accountId": target.account_id, "emails": {
                "i": {"blobId": blob_id, "mailboxIds": {inbox.clone(): true}}
            }}, "i"]]),
        )
        .await?;
        import_seconds += import_started.elapsed().as_secs_f64();
        import_samples.push(import_started.elapsed());
        samples.push(one.elapsed());
    }
    let count = samples.nanos.len();
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let import_rate = count as f64 / import_seconds.max(f64::EPSILON);
    let summary = samples.summary();
    let import_summary = import_samples.summary();
    println!(
        "  mail-import ({} B messages, sequential): upload+import {rate:.0}/s ({summary}); \
         Email/import alone {import_rate:.0}/s ({import_summary})",
        options.message_size
    );
    Ok(RunFigures {
        headline: import_rate,
        headline_unit: "Email/import/s (upload excluded)",
        p50: import_summary.p50,
        p99: import_summary.p99,
    })
}

pub async fn query(options: &Options, target: &Target) -> Result<RunFigures, String> {
    let mut connection = Connection::open(target.api.address).await?;
    let inbox = inbox_id(&mut connection, target).await?;
    let account = target.account_id.clone();
    let sort = json!([{"property": "receivedAt", "isAscending": false}]);
    let operations: Vec<(&str, Value)> = vec![
        (
            "Email/query inMailbox",
            json!([["Email/query", {"accountId": account, "filter": {"inMailbox": inbox}, "sort": sort, "limit": 50}, "q"]]),
        ),
        (
            "Email/query unread",
            json!([["Email/query", {"accountId": account, "filter": {"operator": "AND", "conditions": [{"inMailbox": inbox}, {"notKeyword": "$seen"}]}, "sort": sort, "limit": 50}, "q"]]),
        ),
        (
            "Email/query collapseThreads",
            json!([["Email/query", {"accountId": account, "filter": {"inMailbox": inbox}, "sort": sort, "collapseThreads": true, "limit": 50}, "q"]]),
        ),
        (
            "Email/get 50 list properties",
            json!([
            ["Email/query", {"accountId": account, "filter": {"inMailbox": inbox}, "sort": sort, "limit": 50}, "q"],
            ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
             "properties": ["id", "threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt", "size", "preview", "hasAttachment"]}, "g"]]),
        ),
        (
            "Mailbox/get all with counts",
            json!([["Mailbox/get", {"accountId": account}, "m"]]),
        ),
    ];
    let mut headline = f64::NAN;
    let mut worst_p99 = 0.0f64;
    for (name, calls) in operations {
        let (summary, _) = time_calls(
            &mut connection,
            target,
            &calls,
            options.warmup.min(50),
            options.requests,
        )
        .await?;
        println!("  {name}: {summary}");
        if headline.is_nan() {
            headline = summary.p50;
        }
        worst_p99 = worst_p99.max(summary.p99);
    }
    Ok(RunFigures {
        headline,
        headline_unit: "ms p50 (inMailbox)",
        p50: headline,
        p99: worst_p99,
    })
}
