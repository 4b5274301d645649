//! The Web Push deliverer: for every account with PushSubscriptions (`QUEUE_PUSH_ACCOUNT`),
//! listen to the hub and POST StateChanges to each verified, unexpired subscription; push the
//! PushVerification to new ones; drop subscriptions the push service says are gone (404/410)
//! and those past `expires`.
//!
//! Invariants:
//! - the set of accounts comes from the store and is re-read when its version key changes
//!   (a store watch), so a subscription created through any node is served;
//! - one task per account: a slow push service delays only that account's pushes, which are
//!   coalesced by the hub channel meanwhile;
//! - a failed delivery is retried with exponential backoff a bounded number of times, then
//!   dropped (the next change sends the newest states anyway).
//!
//! - the accounts shared with the subscriptions' owner (RFC 9670) are listened to as well
//!   (`push::shared`, from when the account's task starts): their Mailbox, Email and Thread
//!   StateChanges go to the same subscriptions, none from the revoking commit on;
//! - on a cluster, only the account's owner delivers (`store::ownership`): each push is sent
//!   once, and a node that loses the account stops its task for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use tokio::sync::mpsc;

use super::config::PushConfig;
use super::hub::{AccountStates, PushHub};
use super::shared::{Deliver, SharedListeners};
use super::state_change::state_change;
use super::webpush::{ClientKeys, Delivery, VapidKey, deliver};
use super::{PushFilter, PushState};
use crate::auth::directory::principals::groups_of;
use crate::jmap::push_subscription::{
    ID_PREFIX, StoredSubscription, list, push_accounts, push_accounts_version_key,
    sync_push_account,
};
use crate::jmap::types::{Id, UtcDate};
use crate::mail::sharing::Viewer;
use crate::store::commit::{DataType, commit_account};
use crate::store::docs as storage;

/// Retry policy of one message.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    base: Duration,
}

/// Starts the deliverer; it ends when the hub stops.
pub fn start(hub: PushHub, vapid: VapidKey, config: &PushConfig) -> JoinHandle<()> {
    let retry = Retry {
        attempts: config.web_push_attempts.max(1),
        base: Duration::from_millis(config.web_push_retry_base_ms),
    };
    tokio::spawn(run(hub, Arc::new(vapid), retry))
}

async fn run(hub: PushHub, vapid: Arc<VapidKey>, retry: Retry) {
    let mut tasks: HashMap<u32, JoinHandle<()>> = HashMap::new();
    let mut stopped = hub.stopped();
    let version_key = push_accounts_version_key();
    let fence = hub.store().fence().cloned();
    let mut ownership = fence.as_ref().map(|fence| fence.subscribe());
    loop {
        let changed = hub.store().watch(&version_key);
        match hub
            .store()
            .read(|tx| Box::pin(async move { push_accounts(tx).await }))
            .await
        {
            Ok(mut accounts) => {
                // On a cluster, the owner of an account delivers its pushes: exactly once,
                // whichever node the subscription was created on. Accounts without a live
                // owner are claimed, so pushes resume after a failover.
                if let Some(fence) = &fence {
                    let mut owned = Vec::with_capacity(accounts.len());
                    for account_id in accounts {
                        let mine = fence.holds(account_id)
                            || matches!(
                                crate::store::ownership::ensure_owned(
                                    hub.store(),
                                    fence,
                                    account_id
                                )
                                .await,
                                Ok(Ok(_))
                            );
                        if mine {
                            owned.push(account_id);
                        }
                    }
                    accounts = owned;
                }
                tasks.retain(|account_id, task| {
                    let keep = accounts.contains(account_id) && !task.is_finished();
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for account_id in accounts {
                    tasks.entry(account_id).or_insert_with(|| {
                        tokio::spawn(serve_account(
                            hub.clone(),
                            Arc::clone(&vapid),
                            retry,
                            account_id,
                        ))
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, "push: reading the push accounts failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        tokio::select! {
            fired = changed => {
                if fired.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            // This node gained or lost accounts; or, every few seconds, owners may have died.
            () = ownership_changed(&mut ownership) => {}
            () = &mut stopped => break,
        }
    }
    for task in tasks.into_values() {
        task.abort();
    }
}

/// Resolves when this node's held accounts change, or after a few seconds (an owner may
/// have expired meanwhile); never on a single node.
async fn ownership_changed(ownership: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match ownership {
        Some(receiver) => {
            let _ = tokio::time::timeout(Duration::from_secs(3), receiver.changed()).await;
        }
        None => std::future::pending().await,
    }
}

/// A subscription as the deliverer tracks it.
struct Active {
    stored: StoredSubscription,
    keys: Option<ClientKeys>,
    filter: PushFilter,
    /// What this subscription has been told (set when it became verified).
    known: Option<PushState>,
    verification_sent: bool,
}

/// How many StateChanges of shared accounts may wait for one account's deliverer.
const SHARED_QUEUE: usize = 16;

/// Listens to the accounts shared with the subscriptions' owner (RFC 9670, `push::shared`):
/// their Mailbox, Email and Thread changes go to the same subscriptions.
async fn listen_to_shared(
    hub: &PushHub,
    account_id: u32,
) -> (
    Option<SharedListeners>,
    mpsc::Receiver<(u32, Vec<(DataType, u64)>)>,
) {
    let (sender, changes) = mpsc::channel(SHARED_QUEUE);
    let deliver: Deliver = Arc::new(move |shared_account, changed, _push_state| {
        sender.try_send((shared_account, changed.to_vec())).is_ok()
    });
    let groups = hub
        .store()
        .read(move |tx| Box::pin(async move { groups_of(tx, account_id).await }))
        .await
        .unwrap_or_default();
    let viewer = Viewer {
        principal_id: account_id,
        groups,
    };
    let listeners = SharedListeners::start(hub, viewer, &PushFilter::all(), deliver).await;
    if let Err(error) = &listeners {
        tracing::warn!(account_id, %error, "push: shared accounts not listened to");
    }
    (listeners.ok(), changes)
}

/// Sends a shared account's change to every verified subscription that wants its types.
async fn push_shared(
    vapid: &VapidKey,
    retry: Retry,
    active: &HashMap<u64, Active>,
    shared_account: u32,
    changed: &[(DataType, u64)],
) {
    for subscription in active.values().filter(|active| active.known.is_some()) {
        let wanted: Vec<(DataType, u64)> = changed
            .iter()
            .filter(|(data_type, _)| subscription.filter.wants(*data_type))
            .copied()
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let message = Value::Object(state_change(shared_account, &wanted));
        // A gone subscription is removed by the next change of the account itself.
        send_with_retry(vapid, retry, subscription, &message).await;
    }
}

async fn serve_account(hub: PushHub, vapid: Arc<VapidKey>, retry: Retry, account_id: u32) {
    let mut receiver = hub.subscribe(account_id);
    let mut active: HashMap<u64, Active> = HashMap::new();
    let mut subscriptions_state = None;
    let (_shared, mut shared_changes) = listen_to_shared(&hub, account_id).await;
    loop {
        let Some(states) = PushHub::current(&mut receiver).await else {
            return;
        };
        let state_now = states.state_of(DataType::PushSubscription);
        if subscriptions_state != Some(state_now) {
            subscriptions_state = Some(state_now);
            match reload(&hub, account_id, &mut active, &states).await {
                Ok(true) => {}
                // No subscription left: the account leaves the set and this task ends.
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(account_id, %error, "push: loading subscriptions failed");
                    subscriptions_state = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let mut gone = Vec::new();
        for (id, subscription) in &mut active {
            if !subscription.verification_sent && !subscription.stored.is_verified() {
                subscription.verification_sent = true;
                // RFC 8620 §7.2.2: the code goes to the URL before anything else.
                let verification = json!({
                    "@type": "PushVerification",
                    "pushSubscriptionId": Id::from_number(ID_PREFIX, *id).into_string(),
                    "verificationCode": subscription.stored.expected_code(),
                });
                if send_with_retry(&vapid, retry, subscription, &verification).await
                    == Delivery::Gone
                {
                    gone.push(*id);
                }
                continue;
            }
            let Some(known) = &subscription.known else {
                continue;
            };
            let changed = known.changed(&states, &subscription.filter);
            if changed.is_empty() {
                continue;
            }
            subscription.known = Some(PushState::from_states(&states, &subscription.filter));
            let message = Value::Object(state_change(account_id, &changed));
            if send_with_retry(&vapid, retry, subscription, &message).await == Delivery::Gone {
                gone.push(*id);
            }
        }
        if !gone.is_empty() {
            tracing::info!(
                account_id,
                count = gone.len(),
                "push: removing subscriptions the push service no longer knows"
            );
            if let Err(error) = destroy(&hub, account_id, &gone).await {
                tracing::warn!(account_id, %error, "push: removing gone subscriptions failed");
            }
        }
        let next_expiry = active
            .values()
            .filter_map(|subscription| subscription.stored.expires_unix())
            .min();
        let until_expiry = next_expiry.map(|at| {
            Duration::from_secs(u64::try_from(at - UtcDate::now().unix_seconds()).unwrap_or(0) + 1)
        });
        tokio::select! {
            changed = receiver.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some((shared_account, changed)) = shared_changes.recv() => {
                push_shared(&vapid, retry, &active, shared_account, &changed).await;
            }
            () = sleep_or_forever(until_expiry) => {
                // Forces a reload, which removes what expired.
                subscriptions_state = None;
            }
        }
    }
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// Re-reads the account's subscriptions; removes expired ones. `false` when none is left.
async fn reload(
    hub: &PushHub,
    account_id: u32,
    active: &mut HashMap<u64, Active>,
    states: &AccountStates,
) -> crate::store::StoreResult<bool> {
    let stored = hub
        .store()
        .read(|tx| Box::pin(async move { list(tx, account_id).await }))
        .await?;
    let now = UtcDate::now().unix_seconds();
    let (expired, live): (Vec<StoredSubscription>, Vec<StoredSubscription>) = stored
        .into_iter()
        .partition(|subscription| subscription.expires_unix().is_some_and(|at| at <= now));
    if !expired.is_empty() {
        let ids: Vec<u64> = expired.iter().map(|subscription| subscription.id).collect();
        tracing::info!(
            account_id,
            count = ids.len(),
            "push: removing expired subscriptions"
        );
        destroy(hub, account_id, &ids).await?;
    }
    if live.is_empty() {
        // Leaves the account set (if nothing was created meanwhile).
        commit_account(hub.store(), account_id, |tx, _changes| {
            Box::pin(async move { sync_push_account(tx, account_id).await })
        })
        .await?;
        return Ok(false);
    }
    let mut next = HashMap::with_capacity(live.len());
    for subscription in live {
        let previous = active.remove(&subscription.id);
        let filter = match subscription.types() {
            None => PushFilter::all(),
            Some(names) => PushFilter::known_names(names),
        };
        let keys = subscription
            .keys()
            .and_then(|(p256dh, auth)| ClientKeys::parse(p256dh, auth).ok());
        let verified = subscription.is_verified();
        let known = match previous
            .as_ref()
            .and_then(|previous| previous.known.clone())
        {
            Some(known) if verified => Some(known),
            // Just verified (or first seen verified): push from now on.
            _ if verified => Some(PushState::from_states(states, &filter)),
            _ => None,
        };
        let verification_sent = previous.is_some_and(|previous| previous.verification_sent);
        next.insert(
            subscription.id,
            Active {
                stored: subscription,
                keys,
                filter,
                known,
                verification_sent,
            },
        );
    }
    *active = next;
    Ok(true)
}

async fn destroy(hub: &PushHub, account_id: u32, ids: &[u64]) -> crate::store::StoreResult<()> {
    let ids = ids.to_vec();
    commit_account(hub.store(), account_id, |tx, changes| {
        let ids = ids.clone();
        Box::pin(async move {
            for id in ids {
                if storage::load(tx, account_id, DataType::PushSubscription, id)
                    .await?
                    .is_some()
                {
                    storage::remove(tx, account_id, DataType::PushSubscription, id)?;
                    changes.destroyed(DataType::PushSubscription, id);
                }
            }
            sync_push_account(tx, account_id).await
        })
    })
    .await?;
    Ok(())
}

/// One message with retries (429, 5xx, network errors), exponential backoff.
async fn send_with_retry(
    vapid: &VapidKey,
    retry: Retry,
    subscription: &Active,
    message: &Value,
) -> Delivery {
    let body = message.to_string();
    let mut wait = retry.base;
    let mut outcome = Delivery::Retry;
    for attempt in 1..=retry.attempts {
        outcome = deliver(
            subscription.stored.url(),
            body.as_bytes(),
            subscription.keys.as_ref(),
            vapid,
            UtcDate::now().unix_seconds(),
        )
        .await;
        if outcome != Delivery::Retry || attempt == retry.attempts {
            break;
        }
        tracing::debug!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            "push: delivery will be retried"
        );
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
    if let Delivery::Rejected(status) = outcome {
        tracing::info!(status, "push: the push service refused a message");
    }
    outcome
}
