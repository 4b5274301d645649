//! The delivery actor end to end: messages queued as the SMTP listener queues them are filed
//! into the recipients' mailboxes, looked at through jmap-client. SPF/DKIM/DMARC against a local
//! dnsmasq are in `auth.rs`, clamd and spamd in `scanners.rs`.

mod admin;
mod auth;
#[path = "../common/mod.rs"]
mod common;
mod listener;
mod scanners;
mod support;

use jmap_client::mailbox::Role;
use serde_json::Value;
use support::{
    Envelope, account_number, email_details, emails_in, enqueue, mailbox_with_role, message,
    move_email, start_server, wait_until_delivered, wait_until_trained,
};
use tern::smtp::spam::rules::GTUBE;

fn remote() -> Option<std::net::IpAddr> {
    Some("192.0.2.25".parse().unwrap())
}

#[tokio::test]
async fn one_blob_with_trace_headers_is_filed_in_every_recipients_inbox() {
    let server = start_server(None, |_| {}).await;
    let (alice, bob) = (server.alice().clone(), server.bob().clone());
    let envelope = Envelope {
        mail_from: "carol@remote.example",
        recipients: vec![
            (alice.email.as_str(), account_number(&server, &alice).await),
            (bob.email.as_str(), account_number(&server, &bob).await),
        ],
        client_ip: remote(),
        helo: "client.remote.example",
    };
    let raw = message(
        "carol@remote.example",
        "alice@example.test",
        "Hello",
        "Hi both",
    );
    enqueue(&server, &envelope, &raw).await;
    wait_until_delivered(&server).await;

    let mut blob_ids = Vec::new();
    for user in [&alice, &bob] {
        let client = server.jmap_client(user).await;
        let inbox = mailbox_with_role(&client, Role::Inbox).await;
        let ids = emails_in(&client, &inbox).await;
        assert_eq!(ids.len(), 1, "{}: {ids:?}", user.email);
        let email = email_details(&server, user, &ids[0]).await;
        let received = email["received"].as_array().unwrap();
        assert_eq!(received.len(), 1, "{email}");
        let received = received[0].as_str().unwrap();
        assert!(
            received.starts_with(
                "from client.remote.example ([192.0.2.25]) by mx.example.test (Tern) with ESMTP id"
            ),
            "{received}"
        );
        // Two recipients: the Received field names neither (RFC 5321 §4.4 would disclose Bcc).
        assert!(!received.contains(" for "), "{received}");
        let results = email["header:Authentication-Results:asText:all"][0]
            .as_str()
            .unwrap();
        assert!(results.starts_with("mx.example.test;"), "{results}");
        assert!(
            results.contains("spf=") && results.contains("dmarc="),
            "{results}"
        );
        assert_eq!(email["returnPath"], "<carol@remote.example>");
        assert_eq!(email["keywords"], Value::Object(Default::default()));
        blob_ids.push(email["blobId"].as_str().unwrap().to_owned());
    }
    // The raw message with its trace fields is one blob, linked by both accounts.
    assert_eq!(blob_ids[0], blob_ids[1]);
    let stored = server
        .download(&alice, &alice.account_id, &blob_ids[0])
        .await;
    assert!(
        stored.body.ends_with(&raw),
        "the original follows the trace fields"
    );
    assert!(
        stored
            .text()
            .starts_with("Authentication-Results: mx.example.test")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn gtube_goes_to_junk_with_the_junk_keyword() {
    let server = start_server(None, |_| {}).await;
    let alice = server.alice().clone();
    let envelope = Envelope {
        mail_from: "spammer@remote.example",
        recipients: vec![(alice.email.as_str(), account_number(&server, &alice).await)],
        client_ip: remote(),
        helo: "spam.remote.example",
    };
    let raw = message("spammer@remote.example", &alice.email, "Offer", GTUBE);
    enqueue(&server, &envelope, &raw).await;
    let clean = message("friend@remote.example", &alice.email, "Lunch", "Noon?");
    enqueue(&server, &envelope, &clean).await;
    wait_until_delivered(&server).await;

    let client = server.jmap_client(&alice).await;
    let junk = emails_in(&client, &mailbox_with_role(&client, Role::Junk).await).await;
    let inbox = emails_in(&client, &mailbox_with_role(&client, Role::Inbox).await).await;
    assert_eq!((junk.len(), inbox.len()), (1, 1));
    let spam = email_details(&server, &alice, &junk[0]).await;
    assert_eq!(spam["keywords"]["$junk"], true);
    assert_eq!(spam["subject"], "Offer");
    let trace = spam["header:X-Tern-Spam:asText"].as_str().unwrap();
    assert!(trace.contains("GTUBE"), "{trace}");
    // One recipient: the Received field names it.
    let received = spam["received"][0].as_str().unwrap();
    assert!(received.contains("for <alice@example.test>"), "{received}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_transmission_retried_after_a_lost_reply_is_delivered_once() {
    let server = start_server(None, |_| {}).await;
    let alice = server.alice().clone();
    let envelope = Envelope {
        mail_from: "carol@remote.example",
        recipients: vec![(alice.email.as_str(), account_number(&server, &alice).await)],
        client_ip: remote(),
        helo: "client.remote.example",
    };
    let raw = message("carol@remote.example", &alice.email, "Once", "only once");
    // The client never saw the first 250 and sent the same message again: two queue entries.
    enqueue(&server, &envelope, &raw).await;
    enqueue(&server, &envelope, &raw).await;
    // Same Message-ID, different content: a different message, delivered.
    let text = String::from_utf8(raw.clone()).unwrap();
    let edited = text.replace("only once", "edited").into_bytes();
    enqueue(&server, &envelope, &edited).await;
    wait_until_delivered(&server).await;
    let client = server.jmap_client(&alice).await;
    let inbox = emails_in(&client, &mailbox_with_role(&client, Role::Inbox).await).await;
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_classifier_learns_from_moves_into_and_out_of_junk() {
    let server = start_server(None, |_| {}).await;
    let alice = server.alice().clone();
    let account_id = account_number(&server, &alice).await;
    let envelope = Envelope {
        mail_from: "sender@remote.example",
        recipients: vec![(alice.email.as_str(), account_id)],
        client_ip: remote(),
        helo: "client.remote.example",
    };
    let spammy = |n: u32| {
        message(
            "deals@cheap-pills.example",
            "alice@example.test",
            &format!("Cheap pills discount {n}"),
            "Buy cheap pills now, huge discount pharmacy offer, click https://cheap-pills.example/buy limited offer",
        )
    };
    let hammy = || {
        message(
            "bob@example.test",
            "alice@example.test",
            "Project meeting notes",
            "Attached are the meeting notes for the quarterly project review with the team",
        )
    };
    for raw in [spammy(1), spammy(2), hammy()] {
        enqueue(&server, &envelope, &raw).await;
    }
    wait_until_delivered(&server).await;
    let client = server.jmap_client(&alice).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let junk = mailbox_with_role(&client, Role::Junk).await;
    assert_eq!(
        emails_in(&client, &inbox).await.len(),
        3,
        "nothing is junk before training"
    );

    // The user moves the two spams to Junk, and one back out and in again (ham, then spam).
    let mut spam_ids = Vec::new();
    for id in emails_in(&client, &inbox).await {
        let details = email_details(&server, &alice, &id).await;
        if details["subject"].as_str().unwrap().starts_with("Cheap") {
            spam_ids.push(id);
        }
    }
    assert_eq!(spam_ids.len(), 2);
    for id in &spam_ids {
        move_email(&client, id, &junk).await;
    }
    move_email(&client, &spam_ids[0], &inbox).await;
    wait_until_trained(&server).await;
    move_email(&client, &spam_ids[0], &junk).await;
    wait_until_trained(&server).await;
    let store = server.running().store().clone();
    let totals = store
        .read(move |tx| Box::pin(tern::smtp::spam::bayes::totals(tx, account_id)))
        .await
        .unwrap();
    assert_eq!(
        totals,
        (2, 0),
        "two spams trained, the undone ham judgement removed"
    );

    enqueue(&server, &envelope, &spammy(3)).await;
    enqueue(&server, &envelope, &hammy()).await;
    wait_until_delivered(&server).await;
    let in_junk = emails_in(&client, &junk).await;
    assert_eq!(in_junk.len(), 3, "the new spam went to Junk");
    let in_inbox = emails_in(&client, &inbox).await;
    assert_eq!(in_inbox.len(), 2, "the ham stayed in the Inbox");
    server.shutdown().await;
}

#[tokio::test]
async fn vacation_replies_once_per_sender_and_never_to_lists() {
    // The outbound actor stays off so the queued replies can be looked at.
    let server = start_server(None, |config| config.outbound.enabled = false).await;
    let alice = server.alice().clone();
    let request = serde_json::json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:vacationresponse"],
        "methodCalls": [["VacationResponse/set", {
            "accountId": alice.account_id,
            "update": {"singleton": {"isEnabled": true, "subject": "Away",
                "textBody": "Back next week."}}
        }, "0"]]
    });
    let answer = server.post_api(&alice, &request).await;
    assert!(answer.text().contains("updated"), "{}", answer.text());
    let envelope = |from: &'static str| Envelope {
        mail_from: from,
        recipients: vec![("alice@example.test", 0)],
        client_ip: remote(),
        helo: "client.remote.example",
    };
    let account_id = account_number(&server, &alice).await;
    for (from, extra) in [
        ("carol@remote.example", ""),
        ("carol@remote.example", ""),
        ("list@remote.example", "List-Id: <team.remote.example>\r\n"),
        ("dave@remote.example", "Auto-Submitted: auto-generated\r\n"),
        ("erin@remote.example", ""),
    ] {
        let mut envelope = envelope(from);
        envelope.recipients[0].1 = account_id;
        let raw = message(
            from,
            "Alice <alice@example.test>",
            "Question",
            "Are you there?",
        );
        let raw = [extra.as_bytes(), &raw].concat();
        enqueue(&server, &envelope, &raw).await;
        wait_until_delivered(&server).await;
    }
    let store = server.running().store().clone();
    let queued = store
        .read(|tx| Box::pin(tern::outbound::queue::list(tx, 100)))
        .await
        .unwrap();
    let mut replied_to: Vec<String> = queued
        .iter()
        .filter(|entry| entry.kind == tern::outbound::queue::MessageKind::VacationReply)
        .map(|entry| {
            assert_eq!(entry.mail_from, "", "auto-replies have a null reverse-path");
            entry.recipients[0].address.clone()
        })
        .collect();
    replied_to.sort();
    assert_eq!(
        replied_to,
        vec!["carol@remote.example", "erin@remote.example"]
    );
    let reply = queued
        .iter()
        .find(|entry| entry.kind == tern::outbound::queue::MessageKind::VacationReply)
        .unwrap();
    let bytes = server
        .running()
        .engine()
        .blobs()
        .read_held_to_vec(&reply.blob, 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
    assert!(text.contains("In-Reply-To: <"), "{text}");
    assert!(text.contains("Subject: Away"), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_burst_to_one_account_is_filed_exactly_once_in_shared_commits() {
    let server = start_server(None, |_| {}).await;
    let (alice, bob) = (server.alice().clone(), server.bob().clone());
    let (alice_id, bob_id) = (
        account_number(&server, &alice).await,
        account_number(&server, &bob).await,
    );
    let to_alice = Envelope {
        mail_from: "carol@remote.example",
        recipients: vec![(alice.email.as_str(), alice_id)],
        client_ip: remote(),
        helo: "client.remote.example",
    };
    let to_both = Envelope {
        recipients: vec![
            (alice.email.as_str(), alice_id),
            (bob.email.as_str(), bob_id),
        ],
        ..to_alice
    };
    // Queued faster than delivered: the filer groups them per account (and the ones to both
    // accounts meet commits of both).
    let burst = 120;
    for number in 0..burst {
        let envelope = if number % 10 == 0 {
            &to_both
        } else {
            &to_alice
        };
        let raw = message(
            "carol@remote.example",
            &alice.email,
            &format!("Burst {number}"),
            "one of many",
        );
        enqueue(&server, envelope, &raw).await;
    }
    wait_until_delivered(&server).await;
    let client = server.jmap_client(&alice).await;
    let inbox = emails_in(&client, &mailbox_with_role(&client, Role::Inbox).await).await;
    assert_eq!(inbox.len(), burst, "every message once");
    let bob_client = server.jmap_client(&bob).await;
    let bob_inbox = emails_in(
        &bob_client,
        &mailbox_with_role(&bob_client, Role::Inbox).await,
    )
    .await;
    assert_eq!(bob_inbox.len(), burst / 10);
    let queued = tern::smtp::incoming::count(server.running().store())
        .await
        .unwrap();
    assert_eq!(queued, 0, "every entry finished");
    server.shutdown().await;
}
