//! Email properties derived from the message (RFC 8621 §4.1), for Email/get and Email/parse.
//!
//! List properties come from the stored `ParsedEmail` alone; header fields, `headers`, body
//! part headers and body values read the raw message (`needs_raw` says when), which is never
//! parsed as a whole again: the stored body structure gives the byte range of each part.

use serde_json::{Map, Value, json};

use crate::jmap::context::Arguments;
use crate::jmap::error::MethodError;
use crate::jmap::types::BlobId;
use crate::mail::parsed::ParsedEmail;

mod body;
pub mod headers;

pub use headers::HeaderForm;

/// `header:{name}[:as{form}][:all]` (RFC 8621 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderProperty {
    /// The property exactly as requested (the key of the value in responses).
    pub property: String,
    /// The field name, lowercase.
    pub name: String,
    pub form: HeaderForm,
    pub all: bool,
}

impl HeaderProperty {
    /// `None` when the syntax is wrong or the form is not allowed for the field (RFC 8621
    /// §4.1.2: requesting it is `invalidArguments`).
    pub fn parse(property: &str) -> Option<HeaderProperty> {
        let rest = property.strip_prefix("header:")?;
        let mut pieces = rest.split(':');
        let name = pieces.next()?;
        // RFC 5322 §2.2: a field name is printable US-ASCII except the colon.
        if name.is_empty() || !name.bytes().all(|byte| (33..=126).contains(&byte)) {
            return None;
        }
        let mut form = HeaderForm::Raw;
        let mut all = false;
        match (pieces.next(), pieces.next(), pieces.next()) {
            (None, None, None) => {}
            (Some("all"), None, None) => all = true,
            (Some(suffix), None, None) => form = HeaderForm::parse(suffix)?,
            (Some(suffix), Some("all"), None) => {
                form = HeaderForm::parse(suffix)?;
                all = true;
            }
            _ => return None,
        }
        let name = name.to_ascii_lowercase();
        if !form.allowed_for(&name) {
            return None;
        }
        Some(HeaderProperty {
            property: property.to_owned(),
            name,
            form,
            all,
        })
    }
}

/// Every Email property of RFC 8621 §4.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EmailProperty {
    Id,
    BlobId,
    ThreadId,
    MailboxIds,
    Keywords,
    Size,
    ReceivedAt,
    MessageId,
    InReplyTo,
    References,
    Sender,
    From,
    To,
    Cc,
    Bcc,
    ReplyTo,
    Subject,
    SentAt,
    Headers,
    Header(HeaderProperty),
    BodyStructure,
    BodyValues,
    TextBody,
    HtmlBody,
    Attachments,
    HasAttachment,
    Preview,
}

impl EmailProperty {
    pub fn parse(name: &str) -> Option<EmailProperty> {
        Some(match name {
            "id" => EmailProperty::Id,
            "blobId" => EmailProperty::BlobId,
            "threadId" => EmailProperty::ThreadId,
            "mailboxIds" => EmailProperty::MailboxIds,
            "keywords" => EmailProperty::Keywords,
            "size" => EmailProperty::Size,
            "receivedAt" => EmailProperty::ReceivedAt,
            "messageId" => EmailProperty::MessageId,
            "inReplyTo" => EmailProperty::InReplyTo,
            "references" => EmailProperty::References,
            "sender" => EmailProperty::Sender,
            "from" => EmailProperty::From,
            "to" => EmailProperty::To,
            "cc" => EmailProperty::Cc,
            "bcc" => EmailProperty::Bcc,
            "replyTo" => EmailProperty::ReplyTo,
            "subject" => EmailProperty::Subject,
            "sentAt" => EmailProperty::SentAt,
            "headers" => EmailProperty::Headers,
            "bodyStructure" => EmailProperty::BodyStructure,
            "bodyValues" => EmailProperty::BodyValues,
            "textBody" => EmailProperty::TextBody,
            "htmlBody" => EmailProperty::HtmlBody,
            "attachments" => EmailProperty::Attachments,
            "hasAttachment" => EmailProperty::HasAttachment,
            "preview" => EmailProperty::Preview,
            _ => return HeaderProperty::parse(name).map(EmailProperty::Header),
        })
    }

    /// The property's name in responses (a header property keeps the requested spelling).
    pub fn name(&self) -> &str {
        match self {
            EmailProperty::Id => "id",
            EmailProperty::BlobId => "blobId",
            EmailProperty::ThreadId => "threadId",
            EmailProperty::MailboxIds => "mailboxIds",
            EmailProperty::Keywords => "keywords",
            EmailProperty::Size => "size",
            EmailProperty::ReceivedAt => "receivedAt",
            EmailProperty::MessageId => "messageId",
            EmailProperty::InReplyTo => "inReplyTo",
            EmailProperty::References => "references",
            EmailProperty::Sender => "sender",
            EmailProperty::From => "from",
            EmailProperty::To => "to",
            EmailProperty::Cc => "cc",
            EmailProperty::Bcc => "bcc",
            EmailProperty::ReplyTo => "replyTo",
            EmailProperty::Subject => "subject",
            EmailProperty::SentAt => "sentAt",
            EmailProperty::Headers => "headers",
            EmailProperty::Header(header) => &header.property,
            EmailProperty::BodyStructure => "bodyStructure",
            EmailProperty::BodyValues => "bodyValues",
            EmailProperty::TextBody => "textBody",
            EmailProperty::HtmlBody => "htmlBody",
            EmailProperty::Attachments => "attachments",
            EmailProperty::HasAttachment => "hasAttachment",
            EmailProperty::Preview => "preview",
        }
    }

    /// RFC 8621 §4.2: Email/get's default `properties`.
    pub fn get_defaults() -> Vec<EmailProperty> {
        [
            "id",
            "blobId",
            "threadId",
            "mailboxIds",
            "keywords",
            "size",
            "receivedAt",
            "messageId",
            "inReplyTo",
            "references",
            "sender",
            "from",
            "to",
            "cc",
            "bcc",
            "replyTo",
            "subject",
            "sentAt",
            "hasAttachment",
            "preview",
            "bodyValues",
            "textBody",
            "htmlBody",
            "attachments",
        ]
        .iter()
        .filter_map(|name| EmailProperty::parse(name))
        .collect()
    }

    /// RFC 8621 §4.9: Email/parse's default `properties`.
    pub fn parse_defaults() -> Vec<EmailProperty> {
        [
            "messageId",
            "inReplyTo",
            "references",
            "sender",
            "from",
            "to",
            "cc",
            "bcc",
            "replyTo",
            "subject",
            "sentAt",
            "hasAttachment",
            "preview",
            "bodyValues",
            "textBody",
            "htmlBody",
            "attachments",
        ]
        .iter()
        .filter_map(|name| EmailProperty::parse(name))
        .collect()
    }
}

/// The properties of an EmailBodyPart (RFC 8621 §4.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BodyProperty {
    PartId,
    BlobId,
    Size,
    Headers,
    Header(HeaderProperty),
    Name,
    Type,
    Charset,
    Disposition,
    Cid,
    Language,
    Location,
    SubParts,
}

impl BodyProperty {
    pub fn parse(name: &str) -> Option<BodyProperty> {
        Some(match name {
            "partId" => BodyProperty::PartId,
            "blobId" => BodyProperty::BlobId,
            "size" => BodyProperty::Size,
            "headers" => BodyProperty::Headers,
            "name" => BodyProperty::Name,
            "type" => BodyProperty::Type,
            "charset" => BodyProperty::Charset,
            "disposition" => BodyProperty::Disposition,
            "cid" => BodyProperty::Cid,
            "language" => BodyProperty::Language,
            "location" => BodyProperty::Location,
            "subParts" => BodyProperty::SubParts,
            _ => return HeaderProperty::parse(name).map(BodyProperty::Header),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            BodyProperty::PartId => "partId",
            BodyProperty::BlobId => "blobId",
            BodyProperty::Size => "size",
            BodyProperty::Headers => "headers",
            BodyProperty::Header(header) => &header.property,
            BodyProperty::Name => "name",
            BodyProperty::Type => "type",
            BodyProperty::Charset => "charset",
            BodyProperty::Disposition => "disposition",
            BodyProperty::Cid => "cid",
            BodyProperty::Language => "language",
            BodyProperty::Location => "location",
            BodyProperty::SubParts => "subParts",
        }
    }

    /// RFC 8621 §4.2: the default `bodyProperties`.
    pub fn defaults() -> Vec<BodyProperty> {
        vec![
            BodyProperty::PartId,
            BodyProperty::BlobId,
            BodyProperty::Size,
            BodyProperty::Name,
            BodyProperty::Type,
            BodyProperty::Charset,
            BodyProperty::Disposition,
            BodyProperty::Cid,
            BodyProperty::Language,
            BodyProperty::Location,
        ]
    }

    fn needs_raw(&self) -> bool {
        matches!(self, BodyProperty::Headers | BodyProperty::Header(_))
    }
}

/// The body arguments of Email/get and Email/parse (RFC 8621 §4.2, §4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyOptions {
    pub body_properties: Vec<BodyProperty>,
    pub fetch_text_body_values: bool,
    pub fetch_html_body_values: bool,
    pub fetch_all_body_values: bool,
    /// 0: no truncation.
    pub max_body_value_bytes: u64,
    /// The server's own cap on a body value (0: none), applied with `max_body_value_bytes`:
    /// `[server] memory_budget_mb` / 256 (issue 13).
    pub server_max_body_value_bytes: u64,
}

impl Default for BodyOptions {
    fn default() -> BodyOptions {
        BodyOptions {
            body_properties: BodyProperty::defaults(),
            fetch_text_body_values: false,
            fetch_html_body_values: false,
            fetch_all_body_values: false,
            max_body_value_bytes: 0,
            server_max_body_value_bytes: crate::jmap::budget::MemoryLimits::default()
                .max_body_value_bytes,
        }
    }
}

impl BodyOptions {
    /// Takes `bodyProperties`, `fetchTextBodyValues`, `fetchHTMLBodyValues`,
    /// `fetchAllBodyValues` and `maxBodyValueBytes` out of `arguments`; an unknown body
    /// property or a wrong type is `invalidArguments`.
    pub fn take(arguments: &mut Arguments) -> Result<BodyOptions, MethodError> {
        let body_properties = match arguments.take_string_list("bodyProperties")? {
            None => BodyProperty::defaults(),
            Some(names) => names
                .iter()
                .map(|name| {
                    BodyProperty::parse(name).ok_or_else(|| {
                        MethodError::invalid_arguments(format!(
                            "unknown or invalid body property {name:?}"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(BodyOptions {
            body_properties,
            fetch_text_body_values: arguments.take_bool("fetchTextBodyValues", false)?,
            fetch_html_body_values: arguments.take_bool("fetchHTMLBodyValues", false)?,
            fetch_all_body_values: arguments.take_bool("fetchAllBodyValues", false)?,
            max_body_value_bytes: arguments
                .take_unsigned("maxBodyValueBytes")?
                .map_or(0, |limit| limit.get()),
            ..BodyOptions::default()
        })
    }

    /// The size a body value is cut to: the smaller of the client's `maxBodyValueBytes` and
    /// the server's cap (0 for either: that one does not limit).
    pub fn effective_max_body_value_bytes(&self) -> u64 {
        match (self.max_body_value_bytes, self.server_max_body_value_bytes) {
            (0, server) => server,
            (client, 0) => client,
            (client, server) => client.min(server),
        }
    }
}

/// Whether rendering `properties` with `options` reads the raw message.
pub fn needs_raw(properties: &[EmailProperty], options: &BodyOptions) -> bool {
    let body_parts_need_raw = options.body_properties.iter().any(BodyProperty::needs_raw);
    properties.iter().any(|property| match property {
        EmailProperty::Headers | EmailProperty::Header(_) => true,
        EmailProperty::BodyValues => {
            options.fetch_text_body_values
                || options.fetch_html_body_values
                || options.fetch_all_body_values
        }
        EmailProperty::BodyStructure
        | EmailProperty::TextBody
        | EmailProperty::HtmlBody
        | EmailProperty::Attachments => body_parts_need_raw,
        _ => false,
    })
}

/// The value of `property` for the message, or `None` for the properties the store supplies
/// (id, threadId, mailboxIds, keywords, receivedAt) and for those that need the raw message
/// when `raw` is `None` (see [`needs_raw`]). `message_blob` is the message's blob id; part
/// blob ids are derived from it.
pub fn render(
    parsed: &ParsedEmail,
    raw: Option<&[u8]>,
    message_blob: &BlobId,
    property: &EmailProperty,
    options: &BodyOptions,
) -> Option<Value> {
    let addresses = |list: &Option<Vec<crate::mail::parsed::EmailAddress>>| {
        list.as_ref().map_or(Value::Null, |list| {
            serde_json::to_value(list).unwrap_or(Value::Null)
        })
    };
    let ids = |list: &Option<Vec<String>>| list.as_ref().map_or(Value::Null, |ids| json!(ids));
    let context = body::Context {
        parsed,
        raw,
        message_blob,
        options,
    };
    Some(match property {
        EmailProperty::Id
        | EmailProperty::ThreadId
        | EmailProperty::MailboxIds
        | EmailProperty::Keywords
        | EmailProperty::ReceivedAt => return None,
        EmailProperty::BlobId => Value::String(message_blob.to_string()),
        EmailProperty::Size => json!(parsed.size),
        EmailProperty::MessageId => ids(&parsed.message_id),
        EmailProperty::InReplyTo => ids(&parsed.in_reply_to),
        EmailProperty::References => ids(&parsed.references),
        EmailProperty::Sender => addresses(&parsed.sender),
        EmailProperty::From => addresses(&parsed.from),
        EmailProperty::To => addresses(&parsed.to),
        EmailProperty::Cc => addresses(&parsed.cc),
        EmailProperty::Bcc => addresses(&parsed.bcc),
        EmailProperty::ReplyTo => addresses(&parsed.reply_to),
        EmailProperty::Subject => json!(parsed.subject),
        EmailProperty::SentAt => json!(parsed.sent_at),
        EmailProperty::HasAttachment => json!(parsed.has_attachment),
        EmailProperty::Preview => json!(parsed.preview),
        EmailProperty::Headers => headers::all_headers(context.header_block(0)?),
        EmailProperty::Header(header) => headers::header_value(
            context.header_block(0)?,
            &header.name,
            header.form,
            header.all,
        ),
        EmailProperty::BodyStructure => context.body_structure()?,
        EmailProperty::TextBody => context.part_list(&parsed.text_body)?,
        EmailProperty::HtmlBody => context.part_list(&parsed.html_body)?,
        EmailProperty::Attachments => context.part_list(&parsed.attachments)?,
        EmailProperty::BodyValues => context.body_values()?,
    })
}

/// Renders `properties` into one JSON object (property name → value), skipping those the
/// store supplies. Convenience for Email/parse and tests.
pub fn render_object(
    parsed: &ParsedEmail,
    raw: Option<&[u8]>,
    message_blob: &BlobId,
    properties: &[EmailProperty],
    options: &BodyOptions,
) -> Map<String, Value> {
    let mut object = Map::with_capacity(properties.len());
    for property in properties {
        if let Some(value) = render(parsed, raw, message_blob, property, options) {
            object.insert(property.name().to_owned(), value);
        }
    }
    object
}

#[cfg(test)]
mod tests;
