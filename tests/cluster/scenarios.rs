//! The cluster scenarios of issue 14, each on a FoundationDB of its own with three nodes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use jmap_client::DataType as ClientDataType;
use jmap_client::PushObject;
use jmap_client::client::Client;
use jmap_client::client_ws::WebSocketMessage;
use serde_json::json;

use crate::harness::{
    Call, Node, PASSWORD, api, claim_through, client, create_account, create_mailbox,
    mailbox_names, three_nodes, with_fdb,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The failover bound the issue sets (max over runs).
const FAILOVER_MAX: Duration = Duration::from_secs(10);

#[test]
fn a_commit_through_one_node_pushes_to_websocket_and_eventsource_on_another() {
    with_fdb("push_across_nodes", |fdb| {
        let nodes = three_nodes(fdb);
        let email = "push@cluster.test";
        create_account(&nodes[0], email);
        runtime().block_on(push_across_nodes(&nodes, email));
    });
}

async fn push_across_nodes(nodes: &[Node], email: &str) {
    let http = client();
    // Node a owns the account (first to need it); the sockets are on node b.
    let account = claim_through(&http, &nodes[0], email).await;
    let ws_client = Client::new()
        .credentials((email, PASSWORD))
        .follow_redirects(["127.0.0.1"])
        .connect(&nodes[1].base_url)
        .await
        .expect("jmap-client connects to node b");
    let mut stream = ws_client.connect_ws().await.expect("connect_ws");
    ws_client
        .enable_push_ws(None::<Vec<ClientDataType>>, None::<String>)
        .await
        .expect("enable push");
    let mut events = http
        .get(format!(
            "{}/jmap/eventsource?types=*&closeafter=no&ping=0",
            nodes[1].base_url
        ))
        .basic_auth(email, Some(PASSWORD))
        .send()
        .await
        .expect("EventSource on node b");
    assert_eq!(events.status(), 200);
    // Let both subscriptions settle (the WebSocket enable is answered in order).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut delays = Vec::new();
    for round in 0..5 {
        let committed = Instant::now();
        assert!(
            create_mailbox(
                &http,
                &nodes[0].base_url,
                email,
                &account,
                &format!("p{round}")
            )
            .await
            .expect("commit through node a")
        );
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("a StateChange on node b's WebSocket");
            if let Some(Ok(WebSocketMessage::PushNotification(PushObject::StateChange { changed }))) =
                message
                && changed
                    .get(&account)
                    .is_some_and(|types| types.contains_key(&ClientDataType::Mailbox))
            {
                delays.push(committed.elapsed());
                break;
            }
        }
    }
    // The EventSource on node b saw the same changes.
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text.contains("Mailbox") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, events.chunk())
            .await
            .expect("a state event on node b's EventSource")
            .expect("read")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&account), "{text}");
    delays.sort();
    eprintln!("commit on a -> StateChange on b: {delays:?}");
    assert!(
        delays[delays.len() / 2] < Duration::from_secs(1),
        "{delays:?}"
    );
    // The nodes' commit hints (which make that fast) take only the cluster's proof.
    for proof in [None, Some("00".repeat(32))] {
        let mut hint = http
            .post(format!("{}/internal/cluster/commits", nodes[1].base_url))
            .body("1,2");
        if let Some(proof) = proof {
            hint = hint.header("tern-forwarded-auth", proof);
        }
        let refused = hint.send().await.expect("hint request");
        assert_eq!(refused.status(), 403);
    }
}

#[test]
fn requests_through_any_node_run_on_the_owner_and_writes_are_fenced() {
    with_fdb("forwarding", |fdb| {
        let nodes = three_nodes(fdb);
        let email = "forward@cluster.test";
        create_account(&nodes[0], email);
        runtime().block_on(async {
            let http = client();
            let account = claim_through(&http, &nodes[2], email).await;
            // Writes through every node land once each.
            for (index, node) in nodes.iter().enumerate() {
                assert!(
                    create_mailbox(
                        &http,
                        &node.base_url,
                        email,
                        &account,
                        &format!("via{index}")
                    )
                    .await
                    .expect("write through any node")
                );
            }
            let names = mailbox_names(&http, &nodes[1].base_url, email, &account).await;
            for index in 0..3 {
                assert_eq!(names.get(&format!("via{index}")), Some(&1), "{names:?}");
            }
            // A forged forwarding header is refused, not trusted.
            let forged = http
                .post(format!("{}/jmap/api", nodes[1].base_url))
                .header("tern-forwarded-principal", format!("1 {email}"))
                .header("tern-forwarded-auth", "00".repeat(32))
                .json(&json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": []}))
                .send()
                .await
                .unwrap();
            assert_eq!(forged.status(), 401);
            // The operator sees node c owning it, and can move it.
            let status = nodes[0].tern(&["cluster", "status"]);
            assert!(status.contains('c') && status.contains("alive"), "{status}");
            let moved = nodes[0].tern(&["cluster", "move", email, "a"]);
            assert!(moved.contains("epoch"), "{moved}");
            assert!(
                create_mailbox(&http, &nodes[1].base_url, email, &account, "after-move")
                    .await
                    .expect("a write after the move")
            );
            let names = mailbox_names(&http, &nodes[2].base_url, email, &account).await;
            assert_eq!(names.get("after-move"), Some(&1));
            // Every node has checked (and cached) the password by now. Changed through the
            // CLI, straight on the store: the old one stops working on every node at once.
            nodes[0].tern(&[
                "account",
                "passwd",
                email,
                "--password",
                "changed-password-1",
            ]);
            for node in &nodes {
                let deadline = Instant::now() + Duration::from_secs(2);
                loop {
                    let status = http
                        .get(format!("{}/.well-known/jmap", node.base_url))
                        .basic_auth(email, Some(PASSWORD))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    if status == 401 {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the old password still works at {}: {status}",
                        node.base_url
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let renewed = http
                    .get(format!("{}/.well-known/jmap", node.base_url))
                    .basic_auth(email, Some("changed-password-1"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(renewed.status(), 200);
            }
        });
    });
}

/// Writers through every node; returns (acknowledged names, names whose outcome is unknown).
struct Burst {
    acknowledged: Vec<String>,
    unknown: Vec<String>,
    /// Per writer: when a write last failed and when the next one succeeded.
    first_success_after: Vec<(Instant, Instant)>,
}

async fn write_burst(
    nodes: Vec<String>,
    email: String,
    account: String,
    stop: Arc<AtomicBool>,
) -> Burst {
    let mut writers = Vec::new();
    for (writer, node) in nodes.into_iter().enumerate() {
        let (email, account, stop) = (email.clone(), account.clone(), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let http = client();
            let mut acknowledged = Vec::new();
            let mut unknown = Vec::new();
            let mut failing_since: Option<Instant> = None;
            let mut recoveries = Vec::new();
            let mut sequence = 0u32;
            while !stop.load(Ordering::Relaxed) {
                sequence += 1;
                let name = format!("w{writer}-{sequence}");
                match create_mailbox(&http, &node, &email, &account, &name).await {
                    Ok(true) => {
                        if let Some(since) = failing_since.take() {
                            recoveries.push((since, Instant::now()));
                        }
                        acknowledged.push(name);
                    }
                    Ok(false) | Err(_) => {
                        failing_since.get_or_insert_with(Instant::now);
                        unknown.push(name);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (acknowledged, unknown, recoveries)
        }));
    }
    let mut burst = Burst {
        acknowledged: Vec::new(),
        unknown: Vec::new(),
        first_success_after: Vec::new(),
    };
    for writer in writers {
        let (acknowledged, unknown, recoveries) = writer.await.unwrap();
        burst.acknowledged.extend(acknowledged);
        burst.unknown.extend(unknown);
        burst.first_success_after.extend(recoveries);
    }
    burst
}

/// Every acknowledged write is there exactly once; an unknown one at most once.
async fn check_nothing_lost_or_doubled(node: &str, email: &str, account: &str, burst: &Burst) {
    let names = mailbox_names(&client(), node, email, account).await;
    for name in &burst.acknowledged {
        assert_eq!(
            names.get(name),
            Some(&1),
            "acknowledged {name} lost or doubled"
        );
    }
    for name in &burst.unknown {
        assert!(names.get(name).copied().unwrap_or(0) <= 1, "{name} doubled");
    }
    let written: HashSet<&String> = burst.acknowledged.iter().chain(&burst.unknown).collect();
    let stray: Vec<&String> = names
        .keys()
        .filter(|name| name.starts_with('w') && !written.contains(name))
        .collect();
    assert!(stray.is_empty(), "mailboxes nobody wrote: {stray:?}");
}

#[test]
fn killing_the_owner_during_a_write_burst_loses_nothing_and_fails_over() {
    with_fdb("failover_kill", |fdb| {
        let mut nodes = three_nodes(fdb);
        let email = "failover@cluster.test";
        create_account(&nodes[0], email);
        let rt = runtime();
        let account = rt.block_on(claim_through(&client(), &nodes[0], email));
        let urls: Vec<String> = nodes.iter().map(|node| node.base_url.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        // Clients on every node; the ones on b and c keep going through the failover.
        let burst = rt.spawn(write_burst(
            urls.clone(),
            email.to_owned(),
            account.clone(),
            Arc::clone(&stop),
        ));
        std::thread::sleep(Duration::from_millis(1500));
        let killed_at = Instant::now();
        nodes[0].kill();
        // The first successful write through another node after the kill.
        let recovered = rt.block_on(async {
            let http = client();
            let mut attempt = 0;
            loop {
                attempt += 1;
                if let Ok(true) =
                    create_mailbox(&http, &urls[1], email, &account, &format!("probe{attempt}"))
                        .await
                {
                    return killed_at.elapsed();
                }
                assert!(killed_at.elapsed() < FAILOVER_MAX * 2, "no failover");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::Relaxed);
        let burst = rt.block_on(burst).unwrap();
        eprintln!(
            "failover after kill -9: {recovered:?}; {} writes acknowledged, {} unknown",
            burst.acknowledged.len(),
            burst.unknown.len()
        );
        assert!(recovered < FAILOVER_MAX, "failover took {recovered:?}");
        assert!(burst.acknowledged.len() > 10, "the burst wrote too little");
        rt.block_on(check_nothing_lost_or_doubled(
            &urls[2], email, &account, &burst,
        ));
    });
}

#[test]
fn a_paused_owner_is_fenced_and_steps_down_after_sigcont() {
    with_fdb("fencing_sigstop", |fdb| {
        let nodes = three_nodes(fdb);
        let email = "fenced@cluster.test";
        create_account(&nodes[0], email);
        let rt = runtime();
        let http = client();
        let account = rt.block_on(claim_through(&http, &nodes[0], email));
        // A write in flight on the owner when it is paused: sent, then SIGSTOP.
        let pending = {
            let (email, account, url) =
                (email.to_owned(), account.clone(), nodes[0].base_url.clone());
            rt.spawn(async move {
                create_mailbox(&client(), &url, &email, &account, "while-paused").await
            })
        };
        nodes[0].signal("STOP");
        let paused_at = Instant::now();
        // Another node takes over once the lease expires.
        let taken_over = rt.block_on(async {
            loop {
                if let Ok(true) =
                    create_mailbox(&http, &nodes[1].base_url, email, &account, "taken-over").await
                {
                    return paused_at.elapsed();
                }
                assert!(paused_at.elapsed() < FAILOVER_MAX, "nobody took over");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        eprintln!("takeover from a paused owner after {taken_over:?}");
        nodes[0].signal("CONT");
        // The paused node's pending write: refused by the fence (never acknowledged), or
        // committed before the pause took effect — but then it was acknowledged.
        let pending = rt.block_on(pending).unwrap();
        let names = rt.block_on(mailbox_names(&http, &nodes[2].base_url, email, &account));
        match pending {
            Ok(true) => assert_eq!(names.get("while-paused"), Some(&1)),
            _ => assert!(
                names.get("while-paused").copied().unwrap_or(0) <= 1,
                "{names:?}"
            ),
        }
        // After SIGCONT, node a no longer owns the account: writes through it are forwarded
        // to the new owner (they land once), and a's own commits for it are refused.
        rt.block_on(async {
            let deadline = Instant::now() + FAILOVER_MAX;
            loop {
                match create_mailbox(&http, &nodes[0].base_url, email, &account, "after-cont").await
                {
                    Ok(true) => break,
                    _ => {
                        assert!(Instant::now() < deadline, "node a never recovered");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let names = rt.block_on(mailbox_names(&http, &nodes[1].base_url, email, &account));
        assert_eq!(names.get("after-cont"), Some(&1), "{names:?}");
        assert_eq!(names.get("taken-over"), Some(&1), "{names:?}");
        let status = nodes[1].tern(&["cluster", "status"]);
        eprintln!("{status}");
        let log = std::fs::read_to_string(&nodes[0].log).unwrap();
        assert!(
            log.contains("account no longer owned by this node"),
            "node a stepped down: {log}"
        );
    });
}

#[test]
fn a_foundationdb_restart_under_load_gives_retryable_errors_and_service_resumes() {
    with_fdb("fdb_restart", |fdb| {
        let nodes = three_nodes(fdb);
        let email = "restart@cluster.test";
        create_account(&nodes[0], email);
        let rt = runtime();
        let account = rt.block_on(claim_through(&client(), &nodes[0], email));
        let urls: Vec<String> = nodes.iter().map(|node| node.base_url.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let statuses = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
        let load = {
            let (urls, stop, statuses) = (urls.clone(), Arc::clone(&stop), Arc::clone(&statuses));
            let (email, account) = (email.to_owned(), account.clone());
            rt.spawn(async move {
                let http = client();
                let mut acknowledged = Vec::new();
                let mut sequence = 0;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let url = &urls[sequence % urls.len()];
                    let name = format!("r{sequence}");
                    let calls = json!([["Mailbox/set", {
                        "accountId": account, "create": {"m": {"name": name}}}, "0"]]);
                    let started = Instant::now();
                    let outcome = api(&http, url, &email, calls).await;
                    // Never a hang: every answer within the store's timeout and retries.
                    let took = started.elapsed();
                    assert!(took < Duration::from_secs(25), "an answer took {took:?}");
                    let kind = match outcome {
                        Call::Ok(value) => {
                            let response = &value["methodResponses"][0];
                            if response[1]["created"]["m"]["id"].is_string() {
                                acknowledged.push(name);
                                "ok".to_owned()
                            } else {
                                format!("method error {}", response[1]["type"])
                            }
                        }
                        Call::Refused(status, _) => format!("HTTP {status}"),
                        Call::Failed(_) => "no answer".to_owned(),
                    };
                    *statuses.lock().unwrap().entry(kind).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                acknowledged
            })
        };
        std::thread::sleep(Duration::from_millis(1000));
        let restarted_at = Instant::now();
        // Down for longer than the store's retries last (5 s timeout, 8 s of retries), so
        // clients see the retryable errors, not just a slow answer.
        fdb.restart(Duration::from_secs(15));
        let back_after = restarted_at.elapsed();
        // Service resumes by itself: a write succeeds within a bound after FoundationDB is back.
        let resumed = rt.block_on(async {
            let http = client();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(true) = create_mailbox(&http, &urls[1], email, &account, "resumed").await
                {
                    return restarted_at.elapsed();
                }
                assert!(Instant::now() < deadline, "service did not resume");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        stop.store(true, Ordering::Relaxed);
        let acknowledged = rt.block_on(load).unwrap();
        let statuses = statuses.lock().unwrap().clone();
        eprintln!(
            "FoundationDB down and back in {back_after:?}; writes resumed after {resumed:?}; {statuses:?}"
        );
        for kind in statuses.keys() {
            assert!(
                kind == "ok" || kind == "HTTP 503" || kind == "method error \"serverUnavailable\"",
                "only clean, retryable errors: {statuses:?}"
            );
        }
        assert!(
            statuses.len() > 1,
            "a 15 s outage must show as retryable errors: {statuses:?}"
        );
        let names = rt.block_on(mailbox_names(&client(), &urls[2], email, &account));
        for name in &acknowledged {
            assert_eq!(names.get(name), Some(&1), "acknowledged {name} lost");
        }
    });
}

#[test]
fn sigterm_hands_the_accounts_over_at_once() {
    with_fdb("graceful_handover", |fdb| {
        let mut nodes = three_nodes(fdb);
        let email = "handover@cluster.test";
        create_account(&nodes[0], email);
        let rt = runtime();
        let http = client();
        let account = rt.block_on(claim_through(&http, &nodes[0], email));
        let stopping = Instant::now();
        let status = nodes[0].terminate();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
        let stopped = stopping.elapsed();
        // No lease to wait for: the account was released, the next node claims it at once.
        let served = rt.block_on(async {
            let started = Instant::now();
            loop {
                if let Ok(true) =
                    create_mailbox(&http, &nodes[1].base_url, email, &account, "after-term").await
                {
                    return started.elapsed();
                }
                assert!(started.elapsed() < FAILOVER_MAX, "no hand-over");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        eprintln!("SIGTERM stop took {stopped:?}; next write served after {served:?}");
        assert!(
            served < Duration::from_secs(1),
            "hand-over waited {served:?}"
        );
        let status = nodes[1].tern(&["cluster", "status"]);
        assert!(status.contains("left"), "{status}");
    });
}
