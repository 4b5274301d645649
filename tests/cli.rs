//! The `tern` command line, run as a real process: account and token commands on a stopped
//! data dir and through a running server's admin endpoint, and the one-line errors (locked
//! data dir, port in use, bad config key, unknown account, existing account).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

const TERN: &str = env!("CARGO_BIN_EXE_tern");

fn tern(args: &[&str]) -> Output {
    Command::new(TERN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tern")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The error a failed command printed: exactly one line, and a failure exit code.
fn one_line_error(output: &Output) -> String {
    assert!(!output.status.success(), "expected failure: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {stderr}");
    assert!(lines[0].starts_with("tern: error: "), "{stderr}");
    lines[0].to_owned()
}

/// A `tern serve` child process, killed on drop.
struct ServerProcess {
    child: Child,
    base_url: String,
    stdout_lines: Vec<String>,
}

impl ServerProcess {
    fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        let mut command = Command::new(TERN);
        command
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Owned by the guard at once, so a failed start still kills and reaps the child.
        let mut process = ServerProcess {
            child: command.spawn().expect("spawn tern serve"),
            base_url: String::new(),
            stdout_lines: Vec::new(),
        };
        let mut reader = BufReader::new(process.child.stdout.take().expect("stdout"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "server did not start");
            let mut line = String::new();
            let read = reader.read_line(&mut line).expect("read stdout");
            assert!(read > 0, "server exited early: {:?}", process.stdout_lines);
            let line = line.trim_end().to_owned();
            if let Some(rest) = line.strip_prefix("Tern serving JMAP at ") {
                process.base_url = rest.split_whitespace().next().unwrap().to_owned();
                process.stdout_lines.push(line);
                // Keep draining stdout so the child never blocks on a full pipe.
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    let _ = reader.read_to_string(&mut sink);
                });
                return process;
            }
            process.stdout_lines.push(line);
        }
    }

    fn authority(&self) -> &str {
        self.base_url.strip_prefix("http://").unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of `GET /.well-known/jmap` with the given Authorization header.
fn session_status(authority: &str, authorization: &str) -> u16 {
    session_response(authority, authorization)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The raw HTTP response to a GET of the session resource.
fn session_response(authority: &str, authorization: &str) -> String {
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /.well-known/jmap HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {authorization}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn basic(email: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    format!("Basic {encoded}")
}

fn dir_arg(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn accounts_on_a_stopped_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir_arg(dir.path());

    let created = tern(&[
        "account",
        "create",
        "Alice@Example.test",
        "--password",
        "pw1",
        "--data-dir",
        data,
    ]);
    assert!(created.status.success(), "{created:?}");
    assert!(stdout(&created).contains("alice@example.test"));
    assert!(
        !stdout(&created).contains("password:"),
        "a given password is not echoed"
    );

    let generated = tern(&["account", "create", "bob@example.test", "--data-dir", data]);
    assert!(generated.status.success());
    let password_line = stdout(&generated)
        .lines()
        .find_map(|line| line.strip_prefix("password: ").map(str::to_owned))
        .expect("generated password printed");
    assert!(password_line.len() >= 16);

    let mut piped = Command::new(TERN)
        .args([
            "account",
            "create",
            "carol@example.test",
            "--password-stdin",
            "--data-dir",
            data,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    piped
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-stdin\n")
        .unwrap();
    assert!(piped.wait_with_output().unwrap().status.success());

    let listed = tern(&["account", "list", "--data-dir", data]);
    let listing = stdout(&listed);
    for email in [
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
    ] {
        assert!(listing.contains(email), "{listing}");
    }

    let exists = one_line_error(&tern(&[
        "account",
        "create",
        "ALICE@example.test",
        "--password",
        "x",
        "--data-dir",
        data,
    ]));
    assert!(exists.contains("already exists"), "{exists}");
    let unknown = one_line_error(&tern(&[
        "account",
        "delete",
        "nobody@example.test",
        "--data-dir",
        data,
    ]));
    assert!(unknown.contains("nobody@example.test"), "{unknown}");
    let unknown = one_line_error(&tern(&[
        "token",
        "create",
        "nobody@example.test",
        "--data-dir",
        data,
    ]));
    assert!(unknown.contains("no account"), "{unknown}");

    let token = tern(&["token", "create", "alice@example.test", "--data-dir", data]);
    assert!(token.status.success());
    assert!(stdout(&token).trim().starts_with("tern_"));

    assert!(
        tern(&[
            "account",
            "passwd",
            "alice@example.test",
            "--password",
            "pw2",
            "--data-dir",
            data
        ])
        .status
        .success()
    );
    // A stopped data dir: limits are written to the store directly.
    let quota = stdout(&tern(&[
        "account",
        "quota",
        "alice@example.test",
        "--messages",
        "7",
        "--warn-percent",
        "80",
        "--data-dir",
        data,
    ]));
    assert!(
        quota.contains("messages: 0 of 7") && quota.contains("warning at 80%"),
        "{quota}"
    );
    assert!(
        tern(&["account", "delete", "bob@example.test", "--data-dir", data])
            .status
            .success()
    );
    // A domain's quota (RFC 9425 scope domain) through the server: set, read, reset.
    let domain = stdout(&tern(&[
        "domain",
        "quota",
        "example.test",
        "--messages",
        "500",
        "--data-dir",
        data,
    ]));
    assert!(
        domain.contains("domain example.test") && domain.contains("messages: 0 of 500"),
        "{domain}"
    );
    let domain_shown = stdout(&tern(&[
        "domain",
        "quota",
        "example.test",
        "--data-dir",
        data,
    ]));
    assert_eq!(domain_shown, domain);
    let domain_reset = stdout(&tern(&[
        "domain",
        "quota",
        "example.test",
        "--reset",
        "--data-dir",
        data,
    ]));
    assert!(
        domain_reset.contains("messages: 0 of no limit"),
        "{domain_reset}"
    );
    let bad_domain = one_line_error(&tern(&[
        "domain",
        "quota",
        "not a domain",
        "--messages",
        "1",
        "--data-dir",
        data,
    ]));
    assert!(bad_domain.contains("not a valid domain"), "{bad_domain}");

    let listing = stdout(&tern(&["account", "list", "--data-dir", data]));
    assert!(!listing.contains("bob@example.test"), "{listing}");

    // The new password works once the server runs; the old one does not.
    let server = ServerProcess::start(dir.path(), &[]);
    assert_eq!(
        session_status(server.authority(), &basic("alice@example.test", "pw2")),
        200
    );
    assert_eq!(
        session_status(server.authority(), &basic("alice@example.test", "pw1")),
        401
    );
    assert_eq!(
        session_status(
            server.authority(),
            &basic("carol@example.test", "from-stdin")
        ),
        200
    );
}

#[test]
fn accounts_while_the_server_runs_go_through_the_admin_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir_arg(dir.path());
    let server = ServerProcess::start(dir.path(), &[]);
    assert!(dir.path().join("admin.json").exists());

    let created = tern(&[
        "account",
        "create",
        "dave@example.test",
        "--password",
        "pw",
        "--data-dir",
        data,
    ]);
    assert!(created.status.success(), "{created:?}");
    assert_eq!(
        session_status(server.authority(), &basic("dave@example.test", "pw")),
        200
    );

    let exists = one_line_error(&tern(&[
        "account",
        "create",
        "dave@example.test",
        "--password",
        "pw",
        "--data-dir",
        data,
    ]));
    assert!(exists.contains("already exists"), "{exists}");

    let token = stdout(&tern(&[
        "token",
        "create",
        "dave@example.test",
        "--data-dir",
        data,
    ]));
    let token = token.trim();
    assert!(token.starts_with("tern_"), "{token}");
    assert_eq!(
        session_status(server.authority(), &format!("Bearer {token}")),
        200
    );

    // A password change through the server invalidates its cached logins at once.
    assert!(
        tern(&[
            "account",
            "passwd",
            "dave@example.test",
            "--password",
            "new",
            "--data-dir",
            data
        ])
        .status
        .success()
    );
    assert_eq!(
        session_status(server.authority(), &basic("dave@example.test", "pw")),
        401
    );
    assert_eq!(
        session_status(server.authority(), &basic("dave@example.test", "new")),
        200
    );

    // Quotas through the server (RFC 9425): set, read, refuse nonsense, reset to defaults.
    let set = stdout(&tern(&[
        "account",
        "quota",
        "dave@example.test",
        "--storage",
        "5MB",
        "--messages",
        "100",
        "--data-dir",
        data,
    ]));
    assert!(set.contains("storage: 0 of 5000000 octets"), "{set}");
    assert!(set.contains("messages: 0 of 100"), "{set}");
    let shown = stdout(&tern(&[
        "account",
        "quota",
        "dave@example.test",
        "--data-dir",
        data,
    ]));
    assert_eq!(shown, set);
    let bad = tern(&[
        "account",
        "quota",
        "dave@example.test",
        "--storage",
        "5XB",
        "--data-dir",
        data,
    ]);
    let bad_text = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && bad_text.contains("unknown size unit"),
        "{bad_text}"
    );
    let reset = stdout(&tern(&[
        "account",
        "quota",
        "dave@example.test",
        "--reset",
        "--data-dir",
        data,
    ]));
    assert!(
        reset.contains("of 10000000000 octets") && reset.contains("(server defaults)"),
        "{reset}"
    );

    let listing = stdout(&tern(&["account", "list", "--data-dir", data]));
    assert!(listing.contains("dave@example.test"), "{listing}");
    let unknown = one_line_error(&tern(&[
        "account",
        "delete",
        "nobody@example.test",
        "--data-dir",
        data,
    ]));
    assert!(unknown.contains("nobody@example.test"), "{unknown}");
    assert!(
        tern(&["account", "delete", "dave@example.test", "--data-dir", data])
            .status
            .success()
    );
    assert_eq!(
        session_status(server.authority(), &format!("Bearer {token}")),
        401
    );

    // A second server on the same data dir is refused, naming the running one.
    let second = one_line_error(&tern(&[
        "serve",
        "--data-dir",
        data,
        "--http",
        "127.0.0.1:0",
    ]));
    assert!(
        second.contains("in use by a running Tern server"),
        "{second}"
    );

    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(
        !dir.path().join("admin.json").exists(),
        "admin.json removed on shutdown"
    );
    // The store was closed cleanly: the CLI opens it directly again.
    let listing = stdout(&tern(&["account", "list", "--data-dir", data]));
    assert!(!listing.contains("dave@example.test"), "{listing}");
}

#[test]
fn demo_accounts_are_created_once_with_printed_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &["--demo"]);
    let demo_lines: Vec<&String> = server
        .stdout_lines
        .iter()
        .filter(|line| line.starts_with("demo account "))
        .collect();
    assert_eq!(demo_lines.len(), 2, "{:?}", server.stdout_lines);
    let words: Vec<&str> = demo_lines[0].split_whitespace().collect();
    let (email, password) = (words[2], words[4]);
    assert_eq!(email, "alice@example.test");
    assert_eq!(
        session_status(server.authority(), &basic(email, password)),
        200
    );
    // The demo team's account is in the session too: a second account for cross-account use.
    let session = session_response(server.authority(), &basic(email, password));
    assert!(
        session.contains("\"name\":\"team@example.test\"")
            && session.contains("\"isPersonal\":false"),
        "{session}"
    );
    assert!(server.terminate().success());

    let again = ServerProcess::start(dir.path(), &["--demo"]);
    assert!(
        !again
            .stdout_lines
            .iter()
            .any(|line| line.starts_with("demo account ")),
        "passwords are shown only on the first start"
    );
}

#[test]
fn port_in_use_is_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let error = one_line_error(&tern(&[
        "serve",
        "--data-dir",
        dir_arg(dir.path()),
        "--http",
        &address,
    ]));
    assert!(
        error.contains(&address) && error.contains("already in use"),
        "{error}"
    );
}

#[test]
fn bad_config_key_is_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tern.toml");
    std::fs::write(
        &config,
        "[server]\nhttp = \"127.0.0.1:0\"\nlisten_adress = \"x\"\n",
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let error = one_line_error(&tern(&["serve", "--config", config_arg]));
    assert!(
        error.contains("listen_adress") && error.contains(":3:"),
        "{error}"
    );
    let error = one_line_error(&tern(&["account", "list", "--config", config_arg]));
    assert!(error.contains("listen_adress"), "{error}");
    let error = one_line_error(&tern(&["serve", "--config", "/nonexistent/tern.toml"]));
    assert!(error.contains("/nonexistent/tern.toml"), "{error}");
}

#[test]
fn config_file_settings_apply_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let data_from_config = dir.path().join("from-config");
    let config = dir.path().join("tern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {:?}\n",
            data_from_config.to_str().unwrap()
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    assert!(
        tern(&[
            "account",
            "create",
            "a@example.test",
            "--password",
            "p",
            "--config",
            config_arg
        ])
        .status
        .success()
    );
    assert!(stdout(&tern(&["account", "list", "--config", config_arg])).contains("a@example.test"));
    let flag_dir = dir.path().join("from-flag");
    assert!(
        tern(&[
            "account",
            "create",
            "b@example.test",
            "--password",
            "p",
            "--config",
            config_arg,
            "--data-dir",
            flag_dir.to_str().unwrap()
        ])
        .status
        .success()
    );
    let listing = stdout(&tern(&["account", "list", "--config", config_arg]));
    assert!(!listing.contains("b@example.test"), "{listing}");
}

#[test]
fn data_dir_locked_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    // This test process holds the store open: a process that is not a Tern server.
    let _held = tern::store::embedded::EmbeddedBackend::open(dir.path()).unwrap();
    let data = dir_arg(dir.path());
    let error = one_line_error(&tern(&["account", "list", "--data-dir", data]));
    assert!(error.contains("locked by another process"), "{error}");
    let error = one_line_error(&tern(&[
        "serve",
        "--data-dir",
        data,
        "--http",
        "127.0.0.1:0",
    ]));
    assert!(error.contains("locked by another process"), "{error}");
}

#[test]
fn missing_data_dir_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = one_line_error(&tern(&[
        "account",
        "list",
        "--data-dir",
        missing.to_str().unwrap(),
    ]));
    assert!(error.contains("does not exist"), "{error}");
    assert!(!missing.exists(), "listing must not create a data dir");
}

/// A stand-in OTLP/HTTP collector: answers 200 to every POST and reports the paths.
fn fake_collector() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (paths, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let paths = paths.clone();
            std::thread::spawn(move || serve_collector_connection(stream, &paths));
        }
    });
    (url, received)
}

fn serve_collector_connection(stream: TcpStream, paths: &std::sync::mpsc::Sender<String>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let _ = paths.send(path);
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn traces_and_metrics_are_exported_over_otlp_when_configured() {
    let (collector_url, received) = fake_collector();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tern.toml");
    std::fs::write(
        &config,
        format!("[telemetry]\notlp_endpoint = \"{collector_url}\"\nmetrics_interval_seconds = 1\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    assert!(
        tern(&[
            "account",
            "create",
            "a@example.test",
            "--password",
            "p",
            "--data-dir",
            data.to_str().unwrap()
        ])
        .status
        .success()
    );
    let server = ServerProcess::start(&data, &["--config", config.to_str().unwrap()]);
    assert_eq!(
        session_status(server.authority(), &basic("a@example.test", "p")),
        200
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(server.terminate().success());
    let paths: Vec<String> = received.try_iter().collect();
    assert!(paths.iter().any(|path| path == "/v1/traces"), "{paths:?}");
    assert!(paths.iter().any(|path| path == "/v1/metrics"), "{paths:?}");
}

#[test]
fn groups_are_managed_offline_and_through_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir_arg(dir.path());
    for email in ["alice@example.test", "bob@example.test"] {
        let created = tern(&[
            "account",
            "create",
            email,
            "--password",
            "secret-pass-1",
            "--data-dir",
            data,
        ]);
        assert!(created.status.success(), "{created:?}");
    }
    let group = tern(&[
        "group",
        "create",
        "team@example.test",
        "--name",
        "The Team",
        "--data-dir",
        data,
    ]);
    assert!(group.status.success(), "{group:?}");
    assert!(
        stdout(&group).starts_with("created group team@example.test"),
        "{}",
        stdout(&group)
    );
    let added = tern(&[
        "group",
        "add",
        "team@example.test",
        "alice@example.test",
        "--data-dir",
        data,
    ]);
    assert!(added.status.success(), "{added:?}");
    let unknown = one_line_error(&tern(&[
        "group",
        "add",
        "team@example.test",
        "nobody@example.test",
        "--data-dir",
        data,
    ]));
    assert!(unknown.contains("no such"), "{unknown}");
    let nested = one_line_error(&tern(&[
        "group",
        "add",
        "alice@example.test",
        "bob@example.test",
        "--data-dir",
        data,
    ]));
    assert!(nested.contains("not a group"), "{nested}");

    // While a server holds the data directory, through its admin endpoint.
    let server = ServerProcess::start(dir.path(), &[]);
    let added = tern(&[
        "group",
        "add",
        "team@example.test",
        "bob@example.test",
        "--data-dir",
        data,
    ]);
    assert!(added.status.success(), "{added:?}");
    let listed = tern(&["group", "list", "--data-dir", data]);
    let text = stdout(&listed);
    assert!(
        text.contains("team@example.test\tThe Team\talice@example.test,bob@example.test"),
        "{text}"
    );
    let removed = tern(&[
        "group",
        "remove",
        "team@example.test",
        "alice@example.test",
        "--data-dir",
        data,
    ]);
    assert!(removed.status.success(), "{removed:?}");
    // A group has no login.
    assert_eq!(
        session_status(
            server.authority(),
            &basic("team@example.test", "secret-pass-1")
        ),
        401
    );
    assert!(server.terminate().success());
    let listed = stdout(&tern(&["group", "list", "--data-dir", data]));
    assert!(listed.contains("\tThe Team\tbob@example.test"), "{listed}");
}
