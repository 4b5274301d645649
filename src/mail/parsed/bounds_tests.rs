//! The bounds on one message's body structure (issue 13): parts, nesting depth, and (when
//! rendered) header fields.

use super::*;

/// The pathological messages, shared with the abuse suite and `bench abuse`.
#[path = "../../../examples/bench/abuse/messages.rs"]
mod messages;
use messages::{deep_nesting as deep_message, many_parts as many_parts_message};

fn depth_of(parsed: &ParsedEmail, index: u32) -> usize {
    parsed.part(index).map_or(0, |part| {
        1 + part
            .sub_parts
            .iter()
            .map(|&child| depth_of(parsed, child))
            .max()
            .unwrap_or(0)
    })
}

fn assert_consistent(parsed: &ParsedEmail) {
    let count = parsed.parts.len() as u32;
    for part in &parsed.parts {
        assert!(part.sub_parts.iter().all(|&child| child < count));
    }
    for list in [&parsed.text_body, &parsed.html_body, &parsed.attachments] {
        assert!(list.iter().all(|&index| index < count));
    }
}

#[test]
fn ten_thousand_parts_keep_the_first_thousand() {
    let raw = many_parts_message(10_000);
    assert!(raw.len() > 400_000);
    let parsed = parse_message(&raw);
    assert_eq!(parsed.parts.len(), MAX_PARTS);
    assert_eq!(parsed.parts[0].sub_parts.len(), MAX_PARTS - 1);
    assert_eq!(parsed.text_body.len(), MAX_PARTS - 1);
    assert_consistent(&parsed);
    assert_eq!(
        parsed.preview,
        "part 0 part 1 part 2 part 3 part 4 part 5 part 6 part 7"
    );
}

#[test]
fn five_thousand_deep_is_cut_at_max_depth() {
    let raw = deep_message(5_000);
    let started = std::time::Instant::now();
    let parsed = parse_message(&raw);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "parsed in {:?}",
        started.elapsed()
    );
    assert!(
        parsed.parts.len() <= MAX_DEPTH + 2,
        "{} parts",
        parsed.parts.len()
    );
    assert!(depth_of(&parsed, 0) <= MAX_DEPTH + 1);
    assert_consistent(&parsed);
}

#[test]
fn stored_structures_over_the_bound_are_cut_on_reading() {
    // What an earlier version stored for the 10,000-part message: every part.
    let mut stored = parse_message(&many_parts_message(3));
    let leaf = stored.parts[1].clone();
    stored.parts.truncate(1);
    stored.parts[0].sub_parts.clear();
    for index in 1..=5_000u32 {
        stored.parts.push(leaf.clone());
        stored.parts[0].sub_parts.push(index);
    }
    stored.text_body = (1..=5_000).collect();
    stored.html_body = stored.text_body.clone();
    let decoded = ParsedEmail::decode_stored(&stored.encode_stored()).unwrap();
    assert_eq!(
        decoded.parts.len(),
        5_001,
        "the stored form still decodes whole"
    );
    let mut bounded = decoded;
    bounded.bound_structure();
    assert_eq!(bounded.parts.len(), MAX_PARTS);
    assert_eq!(bounded.text_body.len(), MAX_PARTS - 1);
    assert_consistent(&bounded);
    let mut small = parse_message(&many_parts_message(3));
    let before = small.clone();
    small.bound_structure();
    assert_eq!(small, before, "small structures are untouched");
}
