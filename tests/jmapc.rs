//! A real client from outside the Rust world: the Python library jmapc (PyPI, unmodified),
//! driven by `tests/peers/jmapc_client.py` against a server on loopback. jmapc always speaks
//! `https://HOST/.well-known/jmap`, so the server runs with the test certificate and Python
//! trusts it through `REQUESTS_CA_BUNDLE`. jmapc puts `anchorOffset`, `calculateTotal` and
//! `position` into every Comparator: its sorted queries are the interoperability case of
//! issue 13 (defect 7).
//!
//! jmapc missing fails the test with how to install it (`.ci/run` does); set
//! `TERN_SKIP_PEERS=1` to skip tests of external peers instead.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The jmapc version `.ci/run` installs.
const JMAPC_VERSION: &str = "0.4.0";

fn jmapc_available() -> bool {
    Command::new("python3")
        .args(["-c", "import jmapc"])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/testdata")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jmapc_python_client_works_against_tern() {
    if !jmapc_available() {
        if std::env::var_os("TERN_SKIP_PEERS").is_some() {
            eprintln!("SKIPPED: jmapc is not installed and TERN_SKIP_PEERS is set");
            return;
        }
        panic!(
            "the Python JMAP client jmapc is not installed: `pip install jmapc=={JMAPC_VERSION}` \
             (as .ci/run does), or set TERN_SKIP_PEERS=1 to skip the tests of external peers"
        );
    }
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let mut config = tern::config::Config::default();
    config.server.data_dir = data_dir.path().to_path_buf();
    config.server.http = "127.0.0.1:0".parse().expect("loopback address");
    config.server.shutdown_grace_seconds = 2;
    config.server.tls_cert = Some(testdata().join("cert.pem"));
    config.server.tls_key = Some(testdata().join("key.pem"));
    config.admin.enabled = false;
    let running = tern::server::Server::start(config)
        .await
        .expect("the server starts");
    let (user, password) = ("alice@example.test", "alice-password-1");
    running
        .directory()
        .create_account(user, password)
        .await
        .expect("create account");
    let host = format!("127.0.0.1:{}", running.http_addr.port());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/jmapc_client.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args([host.as_str(), user, password])
        .env("REQUESTS_CA_BUNDLE", testdata().join("cert.pem"));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("python3 runs");
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{transcript}");
    assert!(output.status.success(), "jmapc failed:\n{transcript}");
    assert!(
        transcript.contains("jmapc works against Tern"),
        "{transcript}"
    );
    running.shutdown().await;
}
