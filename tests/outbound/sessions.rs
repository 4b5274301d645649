//! SMTP sessions and claims over time: a session carries several messages (RSET between),
//! a session the server dropped while idle is replaced without a retry delay, and a claim is
//! renewed while a slow transaction runs, so a second worker never takes the message over, and
//! a worker deposed anyway (paused past its lease) stops and records nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tern::auth::Directory;
use tern::outbound::actor::{self, Context, OutboundHandle};
use tern::outbound::clock::SystemClock;
use tern::outbound::config::OutboundConfig;
use tern::store::Store;
use tern::store::embedded::EmbeddedBackend;

use crate::peer::{Peer, Script};
use crate::{MESSAGE, enqueue, wait_gone};

struct Rig {
    store: Store,
    account_id: u32,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::new(Arc::new(EmbeddedBackend::open(dir.path()).expect("open")));
    let account_id = Directory::new(store.clone())
        .create_account("alice@example.test", "alice-password-1")
        .await
        .expect("account")
        .account_id;
    Rig {
        store,
        account_id,
        _dir: dir,
    }
}

/// An outbound actor (its own claim owner, as another node would be) relaying to `peer`.
async fn worker(
    rig: &Rig,
    peer: &Peer,
    adjust: impl FnOnce(&mut OutboundConfig),
) -> OutboundHandle {
    let mut config = OutboundConfig {
        relay: Some(format!("127.0.0.1:{}", peer.port)),
        rate_per_hour: 0,
        ..OutboundConfig::default()
    };
    adjust(&mut config);
    let transport =
        tern::outbound::transport_settings(&config, None, "tern.test").expect("settings");
    let context = Context::new(
        rig.store.clone(),
        Directory::new(rig.store.clone()),
        Arc::new(SystemClock),
        transport,
        config,
    );
    // Not single-process: the workers must not release each other's claims at start.
    actor::start(context, false).await.expect("actor")
}

#[tokio::test]
async fn one_session_carries_consecutive_messages_with_rset_between() {
    let rig = rig().await;
    let peer = Peer::start(Script {
        pipelining: true,
        ..Script::default()
    })
    .await;
    let actor = worker(&rig, &peer, |_| {}).await;
    for recipient in [
        "one@remote.example",
        "two@remote.example",
        "three@other.example",
    ] {
        let id = enqueue(&rig.store, rig.account_id, MESSAGE, &[recipient], |_| {}).await;
        wait_gone(&rig.store, id).await;
    }
    assert_eq!(peer.received().len(), 3);
    assert_eq!(
        peer.connections.load(Ordering::SeqCst),
        1,
        "the second and third messages reuse the first session"
    );
    assert_eq!(
        peer.resets.load(Ordering::SeqCst),
        2,
        "RSET before each reuse"
    );
    // Idle for longer than 2 s, the kept session is closed politely, with nothing queued.
    assert_eq!(peer.quits.load(Ordering::SeqCst), 0, "kept open meanwhile");
    for _ in 0..60 {
        if peer.quits.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(peer.quits.load(Ordering::SeqCst), 1, "QUIT once idle");
    actor.stop().await;
    rig.store.close().await.expect("close");
}

#[tokio::test]
async fn a_session_the_server_closed_while_idle_is_replaced_at_once() {
    let rig = rig().await;
    let peer = Peer::start(Script {
        pipelining: true,
        close_after_data: true,
        ..Script::default()
    })
    .await;
    let actor = worker(&rig, &peer, |_| {}).await;
    let first = enqueue(
        &rig.store,
        rig.account_id,
        MESSAGE,
        &["one@remote.example"],
        |_| {},
    )
    .await;
    wait_gone(&rig.store, first).await;
    // Let the peer's close reach the pooled session.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = enqueue(
        &rig.store,
        rig.account_id,
        MESSAGE,
        &["two@remote.example"],
        |_| {},
    )
    .await;
    // A temporary failure would wait minutes for its retry; this is seconds at most.
    wait_gone(&rig.store, second).await;
    assert_eq!(peer.received().len(), 2);
    assert_eq!(peer.connections.load(Ordering::SeqCst), 2);
    actor.stop().await;
    rig.store.close().await.expect("close");
}

#[tokio::test]
async fn a_claim_is_renewed_while_a_slow_transaction_runs() {
    let rig = rig().await;
    // The server takes 3.5 s to answer the end of data; claims last 1 s.
    let peer = Peer::start(Script {
        data_delay: Some(Duration::from_millis(3_500)),
        ..Script::default()
    })
    .await;
    let short_claims = |config: &mut OutboundConfig| config.claim_seconds = 1;
    let first = worker(&rig, &peer, short_claims).await;
    let second = worker(&rig, &peer, short_claims).await;
    let id = enqueue(
        &rig.store,
        rig.account_id,
        MESSAGE,
        &["slow@remote.example"],
        |_| {},
    )
    .await;
    wait_gone(&rig.store, id).await;
    // Both workers watched the queue the whole time, the claim "expiring" three times.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        peer.rcpt_seen.lock().unwrap().len(),
        1,
        "sent by one worker only"
    );
    assert_eq!(peer.received().len(), 1);
    first.stop().await;
    second.stop().await;
    rig.store.close().await.expect("close");
}

/// A worker whose message another worker took over (it was paused past its lease) is deposed:
/// its attempt stops at the next renewal and the answer it would have got later is never
/// recorded, so the new claim and the still-pending recipient stay as the new claimer left
/// them. Before the fence, the late `250` was recorded and the entry removed under the new
/// claimer's feet.
#[tokio::test]
async fn a_deposed_attempt_stops_and_its_late_answer_is_discarded() {
    let rig = rig().await;
    let peer = Peer::start(Script {
        data_delay: Some(Duration::from_millis(2_000)),
        ..Script::default()
    })
    .await;
    let worker = worker(&rig, &peer, |config| config.claim_seconds = 1).await;
    let id = enqueue(
        &rig.store,
        rig.account_id,
        MESSAGE,
        &["late@remote.example"],
        |_| {},
    )
    .await;
    for _ in 0..200 {
        if !peer.rcpt_seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(peer.rcpt_seen.lock().unwrap().len(), 1, "the attempt began");
    let now = tern::outbound::clock::Clock::now(&SystemClock);
    let other = tern::outbound::queue::Claim {
        owner: 7,
        until: now + 3_600_000,
    };
    rig.store
        .transact(|tx| {
            Box::pin(async move {
                let mut entry = tern::outbound::queue::load(tx, id).await?.expect("queued");
                entry.claim = Some(other);
                tern::outbound::queue::save(tx, &mut entry)
            })
        })
        .await
        .expect("take over");
    // Past the peer's late answer and several renewal periods.
    tokio::time::sleep(Duration::from_millis(2_800)).await;
    let entry = crate::load(&rig.store, id).await.expect("still queued");
    assert_eq!(entry.claim, Some(other), "the new claim stands");
    assert_eq!(
        entry.recipients[0].state,
        tern::outbound::queue::RecipientState::Pending
    );
    assert_eq!(entry.recipients[0].attempts, 0, "nothing recorded");
    worker.stop().await;
    rig.store.close().await.expect("close");
}
