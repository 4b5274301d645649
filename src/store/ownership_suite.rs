//! The fencing argument of `ownership`, checked on every backend (part of the ONE backend
//! suite): two or three fences share one store as cluster nodes share FoundationDB.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::commit::{DataType, commit_account};
use super::keys::account_prefix;
use super::ownership::{
    Fence, Liveness, NodeId, Owner, RETIRED, ensure_owned, new_node_id, owner_key, read_owner,
    release, retire,
};
use super::testsuite::{SuiteTest, suite_test};
use super::{KeyRange, Store, StoreErrorKind};

pub fn tests() -> Vec<SuiteTest> {
    vec![
        suite_test!(a_deposed_owner_cannot_commit),
        suite_test!(concurrent_claims_admit_exactly_one_owner),
        suite_test!(an_expired_owner_is_taken_over_and_a_live_one_is_not),
        suite_test!(a_stale_view_expires_nobody),
        suite_test!(release_hands_over_at_once),
        suite_test!(a_retired_account_admits_no_commit_anywhere),
    ]
}

/// A node: a fence whose view sees `expired` as expired and every other node alive.
fn node(view_of: &[(NodeId, Liveness)]) -> Arc<Fence> {
    let fence = Fence::new(new_node_id(), Duration::from_secs(60), Vec::new());
    fence.set_view(view_of.iter().copied().collect::<HashMap<_, _>>());
    fence
}

async fn reset(store: &Store, account_id: u32) {
    store
        .transact(|tx| {
            Box::pin(async move {
                tx.clear_range(&KeyRange::prefix(&account_prefix(account_id).build()))?;
                tx.clear(&owner_key(account_id))
            })
        })
        .await
        .expect("reset account");
}

async fn commit_test_change(store: &Store, account_id: u32) -> Result<u64, StoreErrorKind> {
    commit_account(store, account_id, |_tx, changes| {
        Box::pin(async move {
            changes.touched(DataType::Test);
            Ok(())
        })
    })
    .await
    .map(|committed| committed.version)
    .map_err(|error| error.kind)
}

async fn owner(store: &Store, account_id: u32) -> Owner {
    store
        .read(|tx| Box::pin(read_owner(tx, account_id)))
        .await
        .expect("read owner")
}

/// A node that still believes it owns the account, after another took it over, is refused
/// by the fence — on its next commit and on every later one.
pub async fn a_deposed_owner_cannot_commit(store: &Store) {
    let account_id = 9_201;
    reset(store, account_id).await;
    let a = node(&[]);
    let on_a = store.clone().with_fence(Arc::clone(&a));
    commit_test_change(&on_a, account_id)
        .await
        .expect("a claims by writing");
    assert_eq!(a.held_epoch(account_id), Some(1));
    // b sees a as expired (a was paused) and takes over.
    let b = node(&[(a.node_id(), Liveness::Expired)]);
    let on_b = store.clone().with_fence(Arc::clone(&b));
    commit_test_change(&on_b, account_id)
        .await
        .expect("b takes over");
    assert_eq!(
        owner(store, account_id).await,
        Owner {
            node: Some(b.node_id()),
            epoch: 2
        }
    );
    // a resumes, still holding epoch 1 (and seeing b alive): refused, and it steps down.
    a.set_view([(b.node_id(), Liveness::Alive)].into_iter().collect());
    assert!(a.holds(account_id));
    assert_eq!(
        commit_test_change(&on_a, account_id).await,
        Err(StoreErrorKind::NotOwner)
    );
    assert!(!a.holds(account_id), "a stepped down");
    assert_eq!(
        commit_test_change(&on_a, account_id).await,
        Err(StoreErrorKind::NotOwner),
        "b is alive in a's view: a cannot claim it back"
    );
    commit_test_change(&on_b, account_id)
        .await
        .expect("b goes on");
    reset(store, account_id).await;
}

/// Three nodes claim an unowned account at the same time: exactly one wins, the others are
/// refused (the owner record is in each claim's read-conflict set).
pub async fn concurrent_claims_admit_exactly_one_owner(store: &Store) {
    let account_id = 9_202;
    reset(store, account_id).await;
    let fences: Vec<Arc<Fence>> = (0..3).map(|_| node(&[])).collect();
    // All three are alive in each other's view (as registered, beating nodes are).
    let everyone: HashMap<NodeId, Liveness> = fences
        .iter()
        .map(|fence| (fence.node_id(), Liveness::Alive))
        .collect();
    for fence in &fences {
        fence.set_view(everyone.clone());
    }
    let mut claims = Vec::new();
    for fence in &fences {
        let fenced = store.clone().with_fence(Arc::clone(fence));
        claims.push(tokio::spawn(async move {
            commit_test_change(&fenced, account_id).await
        }));
    }
    let mut won = 0;
    for claim in claims {
        match claim.await.expect("join") {
            Ok(_) => won += 1,
            Err(kind) => assert_eq!(kind, StoreErrorKind::NotOwner),
        }
    }
    assert_eq!(won, 1, "exactly one node owns the account");
    let holders: Vec<&Arc<Fence>> = fences.iter().filter(|f| f.holds(account_id)).collect();
    assert_eq!(holders.len(), 1);
    assert_eq!(
        owner(store, account_id).await,
        Owner {
            node: Some(holders[0].node_id()),
            epoch: 1
        }
    );
    reset(store, account_id).await;
}

/// A live owner keeps its account; once expired in the claimer's view, it is taken over at
/// the next epoch. An owner no longer registered at all counts as expired.
pub async fn an_expired_owner_is_taken_over_and_a_live_one_is_not(store: &Store) {
    let account_id = 9_203;
    reset(store, account_id).await;
    let a = node(&[]);
    let on_a = store.clone().with_fence(Arc::clone(&a));
    commit_test_change(&on_a, account_id).await.expect("a owns");
    let b_alive = node(&[(a.node_id(), Liveness::Alive)]);
    let refused = ensure_owned(store, &b_alive, account_id)
        .await
        .expect("store");
    assert_eq!(
        refused,
        Err(Owner {
            node: Some(a.node_id()),
            epoch: 1
        }),
        "a live owner is not taken over"
    );
    // a is not in c's fresh view and has no registry record: removed, so claimable.
    let c = node(&[]);
    let claimed = ensure_owned(store, &c, account_id).await.expect("store");
    assert_eq!(claimed, Ok(2));
    assert!(c.holds(account_id));
    reset(store, account_id).await;
}

/// A node whose view is stale (it was paused) declares nobody expired.
pub async fn a_stale_view_expires_nobody(store: &Store) {
    let account_id = 9_204;
    reset(store, account_id).await;
    let a = node(&[]);
    ensure_owned(store, &a, account_id)
        .await
        .expect("store")
        .expect("a claims");
    let stale = Fence::new(new_node_id(), Duration::from_millis(1), Vec::new());
    stale.set_view([(a.node_id(), Liveness::Expired)].into_iter().collect());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refused = ensure_owned(store, &stale, account_id)
        .await
        .expect("store");
    assert!(refused.is_err(), "a stale view cannot take over");
    reset(store, account_id).await;
}

/// A released account is claimed at once by the next node, at the next epoch.
pub async fn release_hands_over_at_once(store: &Store) {
    let account_id = 9_205;
    reset(store, account_id).await;
    let a = node(&[]);
    let b = node(&[(a.node_id(), Liveness::Alive)]);
    ensure_owned(store, &a, account_id)
        .await
        .expect("store")
        .expect("a claims");
    release(store, &a, account_id).await.expect("release");
    assert!(!a.holds(account_id));
    assert_eq!(
        owner(store, account_id).await,
        Owner {
            node: None,
            epoch: 2
        }
    );
    let claimed = ensure_owned(store, &b, account_id).await.expect("store");
    assert_eq!(claimed, Ok(3), "b claims without waiting for a lease");
    a.set_view([(b.node_id(), Liveness::Alive)].into_iter().collect());
    let on_a = store.clone().with_fence(Arc::clone(&a));
    assert_eq!(
        commit_test_change(&on_a, account_id).await,
        Err(StoreErrorKind::NotOwner)
    );
    reset(store, account_id).await;
}

/// Deleting an account retires its owner record: its owner, with a commit in flight, is
/// refused from then on, and no other node can claim it, not even with every node expired
/// or unregistered in its view.
pub async fn a_retired_account_admits_no_commit_anywhere(store: &Store) {
    let account_id = 9_206;
    reset(store, account_id).await;
    let a = node(&[]);
    let on_a = store.clone().with_fence(Arc::clone(&a));
    commit_test_change(&on_a, account_id)
        .await
        .expect("a owns it");
    store
        .transact(|tx| Box::pin(retire(tx, account_id)))
        .await
        .expect("retire");
    let retired = owner(store, account_id).await;
    assert!(retired.is_retired());
    assert_eq!(retired.node, Some(RETIRED));
    assert_eq!(retired.epoch, 2);
    assert_eq!(
        commit_test_change(&on_a, account_id).await,
        Err(StoreErrorKind::NotOwner),
        "the owner is refused"
    );
    let b = node(&[
        (a.node_id(), Liveness::Expired),
        (RETIRED, Liveness::Expired),
    ]);
    let on_b = store.clone().with_fence(Arc::clone(&b));
    assert_eq!(
        commit_test_change(&on_b, account_id).await,
        Err(StoreErrorKind::NotOwner),
        "nobody claims a deleted account"
    );
    assert!(matches!(
        ensure_owned(store, &b, account_id).await,
        Ok(Err(owner)) if owner.is_retired()
    ));
    assert_eq!(owner(store, account_id).await, retired, "still retired");
    reset(store, account_id).await;
}
