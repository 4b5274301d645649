//! Domain and group quotas (RFC 9425 scope `domain`; a group's team account) end to end: the
//! domain's Quota objects over raw JMAP in every account of the domain, enforcement through
//! the real `jmap-client` crate (Email/import `overQuota`) and raw SMTP (`452 4.2.2` at RCPT),
//! the warning message, Quota/changes when the operator changes the domain's limits, and a
//! team account's Quota seen by its members, not by a grantee of one Mailbox.

mod common;
#[path = "smtp_in_common/mod.rs"]
mod smtp;

use std::time::Duration;

use common::{TestServer, TestUser, mail_request, mailbox_with_role};
use jmap_client::core::set::SetErrorType;
use jmap_client::email::import::EmailImportResponse;
use serde_json::{Value, json};
use tern::mail::quota::LimitsChange;

const QUOTA: &str = "urn:ietf:params:jmap:quota";
const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";
const DOMAIN: &str = "example.test";

/// No per-account limits: only the domain's apply.
async fn server() -> TestServer {
    TestServer::start_with(|config| {
        config.quota.storage = "0".into();
        config.quota.messages = 0;
        config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
        config.smtp.hostname = Some("mx.example.test".into());
    })
    .await
}

async fn call(
    server: &TestServer,
    user: &TestUser,
    account: &str,
    method: &str,
    arguments: Value,
) -> Value {
    let mut arguments = arguments;
    arguments["accountId"] = json!(account);
    let answer = server
        .post_api(
            user,
            &json!({"using": [CORE, MAIL, QUOTA], "methodCalls": [[method, arguments, "c"]]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let [name, arguments, _] = &body["methodResponses"][0].as_array().unwrap()[..] else {
        panic!("one response: {body}");
    };
    assert!(name == method || name == "error", "{name}: {arguments}");
    arguments.clone()
}

async fn quotas(server: &TestServer, user: &TestUser, account: &str) -> Vec<Value> {
    call(server, user, account, "Quota/get", json!({"ids": null})).await["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: carol@example.net\r\nTo: someone@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.net>\r\n\r\nhello\r\n"
    )
    .into_bytes()
}

/// Imports one message through jmap-client; the SetError type when refused.
async fn import(server: &TestServer, user: &TestUser, subject: &str) -> Result<(), SetErrorType> {
    let client = server.jmap_client(user).await;
    let inbox = mailbox_with_role(&client, jmap_client::mailbox::Role::Inbox).await;
    let blob_id = client
        .upload(None, message(subject), Some("message/rfc822"))
        .await
        .expect("upload")
        .take_blob_id();
    let mut request = mail_request(&client);
    let import = request
        .import_email()
        .email(blob_id)
        .mailbox_ids([inbox.as_str()]);
    let create_id = import.create_id();
    match request
        .send_single::<EmailImportResponse>()
        .await
        .expect("Email/import answered")
        .created(&create_id)
    {
        Ok(_) => Ok(()),
        Err(jmap_client::Error::Set(error)) => Err(error.error().clone()),
        Err(other) => panic!("unexpected: {other:?}"),
    }
}

async fn set_domain_limits(server: &TestServer, change: LimitsChange) {
    server
        .running()
        .directory()
        .domain_quota(DOMAIN, change)
        .await
        .expect("domain quota");
}

#[tokio::test]
async fn a_domain_quota_is_shared_by_the_accounts_of_the_domain() {
    let server = server().await;
    let (alice, bob) = (server.alice(), server.bob());
    let (alice_account, bob_account) = (alice.account_id.clone(), bob.account_id.clone());
    assert_eq!(
        quotas(&server, alice, &alice_account).await,
        Vec::<Value>::new()
    );
    let before =
        call(&server, bob, &bob_account, "Quota/get", json!({"ids": []})).await["state"].clone();

    // 3 messages for the whole domain; warn at 1.
    set_domain_limits(
        &server,
        LimitsChange {
            messages: Some(3),
            warn_percent: Some(34),
            ..LimitsChange::default()
        },
    )
    .await;
    let list = quotas(&server, bob, &bob_account).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let quota = &list[0];
    assert_eq!(quota["scope"], "domain");
    assert_eq!(quota["resourceType"], "count");
    assert_eq!(quota["name"], "Mail messages of example.test");
    assert_eq!(
        (quota["used"].clone(), quota["hardLimit"].clone()),
        (json!(0), json!(3))
    );
    assert_eq!(quota["warnLimit"], 1);
    let quota_id = quota["id"].clone();
    // The operator's change is in every account's Quota/changes.
    let changes = call(
        &server,
        bob,
        &bob_account,
        "Quota/changes",
        json!({"sinceState": before}),
    )
    .await;
    assert_eq!(changes["created"], json!([quota_id]), "{changes}");
    let by_scope = call(
        &server,
        bob,
        &bob_account,
        "Quota/query",
        json!({"filter": {"scope": "domain"}}),
    )
    .await;
    assert_eq!(by_scope["ids"], json!([quota_id]));

    // Alice's import reaches warnLimit: the warning goes to the domain's postmaster, or as
    // here, with none, to the account whose mail reached it (one more Email in the domain).
    import(&server, alice, "first").await.expect("fits");
    let mut warned = Vec::new();
    for _ in 0..200 {
        let found = call(
            &server,
            alice,
            &alice_account,
            "Email/query",
            json!({"filter": {"subject": "The domain example.test is"}}),
        )
        .await;
        warned = found["ids"].as_array().cloned().unwrap_or_default();
        if !warned.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(warned.len(), 1, "one domain warning");
    // Bob's mail counts in the same domain: the third fits, the fourth does not.
    import(&server, bob, "second").await.expect("3 of 3 fits");
    assert_eq!(
        import(&server, bob, "third").await,
        Err(SetErrorType::OverQuota)
    );
    assert_eq!(
        import(&server, alice, "fourth").await,
        Err(SetErrorType::OverQuota)
    );
    for (user, account) in [(alice, &alice_account), (bob, &bob_account)] {
        let list = quotas(&server, user, account).await;
        assert_eq!(
            list[0]["used"], 3,
            "the domain's usage, seen from {account}: {list:?}"
        );
    }

    // SMTP: every mailbox of the domain is full; postmaster is always accepted.
    let mx = server.running().smtp.mx.expect("MX listener");
    let (mut smtp, greeting) = smtp::Client::connect(mx).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(
        smtp.command("EHLO client.example.net")
            .await
            .starts_with("250")
    );
    assert!(
        smtp.command("MAIL FROM:<carol@example.net>")
            .await
            .starts_with("250")
    );
    let full = smtp.command("RCPT TO:<bob@example.test>").await;
    assert!(full.starts_with("452 4.2.2"), "{full}");
    let _ = smtp.command("QUIT").await;

    // The limit goes: the Quota is destroyed in every account, and mail fits again.
    set_domain_limits(
        &server,
        LimitsChange {
            reset: true,
            ..LimitsChange::default()
        },
    )
    .await;
    assert_eq!(
        quotas(&server, bob, &bob_account).await,
        Vec::<Value>::new()
    );
    import(&server, bob, "fifth")
        .await
        .expect("no limit any more");
    let report = server
        .running()
        .directory()
        .domain_quota(DOMAIN, LimitsChange::default())
        .await
        .expect("report");
    assert_eq!(
        (report.used_messages, report.message_limit),
        (4, 0),
        "{report:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_team_accounts_quota_is_seen_by_its_members_only() {
    let server = server().await;
    let directory = server.running().directory();
    directory
        .create_group("team@example.test", "Team")
        .await
        .expect("group");
    directory
        .add_group_member("team@example.test", "alice@example.test")
        .await
        .expect("member");
    let team = directory
        .account("team@example.test")
        .await
        .expect("team")
        .account_id;
    let team_account = format!("a{team}");
    tern::mail::quota::change_limits(
        directory.store(),
        team,
        LimitsChange {
            messages: Some(10),
            ..LimitsChange::default()
        },
    )
    .await
    .expect("team limits");

    let session = server.session(server.alice()).await;
    assert_eq!(
        session["accounts"][&team_account]["accountCapabilities"][QUOTA],
        json!({}),
        "{session}"
    );
    let list = quotas(&server, server.alice(), &team_account).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0]["scope"].clone(), list[0]["hardLimit"].clone()),
        (json!("account"), json!(10))
    );

    // Bob shares his Inbox with Alice: she sees it, not his Quota (the size of the rest).
    let bob_account = server.bob().account_id.clone();
    let inbox = call(
        &server,
        server.bob(),
        &bob_account,
        "Mailbox/query",
        json!({"filter": {"role": "inbox"}}),
    )
    .await["ids"][0]
        .clone();
    let alice_principal = server.alice().account_id.clone();
    let granted = call(
        &server,
        server.bob(),
        &bob_account,
        "Mailbox/set",
        json!({"update": {inbox.as_str().unwrap(): {"shareWith": {alice_principal: {"mayReadItems": true}}}}}),
    )
    .await;
    assert!(granted["updated"].is_object(), "{granted}");
    let session = server.session(server.alice()).await;
    assert!(session["accounts"][&bob_account].is_object(), "{session}");
    assert!(
        session["accounts"][&bob_account]["accountCapabilities"][QUOTA].is_null(),
        "{session}"
    );
    let refused = call(
        &server,
        server.alice(),
        &bob_account,
        "Quota/get",
        json!({"ids": null}),
    )
    .await;
    assert_eq!(refused["type"], "accountNotSupportedByMethod", "{refused}");
    server.shutdown().await;
}
