//! The searchable text of one Email, from its stored parsed metadata and raw message: what the
//! indexer puts in a document, what a scan of a not-yet-indexed Email matches against, and what
//! SearchSnippet/get highlights. One extraction for all three, so they always agree.

use std::collections::HashSet;

use crate::mail::parsed::decode::part_text;
use crate::mail::parsed::{EmailAddress, ParsedEmail};
use crate::mail::store as mail_store;
use crate::store::blob::BlobStore;
use crate::store::{Store, StoreResult};

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

/// Loads and extracts one Email's text; `None` if the Email does not exist (any more).
pub async fn load(
    store: &Store,
    blobs: &BlobStore,
    account_id: u32,
    email_id: u64,
) -> StoreResult<Option<EmailContent>> {
    let loaded = store
        .read(|tx| {
            Box::pin(async move {
                let Some(record) = mail_store::load_record(tx, account_id, email_id).await? else {
                    return Ok(None);
                };
                let parsed = mail_store::load_parsed(tx, account_id, email_id).await?;
                Ok(parsed.map(|parsed| (record, parsed)))
            })
        })
        .await?;
    let Some((record, parsed)) = loaded else {
        return Ok(None);
    };
    let raw = match blobs
        .read_to_vec(account_id, &record.blob, MAX_RAW_BYTES)
        .await
    {
        Ok(raw) => raw,
        Err(error) => {
            // The metadata alone still gives subject and addresses.
            tracing::warn!(account_id, email_id, %error, "message unreadable for search");
            Vec::new()
        }
    };
    Ok(Some(extract(&parsed, &raw)))
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
