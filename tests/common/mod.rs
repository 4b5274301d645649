//! In-process test harness: starts a real Tern server on an ephemeral loopback port with a
//! temporary data dir, creates two accounts (alice, bob) and a bearer token for alice, and
//! offers small raw-HTTP helpers for the tests.
//!
//! Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A session of the real `jmap-client` crate on any Tern at `base_url` (redirects kept on
/// loopback).
pub async fn connect_jmap_client(
    base_url: &str,
    email: &str,
    password: &str,
) -> jmap_client::client::Client {
    jmap_client::client::Client::new()
        .credentials((email, password))
        .follow_redirects(["127.0.0.1"])
        .connect(base_url)
        .await
        .expect("jmap-client connects")
}

/// A jmap-client request naming `using` itself: the crate's default lists capabilities Tern
/// does not serve, which a server must refuse (RFC 8620 §3.6.1 unknownCapability).
pub fn request_using<'a>(
    client: &'a jmap_client::client::Client,
    using: &[jmap_client::URI],
) -> jmap_client::core::request::Request<'a> {
    let mut request = client.build();
    request.using = using.to_vec();
    request
}

/// A request with the capabilities of JMAP Mail (core + mail).
pub fn mail_request(
    client: &jmap_client::client::Client,
) -> jmap_client::core::request::Request<'_> {
    request_using(client, &[jmap_client::URI::Core, jmap_client::URI::Mail])
}

/// The id of the one Mailbox with `role`.
pub async fn mailbox_with_role(
    client: &jmap_client::client::Client,
    role: jmap_client::mailbox::Role,
) -> String {
    let mut request = mail_request(client);
    request
        .query_mailbox()
        .filter(jmap_client::mailbox::query::Filter::role(role.clone()));
    let mut response = request
        .send_single::<jmap_client::core::query::QueryResponse>()
        .await
        .expect("Mailbox/query answered");
    let ids = response.take_ids();
    assert_eq!(ids.len(), 1, "exactly one Mailbox has role {role:?}");
    ids[0].clone()
}

/// A user of the test server, with the account id the session reports.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub email: String,
    pub password: String,
    pub account_id: String,
}

impl TestUser {
    pub fn authorization(&self) -> String {
        let credentials = format!("{}:{}", self.email, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }
}

/// A buffered HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn media_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "HTTP {} body is not JSON ({error}): {}",
                self.status,
                self.text()
            )
        })
    }
}

async fn into_answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let body = response
        .bytes()
        .await
        .expect("read the answer body")
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn echo_request(calls: usize) -> Value {
    let method_calls: Vec<Value> = (0..calls)
        .map(|index| json!(["Core/echo", {"i": index}, format!("c{index}")]))
        .collect();
    json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": method_calls})
}

/// A running server plus what the tests need to talk to it. Dropping it without
/// [`TestServer::shutdown`] still removes the data dir, but may cut in-flight requests.
pub struct TestServer {
    running: Option<tern::server::RunningServer>,
    base_url: String,
    http: reqwest::Client,
    users: Vec<TestUser>,
    alice_token: String,
    session_template: Value,
    // Last, so the directory outlives the server.
    _data_dir: tempfile::TempDir,
}

impl TestServer {
    /// A session of the real `jmap-client` crate for `user` (redirects kept on loopback).
    pub async fn jmap_client(&self, user: &TestUser) -> jmap_client::client::Client {
        connect_jmap_client(&self.base_url(), &user.email, &user.password).await
    }

    /// Starts a server with default limits.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` changed the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut tern::config::Config)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temporary data dir");
        let mut config = tern::config::Config::default();
        config.server.data_dir = data_dir.path().to_path_buf();
        config.server.http = "127.0.0.1:0".parse().expect("loopback address");
        config.server.shutdown_grace_seconds = 2;
        config.admin.enabled = false;
        adjust(&mut config);
        let running = tern::server::Server::start(config)
            .await
            .expect("the server starts");
        let base_url = running.base_url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");

        let directory = running.directory();
        let mut users = Vec::new();
        for (email, password) in [
            ("alice@example.test", "alice-password-1"),
            ("bob@example.test", "bob-password-2"),
        ] {
            directory
                .create_account(email, password)
                .await
                .expect("create account");
            users.push(TestUser {
                email: email.to_owned(),
                password: password.to_owned(),
                account_id: String::new(),
            });
        }
        let alice_token = directory
            .create_token("alice@example.test")
            .await
            .expect("create token");

        let mut server = TestServer {
            running: Some(running),
            base_url,
            http,
            users,
            alice_token,
            session_template: Value::Null,
            _data_dir: data_dir,
        };
        for index in 0..server.users.len() {
            let session = server.session(&server.users[index]).await;
            let account_id = session["primaryAccounts"]["urn:ietf:params:jmap:core"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    session["accounts"]
                        .as_object()
                        .and_then(|accounts| accounts.keys().next().cloned())
                })
                .expect("the session names the user's account");
            server.users[index].account_id = account_id;
            server.session_template = session;
        }
        server
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// The running server (its store, push hub, bound address).
    pub fn running(&self) -> &tern::server::RunningServer {
        self.running
            .as_ref()
            .expect("the server runs until shutdown")
    }

    pub fn alice(&self) -> &TestUser {
        &self.users[0]
    }

    pub fn bob(&self) -> &TestUser {
        &self.users[1]
    }

    pub fn alice_token(&self) -> &str {
        &self.alice_token
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn session_url(&self) -> String {
        format!("{}/.well-known/jmap", self.base_url)
    }

    pub fn api_url(&self) -> String {
        self.session_template["apiUrl"]
            .as_str()
            .expect("apiUrl")
            .to_owned()
    }

    pub fn upload_url(&self, user: &TestUser) -> String {
        self.session_template["uploadUrl"]
            .as_str()
            .expect("uploadUrl")
            .replace("{accountId}", &user.account_id)
    }

    pub fn download_url(
        &self,
        account_id: &str,
        blob_id: &str,
        name: &str,
        media_type: &str,
    ) -> String {
        let encode = |text: &str| -> String {
            text.bytes()
                .map(|byte| {
                    if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                        char::from(byte).to_string()
                    } else {
                        format!("%{byte:02X}")
                    }
                })
                .collect()
        };
        self.session_template["downloadUrl"]
            .as_str()
            .expect("downloadUrl")
            .replace("{accountId}", &encode(account_id))
            .replace("{blobId}", &encode(blob_id))
            .replace("{name}", &encode(name))
            .replace("{type}", &encode(media_type))
    }

    pub async fn session(&self, user: &TestUser) -> Value {
        let response = self
            .http
            .get(self.session_url())
            .header("authorization", user.authorization())
            .send()
            .await
            .expect("GET session");
        let answer = into_answer(response).await;
        assert_eq!(
            answer.status,
            200,
            "session for {}: {}",
            user.email,
            answer.text()
        );
        answer.json()
    }

    pub async fn post_api(&self, user: &TestUser, request: &Value) -> Answer {
        self.post_raw(
            &self.api_url(),
            user,
            "application/json",
            request.to_string().into_bytes(),
        )
        .await
    }

    pub async fn post_raw(
        &self,
        url: &str,
        user: &TestUser,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let response = self
            .http
            .post(url)
            .header("authorization", user.authorization())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        into_answer(response).await
    }

    pub async fn upload(&self, user: &TestUser, content: Vec<u8>, media_type: &str) -> Answer {
        self.post_raw(&self.upload_url(user), user, media_type, content)
            .await
    }

    pub async fn download(&self, user: &TestUser, account_id: &str, blob_id: &str) -> Answer {
        let url = self.download_url(account_id, blob_id, "file.bin", "application/octet-stream");
        let response = self
            .http
            .get(url)
            .header("authorization", user.authorization())
            .send()
            .await
            .expect("GET download");
        into_answer(response).await
    }

    /// GET for the session URL, POST of an echo request for anything else; no credentials.
    pub async fn post_or_get_anonymous(&self, url: &str) -> Answer {
        let request = if url.ends_with("/.well-known/jmap") {
            self.http.get(url)
        } else {
            self.http
                .post(url)
                .header("content-type", "application/json")
                .body(echo_request(1).to_string())
        };
        into_answer(request.send().await.expect("anonymous request")).await
    }

    pub async fn get_with_bearer(&self, url: &str, token: &str) -> Answer {
        let response = self
            .http
            .get(url)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("GET with bearer");
        into_answer(response).await
    }
}

/// Sends only the head of a POST declaring `content_length` bytes, never the body, and reads the
/// answer: proves a limit is enforced from the declared length before any body is buffered.
pub async fn raw_head_only(url: &str, user: &TestUser, content_length: u64) -> Answer {
    let without_scheme = url.strip_prefix("http://").expect("plain http URL");
    let (authority, path) =
        without_scheme.split_at(without_scheme.find('/').unwrap_or(without_scheme.len()));
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n",
        user.authorization()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let read_answer = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            if let Some(head_end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let status: u16 = lines
                    .next()
                    .and_then(|line| line.split(' ').nth(1))
                    .and_then(|code| code.parse().ok())
                    .expect("status line");
                let headers: Vec<(String, String)> = lines
                    .filter_map(|line| line.split_once(':'))
                    .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, value)| value.parse().ok())
                    .unwrap_or(0);
                while received.len() < head_end + 4 + length {
                    let read = stream.read(&mut buffer).await.expect("read body");
                    if read == 0 {
                        break;
                    }
                    received.extend_from_slice(&buffer[..read]);
                }
                let body_end = (head_end + 4 + length).min(received.len());
                let body = received[head_end + 4..body_end].to_vec();
                return Answer {
                    status,
                    headers,
                    body,
                };
            }
            let read = stream.read(&mut buffer).await.expect("read head");
            assert!(read > 0, "connection closed without an answer");
            received.extend_from_slice(&buffer[..read]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_answer)
        .await
        .expect("the server answers from the head alone, without waiting for the body")
}

/// A WebSocket of the server (RFC 8887), as seen by a test client.
pub type PushSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the session's WebSocket as `user` (subprotocol `jmap`) and sends `enable` (a
/// WebSocketPushEnable object).
pub async fn push_websocket(server: &TestServer, user: &TestUser, enable: Value) -> PushSocket {
    use futures_util::SinkExt as _;
    let session = server.session(user).await;
    let url = session["capabilities"]["urn:ietf:params:jmap:websocket"]["url"]
        .as_str()
        .expect("the session advertises the WebSocket URL")
        .to_owned();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .expect("a WebSocket request");
    request.headers_mut().insert(
        "authorization",
        user.authorization().parse().expect("header"),
    );
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "jmap".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the WebSocket opens");
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            enable.to_string(),
        ))
        .await
        .expect("WebSocketPushEnable sent");
    socket
}
