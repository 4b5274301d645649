//! A deterministic, dependency-free fuzz pass over the request parser and the engine: random
//! bytes, byte-level mutations of valid requests, and structure-aware mutations. Every input
//! must yield a response or one of the RFC 8620 §3.6.1 problem types, never a panic. The
//! libFuzzer target in `conformance/fuzz/` explores the same surface without a time bound.

use serde_json::{Value, json};

use super::error::RequestErrorType;
use super::request::Request;
use super::test_support::{alice, engine};
use crate::test_random::Generator;

const SEEDS: &[&str] = &[
    r#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":[1,2,{"b":null}]},"c0"]]}"#,
    r##"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"ids":["x","y"]},"a"],["Core/echo",{"#ids":{"resultOf":"a","name":"Core/echo","path":"/ids/*"}},"b"]],"createdIds":{"k":"m1"}}"##,
    r##"{"using":[],"methodCalls":[["Blob/copy",{"fromAccountId":"a1","accountId":"a2","blobIds":["G00"]},"z"]]}"##,
];

/// Interesting fragments to splice in: JSON punctuation, escapes, pointer syntax, numbers at
/// the edges of what I-JSON allows, invalid UTF-8.
const FRAGMENTS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"9007199254740993",
    b"\\u0000",
    b"\\ud800",
    b"#",
    b"/*/",
    b"~",
    b"~2",
    b"\xff\xfe",
    b"\xc3",
    b"\"#ids\"",
    b"\"methodCalls\"",
    b"\"using\"",
    b"\"resultOf\"",
    b"\"path\":\"/*/*/*\"",
    b"\"createdIds\":{\"#\":1}",
];

fn mutate(generator: &mut Generator, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=generator.below(4) {
        let position = generator.below(bytes.len() + 1);
        match generator.below(5) {
            0 if !bytes.is_empty() => {
                let end = (position + generator.below(8)).min(bytes.len());
                bytes.drain(position.min(end)..end);
            }
            1 => {
                let fragment = FRAGMENTS[generator.below(FRAGMENTS.len())];
                bytes.splice(position..position, fragment.iter().copied());
            }
            2 if position < bytes.len() => bytes[position] ^= 1 << generator.below(8),
            3 => bytes.insert(position, generator.next() as u8),
            _ => bytes.truncate(position),
        }
    }
    bytes
}

/// Replaces a random node of a JSON document by a random other value.
fn mutate_structure(generator: &mut Generator, document: &mut Value) {
    let replacement = match generator.below(8) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!("#"),
        3 => json!({"resultOf": "a", "name": "Core/echo", "path": "/*"}),
        4 => json!([]),
        5 => json!({}),
        6 => json!("x".repeat(300)),
        _ => json!(1u64 << 60),
    };
    let mut node = document;
    loop {
        let next_index = match node {
            Value::Array(items) if !items.is_empty() && generator.below(3) > 0 => {
                Some(generator.below(items.len()))
            }
            Value::Object(members) if !members.is_empty() && generator.below(3) > 0 => {
                Some(generator.below(members.len()))
            }
            _ => None,
        };
        let Some(index) = next_index else {
            *node = replacement;
            return;
        };
        node = match node {
            Value::Array(items) => &mut items[index],
            Value::Object(members) => members.values_mut().nth(index).expect("index < len"),
            _ => unreachable!("only containers have a next index"),
        };
    }
}

fn is_rfc_problem_type(kind: &str) -> bool {
    RequestErrorType::ALL
        .iter()
        .any(|known| known.urn() == kind)
}

#[tokio::test]
async fn random_and_mutated_requests_never_panic() {
    let test = engine();
    let principal = alice();
    let mut generator = Generator(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let body: Vec<u8> = match round % 3 {
            0 => (0..generator.below(64))
                .map(|_| generator.next() as u8)
                .collect(),
            1 => {
                let seed = SEEDS[generator.below(SEEDS.len())];
                mutate(&mut generator, seed.as_bytes())
            }
            _ => {
                let seed = SEEDS[generator.below(SEEDS.len())];
                let mut document: Value = serde_json::from_str(seed).expect("seed parses");
                mutate_structure(&mut generator, &mut document);
                serde_json::to_vec(&document).expect("serialize")
            }
        };
        // The parser alone, then the whole engine.
        let _ = Request::parse(&body, 64);
        match test.engine.handle_api(&principal, &body).await {
            Ok(response) => {
                assert!(
                    response["methodResponses"].is_array(),
                    "round {round}: {response}"
                );
            }
            Err(problem) => {
                assert!(
                    is_rfc_problem_type(&problem.kind),
                    "round {round}: {problem:?}"
                );
                assert_eq!(problem.status, 400);
            }
        }
    }
}
