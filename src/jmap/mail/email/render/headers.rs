//! Header fields read from a raw header block, in the parsed forms of RFC 8621 §4.1.2.

use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};
use serde_json::{Map, Value, json};

use crate::mail::parsed::{addresses, email_address, message_ids};

/// RFC 8621 §4.1.2: the forms a header field can be fetched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderForm {
    Raw,
    Text,
    Addresses,
    GroupedAddresses,
    MessageIds,
    Date,
    Urls,
}

impl HeaderForm {
    pub fn parse(suffix: &str) -> Option<HeaderForm> {
        Some(match suffix {
            "asRaw" => HeaderForm::Raw,
            "asText" => HeaderForm::Text,
            "asAddresses" => HeaderForm::Addresses,
            "asGroupedAddresses" => HeaderForm::GroupedAddresses,
            "asMessageIds" => HeaderForm::MessageIds,
            "asDate" => HeaderForm::Date,
            "asURLs" => HeaderForm::Urls,
            _ => return None,
        })
    }

    /// RFC 8621 §4.1.2.1–§4.1.2.7: which fields each form may be used with. Raw goes with
    /// every field; the others with their listed fields and with any field RFC 5322 and
    /// RFC 2369 do not define.
    pub fn allowed_for(self, lowercase_name: &str) -> bool {
        const TEXT: &[&str] = &["subject", "comments", "keywords", "list-id"];
        const ADDRESSES: &[&str] = &[
            "from",
            "sender",
            "reply-to",
            "to",
            "cc",
            "bcc",
            "resent-from",
            "resent-sender",
            "resent-reply-to",
            "resent-to",
            "resent-cc",
            "resent-bcc",
        ];
        const MESSAGE_IDS: &[&str] = &[
            "message-id",
            "in-reply-to",
            "references",
            "resent-message-id",
        ];
        const DATE: &[&str] = &["date", "resent-date"];
        const URLS: &[&str] = &[
            "list-help",
            "list-unsubscribe",
            "list-subscribe",
            "list-post",
            "list-owner",
            "list-archive",
        ];
        const OTHER_DEFINED: &[&str] = &["return-path", "received"];
        let listed = |fields: &[&str]| fields.contains(&lowercase_name);
        let defined = [TEXT, ADDRESSES, MESSAGE_IDS, DATE, URLS, OTHER_DEFINED]
            .iter()
            .any(|fields| listed(fields));
        match self {
            HeaderForm::Raw => true,
            HeaderForm::Text => !defined || listed(TEXT),
            HeaderForm::Addresses | HeaderForm::GroupedAddresses => !defined || listed(ADDRESSES),
            HeaderForm::MessageIds => !defined || listed(MESSAGE_IDS),
            HeaderForm::Date => !defined || listed(DATE),
            HeaderForm::Urls => !defined || listed(URLS),
        }
    }
}

/// One header field of a raw header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawField<'a> {
    /// As written in the message (case kept, surrounding whitespace removed).
    pub name: &'a str,
    /// From just after the colon up to, not including, the field's final line break.
    pub value: &'a [u8],
}

/// Most header fields read of one header block (issue 13: the cost of one Email's rendering is
/// bounded). RFC 5322 sets no limit; fields after these are not shown.
pub const MAX_HEADER_FIELDS: usize = 1000;

/// The header fields of `block` in order, up to the blank line that ends them (and at most
/// [`MAX_HEADER_FIELDS`]). Lines that are neither a field nor a continuation (malformed
/// input) are skipped.
pub fn raw_fields(block: &[u8]) -> Vec<RawField<'_>> {
    let mut fields: Vec<RawField<'_>> = Vec::new();
    // (name, value start, value end) of the field being read.
    let mut current: Option<(&str, usize, usize)> = None;
    let mut position = 0;
    while position < block.len() {
        let line_end = block[position..]
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(block.len(), |at| position + at);
        let mut content_end = line_end;
        if content_end > position && block[content_end - 1] == b'\r' {
            content_end -= 1;
        }
        let line = &block[position..content_end];
        let next = (line_end + 1).min(block.len());
        if line.is_empty() {
            break;
        }
        if fields.len() >= MAX_HEADER_FIELDS {
            return fields;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some((_, _, end)) = current.as_mut() {
                *end = content_end;
            }
        } else {
            if let Some((name, start, end)) = current.take() {
                fields.push(RawField {
                    name,
                    value: &block[start..end],
                });
            }
            if let Some(colon) = line.iter().position(|&byte| byte == b':')
                && let Ok(name) = std::str::from_utf8(&line[..colon])
                && !name.trim().is_empty()
            {
                current = Some((name.trim(), position + colon + 1, content_end));
            }
        }
        position = next;
    }
    if let Some((name, start, end)) = current {
        fields.push(RawField {
            name,
            value: &block[start..end],
        });
    }
    fields
}

/// RFC 8621 §4.1.3 `headers`: every field, in order, with its Raw value.
pub fn all_headers(block: &[u8]) -> Value {
    Value::Array(
        raw_fields(block)
            .iter()
            .map(|field| json!({"name": field.name, "value": raw_text(field.value)}))
            .collect(),
    )
}

/// `header:{name}[:as{form}][:all]` of one header block: the last field's value (or `null`
/// when there is none), or with `all` every field's value in order (`[]` when none).
pub fn header_value(block: &[u8], lowercase_name: &str, form: HeaderForm, all: bool) -> Value {
    let fields = raw_fields(block);
    let mut matching = fields
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case(lowercase_name));
    if all {
        Value::Array(
            matching
                .map(|field| parse_form(field.value, form))
                .collect(),
        )
    } else {
        matching
            .next_back()
            .map_or(Value::Null, |field| parse_form(field.value, form))
    }
}

/// RFC 8621 §4.1.2.1 Raw: the octets as they are (invalid UTF-8 replaced).
fn raw_text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// The value followed by a line break, so mail-parser's field parsers find its end.
fn terminated(value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(value.len() + 2);
    bytes.extend_from_slice(value);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// One field value in `form`.
pub fn parse_form(value: &[u8], form: HeaderForm) -> Value {
    let bytes = terminated(value);
    match form {
        HeaderForm::Raw => Value::String(raw_text(value)),
        // RFC 8621 §4.1.2.2: unfolded, RFC 2047 encoded words decoded, whitespace trimmed.
        HeaderForm::Text => match MessageStream::new(&bytes).parse_unstructured() {
            HeaderValue::Text(text) => Value::String(text.trim().to_owned()),
            _ => Value::String(String::new()),
        },
        HeaderForm::Addresses => {
            let parsed = MessageStream::new(&bytes).parse_address();
            serde_json::to_value(addresses(&parsed)).unwrap_or(Value::Array(Vec::new()))
        }
        HeaderForm::GroupedAddresses => {
            grouped_addresses(&MessageStream::new(&bytes).parse_address())
        }
        // RFC 5322 §3.6.4: a msg-id is in angle brackets; a bare token does not parse.
        HeaderForm::MessageIds if !value.contains(&b'<') => Value::Null,
        HeaderForm::MessageIds => message_ids(&MessageStream::new(&bytes).parse_id())
            .map_or(Value::Null, |ids| json!(ids)),
        HeaderForm::Date => match MessageStream::new(&bytes).parse_date() {
            HeaderValue::DateTime(date) if date.is_valid() => Value::String(date.to_rfc3339()),
            _ => Value::Null,
        },
        HeaderForm::Urls => urls(value),
    }
}

/// RFC 8621 §4.1.2.4 GroupedAddresses: addresses outside any group form groups named null.
fn grouped_addresses(value: &HeaderValue<'_>) -> Value {
    let group = |name: Option<&str>, members: Vec<Value>| {
        let mut object = Map::new();
        object.insert("name".to_owned(), json!(name));
        object.insert("addresses".to_owned(), Value::Array(members));
        Value::Object(object)
    };
    let member_list = |list: &[mail_parser::Addr<'_>]| -> Vec<Value> {
        list.iter()
            .filter_map(email_address)
            .filter_map(|address| serde_json::to_value(address).ok())
            .collect()
    };
    match value {
        HeaderValue::Address(Address::List(list)) => {
            Value::Array(vec![group(None, member_list(list))])
        }
        HeaderValue::Address(Address::Group(groups)) => Value::Array(
            groups
                .iter()
                .map(|entry| group(entry.name.as_deref(), member_list(&entry.addresses)))
                .collect(),
        ),
        _ => Value::Array(Vec::new()),
    }
}

/// RFC 8621 §4.1.2.7 URLs (RFC 2369 list): the URLs in angle brackets, or `null` when the
/// value has none.
fn urls(value: &[u8]) -> Value {
    let text = String::from_utf8_lossy(value);
    let mut found = Vec::new();
    let mut rest = text.as_ref();
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            break;
        };
        let url: String = after[..close]
            .chars()
            .filter(|character| !character.is_whitespace())
            .collect();
        if !url.is_empty() {
            found.push(Value::String(url));
        }
        rest = &after[close + 1..];
    }
    if found.is_empty() {
        Value::Null
    } else {
        Value::Array(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &[u8] = b"From: \"Joe Q. Public\" <john.q.public@example.com>\r\n\
To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n\
Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\r\n\
Subject: =?UTF-8?Q?caf=C3=A9?=\r\n  folded\r\n\
Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n\
Message-ID: <5678.21-Nov-1997@example.com>\r\n\
References: <a@x> <b@y>\r\n\
X-Multi: one\r\n\
X-Multi: two\r\n\
List-Unsubscribe: <mailto:list@host.com?subject=unsubscribe>, <https://x.test/u>\r\n\
Bcc: A Group: Ed Jones <c@a.test>, joe@where.test;, John <jdoe@one.test>\r\n\
\r\n\
body: not a header\r\n";

    #[test]
    fn raw_fields_and_headers_property() {
        let fields = raw_fields(BLOCK);
        assert_eq!(fields.len(), 11);
        assert_eq!(fields[3].name, "Subject");
        assert_eq!(fields[3].value, b" =?UTF-8?Q?caf=C3=A9?=\r\n  folded");
        let headers = all_headers(BLOCK);
        assert_eq!(headers[7], json!({"name": "X-Multi", "value": " one"}));
    }

    #[test]
    fn forms() {
        let value = |name, form, all| header_value(BLOCK, name, form, all);
        assert_eq!(
            value("subject", HeaderForm::Text, false),
            json!("café folded")
        );
        assert_eq!(
            value("x-multi", HeaderForm::Raw, true),
            json!([" one", " two"])
        );
        assert_eq!(value("x-multi", HeaderForm::Raw, false), json!(" two"));
        assert_eq!(value("x-missing", HeaderForm::Raw, false), Value::Null);
        assert_eq!(value("x-missing", HeaderForm::Raw, true), json!([]));
        assert_eq!(
            value("date", HeaderForm::Date, false),
            json!("2003-07-01T10:52:37+02:00")
        );
        assert_eq!(
            value("message-id", HeaderForm::MessageIds, false),
            json!(["5678.21-Nov-1997@example.com"])
        );
        assert_eq!(
            value("references", HeaderForm::MessageIds, false),
            json!(["a@x", "b@y"])
        );
        assert_eq!(value("x-multi", HeaderForm::MessageIds, false), Value::Null);
        assert_eq!(value("x-multi", HeaderForm::Date, false), Value::Null);
        assert_eq!(
            value("from", HeaderForm::Addresses, false),
            json!([{"name": "Joe Q. Public", "email": "john.q.public@example.com"}])
        );
        assert_eq!(
            value("to", HeaderForm::Addresses, false),
            json!([
                {"name": "Mary Smith", "email": "mary@x.test"},
                {"name": null, "email": "jdoe@example.org"},
                {"name": "Who?", "email": "one@y.test"}
            ])
        );
        assert_eq!(
            value("cc", HeaderForm::Addresses, false)[1],
            json!({"name": "Giant; \"Big\" Box", "email": "sysservices@example.net"})
        );
        assert_eq!(
            value("list-unsubscribe", HeaderForm::Urls, false),
            json!([
                "mailto:list@host.com?subject=unsubscribe",
                "https://x.test/u"
            ])
        );
        assert_eq!(
            value("bcc", HeaderForm::GroupedAddresses, false),
            json!([
                {"name": "A Group", "addresses": [
                    {"name": "Ed Jones", "email": "c@a.test"},
                    {"name": null, "email": "joe@where.test"}
                ]},
                {"name": null, "addresses": [{"name": "John", "email": "jdoe@one.test"}]}
            ])
        );
        assert_eq!(
            value("bcc", HeaderForm::Addresses, false),
            json!([
                {"name": "Ed Jones", "email": "c@a.test"},
                {"name": null, "email": "joe@where.test"},
                {"name": "John", "email": "jdoe@one.test"}
            ])
        );
    }

    #[test]
    fn allowed_forms() {
        assert!(HeaderForm::Text.allowed_for("subject"));
        assert!(!HeaderForm::Text.allowed_for("from"));
        assert!(HeaderForm::Text.allowed_for("x-anything"));
        assert!(!HeaderForm::Addresses.allowed_for("subject"));
        assert!(HeaderForm::Addresses.allowed_for("resent-cc"));
        assert!(!HeaderForm::Date.allowed_for("message-id"));
        assert!(!HeaderForm::Urls.allowed_for("received"));
        assert!(HeaderForm::Raw.allowed_for("received"));
        assert!(HeaderForm::MessageIds.allowed_for("content-id"));
    }

    #[test]
    fn header_fields_are_bounded() {
        let block: String = (0..5_000)
            .map(|index| format!("X-N: {index}\r\n"))
            .collect();
        let fields = raw_fields(block.as_bytes());
        assert_eq!(fields.len(), MAX_HEADER_FIELDS);
        assert_eq!(fields[MAX_HEADER_FIELDS - 1].value, b" 999");
        let all = header_value(block.as_bytes(), "x-n", HeaderForm::Raw, true);
        assert_eq!(all.as_array().map(Vec::len), Some(MAX_HEADER_FIELDS));
    }
}
