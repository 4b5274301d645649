//! Defect 1 of issue 13: memory exhaustion through one request. A message of 10,000 small
//! text/plain parts (and one nested 5,000 deep), then 64 × `Email/get {"properties": null,
//! "fetchAllBodyValues": true}` in one request, and several such requests at once. The answer
//! must be a bounded response (calls over the limits answer a JMAP method error), another
//! client's Core/echo keeps being served, and the server process stays under its memory budget
//! and gives the memory back afterwards.
//!
//! The RSS test runs the server in a process of its own (an in-process server would share its
//! RSS with the other tests) and reads `/proc/PID/status`.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::messages::{deep_nesting as deep_message, many_parts as many_parts_message};

const USING: [&str; 2] = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"];

/// `calls` × the heavy Email/get of the issue on `id`.
fn heavy_request(account_id: &str, id: &str, calls: usize) -> Value {
    let method_calls: Vec<Value> = (0..calls)
        .map(|index| {
            json!(["Email/get", {
                "accountId": account_id,
                "ids": [id],
                "properties": null,
                "fetchAllBodyValues": true,
            }, format!("g{index}")])
        })
        .collect();
    json!({"using": USING, "methodCalls": method_calls})
}

/// A client of one server, by base URL and Basic credentials.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    api_url: String,
    upload_url: String,
    authorization: String,
    account_id: String,
}

impl Client {
    async fn connect(base_url: &str, email: &str, password: &str) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
        let authorization = format!("Basic {credentials}");
        let session: Value = http
            .get(format!("{base_url}/.well-known/jmap"))
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let account_id = session["primaryAccounts"]["urn:ietf:params:jmap:core"]
            .as_str()
            .unwrap()
            .to_owned();
        Client {
            api_url: session["apiUrl"].as_str().unwrap().to_owned(),
            upload_url: session["uploadUrl"]
                .as_str()
                .unwrap()
                .replace("{accountId}", &account_id),
            http,
            authorization,
            account_id,
        }
    }

    /// Posts `request`; the status and the raw body.
    async fn post(&self, request: &Value) -> (u16, Vec<u8>) {
        let response = self
            .http
            .post(&self.api_url)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }

    async fn call(&self, request: &Value) -> Value {
        let (status, body) = self.post(request).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Uploads `raw` and imports it into the Inbox; the Email id.
    async fn import(&self, raw: Vec<u8>) -> String {
        let uploaded: Value = self
            .http
            .post(&self.upload_url)
            .header("authorization", &self.authorization)
            .header("content-type", "message/rfc822")
            .body(raw)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mailboxes = self
            .call(&json!({"using": USING, "methodCalls": [
                ["Mailbox/query", {"accountId": self.account_id, "filter": {"role": "inbox"}}, "q"]
            ]}))
            .await;
        let inbox = mailboxes["methodResponses"][0][1]["ids"][0].clone();
        let imported = self
            .call(&json!({"using": USING, "methodCalls": [
                ["Email/import", {"accountId": self.account_id, "emails": {"k": {
                    "blobId": uploaded["blobId"],
                    "mailboxIds": {inbox.as_str().unwrap(): true},
                }}}, "i"]
            ]}))
            .await;
        imported["methodResponses"][0][1]["created"]["k"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("imported: {imported}"))
            .to_owned()
    }
}

/// Checks a heavy answer: every call is an Email/get of bounded size or a clean method error
/// saying why; returns how many were answered in full.
fn check_heavy_answer(status: u16, body: &[u8], max_response_bytes: usize) -> usize {
    assert_eq!(status, 200);
    assert!(
        body.len() <= max_response_bytes + 64 * 1024,
        "a {} byte response, over the limit of {max_response_bytes}",
        body.len()
    );
    let answer: Value = serde_json::from_slice(body).unwrap();
    let mut answered = 0;
    for response in answer["methodResponses"].as_array().unwrap() {
        match response[0].as_str().unwrap() {
            "Email/get" => {
                let email = &response[1]["list"][0];
                let parts = email["textBody"].as_array().unwrap().len();
                assert!(parts < 1000, "{parts} parts in textBody");
                answered += 1;
            }
            "error" => {
                let kind = response[1]["type"].as_str().unwrap();
                assert!(
                    kind == "requestTooLarge" || kind == "serverUnavailable",
                    "{response}"
                );
            }
            other => panic!("unexpected response {other}"),
        }
    }
    answered
}

/// Core/echo every 20 ms until `stop`; the latencies.
async fn probe(client: Client, stop: tokio::sync::watch::Receiver<bool>) -> Vec<Duration> {
    let echo = json!({"using": ["urn:ietf:params:jmap:core"],
                      "methodCalls": [["Core/echo", {"ping": true}, "e"]]});
    let mut latencies = Vec::new();
    while !*stop.borrow() {
        let started = Instant::now();
        let answer = client.call(&echo).await;
        latencies.push(started.elapsed());
        assert_eq!(answer["methodResponses"][0][1]["ping"], true);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    let index = (latencies.len() * 99).div_ceil(100).saturating_sub(1);
    latencies.get(index).copied().unwrap_or_default()
}

/// A Tern server in a process of its own, on a fresh data dir with accounts alice and bob;
/// killed on drop. The process is this test binary run again for [`server_process`]: it links
/// the library under test, whereas `CARGO_BIN_EXE_tern` names a path that every checkout
/// sharing a target directory overwrites.
struct ServerProcess {
    child: Child,
    base_url: String,
    _dir: tempfile::TempDir,
}

const SERVER_DIR_ENV: &str = "TERN_ABUSE_SERVER_DIR";

impl ServerProcess {
    fn start() -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "heavy_request::server_process",
                "--ignored",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env(SERVER_DIR_ENV, dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut process = ServerProcess {
            child,
            base_url: String::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "server did not start");
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "server exited");
            // The test harness writes `test name ... ` on the same line first.
            if let Some((_, rest)) = line.trim_end().split_once("Tern serving JMAP at ") {
                process.base_url = rest.split_whitespace().next().unwrap().to_owned();
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    let _ = reader.read_to_string(&mut sink);
                });
                return process;
            }
        }
    }

    /// A `/proc/PID/status` figure (VmRSS, VmHWM), in MiB.
    fn memory_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(
            Path::new("/proc")
                .join(self.child.id().to_string())
                .join("status"),
        )
        .unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with(field))
            .unwrap_or_else(|| panic!("{field} in /proc status"));
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|value| value.parse().ok())
            .unwrap();
        kib / 1024.0
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server of [`ServerProcess`]: runs only when started by it (otherwise returns at once),
/// with the default configuration, until its parent closes stdin or kills it.
#[test]
#[ignore = "the server process of heavy_email_get_stays_under_the_memory_budget"]
fn server_process() {
    let Some(dir) = std::env::var_os(SERVER_DIR_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let mut config = tern::config::Config::default();
        config.server.data_dir = Path::new(&dir).join("data");
        config.server.http = "127.0.0.1:0".parse().unwrap();
        config.admin.enabled = false;
        config.smtp.listen = None;
        let running = tern::server::Server::start(config).await.unwrap();
        let directory = running.directory();
        for (email, password) in [
            ("alice@example.test", "alice-pw"),
            ("bob@example.test", "bob-pw"),
        ] {
            directory.create_account(email, password).await.unwrap();
        }
        println!(
            "Tern serving JMAP at {}",
            running.base_url.trim_end_matches('/')
        );
        // Until the parent goes away (its end of stdin closes).
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await;
        running.shutdown().await;
    });
}

/// The scenario against a server process with the default budget (1024 MiB): the
/// server stays under it, answers bounded responses, keeps answering another client, and
/// gives the memory back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heavy_email_get_stays_under_the_memory_budget() {
    const BUDGET_MIB: f64 = 1024.0;
    const MAX_RESPONSE: usize = 32 << 20;
    let mut server = ServerProcess::start();
    let alice = Client::connect(&server.base_url, "alice@example.test", "alice-pw").await;
    let bob = Client::connect(&server.base_url, "bob@example.test", "bob-pw").await;
    let many = alice.import(many_parts_message(10_000)).await;
    let deep = alice.import(deep_message(5_000)).await;
    let idle_rss = server.memory_mib("VmRSS");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let prober = tokio::spawn(probe(bob.clone(), stopped));

    // One heavy request alone: the bytes held per byte of JSON answered.
    let started = Instant::now();
    let (status, body) = alice
        .post(&heavy_request(&alice.account_id, &many, 64))
        .await;
    let single_elapsed = started.elapsed();
    let answered = check_heavy_answer(status, &body, MAX_RESPONSE);
    let single_peak = server.memory_mib("VmHWM");
    let single_body = body.len();
    drop(body);
    let (status, body) = alice
        .post(&heavy_request(&alice.account_id, &deep, 64))
        .await;
    assert_eq!(
        check_heavy_answer(status, &body, MAX_RESPONSE),
        64,
        "the deep message is small"
    );

    // Several at once, on both messages.
    let concurrent: Vec<_> = (0..6)
        .map(|index| {
            let alice = alice.clone();
            let id = if index % 2 == 0 {
                many.clone()
            } else {
                deep.clone()
            };
            tokio::spawn(
                async move { alice.post(&heavy_request(&alice.account_id, &id, 64)).await },
            )
        })
        .collect();
    for request in concurrent {
        let (status, body) = request.await.unwrap();
        check_heavy_answer(status, &body, MAX_RESPONSE);
    }
    stop.send(true).unwrap();
    let mut latencies = prober.await.unwrap();
    let peak = server.memory_mib("VmHWM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.memory_mib("VmRSS");
    let probe_p99 = p99(&mut latencies);
    println!(
        "heavy request: {answered}/64 Email/get answered, {single_body} bytes in {single_elapsed:?}; \
         RSS idle {idle_rss:.1} MiB, peak after one request {single_peak:.1} MiB \
         ({:.2} bytes held per JSON byte), peak {peak:.1} MiB, after {after:.1} MiB; \
         {} probes, p99 {probe_p99:?}, max {:?}",
        (single_peak - idle_rss) * 1048576.0 / single_body as f64,
        latencies.len(),
        latencies.last().copied().unwrap_or_default(),
    );
    assert!(server.alive(), "the server survived");
    assert!(answered > 0, "a heavy Email/get is answered while it fits");
    assert!(
        peak < BUDGET_MIB,
        "peak RSS {peak:.1} MiB over the {BUDGET_MIB} MiB budget"
    );
    assert!(
        after < idle_rss + 256.0,
        "RSS after the requests {after:.1} MiB: memory not given back (idle {idle_rss:.1} MiB)"
    );
    assert!(latencies.len() >= 10, "the probe ran during the requests");
    // The bound: p99 ≤ 100 ms (measured 29 ms in a debug build at load average 6 on
    // 2 cores, since heavy Emails render on at most half the cores).
    assert!(
        probe_p99 <= Duration::from_millis(100),
        "Core/echo p99 {probe_p99:?} during the heavy requests"
    );
}

/// With a small budget the per-request limit is reached: the calls over it answer
/// `requestTooLarge` (RFC 8620 §5.1), the response stays under the limit, and a call after
/// them in the same request is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_response_limit_calls_answer_request_too_large() {
    let server = TestServer::start_with(|config| config.server.memory_budget_mb = 64).await;
    let alice = Client::connect(
        &server.base_url(),
        &server.alice().email,
        &server.alice().password,
    )
    .await;
    let many = alice.import(many_parts_message(10_000)).await;
    let mut request = heavy_request(&alice.account_id, &many, 63);
    request["methodCalls"]
        .as_array_mut()
        .unwrap()
        .push(json!(["Core/echo", {"after": true}, "e"]));
    let max_response = (64usize << 20) / 32;
    let (status, body) = alice.post(&request).await;
    let answered = check_heavy_answer_with_echo(status, &body, max_response);
    assert!(
        answered > 0 && answered < 63,
        "{answered} of 63 answered in full"
    );
    // Concurrent ones too: each bounded, none failing otherwise.
    let concurrent: Vec<_> = (0..4)
        .map(|_| {
            let alice = alice.clone();
            let request = request.clone();
            tokio::spawn(async move { alice.post(&request).await })
        })
        .collect();
    for request in concurrent {
        let (status, body) = request.await.unwrap();
        check_heavy_answer_with_echo(status, &body, max_response);
    }
    server.shutdown().await;
}

/// [`check_heavy_answer`] on a request whose last call is a Core/echo.
fn check_heavy_answer_with_echo(status: u16, body: &[u8], max_response: usize) -> usize {
    let mut answer: Value = serde_json::from_slice(body).unwrap();
    let responses = answer["methodResponses"].as_array_mut().unwrap();
    let echo = responses.pop().unwrap();
    assert_eq!(echo[0], "Core/echo");
    assert_eq!(echo[1]["after"], true);
    let too_large = responses
        .iter()
        .filter(|response| response[1]["type"] == "requestTooLarge")
        .count();
    assert!(too_large > 0, "some calls are over the limit");
    let rest = serde_json::to_vec(&answer).unwrap();
    check_heavy_answer(status, &rest, max_response)
}
