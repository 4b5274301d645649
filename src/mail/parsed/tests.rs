use super::*;

fn part_types(parsed: &ParsedEmail, indexes: &[u32]) -> Vec<String> {
    indexes
        .iter()
        .map(|&index| {
            parsed
                .part(index)
                .map(|p| p.content_type.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// The structure of the RFC 8621 §4.1.4 example, as a message. Each leaf's body is its letter.
const RFC_EXAMPLE: &str = "From: a@example.test\r\n\
Subject: structure\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
Content-Disposition: inline\r\n\
\r\n\
A\r\n\
--outer\r\n\
Content-Type: multipart/mixed; boundary=\"mixed2\"\r\n\
\r\n\
--mixed2\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: multipart/mixed; boundary=\"mixed3\"\r\n\
\r\n\
--mixed3\r\n\
Content-Type: text/plain\r\n\
Content-Disposition: inline\r\n\
\r\n\
B\r\n\
--mixed3\r\n\
Content-Type: image/jpeg\r\n\
Content-Disposition: inline\r\n\
\r\n\
C\r\n\
--mixed3\r\n\
Content-Type: text/plain\r\n\
Content-Disposition: inline\r\n\
\r\n\
D\r\n\
--mixed3--\r\n\
--alt\r\n\
Content-Type: multipart/related; boundary=\"rel\"\r\n\
\r\n\
--rel\r\n\
Content-Type: text/html\r\n\
\r\n\
E\r\n\
--rel\r\n\
Content-Type: image/jpeg\r\n\
\r\n\
F\r\n\
--rel--\r\n\
--alt--\r\n\
--mixed2\r\n\
Content-Type: image/jpeg\r\n\
Content-Disposition: attachment\r\n\
\r\n\
G\r\n\
--mixed2\r\n\
Content-Type: application/x-excel\r\n\
\r\n\
H\r\n\
--mixed2\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: J\r\n\
\r\n\
J\r\n\
--mixed2--\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
Content-Disposition: inline\r\n\
\r\n\
K\r\n\
--outer--\r\n";

/// The letter each leaf's body starts with (message/rfc822 J starts with its header).
fn letters(parsed: &ParsedEmail, raw: &[u8], indexes: &[u32]) -> String {
    indexes
        .iter()
        .map(|&index| {
            let part = parsed.part(index).expect("part");
            let body = &raw[part.body_start as usize..part.body_end as usize];
            if part.content_type == "message/rfc822" {
                'J'
            } else {
                char::from(body[0])
            }
        })
        .collect()
}

#[test]
fn rfc_8621_body_lists_example() {
    let raw = RFC_EXAMPLE.as_bytes();
    let parsed = parse_message(raw);
    assert_eq!(letters(&parsed, raw, &parsed.text_body), "ABCDK");
    assert_eq!(letters(&parsed, raw, &parsed.html_body), "AEK");
    assert_eq!(letters(&parsed, raw, &parsed.attachments), "CFGHJ");
    assert!(parsed.has_attachment);
    assert_eq!(parsed.subject.as_deref(), Some("structure"));
    // The tree: root mixed with three children; leaves carry exact bodies.
    let root = &parsed.parts[0];
    assert_eq!(root.content_type, "multipart/mixed");
    assert_eq!(root.sub_parts.len(), 3);
    let k = parsed.part(root.sub_parts[2]).unwrap();
    assert_eq!(&raw[k.body_start as usize..k.body_end as usize], b"K");
    assert_eq!(k.size, 1);
    assert_eq!(k.charset.as_deref(), Some("us-ascii"));
    assert_eq!(k.disposition.as_deref(), Some("inline"));
    let j = parsed.part(parsed.attachments[4]).unwrap();
    assert_eq!(
        &raw[j.body_start as usize..j.body_end as usize],
        b"Subject: J\r\n\r\nJ"
    );
    assert_eq!(
        part_types(&parsed, &parsed.attachments),
        [
            "image/jpeg",
            "image/jpeg",
            "image/jpeg",
            "application/x-excel",
            "message/rfc822"
        ]
    );
    assert!(parsed.preview.starts_with('A'), "{}", parsed.preview);
}

#[test]
fn alternative_with_one_side_fills_both() {
    let raw = b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>there</b></p>\r\n--b--\r\n";
    let parsed = parse_message(raw);
    assert_eq!(parsed.text_body, parsed.html_body);
    assert_eq!(part_types(&parsed, &parsed.text_body), ["text/html"]);
    assert!(parsed.attachments.is_empty());
    assert!(!parsed.has_attachment);
    assert_eq!(parsed.preview, "Hello there");
}

#[test]
fn list_properties_from_headers() {
    let raw = "Message-ID: <m1@x.test>\r\n\
In-Reply-To: <p@x.test>\r\n\
References: <r@x.test> <p@x.test>\r\n\
From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n\
To: undisclosed-recipients:;\r\n\
Cc: a@x.test, B <b@x.test>\r\n\
Date: Fri, 21 Nov 1997 09:55:06 -0600\r\n\
Subject: Re: hello\r\n\
\r\n\
Body   text\r\n\r\n  here.\r\n";
    let parsed = parse_message(raw.as_bytes());
    assert_eq!(parsed.size, raw.len() as u64);
    assert_eq!(parsed.message_id, Some(vec!["m1@x.test".to_owned()]));
    assert_eq!(parsed.in_reply_to, Some(vec!["p@x.test".to_owned()]));
    assert_eq!(
        parsed.references,
        Some(vec!["r@x.test".to_owned(), "p@x.test".to_owned()])
    );
    assert_eq!(
        parsed.from,
        Some(vec![EmailAddress {
            name: Some("André Pirard".to_owned()),
            email: "PIRARD@vm1.ulg.ac.be".to_owned()
        }])
    );
    assert_eq!(parsed.to, Some(vec![]));
    assert_eq!(parsed.cc.as_ref().map(Vec::len), Some(2));
    assert_eq!(parsed.bcc, None);
    assert_eq!(parsed.sent_at.as_deref(), Some("1997-11-21T09:55:06-06:00"));
    assert_eq!(parsed.sent_at_unix, Some(880127706));
    assert_eq!(parsed.subject.as_deref(), Some("Re: hello"));
    assert_eq!(parsed.preview, "Body text here.");
    assert_eq!(part_types(&parsed, &parsed.text_body), ["text/plain"]);
    assert_eq!(parsed.parts.len(), 1);
}

#[test]
fn preview_is_at_most_256_characters() {
    let body = "é".repeat(1000);
    let raw = format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{body}");
    let parsed = parse_message(raw.as_bytes());
    assert_eq!(parsed.preview.chars().count(), PREVIEW_CHARS);
    assert_eq!(preview_of("  a \r\n\t b  "), "a b");
}

#[test]
fn garbage_still_parses() {
    for raw in [
        &b""[..],
        b"\x00\x01\x02",
        b"no header here",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!!",
    ] {
        let parsed = parse_message(raw);
        assert!(!parsed.parts.is_empty(), "{raw:?}");
        assert_eq!(parsed.size, raw.len() as u64);
    }
}

#[test]
fn metadata_round_trips_through_serde() {
    let parsed = parse_message(RFC_EXAMPLE.as_bytes());
    let json = serde_json::to_vec(&parsed).unwrap();
    let back: ParsedEmail = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, parsed);
}
