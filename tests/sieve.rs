//! Sieve end to end: scripts managed over JMAP (RFC 9661, raw JMAP: jmap-client has no
//! SieveScript), then run on mail delivered through the real SMTP listener (RFC 5228
//! fileinto with :create, imap4flags, discard, stop), and every refusal (a script that does
//! not compile, destroying the active script, a missing blob).

mod common;
#[path = "smtp_in_common/mod.rs"]
mod smtp;

use std::time::Duration;

use common::TestServer;
use serde_json::{Value, json};

const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";
const BLOB: &str = "urn:ietf:params:jmap:blob";
const SIEVE: &str = "urn:ietf:params:jmap:sieve";

async fn calls(server: &TestServer, calls: Value) -> Vec<Value> {
    let answer = server
        .post_api(
            server.alice(),
            &json!({"using": [CORE, MAIL, BLOB, SIEVE], "methodCalls": calls}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["methodResponses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

const SCRIPT: &str = r#"require ["fileinto", "imap4flags", "mailbox"];
if header :contains "subject" "TPS" {
    addflag "\\Flagged";
    fileinto :create "Reports/TPS";
    stop;
}
if header :contains "subject" "lottery" {
    discard;
    stop;
}
"#;

async fn send(server: &TestServer, subject: &str) {
    let mx = server.running().smtp.mx.expect("MX listener");
    let (mut client, greeting) = smtp::Client::connect(mx).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    for (line, code) in [
        ("EHLO client.example.net", "250"),
        ("MAIL FROM:<carol@example.net>", "250"),
        ("RCPT TO:<alice@example.test>", "250"),
        ("DATA", "354"),
    ] {
        let reply = client.command(line).await;
        assert!(reply.starts_with(code), "{line}: {reply}");
    }
    let message = format!(
        "From: carol@example.net\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{}@example.net>\r\n\r\nhello\r\n.\r\n",
        subject.replace(' ', "-")
    );
    client.send(message.as_bytes()).await;
    let reply = client.reply().await;
    assert!(reply.starts_with("250"), "{reply}");
    let _ = client.command("QUIT").await;
}

/// The Email with `subject`, once delivered: its mailboxIds and keywords.
async fn delivered(server: &TestServer, subject: &str) -> Value {
    let account = server.alice().account_id.clone();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let found = calls(
                server,
                json!([["Email/query", {"accountId": account, "filter": {"subject": subject}}, "q"],
                    ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                        "properties": ["mailboxIds", "keywords"]}, "g"]]),
            )
            .await;
            if let Some(email) = found[1][1]["list"].get(0) {
                return email.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{subject} was never delivered"))
}

#[tokio::test]
async fn the_active_script_files_flags_and_discards_delivered_mail() {
    let server = TestServer::start_with(|config| {
        config.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
        config.smtp.hostname = Some("mx.example.test".into());
    })
    .await;
    let account = server.alice().account_id.clone();
    let session = server.session(server.alice()).await;
    let capability = &session["accounts"][&account]["accountCapabilities"][SIEVE];
    assert!(
        capability["sieveExtensions"]
            .as_array()
            .is_some_and(|list| list.contains(&json!("fileinto"))),
        "{session}"
    );
    let responses = calls(
        &server,
        json!([
            ["Blob/upload", {"accountId": account, "create": {"s": {"data": [{"data:asText": SCRIPT}]}}}, "u"],
            ["SieveScript/set", {"accountId": account, "create": {"k": {"name": "rules", "blobId": "#s"}},
                "onSuccessActivateScript": "#k"}, "c"],
            ["SieveScript/query", {"accountId": account, "filter": {"isActive": true}}, "q"]
        ]),
    )
    .await;
    let created = &responses[1][1]["created"]["k"];
    let script_id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{responses:?}"))
        .to_owned();
    assert_eq!(
        responses[1][1]["updated"][&script_id]["isActive"], true,
        "{responses:?}"
    );
    assert_eq!(responses[2][1]["ids"], json!([script_id]));

    send(&server, "TPS report for Q3").await;
    send(&server, "You won the lottery").await;
    send(&server, "Lunch on Friday").await;

    // fileinto :create made Reports/TPS; the flag became $flagged; not in the Inbox.
    let report = delivered(&server, "TPS report").await;
    let mailboxes = calls(
        &server,
        json!([["Mailbox/get", {"accountId": account, "ids": null, "properties": ["name", "parentId", "role"]}, "m"]]),
    )
    .await;
    let list = mailboxes[0][1]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let by_name = |name: &str| {
        list.iter()
            .find(|mailbox| mailbox["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list:?}"))
            .clone()
    };
    let reports = by_name("Reports");
    let tps = by_name("TPS");
    assert_eq!(tps["parentId"], reports["id"]);
    assert_eq!(
        report["mailboxIds"],
        json!({tps["id"].as_str().unwrap(): true}),
        "{report}"
    );
    assert_eq!(report["keywords"]["$flagged"], true, "{report}");
    // No rule matched: the implicit keep puts it in the Inbox.
    let lunch = delivered(&server, "Lunch on Friday").await;
    let inbox = list
        .iter()
        .find(|mailbox| mailbox["role"] == "inbox")
        .expect("inbox")["id"]
        .clone();
    assert_eq!(lunch["mailboxIds"], json!({inbox.as_str().unwrap(): true}));
    // Discarded: delivered into nowhere (its SMTP transaction got 250; the lunch message,
    // sent after it, is already filed).
    let lottery = calls(
        &server,
        json!([["Email/query", {"accountId": account, "filter": {"subject": "lottery"}}, "q"]]),
    )
    .await;
    assert_eq!(lottery[0][1]["ids"], json!([]), "{lottery:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_scripts_are_refused_and_the_active_one_is_kept() {
    let server = TestServer::start().await;
    let account = server.alice().account_id.clone();
    let responses = calls(
        &server,
        json!([
            ["Blob/upload", {"accountId": account, "create": {
                "bad": {"data": [{"data:asText": "if header :contains \"subject\" { keep; }"}]},
                "good": {"data": [{"data:asText": "keep;"}]}}}, "u"],
            ["SieveScript/validate", {"accountId": account, "blobId": "#bad"}, "v1"],
            ["SieveScript/validate", {"accountId": account, "blobId": "#good"}, "v2"],
            ["SieveScript/set", {"accountId": account, "create": {
                "broken": {"name": "broken", "blobId": "#bad"},
                "missing": {"name": "missing", "blobId": "G0000000000000000000000000000000000000000000000000000000000000000"},
                "ok": {"name": "ok", "blobId": "#good"},
                "twin": {"name": "ok", "blobId": "#good"}},
                "onSuccessActivateScript": "#ok"}, "s1"]
        ]),
    )
    .await;
    assert_eq!(
        responses[1][1]["error"]["type"], "invalidSieve",
        "{responses:?}"
    );
    assert!(
        responses[1][1]["error"]["description"]
            .as_str()
            .is_some_and(|text| !text.is_empty())
    );
    assert_eq!(responses[2][1]["error"], Value::Null);
    let set = &responses[3][1];
    assert_eq!(set["notCreated"]["broken"]["type"], "invalidSieve", "{set}");
    assert_eq!(set["notCreated"]["missing"]["type"], "blobNotFound");
    let ok_id = set["created"]["ok"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{set}"))
        .to_owned();
    assert_eq!(set["notCreated"]["twin"]["type"], "alreadyExists");
    assert_eq!(set["notCreated"]["twin"]["existingId"], json!(ok_id));
    // The active script cannot be destroyed; deactivated, it can.
    let responses = calls(
        &server,
        json!([
            ["SieveScript/set", {"accountId": account, "destroy": [ok_id]}, "d1"],
            ["SieveScript/set", {"accountId": account, "onSuccessDeactivateScript": true}, "off"],
            ["SieveScript/set", {"accountId": account, "destroy": [ok_id]}, "d2"],
            ["SieveScript/get", {"accountId": account, "ids": null}, "g"]
        ]),
    )
    .await;
    assert_eq!(
        responses[0][1]["notDestroyed"][&ok_id]["type"], "sieveIsActive",
        "{responses:?}"
    );
    assert_eq!(responses[1][1]["updated"][&ok_id]["isActive"], false);
    assert_eq!(responses[2][1]["destroyed"], json!([ok_id]));
    assert_eq!(responses[3][1]["list"], json!([]));
    server.shutdown().await;
}
