//! `kill -9` of the server binary while a message is being sent, then a restart: the message
//! that was mid-send goes out, the one the peer had already accepted is not sent again.

use std::time::Duration;

use tern::auth::Directory;
use tern::config::Config;

use crate::peer::{Peer, Script};
use crate::{Child, MESSAGE, enqueue, load};

fn serve(config_file: &std::path::Path) -> Child {
    Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["serve", "--config", config_file.to_str().expect("path")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tern serve"),
    )
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn kill_9_mid_send_then_restart_loses_nothing_and_resends_nothing_delivered() {
    let dir = tempfile::tempdir().expect("dir");
    let peer = Peer::start(Script {
        hang_for: Some("slow".into()),
        ..Script::default()
    })
    .await;
    let config_file = dir.path().join("tern.toml");
    let data_dir = dir.path().join("data");
    std::fs::write(
        &config_file,
        format!(
            "[server]\ndata_dir = {:?}\nhttp = \"127.0.0.1:0\"\n[admin]\nenabled = false\n\
             [smtp]\nlisten = \"\"\n[outbound]\nrelay = \"127.0.0.1:{}\"\n",
            data_dir.display().to_string(),
            peer.port
        ),
    )
    .expect("config");
    let mut config = Config::default();
    config.server.data_dir = data_dir.clone();

    // Queue two messages on the stopped store: one the peer accepts, one it never answers.
    let store = tern::server::open_store(&config).await.expect("store");
    let account = Directory::new(store.clone())
        .create_account("alice@example.test", "pw-alice-1")
        .await
        .expect("account")
        .account_id;
    let fast = enqueue(&store, account, MESSAGE, &["fast@remote.example"], |_| {}).await;
    let slow = enqueue(&store, account, MESSAGE, &["slow@other.example"], |_| {}).await;
    store.close().await.expect("close");

    let mut server = serve(&config_file);
    wait_until("the fast message", || !peer.received().is_empty()).await;
    wait_until("the slow message's DATA", || {
        peer.rcpt_seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("slow"))
    })
    .await;
    // The fast message's outcome commit follows the peer's 250 within milliseconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.0.kill().expect("kill -9");
    server.0.wait().expect("reaped");

    let store = tern::server::open_store(&config).await.expect("reopen");
    assert!(
        load(&store, fast).await.is_none(),
        "the accepted message is recorded"
    );
    let pending = load(&store, slow)
        .await
        .expect("the slow message is still queued");
    assert!(pending.claim.is_some(), "it was being sent");
    store.close().await.expect("close");

    peer.set_script(Script::default());
    let mut server = serve(&config_file);
    wait_until("the slow message after the restart", || {
        peer.received().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.0.kill().expect("kill");
    server.0.wait().expect("reaped");
    let received = peer.received();
    let to = |pattern: &str| {
        received
            .iter()
            .filter(|message| message.recipients.iter().any(|r| r.contains(pattern)))
            .count()
    };
    assert_eq!(to("fast"), 1, "never resent after its 250");
    assert_eq!(to("slow"), 1, "delivered after the restart");
    let store = tern::server::open_store(&config).await.expect("reopen");
    assert!(load(&store, slow).await.is_none());
    store.close().await.expect("close");
}
