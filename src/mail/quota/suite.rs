//! Backend suite tests of domain quotas (run on every backend by `store::testsuite`): the
//! domain's counters are the sum of its accounts', its limit refuses with scope `domain`, and
//! two accounts of one limited domain import at once without conflicting.

use bytes::Bytes;

use super::domain;
use super::{LimitsChange, Resource, Scope, Usage, WarningTask};
use crate::mail::parsed::parse_message;
use crate::mail::store::{ImportSpec, destroy_email, import_email};
use crate::store::blob::BlobStore;
use crate::store::commit::{Changes, commit_account};
use crate::store::keys::{
    DIR_DOMAIN_QUOTA, KeyBuilder, QUEUE_QUOTA_WARNING, SUBSPACE_DIRECTORY, SUBSPACE_QUEUE,
    account_prefix,
};
use crate::store::{KeyRange, Store};

const FIRST: u32 = 9_201;
const SECOND: u32 = 9_202;
const DOMAIN: &str = "suite-domain.test";
const INBOX: u64 = 1;

async fn reset(store: &Store) {
    store
        .transact(|tx| {
            Box::pin(async move {
                for account in [FIRST, SECOND] {
                    tx.clear_range(&KeyRange::prefix(&account_prefix(account).build()))?;
                    let tasks = KeyBuilder::new(SUBSPACE_QUEUE)
                        .u8(QUEUE_QUOTA_WARNING)
                        .u32(account)
                        .build();
                    tx.clear_range(&KeyRange::prefix(&tasks))?;
                }
                let domain = KeyBuilder::new(SUBSPACE_DIRECTORY)
                    .u8(DIR_DOMAIN_QUOTA)
                    .str(DOMAIN)
                    .build();
                tx.clear_range(&KeyRange::prefix(&domain))
            })
        })
        .await
        .expect("reset");
}

/// Imports one message into `account`'s Inbox; answers its id and size.
async fn import(store: &Store, account: u32, index: usize) -> (u64, u64) {
    let content =
        format!("From: a@example.test\r\nSubject: m{index}\r\nMessage-ID: <d{index}@x>\r\n\r\nbody {index}\r\n")
            .into_bytes();
    let size = content.len() as u64;
    let blob = BlobStore::new(store.clone())
        .put(account, Bytes::from(content.clone()))
        .await
        .expect("blob stored");
    let spec = ImportSpec {
        blob: blob.id,
        parsed: parse_message(&content),
        mailbox_ids: vec![INBOX],
        keywords: Default::default(),
        received_at: 1,
    };
    let committed = commit_account(store, account, |tx, changes| {
        let spec = spec.clone();
        Box::pin(async move { import_email(tx, changes, account, spec).await })
    })
    .await
    .expect("import committed");
    (committed.value.email_id, size)
}

async fn domain_usage(store: &Store) -> Usage {
    store
        .read(|tx| Box::pin(domain::usage(tx, DOMAIN)))
        .await
        .expect("domain usage")
}

async fn set_limits(store: &Store, change: LimitsChange) {
    store
        .transact(|tx| {
            let change = change.clone();
            Box::pin(async move { domain::change_limits(tx, DOMAIN, &change).await })
        })
        .await
        .expect("domain limits");
}

async fn warning(store: &Store, account: u32, resource: Resource) -> Option<WarningTask> {
    let scope = Scope::Domain(DOMAIN.to_owned());
    let key = super::scoped_warning_key(account, &scope, resource);
    let value = store
        .read(move |tx| {
            let key = key.clone();
            Box::pin(async move { tx.get(&key).await })
        })
        .await
        .expect("warning read")?;
    WarningTask::decode(
        &super::scoped_warning_key(account, &scope, resource),
        &value,
    )
}

/// A domain's usage is the exact sum of its accounts' (joining twice counts once, a deleted
/// account leaves with its usage); its limit refuses with scope `domain`; reaching its
/// `warnLimit` queues one domain warning, and falling under it re-arms it.
pub async fn domain_usage_is_the_sum_of_its_accounts(store: &Store) {
    reset(store).await;
    let (first_id, first_size) = import(store, FIRST, 0).await;
    // FIRST already holds mail when it joins (the upgrade path): its usage comes along.
    for account in [FIRST, SECOND, FIRST] {
        store
            .transact(move |tx| Box::pin(async move { domain::join(tx, account, DOMAIN).await }))
            .await
            .expect("join");
    }
    assert_eq!(domain_usage(store).await.count, 1, "joined once each");
    set_limits(
        store,
        LimitsChange {
            messages: Some(3),
            warn_percent: Some(50),
            ..LimitsChange::default()
        },
    )
    .await;
    let (_, second_size) = import(store, SECOND, 1).await;
    // 2 of 3 is past 50 %: one warning, for the account whose mail reached it.
    let task = warning(store, SECOND, Resource::Count)
        .await
        .expect("warned");
    assert_eq!(task.scope, Scope::Domain(DOMAIN.to_owned()));
    assert_eq!((task.used, task.limit), (2, 3));
    let (_, third_size) = import(store, SECOND, 2).await;
    assert!(
        warning(store, FIRST, Resource::Count).await.is_none(),
        "one warning per crossing"
    );
    let usage = domain_usage(store).await;
    assert_eq!(
        (usage.count, usage.octets),
        (3, first_size + second_size + third_size)
    );
    for account in [FIRST, SECOND] {
        let refused = store
            .read(move |tx| Box::pin(super::check(tx, account, 10, 1)))
            .await
            .expect("check");
        let over = refused.expect_err("the domain is full");
        assert_eq!(over.scope, Scope::Domain(DOMAIN.to_owned()));
        assert_eq!(
            (over.resource, over.used, over.limit),
            (Resource::Count, 3, 3)
        );
        let room = store
            .read(move |tx| Box::pin(super::headroom(tx, account)))
            .await
            .expect("headroom");
        assert!(!room.fits(1), "no headroom left in the domain");
    }
    // SECOND is deleted: its two messages leave the domain.
    store
        .transact(|tx| Box::pin(async move { domain::leave(tx, SECOND).await }))
        .await
        .expect("leave");
    assert_eq!(domain_usage(store).await.count, 1);
    commit_account(store, FIRST, |tx, changes| {
        Box::pin(async move { destroy_email(tx, changes, FIRST, first_id).await })
    })
    .await
    .expect("destroy");
    assert_eq!(domain_usage(store).await, Usage::default());
    // Under the level again: re-armed (the flag is gone).
    let flag = domain::warned_key(DOMAIN, Resource::Count);
    let armed = store
        .read(move |tx| {
            let flag = flag.clone();
            Box::pin(async move { tx.get(&flag).await })
        })
        .await
        .expect("flag");
    assert!(armed.is_none(), "re-armed under warnLimit");
    reset(store).await;
}

/// Two accounts of one limited domain change their usage in concurrent transactions: both
/// commit (the domain counters are read without a conflict and moved by blind adds).
pub async fn accounts_of_a_limited_domain_do_not_conflict(store: &Store) {
    reset(store).await;
    for account in [FIRST, SECOND] {
        store
            .transact(move |tx| Box::pin(async move { domain::join(tx, account, DOMAIN).await }))
            .await
            .expect("join");
    }
    set_limits(
        store,
        LimitsChange {
            storage: Some(1_000_000),
            warn_percent: Some(0),
            ..LimitsChange::default()
        },
    )
    .await;
    let mut first = store.backend().begin().await.expect("begin");
    let mut second = store.backend().begin().await.expect("begin");
    let mut changes = Changes::default();
    for (tx, account) in [(&mut first, FIRST), (&mut second, SECOND)] {
        let fits = super::check(tx.as_mut(), account, 100, 1)
            .await
            .expect("check");
        assert_eq!(fits, Ok(()));
        super::email_added(tx.as_mut(), &mut changes, account, 100)
            .await
            .expect("added");
    }
    first.commit().await.expect("first commits");
    second
        .commit()
        .await
        .expect("the second account's commit does not conflict");
    let usage = domain_usage(store).await;
    assert_eq!((usage.count, usage.octets), (2, 200));
    reset(store).await;
}
