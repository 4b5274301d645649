//! The external scanners, each a real daemon started by the test on a random port: clamd with
//! a signature database the test writes (an EICAR body signature; the public databases are
//! never downloaded), and SpamAssassin's spamd with the packaged rules and no network tests.
//! Each test is skipped (with a message) only when its daemon is not installed.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jmap_client::mailbox::Role;
use tern::smtp::antivirus::{Antivirus, AntivirusConfig, Verdict, VirusAction};
use tern::smtp::spam::SpamConfig;

use crate::support::{
    Envelope, account_number, emails_in, enqueue, free_port, have, mailbox_with_role, message,
    start_server, wait_until_delivered,
};

/// The EICAR test file (the standard anti-virus test string).
pub const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// A daemon killed (and its files removed) on drop.
pub struct Daemon {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(child: &mut Child, address: &str, what: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while std::net::TcpStream::connect(address).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start in {seconds} s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// clamd with one test signature (`Tern-EICAR`, matching the EICAR string anywhere).
pub fn start_clamd() -> Option<Daemon> {
    if !have("clamd") {
        eprintln!("clamd is not installed: skipping");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    std::fs::create_dir(&db).expect("db dir");
    let hex: String = EICAR.bytes().map(|byte| format!("{byte:02x}")).collect();
    std::fs::write(db.join("tern-test.ndb"), format!("Tern-EICAR:0:*:{hex}\n")).expect("ndb");
    let port = free_port();
    let config = dir.path().join("clamd.conf");
    let mut file = std::fs::File::create(&config).expect("config");
    write!(
        file,
        "Foreground yes\nDatabaseDirectory {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLogFile {}\nUser root\nStreamMaxLength 10M\n",
        db.display(),
        dir.path().join("clamd.log").display()
    )
    .expect("write config");
    let mut child = Command::new("clamd")
        .arg(format!("--config-file={}", config.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("clamd starts");
    let address = format!("127.0.0.1:{port}");
    wait_for_port(&mut child, &address, "clamd", 60);
    Some(Daemon {
        child,
        address,
        _dir: dir,
    })
}

/// spamd with the packaged rules, no network tests, no Bayes, no user configs.
pub fn start_spamd() -> Option<Daemon> {
    if !have("spamd") {
        eprintln!("spamd is not installed: skipping");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let site = dir.path().join("site");
    std::fs::create_dir(&site).expect("site dir");
    // The .pre files load the plugins; local.cf switches off everything that needs network.
    if let Ok(entries) = std::fs::read_dir("/etc/spamassassin") {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "pre") {
                let _ = std::fs::copy(&path, site.join(entry.file_name()));
            }
        }
    }
    std::fs::write(
        site.join("local.cf"),
        "use_bayes 0\nskip_rbl_checks 1\ndns_available no\nuse_razor2 0\nuse_pyzor 0\nuse_auto_whitelist 0\n",
    )
    .expect("local.cf");
    let rules = if std::path::Path::new("/var/lib/spamassassin/4.000001").exists() {
        "/var/lib/spamassassin/4.000001/updates_spamassassin_org".to_owned()
    } else {
        "/usr/share/spamassassin".to_owned()
    };
    let port = free_port();
    let mut child = Command::new("spamd")
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--allowed-ips=127.0.0.1",
            "--max-children=1",
            "--min-children=1",
            "--nouser-config",
            "--syslog=stderr",
            &format!("--configpath={rules}"),
            &format!("--siteconfigpath={}", site.display()),
            &format!("--pidfile={}", dir.path().join("spamd.pid").display()),
            "--username=nobody",
        ])
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spamd starts");
    let address = format!("127.0.0.1:{port}");
    wait_for_port(&mut child, &address, "spamd", 90);
    Some(Daemon {
        child,
        address,
        _dir: dir,
    })
}

#[tokio::test]
async fn clamd_finds_the_test_signature_and_infected_mail_is_quarantined() {
    let Some(clamd) = start_clamd() else { return };
    let antivirus = Antivirus::from_config(&AntivirusConfig {
        clamd: Some(clamd.address.clone()),
        ..AntivirusConfig::default()
    })
    .expect("configured");
    let clean = message(
        "a@remote.example",
        "alice@example.test",
        "Clean",
        "Nothing here",
    );
    assert_eq!(antivirus.scan(&clean).await, Verdict::Clean);
    let infected = message("a@remote.example", "alice@example.test", "Invoice", EICAR);
    match antivirus.scan(&infected).await {
        Verdict::Infected(name) => assert!(name.contains("Tern-EICAR"), "{name}"),
        other => panic!("not found: {other:?}"),
    }
    // Bigger than one INSTREAM chunk: the chunking must carry the signature across.
    let big = message(
        "a@remote.example",
        "alice@example.test",
        "Big",
        &format!("{}\r\n{EICAR}\r\n", "x".repeat(200_000)),
    );
    assert!(matches!(antivirus.scan(&big).await, Verdict::Infected(_)));
    let nobody = Antivirus::from_config(&AntivirusConfig {
        clamd: Some(format!("127.0.0.1:{}", free_port())),
        ..AntivirusConfig::default()
    })
    .unwrap();
    assert!(matches!(nobody.scan(&clean).await, Verdict::Unavailable(_)));

    // Through the delivery actor, with `quarantine`: the infected message reaches no mailbox.
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
    enqueue(&server, &envelope, &infected).await;
    enqueue(&server, &envelope, &clean).await;
    wait_until_delivered(&server).await;
    let client = server.jmap_client(&alice).await;
    let inbox = emails_in(&client, &mailbox_with_role(&client, Role::Inbox).await).await;
    let junk = emails_in(&client, &mailbox_with_role(&client, Role::Junk).await).await;
    assert_eq!((inbox.len(), junk.len()), (1, 0));
    let store = server.running().store().clone();
    let quarantined = store
        .read(|tx| {
            Box::pin(async move {
                let prefix = tern::store::keys::KeyBuilder::new(tern::store::keys::SUBSPACE_QUEUE)
                    .u8(tern::store::keys::QUEUE_DELIVERY_QUARANTINE)
                    .build();
                tx.get_range(
                    &tern::store::KeyRange::prefix(&prefix),
                    tern::store::RangeOptions::default(),
                )
                .await
            })
        })
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    let record: serde_json::Value = serde_json::from_slice(&quarantined[0].1).unwrap();
    assert!(
        record["virus"].as_str().unwrap().contains("Tern-EICAR"),
        "{record}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn spamd_scores_gtube_and_its_verdict_files_mail_in_junk() {
    let Some(spamd) = start_spamd() else { return };
    let client = SpamConfig {
        spamd: Some(spamd.address.clone()),
        ..SpamConfig::default()
    }
    .spamd_client()
    .expect("configured");
    let ham = message(
        "a@remote.example",
        "alice@example.test",
        "Lunch",
        "See you at noon",
    );
    let verdict = client.check(&ham).await.expect("spamd answers");
    assert!(!verdict.is_spam, "{verdict:?}");
    let gtube = message(
        "a@remote.example",
        "alice@example.test",
        "Test",
        tern::smtp::spam::rules::GTUBE,
    );
    let verdict = client.check(&gtube).await.expect("spamd answers");
    assert!(verdict.is_spam && verdict.score >= 1000.0, "{verdict:?}");
    assert!(verdict.symbols.iter().any(|s| s == "GTUBE"), "{verdict:?}");

    // The built-in rules are switched off by a huge threshold: only spamd can file it in Junk.
    let address = spamd.address.clone();
    let server = start_server(None, move |config| {
        config.spam.spamd = Some(address);
        config.spam.threshold = 1.0e9;
    })
    .await;
    let alice = server.alice().clone();
    let envelope = Envelope {
        mail_from: "a@remote.example",
        recipients: vec![(alice.email.as_str(), account_number(&server, &alice).await)],
        client_ip: Some("192.0.2.25".parse().unwrap()),
        helo: "remote.example",
    };
    enqueue(&server, &envelope, &gtube).await;
    enqueue(&server, &envelope, &ham).await;
    wait_until_delivered(&server).await;
    let jmap = server.jmap_client(&alice).await;
    let inbox = emails_in(&jmap, &mailbox_with_role(&jmap, Role::Inbox).await).await;
    let junk = emails_in(&jmap, &mailbox_with_role(&jmap, Role::Junk).await).await;
    assert_eq!((inbox.len(), junk.len()), (1, 1));
    server.shutdown().await;
}
