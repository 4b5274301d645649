//! Email, Thread and the Mailbox counts through the real `jmap-client` crate: import, get,
//! keyword and mailbox updates, destroy, threading with merges, query (indexed and general
//! paths), queryChanges, and the errors of bad input.

mod common;

use common::{TestServer, mail_request, mailbox_with_role};
use jmap_client::client::Client;
use jmap_client::core::query::Filter;
use jmap_client::core::query::QueryResponse;
use jmap_client::core::query_changes::QueryChangesResponse;
use jmap_client::core::response::{
    EmailChangesResponse, EmailGetResponse, EmailSetResponse, MailboxGetResponse,
    ThreadChangesResponse, ThreadGetResponse,
};
use jmap_client::email;
use jmap_client::email::import::EmailImportResponse;
use jmap_client::mailbox::Role;

/// Counts of a Mailbox: (totalEmails, unreadEmails, totalThreads, unreadThreads).
async fn counts(client: &Client, mailbox_id: &str) -> (usize, usize, usize, usize) {
    let mut request = mail_request(client);
    request.get_mailbox().ids([mailbox_id]);
    let mut response = request
        .send_single::<MailboxGetResponse>()
        .await
        .expect("Mailbox/get answered");
    let mailbox = response.take_list().pop().expect("the mailbox");
    (
        mailbox.total_emails(),
        mailbox.unread_emails(),
        mailbox.total_threads(),
        mailbox.unread_threads(),
    )
}

fn message(message_id: &str, references: &[&str], subject: &str, body: &str) -> Vec<u8> {
    let mut text = format!(
        "From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n\
         Subject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
    );
    if let Some(parent) = references.last() {
        text.push_str(&format!("In-Reply-To: <{parent}>\r\n"));
        let all: Vec<String> = references.iter().map(|id| format!("<{id}>")).collect();
        text.push_str(&format!("References: {}\r\n", all.join(" ")));
    }
    text.push_str(&format!("Content-Type: text/plain\r\n\r\n{body}\r\n"));
    text.into_bytes()
}

/// Uploads and imports one message; returns (emailId, threadId).
async fn import(
    client: &Client,
    raw: Vec<u8>,
    mailbox_id: &str,
    keywords: &[&str],
    received_at: i64,
) -> (String, String) {
    let blob_id = client
        .upload(None, raw, Some("message/rfc822"))
        .await
        .expect("upload")
        .take_blob_id();
    let mut request = mail_request(client);
    let import = request
        .import_email()
        .email(blob_id)
        .mailbox_ids([mailbox_id])
        .keywords(keywords.iter().copied())
        .received_at(received_at);
    let create_id = import.create_id();
    let mut email = request
        .send_single::<EmailImportResponse>()
        .await
        .expect("Email/import answered")
        .created(&create_id)
        .expect("the Email was created");
    let thread_id = email
        .take_thread_id()
        .expect("threadId in the created object");
    (email.take_id(), thread_id)
}

async fn thread_of(client: &Client, email_id: &str) -> String {
    let mut request = mail_request(client);
    request
        .get_email()
        .ids([email_id])
        .properties([email::Property::ThreadId]);
    let mut response = request
        .send_single::<EmailGetResponse>()
        .await
        .expect("Email/get answered");
    response
        .take_list()
        .pop()
        .expect("the email")
        .take_thread_id()
        .expect("threadId")
}

async fn query_ids(
    client: &Client,
    filter: Option<Filter<email::query::Filter>>,
    collapse_threads: bool,
) -> QueryResponse {
    let mut request = mail_request(client);
    let query = request.query_email();
    if let Some(filter) = filter {
        query.filter(filter);
    }
    query.sort([email::query::Comparator::received_at().descending()]);
    query.calculate_total(true);
    query.arguments().collapse_threads(collapse_threads);
    request
        .send_single::<QueryResponse>()
        .await
        .expect("Email/query answered")
}

#[tokio::test]
async fn imported_mail_is_counted_listed_and_read() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let archive = mailbox_with_role(&client, Role::Archive).await;

    let (first, _) = import(
        &client,
        message("1@x", &[], "Hello", "one"),
        &inbox,
        &[],
        1_000,
    )
    .await;
    let (second, _) = import(
        &client,
        message("2@x", &[], "Other", "two"),
        &inbox,
        &["$seen"],
        2_000,
    )
    .await;
    let (third, _) = import(
        &client,
        message("3@x", &["1@x"], "Re: Hello", "three"),
        &inbox,
        &[],
        3_000,
    )
    .await;
    // Three Emails, two Threads (the reply joined the first), two unread Emails in one Thread.
    assert_eq!(counts(&client, &inbox).await, (3, 2, 2, 1));

    let all = query_ids(
        &client,
        Some(email::query::Filter::in_mailbox(&inbox).into()),
        false,
    )
    .await;
    assert_eq!(all.ids(), [third.clone(), second.clone(), first.clone()]);
    assert_eq!(all.total(), Some(3));
    let unread = query_ids(
        &client,
        Some(Filter::and([
            email::query::Filter::in_mailbox(&inbox),
            email::query::Filter::not_keyword("$seen"),
        ])),
        false,
    )
    .await;
    assert_eq!(unread.ids(), [third.clone(), first.clone()]);
    assert_eq!(unread.total(), Some(2));
    let collapsed = query_ids(
        &client,
        Some(email::query::Filter::in_mailbox(&inbox).into()),
        true,
    )
    .await;
    assert_eq!(collapsed.ids(), [third.clone(), second.clone()]);
    assert_eq!(collapsed.total(), Some(2));

    // Mark the first read, move the second to the archive: counts follow at once.
    let mut request = mail_request(&client);
    let set = request.set_email();
    set.update(&first).keyword("$seen", true);
    set.update(&second).mailbox_ids([archive.as_str()]);
    let response = request
        .send_single::<EmailSetResponse>()
        .await
        .expect("Email/set answered");
    assert!(
        response
            .not_updated_ids()
            .is_none_or(|mut ids| ids.next().is_none())
    );
    assert_eq!(counts(&client, &inbox).await, (2, 1, 1, 1));
    assert_eq!(counts(&client, &archive).await, (1, 0, 1, 0));

    // A general-path query (size sort) agrees with the store.
    let mut request = mail_request(&client);
    request
        .query_email()
        .filter(email::query::Filter::has_keyword("$seen"))
        .sort([email::query::Comparator::received_at()]);
    let seen = request.send_single::<QueryResponse>().await.expect("query");
    assert_eq!(seen.ids(), [first.clone(), second.clone()]);

    // Destroy: counts drop, the Thread loses a member.
    let mut request = mail_request(&client);
    request.set_email().destroy([third.as_str()]);
    request
        .send_single::<EmailSetResponse>()
        .await
        .expect("destroy");
    assert_eq!(counts(&client, &inbox).await, (1, 0, 1, 0));
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_linking_two_threads_merges_them_and_reports_every_change() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;

    // A and C share no Message-ID yet: two Threads.
    let (a, thread_a) = import(
        &client,
        message("a@x", &[], "Plan", "a"),
        &inbox,
        &[],
        1_000,
    )
    .await;
    let (c, thread_c) = import(
        &client,
        message("c@x", &["b@x"], "Re: Plan", "c"),
        &inbox,
        &[],
        3_000,
    )
    .await;
    assert_ne!(thread_a, thread_c);
    assert_eq!(counts(&client, &inbox).await.2, 2);

    let mut request = mail_request(&client);
    request.changes_email("s0");
    let before_email = request
        .send_single::<EmailChangesResponse>()
        .await
        .expect("Email/changes")
        .take_new_state();
    let mut request = mail_request(&client);
    request.changes_thread("s0");
    let before_thread = request
        .send_single::<ThreadChangesResponse>()
        .await
        .expect("Thread/changes")
        .take_new_state();

    // B replies to A and is the parent C referenced: one Thread now.
    let (b, thread_b) = import(
        &client,
        message("b@x", &["a@x"], "Re: Plan", "b"),
        &inbox,
        &[],
        2_000,
    )
    .await;
    let merged = thread_of(&client, &a).await;
    assert_eq!(thread_of(&client, &c).await, merged);
    assert_eq!(thread_b, merged);
    assert_eq!(counts(&client, &inbox).await, (3, 3, 1, 1));

    let mut request = mail_request(&client);
    request.get_thread().ids([merged.as_str()]);
    let mut threads = request
        .send_single::<ThreadGetResponse>()
        .await
        .expect("Thread/get");
    let thread = threads.take_list().pop().expect("the merged thread");
    assert_eq!(thread.email_ids(), [a.clone(), b.clone(), c.clone()]);

    // The merge moved one Email to another Thread and destroyed a Thread: both are reported.
    let mut request = mail_request(&client);
    request.changes_email(before_email);
    let email_changes = request
        .send_single::<EmailChangesResponse>()
        .await
        .expect("changes");
    assert_eq!(email_changes.created(), std::slice::from_ref(&b));
    let moved = if merged == thread_a { &c } else { &a };
    assert!(
        email_changes.updated().contains(moved),
        "{:?}",
        email_changes.updated()
    );
    let mut request = mail_request(&client);
    request.changes_thread(before_thread);
    let thread_changes = request
        .send_single::<ThreadChangesResponse>()
        .await
        .expect("changes");
    let absorbed = if merged == thread_a {
        &thread_c
    } else {
        &thread_a
    };
    assert_eq!(thread_changes.destroyed(), std::slice::from_ref(absorbed));
    assert_eq!(thread_changes.updated(), std::slice::from_ref(&merged));
    server.shutdown().await;
}

#[tokio::test]
async fn query_changes_reports_what_a_client_needs_to_update_its_list() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let (first, _) = import(
        &client,
        message("q1@x", &[], "One", "1"),
        &inbox,
        &[],
        1_000,
    )
    .await;
    let (second, _) = import(
        &client,
        message("q2@x", &[], "Two", "2"),
        &inbox,
        &[],
        2_000,
    )
    .await;
    let before = query_ids(
        &client,
        Some(email::query::Filter::in_mailbox(&inbox).into()),
        false,
    )
    .await;
    assert_eq!(before.ids(), [second.clone(), first.clone()]);

    let (third, _) = import(
        &client,
        message("q3@x", &[], "Three", "3"),
        &inbox,
        &[],
        3_000,
    )
    .await;
    let mut request = mail_request(&client);
    request.set_email().destroy([first.as_str()]);
    request
        .send_single::<EmailSetResponse>()
        .await
        .expect("destroy");

    let mut request = mail_request(&client);
    let changes = request.query_email_changes(before.query_state());
    changes.filter(email::query::Filter::in_mailbox(&inbox));
    changes.sort([email::query::Comparator::received_at().descending()]);
    changes.calculate_total(true);
    let response = request
        .send_single::<QueryChangesResponse>()
        .await
        .expect("Email/queryChanges");
    assert_eq!(response.removed(), std::slice::from_ref(&first));
    let added: Vec<(&str, usize)> = response
        .added()
        .iter()
        .map(|item| (item.id(), item.index()))
        .collect();
    assert_eq!(added, [(third.as_str(), 0)]);
    assert_eq!(response.total(), Some(2));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_the_rfc_errors() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let (email_id, _) = import(&client, message("e@x", &[], "E", "e"), &inbox, &[], 1_000).await;

    // Immutable property, bad keyword, unknown mailbox, no mailbox at all.
    let mut request = mail_request(&client);
    let set = request.set_email();
    set.update(&email_id).subject("changed");
    let mut response = request
        .send_single::<EmailSetResponse>()
        .await
        .expect("answered");
    let error = response.updated(&email_id).expect_err("not updated");
    assert!(error.to_string().contains("invalidProperties"), "{error}");

    let mut request = mail_request(&client);
    request
        .set_email()
        .update(&email_id)
        .keyword("bad keyword", true);
    let mut response = request
        .send_single::<EmailSetResponse>()
        .await
        .expect("answered");
    assert!(response.updated(&email_id).is_err());

    let mut request = mail_request(&client);
    request.set_email().update(&email_id).mailbox_ids(["mzzzz"]);
    let mut response = request
        .send_single::<EmailSetResponse>()
        .await
        .expect("answered");
    assert!(response.updated(&email_id).is_err());
    assert_eq!(
        counts(&client, &inbox).await.0,
        1,
        "a refused update changes nothing"
    );

    // Unsupported filter and sort are method errors.
    let mut request = mail_request(&client);
    request
        .query_email()
        .filter(email::query::Filter::in_thread("t1"));
    let error = request
        .send_single::<QueryResponse>()
        .await
        .expect_err("inThread is not RFC 8621");
    assert!(
        format!("{error:?}").contains("UnsupportedFilter"),
        "{error:?}"
    );
    let mut request = mail_request(&client);
    request.query_email().sort([email::query::Comparator::cc()]);
    let error = request
        .send_single::<QueryResponse>()
        .await
        .expect_err("cc is not a sort");
    assert!(
        format!("{error:?}").contains("UnsupportedSort"),
        "{error:?}"
    );

    // A blob that is not there.
    let mut request = mail_request(&client);
    let import = request
        .import_email()
        .email("G0000000000000000000000000000000000000000000000000000000000000000")
        .mailbox_ids([inbox.as_str()]);
    let create_id = import.create_id();
    let response = request
        .send_single::<EmailImportResponse>()
        .await
        .expect("answered");
    let mut response = response;
    let error = response.created(&create_id).expect_err("no such blob");
    assert!(error.to_string().contains("blobNotFound"), "{error}");
    server.shutdown().await;
}

#[tokio::test]
async fn text_filters_and_combinations_find_the_right_mail() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let (budget, _) = import(
        &client,
        message("t1@x", &[], "Quarterly budget", "numbers attached"),
        &inbox,
        &[],
        1_000,
    )
    .await;
    let (party, _) = import(
        &client,
        message("t2@x", &[], "Garden party", "bring a salad"),
        &inbox,
        &["$seen"],
        2_000,
    )
    .await;
    let search = |filter: Filter<email::query::Filter>| {
        let client = &client;
        async move {
            let mut request = mail_request(client);
            request
                .query_email()
                .filter(filter)
                .sort([email::query::Comparator::received_at()]);
            request
                .send_single::<QueryResponse>()
                .await
                .expect("Email/query answered")
                .take_ids()
        }
    };
    assert_eq!(
        search(email::query::Filter::subject("BUDGET").into()).await,
        vec![budget.clone()]
    );
    assert_eq!(
        search(email::query::Filter::body("salad").into()).await,
        vec![party.clone()]
    );
    assert_eq!(
        search(email::query::Filter::from("bob@example.test").into()).await,
        vec![budget.clone(), party.clone()]
    );
    assert_eq!(
        search(email::query::Filter::text("numbers").into()).await,
        vec![budget.clone()]
    );
    assert_eq!(
        search(email::query::Filter::header("Message-ID", Some("t2@x")).into()).await,
        vec![party.clone()]
    );
    // Text combined with structural conditions, under AND / OR / NOT.
    assert_eq!(
        search(Filter::and([
            email::query::Filter::text("bob"),
            email::query::Filter::not_keyword("$seen"),
        ]))
        .await,
        vec![budget.clone()]
    );
    assert_eq!(
        search(Filter::or([
            email::query::Filter::subject("garden"),
            email::query::Filter::min_size(1_000_000),
        ]))
        .await,
        vec![party.clone()]
    );
    assert_eq!(
        search(Filter::not([email::query::Filter::body("salad")])).await,
        vec![budget.clone()]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn email_copy_needs_two_different_accounts() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let (email_id, _) = import(
        &client,
        message("cp@x", &[], "Copy", "c"),
        &inbox,
        &[],
        1_000,
    )
    .await;
    let account = client.default_account_id().to_owned();
    let mut request = mail_request(&client);
    request
        .copy_email(&account)
        .create(&email_id)
        .mailbox_id(&inbox, true);
    let error = request
        .send_single::<jmap_client::core::response::EmailCopyResponse>()
        .await
        .expect_err("copying into the same account is invalidArguments");
    assert!(
        format!("{error:?}").contains("InvalidArguments"),
        "{error:?}"
    );
    server.shutdown().await;
}

/// RFC 8621 §4.8: importing a blob that is not a message is `invalidEmail`, as Email/parse of
/// the same blob is `notParsable` (RFC 8621 §4.9), never an empty Email.
#[tokio::test]
async fn importing_a_blob_that_is_not_a_message_is_invalid_email() {
    let server = TestServer::start().await;
    let alice = server.alice().clone();
    let client = server.jmap_client(&alice).await;
    let inbox = mailbox_with_role(&client, Role::Inbox).await;
    let uploaded = server
        .upload(&alice, b"this is not an email".to_vec(), "text/plain")
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    let blob_id = uploaded.json()["blobId"]
        .as_str()
        .expect("blobId")
        .to_owned();
    let account = alice.account_id.clone();
    let answer = server
        .post_api(
            &alice,
            &serde_json::json!({
                "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                "methodCalls": [
                    ["Email/parse", {"accountId": account, "blobIds": [blob_id]}, "p"],
                    ["Email/import", {"accountId": account, "emails": {
                        "k": {"blobId": blob_id, "mailboxIds": {inbox.as_str(): true}}
                    }}, "i"],
                ],
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let responses = &body["methodResponses"];
    assert_eq!(responses[0][1]["notParsable"][0], blob_id, "{body}");
    let import = &responses[1][1];
    assert_eq!(import["created"], serde_json::Value::Null, "{body}");
    assert_eq!(import["notCreated"]["k"]["type"], "invalidEmail", "{body}");
    assert_eq!(counts(&client, &inbox).await.0, 0, "nothing was imported");
    server.shutdown().await;
}
