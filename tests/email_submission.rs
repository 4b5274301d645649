//! EmailSubmission (RFC 8621 §7) through the real `jmap-client` crate, and raw JSON where a
//! SetError member (maxRecipients, invalidRecipients…) is beyond the client's types: the
//! envelope derived from the headers, every create error, onSuccessUpdateEmail moving the
//! draft to Sent, undo send (cancel while held by FUTURERELEASE, cannotUnsend after),
//! /changes, /query, /queryChanges, and deliveryStatus updated by the outbound actor's
//! delivery reports (`mail::submission::apply_delivery_report`).
//!
//! Submissions that should stay in the queue are held with `HOLDFOR` so the outbound actor
//! leaves them alone while the test looks at them.

mod common;

use common::{TestServer, TestUser, mailbox_with_role, request_using};
use jmap_client::URI;
use jmap_client::client::Client;
use jmap_client::core::query::QueryResponse;
use jmap_client::core::request::Request;
use jmap_client::core::response::{EmailGetResponse, EmailSetResponse};
use jmap_client::core::set::{SetErrorType, SetObject};
use jmap_client::email_submission::{self, Address, Delivered, UndoStatus};
use jmap_client::mailbox::Role;
use serde_json::{Value, json};
use tern::jmap::types::Id;
use tern::mail::submission::{
    Delivered as StoredDelivered, DeliveryReport, RecipientReport, apply_delivery_report,
};
use tern::store::blob::BlobHash;
use tern::store::commit::commit_account;

const USING: [&str; 3] = [
    "urn:ietf:params:jmap:core",
    "urn:ietf:params:jmap:mail",
    "urn:ietf:params:jmap:submission",
];

fn build(client: &Client) -> Request<'_> {
    request_using(client, &[URI::Core, URI::Mail, URI::Submission])
}

async fn identity_id(client: &Client) -> String {
    let mut request = build(client);
    request.get_identity();
    request
        .send_get_identity()
        .await
        .expect("Identity/get")
        .take_list()
        .pop()
        .expect("the default identity")
        .take_id()
}

/// A draft in Drafts with `$draft`, created with Email/set; returns its id.
async fn draft(client: &Client, drafts: &str, from: &str, to: &[&str], bcc: &[&str]) -> String {
    let mut request = build(client);
    let email = request
        .set_email()
        .create()
        .mailbox_ids([drafts])
        .keywords(["$draft", "$seen"])
        .from([from])
        .subject("status")
        .body_value("t".to_owned(), "All good.")
        .text_body(jmap_client::email::EmailBodyPart::new().part_id("t"));
    if !to.is_empty() {
        email.to(to.iter().copied());
    }
    if !bcc.is_empty() {
        email.bcc(bcc.iter().copied());
    }
    let create_id = email.create_id().expect("creation id");
    request
        .send_single::<EmailSetResponse>()
        .await
        .expect("Email/set")
        .created(&create_id)
        .expect("draft created")
        .take_id()
}

/// Sends one raw EmailSubmission/set create; returns the method response's arguments.
async fn raw_create(server: &TestServer, user: &TestUser, submission: Value) -> Value {
    let answer = server
        .post_api(
            user,
            &json!({"using": USING, "methodCalls": [["EmailSubmission/set", {
                "accountId": user.account_id, "create": {"k": submission},
            }, "0"]]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["methodResponses"][0][1].clone()
}

fn held(from: &str, to: &[&str]) -> Value {
    json!({
        "mailFrom": {"email": from, "parameters": {"HOLDFOR": "600"}},
        "rcptTo": to.iter().map(|email| json!({"email": email})).collect::<Vec<_>>(),
    })
}

fn store_id(id: &str, prefix: char) -> u64 {
    Id::parse(id)
        .ok()
        .and_then(|id| id.to_number(prefix))
        .expect("an id of ours")
}

#[tokio::test]
async fn the_session_advertises_delayed_send_and_extensions() {
    let server = TestServer::start().await;
    let session = server.session(server.alice()).await;
    let account = &server.alice().account_id;
    let submission =
        &session["accounts"][account]["accountCapabilities"]["urn:ietf:params:jmap:submission"];
    assert!(submission["maxDelayedSend"].as_u64().unwrap_or(0) >= 86_400);
    for extension in ["FUTURERELEASE", "SIZE", "DSN"] {
        assert!(
            submission["submissionExtensions"][extension].is_array(),
            "{extension} in {submission}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_send_derives_the_envelope_and_moves_the_draft_to_sent() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let drafts = mailbox_with_role(&client, Role::Drafts).await;
    let sent = mailbox_with_role(&client, Role::Sent).await;
    let identity = identity_id(&client).await;
    let email_id = draft(
        &client,
        &drafts,
        &alice.email,
        &["bob@example.org", "Carol@example.org"],
        &["carol@example.org", "dave@example.net"],
    )
    .await;

    // RFC 8621 §7.5: the common "send, then move to Sent and clear $draft".
    let mut request = build(&client);
    let set = request.set_email_submission();
    let create_id = set
        .create()
        .identity_id(identity.as_str())
        .email_id(email_id.as_str())
        .create_id()
        .expect("creation id");
    // jmap-client writes a removal as `false` (RFC 8620 §5.3 wants null), so the patch
    // replaces both properties whole.
    set.arguments()
        .on_success_update_email(create_id.as_str())
        .mailbox_ids([sent.as_str()])
        .keywords(["$seen"]);
    let response = request.send().await.expect("EmailSubmission/set");
    let mut responses = response.unwrap_method_responses();
    assert_eq!(
        responses.len(),
        2,
        "the implicit Email/set response follows"
    );
    let mut email_set = responses
        .pop()
        .expect("Email/set")
        .unwrap_set_email()
        .expect("Email/set");
    let mut submission_set = responses
        .pop()
        .expect("EmailSubmission/set")
        .unwrap_set_email_submission()
        .expect("EmailSubmission/set");
    let created = submission_set.created(&create_id).expect("created");
    let submission_id = created.id().expect("id").to_owned();
    // The derived envelope (RFC 8621 §7.5): From, and To+Cc+Bcc deduplicated.
    assert_eq!(
        created.mail_from().map(|address| address.email()),
        Some(alice.email.as_str())
    );
    let rcpt: Vec<&str> = created
        .rcpt_to()
        .expect("rcptTo")
        .iter()
        .map(|address| address.email())
        .collect();
    assert_eq!(
        rcpt,
        ["bob@example.org", "Carol@example.org", "dave@example.net"]
    );
    assert!(created.thread_id().is_some());
    assert!(created.send_at().is_some());
    email_set.updated(&email_id).expect("the draft was updated");

    let mut request = build(&client);
    request.get_email().ids([email_id.as_str()]).properties([
        jmap_client::email::Property::MailboxIds,
        jmap_client::email::Property::Keywords,
    ]);
    let email = request
        .send_single::<EmailGetResponse>()
        .await
        .expect("Email/get")
        .take_list()
        .pop()
        .expect("the sent Email");
    assert_eq!(email.mailbox_ids(), [sent.as_str()]);
    assert!(!email.keywords().contains(&"$draft"));

    let mut request = build(&client);
    request.get_email_submission().ids([submission_id.as_str()]);
    let submission = request
        .send_get_email_submission()
        .await
        .expect("EmailSubmission/get")
        .take_list()
        .pop()
        .expect("the submission");
    assert_eq!(submission.email_id(), Some(email_id.as_str()));
    assert_eq!(submission.identity_id(), Some(identity.as_str()));
    let statuses = submission.delivery_status().expect("deliveryStatus");
    assert_eq!(statuses.len(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn on_success_destroy_email_and_create_errors() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let drafts = mailbox_with_role(&client, Role::Drafts).await;
    let identity = identity_id(&client).await;
    let to_bob = ["bob@example.org"];

    // onSuccessDestroyEmail: the Email is destroyed once the submission exists.
    let email_id = draft(&client, &drafts, &alice.email, &to_bob, &[]).await;
    let answer = server
        .post_api(
            alice,
            &json!({"using": USING, "methodCalls": [["EmailSubmission/set", {
                "accountId": alice.account_id,
                "create": {"k": {"identityId": identity, "emailId": email_id,
                                 "envelope": held(&alice.email, &to_bob)}},
                "onSuccessDestroyEmail": ["#k"],
            }, "0"]]}),
        )
        .await;
    let responses = answer.json()["methodResponses"].clone();
    assert_eq!(responses[1][0], "Email/set", "{responses}");
    assert_eq!(responses[1][1]["destroyed"], json!([email_id]));
    assert_eq!(responses[1][2], "0", "the implicit call has the call's id");

    let email_id = draft(&client, &drafts, &alice.email, &to_bob, &[]).await;
    let create = |extra: Value| {
        let mut object = json!({"identityId": identity, "emailId": email_id});
        for (key, value) in extra.as_object().expect("object") {
            object[key] = value.clone();
        }
        object
    };
    let not_created = |response: &Value| response["notCreated"]["k"].clone();

    let many: Vec<String> = (0..101).map(|n| format!("r{n}@example.org")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let error = not_created(
        &raw_create(
            &server,
            alice,
            create(json!({"envelope": held(&alice.email, &many)})),
        )
        .await,
    );
    assert_eq!(error["type"], "tooManyRecipients");
    assert_eq!(error["maxRecipients"], 100);

    let error = not_created(
        &raw_create(
            &server,
            alice,
            create(json!({"envelope": held(&alice.email, &[])})),
        )
        .await,
    );
    assert_eq!(error["type"], "noRecipients");

    let error = not_created(
        &raw_create(
            &server,
            alice,
            create(json!({"envelope": held(&alice.email, &["bob@example.org", "bob"])})),
        )
        .await,
    );
    assert_eq!(error["type"], "invalidRecipients");
    assert_eq!(error["invalidRecipients"], json!(["bob"]));

    let error = not_created(
        &raw_create(
            &server,
            alice,
            create(json!({"envelope": held("boss@example.test", &to_bob)})),
        )
        .await,
    );
    assert_eq!(error["type"], "forbiddenMailFrom");

    let too_long = json!({"mailFrom": {"email": alice.email, "parameters": {"HOLDFOR": "99999999"}},
                          "rcptTo": [{"email": "bob@example.org"}]});
    let error =
        not_created(&raw_create(&server, alice, create(json!({"envelope": too_long}))).await);
    assert_eq!(error["type"], "invalidProperties");
    assert_eq!(error["properties"], json!(["envelope"]));

    let error =
        not_created(&raw_create(&server, alice, create(json!({"identityId": "i999"}))).await);
    assert_eq!(error["type"], "invalidProperties");
    assert_eq!(error["properties"], json!(["identityId"]));
    let error = not_created(&raw_create(&server, alice, create(json!({"emailId": "e999"}))).await);
    assert_eq!(error["properties"], json!(["emailId"]));
    let error =
        not_created(&raw_create(&server, alice, create(json!({"undoStatus": "final"}))).await);
    assert_eq!(error["properties"], json!(["undoStatus"]));
    let error = not_created(
        &raw_create(
            &server,
            alice,
            create(json!({"sendAt": "2030-01-01T00:00:00Z"})),
        )
        .await,
    );
    assert_eq!(error["properties"], json!(["sendAt"]));

    // forbiddenFrom: a From the Identity may not use.
    let forged = draft(&client, &drafts, "mallory@example.test", &to_bob, &[]).await;
    let error = not_created(
        &raw_create(
            &server,
            alice,
            json!({"identityId": identity, "emailId": forged}),
        )
        .await,
    );
    assert_eq!(error["type"], "forbiddenFrom");

    // noRecipients when the headers name nobody and no envelope is given.
    let lonely = draft(&client, &drafts, &alice.email, &[], &[]).await;
    let error = not_created(
        &raw_create(
            &server,
            alice,
            json!({"identityId": identity, "emailId": lonely}),
        )
        .await,
    );
    assert_eq!(error["type"], "noRecipients");

    // invalidEmail: a message without From (imported, since Email/set always writes one).
    let raw = b"To: bob@example.org\r\nSubject: anonymous\r\n\r\nhello\r\n".to_vec();
    let blob = client
        .upload(None, raw, None)
        .await
        .expect("upload")
        .take_blob_id();
    let mut request = build(&client);
    let import = request
        .import_email()
        .email(blob)
        .mailbox_ids([drafts.as_str()]);
    let import_id = import.create_id();
    let anonymous = request
        .send_single::<jmap_client::email::import::EmailImportResponse>()
        .await
        .expect("Email/import")
        .created(&import_id)
        .expect("imported")
        .take_id();
    let error = not_created(
        &raw_create(
            &server,
            alice,
            json!({"identityId": identity, "emailId": anonymous}),
        )
        .await,
    );
    assert_eq!(error["type"], "invalidEmail");
    assert_eq!(error["properties"], json!(["from"]));

    // The same through jmap-client's error type.
    let mut request = build(&client);
    let set = request.set_email_submission();
    let create_id = set
        .create()
        .identity_id(identity.as_str())
        .email_id(forged.as_str())
        .create_id()
        .expect("creation id");
    let error = request
        .send_single::<jmap_client::core::response::EmailSubmissionSetResponse>()
        .await
        .expect("EmailSubmission/set")
        .created(&create_id)
        .expect_err("refused");
    match error {
        jmap_client::Error::Set(error) => assert_eq!(error.error(), &SetErrorType::ForbiddenFrom),
        other => panic!("unexpected {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn undo_send_cancels_while_held_and_not_after_delivery_started() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let drafts = mailbox_with_role(&client, Role::Drafts).await;
    let identity = identity_id(&client).await;
    let email_id = draft(&client, &drafts, &alice.email, &["bob@example.org"], &[]).await;

    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut request = build(&client);
        let create_id = request
            .set_email_submission()
            .create()
            .identity_id(identity.as_str())
            .email_id(email_id.as_str())
            .envelope(
                Address::new(alice.email.as_str()).parameter("HOLDFOR", Some("600")),
                [Address::new("bob@example.org")],
            )
            .create_id()
            .expect("creation id");
        let created = request
            .send_single::<jmap_client::core::response::EmailSubmissionSetResponse>()
            .await
            .expect("EmailSubmission/set")
            .created(&create_id)
            .expect("created");
        assert_eq!(created.undo_status(), Some(&UndoStatus::Pending));
        let delay = created.send_at().expect("sendAt") - chrono_now();
        assert!(
            (590..=610).contains(&delay),
            "sendAt is 600 s away: {delay}"
        );
        ids.push(created.id().expect("id").to_owned());
    }
    let queued = |server: &TestServer| {
        let store = server.running().store().clone();
        async move {
            store
                .read(|tx| Box::pin(async move { tern::outbound::queue::list(tx, 1000).await }))
                .await
                .expect("queue list")
                .into_iter()
                .filter_map(|message| message.submission_id)
                .collect::<Vec<u64>>()
        }
    };
    let first = store_id(&ids[0], 's');
    assert!(queued(&server).await.contains(&first));

    // Cancel the first: it leaves the queue in the same commit.
    let mut request = build(&client);
    request
        .set_email_submission()
        .update(ids[0].as_str())
        .undo_status(UndoStatus::Canceled);
    request
        .send_single::<jmap_client::core::response::EmailSubmissionSetResponse>()
        .await
        .expect("EmailSubmission/set")
        .updated(&ids[0])
        .expect("canceled");
    assert!(
        !queued(&server).await.contains(&first),
        "the message left the queue"
    );
    let mut request = build(&client);
    request.get_email_submission().ids([ids[0].as_str()]);
    let canceled = request
        .send_get_email_submission()
        .await
        .expect("get")
        .take_list()
        .pop()
        .expect("still there");
    assert_eq!(canceled.undo_status(), Some(&UndoStatus::Canceled));

    // The second one started delivery (the actor says so): too late to cancel.
    let account_id = store_id(&alice.account_id, 'a') as u32;
    let second = store_id(&ids[1], 's');
    let report = DeliveryReport {
        undo_final: true,
        ..DeliveryReport::default()
    };
    commit_account(server.running().store(), account_id, |tx, changes| {
        let report = report.clone();
        Box::pin(
            async move { apply_delivery_report(tx, changes, account_id, second, &report).await },
        )
    })
    .await
    .expect("report applied");
    let answer = server
        .post_api(
            alice,
            &json!({"using": USING, "methodCalls": [["EmailSubmission/set", {
                "accountId": alice.account_id,
                "update": {ids[1].clone(): {"undoStatus": "canceled"}, ids[0].clone(): {"undoStatus": "pending"}},
            }, "0"]]}),
        )
        .await;
    let response = &answer.json()["methodResponses"][0][1];
    assert_eq!(
        response["notUpdated"][&ids[1]]["type"], "cannotUnsend",
        "{response}"
    );
    assert_eq!(response["notUpdated"][&ids[0]]["type"], "invalidProperties");
    server.shutdown().await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn delivery_reports_show_in_delivery_status_changes_and_queries() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let drafts = mailbox_with_role(&client, Role::Drafts).await;
    let identity = identity_id(&client).await;
    let first_email = draft(&client, &drafts, &alice.email, &["bob@example.org"], &[]).await;
    let second_email = draft(&client, &drafts, &alice.email, &["carol@example.org"], &[]).await;

    let mut request = build(&client);
    request.get_email_submission().ids(Vec::<String>::new());
    let state = request
        .send_get_email_submission()
        .await
        .expect("get")
        .take_state();

    let mut ids = Vec::new();
    for (email_id, rcpt) in [
        (&first_email, "bob@example.org"),
        (&second_email, "carol@example.org"),
    ] {
        let response = raw_create(
            &server,
            alice,
            json!({"identityId": identity, "emailId": email_id, "envelope": held(&alice.email, &[rcpt])}),
        )
        .await;
        ids.push(
            response["created"]["k"]["id"]
                .as_str()
                .expect("created")
                .to_owned(),
        );
    }

    // The outbound actor reports: bob's server took it; carol's bounced with a DSN.
    let account_id = store_id(&alice.account_id, 'a') as u32;
    let dsn = BlobHash::of(b"a DSN");
    let reports = [
        (
            store_id(&ids[0], 's'),
            "bob@example.org",
            StoredDelivered::Yes,
            "250 2.0.0 Ok: queued",
            None,
        ),
        (
            store_id(&ids[1], 's'),
            "carol@example.org",
            StoredDelivered::No,
            "550 5.1.1 no such user",
            Some(dsn),
        ),
    ];
    for (submission_id, address, delivered, reply, dsn_blob) in reports {
        let report = DeliveryReport {
            recipients: vec![RecipientReport {
                address: address.to_owned(),
                delivered,
                smtp_reply: reply.to_owned(),
                displayed: None,
            }],
            undo_final: true,
            dsn_blob,
            mdn_blob: None,
        };
        let applied = commit_account(server.running().store(), account_id, |tx, changes| {
            let report = report.clone();
            Box::pin(async move {
                apply_delivery_report(tx, changes, account_id, submission_id, &report).await
            })
        })
        .await
        .expect("report applied");
        assert!(applied.value);
    }

    let mut request = build(&client);
    request
        .get_email_submission()
        .ids(ids.iter().map(String::as_str));
    let list = request
        .send_get_email_submission()
        .await
        .expect("get")
        .take_list();
    let bob = list[0]
        .delivery_status_email("bob@example.org")
        .expect("bob");
    assert_eq!(bob.delivered(), &Delivered::Yes);
    assert_eq!(bob.smtp_reply(), "250 2.0.0 Ok: queued");
    assert_eq!(list[0].undo_status(), Some(&UndoStatus::Final));
    let carol = list[1]
        .delivery_status_email("carol@example.org")
        .expect("carol");
    assert_eq!(carol.delivered(), &Delivered::No);
    assert_eq!(list[1].dsn_blob_ids().map(<[String]>::len), Some(1));

    // /changes: both created since the first state (created then updated counts as created).
    let mut request = build(&client);
    request.changes_email_submission(state.as_str());
    let changes =
        request
            .send_single::<jmap_client::core::changes::ChangesResponse<
                jmap_client::email_submission::EmailSubmission,
            >>()
            .await
            .expect("changes");
    let mut created: Vec<&String> = changes.created().iter().collect();
    created.sort();
    let mut expected: Vec<&String> = ids.iter().collect();
    expected.sort();
    assert_eq!(created, expected);

    // /query: filters and sorts of RFC 8621 §7.3.
    let query = |filter: Option<email_submission::query::Filter>, ascending: bool| {
        let client = &client;
        async move {
            let mut request = build(client);
            let query = request.query_email_submission();
            if let Some(filter) = filter {
                query.filter(filter);
            }
            query.sort([email_submission::query::Comparator::email_id().is_ascending(ascending)]);
            request
                .send_single::<QueryResponse>()
                .await
                .expect("query")
                .take_ids()
        }
    };
    assert_eq!(query(None, true).await, ids);
    assert_eq!(query(None, false).await, [ids[1].clone(), ids[0].clone()]);
    let by_email = email_submission::query::Filter::email_ids([second_email.as_str()]);
    assert_eq!(query(Some(by_email), true).await, [ids[1].clone()]);
    let pending = email_submission::query::Filter::undo_status(UndoStatus::Pending);
    assert!(query(Some(pending), true).await.is_empty());
    let later = email_submission::query::Filter::after(chrono_now() + 3600);
    assert!(query(Some(later), true).await.is_empty());
    let sooner = email_submission::query::Filter::before(chrono_now() + 3600);
    assert_eq!(query(Some(sooner), true).await.len(), 2);

    // /queryChanges after a /set destroy: the record goes, its id is reported removed.
    let mut request = build(&client);
    request.query_email_submission();
    let query_state = request
        .send_single::<QueryResponse>()
        .await
        .expect("query")
        .take_query_state();
    let answer = server
        .post_api(
            alice,
            &json!({"using": USING, "methodCalls": [
                ["EmailSubmission/set", {"accountId": alice.account_id, "destroy": [ids[0]]}, "d"],
                ["EmailSubmission/queryChanges", {"accountId": alice.account_id,
                    "sinceQueryState": query_state}, "c"],
                ["EmailSubmission/query", {"accountId": alice.account_id,
                    "sort": [{"property": "subject"}]}, "bad"],
                ["EmailSubmission/query", {"accountId": alice.account_id,
                    "filter": {"subject": "x"}}, "bad filter"],
            ]}),
        )
        .await;
    let responses = answer.json()["methodResponses"].clone();
    assert_eq!(responses[0][1]["destroyed"], json!([ids[0]]), "{responses}");
    assert_eq!(responses[1][1]["removed"], json!([ids[0]]), "{responses}");
    assert_eq!(responses[1][1]["added"], json!([]), "{responses}");
    assert_eq!(responses[2][1]["type"], "unsupportedSort");
    assert_eq!(responses[3][1]["type"], "unsupportedFilter");
    server.shutdown().await;
}

#[tokio::test]
async fn an_account_over_its_sending_rate_is_forbidden_to_send() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let drafts = mailbox_with_role(&client, Role::Drafts).await;
    let identity = identity_id(&client).await;
    let email_id = draft(&client, &drafts, &alice.email, &["bob@example.org"], &[]).await;
    // One recipient an hour, one at most in the bucket.
    let settings = tern::outbound::rate::RateSettings {
        per_hour: 1,
        burst: 1,
    };
    tern::outbound::rate::store_settings(server.running().store(), settings)
        .await
        .expect("rate settings");
    let submission = json!({"identityId": identity, "emailId": email_id, "envelope": held(&alice.email, &["bob@example.org"])});
    let first = raw_create(&server, alice, submission.clone()).await;
    assert!(first["created"]["k"]["id"].is_string(), "{first}");
    let second = raw_create(&server, alice, submission).await;
    let error = &second["notCreated"]["k"];
    assert_eq!(error["type"], "forbiddenToSend", "{second}");
    assert!(error["description"].is_string());
    server.shutdown().await;
}
