//! Building an RFC 5322 message from the properties of an Email/set create (RFC 8621 §4.6),
//! with mail-builder. Two steps, so the caller can fetch blobs in between:
//! [`plan_message`] checks every property and says which blobs the message needs;
//! [`render_message`] writes the message once their content is known.
//!
//! Structure built from textBody/htmlBody/attachments (RFC 8621 §4.6):
//! text and HTML → multipart/alternative; inline attachments with a cid next to an HTML body
//! → multipart/related around the HTML; other attachments → multipart/mixed around the rest.

pub mod headers;
pub mod parts;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use serde_json::{Map, Value};

use headers::{HeaderForm, HeaderProperty, canonical_name, form_allowed, header_values};
use parts::{PartContent, PartPlan, PartReader, check_body_values};

/// RFC 8621 §1.3.1 `maxSizeAttachmentsPerEmail`: the most bytes of blob content (attachments
/// and any other part given by blobId) one created Email may carry.
pub const MAX_SIZE_ATTACHMENTS_PER_EMAIL: u64 = 50_000_000;

/// Why a message cannot be built; each maps to an RFC 8621 §4.6 SetError.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("invalid properties {properties:?}: {description}")]
    InvalidProperties {
        properties: Vec<String>,
        description: String,
    },
    #[error("blobs not found: {0:?}")]
    BlobNotFound(Vec<String>),
    #[error("too large: {0}")]
    TooLarge(String),
}

/// A checked message, waiting for its blobs.
#[derive(Debug, Clone)]
pub struct MessagePlan {
    headers: Vec<(Cow<'static, str>, HeaderType<'static>)>,
    has_message_id: bool,
    body: PartPlan,
}

impl MessagePlan {
    /// The blob ids the message's parts reference, each once, in order of first use.
    pub fn blob_ids(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        self.body.blob_ids(&mut ids);
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        ids
    }

    /// How many times each blob id is used (a blob attached twice is carried twice).
    pub fn blob_uses(&self) -> HashMap<&str, u64> {
        let mut ids = Vec::new();
        self.body.blob_ids(&mut ids);
        let mut uses = HashMap::new();
        for id in ids {
            *uses.entry(id).or_insert(0) += 1;
        }
        uses
    }
}

/// Properties of an Email that only the server sets (RFC 8621 §4.1.1, §4.6).
const SERVER_SET: &[&str] = &[
    "id",
    "blobId",
    "threadId",
    "size",
    "hasAttachment",
    "preview",
];
/// Properties Email/set handles itself (validated there, ignored here).
const STORE_PROPERTIES: &[&str] = &["mailboxIds", "keywords", "receivedAt"];

/// The convenience properties that stand for one header field in one form (RFC 8621 §4.1.3).
const CONVENIENCE_HEADERS: &[(&str, &str, HeaderForm)] = &[
    ("messageId", "Message-ID", HeaderForm::MessageIds),
    ("inReplyTo", "In-Reply-To", HeaderForm::MessageIds),
    ("references", "References", HeaderForm::MessageIds),
    ("sender", "Sender", HeaderForm::Addresses),
    ("from", "From", HeaderForm::Addresses),
    ("to", "To", HeaderForm::Addresses),
    ("cc", "Cc", HeaderForm::Addresses),
    ("bcc", "Bcc", HeaderForm::Addresses),
    ("replyTo", "Reply-To", HeaderForm::Addresses),
    ("subject", "Subject", HeaderForm::Text),
    ("sentAt", "Date", HeaderForm::Date),
];

const BODY_PROPERTIES: &[&str] = &[
    "bodyStructure",
    "textBody",
    "htmlBody",
    "attachments",
    "bodyValues",
];

/// Collects every invalid property with the reason, so one answer names them all.
#[derive(Default)]
struct Problems {
    properties: Vec<String>,
    reasons: Vec<String>,
}

impl Problems {
    fn add(&mut self, property: &str, reason: impl Into<String>) {
        if !self.properties.iter().any(|known| known == property) {
            self.properties.push(property.to_owned());
        }
        self.reasons.push(reason.into());
    }

    fn into_result(self) -> Result<(), BuildError> {
        if self.properties.is_empty() {
            return Ok(());
        }
        Err(BuildError::InvalidProperties {
            properties: self.properties,
            description: self.reasons.join("; "),
        })
    }
}

/// Checks the content properties of an Email to create (RFC 8621 §4.6).
pub fn plan_message(object: &Map<String, Value>) -> Result<MessagePlan, BuildError> {
    let mut problems = Problems::default();
    let mut headers = Vec::new();
    // lowercase field name → the property that set it
    let mut fields: HashMap<String, String> = HashMap::new();
    for (property, value) in object {
        let property = property.as_str();
        if STORE_PROPERTIES.contains(&property) || BODY_PROPERTIES.contains(&property) {
            continue;
        }
        if SERVER_SET.contains(&property) {
            problems.add(property, format!("{property} is set by the server"));
            continue;
        }
        if property == "headers" {
            // RFC 8621 §4.6: header fields are given one property each.
            problems.add(property, "give each header field as its own property");
            continue;
        }
        let (name, form, all) = match CONVENIENCE_HEADERS.iter().find(|(p, ..)| *p == property) {
            Some((_, name, form)) => ((*name).to_owned(), *form, false),
            None => match HeaderProperty::parse(property) {
                Some(header) => (header.name, header.form, header.all),
                None => {
                    problems.add(property, format!("unknown property {property:?}"));
                    continue;
                }
            },
        };
        let lower = name.to_ascii_lowercase();
        // RFC 8621 §4.6: Content-* fields belong to body parts, not to the Email.
        if lower.starts_with("content-") {
            problems.add(property, format!("{name} may only be given on a body part"));
            continue;
        }
        if !form_allowed(&name, form) {
            problems.add(property, format!("{name} may not be given in this form"));
            continue;
        }
        // RFC 8621 §4.6: no two properties for the same header field.
        if let Some(other) = fields.get(&lower) {
            problems.add(other, format!("{property} and {other} are the same field"));
            problems.add(
                property,
                format!("{property} and {other} are the same field"),
            );
            continue;
        }
        fields.insert(lower, property.to_owned());
        match header_values(form, all, value) {
            Ok(values) => {
                let name = canonical_name(&name);
                headers.extend(values.into_iter().map(|value| (name.clone(), value)));
            }
            Err(reason) => problems.add(property, format!("{property}: {reason}")),
        }
    }

    let empty = Map::new();
    let body_values = match object.get("bodyValues").filter(|value| !value.is_null()) {
        None => &empty,
        Some(value) => {
            if let Err(reason) = check_body_values(value) {
                problems.add("bodyValues", reason);
            }
            // Parts still resolve their partIds, so only bodyValues is named.
            value.as_object().unwrap_or(&empty)
        }
    };
    let reader = PartReader { body_values };
    let body = read_body(object, &reader, &fields, &mut problems);
    problems.into_result()?;
    let body = body.ok_or_else(|| BuildError::InvalidProperties {
        properties: vec!["bodyStructure".into()],
        description: "no body".into(),
    })?;
    // Checked on what is written: `messageId: []` writes no field, so one is generated.
    let has_message_id = headers.iter().any(|(name, _)| name == "Message-ID");
    Ok(MessagePlan {
        headers,
        has_message_id,
        body,
    })
}

/// The body from bodyStructure, or from textBody/htmlBody/attachments (RFC 8621 §4.6).
fn read_body(
    object: &Map<String, Value>,
    reader: &PartReader<'_>,
    top_fields: &HashMap<String, String>,
    problems: &mut Problems,
) -> Option<PartPlan> {
    let given = |property: &str| object.get(property).filter(|value| !value.is_null());
    if let Some(structure) = given("bodyStructure") {
        // RFC 8621 §4.6: bodyStructure excludes the three flat properties.
        let flat: Vec<&str> = ["textBody", "htmlBody", "attachments"]
            .into_iter()
            .filter(|property| given(property).is_some())
            .collect();
        if !flat.is_empty() {
            for property in flat {
                problems.add(
                    property,
                    format!("{property} may not be given with bodyStructure"),
                );
            }
            problems.add(
                "bodyStructure",
                "bodyStructure excludes textBody, htmlBody and attachments",
            );
            return None;
        }
        return match reader.read(structure, "bodyStructure", None) {
            Ok(root) => {
                // RFC 8621 §4.6: the root part may not repeat a top-level field.
                if let Some(name) = root
                    .header_names
                    .iter()
                    .find(|name| top_fields.contains_key(*name))
                {
                    problems.add(
                        "bodyStructure",
                        format!("bodyStructure repeats the Email's field {name}"),
                    );
                    return None;
                }
                Some(root)
            }
            Err(reason) => {
                problems.add("bodyStructure", reason);
                None
            }
        };
    }

    let single = |property: &str, media_type: &str, problems: &mut Problems| {
        let value = given(property)?;
        let part = match value {
            // RFC 8621 §4.6: exactly one part, of exactly this type.
            Value::Array(items) if items.len() == 1 => {
                reader.read(&items[0], &format!("{property}/0"), Some(media_type))
            }
            _ => Err(format!("{property} must hold exactly one body part")),
        };
        match part {
            Ok(part) if part.media_type == media_type => Some(part),
            Ok(_) => {
                problems.add(property, format!("{property} must be {media_type}"));
                None
            }
            Err(reason) => {
                problems.add(property, reason);
                None
            }
        }
    };
    let text = single("textBody", "text/plain", problems);
    let html = single("htmlBody", "text/html", problems);
    let mut attachments = Vec::new();
    if let Some(value) = given("attachments") {
        match value {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    match reader.read(item, &format!("attachments/{index}"), None) {
                        Ok(part) => attachments.push(part),
                        Err(reason) => problems.add("attachments", reason),
                    }
                }
            }
            _ => problems.add("attachments", "attachments must be an EmailBodyPart[]"),
        }
    }

    let (inline, attachments): (Vec<PartPlan>, Vec<PartPlan>) = if html.is_some() {
        attachments
            .into_iter()
            .partition(PartPlan::is_inline_with_cid)
    } else {
        (Vec::new(), attachments)
    };
    let html = html.map(|html| {
        if inline.is_empty() {
            html
        } else {
            let mut parts = vec![html];
            parts.extend(inline);
            multipart("multipart/related", parts)
        }
    });
    let body = match (text, html) {
        (Some(text), Some(html)) => Some(multipart("multipart/alternative", vec![text, html])),
        (text, html) => text.or(html),
    };
    Some(match (body, attachments.is_empty()) {
        (Some(body), true) => body,
        (None, true) => leaf("text/plain", PartContent::Text(String::new())),
        (body, false) => {
            let mut parts: Vec<PartPlan> = body.into_iter().collect();
            parts.extend(attachments);
            multipart("multipart/mixed", parts)
        }
    })
}

fn leaf(media_type: &str, content: PartContent) -> PartPlan {
    PartPlan {
        media_type: media_type.to_owned(),
        content_type_header: None,
        charset: None,
        disposition: None,
        name: None,
        cid: None,
        language: Vec::new(),
        location: None,
        headers: Vec::new(),
        header_names: Vec::new(),
        content,
    }
}

fn multipart(media_type: &str, parts: Vec<PartPlan>) -> PartPlan {
    leaf(media_type, PartContent::Multipart(parts))
}

/// The host part of generated Message-IDs; set once at start-up from the server's public
/// name (`set_message_id_host`), else the machine's host name.
static MESSAGE_ID_HOST: OnceLock<String> = OnceLock::new();

/// Sets the host of generated Message-IDs (first call wins). Ignores names that are not
/// plain DNS names.
pub fn set_message_id_host(host: &str) {
    if is_dns_name(host) {
        let _ = MESSAGE_ID_HOST.set(host.to_ascii_lowercase());
    }
}

fn message_id_host() -> &'static str {
    MESSAGE_ID_HOST.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .map(|name| name.trim().to_ascii_lowercase())
            .find(|name| is_dns_name(name))
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.bytes().any(|byte| byte.is_ascii_alphabetic())
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
}

/// A new globally unique Message-ID (without angle brackets) under the server's host.
pub fn generate_message_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!(
        "{now:x}.{:016x}@{}",
        rand::random::<u64>(),
        message_id_host()
    )
}

/// Writes the planned message; `blobs` holds the content of every id of
/// [`MessagePlan::blob_ids`]. Adds Message-ID (when absent), Date (when absent, now) and
/// MIME-Version (RFC 5322 §3.6, RFC 2045 §4).
pub fn render_message(
    plan: MessagePlan,
    blobs: &HashMap<String, Vec<u8>>,
) -> Result<Vec<u8>, BuildError> {
    let mut builder = MessageBuilder::new();
    builder.headers = plan.headers;
    if !plan.has_message_id {
        builder = builder.message_id(MessageId::new(generate_message_id()));
    }
    builder = builder.body(mime_part(plan.body, blobs)?);
    // Writing to a Vec cannot fail.
    builder
        .write_to_vec()
        .map_err(|error| BuildError::TooLarge(error.to_string()))
}

fn mime_part(
    part: PartPlan,
    blobs: &HashMap<String, Vec<u8>>,
) -> Result<MimePart<'static>, BuildError> {
    let is_text_content = matches!(part.content, PartContent::Text(_));
    let contents = match part.content {
        PartContent::Text(text) => BodyPart::Text(text.into()),
        PartContent::Blob(id) => match blobs.get(&id) {
            Some(bytes) => BodyPart::Binary(bytes.clone().into()),
            None => return Err(BuildError::BlobNotFound(vec![id])),
        },
        PartContent::Multipart(children) => BodyPart::Multipart(
            children
                .into_iter()
                .map(|child| mime_part(child, blobs))
                .collect::<Result<_, _>>()?,
        ),
    };
    let content_type: HeaderType<'static> = match part.content_type_header {
        Some(header) => header,
        None => {
            let mut content_type = ContentType::new(part.media_type.clone());
            if is_text_content {
                // Text from bodyValues is written as UTF-8, whatever the client's charset.
                content_type = content_type.attribute("charset", "utf-8");
            } else if let Some(charset) = part.charset {
                content_type = content_type.attribute("charset", charset);
            }
            if let Some(name) = &part.name {
                content_type = content_type.attribute("name", name.clone());
            }
            content_type.into()
        }
    };
    let mut headers: Vec<(Cow<'static, str>, HeaderType<'static>)> =
        vec![("Content-Type".into(), content_type)];
    let disposition = part
        .disposition
        .or_else(|| part.name.is_some().then(|| "attachment".to_owned()));
    if let Some(disposition) = disposition {
        let mut value = ContentType::new(disposition);
        if let Some(name) = part.name {
            value = value.attribute("filename", name);
        }
        headers.push(("Content-Disposition".into(), value.into()));
    }
    if let Some(cid) = part.cid {
        headers.push(("Content-ID".into(), MessageId::new(cid).into()));
    }
    if !part.language.is_empty() {
        headers.push((
            "Content-Language".into(),
            Raw::new(part.language.join(", ")).into(),
        ));
    }
    if let Some(location) = part.location {
        headers.push(("Content-Location".into(), Raw::new(location).into()));
    }
    headers.extend(part.headers);
    Ok(MimePart { headers, contents })
}

#[cfg(test)]
mod tests;
