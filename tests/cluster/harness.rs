//! Real processes on loopback: a one-process FoundationDB cluster started for each test
//! (fdbserver and fdbcli from `TERN_FDB_DIR`, default `../shared/fdb`, or the official
//! packages' `/usr/sbin/fdbserver` and `/usr/bin/fdbcli`), and Tern nodes run as
//! `tern serve` processes on it.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TERN: &str = env!("CARGO_BIN_EXE_tern");
pub const PASSWORD: &str = "cluster-test-password";

/// Where fdbserver and fdbcli are, or why the cluster tests cannot run here.
fn fdb_binaries() -> Result<(PathBuf, PathBuf), String> {
    let shared = std::env::var_os("TERN_FDB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fdb"));
    let candidates = [
        (shared.join("bin/fdbserver"), shared.join("bin/fdbcli")),
        (
            PathBuf::from("/usr/sbin/fdbserver"),
            PathBuf::from("/usr/bin/fdbcli"),
        ),
    ];
    candidates
        .into_iter()
        .find(|(server, cli)| server.is_file() && cli.is_file())
        .ok_or_else(|| {
            format!(
                "no fdbserver/fdbcli: neither {} nor the official FoundationDB packages \
                 (/usr/sbin/fdbserver) are installed",
                shared.display()
            )
        })
}

/// Runs `test` with a fresh FoundationDB cluster, or says loudly why it is skipped.
pub fn with_fdb(name: &str, test: impl FnOnce(&Fdb)) {
    let _serial = serial();
    match fdb_binaries() {
        Ok((server, cli)) => {
            let fdb = Fdb::start(server, cli);
            test(&fdb);
        }
        Err(reason) => eprintln!("SKIPPED cluster test {name}: {reason}"),
    }
}

/// The cluster tests run one at a time: each runs a FoundationDB server and three nodes, and
/// measures failover times that two such tests at once on two cores would distort.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-process FoundationDB cluster on the memory engine, killed on drop.
pub struct Fdb {
    server: PathBuf,
    cli: PathBuf,
    pub dir: tempfile::TempDir,
    pub cluster_file: PathBuf,
    port: u16,
    process: std::sync::Mutex<Option<Child>>,
}

impl Fdb {
    fn start(server: PathBuf, cli: PathBuf) -> Fdb {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cluster_file = dir.path().join("fdb.cluster");
        std::fs::write(&cluster_file, format!("test:test@127.0.0.1:{port}\n")).unwrap();
        let fdb = Fdb {
            server,
            cli,
            cluster_file,
            port,
            process: std::sync::Mutex::new(None),
            dir,
        };
        fdb.spawn_server();
        let configured = fdb.fdbcli("configure new single memory");
        assert!(
            configured.contains("Database created") || configured.contains("already exists"),
            "fdbcli configure: {configured}"
        );
        fdb.wait_available();
        fdb
    }

    fn spawn_server(&self) {
        let data = self.dir.path().join("data");
        let logs = self.dir.path().join("log");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        let child = Command::new(&self.server)
            .args(["-p", &format!("127.0.0.1:{}", self.port)])
            .arg("-C")
            .arg(&self.cluster_file)
            .arg("-d")
            .arg(&data)
            .arg("-L")
            .arg(&logs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fdbserver");
        *self.process.lock().unwrap() = Some(child);
    }

    pub fn fdbcli(&self, command: &str) -> String {
        let output = Command::new(&self.cli)
            .arg("-C")
            .arg(&self.cluster_file)
            .args(["--timeout", "10", "--exec", command])
            .output()
            .expect("run fdbcli");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    fn wait_available(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .fdbcli("status minimal")
            .contains("The database is available")
        {
            assert!(Instant::now() < deadline, "FoundationDB did not come up");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Kills the server (SIGKILL), then starts it again on the same data: a FoundationDB
    /// restart. Returns once the database is available again.
    pub fn restart(&self, down_for: Duration) {
        if let Some(mut child) = self.process.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(down_for);
        self.spawn_server();
        self.wait_available();
    }
}

impl Drop for Fdb {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One `tern serve` process of the cluster, killed on drop.
pub struct Node {
    pub name: String,
    pub base_url: String,
    pub smtp: std::net::SocketAddr,
    pub config: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
}

/// What a test node adds to the default configuration.
#[derive(Default, Clone)]
pub struct NodeOptions {
    /// A submission listener (AUTH over loopback) on this port.
    pub submission: Option<u16>,
    /// The outbound actor on, relaying everything to this address.
    pub relay: Option<std::net::SocketAddr>,
    /// `cluster.lease_ms` instead of the tests' 1,500 (a paused node that must not be taken
    /// over during the test).
    pub lease_ms: Option<u64>,
}

pub fn write_config(fdb: &Fdb, name: &str, http: u16, smtp: u16, options: &NodeOptions) -> PathBuf {
    let submission = options
        .submission
        .map(|port| format!("submission = \"127.0.0.1:{port}\"\n"))
        .unwrap_or_default();
    let outbound = match options.relay {
        Some(relay) => format!("enabled = true\nrelay = \"{relay}\"\nstarttls = false\n"),
        None => "enabled = false\n".to_owned(),
    };
    let dir = fdb.dir.path().join(format!("node-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tern.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "{data}"
http = "127.0.0.1:{http}"
shutdown_grace_seconds = 2
memory_trim_interval_seconds = 0

[store]
backend = "foundationdb"
fdb_cluster_file = "{cluster_file}"

[cluster]
enabled = true
node_name = "{name}"
heartbeat_interval_ms = 250
lease_ms = {lease_ms}

[admin]
enabled = false

[smtp]
listen = "127.0.0.1:{smtp}"
{submission}
[dns]
nameserver = "127.0.0.1:9"
timeout_ms = 100
attempts = 1

[outbound]
{outbound}
[telemetry]
log_filter = "info"
"#,
            data = dir.join("data").display(),
            cluster_file = fdb.cluster_file.display(),
            lease_ms = options.lease_ms.unwrap_or(1500),
        ),
    )
    .unwrap();
    config
}

impl Node {
    pub fn start(fdb: &Fdb, name: &str) -> Node {
        Node::start_with(fdb, name, &NodeOptions::default())
    }

    pub fn start_with(fdb: &Fdb, name: &str, options: &NodeOptions) -> Node {
        let http = free_port();
        let smtp = free_port();
        let config = write_config(fdb, name, http, smtp, options);
        let mut node = Node {
            name: name.to_owned(),
            base_url: format!("http://127.0.0.1:{http}"),
            smtp: std::net::SocketAddr::from(([127, 0, 0, 1], smtp)),
            log: config.with_file_name("tern.log"),
            config,
            child: None,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(TERN)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start tern");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "node {} did not start",
                self.name
            );
            let mut line = String::new();
            let read = reader.read_line(&mut line).unwrap();
            assert!(
                read > 0,
                "node {} exited at start: {}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            if line.contains("Tern serving JMAP at") {
                break;
            }
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        self.child = Some(child);
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("running").id()).unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// kill -9, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn tern(&self, args: &[&str]) -> String {
        let output = Command::new(TERN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tern {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three nodes (a, b, c) on one FoundationDB.
pub fn three_nodes(fdb: &Fdb) -> Vec<Node> {
    ["a", "b", "c"]
        .into_iter()
        .map(|name| Node::start(fdb, name))
        .collect()
}

/// Creates an account through the CLI (straight on the store).
pub fn create_account(node: &Node, email: &str) {
    node.tern(&["account", "create", email, "--password", PASSWORD]);
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The outcome of one API call.
#[derive(Debug)]
pub enum Call {
    Ok(Value),
    /// HTTP status and body (e.g. 503 while an ownership change is in flight).
    Refused(u16, String),
    Failed(String),
}

pub async fn api(client: &reqwest::Client, node: &str, email: &str, calls: Value) -> Call {
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": calls,
    });
    let sent = client
        .post(format!("{node}/jmap/api"))
        .basic_auth(email, Some(PASSWORD))
        .json(&body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            if status == 200 {
                match serde_json::from_str(&text) {
                    Ok(value) => Call::Ok(value),
                    Err(error) => Call::Failed(format!("bad JSON ({error}): {text}")),
                }
            } else {
                Call::Refused(status, text)
            }
        }
        Err(error) => Call::Failed(error.to_string()),
    }
}

pub async fn account_id(client: &reqwest::Client, node: &str, email: &str) -> String {
    let session: Value = client
        .get(format!("{node}/.well-known/jmap"))
        .basic_auth(email, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a mailbox named `name`; `Ok(true)` when the server acknowledged the creation,
/// `Ok(false)` when it answered that it did not create it, `Err` when the outcome is unknown
/// (no answer) or the request was refused.
pub async fn create_mailbox(
    client: &reqwest::Client,
    node: &str,
    email: &str,
    account: &str,
    name: &str,
) -> Result<bool, String> {
    let calls = json!([["Mailbox/set", {
        "accountId": account,
        "create": {"m": {"name": name}},
    }, "0"]]);
    match api(client, node, email, calls).await {
        Call::Ok(value) => {
            let response = &value["methodResponses"][0];
            if response[0] == "Mailbox/set" && response[1]["created"]["m"]["id"].is_string() {
                Ok(true)
            } else {
                Err(format!("not created: {response}"))
            }
        }
        Call::Refused(status, body) => Err(format!("HTTP {status}: {body}")),
        Call::Failed(error) => Err(error),
    }
}

/// Every mailbox name of the account, with how many mailboxes carry it.
pub async fn mailbox_names(
    client: &reqwest::Client,
    node: &str,
    email: &str,
    account: &str,
) -> std::collections::HashMap<String, usize> {
    let calls = json!([["Mailbox/get", {"accountId": account, "properties": ["name"]}, "0"]]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Call::Ok(value) = api(client, node, email, calls.clone()).await {
            let mut names = std::collections::HashMap::new();
            for mailbox in value["methodResponses"][0][1]["list"].as_array().unwrap() {
                *names
                    .entry(mailbox["name"].as_str().unwrap().to_owned())
                    .or_insert(0) += 1;
            }
            return names;
        }
        assert!(Instant::now() < deadline, "Mailbox/get never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The node that owns `email`'s account, from `tern cluster status`-like output is not
/// needed: the first node a request for an account reaches claims it.
pub async fn claim_through(client: &reqwest::Client, node: &Node, email: &str) -> String {
    let account = account_id(client, &node.base_url, email).await;
    let calls = json!([["Mailbox/get", {"accountId": account, "ids": []}, "0"]]);
    match api(client, &node.base_url, email, calls).await {
        Call::Ok(_) => account,
        other => panic!("claim through {}: {other:?}", node.name),
    }
}
