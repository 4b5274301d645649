//! Shared Mailboxes (RFC 9670 `shareWith`, RFC 8621 §2 rights) end to end: alice shares one
//! Mailbox with bob; bob's real `jmap-client` session lists alice's account and sees exactly
//! the shared Mailbox's Emails — through get, query, text search, threads, snippets and
//! changes — acts within his rights, copies across accounts, and loses everything at once
//! when the grant is revoked. Raw JMAP checks the error types. Push, blobs and the merged
//! whole-account list: `sharing_push.rs`.

mod common;
#[path = "sharing_common/mod.rs"]
mod sharing_common;

use common::mailbox_with_role;
use jmap_client::mailbox::Role;
use serde_json::{Value, json};
use sharing_common::*;

#[tokio::test]
async fn a_grantee_sees_exactly_the_shared_mailbox() {
    let Shared {
        server,
        team,
        private,
        team_email,
        private_email,
        ..
    } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let mut bob = server.jmap_client(server.bob()).await;
    let session = bob.session();
    let account = session
        .account(&alice_account)
        .expect("bob's session lists alice's account");
    assert!(!account.is_personal());
    assert!(!account.is_read_only());
    assert_eq!(account.name(), "alice@example.test");
    bob.set_default_account_id(alice_account.clone());

    // Mailboxes: only Team, with bob's rights and no grants of others.
    let mailboxes = call(
        &server,
        server.bob(),
        "Mailbox/get",
        json!({"accountId": alice_account, "ids": null}),
    )
    .await;
    let list = mailboxes[1]["list"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{mailboxes}");
    assert_eq!(list[0]["id"], team);
    assert_eq!(list[0]["myRights"]["mayReadItems"], true);
    assert_eq!(list[0]["myRights"]["maySetKeywords"], false);
    assert_eq!(
        list[0]["shareWith"],
        json!({}),
        "the grants are the owner's business"
    );
    assert_eq!(list[0]["totalEmails"], 1);
    let team_mailbox = get_mailbox(&bob, &team).await.expect("Team");
    let rights = team_mailbox.my_rights().expect("myRights");
    assert!(rights.may_read_items() && rights.may_set_seen() && !rights.may_delete());
    assert!(get_mailbox(&bob, &private).await.is_none());

    // Emails: the query, a text search for the private Email's words, get, snippet, thread.
    assert_eq!(query(&bob, None).await, vec![team_email.clone()]);
    let search = query(
        &bob,
        Some(jmap_client::email::query::Filter::text("salary").into()),
    )
    .await;
    assert!(search.is_empty(), "search must not reveal Private");
    let in_private = call(
        &server,
        server.bob(),
        "Email/query",
        json!({"accountId": alice_account, "filter": {"inMailbox": private}, "calculateTotal": true}),
    )
    .await;
    assert_eq!(in_private[1]["ids"], json!([]));
    assert_eq!(in_private[1]["total"], 0);
    assert!(get_email(&bob, &private_email).await.is_none());
    let email = get_email(&bob, &team_email).await.expect("the team Email");
    assert_eq!(email.subject(), Some("rota"));
    let private_thread = call(
        &server,
        server.alice(),
        "Email/get",
        json!({"accountId": alice_account, "ids": [private_email], "properties": ["threadId"]}),
    )
    .await[1]["list"][0]["threadId"]
        .clone();
    let threads = call(
        &server,
        server.bob(),
        "Thread/get",
        json!({"accountId": alice_account, "ids": [email.thread_id(), private_thread]}),
    )
    .await;
    assert_eq!(threads[1]["list"][0]["emailIds"], json!([team_email]));
    assert_eq!(threads[1]["notFound"], json!([private_thread]));
    let snippets = call(
        &server,
        server.bob(),
        "SearchSnippet/get",
        json!({"accountId": alice_account, "emailIds": [private_email], "filter": {"text": "salary"}}),
    )
    .await;
    assert_eq!(snippets[1]["notFound"], json!([private_email]));

    // Methods of data no grant covers, and an account nobody shared.
    let vacation = server
        .post_api(
            server.bob(),
            &json!({
                "using": [CORE, MAIL, "urn:ietf:params:jmap:vacationresponse"],
                "methodCalls": [["VacationResponse/get", {"accountId": alice_account}, "v"]],
            }),
        )
        .await
        .json()["methodResponses"][0]
        .clone();
    assert_eq!(vacation[0], "error");
    assert_eq!(vacation[1]["type"], "accountNotSupportedByMethod");
    let foreign = call(
        &server,
        server.alice(),
        "Mailbox/get",
        json!({"accountId": server.bob().account_id}),
    )
    .await;
    assert_eq!(foreign[1]["type"], "accountNotFound");
    server.shutdown().await;
}

#[tokio::test]
async fn a_grantee_acts_within_the_rights() {
    let Shared {
        server,
        alice,
        team,
        private,
        team_email,
        private_email,
    } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let mut bob = server.jmap_client(server.bob()).await;
    bob.set_default_account_id(alice_account.clone());

    // maySetSeen: yes; other keywords (no maySetKeywords), destroy (no mayRemoveItems): no.
    set_keyword(&bob, &team_email, "$seen").await.unwrap();
    let seen = get_email(&alice, &team_email).await.unwrap();
    assert!(seen.keywords().contains(&"$seen"));
    let flagged = set_keyword(&bob, &team_email, "$flagged").await;
    assert!(flagged.is_err(), "maySetKeywords is not granted");
    let update = call(
        &server,
        server.bob(),
        "Email/set",
        json!({
            "accountId": alice_account,
            "update": {
                team_email.clone(): {"keywords/$flagged": true},
                private_email.clone(): {"keywords/$seen": true},
            },
        }),
    )
    .await;
    assert_eq!(update[1]["notUpdated"][&team_email]["type"], "forbidden");
    assert_eq!(update[1]["notUpdated"][&private_email]["type"], "notFound");
    let destroy = call(
        &server,
        server.bob(),
        "Email/set",
        json!({"accountId": alice_account, "destroy": [team_email.clone(), private_email.clone()]}),
    )
    .await;
    assert_eq!(destroy[1]["notDestroyed"][&team_email]["type"], "forbidden");
    assert_eq!(
        destroy[1]["notDestroyed"][&private_email]["type"],
        "notFound"
    );
    // Moving into Private: a Mailbox bob does not see is as if it did not exist.
    let moved = call(
        &server,
        server.bob(),
        "Email/set",
        json!({"accountId": alice_account, "update": {team_email.clone(): {
            format!("mailboxIds/{private}"): true}}}),
    )
    .await;
    assert_eq!(
        moved[1]["notUpdated"][&team_email]["type"],
        "invalidProperties"
    );

    // Mailbox rights: no mayCreateChild, mayRename or mayDelete; grants are the owner's.
    let mailbox_set = call(
        &server,
        server.bob(),
        "Mailbox/set",
        json!({
            "accountId": alice_account,
            "create": {"child": {"name": "Sub", "parentId": team}},
            "update": {team.clone(): {"name": "Renamed"}},
        }),
    )
    .await;
    assert_eq!(mailbox_set[1]["notCreated"]["child"]["type"], "forbidden");
    assert_eq!(mailbox_set[1]["notUpdated"][&team]["type"], "forbidden");
    let mailbox_destroy = call(
        &server,
        server.bob(),
        "Mailbox/set",
        json!({"accountId": alice_account, "destroy": [team.clone(), private.clone()]}),
    )
    .await;
    assert_eq!(
        mailbox_destroy[1]["notDestroyed"][&team]["type"],
        "forbidden"
    );
    assert_eq!(
        mailbox_destroy[1]["notDestroyed"][&private]["type"],
        "notFound"
    );
    let regrant = call(
        &server,
        server.bob(),
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {team.clone(): {
            format!("shareWith/{}", server.bob().account_id): {"mayDelete": true}}}}),
    )
    .await;
    assert_eq!(regrant[1]["notUpdated"][&team]["type"], "forbidden");

    // mayAddItems: a copy from bob's own account into Team, and back (cross-account copy).
    let bob_inbox = {
        let own = server.jmap_client(server.bob()).await;
        mailbox_with_role(&own, Role::Inbox).await
    };
    let copied = call(
        &server,
        server.bob(),
        "Email/copy",
        json!({
            "fromAccountId": alice_account,
            "accountId": server.bob().account_id,
            "create": {"mine": {"id": team_email, "mailboxIds": {bob_inbox.clone(): true}}},
        }),
    )
    .await;
    assert!(copied[1]["created"]["mine"]["id"].is_string(), "{copied}");
    let copy_id = copied[1]["created"]["mine"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let private_copy = call(
        &server,
        server.bob(),
        "Email/copy",
        json!({
            "fromAccountId": alice_account,
            "accountId": server.bob().account_id,
            "create": {"x": {"id": private_email, "mailboxIds": {bob_inbox: true}}},
        }),
    )
    .await;
    assert_eq!(private_copy[1]["notCreated"]["x"]["type"], "notFound");
    let back = call(
        &server,
        server.bob(),
        "Email/copy",
        json!({
            "fromAccountId": server.bob().account_id,
            "accountId": alice_account,
            "create": {"back": {"id": copy_id, "mailboxIds": {team.clone(): true}}},
        }),
    )
    .await;
    assert!(back[1]["created"]["back"]["id"].is_string(), "{back}");
    let into_private = call(
        &server,
        server.bob(),
        "Email/copy",
        json!({
            "fromAccountId": server.bob().account_id,
            "accountId": alice_account,
            "create": {"p": {"id": copy_id, "mailboxIds": {private: true}}},
        }),
    )
    .await;
    assert_eq!(
        into_private[1]["notCreated"]["p"]["type"],
        "invalidProperties"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn revoking_a_grant_takes_everything_away_at_once() {
    let Shared {
        server,
        team,
        team_email,
        ..
    } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let bob_id = server.bob().account_id.clone();
    let states = calls(
        &server,
        server.bob(),
        json!([
            ["Email/get", {"accountId": alice_account, "ids": []}, "e"],
            ["Mailbox/get", {"accountId": alice_account, "ids": []}, "m"],
        ]),
    )
    .await;
    let email_state = states[0][1]["state"].clone();
    let mailbox_state = states[1][1]["state"].clone();

    // Invalid grants first: an unknown principal, an unknown right, the owner.
    let invalid = share(&server, &team, "a999999", json!({"mayReadItems": true})).await;
    assert_eq!(invalid[1]["notUpdated"][&team]["type"], "invalidProperties");
    let invalid = share(&server, &team, &bob_id, json!({"mayAdminister": true})).await;
    assert_eq!(invalid[1]["notUpdated"][&team]["type"], "invalidProperties");

    let revoked = call(
        &server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {team.clone(): {"shareWith": {}}}}),
    )
    .await;
    assert_eq!(revoked[1]["updated"][&team], Value::Null, "{revoked}");

    // The account is gone from bob's session and requests.
    let session = server.session(server.bob()).await;
    assert!(
        session["accounts"].get(&alice_account).is_none(),
        "{session}"
    );
    let after = calls(
        &server,
        server.bob(),
        json!([
            ["Email/get", {"accountId": alice_account, "ids": [team_email]}, "e"],
            ["Email/changes", {"accountId": alice_account, "sinceState": email_state}, "c"],
            ["Mailbox/changes", {"accountId": alice_account, "sinceState": mailbox_state}, "m"],
        ]),
    )
    .await;
    for response in &after {
        assert_eq!(response[0], "error", "{response}");
        assert_eq!(response[1]["type"], "accountNotFound");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_narrower_grant_is_a_removal_in_changes() {
    let Shared {
        server,
        alice,
        team,
        team_email,
        ..
    } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let bob_id = server.bob().account_id.clone();
    // A second shared Mailbox keeps the account shared after Team is revoked.
    let other = create_mailbox(&server, "Other").await;
    let grant = share(&server, &other, &bob_id, json!({"mayReadItems": true})).await;
    assert_eq!(grant[1]["updated"][&other], Value::Null, "{grant}");
    let states = calls(
        &server,
        server.bob(),
        json!([
            ["Email/get", {"accountId": alice_account, "ids": []}, "e"],
            ["Mailbox/get", {"accountId": alice_account, "ids": []}, "m"],
        ]),
    )
    .await;
    let email_state = states[0][1]["state"].clone();
    let mailbox_state = states[1][1]["state"].clone();
    // A change bob sees (the team Email read by alice) and one he must not (a private Email).
    set_keyword(&alice, &team_email, "$seen").await.unwrap();
    let unchanged = calls(
        &server,
        server.bob(),
        json!([["Email/changes", {"accountId": alice_account, "sinceState": email_state}, "c"]]),
    )
    .await;
    assert_eq!(
        unchanged[0][1]["updated"],
        json!([team_email]),
        "{unchanged:?}"
    );

    let revoked = call(
        &server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {team.clone(): {"shareWith": null}}}),
    )
    .await;
    assert_eq!(revoked[1]["updated"][&team], Value::Null, "{revoked}");
    let after = calls(
        &server,
        server.bob(),
        json!([
            ["Email/changes", {"accountId": alice_account, "sinceState": email_state}, "c"],
            ["Mailbox/changes", {"accountId": alice_account, "sinceState": mailbox_state}, "m"],
            ["Email/get", {"accountId": alice_account, "ids": [team_email]}, "g"],
        ]),
    )
    .await;
    // RFC 8620 §5.2: Emails left without a log entry, so the client resynchronizes.
    assert_eq!(after[0][1]["type"], "cannotCalculateChanges", "{after:?}");
    assert_eq!(after[1][1]["destroyed"], json!([team]), "{after:?}");
    assert_eq!(after[2][1]["notFound"], json!([team_email]));
    server.shutdown().await;
}

#[tokio::test]
async fn subscriptions_are_the_grantees_own_and_decide_the_session() {
    let Shared { server, team, .. } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let unsubscribe = |subscribed: bool| json!({"accountId": alice_account, "update": {team.clone(): {"isSubscribed": subscribed}}});
    let done = call(&server, server.bob(), "Mailbox/set", unsubscribe(false)).await;
    assert_eq!(done[1]["updated"][&team], Value::Null, "{done}");
    // RFC 9670 §1.3: no subscribed record, no account in the session; still reachable.
    let session = server.session(server.bob()).await;
    assert!(
        session["accounts"].get(&alice_account).is_none(),
        "{session}"
    );
    let seen = call(
        &server,
        server.bob(),
        "Mailbox/get",
        json!({"accountId": alice_account, "ids": [team]}),
    )
    .await;
    assert_eq!(seen[1]["list"][0]["isSubscribed"], false, "{seen}");
    // The owner's own subscription is untouched.
    let owners = call(
        &server,
        server.alice(),
        "Mailbox/get",
        json!({"accountId": alice_account, "ids": [team], "properties": ["isSubscribed", "shareWith"]}),
    )
    .await;
    assert_eq!(owners[1]["list"][0]["isSubscribed"], true, "{owners}");
    assert!(owners[1]["list"][0]["shareWith"][&server.bob().account_id].is_object());

    let done = call(&server, server.bob(), "Mailbox/set", unsubscribe(true)).await;
    assert_eq!(done[1]["updated"][&team], Value::Null, "{done}");
    let session = server.session(server.bob()).await;
    assert!(
        session["accounts"].get(&alice_account).is_some(),
        "{session}"
    );
    server.shutdown().await;
}
