//! Quotas (RFC 9425) end to end: the Quota methods over raw JMAP (jmap-client has no Quota
//! type), enforcement through the real `jmap-client` crate (Email/import `overQuota`), uploads
//! (403 `overQuota`), SMTP (`452 4.2.2` at RCPT, from a raw SMTP client), the warning message
//! on crossing `warnLimit`, and the Quota StateChange on a WebSocket.

mod common;
#[path = "smtp_in_common/mod.rs"]
mod smtp;

use std::time::Duration;

use common::{TestServer, mail_request, mailbox_with_role};
use futures_util::StreamExt;
use jmap_client::core::set::SetErrorType;
use jmap_client::email::import::EmailImportResponse;
use serde_json::{Value, json};

const QUOTA: &str = "urn:ietf:params:jmap:quota";
const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";

/// 3 messages or 20,000 octets; warn at half.
async fn server() -> TestServer {
    TestServer::start_with(|config| {
        config.quota.storage = "20000".into();
        config.quota.messages = 3;
        config.quota.warn_percent = 50;
        config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
        config.smtp.hostname = Some("mx.example.test".into());
    })
    .await
}

async fn call(server: &TestServer, using: &[&str], method: &str, arguments: Value) -> Value {
    let alice = server.alice();
    let mut arguments = arguments;
    arguments["accountId"] = json!(alice.account_id);
    let answer = server
        .post_api(
            alice,
            &json!({"using": using, "methodCalls": [[method, arguments, "c"]]}),
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

fn message(subject: &str, padding: usize) -> Vec<u8> {
    format!(
        "From: carol@example.net\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.net>\r\n\r\n{}\r\n",
        "x".repeat(padding)
    )
    .into_bytes()
}

async fn quotas(server: &TestServer) -> Vec<Value> {
    call(
        server,
        &[CORE, MAIL, QUOTA],
        "Quota/get",
        json!({"ids": null}),
    )
    .await["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn by_type<'a>(list: &'a [Value], resource_type: &str) -> &'a Value {
    list.iter()
        .find(|quota| quota["resourceType"] == resource_type)
        .unwrap_or_else(|| panic!("no {resource_type} quota in {list:?}"))
}

#[tokio::test]
async fn quota_methods_report_exact_usage_and_imports_stop_at_the_hard_limit() {
    let server = server().await;
    let session = server.session(server.alice()).await;
    assert_eq!(session["capabilities"][QUOTA], json!({}));
    let account = &server.alice().account_id;
    assert_eq!(
        session["accounts"][account]["accountCapabilities"][QUOTA],
        json!({})
    );

    let list = quotas(&server).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let octets = by_type(&list, "octets");
    assert_eq!(octets["used"], 0);
    assert_eq!(octets["hardLimit"], 20_000);
    assert_eq!(octets["warnLimit"], 10_000);
    assert_eq!(octets["scope"], "account");
    assert_eq!(octets["types"], json!(["Email"]));
    assert_eq!(octets["softLimit"], Value::Null);
    let count = by_type(&list, "count");
    assert_eq!(
        (count["hardLimit"].clone(), count["warnLimit"].clone()),
        (json!(3), json!(1))
    );
    let count_id = count["id"].as_str().unwrap().to_owned();
    let initial_state = call(
        &server,
        &[CORE, MAIL, QUOTA],
        "Quota/get",
        json!({"ids": []}),
    )
    .await["state"]
        .clone();

    // RFC 9425 §4.1: without the mail capability no type is recognized, so no Quota shows.
    let hidden = call(
        &server,
        &[CORE, QUOTA],
        "Quota/get",
        json!({"ids": [count_id]}),
    )
    .await;
    assert_eq!(hidden["list"], json!([]));
    assert_eq!(hidden["notFound"], json!([count_id]));
    let hidden_query = call(&server, &[CORE, QUOTA], "Quota/query", json!({})).await;
    assert_eq!(hidden_query["ids"], json!([]));

    // Quota/query: filters and sorts of RFC 9425 §4.4.
    let counts = call(
        &server,
        &[CORE, MAIL, QUOTA],
        "Quota/query",
        json!({"filter": {"resourceType": "count", "type": "Email", "scope": "account"}}),
    )
    .await;
    assert_eq!(counts["ids"], json!([count_id]));
    let by_name = call(
        &server,
        &[CORE, MAIL, QUOTA],
        "Quota/query",
        json!({"filter": {"name": "MESSAGES"}, "sort": [{"property": "name"}]}),
    )
    .await;
    assert_eq!(by_name["ids"], json!([count_id]));
    let bad_sort = call(
        &server,
        &[CORE, MAIL, QUOTA],
        "Quota/query",
        json!({"sort": [{"property": "hardLimit"}]}),
    )
    .await;
    assert_eq!(bad_sort["type"], "unsupportedSort");
    let bad_filter = call(
        &server,
        &[CORE, MAIL, QUOTA],
        "Quota/query",
        json!({"filter": {"color": "red"}}),
    )
    .await;
    assert_eq!(bad_filter["type"], "unsupportedFilter");

    // Imports through jmap-client. The first crosses warnLimit (1 message): the warning
    // message arrives (one more Email, filed even near the limit: an accepted message is never
    // refused later). Then one more import fits (3 of 3) and the next is overQuota.
    let client = server.jmap_client(server.alice()).await;
    let inbox = mailbox_with_role(&client, jmap_client::mailbox::Role::Inbox).await;
    let import = async |index: usize| {
        let raw = message(&format!("fill{index}"), 100);
        let blob_id = client
            .upload(None, raw, Some("message/rfc822"))
            .await
            .expect("upload")
            .take_blob_id();
        let mut request = mail_request(&client);
        let import = request
            .import_email()
            .email(blob_id)
            .mailbox_ids([inbox.as_str()]);
        let create_id = import.create_id();
        request
            .send_single::<EmailImportResponse>()
            .await
            .expect("Email/import answered")
            .created(&create_id)
            .map(|_| ())
    };
    import(0).await.expect("within the quota");
    let mut subjects = Vec::new();
    for _ in 0..200 {
        let found = call(
            &server,
            &[CORE, MAIL],
            "Email/query",
            json!({"filter": {"subject": "Your mailbox is"}}),
        )
        .await;
        subjects = found["ids"].as_array().cloned().unwrap_or_default();
        if !subjects.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(subjects.len(), 1, "one warning message");
    import(1).await.expect("the third message fits");
    match import(2).await {
        Err(jmap_client::Error::Set(error)) => {
            assert_eq!(error.error(), &SetErrorType::OverQuota, "{error:?}");
        }
        other => panic!("the fourth message must be overQuota: {other:?}"),
    }
    // No second warning: one per crossing.
    let warnings = call(
        &server,
        &[CORE, MAIL],
        "Email/query",
        json!({"filter": {"subject": "Your mailbox is"}}),
    )
    .await;
    assert_eq!(warnings["ids"].as_array().map(Vec::len), Some(1));
    let list = quotas(&server).await;
    let used_count = by_type(&list, "count")["used"].as_u64().unwrap();
    let used_octets = by_type(&list, "octets")["used"].as_u64().unwrap();
    assert_eq!(used_count, 3, "two imports and the warning");
    // Exact: the sum of the Emails' sizes.
    let all = call(&server, &[CORE, MAIL], "Email/query", json!({})).await["ids"].clone();
    let emails = call(
        &server,
        &[CORE, MAIL],
        "Email/get",
        json!({"ids": all, "properties": ["size"]}),
    )
    .await;
    let recount: u64 = emails["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|email| email["size"].as_u64().unwrap())
        .sum();
    assert_eq!(used_octets, recount);

    // Quota/changes since the start: both Quotas updated.
    let changes = call(
        &server,
        &[CORE, MAIL, QUOTA],
        "Quota/changes",
        json!({"sinceState": initial_state}),
    )
    .await;
    let updated = changes["updated"].as_array().cloned().unwrap_or_default();
    assert!(updated.contains(&json!(count_id)), "{changes}");
    assert_eq!(changes["created"], json!([]));

    // An upload that does not fit the storage left (20,000 octets) is refused before it is read.
    let upload = server
        .upload(
            server.alice(),
            vec![b'x'; 25_000],
            "application/octet-stream",
        )
        .await;
    assert_eq!(upload.status, 403, "{}", upload.text());
    assert_eq!(
        upload.json()["type"],
        "urn:ietf:params:jmap:error:overQuota"
    );

    // SMTP: the recipient is full (4 of 3 messages): 452 4.2.2 at RCPT; bob still receives.
    let mx = server.running().smtp.mx.expect("MX listener");
    let (mut smtp, greeting) = smtp::Client::connect(mx).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(
        smtp.command("EHLO client.example.net")
            .await
            .starts_with("250")
    );
    assert!(
        smtp.command("MAIL FROM:<carol@example.net> SIZE=300")
            .await
            .starts_with("250")
    );
    let full = smtp.command("RCPT TO:<alice@example.test>").await;
    assert!(full.starts_with("452 4.2.2"), "{full}");
    let bob = smtp.command("RCPT TO:<bob@example.test>").await;
    assert!(bob.starts_with("250"), "{bob}");
    let _ = smtp.command("QUIT").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_websocket_client_gets_the_quota_state_change() {
    let server = server().await;
    let alice = server.alice();
    let enable = json!({"@type": "WebSocketPushEnable", "dataTypes": ["Quota"]});
    let mut socket = common::push_websocket(&server, alice, enable).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let blob = server
        .upload(alice, message("pushed", 10), "message/rfc822")
        .await
        .json()["blobId"]
        .clone();
    let client = server.jmap_client(alice).await;
    let inbox = mailbox_with_role(&client, jmap_client::mailbox::Role::Inbox).await;
    let imported = call(
        &server,
        &[CORE, MAIL],
        "Email/import",
        json!({"emails": {"a": {"blobId": blob, "mailboxIds": {inbox: true}}}}),
    )
    .await;
    assert!(imported["created"]["a"].is_object(), "{imported}");
    let change = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let frame = socket.next().await.expect("open").expect("frame");
            let text = frame.into_text().unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if value["@type"] == "StateChange" {
                return value;
            }
        }
    })
    .await
    .expect("a StateChange within 5 s");
    let changed = &change["changed"][&alice.account_id];
    assert!(changed["Quota"].is_string(), "{change}");
    assert!(
        changed.get("Email").is_none(),
        "only the types asked for: {change}"
    );
    server.shutdown().await;
}
