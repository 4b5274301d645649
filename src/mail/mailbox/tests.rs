//! The Mailbox store on the embedded backend: default Mailboxes, the role index, lookups.

use super::*;
use crate::jmap::test_support::open_store;

#[tokio::test]
async fn default_mailboxes_are_created_once_with_unique_roles() {
    let (store, _dir) = open_store();
    let account_id = 7;
    ensure_default_mailboxes(&store, account_id).await.unwrap();
    ensure_default_mailboxes(&store, account_id).await.unwrap();
    let (all, inbox, trash, missing, exists) = store
        .read(|tx| {
            Box::pin(async move {
                let all = load_all(tx, account_id).await?;
                let inbox = mailbox_with_role(tx, account_id, "inbox").await?;
                let trash = mailbox_with_role(tx, account_id, "trash").await?;
                let missing = mailbox_with_role(tx, account_id, "flagged").await?;
                let exists = existing_mailboxes(tx, account_id, &[1, 6, 7]).await?;
                Ok((all, inbox, trash, missing, exists))
            })
        })
        .await
        .unwrap();
    assert_eq!(all.len(), DEFAULT_MAILBOXES.len());
    let mut roles: Vec<&str> = all.values().filter_map(|m| m.role.as_deref()).collect();
    roles.sort_unstable();
    assert_eq!(
        roles,
        vec!["archive", "drafts", "inbox", "junk", "sent", "trash"]
    );
    assert_eq!(all[&inbox.unwrap()].name, "Inbox");
    assert_eq!(all[&trash.unwrap()].role.as_deref(), Some("trash"));
    assert_eq!(missing, None);
    assert_eq!(exists, vec![true, true, false]);
}

#[tokio::test]
async fn saving_a_new_role_moves_the_index_entry() {
    let (store, _dir) = open_store();
    let account_id = 8;
    ensure_default_mailboxes(&store, account_id).await.unwrap();
    commit_account(&store, account_id, |tx, changes| {
        Box::pin(async move {
            let archive_id = mailbox_with_role(tx, account_id, "archive").await?.unwrap();
            let before = load(tx, account_id, archive_id).await?.unwrap();
            let after = Mailbox {
                role: Some("all".to_owned()),
                ..before.clone()
            };
            save(tx, account_id, archive_id, &after, Some(&before))?;
            changes.updated(DataType::Mailbox, archive_id);
            record_properties_changed(tx, account_id).await
        })
    })
    .await
    .unwrap();
    let (archive, all, version, account_version) = store
        .read(|tx| {
            Box::pin(async move {
                Ok((
                    mailbox_with_role(tx, account_id, "archive").await?,
                    mailbox_with_role(tx, account_id, "all").await?,
                    properties_version(tx, account_id).await?,
                    crate::store::commit::read_account_version(tx, account_id).await?,
                ))
            })
        })
        .await
        .unwrap();
    assert_eq!(archive, None);
    assert!(all.is_some());
    assert_eq!(
        version, account_version,
        "the version of the commit that wrote it"
    );
}

#[tokio::test]
async fn a_new_account_has_its_mailboxes_at_once() {
    let (store, _dir) = open_store();
    let directory = crate::auth::directory::Directory::new(store.clone());
    let account = directory
        .create_account("carol@example.test", "carol-password")
        .await
        .unwrap();
    let account_id = account.account_id;
    let all = store
        .read(|tx| Box::pin(async move { load_all(tx, account_id).await }))
        .await
        .unwrap();
    assert_eq!(all.len(), DEFAULT_MAILBOXES.len());
}
