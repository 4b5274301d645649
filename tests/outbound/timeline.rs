//! The retry timeline on a manual clock: no sleeps stand for minutes or days. The actor runs
//! on its own store (no JMAP server), so reports land in the SMTP ingress queue, where the
//! test reads them.

use std::sync::Arc;
use std::time::Duration;

use tern::auth::Directory;
use tern::outbound::actor::{self, Context, OutboundHandle};
use tern::outbound::clock::{Clock, ManualClock};
use tern::outbound::config::OutboundConfig;
use tern::outbound::queue::RecipientState;
use tern::store::Store;
use tern::store::embedded::EmbeddedBackend;

use crate::peer::{Peer, Script};
use crate::{MESSAGE, enqueue, load};

struct Rig {
    store: Store,
    clock: ManualClock,
    actor: Option<OutboundHandle>,
    peer: Peer,
    account_id: u32,
    _dir: tempfile::TempDir,
}

const MINUTE: u64 = 60_000;
/// Past the longest possible interval: the one-hour cap plus 20 % jitter, plus a minute.
const CAPPED_RETRY: u64 = 4_320_000 + MINUTE;

async fn rig(script: Script) -> Rig {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::new(Arc::new(EmbeddedBackend::open(dir.path()).expect("open")));
    let directory = Directory::new(store.clone());
    let account_id = directory
        .create_account("alice@example.test", "alice-password-1")
        .await
        .expect("account")
        .account_id;
    let peer = Peer::start(script).await;
    let clock = ManualClock::starting_now();
    let config = OutboundConfig {
        relay: Some(format!("127.0.0.1:{}", peer.port)),
        retry_initial_seconds: 120,
        retry_max_seconds: 3_600,
        lifetime_seconds: 2 * 24 * 3_600,
        delay_notice_seconds: 4 * 3_600,
        ..OutboundConfig::default()
    };
    let transport =
        tern::outbound::transport_settings(&config, None, "tern.test").expect("settings");
    let context = Context::new(
        store.clone(),
        directory,
        Arc::new(clock.clone()),
        transport,
        config,
    );
    let actor = actor::start(context, true).await.expect("actor");
    Rig {
        store,
        clock,
        actor: Some(actor),
        peer,
        account_id,
        _dir: dir,
    }
}

impl Rig {
    /// Moves the clock and waits (real time, bounded) until `done` holds.
    async fn advance_until(&self, by: u64, mut done: impl AsyncFnMut() -> bool) {
        self.clock.advance(Duration::from_millis(by));
        for _ in 0..400 {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("nothing happened after advancing the clock by {by} ms");
    }

    fn attempts(&self) -> usize {
        self.peer.rcpt_seen.lock().unwrap().len()
    }

    async fn reports(&self) -> usize {
        tern::smtp::incoming::count(&self.store)
            .await
            .expect("count")
    }

    async fn stop(mut self) {
        if let Some(actor) = self.actor.take() {
            actor.stop().await;
        }
        self.store.close().await.expect("close");
    }
}

#[tokio::test]
async fn temporary_failures_back_off_notify_a_delay_then_deliver() {
    let rig = rig(Script {
        rcpt: vec![("someone".into(), "451 4.3.0 try later".into())],
        ..Script::default()
    })
    .await;
    let start = rig.clock.now();
    let id = enqueue(
        &rig.store,
        rig.account_id,
        MESSAGE,
        &["someone@remote.example"],
        |m| {
            m.created_at = start;
        },
    )
    .await;
    rig.advance_until(0, async || rig.attempts() == 1).await;
    let entry = wait_for_state(&rig, id, 1).await;
    let wait = entry.recipients[0].next_attempt_at - start;
    // First retry within minutes: 2 min ± 20 %.
    assert!(
        (96_000..=144_000).contains(&wait),
        "first retry after {wait} ms"
    );
    assert_eq!(entry.recipients[0].state, RecipientState::Pending);

    // Nothing happens before the retry is due.
    rig.clock.advance(Duration::from_millis(90_000));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rig.attempts(), 1, "no retry before it is due");
    rig.advance_until(60_000, async || rig.attempts() == 2)
        .await;
    let entry = wait_for_state(&rig, id, 2).await;
    let second_wait = entry.recipients[0].next_attempt_at - rig.clock.now();
    assert!(
        (192_000..=288_000).contains(&second_wait),
        "second retry after {second_wait} ms (doubling)"
    );

    // Hours later the intervals are capped at an hour, and a delay notice went out once.
    for round in 3..=8 {
        rig.advance_until(CAPPED_RETRY, async || rig.attempts() == round)
            .await;
        let entry = wait_for_state(&rig, id, round as u32).await;
        let wait = entry.recipients[0].next_attempt_at - rig.clock.now();
        assert!(wait <= 4_320_000, "capped: {wait} ms");
    }
    assert!(rig.clock.now() - start >= 4 * 3_600_000);
    wait_for_reports(&rig, 1).await;
    assert!(load(&rig.store, id).await.expect("queued").delay_notified);

    // The server recovers: the next retry delivers and the entry goes.
    rig.peer.set_script(Script::default());
    rig.advance_until(CAPPED_RETRY, async || load(&rig.store, id).await.is_none())
        .await;
    assert_eq!(rig.peer.received().len(), 1);
    assert_eq!(rig.reports().await, 1, "no bounce for a delivered message");
    rig.stop().await;
}

#[tokio::test]
async fn a_message_that_never_gets_through_expires_into_a_bounce() {
    let rig = rig(Script {
        rcpt: vec![("someone".into(), "421 4.4.2 busy".into())],
        ..Script::default()
    })
    .await;
    let start = rig.clock.now();
    let id = enqueue(
        &rig.store,
        rig.account_id,
        MESSAGE,
        &["someone@remote.example"],
        |m| {
            m.created_at = start;
            // No delay notice for this one.
            m.recipients[0].notify.delay = false;
        },
    )
    .await;
    rig.advance_until(0, async || rig.attempts() == 1).await;
    // Two days of hourly retries, then the lifetime runs out.
    let mut rounds = 0;
    while load(&rig.store, id).await.is_some() {
        rounds += 1;
        assert!(rounds < 100, "the message never expired");
        let before = rig.attempts();
        rig.advance_until(CAPPED_RETRY, async || {
            rig.attempts() > before || load(&rig.store, id).await.is_none()
        })
        .await;
    }
    assert!(rig.clock.now() - start >= 2 * 24 * 3_600_000);
    wait_for_reports(&rig, 1).await;
    assert!(rig.peer.received().is_empty());
    rig.stop().await;
}

#[tokio::test]
async fn cancel_while_pending_stops_delivery() {
    let rig = rig(Script::default()).await;
    let now = rig.clock.now();
    let id = enqueue(
        &rig.store,
        rig.account_id,
        MESSAGE,
        &["someone@remote.example"],
        |m| {
            m.send_at = now + 10 * MINUTE as i64;
        },
    )
    .await;
    let canceled = rig
        .store
        .transact(|tx| Box::pin(async move { tern::outbound::queue::cancel(tx, id).await }))
        .await
        .expect("cancel");
    assert!(canceled);
    rig.clock.advance(Duration::from_millis(20 * MINUTE));
    if let Some(actor) = &rig.actor {
        actor.wake();
    }
    // A message that was not canceled, sent after it, arrives: the actor was awake.
    let other = enqueue(
        &rig.store,
        rig.account_id,
        MESSAGE,
        &["other@remote.example"],
        |_| {},
    )
    .await;
    crate::wait_gone(&rig.store, other).await;
    let seen = rig.peer.rcpt_seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["other@remote.example"],
        "the canceled message never left"
    );
    rig.stop().await;
}

async fn wait_for_state(
    rig: &Rig,
    id: u64,
    attempts: u32,
) -> tern::outbound::queue::OutboundMessage {
    for _ in 0..400 {
        if let Some(entry) = load(&rig.store, id).await
            && entry.recipients[0].attempts == attempts
            && entry.claim.is_none()
        {
            return entry;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "attempt {attempts} was not recorded: {:?}",
        load(&rig.store, id).await
    );
}

async fn wait_for_reports(rig: &Rig, count: usize) {
    for _ in 0..400 {
        if rig.reports().await >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{count} report(s) expected, {} queued", rig.reports().await);
}
