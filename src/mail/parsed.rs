//! Reading messages: what Tern keeps of a parsed RFC 5322 message so that Email/get answers
//! list properties without touching the raw message, and the body structure (as byte ranges
//! of the raw message) from which everything else is derived on demand.
//!
//! `parse_message` never fails and never panics: a malformed message still yields a
//! `ParsedEmail` (RFC 8621 §4: every message imports; problems show as `isEncodingProblem`).

use mail_parser::{Address, HeaderName, HeaderValue, MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

use crate::jmap::types::TransferEncoding;

pub mod blob;
pub mod codec;
pub mod decode;
pub mod suite;

/// RFC 8621 §4.1.2.3 EmailAddress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct EmailAddress {
    /// Always serialized: JMAP's EmailAddress has `name: null`, not a missing member.
    pub name: Option<String>,
    pub email: String,
}

/// One MIME part, in document order. Offsets index the raw message; parts of a message
/// attached with a transfer encoding are not expanded (JMAP shows a message/rfc822 part as one
/// leaf, RFC 8621 §4.1.4).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct BodyPart {
    /// Start of the part's header block.
    pub header_start: u32,
    /// Start of the part's body (just after the blank line ending the headers).
    pub body_start: u32,
    /// End of the part's body (before the CRLF that precedes the next boundary).
    pub body_end: u32,
    #[serde(default, skip_serializing_if = "is_identity")]
    pub encoding: TransferEncoding,
    /// Octets of the content after transfer decoding (RFC 8621 §4.1.4 `size`).
    pub size: u64,
    /// Lowercase `type/subtype`, with the MIME defaults applied.
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Indexes into `ParsedEmail::parts` of the children of a multipart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_parts: Vec<u32>,
    /// The transfer encoding was malformed or unknown.
    #[serde(default, skip_serializing_if = "is_false")]
    pub encoding_problem: bool,
}

impl BodyPart {
    pub fn is_multipart(&self) -> bool {
        self.content_type.starts_with("multipart/")
    }

    pub fn is_text(&self) -> bool {
        self.content_type.starts_with("text/")
    }
}

/// What the store keeps of a message (besides the raw blob).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ParsedEmail {
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<EmailAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<EmailAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<Vec<EmailAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcc: Option<Vec<EmailAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Vec<EmailAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Vec<EmailAddress>>,
    /// RFC 3339 with the message's own offset (the JMAP `Date` form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    /// `sent_at` as Unix seconds (for sorting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_unix: Option<i64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_attachment: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preview: String,
    /// The body structure; `parts[0]` is the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<BodyPart>,
    /// RFC 8621 §4.1.4 textBody, htmlBody, attachments: indexes into `parts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_body: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub html_body: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<u32>,
}

// The store keeps the binary form (`codec`); JSON (with absent members standing for their
// defaults) is what earlier versions stored, and what tests compare against.
fn is_false(flag: &bool) -> bool {
    !*flag
}

fn is_identity(encoding: &TransferEncoding) -> bool {
    *encoding == TransferEncoding::Identity
}

impl ParsedEmail {
    pub fn part(&self, index: u32) -> Option<&BodyPart> {
        self.parts.get(index as usize)
    }

    /// Cuts a body structure stored before [`MAX_PARTS`] existed to its first `MAX_PARTS`
    /// parts. Parts are in document order (a parent before its children), so every part kept
    /// keeps its parent; references to the parts cut are dropped.
    pub fn bound_structure(&mut self) {
        if self.parts.len() <= MAX_PARTS {
            return;
        }
        self.parts.truncate(MAX_PARTS);
        let kept = |index: &u32| (*index as usize) < MAX_PARTS;
        for part in &mut self.parts {
            part.sub_parts.retain(kept);
        }
        self.text_body.retain(kept);
        self.html_body.retain(kept);
        self.attachments.retain(kept);
    }
}

/// RFC 8621 §4.1.4: the preview is at most 256 characters.
pub const PREVIEW_CHARS: usize = 256;

/// How much of each text part the preview is computed from.
const PREVIEW_SOURCE_BYTES: usize = 64 * 1024;

/// Deepest multipart nesting expanded; deeper parts are kept as opaque leaves.
pub const MAX_DEPTH: usize = 48;

/// Most body parts kept of one message (issue 13: a 439 KB message of 10,000 parts made one
/// Email/get cost 45 MB). The parts after the first `MAX_PARTS` (in document order) are not
/// shown in the body structure; their octets stay in the message (and its blob). RFC 8621
/// sets no limit; 1,000 is far above what mail clients produce.
pub const MAX_PARTS: usize = 1000;

/// Parses a message. Never fails: input that is not a message at all yields a ParsedEmail with
/// one empty text part covering the input (so it still has a body structure).
pub fn parse_message(raw: &[u8]) -> ParsedEmail {
    let mut parsed = ParsedEmail {
        size: raw.len() as u64,
        ..ParsedEmail::default()
    };
    let Some(message) = MessageParser::default().parse(raw) else {
        parsed.parts.push(BodyPart {
            header_start: 0,
            body_start: 0,
            body_end: clamp_offset(raw.len()),
            size: raw.len() as u64,
            content_type: "text/plain".to_owned(),
            charset: Some("us-ascii".to_owned()),
            encoding_problem: true,
            ..BodyPart::default()
        });
        parsed.text_body.push(0);
        parsed.html_body.push(0);
        parsed.preview = preview_of(&String::from_utf8_lossy(raw));
        return parsed;
    };
    if let Some(root) = message.parts.first() {
        read_top_headers(&root.headers, raw, &mut parsed);
    }
    let mut texts: Vec<(u32, String)> = Vec::new();
    let mut builder = StructureBuilder {
        message: &message,
        raw,
        parts: Vec::new(),
        texts: &mut texts,
        visited: vec![false; message.parts.len()],
    };
    builder.add(0, None, 0);
    parsed.parts = builder.parts;
    let (text_body, html_body, attachments) = body_lists(&parsed.parts);
    parsed.text_body = text_body;
    parsed.html_body = html_body;
    parsed.attachments = attachments;
    parsed.has_attachment = has_attachment(&parsed);
    parsed.preview = preview(&parsed, &texts);
    parsed
}

/// Whether `raw` starts with a header field (RFC 5322 §2.2: a name of printable US-ASCII,
/// then a colon): Email/parse answers `notParsable` otherwise (RFC 8621 §4.9).
pub fn looks_like_message(raw: &[u8]) -> bool {
    let Some(colon) = raw.iter().position(|&byte| byte == b':') else {
        return false;
    };
    let name = &raw[..colon];
    let name = name.strip_suffix(b" ").unwrap_or(name);
    !name.is_empty() && name.iter().all(|byte| (33..=126).contains(byte))
}

fn clamp_offset(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

/// The value of the last header field named `name` (RFC 8621 §4.1.3: without `:all`, the
/// last instance).
fn last_header<'a, 'x>(
    headers: &'a [mail_parser::Header<'x>],
    name: HeaderName<'static>,
) -> Option<&'a HeaderValue<'x>> {
    headers
        .iter()
        .rev()
        .find(|header| header.name == name)
        .map(|header| &header.value)
}

/// RFC 8621 §4.1.2.4 MessageIds form of the last field `name`: `null` unless it holds
/// msg-ids in angle brackets (RFC 5322 §3.6.4).
fn last_message_ids(
    headers: &[mail_parser::Header<'_>],
    raw: &[u8],
    name: HeaderName<'static>,
) -> Option<Vec<String>> {
    let header = headers.iter().rev().find(|header| header.name == name)?;
    let value = raw.get(header.offset_start as usize..header.offset_end as usize)?;
    if !value.contains(&b'<') {
        return None;
    }
    message_ids(&header.value)
}

fn read_top_headers(headers: &[mail_parser::Header<'_>], raw: &[u8], parsed: &mut ParsedEmail) {
    parsed.message_id = last_message_ids(headers, raw, HeaderName::MessageId);
    parsed.in_reply_to = last_message_ids(headers, raw, HeaderName::InReplyTo);
    parsed.references = last_message_ids(headers, raw, HeaderName::References);
    parsed.subject = last_header(headers, HeaderName::Subject).map(text_value);
    parsed.from = last_header(headers, HeaderName::From).map(addresses);
    parsed.to = last_header(headers, HeaderName::To).map(addresses);
    parsed.cc = last_header(headers, HeaderName::Cc).map(addresses);
    parsed.bcc = last_header(headers, HeaderName::Bcc).map(addresses);
    parsed.sender = last_header(headers, HeaderName::Sender).map(addresses);
    parsed.reply_to = last_header(headers, HeaderName::ReplyTo).map(addresses);
    if let Some(HeaderValue::DateTime(date)) = last_header(headers, HeaderName::Date)
        && date.is_valid()
    {
        parsed.sent_at = Some(date.to_rfc3339());
        parsed.sent_at_unix = Some(date.to_timestamp());
    }
}

/// RFC 8621 §4.1.2.4 MessageIds form: `null` when the value does not parse as msg-ids.
pub(crate) fn message_ids(value: &HeaderValue<'_>) -> Option<Vec<String>> {
    match value {
        HeaderValue::Text(id) if !id.is_empty() => Some(vec![id.to_string()]),
        HeaderValue::TextList(ids) if !ids.is_empty() => {
            Some(ids.iter().map(|id| id.to_string()).collect())
        }
        _ => None,
    }
}

/// RFC 8621 §4.1.2.2 Text form of a value mail-parser read as unstructured text.
pub(crate) fn text_value(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(text) => text.trim().to_owned(),
        HeaderValue::TextList(list) => list.join(", "),
        _ => String::new(),
    }
}

/// RFC 8621 §4.1.2.3 Addresses form: groups flattened; unparseable input gives `[]`.
pub(crate) fn addresses(value: &HeaderValue<'_>) -> Vec<EmailAddress> {
    match value {
        HeaderValue::Address(Address::List(list)) => {
            list.iter().filter_map(email_address).collect()
        }
        HeaderValue::Address(Address::Group(groups)) => groups
            .iter()
            .flat_map(|group| group.addresses.iter().filter_map(email_address))
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn email_address(address: &mail_parser::Addr<'_>) -> Option<EmailAddress> {
    let name = address
        .name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    let email = address
        .address
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    if email.is_empty() && name.is_none() {
        return None;
    }
    Some(EmailAddress {
        name,
        email: email.to_owned(),
    })
}

struct StructureBuilder<'m, 'x, 't> {
    message: &'m mail_parser::Message<'x>,
    raw: &'m [u8],
    parts: Vec<BodyPart>,
    /// Decoded text of text/plain and text/html leaves (for the preview), by part index.
    texts: &'t mut Vec<(u32, String)>,
    /// mail-parser part ids already placed (malformed input must not make a cycle).
    visited: Vec<bool>,
}

impl StructureBuilder<'_, '_, '_> {
    /// Adds mail-parser part `id` (and its children) and returns its index in `parts`.
    fn add(&mut self, id: usize, parent_subtype: Option<&str>, depth: usize) -> Option<u32> {
        if self.parts.len() >= MAX_PARTS {
            return None;
        }
        let source = self.message.parts.get(id)?;
        match self.visited.get_mut(id) {
            Some(seen) if !*seen => *seen = true,
            _ => return None,
        }
        let index = clamp_offset(self.parts.len());
        let content_type = content_type_of(source, parent_subtype);
        let charset = charset_of(source, &content_type);
        let disposition = source
            .content_disposition()
            .map(|disposition| disposition.ctype().to_ascii_lowercase());
        let language = match source.content_language() {
            HeaderValue::Text(language) => Some(vec![language.to_string()]),
            HeaderValue::TextList(list) => Some(list.iter().map(|l| l.to_string()).collect()),
            _ => None,
        };
        let encoding = match source.encoding {
            mail_parser::Encoding::Base64 => TransferEncoding::Base64,
            mail_parser::Encoding::QuotedPrintable => TransferEncoding::QuotedPrintable,
            mail_parser::Encoding::None => TransferEncoding::Identity,
        };
        let declared_encoding = source
            .content_transfer_encoding()
            .map(|name| name.trim().to_ascii_lowercase());
        let unknown_encoding = declared_encoding.as_deref().is_some_and(|name| {
            !matches!(
                name,
                "7bit" | "8bit" | "binary" | "base64" | "quoted-printable"
            )
        });
        let body_start = source.offset_body.min(clamp_offset(self.raw.len()));
        let body_end = source
            .offset_end
            .clamp(body_start, clamp_offset(self.raw.len()));
        let mut part = BodyPart {
            header_start: source.offset_header.min(body_start),
            body_start,
            body_end,
            encoding,
            size: 0,
            content_type,
            charset,
            name: source
                .attachment_name()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty()),
            disposition,
            cid: source
                .content_id()
                .map(|cid| {
                    cid.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned()
                })
                .filter(|cid| !cid.is_empty()),
            language,
            location: source.content_location().map(|l| l.trim().to_owned()),
            sub_parts: Vec::new(),
            encoding_problem: source.is_encoding_problem || unknown_encoding,
        };
        let body = self
            .raw
            .get(body_start as usize..body_end as usize)
            .unwrap_or_default();
        part.size = match &source.body {
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.len() as u64,
            PartType::Multipart(_) => body.len() as u64,
            _ => match encoding {
                TransferEncoding::Identity => body.len() as u64,
                _ => decode::transfer_decode(body, encoding).0.len() as u64,
            },
        };
        if let PartType::Text(text) | PartType::Html(text) = &source.body
            && (part.content_type == "text/plain" || part.content_type == "text/html")
            && self.texts.len() < 8
        {
            // The preview needs only the start of the text (HTML has markup to skip).
            let mut cut = text.len().min(PREVIEW_SOURCE_BYTES);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.texts.push((index, text[..cut].to_owned()));
        }
        let children = match &source.body {
            PartType::Multipart(children) if part.is_multipart() && depth < MAX_DEPTH => {
                children.clone()
            }
            _ => Vec::new(),
        };
        let opaque_multipart = part.is_multipart()
            && (!matches!(source.body, PartType::Multipart(_)) || depth >= MAX_DEPTH);
        if opaque_multipart {
            // A multipart without a usable boundary (or nested too deep): JMAP shows it as a
            // leaf, so it becomes text/plain with its raw octets.
            part.content_type = "text/plain".to_owned();
            part.charset = Some("us-ascii".to_owned());
            part.encoding_problem = true;
            part.size = body.len() as u64;
        }
        let subtype = part
            .content_type
            .split_once('/')
            .map(|(_, subtype)| subtype.to_owned());
        self.parts.push(part);
        let mut sub_parts = Vec::with_capacity(children.len());
        for child in children {
            if let Some(child_index) = self.add(child as usize, subtype.as_deref(), depth + 1) {
                sub_parts.push(child_index);
            }
        }
        if let Some(part) = self.parts.get_mut(index as usize) {
            part.sub_parts = sub_parts;
        }
        Some(index)
    }
}

/// RFC 2045 §5.2 / RFC 2046 §5.1.5: no Content-Type means text/plain, or message/rfc822
/// inside multipart/digest.
fn content_type_of(part: &mail_parser::MessagePart<'_>, parent_subtype: Option<&str>) -> String {
    match part.content_type() {
        Some(content_type) => {
            let main = content_type.ctype().trim().to_ascii_lowercase();
            match content_type.subtype() {
                Some(sub) if !main.is_empty() => {
                    format!("{main}/{}", sub.trim().to_ascii_lowercase())
                }
                _ if main == "text" || main.is_empty() => "text/plain".to_owned(),
                _ => format!("{main}/octet-stream"),
            }
        }
        None if parent_subtype == Some("digest") => "message/rfc822".to_owned(),
        None => "text/plain".to_owned(),
    }
}

/// RFC 8621 §4.1.4 charset: the parameter, or `us-ascii` for text/* without one (or without a
/// Content-Type at all); `null` for other types.
fn charset_of(part: &mail_parser::MessagePart<'_>, content_type: &str) -> Option<String> {
    let declared = part
        .content_type()
        .and_then(|content_type| content_type.attribute("charset"))
        .map(|charset| charset.trim().to_owned())
        .filter(|charset| !charset.is_empty());
    match declared {
        Some(charset) => Some(charset),
        None if content_type.starts_with("text/") => Some("us-ascii".to_owned()),
        None => None,
    }
}

fn is_inline_media_type(content_type: &str) -> bool {
    content_type.starts_with("image/")
        || content_type.starts_with("audio/")
        || content_type.starts_with("video/")
}

/// RFC 8621 §4.1.4: textBody, htmlBody and attachments from the body structure, by the RFC's
/// algorithm (`parseStructure`).
pub fn body_lists(parts: &[BodyPart]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut text_body = Vec::new();
    let mut html_body = Vec::new();
    let mut attachments = Vec::new();
    if !parts.is_empty() {
        parse_structure(
            parts,
            &[0],
            "mixed",
            false,
            Some(&mut html_body),
            Some(&mut text_body),
            &mut attachments,
            0,
        );
    }
    (text_body, html_body, attachments)
}

#[allow(clippy::too_many_arguments)]
fn parse_structure(
    parts: &[BodyPart],
    children: &[u32],
    multipart_type: &str,
    in_alternative: bool,
    mut html_body: Option<&mut Vec<u32>>,
    mut text_body: Option<&mut Vec<u32>>,
    attachments: &mut Vec<u32>,
    depth: usize,
) {
    let text_length = text_body.as_ref().map(|body| body.len());
    let html_length = html_body.as_ref().map(|body| body.len());
    for (position, &index) in children.iter().enumerate() {
        let Some(part) = parts.get(index as usize) else {
            continue;
        };
        let content_type = part.content_type.as_str();
        let is_inline = part.disposition.as_deref() != Some("attachment")
            && (content_type == "text/plain"
                || content_type == "text/html"
                || is_inline_media_type(content_type))
            && (position == 0
                || (multipart_type != "related"
                    && (is_inline_media_type(content_type) || part.name.is_none())));
        if part.is_multipart() {
            if depth > MAX_DEPTH {
                continue;
            }
            let sub_multipart_type = content_type.split_once('/').map_or("", |(_, sub)| sub);
            parse_structure(
                parts,
                &part.sub_parts,
                sub_multipart_type,
                in_alternative || sub_multipart_type == "alternative",
                html_body.as_deref_mut(),
                text_body.as_deref_mut(),
                attachments,
                depth + 1,
            );
        } else if is_inline {
            if multipart_type == "alternative" {
                let list = match content_type {
                    "text/plain" => text_body.as_deref_mut(),
                    "text/html" => html_body.as_deref_mut(),
                    _ => Some(&mut *attachments),
                };
                if let Some(list) = list {
                    list.push(index);
                }
                continue;
            } else if in_alternative {
                if content_type == "text/plain" {
                    html_body = None;
                }
                if content_type == "text/html" {
                    text_body = None;
                }
            }
            if let Some(body) = text_body.as_deref_mut() {
                body.push(index);
            }
            if let Some(body) = html_body.as_deref_mut() {
                body.push(index);
            }
            if (text_body.is_none() || html_body.is_none()) && is_inline_media_type(content_type) {
                attachments.push(index);
            }
        } else {
            attachments.push(index);
        }
    }
    if multipart_type == "alternative"
        && let (Some(text_body), Some(html_body)) = (text_body, html_body)
        && let (Some(text_length), Some(html_length)) = (text_length, html_length)
    {
        // Found an HTML part only: it is the text body too.
        if text_length == text_body.len() && html_length != html_body.len() {
            text_body.extend_from_slice(&html_body[html_length..]);
        }
        // Found a plain-text part only: it is the HTML body too.
        if html_length == html_body.len() && text_length != text_body.len() {
            html_body.extend_from_slice(&text_body[text_length..]);
        }
    }
}

/// RFC 8621 §4.1.4 hasAttachment: an attachment a client should offer for download. Inline
/// images referenced by Content-ID (embedded in the HTML) do not count.
fn has_attachment(parsed: &ParsedEmail) -> bool {
    parsed.attachments.iter().any(|&index| {
        parsed.part(index).is_some_and(|part| {
            let embedded = part.disposition.as_deref() != Some("attachment")
                && part.cid.is_some()
                && is_inline_media_type(&part.content_type);
            !embedded && part.disposition.as_deref() != Some("inline")
                || part.disposition.as_deref() == Some("attachment")
        })
    })
}

/// RFC 8621 §4.1.4 preview: up to 256 characters of the text body, whitespace collapsed.
fn preview(parsed: &ParsedEmail, texts: &[(u32, String)]) -> String {
    let mut collected = String::new();
    for &index in &parsed.text_body {
        let Some(part) = parsed.part(index) else {
            continue;
        };
        let Some((_, text)) = texts.iter().find(|(text_index, _)| *text_index == index) else {
            continue;
        };
        if !collected.is_empty() {
            collected.push(' ');
        }
        if part.content_type == "text/html" {
            collected.push_str(&mail_parser::decoders::html::html_to_text(text));
        } else {
            collected.push_str(text);
        }
        if collected.chars().filter(|c| !c.is_whitespace()).count() >= PREVIEW_CHARS {
            break;
        }
    }
    preview_of(&collected)
}

/// Collapses whitespace runs to one space, trims, and keeps at most [`PREVIEW_CHARS`] chars.
pub fn preview_of(text: &str) -> String {
    let mut preview = String::with_capacity(PREVIEW_CHARS.min(text.len()));
    let mut count = 0;
    let mut pending_space = false;
    for character in text.chars() {
        if character.is_whitespace() || character.is_control() {
            pending_space = count > 0;
            continue;
        }
        if pending_space {
            if count + 1 >= PREVIEW_CHARS {
                break;
            }
            preview.push(' ');
            count += 1;
            pending_space = false;
        }
        if count >= PREVIEW_CHARS {
            break;
        }
        preview.push(character);
        count += 1;
    }
    preview
}

#[cfg(test)]
pub(crate) mod bounds_tests;
#[cfg(test)]
mod tests;
