//! Fuzzes reading messages (RFC 5322/MIME): any bytes must give a ParsedEmail whose part
//! offsets lie inside the input, within the body-structure bounds (parts, nesting depth), and
//! every Email property must render, never a panic, into JSON whose size the input explains
//! (the 10,000-part message of issue 13 rendered 5 MB per Email/get from 440 KB).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::jmap::mail::email::render::{BodyOptions, BodyProperty, EmailProperty, render_object};
use tern::jmap::types::BlobId;
use tern::mail::parsed::{MAX_DEPTH, MAX_PARTS, parse_message};

fuzz_target!(|raw: &[u8]| {
    let parsed = parse_message(raw);
    assert_eq!(parsed.size, raw.len() as u64);
    assert!(parsed.parts.len() <= MAX_PARTS, "{} parts", parsed.parts.len());
    for part in &parsed.parts {
        assert!(part.header_start <= part.body_start);
        assert!(part.body_start <= part.body_end);
        assert!(part.body_end as usize <= raw.len());
    }
    assert!(depth(&parsed.parts, 0, 0) <= MAX_DEPTH + 1);
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
    // Each part renders a bounded object (13-byte body values here) and headers echo the
    // input, so the JSON stays within a constant factor of the input and the part count.
    let json = serde_json::to_vec(&rendered).expect("rendered Emails serialize");
    let bound = 64 * raw.len() + 4096 * (parsed.parts.len() + 1);
    assert!(json.len() <= bound, "{} bytes of JSON from {} bytes", json.len(), raw.len());
});

/// The nesting depth under part `index` (parts are in document order; sub_parts index them).
fn depth(parts: &[tern::mail::parsed::BodyPart], index: usize, level: usize) -> usize {
    let Some(part) = parts.get(index) else {
        return level;
    };
    assert!(level <= MAX_DEPTH + 1, "nesting deeper than {MAX_DEPTH}");
    part.sub_parts
        .iter()
        .map(|&sub| depth(parts, sub as usize, level + 1))
        .max()
        .unwrap_or(level + 1)
}
