//! EventSource push (RFC 8620 §7.3) through the real `jmap-client` crate (event_source) and
//! raw HTTP for pings, query errors and tickets.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::StreamExt as _;
use jmap_client::DataType as ClientDataType;
use jmap_client::client::Client;
use jmap_client::event_source::PushNotification;
use serde_json::Value;
use tern::jmap::types::{AccountId, State};
use tern::store::commit::{DataType, commit_account};

const WAIT: Duration = Duration::from_secs(10);

async fn connect(server: &TestServer, user: &common::TestUser) -> Client {
    Client::new()
        .credentials((user.email.as_str(), user.password.as_str()))
        .follow_redirects(["127.0.0.1"])
        .connect(&server.base_url())
        .await
        .expect("jmap-client connects")
}

fn account_number(user: &common::TestUser) -> u32 {
    AccountId::parse(&user.account_id)
        .expect("account id")
        .number()
}

/// A commit by a writer other than JMAP; returns the new account version.
async fn commit_change(server: &TestServer, account_id: u32, data_type: DataType) -> u64 {
    commit_account(server.running().store(), account_id, move |_tx, changes| {
        Box::pin(async move {
            changes.updated(data_type, 1);
            Ok(())
        })
    })
    .await
    .expect("commit")
    .version
}

fn state(version: u64) -> String {
    State::new(version).to_string()
}

#[tokio::test]
async fn jmap_client_event_source_gets_state_events() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let client = connect(&server, &alice).await;
    let mut events = client
        .event_source(None::<Vec<ClientDataType>>, false, None, None)
        .await
        .expect("event_source");
    commit_change(&server, account_number(server.bob()), DataType::Email).await;
    let committed_at = Instant::now();
    let version = commit_change(&server, account_number(&alice), DataType::Email).await;
    let first_id = match tokio::time::timeout(WAIT, events.next())
        .await
        .expect("event")
    {
        Some(Ok(PushNotification::StateChange(mut changes))) => {
            assert!(committed_at.elapsed() < Duration::from_secs(1));
            let id = changes
                .id()
                .map(str::to_owned)
                .expect("state events carry an id");
            let types = changes.account_changes(&alice.account_id).expect("alice");
            assert_eq!(types.get(&ClientDataType::Email), Some(&state(version)));
            assert!(changes.is_empty(), "only Alice's account");
            id
        }
        other => panic!("expected a state event, got {other:?}"),
    };
    let version = commit_change(&server, account_number(&alice), DataType::Mailbox).await;
    match tokio::time::timeout(WAIT, events.next())
        .await
        .expect("event")
    {
        Some(Ok(PushNotification::StateChange(mut changes))) => {
            assert_ne!(changes.id(), Some(first_id.as_str()));
            let types = changes.account_changes(&alice.account_id).expect("alice");
            assert_eq!(types.get(&ClientDataType::Mailbox), Some(&state(version)));
            assert_eq!(types.len(), 1, "only what changed: {types:?}");
        }
        other => panic!("expected a state event, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn closeafter_state_ends_after_one_event_of_the_wanted_types() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let client = connect(&server, &alice).await;
    let mut events = client
        .event_source(Some([ClientDataType::Email]), true, None, None)
        .await
        .expect("event_source");
    commit_change(&server, account_number(&alice), DataType::Mailbox).await;
    let version = commit_change(&server, account_number(&alice), DataType::Email).await;
    match tokio::time::timeout(WAIT, events.next())
        .await
        .expect("event")
    {
        Some(Ok(PushNotification::StateChange(mut changes))) => {
            let types = changes.account_changes(&alice.account_id).expect("alice");
            assert_eq!(types.get(&ClientDataType::Email), Some(&state(version)));
            assert!(
                !types.contains_key(&ClientDataType::Mailbox),
                "not asked for"
            );
        }
        other => panic!("expected a state event, got {other:?}"),
    }
    let end = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("the stream ends");
    assert!(
        end.is_none(),
        "closeafter=state: nothing after the first event: {end:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn last_event_id_resumes_with_what_was_missed() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let account = account_number(&alice);
    let client = connect(&server, &alice).await;
    let mut events = client
        .event_source(None::<Vec<ClientDataType>>, false, None, None)
        .await
        .expect("event_source");
    commit_change(&server, account, DataType::Email).await;
    let last_id = match tokio::time::timeout(WAIT, events.next())
        .await
        .expect("event")
    {
        Some(Ok(PushNotification::StateChange(changes))) => changes.id().expect("id").to_owned(),
        other => panic!("expected a state event, got {other:?}"),
    };
    drop(events);
    let version = commit_change(&server, account, DataType::Thread).await;
    let mut resumed = client
        .event_source(None::<Vec<ClientDataType>>, false, None, Some(&last_id))
        .await
        .expect("event_source");
    match tokio::time::timeout(WAIT, resumed.next())
        .await
        .expect("catch-up")
    {
        Some(Ok(PushNotification::StateChange(mut changes))) => {
            let types = changes.account_changes(&alice.account_id).expect("alice");
            assert_eq!(types.get(&ClientDataType::Thread), Some(&state(version)));
            assert!(!types.contains_key(&ClientDataType::Email), "already known");
        }
        other => panic!("expected the catch-up event, got {other:?}"),
    }
    server.shutdown().await;
}

/// Reads the raw stream until `wanted` appears in it, or panics after `WAIT`.
async fn read_until(response: &mut reqwest::Response, wanted: &str) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + WAIT;
    while !text.contains(wanted) {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no {wanted:?} in {text:?}"));
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {wanted:?} in {text:?}"))
            .expect("read")
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn pings_respect_the_minimum_and_bad_queries_are_refused() {
    let server =
        TestServer::start_with(|config| config.push.eventsource_min_ping_seconds = 1).await;
    let alice = server.alice().clone();
    let http = reqwest::Client::new();
    let url = format!("{}/jmap/eventsource", server.base_url());
    let mut response = http
        .get(format!("{url}?types=*&closeafter=no&ping=0"))
        .header("authorization", alice.authorization())
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    // ping=0: no pings at all.
    let quiet = tokio::time::timeout(Duration::from_millis(1_500), response.chunk()).await;
    assert!(
        quiet.is_err(),
        "no event without a ping interval: {quiet:?}"
    );
    drop(response);

    // ping below the minimum is raised to it; the event says which interval is used.
    let started = Instant::now();
    let mut response = http
        .get(format!("{url}?types=Email&closeafter=no&ping=1"))
        .header("authorization", alice.authorization())
        .send()
        .await
        .expect("GET");
    let text = read_until(&mut response, "\n\n").await;
    assert!(text.starts_with("event: ping\n"), "{text:?}");
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .expect("ping data");
    let data: Value = serde_json::from_str(data).expect("JSON");
    assert_eq!(data["interval"], 1);
    assert!(started.elapsed() < Duration::from_secs(5));

    for bad in ["closeafter=never", "ping=-5", "ping=often"] {
        let answer = http
            .get(format!("{url}?types=*&{bad}"))
            .header("authorization", alice.authorization())
            .send()
            .await
            .expect("GET");
        assert_eq!(answer.status(), 400, "{bad}");
    }
    let anonymous = http
        .get(format!("{url}?types=*&closeafter=no&ping=0"))
        .send()
        .await
        .expect("GET");
    assert_eq!(anonymous.status(), 401);

    // Browsers: a ticket instead of the header.
    let ticket = server
        .post_raw(
            &format!("{}/jmap/ticket", server.base_url()),
            &alice,
            "application/json",
            Vec::new(),
        )
        .await
        .json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let mut response = http
        .get(format!(
            "{url}?types=*&closeafter=state&ping=0&ticket={ticket}"
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let version = commit_change(&server, account_number(&alice), DataType::Email).await;
    let text = read_until(&mut response, "\n\n").await;
    assert!(text.starts_with("event: state\n"), "{text:?}");
    assert!(text.contains(&state(version)));
    server.shutdown().await;
}
