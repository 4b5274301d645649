//! Through the real MX listener with swaks: the SMTP `250`, then the delivery actor files the
//! message; a virus is refused at DATA with `554 5.7.1` when clamd is configured.

use jmap_client::mailbox::Role;
use tern::smtp::antivirus::VirusAction;

use crate::scanners::{EICAR, start_clamd};
use crate::support::{
    email_details, emails_in, mailbox_with_role, start_server, swaks, wait_until_delivered,
};

#[tokio::test]
async fn mail_sent_with_swaks_reaches_the_inbox_with_its_trace_fields() {
    let server = start_server(None, |config| {
        config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let Some((ok, transcript)) = swaks(
        &server,
        &[
            "--from",
            "carol@remote.example",
            "--to",
            "alice@example.test",
            "--header",
            "Subject: via swaks",
            "--body",
            "Hello over SMTP",
        ],
    )
    .await
    else {
        return;
    };
    assert!(ok, "{transcript}");

    wait_until_delivered(&server).await;
    let alice = server.alice().clone();
    let client = server.jmap_client(&alice).await;
    let inbox = emails_in(&client, &mailbox_with_role(&client, Role::Inbox).await).await;
    assert_eq!(inbox.len(), 1);
    let email = email_details(&server, &alice, &inbox[0]).await;
    assert_eq!(email["subject"], "via swaks");
    let received = email["received"][0].as_str().unwrap();
    assert!(
        received.starts_with(
            "from client.remote.example ([127.0.0.1]) by mx.example.test (Tern) with ESMTP"
        ),
        "{received}"
    );
    assert!(received.contains("for <alice@example.test>"), "{received}");
    let results = email["header:Authentication-Results:asText:all"][0]
        .as_str()
        .unwrap();
    assert!(results.starts_with("mx.example.test;"), "{results}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_infected_message_is_refused_at_data_with_554() {
    let Some(clamd) = start_clamd() else { return };
    let address = clamd.address.clone();
    let server = start_server(None, move |config| {
        config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
        config.antivirus.clamd = Some(address);
        config.antivirus.action = VirusAction::Reject;
    })
    .await;
    let body = format!("Invoice attached\n{EICAR}\n");
    let Some((ok, transcript)) = swaks(
        &server,
        &[
            "--from",
            "a@remote.example",
            "--to",
            "alice@example.test",
            "--body",
            &body,
        ],
    )
    .await
    else {
        return;
    };
    assert!(!ok, "{transcript}");
    assert!(transcript.contains("554 5.7.1"), "{transcript}");
    // A clean message on the same server still goes through.
    let (ok, transcript) = swaks(
        &server,
        &["--from", "a@remote.example", "--to", "alice@example.test"],
    )
    .await
    .expect("swaks");
    assert!(ok, "{transcript}");
    wait_until_delivered(&server).await;
    let alice = server.alice().clone();
    let client = server.jmap_client(&alice).await;
    let inbox = emails_in(&client, &mailbox_with_role(&client, Role::Inbox).await).await;
    assert_eq!(inbox.len(), 1, "only the clean message was accepted");
    server.shutdown().await;
}
