//! Fuzzes reading messages (RFC 5322/MIME): any bytes must give a ParsedEmail whose part
//! offsets lie inside the input, and every Email property must render, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::jmap::mail::email::render::{BodyOptions, BodyProperty, EmailProperty, render_object};
use tern::jmap::types::BlobId;
use tern::mail::parsed::parse_message;

fuzz_target!(|raw: &[u8]| {
    let parsed = parse_message(raw);
    assert_eq!(parsed.size, raw.len() as u64);
    for part in &parsed.parts {
        assert!(part.header_start <= part.body_start);
        assert!(part.body_start <= part.body_end);
        assert!(part.body_end as usize <= raw.len());
    }
    let mut properties = EmailProperty::get_defaults();
    for extra in [
        "headers",
        "bodyStructure",
        "header:From:asGroupedAddresses:all",
        "header:Date:asDate",
        "header:Message-ID:asMessageIds",
        "header:X-Any:asURLs",
    ] {
        properties.extend(EmailProperty::parse(extra));
    }
    let mut body_properties = BodyProperty::defaults();
    body_properties.push(BodyProperty::Headers);
    let options = BodyOptions {
        body_properties,
        fetch_all_body_values: true,
        max_body_value_bytes: 13,
        ..BodyOptions::default()
    };
    let rendered = render_object(
        &parsed,
        Some(raw),
        &BlobId::from_digest([0; 32]),
        &properties,
        &options,
    );
    assert!(!rendered.is_empty());
});
