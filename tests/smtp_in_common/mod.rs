//! Shared by the `smtp_in_*` test binaries: a server with SMTP listeners on ephemeral
//! loopback ports and a raw SMTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern::server::{RunningServer, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Harness {
    pub server: RunningServer,
    pub alice_id: u32,
    _dir: tempfile::TempDir,
}

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/http/testdata")
        .join(name)
}

pub async fn start(adjust: impl FnOnce(&mut tern::config::Config)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = tern::config::Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.server.http = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_seconds = 1;
    config.admin.enabled = false;
    config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
    config.smtp.submission = Some("127.0.0.1:0".parse().unwrap());
    config.smtp.hostname = Some("mx.example.test".into());
    adjust(&mut config);
    let server = Server::start(config).await.expect("server starts");
    let alice = server
        .create_account("alice@example.test", "alice-password")
        .await
        .expect("alice");
    server
        .create_account("bob@example.test", "bob-password")
        .await
        .expect("bob");
    Harness {
        server,
        alice_id: alice.account_id,
        _dir: dir,
    }
}

pub fn tls_paths() -> (PathBuf, PathBuf) {
    (testdata("cert.pem"), testdata("key.pem"))
}

/// A raw SMTP client: sends lines, reads multi-line replies.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(address: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(address).await.expect("connect");
        let mut client = Client {
            reader: BufReader::new(stream),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// One reply (all its lines, joined by '\n'); "" when the server closed.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                    .await
                    .expect("a reply within 10 s")
                    .unwrap_or(0);
            if read == 0 {
                return lines.join("\n");
            }
            let line = line.trim_end().to_owned();
            let last = line.len() < 4 || line.as_bytes()[3] == b' ';
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).await.expect("write");
    }

    pub async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.reader.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }
}

/// Subjects in alice's account, through JMAP Email/query + Email/get.
pub async fn delivered_subjects(harness: &Harness) -> Vec<String> {
    let account = harness.alice_id;
    let request = serde_json::json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [
            ["Email/query", {"accountId": tern::jmap::types::AccountId::new(account).to_string()}, "q"],
            ["Email/get", {"accountId": tern::jmap::types::AccountId::new(account).to_string(),
                "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                "properties": ["subject"]}, "g"]
        ]
    });
    let client = reqwest::Client::new();
    let Ok(response) = client
        .post(format!("{}/jmap/api", harness.server.base_url))
        .basic_auth("alice@example.test", Some("alice-password"))
        .json(&request)
        .send()
        .await
    else {
        return Vec::new();
    };
    let Ok(body) = response.json::<serde_json::Value>().await else {
        return Vec::new();
    };
    body["methodResponses"][1][1]["list"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|email| email["subject"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
