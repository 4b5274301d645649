//! What `plan_message` + `render_message` build, read back with mail-parser.

use std::collections::HashMap;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::{Map, Value, json};

use super::*;

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(members) => members,
        _ => panic!("test objects are JSON objects"),
    }
}

fn build(value: Value, blobs: &[(&str, &[u8])]) -> Vec<u8> {
    let plan = plan_message(&object(value)).expect("valid Email");
    let blobs: HashMap<String, Vec<u8>> = blobs
        .iter()
        .map(|(id, bytes)| ((*id).to_owned(), bytes.to_vec()))
        .collect();
    render_message(plan, &blobs).expect("renders")
}

fn invalid(value: Value) -> Vec<String> {
    match plan_message(&object(value)) {
        Err(BuildError::InvalidProperties { properties, .. }) => properties,
        other => panic!("expected invalidProperties, got {other:?}"),
    }
}

fn header_text(raw: &[u8], name: &str) -> Option<String> {
    let message = MessageParser::default().parse(raw).expect("parses");
    message
        .header_raw(name)
        .map(|value| value.trim().to_owned())
}

/// The draft of RFC 8621 §4.6's Email/set example.
#[test]
fn rfc_8621_email_set_example_builds() {
    let raw = build(
        json!({
            "mailboxIds": {"2ea1ca41b38e": true},
            "keywords": {"$seen": true, "$draft": true},
            "from": [{"name": "Joe Bloggs", "email": "joe@example.com"}],
            "to": [{"name": "John", "email": "john@example.com"}],
            "subject": "World domination",
            "receivedAt": "2018-07-10T01:03:11Z",
            "sentAt": "2018-07-10T11:03:11+10:00",
            "bodyStructure": {
                "type": "text/plain",
                "partId": "bd48",
                "header:Content-Language": "en"
            },
            "bodyValues": {
                "bd48": {
                    "value": "I have the most brilliant plan. Let me tell you all about it. What we do is, we",
                    "isTruncated": false
                }
            }
        }),
        &[],
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Date: Tue, 10 Jul 2018 11:03:11 +1000\r\n"),
        "{text}"
    );
    assert!(text.contains("MIME-Version: 1.0\r\n"), "{text}");
    assert!(text.contains("Content-Language: en\r\n"), "{text}");
    assert!(!text.contains("mailboxIds") && !text.contains("$draft"));
    let message = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(message.subject(), Some("World domination"));
    let from = message.from().and_then(|from| from.first()).expect("from");
    assert_eq!(from.name(), Some("Joe Bloggs"));
    assert_eq!(from.address(), Some("joe@example.com"));
    let to = message.to().and_then(|to| to.first()).expect("to");
    assert_eq!(to.address(), Some("john@example.com"));
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("I have the most brilliant plan. Let me tell you all about it. What we do is, we")
    );
    let date = message.date().expect("date");
    assert_eq!((date.tz_before_gmt, date.tz_hour), (false, 10));
    // RFC 5322 §3.6.4: a Message-ID was generated under a host name.
    let message_id = message.message_id().expect("Message-ID");
    assert!(message_id.contains('@'), "{message_id}");
    let content_type = message.root_part().content_type().expect("content type");
    assert_eq!(content_type.ctype(), "text");
    assert_eq!(content_type.subtype(), Some("plain"));
    assert_eq!(content_type.attribute("charset"), Some("utf-8"));
}

#[test]
fn text_and_html_become_multipart_alternative() {
    let raw = build(
        json!({
            "subject": "Ünïcödé subject",
            "textBody": [{"partId": "t", "type": "text/plain"}],
            "htmlBody": [{"partId": "h"}],
            "bodyValues": {
                "t": {"value": "plain words\nsecond line"},
                "h": {"value": "<p>rich words</p>", "isEncodingProblem": false}
            }
        }),
        &[],
    );
    let message = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(message.subject(), Some("Ünïcödé subject"));
    let root = message.root_part().content_type().expect("content type");
    assert_eq!(
        (root.ctype(), root.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("plain words\r\nsecond line")
    );
    assert_eq!(message.body_html(0).as_deref(), Some("<p>rich words</p>"));
    assert_eq!(message.attachment_count(), 0);
    // Every line ends in CRLF (RFC 5322 §2.1).
    assert!(
        !raw.windows(2)
            .any(|pair| pair[1] == b'\n' && pair[0] != b'\r')
    );
}

#[test]
fn attachments_and_inline_images_nest_as_mixed_related_alternative() {
    let image: &[u8] = &[0x89, b'P', b'N', b'G', 0, 1, 2, 3, 255];
    let pdf: &[u8] = b"%PDF-1.4 binary \x00\x01\x02";
    let raw = build(
        json!({
            "from": [{"email": "alice@example.test"}],
            "textBody": [{"partId": "t"}],
            "htmlBody": [{"partId": "h"}],
            "attachments": [
                {"blobId": "Gimage", "type": "image/png", "disposition": "inline", "cid": "logo@x", "name": "logo.png"},
                {"blobId": "Gpdf", "type": "application/pdf", "name": "report.pdf", "size": 3}
            ],
            "bodyValues": {
                "t": {"value": "see the report"},
                "h": {"value": "<img src=\"cid:logo@x\"> see the report"}
            }
        }),
        &[("Gimage", image), ("Gpdf", pdf)],
    );
    let message = MessageParser::default().parse(&raw).expect("parses");
    let kind = |index: usize| {
        let content_type = message.parts[index].content_type().expect("content type");
        format!(
            "{}/{}",
            content_type.ctype(),
            content_type.subtype().unwrap_or("")
        )
    };
    // mixed(alternative(text, related(html, png)), pdf)
    let kinds: Vec<String> = (0..message.parts.len()).map(kind).collect();
    assert_eq!(
        kinds,
        [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "multipart/related",
            "text/html",
            "image/png",
            "application/pdf"
        ]
    );
    let png = &message.parts[5];
    assert_eq!(png.content_id(), Some("logo@x"));
    assert_eq!(png.contents(), image);
    assert!(png.content_disposition().is_some_and(|d| d.is_inline()));
    let attachment = &message.parts[6];
    assert_eq!(attachment.attachment_name(), Some("report.pdf"));
    assert_eq!(attachment.contents(), pdf);
    assert!(matches!(attachment.body, PartType::Binary(_)));
}

#[test]
fn inline_parts_without_html_are_plain_attachments() {
    let raw = build(
        json!({
            "textBody": [{"partId": "t"}],
            "attachments": [{"blobId": "Ga", "type": "image/gif", "disposition": "inline", "cid": "c@d"}],
            "bodyValues": {"t": {"value": "hello"}}
        }),
        &[("Ga", b"GIF89a")],
    );
    let message = MessageParser::default().parse(&raw).expect("parses");
    let root = message.root_part().content_type().expect("content type");
    assert_eq!(root.subtype(), Some("mixed"));
    assert_eq!(message.parts.len(), 3);
}

#[test]
fn body_structure_is_written_as_given() {
    let raw = build(
        json!({
            "bodyStructure": {
                "type": "multipart/mixed",
                "subParts": [
                    {"partId": "a", "type": "text/plain", "header:X-Part": "first"},
                    {"type": "multipart/alternative", "subParts": [
                        {"partId": "b", "type": "text/plain"},
                        {"partId": "c", "type": "text/html", "language": ["en", "fr"]}
                    ]},
                    {"blobId": "Gz", "type": "message/rfc822", "disposition": "attachment"}
                ]
            },
            "bodyValues": {
                "a": {"value": "part a"},
                "b": {"value": "part b"},
                "c": {"value": "<b>part c</b>"}
            }
        }),
        &[("Gz", b"Subject: inner\r\n\r\ninner body\r\n")],
    );
    let message = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(message.parts.len(), 6);
    assert_eq!(message.parts[1].text_contents(), Some("part a"));
    assert_eq!(
        message.parts[1]
            .headers
            .iter()
            .find(|header| header.name() == "X-Part")
            .and_then(|header| header.value().as_text()),
        Some("first")
    );
    assert_eq!(message.parts[4].text_contents(), Some("<b>part c</b>"));
    let nested = message.parts[5].message().expect("message/rfc822");
    assert_eq!(nested.subject(), Some("inner"));
}

#[test]
fn header_properties_in_every_form() {
    let raw = build(
        json!({
            "header:X-Plain:asText": "héllo wörld",
            "header:X-Raw": " raw value\r\n folded",
            "header:List-Post:asURLs": ["mailto:list@example.com"],
            "header:Resent-Date:asDate": "2020-01-02T03:04:05-05:00",
            "header:Resent-Message-ID:asMessageIds": ["a@b", "c@d"],
            "header:X-Tag:all": ["one", "two"],
            "header:From:asGroupedAddresses": [
                {"name": "Team", "addresses": [{"name": "A", "email": "a@example.com"}, {"email": "b@example.com"}]},
                {"name": null, "addresses": [{"email": "c@example.com"}]}
            ],
            "header:Cc:asAddresses": [{"name": "Zoë", "email": "z@example.com"}],
            "messageId": ["given@example.com"],
            "inReplyTo": ["parent@example.com"],
            "references": ["root@example.com", "parent@example.com"],
            "textBody": [{"partId": "t"}],
            "bodyValues": {"t": {"value": "x"}}
        }),
        &[],
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("X-Raw: raw value folded\r\n"), "{text}");
    assert!(
        text.contains("List-Post: <mailto:list@example.com>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Resent-Date: Thu, 2 Jan 2020 03:04:05 -0500\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Resent-Message-ID: <a@b> <c@d>\r\n"),
        "{text}"
    );
    assert!(text.contains("X-Tag: one\r\nX-Tag: two\r\n"), "{text}");
    assert!(
        text.contains("Message-ID: <given@example.com>\r\n"),
        "{text}"
    );
    assert_eq!(text.matches("\r\nMessage-ID:").count(), 1);
    assert_eq!(text.matches("\r\nDate:").count(), 1, "a Date is added");
    let message = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(
        message
            .header_as("X-Plain", mail_parser::HeaderForm::Text)
            .first()
            .and_then(|value| value.as_text()),
        Some("héllo wörld"),
        "RFC 2047 encoded and decoded back"
    );
    assert!(text.contains("X-Plain: =?utf-8?"), "{text}");
    assert_eq!(message.message_id(), Some("given@example.com"));
    assert_eq!(message.in_reply_to().as_text(), Some("parent@example.com"));
    let group = message.from().expect("from");
    let groups = group.as_group().expect("groups");
    assert_eq!(groups[0].name.as_deref(), Some("Team"));
    assert_eq!(groups[0].addresses.len(), 2);
    assert_eq!(
        message
            .cc()
            .and_then(|cc| cc.first())
            .and_then(|cc| cc.name()),
        Some("Zoë")
    );
    assert_eq!(
        header_text(&raw, "References").as_deref(),
        Some("<root@example.com> <parent@example.com>")
    );
}

#[test]
fn server_set_and_unknown_properties_are_named() {
    let mut properties = invalid(json!({
        "id": "e1", "blobId": "G00", "threadId": "t1", "size": 3,
        "hasAttachment": false, "preview": "x", "headers": [], "bogus": 1,
        "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x"}}
    }));
    properties.sort();
    assert_eq!(
        properties,
        [
            "blobId",
            "bogus",
            "hasAttachment",
            "headers",
            "id",
            "preview",
            "size",
            "threadId"
        ]
    );
}

#[test]
fn rfc_8621_section_4_6_rules_are_enforced() {
    let body = json!({"t": {"value": "x"}, "h": {"value": "<p>x</p>"}});
    // bodyStructure excludes textBody/htmlBody/attachments.
    let properties = invalid(json!({
        "bodyStructure": {"partId": "t"}, "textBody": [{"partId": "t"}], "bodyValues": body
    }));
    assert!(
        properties.contains(&"bodyStructure".to_owned())
            && properties.contains(&"textBody".to_owned())
    );
    // textBody: exactly one text/plain part; htmlBody: exactly one text/html part.
    assert_eq!(
        invalid(json!({"textBody": [{"partId": "t"}, {"partId": "t"}], "bodyValues": body})),
        ["textBody"]
    );
    assert_eq!(
        invalid(json!({"textBody": [{"partId": "h", "type": "text/html"}], "bodyValues": body})),
        ["textBody"]
    );
    assert_eq!(
        invalid(json!({"htmlBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": body})),
        ["htmlBody"]
    );
    assert_eq!(
        invalid(json!({"textBody": [], "bodyValues": body})),
        ["textBody"]
    );
    // Two properties for one field.
    let mut both = invalid(json!({"from": [{"email": "a@b"}], "header:FROM:asRaw": "a@b"}));
    both.sort();
    assert_eq!(both, ["from", "header:FROM:asRaw"]);
    assert_eq!(
        invalid(json!({"subject": "a", "header:Subject:asText:all": ["b"]})).len(),
        2
    );
    // Forms a field may not take.
    assert_eq!(
        invalid(json!({"header:Subject:asAddresses": [{"email": "a@b"}]})),
        ["header:Subject:asAddresses"]
    );
    assert_eq!(
        invalid(json!({"header:From:asDate": "2020-01-01T00:00:00Z"})),
        ["header:From:asDate"]
    );
    assert_eq!(
        invalid(json!({"header:Received:asText": "x"})),
        ["header:Received:asText"]
    );
    // Content-* only on parts; Content-Transfer-Encoding nowhere.
    assert_eq!(
        invalid(json!({"header:Content-Type": "text/plain"})),
        ["header:Content-Type"]
    );
    assert_eq!(
        invalid(
            json!({"textBody": [{"partId": "t", "header:Content-Transfer-Encoding": "base64"}], "bodyValues": body})
        ),
        ["textBody"]
    );
    // Part properties and header fields for the same field.
    assert_eq!(
        invalid(
            json!({"bodyStructure": {"partId": "t", "type": "text/plain", "header:Content-Type": "text/html"}, "bodyValues": body})
        ),
        ["bodyStructure"]
    );
    // partId and blobId together; charset or size with partId; unknown partId.
    assert_eq!(
        invalid(json!({"bodyStructure": {"partId": "t", "blobId": "Gx"}, "bodyValues": body})),
        ["bodyStructure"]
    );
    assert_eq!(
        invalid(json!({"bodyStructure": {"partId": "t", "charset": "utf-8"}, "bodyValues": body})),
        ["bodyStructure"]
    );
    assert_eq!(
        invalid(json!({"bodyStructure": {"partId": "t", "size": 1}, "bodyValues": body})),
        ["bodyStructure"]
    );
    assert_eq!(
        invalid(json!({"bodyStructure": {"partId": "nope"}, "bodyValues": body})),
        ["bodyStructure"]
    );
    assert_eq!(
        invalid(json!({"bodyStructure": {"type": "text/plain"}})),
        ["bodyStructure"]
    );
    assert_eq!(
        invalid(json!({"bodyStructure": {"partId": "t", "headers": []}, "bodyValues": body})),
        ["bodyStructure"]
    );
    // Multipart types go with subParts.
    assert_eq!(
        invalid(
            json!({"bodyStructure": {"partId": "t", "type": "multipart/mixed"}, "bodyValues": body})
        ),
        ["bodyStructure"]
    );
    assert_eq!(
        invalid(json!({"bodyStructure": {"type": "text/plain", "subParts": []}})),
        ["bodyStructure"]
    );
    // The root part may not repeat a top-level field.
    assert_eq!(
        invalid(
            json!({"subject": "a", "bodyStructure": {"partId": "t", "header:Subject:asText": "b"}, "bodyValues": body})
        ),
        ["bodyStructure"]
    );
    // bodyValues flags must be false or absent.
    assert_eq!(
        invalid(
            json!({"textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x", "isTruncated": true}}})
        ),
        ["bodyValues"]
    );
    assert_eq!(
        invalid(
            json!({"textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x", "isEncodingProblem": true}}})
        ),
        ["bodyValues"]
    );
    // Malformed values.
    assert_eq!(
        invalid(json!({"from": [{"email": "not an address"}]})),
        ["from"]
    );
    assert_eq!(invalid(json!({"sentAt": "yesterday"})), ["sentAt"]);
    assert_eq!(
        invalid(json!({"messageId": ["<bracketed@x>"]})),
        ["messageId"]
    );
    assert_eq!(
        invalid(json!({"header:Bad Name": "x"})),
        ["header:Bad Name"]
    );
}

#[test]
fn blob_ids_are_listed_once_and_counted_per_use() {
    let plan = plan_message(&object(json!({
        "attachments": [{"blobId": "Ga"}, {"blobId": "Gb"}, {"blobId": "Ga"}]
    })))
    .expect("valid");
    assert_eq!(plan.blob_ids(), ["Ga", "Gb"]);
    assert_eq!(plan.blob_uses().get("Ga"), Some(&2));
    let missing = render_message(plan, &HashMap::new());
    assert!(matches!(missing, Err(BuildError::BlobNotFound(_))));
}

#[test]
fn an_email_without_body_properties_still_has_a_body() {
    let raw = build(json!({"subject": "empty"}), &[]);
    let message = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(message.subject(), Some("empty"));
    assert!(message.root_part().content_type().is_some());
}

#[test]
fn an_empty_message_id_list_still_gets_a_generated_message_id() {
    let raw = build(json!({"messageId": [], "subject": "x"}), &[]);
    let message = MessageParser::default().parse(&raw).expect("parses");
    assert!(message.message_id().is_some_and(|id| id.contains('@')));
    let raw = build(
        json!({"header:message-id:asMessageIds": ["mine@example.com"]}),
        &[],
    );
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("Message-ID:").count(), 1, "{text}");
    assert!(
        text.contains("Message-ID: <mine@example.com>\r\n"),
        "{text}"
    );
}

#[test]
fn generated_message_ids_are_unique() {
    let first = generate_message_id();
    assert_ne!(first, generate_message_id());
    assert!(first.contains('@'));
}
