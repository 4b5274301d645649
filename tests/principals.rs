//! Principals, ShareNotifications and groups (RFC 9670) end to end over raw JMAP: the
//! directory as Principals with exact /changes, a notification for every change of a user's
//! rights (dismissed with /set), and groups whose members share the group's account and what
//! is shared with the group — until they leave it.

mod common;

use common::{TestServer, TestUser};
use serde_json::{Value, json};

const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";
const PRINCIPALS: &str = "urn:ietf:params:jmap:principals";

async fn call(server: &TestServer, user: &TestUser, method: &str, arguments: Value) -> Value {
    let answer = server
        .post_api(
            user,
            &json!({"using": [CORE, MAIL, PRINCIPALS], "methodCalls": [[method, arguments, "c"]]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let response = answer.json()["methodResponses"][0].clone();
    json!([response[0], response[1]])
}

async fn share(server: &TestServer, mailbox: &str, principal: &str, rights: Value) -> Value {
    call(
        server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": server.alice().account_id, "update": {mailbox: {
            format!("shareWith/{principal}"): rights}}}),
    )
    .await
}

async fn create_mailbox(server: &TestServer, name: &str) -> String {
    let created = call(
        server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": server.alice().account_id, "create": {"new": {"name": name}}}),
    )
    .await;
    created[1]["created"]["new"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_directory_is_the_principals_with_exact_changes() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let session = server.session(alice).await;
    let account = &session["accounts"][&alice.account_id]["accountCapabilities"];
    assert_eq!(
        account[PRINCIPALS]["currentUserPrincipalId"],
        alice.account_id
    );
    assert_eq!(
        account["urn:ietf:params:jmap:principals:owner"]["principalId"],
        alice.account_id
    );
    assert_eq!(session["primaryAccounts"][PRINCIPALS], alice.account_id);

    let all = call(
        &server,
        alice,
        "Principal/get",
        json!({"accountId": alice.account_id, "ids": null}),
    )
    .await;
    let list = all[1]["list"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{all}");
    let bob = list
        .iter()
        .find(|p| p["email"] == "bob@example.test")
        .unwrap();
    assert_eq!(bob["type"], "individual");
    assert_eq!(bob["id"], server.bob().account_id);
    assert_eq!(
        bob["accounts"],
        Value::Null,
        "alice cannot use bob's account"
    );
    let state = all[1]["state"].clone();

    let found = call(
        &server,
        alice,
        "Principal/query",
        json!({"accountId": alice.account_id, "filter": {"text": "BOB"}, "sort": [{"property": "name"}]}),
    )
    .await;
    assert_eq!(found[1]["ids"], json!([server.bob().account_id]));
    let unknown = call(
        &server,
        alice,
        "Principal/query",
        json!({"accountId": alice.account_id, "filter": {"colour": "blue"}}),
    )
    .await;
    assert_eq!(unknown[1]["type"], "unsupportedFilter");

    let directory = server.running().directory();
    let carol = directory
        .create_account("carol@example.test", "carol-password-3")
        .await
        .unwrap();
    directory.delete_account("bob@example.test").await.unwrap();
    let changes = call(
        &server,
        alice,
        "Principal/changes",
        json!({"accountId": alice.account_id, "sinceState": state}),
    )
    .await;
    assert_eq!(
        changes[1]["created"],
        json!([format!("a{}", carol.account_id)]),
        "{changes}"
    );
    assert_eq!(changes[1]["destroyed"], json!([server.bob().account_id]));
    let query_changes = call(
        &server,
        alice,
        "Principal/queryChanges",
        json!({"accountId": alice.account_id, "sinceQueryState": state}),
    )
    .await;
    assert_eq!(
        query_changes[1]["removed"],
        json!([server.bob().account_id]),
        "{query_changes}"
    );
    assert_eq!(
        query_changes[1]["added"][0]["id"],
        format!("a{}", carol.account_id)
    );
    let stale = call(
        &server,
        alice,
        "Principal/changes",
        json!({"accountId": alice.account_id, "sinceState": "s999999"}),
    )
    .await;
    assert_eq!(stale[1]["type"], "cannotCalculateChanges");
    server.shutdown().await;
}

#[tokio::test]
async fn every_change_of_rights_notifies_the_grantee() {
    let server = TestServer::start().await;
    let team = create_mailbox(&server, "Team").await;
    let bob_id = server.bob().account_id.clone();
    let bob = server.bob();
    let before = call(
        &server,
        bob,
        "ShareNotification/get",
        json!({"accountId": bob.account_id, "ids": null}),
    )
    .await;
    assert_eq!(before[1]["list"], json!([]));
    let state = before[1]["state"].clone();

    share(&server, &team, &bob_id, json!({"mayReadItems": true})).await;
    share(&server, &team, &bob_id, Value::Null).await;
    let notes = call(
        &server,
        bob,
        "ShareNotification/query",
        json!({"accountId": bob.account_id, "sort": [{"property": "created"}]}),
    )
    .await;
    let ids = notes[1]["ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2, "{notes}");
    let got = call(
        &server,
        bob,
        "ShareNotification/get",
        json!({"accountId": bob.account_id, "ids": ids}),
    )
    .await;
    let [granted, revoked] = &got[1]["list"].as_array().unwrap()[..] else {
        panic!("{got}")
    };
    assert_eq!(granted["objectType"], "Mailbox");
    assert_eq!(granted["objectId"], team);
    assert_eq!(granted["objectAccountId"], server.alice().account_id);
    assert_eq!(granted["name"], "Team");
    assert_eq!(granted["oldRights"], Value::Null);
    assert_eq!(granted["newRights"]["mayReadItems"], true);
    assert_eq!(granted["changedBy"]["email"], "alice@example.test");
    assert_eq!(revoked["oldRights"]["mayReadItems"], true);
    assert_eq!(revoked["newRights"], Value::Null);
    let changes = call(
        &server,
        bob,
        "ShareNotification/changes",
        json!({"accountId": bob.account_id, "sinceState": state}),
    )
    .await;
    assert_eq!(
        changes[1]["created"].as_array().map(Vec::len),
        Some(2),
        "{changes}"
    );

    // Dismissed with destroy; never created or changed by a client.
    let set = call(
        &server,
        bob,
        "ShareNotification/set",
        json!({
            "accountId": bob.account_id,
            "create": {"x": {"name": "forged"}},
            "update": {granted["id"].as_str().unwrap(): {"name": "renamed"}},
            "destroy": [revoked["id"]],
        }),
    )
    .await;
    assert_eq!(set[1]["notCreated"]["x"]["type"], "forbidden", "{set}");
    assert_eq!(
        set[1]["notUpdated"][granted["id"].as_str().unwrap()]["type"],
        "forbidden"
    );
    assert_eq!(set[1]["destroyed"], json!([revoked["id"]]));
    // They live in the user's own account.
    let foreign = call(
        &server,
        bob,
        "ShareNotification/get",
        json!({"accountId": server.alice().account_id}),
    )
    .await;
    assert_eq!(foreign[1]["type"], "accountNotFound");
    server.shutdown().await;
}

#[tokio::test]
async fn group_members_share_the_group_account_and_its_grants() {
    let server = TestServer::start().await;
    let directory = server.running().directory();
    let group = directory
        .create_group("team@example.test", "The Team")
        .await
        .unwrap();
    let group_id = format!("a{}", group.account_id);
    directory
        .add_group_member("team@example.test", "bob@example.test")
        .await
        .unwrap();
    let bob = server.bob();

    // The group account: listed in bob's session, every Mailbox readable and writable.
    let session = server.session(bob).await;
    let account = &session["accounts"][&group_id];
    assert_eq!(account["name"], "team@example.test", "{session}");
    assert_eq!(account["isPersonal"], false);
    assert_eq!(account["isReadOnly"], false);
    let mailboxes = call(
        &server,
        bob,
        "Mailbox/get",
        json!({"accountId": group_id, "ids": null}),
    )
    .await;
    let list = mailboxes[1]["list"].as_array().unwrap();
    assert!(
        list.len() >= 6,
        "the team inbox and its siblings: {mailboxes}"
    );
    assert!(list.iter().all(|m| m["myRights"]["mayAddItems"] == true));

    // What alice shares with the group, bob sees.
    let team = create_mailbox(&server, "ForTheTeam").await;
    share(&server, &team, &group_id, json!({"mayReadItems": true})).await;
    let seen = call(
        &server,
        bob,
        "Mailbox/get",
        json!({"accountId": server.alice().account_id, "ids": [team]}),
    )
    .await;
    assert_eq!(
        seen[1]["list"][0]["myRights"]["mayReadItems"], true,
        "{seen}"
    );
    // A group gets no notifications, nor can it log in.
    let group_principal = call(
        &server,
        server.alice(),
        "Principal/get",
        json!({"accountId": server.alice().account_id, "ids": [group_id]}),
    )
    .await;
    assert_eq!(group_principal[1]["list"][0]["type"], "group");
    assert_eq!(group_principal[1]["list"][0]["name"], "The Team");
    assert!(
        directory
            .verify_password("team@example.test", "!group")
            .await
            .unwrap()
            .is_none()
    );

    directory
        .remove_group_member("team@example.test", "bob@example.test")
        .await
        .unwrap();
    let gone = call(
        &server,
        bob,
        "Mailbox/get",
        json!({"accountId": group_id, "ids": null}),
    )
    .await;
    assert_eq!(gone[1]["type"], "accountNotFound", "{gone}");
    let gone = call(
        &server,
        bob,
        "Mailbox/get",
        json!({"accountId": server.alice().account_id}),
    )
    .await;
    assert_eq!(gone[1]["type"], "accountNotFound");
    server.shutdown().await;
}
