//! Through the real MX listener (swaks): a message clamd passed at DATA is not scanned again by
//! delivery; `postmaster` is accepted and routed (RFC 5321 §4.5.1); quarantined messages are
//! listed, released into the Inbox and deleted (`tern::smtp::quarantine`). clamd here is a
//! small INSTREAM peer in the test process that counts its scans and finds `FAKE-VIRUS`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jmap_client::mailbox::Role;
use tern::smtp::antivirus::VirusAction;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    Envelope, account_number, email_details, emails_in, enqueue, mailbox_with_role, message,
    start_server, swaks, wait_until_delivered,
};

const SIGNATURE: &str = "FAKE-VIRUS";

/// A clamd speaking INSTREAM (clamd(8)); answers `FOUND` for streams holding [`SIGNATURE`].
struct FakeClamd {
    address: String,
    scans: Arc<AtomicUsize>,
}

async fn fake_clamd() -> FakeClamd {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let scans = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&scans);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut command = [0u8; 10];
                if stream.read_exact(&mut command).await.is_err() || &command != b"zINSTREAM\0" {
                    return;
                }
                let mut data = Vec::new();
                loop {
                    let mut length = [0u8; 4];
                    if stream.read_exact(&mut length).await.is_err() {
                        return;
                    }
                    let length = u32::from_be_bytes(length) as usize;
                    if length == 0 {
                        break;
                    }
                    let mut chunk = vec![0u8; length];
                    if stream.read_exact(&mut chunk).await.is_err() {
                        return;
                    }
                    data.extend_from_slice(&chunk);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let infected = data
                    .windows(SIGNATURE.len())
                    .any(|window| window == SIGNATURE.as_bytes());
                let answer: &[u8] = if infected {
                    b"stream: Fake-Test-Signature FOUND\0"
                } else {
                    b"stream: OK\0"
                };
                let _ = stream.write_all(answer).await;
            });
        }
    });
    FakeClamd { address, scans }
}

#[tokio::test]
async fn a_message_scanned_clean_at_data_is_not_scanned_again() {
    let clamd = fake_clamd().await;
    let address = clamd.address.clone();
    let server = start_server(None, move |config| {
        config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
        config.antivirus.clamd = Some(address);
        config.antivirus.action = VirusAction::Reject;
    })
    .await;
    let Some((ok, transcript)) = swaks(
        &server,
        &[
            "--from",
            "carol@remote.example",
            "--to",
            "alice@example.test",
            "--body",
            "clean",
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
    assert_eq!(
        clamd.scans.load(Ordering::SeqCst),
        1,
        "scanned once, at DATA"
    );

    // A message queued without a scan at DATA (a local hand-over) is scanned by delivery.
    let envelope = Envelope {
        mail_from: "carol@remote.example",
        recipients: vec![(alice.email.as_str(), account_number(&server, &alice).await)],
        client_ip: None,
        helo: "",
    };
    let raw = message("carol@remote.example", &alice.email, "Local", "handed over");
    enqueue(&server, &envelope, &raw).await;
    wait_until_delivered(&server).await;
    assert_eq!(clamd.scans.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn postmaster_is_accepted_bare_or_at_a_local_domain_and_routed() {
    let server = start_server(None, |config| {
        config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    for to in ["postmaster", "PostMaster@example.test"] {
        let Some((ok, transcript)) = swaks(
            &server,
            &[
                "--from",
                "carol@remote.example",
                "--to",
                to,
                "--header",
                &format!("Subject: to {to}"),
            ],
        )
        .await
        else {
            return;
        };
        assert!(ok, "RCPT TO:<{to}> must be accepted: {transcript}");
    }
    // Someone else's postmaster is not ours to take (no open relay).
    let (ok, transcript) = swaks(
        &server,
        &[
            "--from",
            "carol@remote.example",
            "--to",
            "postmaster@elsewhere.example",
        ],
    )
    .await
    .expect("swaks ran before");
    assert!(!ok && transcript.contains("550"), "{transcript}");
    wait_until_delivered(&server).await;
    // No account is postmaster and none is configured: the domain's first account gets it.
    let alice = server.alice().clone();
    let client = server.jmap_client(&alice).await;
    let inbox = emails_in(&client, &mailbox_with_role(&client, Role::Inbox).await).await;
    assert_eq!(inbox.len(), 2, "both postmaster messages reach alice");
    server.shutdown().await;

    // Configured: `[smtp] postmaster` names the account.
    let server = start_server(None, |config| {
        config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
        config.smtp.postmaster = Some("bob@example.test".to_owned());
    })
    .await;
    let (ok, transcript) = swaks(
        &server,
        &[
            "--from",
            "carol@remote.example",
            "--to",
            "postmaster@example.test",
        ],
    )
    .await
    .expect("swaks ran before");
    assert!(ok, "{transcript}");
    wait_until_delivered(&server).await;
    let bob = server.bob().clone();
    let client = server.jmap_client(&bob).await;
    let inbox = emails_in(&client, &mailbox_with_role(&client, Role::Inbox).await).await;
    assert_eq!(inbox.len(), 1, "the configured postmaster account gets it");
    server.shutdown().await;
}

#[tokio::test]
async fn a_quarantined_message_is_listed_released_once_and_deleted() {
    let clamd = fake_clamd().await;
    let address = clamd.address.clone();
    let server = start_server(None, move |config| {
        config.antivirus.clamd = Some(address);
        config.antivirus.action = VirusAction::Quarantine;
    })
    .await;
    let alice = server.alice().clone();
    let envelope = Envelope {
        mail_from: "a@remote.example",
        recipients: vec![(alice.email.as_str(), account_number(&server, &alice).await)],
        client_ip: Some("192.0.2.25".parse().unwrap()),
        helo: "remote.example",
    };
    let infected = message("a@remote.example", &alice.email, "Invoice", SIGNATURE);
    let other = message("a@remote.example", &alice.email, "Second", SIGNATURE);
    enqueue(&server, &envelope, &infected).await;
    enqueue(&server, &envelope, &other).await;
    wait_until_delivered(&server).await;
    let client = server.jmap_client(&alice).await;
    let inbox_id = mailbox_with_role(&client, Role::Inbox).await;
    assert!(emails_in(&client, &inbox_id).await.is_empty());

    let store = server.running().store().clone();
    let directory = server.running().directory().clone();
    let rows = tern::smtp::quarantine::list(&store).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].record.virus.contains("Fake-Test-Signature"));
    assert_eq!(rows[0].record.recipients, vec![alice.email.clone()]);

    // Released: delivered to the Inbox with its trace fields once, and not scanned again.
    let scans_before = clamd.scans.load(Ordering::SeqCst);
    let first = rows[0].id;
    tern::smtp::quarantine::release(&directory, first)
        .await
        .expect("released");
    wait_until_delivered(&server).await;
    let inbox = emails_in(&client, &inbox_id).await;
    assert_eq!(inbox.len(), 1);
    let email = email_details(&server, &alice, &inbox[0]).await;
    assert_eq!(email["received"].as_array().unwrap().len(), 1, "{email}");
    assert_eq!(clamd.scans.load(Ordering::SeqCst), scans_before);
    // Twice is not possible; the record is gone.
    assert!(matches!(
        tern::smtp::quarantine::release(&directory, first).await,
        Err(tern::smtp::quarantine::ReleaseError::NotFound(_))
    ));

    // Deleted: gone from the list, never delivered.
    let second = rows[1].id;
    assert!(
        tern::smtp::quarantine::delete(&store, second)
            .await
            .unwrap()
    );
    assert!(
        !tern::smtp::quarantine::delete(&store, second)
            .await
            .unwrap()
    );
    assert!(
        tern::smtp::quarantine::list(&store)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(emails_in(&client, &inbox_id).await.len(), 1);
    server.shutdown().await;
}
