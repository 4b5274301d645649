//! Push of the accounts shared with a listener's user (RFC 9670): a WebSocket or EventSource
//! of a grantee also hears the StateChanges of the Mailbox, Email and Thread types of every
//! account that shares Mailboxes with them.
//!
//! One small task per shared account listens to the hub like any other listener. Before a
//! change goes out, the task checks in the store that the grant still holds: the commit that
//! revokes the last grant is itself a change of the account, so the listener hears it, finds
//! nothing shared any more and stops — the connection receives nothing of that account from
//! the revocation on. Accounts shared after the listener started are heard once the client
//! enables push again (its session state tells it the accounts changed).

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::hub::{AccountStates, PushHub};
use super::state_change::{PushFilter, PushState};
use crate::mail::sharing::{self, Viewer};
use crate::store::StoreResult;
use crate::store::commit::DataType;

/// The types a grant covers (`MethodEntry::on_shared_accounts`).
const SHARED_TYPES: [DataType; 3] = [DataType::Mailbox, DataType::Thread, DataType::Email];

/// At most this many shared accounts are listened to per connection (the first by id): a
/// bound on tasks per socket.
pub const MAX_SHARED_ACCOUNTS_PUSHED: usize = 64;

/// Where a shared account's changes go: the account, the changed types with their states,
/// and the push state after them. Returns false when the change could not be queued (the
/// listener then tells it again with the next change).
pub type Deliver = Arc<dyn Fn(u32, &[(DataType, u64)], &PushState) -> bool + Send + Sync>;

/// The running listeners; dropping it stops them.
#[derive(Default)]
pub struct SharedListeners {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SharedListeners {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl SharedListeners {
    /// Starts listening to every account shared with `viewer` now, for the types of `filter`
    /// a grant covers.
    pub async fn start(
        hub: &PushHub,
        viewer: Viewer,
        filter: &PushFilter,
        deliver: Deliver,
    ) -> StoreResult<SharedListeners> {
        let names: Vec<&str> = SHARED_TYPES
            .iter()
            .filter(|data_type| filter.wants(**data_type))
            .map(|data_type| data_type.jmap_name())
            .collect();
        // A group's members also hear of the group account's Quota (they may read it).
        let member_names: Vec<&str> = match filter.wants(DataType::Quota) {
            true => names
                .iter()
                .copied()
                .chain([DataType::Quota.jmap_name()])
                .collect(),
            false => names.clone(),
        };
        if member_names.is_empty() {
            return Ok(SharedListeners::default());
        }
        let member_filter = PushFilter::known_names(member_names);
        let grants_only = !names.is_empty();
        let filter = PushFilter::known_names(names);
        let shared = {
            let viewer = viewer.clone();
            hub.store()
                .read(move |tx| {
                    Box::pin(async move { sharing::shared_accounts(tx, &viewer).await })
                })
                .await?
        };
        let tasks = shared
            .into_iter()
            .take(MAX_SHARED_ACCOUNTS_PUSHED)
            .filter_map(|account| {
                let filter = match viewer.groups.contains(&account.account_id) {
                    true => member_filter.clone(),
                    false if grants_only => filter.clone(),
                    // Only Quota asked for, and this account's is not the viewer's to see.
                    false => return None,
                };
                Some(tokio::spawn(listen(
                    hub.clone(),
                    account.account_id,
                    viewer.clone(),
                    filter,
                    Arc::clone(&deliver),
                )))
            })
            .collect();
        Ok(SharedListeners { tasks })
    }
}

/// Whether the grant still holds and the viewer is subscribed to something in the account.
async fn still_shared(hub: &PushHub, account_id: u32, viewer: &Viewer) -> bool {
    let viewer = viewer.clone();
    let outcome = hub
        .store()
        .read(move |tx| Box::pin(async move { sharing::view_in(tx, account_id, &viewer).await }))
        .await;
    match outcome {
        // RFC 9670 §1.3: no StateChange for an account the user is not subscribed to.
        Ok(view) => view.is_some_and(|view| view.any_subscribed()),
        Err(error) => {
            // Unknown: keep listening without telling; the next change asks again.
            tracing::debug!(account_id, %error, "shared push could not check the grant");
            true
        }
    }
}

async fn listen(
    hub: PushHub,
    account_id: u32,
    viewer: Viewer,
    filter: PushFilter,
    deliver: Deliver,
) {
    if !still_shared(&hub, account_id, &viewer).await {
        return;
    }
    let mut receiver = hub.subscribe(account_id);
    let Some(mut told): Option<Arc<AccountStates>> = PushHub::current(&mut receiver).await else {
        return;
    };
    while receiver.changed().await.is_ok() {
        let Some(states) = receiver.borrow_and_update().clone() else {
            continue;
        };
        let changed = PushState::from_states(&told, &filter).changed(&states, &filter);
        if changed.is_empty() {
            continue;
        }
        if !still_shared(&hub, account_id, &viewer).await {
            tracing::debug!(account_id, "grant revoked: shared push stops");
            return;
        }
        let push_state = PushState::from_states(&states, &filter);
        if deliver(account_id, &changed, &push_state) {
            told = states;
        }
    }
}
