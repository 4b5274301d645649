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

#[test]
fn stored_metadata_round_trips_in_binary_and_old_json_still_reads() {
    let mut messages = corpus();
    messages.push(("rfc-example".to_owned(), RFC_EXAMPLE.as_bytes().to_vec()));
    let mut binary_bytes = 0;
    let mut json_bytes = 0;
    for (name, raw) in &messages {
        let parsed = parse_message(raw);
        let stored = parsed.encode_stored();
        assert_eq!(stored[0], 0x01, "{name}");
        assert_eq!(
            ParsedEmail::decode_stored(&stored).expect("binary"),
            parsed,
            "{name}"
        );
        // What earlier versions wrote (JSON) reads to the same value.
        let json = serde_json::to_vec(&parsed).unwrap();
        assert_eq!(
            ParsedEmail::decode_stored(&json).expect("json"),
            parsed,
            "{name}"
        );
        binary_bytes += stored.len();
        json_bytes += json.len();
        // Every truncation is an error, never a panic or a wrong value.
        for length in 0..stored.len() {
            assert!(
                ParsedEmail::decode_stored(&stored[..length]).is_err(),
                "{name} {length}"
            );
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert!(ParsedEmail::decode_stored(&longer).is_err(), "{name}");
    }
    // Measured: 67% on this corpus (long header values dominate), 49% on the bench's mail.
    assert!(
        binary_bytes * 4 < json_bytes * 3,
        "binary {binary_bytes} bytes vs JSON {json_bytes}"
    );
    let mut every_member = parse_message(RFC_EXAMPLE.as_bytes());
    every_member.sent_at_unix = Some(-12_345);
    every_member.sender = Some(vec![EmailAddress {
        name: None,
        email: "s@example.test".to_owned(),
    }]);
    every_member.parts[0].language = Some(vec!["en".to_owned(), "fr".to_owned()]);
    every_member.parts[0].encoding = crate::jmap::types::TransferEncoding::QuotedPrintable;
    every_member.parts[0].encoding_problem = true;
    let stored = every_member.encode_stored();
    assert_eq!(
        ParsedEmail::decode_stored(&stored).expect("decode"),
        every_member
    );
    assert!(ParsedEmail::decode_stored(b"").is_err());
    assert!(ParsedEmail::decode_stored(b"[1]").is_err());
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&directory)
        .expect("tests/corpus")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "eml"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("read corpus file"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus is missing files");
    files
}

fn corpus_file(name: &str) -> ParsedEmail {
    let (_, raw) = corpus()
        .into_iter()
        .find(|(file, _)| file == name)
        .expect("corpus file");
    parse_message(&raw)
}

/// Every corpus message parses, keeps its offsets inside the message, and renders every
/// property with every body option without panicking.
#[test]
fn corpus_parses_and_renders_everything() {
    use crate::jmap::mail::email::render::{
        BodyOptions, BodyProperty, EmailProperty, render_object,
    };
    use crate::jmap::types::BlobId;
    let mut properties = EmailProperty::get_defaults();
    for extra in [
        "headers",
        "bodyStructure",
        "header:Subject:asText",
        "header:From:asAddresses:all",
        "header:To:asGroupedAddresses",
        "header:Message-ID:asMessageIds",
        "header:Date:asDate",
        "header:List-Unsubscribe:asURLs",
        "header:X-Latin1",
        "header:Received:all",
    ] {
        properties.push(EmailProperty::parse(extra).expect(extra));
    }
    let mut body_properties = BodyProperty::defaults();
    body_properties.push(BodyProperty::Headers);
    body_properties.push(BodyProperty::parse("header:Content-Type:asText").unwrap());
    let options = BodyOptions {
        body_properties,
        fetch_all_body_values: true,
        max_body_value_bytes: 7,
        ..BodyOptions::default()
    };
    for (name, raw) in corpus() {
        let parsed = parse_message(&raw);
        assert_eq!(parsed.size, raw.len() as u64, "{name}");
        for part in &parsed.parts {
            assert!(
                part.header_start <= part.body_start
                    && part.body_start <= part.body_end
                    && part.body_end as usize <= raw.len(),
                "{name}: {part:?}"
            );
        }
        for list in [&parsed.text_body, &parsed.html_body, &parsed.attachments] {
            assert!(
                list.iter()
                    .all(|&index| parsed.part(index).is_some_and(|p| !p.is_multipart()))
            );
        }
        assert!(parsed.preview.chars().count() <= PREVIEW_CHARS, "{name}");
        let object = render_object(
            &parsed,
            Some(&raw),
            &BlobId::from_digest([1; 32]),
            &properties,
            &options,
        );
        assert_eq!(
            object.len(),
            properties.len() - 5,
            "{name}: all but the store's five"
        );
        for value in object["bodyValues"].as_object().unwrap().values() {
            assert!(value["value"].as_str().unwrap().len() <= 7, "{name}");
        }
    }
}

#[test]
fn corpus_known_answers() {
    let plain = corpus_file("plain-7bit.eml");
    assert_eq!(plain.subject.as_deref(), Some("Lunch tomorrow"));
    assert_eq!(plain.sent_at.as_deref(), Some("2026-11-02T09:15:00+01:00"));
    assert_eq!(
        plain.preview,
        "Hi Bob, Are we still on for lunch tomorrow at noon? Alice"
    );
    assert!(!plain.has_attachment);

    let structure = corpus_file("rfc8621-body-structure.eml");
    assert_eq!(structure.text_body.len(), 5);
    assert_eq!(structure.html_body.len(), 3);
    assert_eq!(structure.attachments.len(), 5);

    let base64 = corpus_file("base64-text.eml");
    assert_eq!(base64.subject.as_deref(), Some("Grüße from Cologne"));
    assert!(base64.preview.starts_with("Grüße aus Köln — ünïcödé"));
    assert_eq!(base64.parts[0].encoding, TransferEncoding::Base64);
    assert_eq!(
        base64.parts[0].size,
        "Grüße aus Köln — ünïcödé text in base64.\n".len() as u64 * 3
    );

    let qp = corpus_file("quoted-printable.eml");
    assert_eq!(qp.subject.as_deref(), Some("Café crème"));
    assert!(qp.preview.contains("doit être coupée"), "{}", qp.preview);

    let attachments = corpus_file("attachments.eml");
    assert!(attachments.has_attachment);
    let names: Vec<Option<&str>> = attachments
        .attachments
        .iter()
        .map(|&index| attachments.part(index).unwrap().name.as_deref())
        .collect();
    assert_eq!(names, [None, Some("report.pdf"), Some("€ rates.txt")]);
    let chart = attachments.part(attachments.attachments[0]).unwrap();
    assert_eq!(chart.cid.as_deref(), Some("chart@example.test"));
    let pdf = attachments.part(attachments.attachments[1]).unwrap();
    assert_eq!(pdf.language, Some(vec!["en".to_owned()]));
    assert_eq!(
        pdf.location.as_deref(),
        Some("https://example.test/report.pdf")
    );

    let forwarded = corpus_file("message-rfc822.eml");
    assert_eq!(
        part_types(&forwarded, &forwarded.attachments),
        ["message/rfc822", "message/rfc822"]
    );
    assert_eq!(forwarded.preview, "See the two attached copies.");

    let digest = corpus_file("digest.eml");
    assert_eq!(
        part_types(&digest, &digest.parts[0].sub_parts),
        ["message/rfc822", "message/rfc822"]
    );

    let eight_bit = corpus_file("8bit-headers.eml");
    assert_eq!(
        eight_bit.subject.as_deref(),
        Some("Ünïcödé subject — raw UTF-8")
    );
    assert_eq!(
        eight_bit.from.as_ref().unwrap()[0].name.as_deref(),
        Some("José Ñúñez")
    );

    let malformed = corpus_file("malformed-mime.eml");
    assert_eq!(malformed.sent_at, None);
    assert_eq!(malformed.message_id, None);
    assert!(malformed.parts.iter().any(|part| part.encoding_problem));

    let html_only = corpus_file("html-only-alternative.eml");
    assert_eq!(html_only.text_body, html_only.html_body);
    assert_eq!(html_only.preview, "Only HTML here & nothing else.");

    let deep = corpus_file("deep-nesting.eml");
    assert!(deep.parts.len() > 40);

    let huge = corpus_file("huge-headers.eml");
    assert!(huge.subject.as_deref().unwrap().ends_with("number 399"));
    assert_eq!(huge.preview, "Small body after huge headers.");

    let headers_only = corpus_file("headers-only.eml");
    assert_eq!(
        headers_only.subject.as_deref(),
        Some("No body and no blank line")
    );

    let lf = corpus_file("lf-only.eml");
    assert_eq!(
        part_types(&lf, &lf.attachments),
        ["application/octet-stream"]
    );
    assert_eq!(lf.part(lf.attachments[0]).unwrap().size, 6);

    let thread_c = corpus_file("thread-c.eml");
    assert_eq!(thread_c.references.as_ref().map(Vec::len), Some(3));
}

/// The stable-toolchain counterpart of `conformance/fuzz` `message_parser`: byte-level
/// mutations of every corpus message (truncations, flipped and spliced bytes, boundary and
/// header fragments) must parse and render without panicking.
#[test]
fn corpus_mutations_never_panic() {
    use crate::jmap::mail::email::render::{
        BodyOptions, BodyProperty, EmailProperty, render_object,
    };
    use crate::jmap::types::BlobId;
    const FRAGMENTS: &[&[u8]] = &[
        b"\r\n",
        b"\n\n",
        b"--",
        b"\r\n--outer\r\n",
        b"Content-Type: multipart/mixed; boundary=\"x\"\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"=?utf-8?B?",
        b"?=",
        b"=\r\n",
        b"=ZZ",
        b"\xff\xfe",
        b"\xc3",
        b":",
        b"<",
        b">",
        b";",
        b"\"",
        b"\t",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |bound: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1) as u64) as usize
    };
    let mut properties = EmailProperty::get_defaults();
    properties.push(EmailProperty::Headers);
    properties.push(EmailProperty::BodyStructure);
    properties.push(EmailProperty::parse("header:From:asGroupedAddresses:all").unwrap());
    let mut body_properties = BodyProperty::defaults();
    body_properties.push(BodyProperty::Headers);
    let options = BodyOptions {
        body_properties,
        fetch_all_body_values: true,
        max_body_value_bytes: 5,
        ..BodyOptions::default()
    };
    let blob = BlobId::from_digest([3; 32]);
    for (name, original) in corpus() {
        // The huge one is slow to mutate often; a few rounds are enough for it.
        let rounds = if original.len() > 50_000 { 5 } else { 150 };
        for _ in 0..rounds {
            let mut raw = original.clone();
            for _ in 0..1 + next(4) {
                let at = next(raw.len() + 1);
                match next(4) {
                    0 => raw.truncate(at),
                    1 => {
                        if at < raw.len() {
                            raw[at] ^= 1 << next(8);
                        }
                    }
                    2 => {
                        let fragment = FRAGMENTS[next(FRAGMENTS.len())];
                        raw.splice(at..at, fragment.iter().copied());
                    }
                    _ => {
                        let end = (at + next(64)).min(raw.len());
                        raw.drain(at..end);
                    }
                }
            }
            let parsed = parse_message(&raw);
            for part in &parsed.parts {
                assert!(part.body_end as usize <= raw.len(), "{name}");
            }
            let _ = render_object(&parsed, Some(&raw), &blob, &properties, &options);
        }
    }
}

#[test]
fn what_looks_like_a_message() {
    assert!(looks_like_message(b"Subject: x\r\n\r\nbody"));
    assert!(looks_like_message(b"X-Header : spaced"));
    assert!(!looks_like_message(b""));
    assert!(!looks_like_message(b"\x00\x9f\x92\x96\x00\xff"));
    assert!(!looks_like_message(b"plain text: with a colon later"));
    assert!(!looks_like_message(b"no colon at all"));
}

/// Figures for the store budget (metadata ≤ 0.3 × raw) and the import rate: run with
/// `cargo test --release --lib parse_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn parse_cost() {
    let text: String = (0..300)
        .map(|line| format!("Line {line} of a realistic message body, with some words.\r\n"))
        .collect();
    let raw = format!(
        "From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n\
Subject: A 20 KB message\r\nDate: Mon, 2 Nov 2026 09:15:00 +0100\r\n\
Message-ID: <cost@example.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<div>{text}</div>\r\n--b--\r\n"
    );
    let rounds = 2_000;
    let started = std::time::Instant::now();
    let mut parsed = parse_message(raw.as_bytes());
    for _ in 0..rounds {
        parsed = std::hint::black_box(parse_message(std::hint::black_box(raw.as_bytes())));
    }
    let per_message = started.elapsed() / rounds;
    let json = serde_json::to_vec(&parsed).unwrap();
    println!(
        "raw {} bytes; parse_message {per_message:?}; metadata as JSON {} bytes ({:.3} × raw)",
        raw.len(),
        json.len(),
        json.len() as f64 / raw.len() as f64
    );
    for (name, raw) in corpus() {
        let json = serde_json::to_vec(&parse_message(&raw)).unwrap();
        println!(
            "{name}: raw {} bytes, metadata {} bytes",
            raw.len(),
            json.len()
        );
    }
}
