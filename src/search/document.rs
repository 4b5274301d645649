//! The searchable text of one Email, from its stored parsed metadata and raw message: what the
//! indexer puts in a document, what a scan of a not-yet-indexed Email matches against, and what
//! SearchSnippet/get highlights. One extraction for all three, so they always agree.

use std::collections::HashSet;

use crate::mail::parsed::decode::part_text;
use crate::mail::parsed::{EmailAddress, ParsedEmail};
use crate::mail::store as mail_store;
use std::sync::Arc;

use crate::store::blob::{self, BlobHash, BlobStore, WholeBlob};
use crate::store::{Store, StoreError, StoreErrorKind, StoreResult, Transaction};

/// Text taken from one part at most (a 20 MB log file attached is not worth indexing whole).
const MAX_PART_TEXT_BYTES: usize = 1 << 20;
/// Raw message bytes read at most.
const MAX_RAW_BYTES: u64 = 64 << 20;
/// Header values kept at most per field (long DKIM signatures are noise).
const MAX_HEADER_VALUE_BYTES: usize = 2_048;

/// The searchable text of an Email, not yet tokenized.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub from: String,
    pub to: String,
    pub cc: String,
    pub bcc: String,
    /// textBody and htmlBody parts (HTML turned into text), each once.
    pub body: String,
    /// Text of the text/* attachments.
    pub attachment_text: String,
    /// File names of the attachments.
    pub attachment_names: String,
    /// Top-level header fields: (lower-case name, unfolded raw value).
    pub headers: Vec<(String, String)>,
}

fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

fn addresses_text(addresses: &Option<Vec<EmailAddress>>) -> String {
    let mut text = String::new();
    for address in addresses.iter().flatten() {
        if let Some(name) = &address.name {
            text.push_str(name);
            text.push(' ');
        }
        text.push_str(&address.email);
        text.push('\n');
    }
    text
}

/// The decoded text of part `index`, HTML turned into text.
fn part_plain_text(parsed: &ParsedEmail, raw: &[u8], index: u32) -> Option<String> {
    let part = parsed.part(index)?;
    let (start, end) = (part.body_start as usize, part.body_end as usize);
    let bytes = raw.get(start..end.min(raw.len()))?;
    let (mut text, _) = part_text(bytes, part.encoding, part.charset.as_deref());
    truncate(&mut text, MAX_PART_TEXT_BYTES);
    if part.content_type == "text/html" {
        text = mail_parser::decoders::html::html_to_text(&text);
    }
    Some(text)
}

/// Extracts the searchable text. Never fails: what cannot be decoded is left out.
pub fn extract(parsed: &ParsedEmail, raw: &[u8]) -> EmailContent {
    let mut body = String::new();
    let mut done = HashSet::new();
    for index in parsed.text_body.iter().chain(parsed.html_body.iter()) {
        if !done.insert(*index) {
            continue;
        }
        // A text and an HTML version of the same body hold the same words; one is enough
        // unless they are different parts of a mixed body.
        if let Some(text) = part_plain_text(parsed, raw, *index) {
            body.push_str(&text);
            body.push('\n');
        }
    }
    let mut attachment_text = String::new();
    let mut attachment_names = String::new();
    for index in &parsed.attachments {
        let Some(part) = parsed.part(*index) else {
            continue;
        };
        if let Some(name) = &part.name {
            attachment_names.push_str(name);
            attachment_names.push('\n');
        }
        if part.is_text()
            && !done.contains(index)
            && let Some(text) = part_plain_text(parsed, raw, *index)
        {
            attachment_text.push_str(&text);
            attachment_text.push('\n');
        }
    }
    EmailContent {
        subject: parsed.subject.clone().unwrap_or_default(),
        from: addresses_text(&parsed.from),
        to: addresses_text(&parsed.to),
        cc: addresses_text(&parsed.cc),
        bcc: addresses_text(&parsed.bcc),
        body,
        attachment_text,
        attachment_names,
        headers: top_level_headers(raw),
    }
}

/// The top-level header fields, unfolded, as (lower-case name, value).
pub fn top_level_headers(raw: &[u8]) -> Vec<(String, String)> {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|window| window == b"\n\n"))
        .unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_owned()));
        }
    }
    for (_, value) in &mut headers {
        truncate(value, MAX_HEADER_VALUE_BYTES);
    }
    headers
}

/// Emails loaded per read transaction at most (and [`MAX_BYTES_PER_LOAD`] of raw bytes).
const EMAILS_PER_LOAD: usize = 64;
/// Raw bytes read per transaction at most, far under FoundationDB's 5 s and 10 MB.
const MAX_BYTES_PER_LOAD: usize = 4 << 20;

/// Loads and extracts one Email's text; `None` if the Email does not exist (any more).
pub async fn load(
    store: &Store,
    blobs: &BlobStore,
    account_id: u32,
    email_id: u64,
) -> StoreResult<Option<EmailContent>> {
    let mut loaded = load_many(store, blobs, &[(account_id, email_id)]).await?;
    loaded.pop().unwrap_or(Ok(None))
}

/// One Email's stored parts, read in a shared transaction.
type Stored = (u32, u64, Box<ParsedEmail>, BlobHash, WholeBlob);

/// Loads and extracts the text of each `(account, Email)`, in order, with one read
/// transaction per [`EMAILS_PER_LOAD`] Emails (or [`MAX_BYTES_PER_LOAD`] bytes) when their
/// messages are small (most are): record, parsed metadata and raw bytes come together.
/// The outer error is a store failure worth retrying the whole call for; an inner error is
/// one Email that cannot be read (corrupt) and must not hold up the others.
pub async fn load_many(
    store: &Store,
    blobs: &BlobStore,
    emails: &[(u32, u64)],
) -> StoreResult<Vec<StoreResult<Option<EmailContent>>>> {
    let mut results = Vec::with_capacity(emails.len());
    while results.len() < emails.len() {
        let group: Arc<[(u32, u64)]> = emails[results.len()..]
            .iter()
            .take(EMAILS_PER_LOAD)
            .copied()
            .collect();
        let stored = store
            .read(move |tx| {
                let group = Arc::clone(&group);
                Box::pin(async move { read_group(tx, &group).await })
            })
            .await?;
        for item in stored {
            results.push(match item {
                Ok(Some((account_id, email_id, parsed, blob, whole))) => {
                    let raw = raw_bytes(blobs, account_id, email_id, &blob, whole).await?;
                    Ok(Some(extract(&parsed, &raw)))
                }
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            });
        }
    }
    Ok(results)
}

/// Reads a prefix of `group` (at least one Email) within the byte budget.
async fn read_group(
    tx: &mut dyn Transaction,
    group: &[(u32, u64)],
) -> StoreResult<Vec<StoreResult<Option<Stored>>>> {
    let mut stored = Vec::with_capacity(group.len());
    let mut bytes = 0usize;
    for &(account_id, email_id) in group {
        if bytes >= MAX_BYTES_PER_LOAD {
            break;
        }
        match read_one(tx, account_id, email_id).await {
            Ok(item) => {
                if let Some((.., WholeBlob::Content(raw))) = &item {
                    bytes += raw.len();
                }
                stored.push(Ok(item));
            }
            Err(error) if error.kind.is_retryable() => return Err(error),
            Err(error) => stored.push(Err(error)),
        }
    }
    Ok(stored)
}

async fn read_one(
    tx: &mut dyn Transaction,
    account_id: u32,
    email_id: u64,
) -> StoreResult<Option<Stored>> {
    let Some(record) = mail_store::load_record(tx, account_id, email_id).await? else {
        return Ok(None);
    };
    let Some(parsed) = mail_store::load_parsed(tx, account_id, email_id).await? else {
        return Ok(None);
    };
    // The Email's own record links the blob: no access check needed.
    let whole = blob::read_whole_in(tx, &record.blob, MAX_RAW_BYTES).await?;
    Ok(Some((
        account_id,
        email_id,
        Box::new(parsed),
        record.blob,
        whole,
    )))
}

/// The raw message; empty (with a warning) when it cannot be read, since the metadata alone
/// still gives subject and addresses. Only a retryable store failure is an error.
async fn raw_bytes(
    blobs: &BlobStore,
    account_id: u32,
    email_id: u64,
    blob: &BlobHash,
    whole: WholeBlob,
) -> StoreResult<Vec<u8>> {
    let read = match whole {
        WholeBlob::Content(raw) => return Ok(raw),
        WholeBlob::Large => blobs.read_to_vec(account_id, blob, MAX_RAW_BYTES).await,
        WholeBlob::Missing => {
            tracing::warn!(
                account_id,
                email_id,
                "message blob missing; indexed without text"
            );
            return Ok(Vec::new());
        }
        WholeBlob::TooLarge(size) => {
            tracing::warn!(
                account_id,
                email_id,
                size,
                "message too large to index its text"
            );
            return Ok(Vec::new());
        }
    };
    match read {
        Ok(raw) => Ok(raw),
        Err(error) if error.store_kind.is_some_and(|kind| kind.is_retryable()) => {
            Err(StoreError::new(
                error.store_kind.unwrap_or(StoreErrorKind::Io),
                error.message,
            ))
        }
        Err(error) => {
            tracing::warn!(account_id, email_id, %error, "message unreadable for search");
            Ok(Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parsed::parse_message;

    #[test]
    fn extracts_bodies_attachments_and_headers() {
        let raw = b"From: Zoe <zoe@example.test>\r\nTo: a@example.test\r\nSubject: Hello\r\n\
X-Tag: blue\r\n  moon\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
<p>Big <b>news</b></p>\r\n--b\r\nContent-Type: text/plain; name=notes.txt\r\n\
Content-Disposition: attachment; filename=notes.txt\r\n\r\nattached words\r\n--b--\r\n";
        let parsed = parse_message(raw);
        let content = extract(&parsed, raw);
        assert_eq!(content.subject, "Hello");
        assert!(content.from.contains("Zoe") && content.from.contains("zoe@example.test"));
        assert!(content.body.contains("Big") && content.body.contains("news"));
        assert!(!content.body.contains("<b>"));
        assert!(content.attachment_text.contains("attached words"));
        assert!(content.attachment_names.contains("notes.txt"));
        assert!(
            content
                .headers
                .contains(&("x-tag".to_owned(), "blue moon".to_owned()))
        );
    }
}
