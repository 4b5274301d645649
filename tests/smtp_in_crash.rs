//! kill -9 during an SMTP burst: every message that got its `250` is there after a restart,
//! exactly once (delivered into the Inbox by the delivery actor, which resumes the queue), and
//! the account's quota usage (RFC 9425 `used`, exact counters) equals a recount of its Emails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TERN: &str = env!("CARGO_BIN_EXE_tern");

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve(data_dir: &std::path::Path, http: SocketAddr, smtp: SocketAddr) -> Serving {
    let child = Command::new(TERN)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--http", &http.to_string(), "--smtp", &smtp.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tern serve");
    let serving = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(smtp).await.is_err() {
        assert!(Instant::now() < deadline, "SMTP listener did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serving
}

async fn read_reply(stream: &mut BufReader<TcpStream>, line: &mut String) -> Option<String> {
    loop {
        line.clear();
        match stream.read_line(line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) if line.len() > 3 && line.as_bytes()[3] == b'-' => continue,
            Ok(_) => return Some(line.clone()),
        }
    }
}

/// Sends messages on one connection until an error; records each subject acknowledged.
async fn sender(smtp: SocketAddr, worker: usize, acked: Arc<Mutex<Vec<String>>>) {
    let Ok(stream) = TcpStream::connect(smtp).await else {
        return;
    };
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    if read_reply(&mut stream, &mut line).await.is_none() {
        return;
    }
    if stream.get_mut().write_all(b"EHLO crash\r\n").await.is_err() {
        return;
    }
    if read_reply(&mut stream, &mut line).await.is_none() {
        return;
    }
    for sequence in 0.. {
        let subject = format!("crash-{worker}-{sequence}");
        let message = format!(
            "MAIL FROM:<load@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n\
             Subject: {subject}\r\nMessage-ID: <{subject}@remote.test>\r\n\r\n{}\r\n.\r\n",
            "0123456789 abcdefghijklmnopqrstuvwxyz 0123456789 abcdefghijklmnopqrstuvwxyz\r\n"
                .repeat(27)
        );
        if stream
            .get_mut()
            .write_all(message.as_bytes())
            .await
            .is_err()
        {
            return;
        }
        for _ in 0..3 {
            if read_reply(&mut stream, &mut line).await.is_none() {
                return;
            }
        }
        match read_reply(&mut stream, &mut line).await {
            Some(final_reply) if final_reply.starts_with("250") => {
                acked.lock().unwrap().push(subject);
            }
            _ => return,
        }
    }
}

async fn subjects(http: SocketAddr) -> Option<Vec<String>> {
    let client = reqwest::Client::new();
    let session: serde_json::Value = client
        .get(format!("http://{http}/.well-known/jmap"))
        .basic_auth("alice@example.test", Some("crash-password"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"].as_str()?;
    let request = serde_json::json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [
            ["Email/query", {"accountId": account, "limit": 100000}, "q"],
            ["Email/get", {"accountId": account, "properties": ["subject"],
                "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"]
        ]
    });
    let body: serde_json::Value = client
        .post(format!("http://{http}/jmap/api"))
        .basic_auth("alice@example.test", Some("crash-password"))
        .json(&request)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        body["methodResponses"][1][1]["list"]
            .as_array()?
            .iter()
            .filter_map(|email| email["subject"].as_str().map(str::to_owned))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let created = Command::new(TERN)
        .args([
            "account",
            "create",
            "alice@example.test",
            "--password",
            "crash-password",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    // A message-count Quota too (the default configuration limits only storage).
    let limited = Command::new(TERN)
        .args([
            "account",
            "quota",
            "alice@example.test",
            "--messages",
            "1000000",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(limited.status.success(), "{limited:?}");
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let smtp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut server = serve(dir.path(), http, smtp).await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8)
        .map(|worker| tokio::spawn(sender(smtp, worker, Arc::clone(&acked))))
        .collect();
    // Let the burst run, then kill -9 in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 150 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.0.kill().expect("kill -9");
    server.0.wait().unwrap();
    for worker in workers {
        let _ = worker.await;
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 50,
        "too few messages before the kill: {}",
        acked.len()
    );

    drop(server);
    let _server = serve(dir.path(), http, smtp).await;
    // The delivery actor resumes the queue; wait until every acknowledged message is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut counts = HashMap::new();
    loop {
        if let Some(found) = subjects(http).await {
            counts.clear();
            for subject in found {
                *counts.entry(subject).or_insert(0usize) += 1;
            }
            if acked.iter().all(|subject| counts.contains_key(subject)) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged messages missing after restart: {:?}",
            acked
                .iter()
                .filter(|subject| !counts.contains_key(*subject))
                .take(10)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Exactly once: no acknowledged message twice, and no message at all twice.
    let doubles: Vec<_> = counts.iter().filter(|(_, count)| **count > 1).collect();
    assert!(doubles.is_empty(), "delivered twice: {doubles:?}");
    // The usage counters survived the kill exactly: they equal a recount (retried until the
    // queue is drained; messages accepted without their 250 reaching the client may still land).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (counted, recounted) = usage_and_recount(http).await;
        if counted == Some(recounted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "quota usage {counted:?} differs from the recount {recounted:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (Quota `used` octets and count, the sum of the Emails' sizes and their number), in one
/// request.
async fn usage_and_recount(http: SocketAddr) -> (Option<(u64, u64)>, (u64, u64)) {
    let client = reqwest::Client::new();
    let session: serde_json::Value = match client
        .get(format!("http://{http}/.well-known/jmap"))
        .basic_auth("alice@example.test", Some("crash-password"))
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        .as_str()
        .unwrap_or_default();
    let request = serde_json::json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail",
            "urn:ietf:params:jmap:quota"],
        "methodCalls": [
            ["Quota/get", {"accountId": account, "ids": null}, "u"],
            ["Email/query", {"accountId": account, "limit": 100000}, "q"],
            ["Email/get", {"accountId": account, "properties": ["size"],
                "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"]
        ]
    });
    let body: serde_json::Value = match client
        .post(format!("http://{http}/jmap/api"))
        .basic_auth("alice@example.test", Some("crash-password"))
        .json(&request)
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let quotas = body["methodResponses"][0][1]["list"].as_array().cloned();
    if quotas.is_none() {
        eprintln!("Quota/get: {}", body["methodResponses"][0]);
    }
    let used = |kind: &str| {
        quotas.as_ref().and_then(|list| {
            list.iter()
                .find(|quota| quota["resourceType"] == kind)
                .and_then(|quota| quota["used"].as_u64())
        })
    };
    let counted = used("octets").zip(used("count"));
    let sizes: Vec<u64> = body["methodResponses"][2][1]["list"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|email| email["size"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    (counted, (sizes.iter().sum(), sizes.len() as u64))
}
