//! Mailbox methods through the engine, without HTTP: lazy default Mailboxes for accounts that
//! predate them, and the cost of Mailbox/get.

use std::time::Instant;

use serde_json::{Value, json};

use crate::jmap::test_support::{alice, engine};
use crate::jmap::types::State;

const USING: [&str; 2] = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"];

async fn call(test: &crate::jmap::test_support::TestEngine, calls: Value) -> Vec<Value> {
    let body = serde_json::to_vec(&json!({"using": USING, "methodCalls": calls})).unwrap();
    let response = test
        .engine
        .handle_api(&alice(), &body)
        .await
        .expect("response");
    response["methodResponses"].as_array().unwrap().clone()
}

/// The test engine's accounts were never created through the directory: the first Mailbox
/// call creates their Mailboxes, once.
#[tokio::test]
async fn an_account_that_predates_mailboxes_gets_them_on_first_use() {
    let test = engine();
    let responses = call(
        &test,
        json!([["Mailbox/query", {"accountId": "a1", "filter": {"hasAnyRole": true}}, "q"]]),
    )
    .await;
    assert_eq!(responses[0][1]["ids"].as_array().unwrap().len(), 6);
    let responses = call(
        &test,
        json!([
            ["Mailbox/get", {"accountId": "a1", "ids": null, "properties": ["role"]}, "g"],
            ["Mailbox/changes", {"accountId": "a1", "sinceState": State::new(0).to_string()}, "c"]
        ]),
    )
    .await;
    assert_eq!(responses[0][1]["list"].as_array().unwrap().len(), 6);
    // Created once: six creations since the empty state, and no updates.
    assert_eq!(responses[1][1]["created"].as_array().unwrap().len(), 6);
    assert_eq!(responses[1][1]["updated"], json!([]));
    assert_eq!(responses[1][1]["updatedProperties"], Value::Null);
}

/// Mailbox/get of 20 Mailboxes with counts through the engine (target ≤ 1 ms). Run with
/// `cargo test --release --lib mailbox_get_cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn mailbox_get_cost() {
    let test = engine();
    let creates: serde_json::Map<String, Value> = (0..14)
        .map(|index| {
            (
                format!("m{index}"),
                json!({"name": format!("Folder {index}")}),
            )
        })
        .collect();
    call(
        &test,
        json!([["Mailbox/set", {"accountId": "a1", "create": creates}, "s"]]),
    )
    .await;
    let body = serde_json::to_vec(&json!({"using": USING, "methodCalls": [
        ["Mailbox/get", {"accountId": "a1", "ids": null}, "g"]]}))
    .unwrap();
    let rounds = 2_000;
    let mut timings = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let response = test
            .engine
            .handle_api(&alice(), &body)
            .await
            .expect("response");
        std::hint::black_box(serde_json::to_vec(&response).unwrap());
        timings.push(started.elapsed());
    }
    timings.sort_unstable();
    println!(
        "Mailbox/get, 20 Mailboxes with counts: p50 {:?}, p99 {:?}",
        timings[rounds / 2],
        timings[rounds * 99 / 100]
    );
}
