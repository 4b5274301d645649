//! Mailbox counts and the rules that involve Emails: exact counts after imports,
//! count-only `updatedProperties`, queryChanges that ignore count changes, mailboxHasEmail and
//! onDestroyRemoveEmails, and the trash role's effect on unreadThreads.

use jmap_client::core::response::{MailboxGetResponse, MailboxSetResponse};
use jmap_client::mailbox::query::Comparator;
use jmap_client::mailbox::{Mailbox, Role};
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::{all_mailboxes, call, connect, create, mail_request, mailbox_set, set_error};

/// Uploads a small message and imports it into `mailbox_ids`; returns the Email id.
async fn import(server: &TestServer, subject: &str, mailbox_ids: &[&str], seen: bool) -> String {
    let message = format!(
        "From: a@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.test>\r\n\r\nHello.\r\n"
    );
    import_message(server, message, mailbox_ids, seen).await
}

async fn import_message(
    server: &TestServer,
    message: String,
    mailbox_ids: &[&str],
    seen: bool,
) -> String {
    let uploaded = server
        .upload(server.alice(), message.into_bytes(), "message/rfc822")
        .await
        .json();
    let blob_id = uploaded["blobId"].as_str().expect("blobId").to_owned();
    let mailbox_map: serde_json::Map<String, Value> = mailbox_ids
        .iter()
        .map(|id| ((*id).to_owned(), Value::Bool(true)))
        .collect();
    let keywords = if seen {
        json!({"$seen": true})
    } else {
        json!({})
    };
    let arguments = json!({"accountId": server.alice().account_id, "emails": {"e": {
        "blobId": blob_id, "mailboxIds": mailbox_map, "keywords": keywords}}});
    let (name, response) = call(server, "Email/import", arguments).await;
    assert_eq!(name, "Email/import", "{response}");
    response["created"]["e"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("imported: {response}"))
        .to_owned()
}

async fn mailbox_json(server: &TestServer, id: &str) -> Value {
    let arguments = json!({"accountId": server.alice().account_id, "ids": [id]});
    let (_, response) = call(server, "Mailbox/get", arguments).await;
    response["list"][0].clone()
}

#[tokio::test]
async fn counts_follow_emails_and_changes_report_count_only_updates() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let receipts = create(&client, "Receipts", None).await;
    let inbox = all_mailboxes(&client)
        .await
        .into_iter()
        .find(|mailbox| mailbox.role() == Role::Inbox)
        .and_then(|mailbox| mailbox.id().map(str::to_owned))
        .expect("inbox");
    let mut request = mail_request(&client);
    request.get_mailbox().ids([receipts.as_str()]);
    let before: MailboxGetResponse = request.send_single().await.expect("get");
    let state = before.state().to_owned();
    let mut request = mail_request(&client);
    request.query_mailbox().sort([Comparator::name()]);
    let mut query: jmap_client::core::query::QueryResponse =
        request.send_single().await.expect("query");
    let query_state = query.take_query_state();

    import(&server, "one", &[&receipts], false).await;
    import(&server, "two", &[&receipts, &inbox], true).await;
    let counted = mailbox_json(&server, &receipts).await;
    assert_eq!(counted["totalEmails"], 2, "{counted}");
    assert_eq!(counted["unreadEmails"], 1, "{counted}");
    assert_eq!(counted["totalThreads"], 2, "{counted}");
    assert_eq!(counted["unreadThreads"], 1, "{counted}");

    // Only counts moved since `state`: updatedProperties names them (RFC 8621 §2.2).
    let mut request = mail_request(&client);
    request.changes_mailbox(&state);
    let changes: jmap_client::core::changes::ChangesResponse<Mailbox> =
        request.send_single().await.expect("changes");
    assert!(
        changes.updated().contains(&receipts),
        "{:?}",
        changes.updated()
    );
    let mut properties: Vec<String> = changes
        .arguments()
        .updated_properties()
        .expect("count-only changes name the counts")
        .iter()
        .map(ToString::to_string)
        .collect();
    properties.sort_unstable();
    assert_eq!(
        properties,
        [
            "totalEmails",
            "totalThreads",
            "unreadEmails",
            "unreadThreads"
        ]
    );

    // Counts are not part of any filter or sort: the query results did not move.
    let mut request = mail_request(&client);
    request
        .query_mailbox_changes(&query_state)
        .sort([Comparator::name()]);
    let query_changes: jmap_client::core::query_changes::QueryChangesResponse =
        request.send_single().await.expect("queryChanges");
    assert!(
        query_changes.removed().is_empty(),
        "{:?}",
        query_changes.removed()
    );
    assert!(query_changes.added().is_empty());

    // A rename in the window makes it null again.
    let mut request = mail_request(&client);
    request.set_mailbox().update(&receipts).name("Bills");
    request
        .send_single::<MailboxSetResponse>()
        .await
        .expect("rename");
    let mut request = mail_request(&client);
    request.changes_mailbox(&state);
    let changes: jmap_client::core::changes::ChangesResponse<Mailbox> =
        request.send_single().await.expect("changes");
    assert_eq!(changes.arguments().updated_properties(), None);
    server.shutdown().await;
}

#[tokio::test]
async fn destroying_a_mailbox_with_emails_needs_on_destroy_remove_emails() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let receipts = create(&client, "Receipts", None).await;
    let inbox = all_mailboxes(&client)
        .await
        .into_iter()
        .find(|mailbox| mailbox.role() == Role::Inbox)
        .and_then(|mailbox| mailbox.id().map(str::to_owned))
        .expect("inbox");
    let only_here = import(&server, "only-here", &[&receipts], false).await;
    let also_inbox = import(&server, "also-inbox", &[&receipts, &inbox], false).await;

    let response = mailbox_set(&server, json!({"destroy": [receipts]})).await;
    assert_eq!(
        set_error(&response, "notDestroyed", &receipts).0,
        "mailboxHasEmail"
    );
    let mut request = mail_request(&client);
    request
        .set_mailbox()
        .destroy([receipts.as_str()])
        .arguments()
        .on_destroy_remove_emails(true);
    let mut response: MailboxSetResponse = request.send_single().await.expect("set");
    response
        .destroyed(&receipts)
        .expect("destroyed with its Emails");

    // The Email only in it is gone; the other one stays, in the inbox only.
    let arguments = json!({"accountId": server.alice().account_id,
        "ids": [only_here, also_inbox], "properties": ["mailboxIds"]});
    let (_, emails) = call(&server, "Email/get", arguments).await;
    assert_eq!(emails["notFound"], json!([only_here]), "{emails}");
    assert_eq!(
        emails["list"][0]["mailboxIds"],
        json!({inbox.clone(): true}),
        "{emails}"
    );
    let inbox_now = mailbox_json(&server, &inbox).await;
    assert_eq!(inbox_now["totalEmails"], 1, "{inbox_now}");
    server.shutdown().await;
}

async fn mailbox_with_role(server: &TestServer, role: &str) -> String {
    let arguments = json!({"accountId": server.alice().account_id, "filter": {"role": role}});
    let (_, response) = call(server, "Mailbox/query", arguments).await;
    response["ids"][0]
        .as_str()
        .expect("a Mailbox with the role")
        .to_owned()
}

/// unreadThreads ignores Emails only in the trash for other Mailboxes (RFC 8621 §2): moving
/// the trash role to a Mailbox that holds Emails changes other Mailboxes' counts, exactly.
#[tokio::test]
async fn moving_the_trash_role_keeps_unread_threads_exact() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    let inbox = mailbox_with_role(&server, "inbox").await;
    let old_trash = mailbox_with_role(&server, "trash").await;
    let bin = create(&client, "Bin", None).await;
    // One Thread: an unread message in Bin, a read reply in the inbox.
    import(&server, "one", &[&bin], false).await;
    let reply = "From: b@example.test\r\nTo: alice@example.test\r\nSubject: Re: one\r\n\
                 Message-ID: <reply@example.test>\r\nIn-Reply-To: <one@example.test>\r\n\
                 References: <one@example.test>\r\n\r\nHi.\r\n"
        .to_owned();
    import_message(&server, reply, &[&inbox], true).await;
    let unread_threads = |mailbox: Value| mailbox["unreadThreads"].clone();
    assert_eq!(unread_threads(mailbox_json(&server, &inbox).await), 1);

    let response = mailbox_set(
        &server,
        json!({"update": {old_trash.clone(): {"role": null}, bin.clone(): {"role": "trash"}}}),
    )
    .await;
    assert!(response["notUpdated"].is_null(), "{response}");
    // The only unread Email is now in the trash: ignored for the inbox, counted for Bin.
    assert_eq!(unread_threads(mailbox_json(&server, &inbox).await), 0);
    assert_eq!(unread_threads(mailbox_json(&server, &bin).await), 1);

    let response = mailbox_set(&server, json!({"update": {bin.clone(): {"role": null}}})).await;
    assert!(response["notUpdated"].is_null(), "{response}");
    assert_eq!(unread_threads(mailbox_json(&server, &inbox).await), 1);
    assert_eq!(unread_threads(mailbox_json(&server, &bin).await), 1);
    server.shutdown().await;
}
