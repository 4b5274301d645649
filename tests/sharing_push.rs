//! Shared accounts beyond the methods: a grantee's WebSocket hears the shared account until
//! the grant is revoked, downloads and Blob/copy of its blobs, and the grantee's whole-account
//! list (the merge of the readable Mailboxes) against the owner's equivalent query.

mod common;
#[path = "sharing_common/mod.rs"]
mod sharing_common;

use serde_json::{Value, json};
use sharing_common::*;

#[tokio::test]
async fn a_grantees_websocket_hears_the_shared_account_until_revoked() {
    let Shared {
        server,
        alice,
        team,
        ..
    } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let mut socket = push_socket(&server, server.bob()).await;
    let wait = std::time::Duration::from_secs(5);

    import(&alice, message("news", "fresh news"), &team).await;
    let change = state_change_of(&mut socket, &alice_account, wait)
        .await
        .expect("bob hears alice's shared account");
    let changed = &change["changed"][&alice_account];
    assert!(changed["Email"].is_string(), "{change}");
    assert!(
        changed.get("Identity").is_none() && changed.get("Quota").is_none(),
        "{change}"
    );
    assert!(change.get("pushState").is_none(), "{change}");

    let revoked = call(
        &server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {team.clone(): {"shareWith": {}}}}),
    )
    .await;
    assert_eq!(revoked[1]["updated"][&team], Value::Null, "{revoked}");
    import(&alice, message("later", "after the revocation"), &team).await;
    let after = state_change_of(
        &mut socket,
        &alice_account,
        std::time::Duration::from_secs(1),
    )
    .await;
    assert!(after.is_none(), "nothing of a revoked account: {after:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn blobs_of_a_shared_account_download_and_copy() {
    let Shared {
        server, team_email, ..
    } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let bob_account = server.bob().account_id.clone();
    let got = call(
        &server,
        server.bob(),
        "Email/get",
        json!({"accountId": alice_account, "ids": [team_email], "properties": ["blobId"]}),
    )
    .await;
    let blob_id = got[1]["list"][0]["blobId"].as_str().unwrap().to_owned();
    let downloaded = server
        .download(server.bob(), &alice_account, &blob_id)
        .await;
    assert_eq!(downloaded.status, 200, "{}", downloaded.text());
    assert!(downloaded.text().contains("the team rota"));
    // Not the other way round: nothing of bob's is shared with alice.
    let refused = server
        .download(server.alice(), &bob_account, &blob_id)
        .await;
    assert_eq!(refused.status, 404);
    let copied = call(
        &server,
        server.bob(),
        "Blob/copy",
        json!({"fromAccountId": alice_account, "accountId": bob_account, "blobIds": [blob_id]}),
    )
    .await;
    assert_eq!(copied[1]["copied"][&blob_id], blob_id, "{copied}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_grantees_whole_account_list_merges_the_readable_mailboxes() {
    let Shared {
        server,
        alice,
        team,
        private,
        ..
    } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let second = create_mailbox(&server, "Second").await;
    let grant = share(
        &server,
        &second,
        &server.bob().account_id,
        json!({"mayReadItems": true}),
    )
    .await;
    assert_eq!(grant[1]["updated"][&second], Value::Null, "{grant}");
    // Emails spread over the three Mailboxes, one in both shared ones, in one thread or not.
    let mut blobs = Vec::new();
    for index in 0..9 {
        let subject = if index % 3 == 0 {
            "same thread".to_owned()
        } else {
            format!("m{index}")
        };
        let raw = format!(
            "From: carol@example.net\r\nSubject: {subject}\r\nMessage-ID: <m{index}@example.net>\r\n\r\nbody {index}\r\n"
        );
        let blob = alice
            .upload(None, raw.into_bytes(), Some("message/rfc822"))
            .await
            .unwrap()
            .take_blob_id();
        blobs.push(blob);
    }
    let mut emails = serde_json::Map::new();
    for (index, blob) in blobs.iter().enumerate() {
        let mailboxes = match index % 3 {
            0 => json!({team.clone(): true, second.clone(): true}),
            1 => json!({second.clone(): true}),
            _ => json!({private.clone(): true}),
        };
        let received = format!("2026-01-{:02}T10:00:00Z", 10 + index);
        emails.insert(
            format!("e{index}"),
            json!({"blobId": blob, "mailboxIds": mailboxes, "receivedAt": received}),
        );
    }
    let imported = call(
        &server,
        server.alice(),
        "Email/import",
        json!({"accountId": alice_account, "emails": emails}),
    )
    .await;
    assert_eq!(imported[1]["notCreated"], Value::Null, "{imported}");

    let visible =
        json!({"operator": "OR", "conditions": [{"inMailbox": team}, {"inMailbox": second}]});
    for arguments in [
        json!({"calculateTotal": true}),
        json!({"position": 2, "limit": 3}),
        json!({"collapseThreads": true, "calculateTotal": true}),
        json!({"sort": [{"property": "receivedAt", "isAscending": true}], "limit": 4}),
    ] {
        let mut grantee = arguments.clone();
        grantee["accountId"] = json!(alice_account);
        let mut owner = arguments.clone();
        owner["accountId"] = json!(alice_account);
        owner["filter"] = visible.clone();
        let seen = call(&server, server.bob(), "Email/query", grantee).await;
        let expected = call(&server, server.alice(), "Email/query", owner).await;
        for member in ["ids", "total", "position"] {
            assert_eq!(
                seen[1][member], expected[1][member],
                "{member} of {arguments}: {seen} vs {expected}"
            );
        }
    }
    server.shutdown().await;
}
