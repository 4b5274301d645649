//! EmailSubmission end to end: jmap-client sends a draft, the outbound actor relays it to
//! postfix's `smtp-sink` (`[outbound] relay`), and the EmailSubmission follows what happened —
//! deliveryStatus "unknown" (relayed) with the sink's reply and undoStatus "final", or, when the sink
//! refuses the recipient (`smtp-sink -f RCPT`), delivered "no" and a DSN in dsnBlobIds.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{TestServer, request_using};
use jmap_client::URI;
use jmap_client::client::Client;
use jmap_client::core::query::QueryResponse;
use jmap_client::core::request::Request;
use jmap_client::core::response::{EmailSetResponse, EmailSubmissionSetResponse};
use jmap_client::core::set::SetObject;
use jmap_client::email_submission::{Delivered, EmailSubmission, UndoStatus};
use jmap_client::mailbox::{self, Role};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// How long the actor may take to report a delivery (it is woken by the enqueue itself).
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// postfix's smtp-sink on a free loopback port; killed on drop.
struct Sink {
    child: Child,
    address: String,
}

impl Sink {
    fn start(dump_dir: Option<&Path>, extra: &[&str]) -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(SMTP_SINK);
        // smtp-sink refuses to keep root privileges; it writes its dumps as nobody.
        command.args(["-u", "nobody"]);
        if let Some(dir) = dump_dir {
            command.arg("-d").arg(dir.join("%H%M%S."));
        }
        command.args(extra).arg(&address).arg("16");
        let child = command
            .spawn()
            .expect("smtp-sink runs (apt install postfix)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sink { child, address }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn build(client: &Client) -> Request<'_> {
    request_using(client, &[URI::Core, URI::Mail, URI::Submission])
}

async fn start(relay: &str) -> TestServer {
    let relay = relay.to_owned();
    TestServer::start_with(move |config| {
        config.outbound.relay = Some(relay);
        config.outbound.starttls = false;
    })
    .await
}

/// Sends a draft to `to` (and Bcc `bcc`) with the derived envelope; returns the submission id.
async fn send(client: &Client, from: &str, to: &str, bcc: &str) -> String {
    let mut request = build(client);
    request
        .query_mailbox()
        .filter(mailbox::query::Filter::role(Role::Drafts));
    let drafts = request
        .send_single::<QueryResponse>()
        .await
        .expect("Mailbox/query")
        .take_ids()
        .pop()
        .expect("Drafts");
    let mut request = build(client);
    let create_id = request
        .set_email()
        .create()
        .mailbox_ids([drafts.as_str()])
        .keywords(["$draft"])
        .from([from])
        .to([to])
        .bcc([bcc])
        .subject("relayed by tern")
        .body_value("t".to_owned(), "Hello through the smarthost.")
        .text_body(jmap_client::email::EmailBodyPart::new().part_id("t"))
        .create_id()
        .expect("creation id");
    let email_id = request
        .send_single::<EmailSetResponse>()
        .await
        .expect("Email/set")
        .created(&create_id)
        .expect("draft")
        .take_id();
    let mut request = build(client);
    request.get_identity();
    let identity = request
        .send_get_identity()
        .await
        .expect("Identity/get")
        .take_list()
        .pop()
        .expect("identity")
        .take_id();
    let mut request = build(client);
    let create_id = request
        .set_email_submission()
        .create()
        .identity_id(identity)
        .email_id(email_id)
        .create_id()
        .expect("creation id");
    request
        .send_single::<EmailSubmissionSetResponse>()
        .await
        .expect("EmailSubmission/set")
        .created(&create_id)
        .expect("submission created")
        .take_id()
}

/// Polls EmailSubmission/get until `done` holds (bounded by REPORT_TIMEOUT).
async fn wait_for(
    client: &Client,
    id: &str,
    done: impl Fn(&EmailSubmission) -> bool,
) -> EmailSubmission {
    let deadline = Instant::now() + REPORT_TIMEOUT;
    loop {
        let mut request = build(client);
        request.get_email_submission().ids([id]);
        let submission = request
            .send_get_email_submission()
            .await
            .expect("EmailSubmission/get")
            .take_list()
            .pop()
            .expect("the submission");
        if done(&submission) {
            return submission;
        }
        assert!(
            Instant::now() < deadline,
            "no report in {REPORT_TIMEOUT:?}: {:?}",
            submission.delivery_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn delivered(submission: &EmailSubmission, address: &str) -> Option<Delivered> {
    submission
        .delivery_status_email(address)
        .map(|status| *status.delivered())
}

#[tokio::test]
async fn a_submission_reaches_the_smarthost_and_reports_it_relayed() {
    let dumps = tempfile::tempdir().expect("dump dir");
    // smtp-sink writes as nobody.
    std::fs::set_permissions(
        dumps.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let sink = Sink::start(Some(dumps.path()), &[]);
    let server = start(&sink.address).await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;

    let id = send(
        &client,
        &alice.email,
        "bob@remote.example",
        "hidden@remote.example",
    )
    .await;
    let submission = wait_for(&client, &id, |submission| {
        ["bob@remote.example", "hidden@remote.example"]
            .iter()
            // RFC 8621 §7: relayed to a smarthost, the final status is "unknown" ("yes"
            // would claim the mailbox got it).
            .all(|address| {
                matches!(
                    delivered(submission, address),
                    Some(Delivered::Unknown | Delivered::Yes)
                )
            })
    })
    .await;
    assert_eq!(submission.undo_status(), Some(&UndoStatus::Final));
    let reply = submission
        .delivery_status_email("bob@remote.example")
        .expect("bob")
        .smtp_reply()
        .to_owned();
    assert!(reply.starts_with("250"), "the sink's reply: {reply}");

    // The sink got the message — without its Bcc header (RFC 5322 §3.6.3).
    let deadline = Instant::now() + Duration::from_secs(5);
    let dumped = loop {
        let texts: Vec<String> = std::fs::read_dir(dumps.path())
            .expect("dumps")
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .filter(|text| text.contains("Subject: relayed by tern"))
            .collect();
        if let Some(text) = texts.into_iter().next() {
            break text;
        }
        assert!(Instant::now() < deadline, "no message in the sink's dumps");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(dumped.contains("X-Rcpt-Args: <hidden@remote.example>"));
    assert!(
        !dumped
            .lines()
            .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
        "{dumped}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_recipient_reports_failure_and_a_dsn() {
    // -f RCPT: every RCPT TO gets a permanent 5xx.
    let sink = Sink::start(None, &["-f", "RCPT"]);
    let server = start(&sink.address).await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;

    let id = send(
        &client,
        &alice.email,
        "nobody@remote.example",
        "also-nobody@remote.example",
    )
    .await;
    let submission = wait_for(&client, &id, |submission| {
        delivered(submission, "nobody@remote.example") == Some(Delivered::No)
            && submission
                .dsn_blob_ids()
                .is_some_and(|blobs| !blobs.is_empty())
    })
    .await;
    let reply = submission
        .delivery_status_email("nobody@remote.example")
        .expect("status")
        .smtp_reply()
        .to_owned();
    assert!(reply.starts_with('5'), "a permanent reply: {reply}");
    // The DSN is a blob of the account: downloadable, a multipart/report (RFC 3464).
    let dsn_blob = submission.dsn_blob_ids().expect("dsn")[0].clone();
    let dsn = client.download(&dsn_blob).await.expect("the DSN downloads");
    let dsn = String::from_utf8_lossy(&dsn).to_ascii_lowercase();
    assert!(dsn.contains("multipart/report"), "{dsn}");
    assert!(dsn.contains("nobody@remote.example"));
    server.shutdown().await;
}
