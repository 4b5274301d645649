//! Every other Email/query: the account's Email records (small, fixed-size-ish values read in
//! one range) are filtered and sorted in memory. Text conditions are decided from the stored
//! metadata and the message only for Emails the structural conditions left undecided.
//!
//! The text matching here is a plain case-insensitive substring scan: correct, and slow on
//! big mailboxes. The full-text index of the search issue replaces it.

use std::collections::{HashMap, HashSet};

use super::filter::{EmailText, Filter, ThreadKeywords, evaluate, uses_thread_keywords};
use super::sort::{EmailComparator, compare};
use crate::mail::parsed::{EmailAddress, ParsedEmail, decode::part_text};
use crate::mail::store::{self as mail_store, EmailRecord};
use crate::store::blob::BlobStore;
use crate::store::{Store, StoreResult};

/// Records read in one snapshot, and the Email state of that snapshot.
pub struct Snapshot {
    pub state: u64,
    pub records: Vec<(u64, EmailRecord)>,
}

pub async fn load_snapshot(store: &Store, account_id: u32) -> StoreResult<Snapshot> {
    store
        .read(|tx| {
            Box::pin(async move {
                let state = crate::store::commit::read_state(
                    tx,
                    account_id,
                    crate::store::commit::DataType::Email,
                )
                .await?;
                let records = mail_store::load_all_records(tx, account_id).await?;
                Ok(Snapshot { state, records })
            })
        })
        .await
}

/// The complete, sorted (and collapsed) result list of a query over `snapshot`.
pub async fn results(
    store: &Store,
    blobs: &BlobStore,
    account_id: u32,
    snapshot: &Snapshot,
    filter: Option<&Filter>,
    sort: &[EmailComparator],
    collapse_threads: bool,
) -> StoreResult<Vec<u64>> {
    let needs_threads = filter.is_some_and(uses_thread_keywords)
        || sort.iter().any(EmailComparator::uses_thread_keywords);
    let threads = if needs_threads {
        thread_keywords(&snapshot.records)
    } else {
        ThreadKeywords::default()
    };
    let mut matching: Vec<(u64, &EmailRecord)> = Vec::new();
    let mut undecided: Vec<(u64, &EmailRecord)> = Vec::new();
    for (email_id, record) in &snapshot.records {
        let verdict = match filter {
            None => Some(true),
            Some(filter) => evaluate(filter, record, &threads, None),
        };
        match verdict {
            Some(true) => matching.push((*email_id, record)),
            Some(false) => {}
            None => undecided.push((*email_id, record)),
        }
    }
    if let Some(filter) = filter {
        for (email_id, record) in undecided {
            let Some(text) = load_text(store, blobs, account_id, email_id, record).await? else {
                continue;
            };
            if evaluate(filter, record, &threads, Some(&text)) == Some(true) {
                matching.push((email_id, record));
            }
        }
    }
    matching.sort_by(|left, right| compare(sort, &threads, *left, *right));
    let mut seen_threads = HashSet::new();
    Ok(matching
        .into_iter()
        .filter(|(_, record)| !collapse_threads || seen_threads.insert(record.thread_id))
        .map(|(email_id, _)| email_id)
        .collect())
}

/// For each Thread, the keywords all its Emails have and those some have.
fn thread_keywords(records: &[(u64, EmailRecord)]) -> ThreadKeywords {
    let mut members: HashMap<u64, Vec<&EmailRecord>> = HashMap::new();
    for (_, record) in records {
        members.entry(record.thread_id).or_default().push(record);
    }
    let mut threads = ThreadKeywords::default();
    for (thread_id, records) in members {
        let mut some: Vec<String> = records
            .iter()
            .flat_map(|record| record.keywords.iter().cloned())
            .collect();
        some.sort_unstable();
        some.dedup();
        let all: Vec<String> = some
            .iter()
            .filter(|keyword| records.iter().all(|record| record.has_keyword(keyword)))
            .cloned()
            .collect();
        threads.all.insert(thread_id, all);
        threads.some.insert(thread_id, some);
    }
    threads
}

/// The text of one Email for the text conditions; `None` if it vanished meanwhile.
async fn load_text(
    store: &Store,
    blobs: &BlobStore,
    account_id: u32,
    email_id: u64,
    record: &EmailRecord,
) -> StoreResult<Option<EmailText>> {
    let parsed = store
        .read(|tx| Box::pin(async move { mail_store::load_parsed(tx, account_id, email_id).await }))
        .await?;
    let Some(parsed) = parsed else {
        return Ok(None);
    };
    let raw = blobs
        .read_to_vec(account_id, &record.blob, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    Ok(Some(email_text(&parsed, &raw)))
}

fn addresses_text(addresses: &Option<Vec<EmailAddress>>) -> String {
    let mut text = String::new();
    for address in addresses.iter().flatten() {
        if let Some(name) = &address.name {
            text.push_str(name);
            text.push(' ');
        }
        text.push('<');
        text.push_str(&address.email);
        text.push_str("> ");
    }
    text.to_lowercase()
}

fn email_text(parsed: &ParsedEmail, raw: &[u8]) -> EmailText {
    let mut body = String::new();
    let body_parts = parsed.text_body.iter().chain(parsed.html_body.iter());
    let mut done = HashSet::new();
    for index in body_parts {
        if !done.insert(*index) {
            continue;
        }
        let Some(part) = parsed.part(*index) else {
            continue;
        };
        let (start, end) = (part.body_start as usize, part.body_end as usize);
        let Some(bytes) = raw.get(start..end.min(raw.len())) else {
            continue;
        };
        let (text, _) = part_text(bytes, part.encoding, part.charset.as_deref());
        if part.content_type.eq_ignore_ascii_case("text/html") {
            body.push_str(&strip_tags(&text));
        } else {
            body.push_str(&text);
        }
        body.push('\n');
    }
    EmailText {
        from: addresses_text(&parsed.from),
        to: addresses_text(&parsed.to),
        cc: addresses_text(&parsed.cc),
        bcc: addresses_text(&parsed.bcc),
        subject: parsed.subject.clone().unwrap_or_default().to_lowercase(),
        body: body.to_lowercase(),
        headers: top_level_headers(raw),
    }
}

/// Drops markup for matching (the search issue's indexer does this properly).
fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for character in html.chars() {
        match character {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(character),
            _ => {}
        }
    }
    text
}

/// The top-level header fields, unfolded, as lower-case (name, value) pairs.
fn top_level_headers(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(&line.trim().to_lowercase());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_lowercase()));
        }
    }
    headers
}
