//! Backend suite tests of the Email store (run on every backend by `store::testsuite`): the
//! threads, merges, indexes and exact counters are all transactions over the storage trait,
//! so they must hold on FoundationDB exactly as on the embedded engine.

use bytes::Bytes;

use super::{ImportSpec, destroy_email, import_email, load_record, load_thread};
use crate::mail::counters::{self, MailboxCounts};
use crate::mail::parsed::parse_message;
use crate::store::blob::BlobStore;
use crate::store::commit::{
    ChangesSince, DataType, LogPosition, changes_since, commit_account, read_state,
};
use crate::store::keys::account_prefix;
use crate::store::{KeyRange, Store};

const ACCOUNT: u32 = 9_101;
const INBOX: u64 = 1;
const ARCHIVE: u64 = 2;

async fn reset(store: &Store) {
    store
        .transact(|tx| {
            Box::pin(
                async move { tx.clear_range(&KeyRange::prefix(&account_prefix(ACCOUNT).build())) },
            )
        })
        .await
        .expect("reset account");
}

fn raw(message_id: &str, parent: Option<&str>, subject: &str) -> Vec<u8> {
    let mut text =
        format!("From: a@example.test\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n");
    if let Some(parent) = parent {
        text.push_str(&format!("In-Reply-To: <{parent}>\r\n"));
    }
    text.push_str("\r\nbody\r\n");
    text.into_bytes()
}

async fn import(
    store: &Store,
    message_id: &str,
    parent: Option<&str>,
    subject: &str,
    mailbox: u64,
    keywords: &[&str],
    received_at: i64,
) -> (u64, u64, ChangesSince) {
    let content = raw(message_id, parent, subject);
    let blob = BlobStore::new(store.clone())
        .put(ACCOUNT, Bytes::from(content.clone()))
        .await
        .expect("blob stored");
    let spec = ImportSpec {
        blob: blob.id,
        parsed: parse_message(&content),
        mailbox_ids: vec![mailbox],
        keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
        received_at,
    };
    let committed = commit_account(store, ACCOUNT, |tx, changes| {
        let spec = spec.clone();
        Box::pin(async move { import_email(tx, changes, ACCOUNT, spec).await })
    })
    .await
    .expect("import committed");
    let imported = committed.value;
    let thread_changes = thread_changes_of(store, committed.version).await;
    (imported.email_id, imported.thread_id, thread_changes)
}

/// The Thread changes the commit at `version` recorded, read back from the change log.
async fn thread_changes_of(store: &Store, version: u64) -> ChangesSince {
    store
        .read(|tx| {
            Box::pin(async move {
                let since = LogPosition::at(version - 1);
                Ok(changes_since(tx, ACCOUNT, DataType::Thread, since, 0)
                    .await
                    .unwrap_or_default())
            })
        })
        .await
        .expect("change log read")
}

async fn counts(store: &Store, mailbox: u64) -> MailboxCounts {
    store
        .read(|tx| Box::pin(async move { counters::read(tx, ACCOUNT, mailbox).await }))
        .await
        .expect("counts read")
}

fn four(counts: MailboxCounts) -> [u64; 4] {
    [
        counts.total_emails,
        counts.unread_emails,
        counts.total_threads,
        counts.unread_threads,
    ]
}

/// Threads form and merge; every count stays exact through imports, updates and destroys.
pub async fn threads_merge_and_counts_stay_exact(store: &Store) {
    reset(store).await;
    let (a, thread_a, _) = import(store, "a@x", None, "Plan", INBOX, &[], 10).await;
    let (c, thread_c, _) = import(
        store,
        "c@x",
        Some("b@x"),
        "Re: Plan",
        ARCHIVE,
        &["$seen"],
        30,
    )
    .await;
    assert_ne!(thread_a, thread_c, "no shared Message-ID yet");
    assert_eq!(four(counts(store, INBOX).await), [1, 1, 1, 1]);
    assert_eq!(four(counts(store, ARCHIVE).await), [1, 0, 1, 0]);

    // B replies to A and is C's parent: the two Threads merge into the older one.
    let (b, thread_b, changes) =
        import(store, "b@x", Some("a@x"), "Re: Plan", INBOX, &["$seen"], 20).await;
    assert_eq!(thread_b, thread_a.min(thread_c));
    let absorbed = thread_a.max(thread_c);
    let thread = store
        .read(|tx| Box::pin(async move { load_thread(tx, ACCOUNT, thread_b).await }))
        .await
        .expect("thread read")
        .expect("the merged thread");
    assert_eq!(
        thread.email_ids().collect::<Vec<_>>(),
        [a, b, c],
        "oldest first"
    );
    assert_eq!(
        changes.destroyed,
        [absorbed],
        "the absorbed Thread is logged destroyed"
    );
    assert_eq!(
        changes.updated,
        [thread_b],
        "the surviving Thread is logged updated"
    );
    // The Archive's Thread is now unread (A is unread, elsewhere): RFC 8621 §2.
    assert_eq!(four(counts(store, INBOX).await), [2, 1, 1, 1]);
    assert_eq!(four(counts(store, ARCHIVE).await), [1, 0, 1, 1]);
    assert_eq!(counts(store, INBOX).await.unseen_emails, 1);

    // Reading A makes everything read; moving C to the Inbox empties the Archive.
    commit_account(store, ACCOUNT, |tx, changes| {
        Box::pin(async move {
            super::update_email(tx, changes, ACCOUNT, a, vec![INBOX], vec!["$seen".into()]).await?;
            super::update_email(tx, changes, ACCOUNT, c, vec![INBOX], vec!["$seen".into()]).await
        })
    })
    .await
    .expect("updates committed");
    assert_eq!(four(counts(store, INBOX).await), [3, 0, 1, 0]);
    assert_eq!(four(counts(store, ARCHIVE).await), [0, 0, 0, 0]);

    // Destroying every Email leaves zero counts and no Thread.
    commit_account(store, ACCOUNT, |tx, changes| {
        Box::pin(async move {
            for id in [a, b, c] {
                assert!(destroy_email(tx, changes, ACCOUNT, id).await?);
            }
            Ok(())
        })
    })
    .await
    .expect("destroys committed");
    assert_eq!(four(counts(store, INBOX).await), [0, 0, 0, 0]);
    let (record, thread, email_state) = store
        .read(|tx| {
            Box::pin(async move {
                Ok((
                    load_record(tx, ACCOUNT, a).await?,
                    load_thread(tx, ACCOUNT, thread_b).await?,
                    read_state(tx, ACCOUNT, DataType::Email).await?,
                ))
            })
        })
        .await
        .expect("read back");
    assert!(record.is_none() && thread.is_none());
    assert!(email_state > 0);
}

/// onDestroyRemoveEmails: Emails only in the Mailbox are destroyed, the others leave it.
pub async fn removing_a_mailbox_from_its_emails(store: &Store) {
    reset(store).await;
    let (only_inbox, _, _) = import(store, "o@x", None, "Only", INBOX, &[], 10).await;
    let (both, _, _) = import(store, "b2@x", None, "Both", INBOX, &[], 20).await;
    commit_account(store, ACCOUNT, |tx, changes| {
        Box::pin(async move {
            super::update_email(tx, changes, ACCOUNT, both, vec![INBOX, ARCHIVE], vec![]).await
        })
    })
    .await
    .expect("added to the archive");
    commit_account(store, ACCOUNT, |tx, changes| {
        Box::pin(
            async move { super::remove_mailbox_from_emails(tx, changes, ACCOUNT, INBOX).await },
        )
    })
    .await
    .expect("mailbox emptied");
    let (gone, kept) = store
        .read(|tx| {
            Box::pin(async move {
                Ok((
                    load_record(tx, ACCOUNT, only_inbox).await?,
                    load_record(tx, ACCOUNT, both).await?,
                ))
            })
        })
        .await
        .expect("read back");
    assert!(gone.is_none());
    assert_eq!(kept.expect("kept").mailbox_ids, [ARCHIVE]);
    assert_eq!(four(counts(store, INBOX).await), [0, 0, 0, 0]);
    assert_eq!(four(counts(store, ARCHIVE).await), [1, 1, 1, 1]);
}

/// RFC 9425 usage is exact: every import and destroy moves the counters in its own commit;
/// the hard limit refuses what does not fit; crossing the warning level queues one warning,
/// and falling back under it re-arms it.
pub async fn quota_usage_is_exact_and_the_warning_fires_once(store: &Store) {
    use crate::mail::quota::{self, Limits, Resource};
    reset(store).await;
    let clear_warnings = || async {
        store
            .transact(|tx| {
                Box::pin(async move {
                    for resource in Resource::ALL {
                        tx.clear(&quota::warning_key(ACCOUNT, resource))?;
                    }
                    Ok(())
                })
            })
            .await
            .expect("clear warnings");
    };
    clear_warnings().await;
    let limits = Limits {
        storage: Some(1_000_000),
        messages: Some(3),
        warn_percent: 50,
    };
    commit_account(store, ACCOUNT, |tx, changes| {
        Box::pin(async move {
            quota::set_own_limits(tx, changes, ACCOUNT, Some(quota::Overrides::fixed(limits))).await
        })
    })
    .await
    .expect("limits set");
    let usage = || async {
        store
            .read(|tx| Box::pin(quota::usage(tx, ACCOUNT)))
            .await
            .expect("usage")
    };
    let warning = |resource| async move {
        store
            .read(move |tx| {
                Box::pin(async move { tx.get(&quota::warning_key(ACCOUNT, resource)).await })
            })
            .await
            .expect("warning task")
    };
    let mut ids = Vec::new();
    let mut octets = 0;
    for (index, subject) in ["one", "two", "three"].into_iter().enumerate() {
        let (id, _, _) = import(store, &format!("q{index}@x"), None, subject, INBOX, &[], 1).await;
        octets += raw(&format!("q{index}@x"), None, subject).len() as u64;
        ids.push(id);
        if index == 0 {
            // 1 of 3 messages is past 50 % of 3 (warnLimit 1): one warning task.
            assert!(
                warning(Resource::Count).await.is_some(),
                "warned at the crossing"
            );
            clear_warnings().await;
        }
    }
    assert_eq!(usage().await.count, 3);
    assert_eq!(usage().await.octets, octets);
    assert!(
        warning(Resource::Count).await.is_none(),
        "warned once per crossing"
    );
    let refused = store
        .read(|tx| Box::pin(quota::check(tx, ACCOUNT, 10, 1)))
        .await
        .expect("check");
    assert_eq!(
        refused.map_err(|over| (over.resource, over.used, over.limit)),
        Err((Resource::Count, 3, 3))
    );
    let fits_bytes = store
        .read(|tx| Box::pin(quota::check(tx, ACCOUNT, 10, 0)))
        .await
        .expect("check");
    assert_eq!(fits_bytes, Ok(()));
    commit_account(store, ACCOUNT, |tx, changes| {
        let ids = ids.clone();
        Box::pin(async move {
            for id in ids {
                assert!(destroy_email(tx, changes, ACCOUNT, id).await?);
            }
            Ok(())
        })
    })
    .await
    .expect("destroys committed");
    assert_eq!(usage().await, quota::Usage::default());
    // Under the level again: the next crossing warns again.
    import(store, "q9@x", None, "again", INBOX, &[], 1).await;
    assert!(warning(Resource::Count).await.is_some(), "re-armed");
    clear_warnings().await;
    reset(store).await;
}

/// An account whose Emails predate the usage counters is counted once (paged), exactly.
pub async fn quota_backfill_counts_older_accounts_once(store: &Store) {
    use crate::mail::quota;
    reset(store).await;
    let mut octets = 0;
    for index in 0..5 {
        let subject = format!("old{index}");
        import(store, &format!("b{index}@x"), None, &subject, INBOX, &[], 1).await;
        octets += raw(&format!("b{index}@x"), None, &subject).len() as u64;
    }
    // As before the counters existed: no counters, no mark.
    store
        .transact(|tx| {
            Box::pin(async move {
                let prefix = account_prefix(ACCOUNT)
                    .u8(crate::store::keys::ACCT_QUOTA)
                    .build();
                tx.clear_range(&KeyRange::prefix(&prefix))
            })
        })
        .await
        .expect("forget the counters");
    assert!(quota::backfill(store, ACCOUNT).await.expect("backfill"));
    let usage = store
        .read(|tx| Box::pin(quota::usage(tx, ACCOUNT)))
        .await
        .expect("usage");
    assert_eq!((usage.count, usage.octets), (5, octets));
    assert!(
        !quota::backfill(store, ACCOUNT).await.expect("again"),
        "counted once"
    );
    reset(store).await;
}

/// Blob/lookup's index: every import adds its Email under its blob, every destroy removes it,
/// and the start-up upgrade indexes the Emails of older stores once.
pub async fn blob_index_follows_imports_destroys_and_the_upgrade(store: &Store) {
    use super::blob_index;
    reset(store).await;
    let mut ids = Vec::new();
    for index in 0..3 {
        let (id, _, _) = import(store, &format!("x{index}@x"), None, "blob", INBOX, &[], 1).await;
        ids.push(id);
    }
    let digest_of = |id: u64| async move {
        store
            .read(move |tx| Box::pin(async move { load_record(tx, ACCOUNT, id).await }))
            .await
            .expect("record")
            .expect("exists")
            .blob
    };
    let first = digest_of(ids[0]).await;
    let found = |digest: crate::store::blob::BlobHash| async move {
        store
            .read(move |tx| {
                Box::pin(async move {
                    blob_index::emails_with_blob(tx, ACCOUNT, digest.as_bytes(), 0).await
                })
            })
            .await
            .expect("lookup")
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<u64>>()
    };
    assert_eq!(found(first).await, vec![ids[0]]);
    // As in a store from before the index: no entries, no mark.
    store
        .transact(|tx| {
            Box::pin(async move {
                let index =
                    crate::mail::store::index::prefix(ACCOUNT, crate::mail::store::index::BLOB);
                tx.clear_range(&KeyRange::prefix(&index.build()))?;
                let upgrades = account_prefix(ACCOUNT).u8(crate::store::keys::ACCT_UPGRADES);
                tx.clear_range(&KeyRange::prefix(&upgrades.build()))
            })
        })
        .await
        .expect("forget the index");
    assert!(found(first).await.is_empty());
    assert_eq!(
        blob_index::backfill(store, ACCOUNT)
            .await
            .expect("backfill"),
        3
    );
    assert_eq!(found(first).await, vec![ids[0]]);
    assert_eq!(
        blob_index::backfill(store, ACCOUNT).await.expect("again"),
        0,
        "indexed once"
    );
    commit_account(store, ACCOUNT, |tx, changes| {
        let id = ids[0];
        Box::pin(async move { destroy_email(tx, changes, ACCOUNT, id).await })
    })
    .await
    .expect("destroy");
    assert!(found(first).await.is_empty(), "a destroy removes its entry");
    reset(store).await;
}
