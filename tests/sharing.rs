//! Shared Mailboxes (RFC 9670 `shareWith`, RFC 8621 §2 rights) end to end: alice shares one
//! Mailbox with bob; bob's real `jmap-client` session lists alice's account and sees exactly
//! the shared Mailbox's Emails — through get, query, text search, threads, snippets and
//! changes — acts within his rights, copies across accounts, and loses everything at once
//! when the grant is revoked. Raw JMAP checks the error types.

mod common;

use common::{TestServer, TestUser, mail_request, mailbox_with_role};
use jmap_client::client::Client;
use jmap_client::core::query::{Filter, QueryResponse};
use jmap_client::core::response::{EmailGetResponse, EmailSetResponse, MailboxGetResponse};
use jmap_client::email::import::EmailImportResponse;
use jmap_client::mailbox::Role;
use serde_json::{Value, json};

const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";

async fn call(server: &TestServer, user: &TestUser, method: &str, arguments: Value) -> Value {
    calls(server, user, json!([[method, arguments, "c"]])).await[0].clone()
}

/// Runs `method_calls` as `user`; returns `[name, arguments]` per response.
async fn calls(server: &TestServer, user: &TestUser, method_calls: Value) -> Vec<Value> {
    let answer = server
        .post_api(
            user,
            &json!({"using": [CORE, MAIL], "methodCalls": method_calls}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["methodResponses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|response| json!([response[0], response[1]]))
        .collect()
}

/// A top-level Mailbox of alice's (raw Mailbox/set: jmap-client's asks for more capabilities
/// than mail).
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
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned()
}

// jmap-client's helper methods ask for every capability it knows; these ask for mail's.

async fn import(client: &Client, raw: Vec<u8>, mailbox_id: &str) -> String {
    let blob_id = client
        .upload(None, raw, Some("message/rfc822"))
        .await
        .expect("upload")
        .take_blob_id();
    let mut request = mail_request(client);
    let import = request
        .import_email()
        .email(blob_id)
        .mailbox_ids([mailbox_id]);
    let create_id = import.create_id();
    request
        .send_single::<EmailImportResponse>()
        .await
        .expect("Email/import answered")
        .created(&create_id)
        .expect("the Email was created")
        .take_id()
}

async fn get_email(client: &Client, id: &str) -> Option<jmap_client::email::Email> {
    let mut request = mail_request(client);
    request.get_email().ids([id]);
    request
        .send_single::<EmailGetResponse>()
        .await
        .expect("Email/get answered")
        .take_list()
        .pop()
}

async fn get_mailbox(client: &Client, id: &str) -> Option<jmap_client::mailbox::Mailbox> {
    let mut request = mail_request(client);
    request.get_mailbox().ids([id]);
    request
        .send_single::<MailboxGetResponse>()
        .await
        .expect("Mailbox/get answered")
        .take_list()
        .pop()
}

async fn query(
    client: &Client,
    filter: Option<Filter<jmap_client::email::query::Filter>>,
) -> Vec<String> {
    let mut request = mail_request(client);
    let query = request.query_email();
    if let Some(filter) = filter {
        query.filter(filter);
    }
    request
        .send_single::<QueryResponse>()
        .await
        .expect("Email/query answered")
        .take_ids()
}

async fn set_keyword(client: &Client, id: &str, keyword: &str) -> jmap_client::Result<()> {
    let mut request = mail_request(client);
    request.set_email().update(id).keyword(keyword, true);
    request
        .send_single::<EmailSetResponse>()
        .await?
        .updated(id)
        .map(|_| ())
}

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: carol@example.net\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.net>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

struct Shared {
    server: TestServer,
    alice: jmap_client::client::Client,
    team: String,
    private: String,
    team_email: String,
    private_email: String,
}

/// alice has "Team" (shared with bob: read, seen, add) and "Private" (not shared), one Email
/// in each; the private one's text is searchable.
async fn shared() -> Shared {
    let server = TestServer::start().await;
    let alice = server.jmap_client(server.alice()).await;
    let team = create_mailbox(&server, "Team").await;
    let private = create_mailbox(&server, "Private").await;
    let team_email = import(&alice, message("rota", "the team rota"), &team).await;
    let private_email = import(&alice, message("payslip", "salary confidential"), &private).await;
    let bob_id = server.bob().account_id.clone();
    let shared = call(
        &server,
        server.alice(),
        "Mailbox/set",
        json!({
            "accountId": server.alice().account_id,
            "update": {team.clone(): {
                format!("shareWith/{bob_id}"):
                    {"mayReadItems": true, "maySetSeen": true, "mayAddItems": true},
            }},
        }),
    )
    .await;
    assert_eq!(shared[1]["updated"][&team], Value::Null, "{shared}");
    Shared {
        server,
        alice,
        team,
        private,
        team_email,
        private_email,
    }
}

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
    let identities = server
        .post_api(
            server.bob(),
            &json!({
                "using": [CORE, MAIL, "urn:ietf:params:jmap:submission"],
                "methodCalls": [["Identity/get", {"accountId": alice_account}, "i"]],
            }),
        )
        .await
        .json()["methodResponses"][0]
        .clone();
    assert_eq!(identities[0], "error");
    assert_eq!(identities[1]["type"], "accountNotSupportedByMethod");
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
    let invalid = call(
        &server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {
            team.clone(): {"shareWith/a999999": {"mayReadItems": true}},
        }}),
    )
    .await;
    assert_eq!(invalid[1]["notUpdated"][&team]["type"], "invalidProperties");
    let invalid = call(
        &server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {
            team.clone(): {format!("shareWith/{bob_id}"): {"mayAdminister": true}},
        }}),
    )
    .await;
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
    let grant = call(
        &server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {other.clone(): {
            format!("shareWith/{bob_id}"): {"mayReadItems": true}}}}),
    )
    .await;
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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn push_socket(server: &TestServer, user: &TestUser) -> Socket {
    use futures_util::SinkExt;
    let session = server.session(user).await;
    let url = session["capabilities"]["urn:ietf:params:jmap:websocket"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", user.authorization().parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "jmap".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("ws");
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"@type": "WebSocketPushEnable"}).to_string(),
        ))
        .await
        .unwrap();
    // The listeners start with the enable message.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    socket
}

/// The next StateChange naming `account_id` within `wait`, if any.
async fn state_change_of(
    socket: &mut Socket,
    account_id: &str,
    wait: std::time::Duration,
) -> Option<Value> {
    use futures_util::StreamExt;
    tokio::time::timeout(wait, async {
        loop {
            let frame = socket.next().await?.ok()?;
            let text = frame.into_text().unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if value["@type"] == "StateChange" && value["changed"].get(account_id).is_some() {
                return Some(value);
            }
        }
    })
    .await
    .ok()
    .flatten()
}

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
    let grant = call(
        &server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {second.clone(): {
            format!("shareWith/{}", server.bob().account_id): {"mayReadItems": true}}}}),
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
