//! `tern domain add` (keys and DNS records), DKIM signatures that mail-auth verifies through
//! dnsmasq serving the printed record, and `tern queue list|cancel` on a stopped store.

use std::process::Command;
use std::time::Duration;

use mail_auth::{AuthenticatedMessage, DkimResult};
use tern::outbound::queue;

use crate::peer::{Peer, Script};
use crate::{Child, MESSAGE, dnsmasq, enqueue};

fn tern(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(args)
        .output()
        .expect("tern runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The TXT strings of the DKIM line `tern domain add` printed.
fn dkim_strings(printed: &str) -> Vec<String> {
    let line = printed
        .lines()
        .find(|line| line.starts_with("tern._domainkey.example.test. IN TXT"))
        .expect("a DKIM record line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn domain_add_prints_records_that_verify_the_signatures() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().to_str().expect("utf-8 path").to_owned();
    let (ok, text) = tern(&[
        "account",
        "create",
        "alice@example.test",
        "--password",
        "pw-alice-1",
        "--data-dir",
        &data,
    ]);
    assert!(ok, "{text}");
    let (ok, printed) = tern(&["domain", "add", "Example.TEST", "--data-dir", &data]);
    assert!(ok, "{printed}");
    for expected in [
        "example.test. IN MX 10 ",
        "example.test. IN TXT \"v=spf1 mx -all\"",
        "_dmarc.example.test. IN TXT \"v=DMARC1;",
    ] {
        assert!(
            printed.contains(expected),
            "{expected} missing in:\n{printed}"
        );
    }
    let strings = dkim_strings(&printed);
    assert!(
        strings.len() >= 2,
        "an RSA-2048 key needs several TXT strings: {strings:?}"
    );
    assert!(strings.iter().all(|part| part.len() <= 255));

    // dnsmasq serves the record exactly as printed.
    let mut txt = "--txt-record=tern._domainkey.example.test".to_owned();
    for part in &strings {
        txt.push(',');
        txt.push_str(part);
    }
    let (_dns, dns_port): (Child, u16) = dnsmasq(&[txt], "tern._domainkey.example.test").await;

    let peer = Peer::start(Script::default()).await;
    let mut config = tern::config::Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.server.http = "127.0.0.1:0".parse().unwrap();
    config.admin.enabled = false;
    config.smtp.listen = None;
    config.dns.nameserver = Some(format!("127.0.0.1:{dns_port}").parse().unwrap());
    config.outbound.relay = Some(format!("127.0.0.1:{}", peer.port));
    let server = tern::server::Server::start(config.clone())
        .await
        .expect("starts");
    let account = server
        .directory()
        .account("alice@example.test")
        .await
        .expect("alice")
        .account_id;
    let raw = MESSAGE.replace("To: someone", "Bcc: secret@remote.example\r\nTo: someone");
    enqueue(
        server.store(),
        account,
        &raw,
        &["someone@remote.example"],
        |_| {},
    )
    .await;
    let received = peer.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    let signed = received[0].data.clone();
    let text = String::from_utf8_lossy(&signed);
    assert!(text.starts_with("DKIM-Signature:"), "{text}");
    assert!(
        !text.contains("secret@remote.example"),
        "Bcc is not sent: {text}"
    );

    let resolver = tern::dns::build(&config.dns).expect("resolver");
    let message = AuthenticatedMessage::parse(&signed).expect("parses");
    let results = resolver.verify_dkim(&message).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].result(), &DkimResult::Pass, "{results:?}");
    // A changed body no longer verifies (the check can fail).
    let tampered = text.replace("Hello over SMTP.", "Hello over SMTP!");
    let message = AuthenticatedMessage::parse(tampered.as_bytes()).expect("parses");
    let results = resolver.verify_dkim(&message).await;
    assert_ne!(results[0].result(), &DkimResult::Pass);

    // The queue CLI on the stopped store.
    let id = enqueue(
        server.store(),
        account,
        MESSAGE,
        &["later@remote.example"],
        |m| {
            m.send_at = tern::outbound::clock::system_now() + 3_600_000;
        },
    )
    .await;
    server.shutdown().await;
    let (ok, listed) = tern(&["queue", "list", "--data-dir", &data]);
    assert!(ok, "{listed}");
    assert!(listed.contains(&id.to_string()), "{listed}");
    assert!(
        listed.contains("later@remote.example (pending)"),
        "{listed}"
    );
    let (ok, text) = tern(&["queue", "cancel", &id.to_string(), "--data-dir", &data]);
    assert!(ok, "{text}");
    let (ok, text) = tern(&["queue", "cancel", &id.to_string(), "--data-dir", &data]);
    assert!(!ok, "a second cancel finds nothing: {text}");
    let (ok, listed) = tern(&["queue", "list", "--data-dir", &data]);
    assert!(ok && listed.contains("empty"), "{listed}");
    let _ = queue::MessageKind::Submission;
}
