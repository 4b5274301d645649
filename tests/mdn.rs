//! Read receipts (RFC 9007 over RFC 8098) end to end over raw JMAP (jmap-client has no MDN
//! methods): bob's message asks for a receipt; alice sends one with MDN/send (and
//! `$mdnsent` through onSuccessUpdateEmail); the outbound queue delivers it into bob's Inbox,
//! where MDN/parse reads it back and finds the Email it is for. And every refusal.

mod common;

use std::time::Duration;

use common::{TestServer, TestUser};
use serde_json::{Value, json};

const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";
const MDN: &str = "urn:ietf:params:jmap:mdn";

async fn calls(server: &TestServer, user: &TestUser, calls: Value) -> Vec<Value> {
    let answer = server
        .post_api(
            user,
            &json!({"using": [CORE, MAIL, MDN], "methodCalls": calls}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["methodResponses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn role_mailbox(server: &TestServer, user: &TestUser, role: &str) -> String {
    let responses = calls(
        server,
        user,
        json!([["Mailbox/query", {"accountId": user.account_id, "filter": {"role": role}}, "m"]]),
    )
    .await;
    responses[0][1]["ids"][0]
        .as_str()
        .expect("the mailbox")
        .to_owned()
}

/// Imports `raw` into the user's mailbox with `role`; the Email id.
async fn import(server: &TestServer, user: &TestUser, role: &str, raw: &str) -> String {
    let mailbox = role_mailbox(server, user, role).await;
    let blob = server
        .upload(user, raw.as_bytes().to_vec(), "message/rfc822")
        .await
        .json()["blobId"]
        .clone();
    let responses = calls(
        server,
        user,
        json!([["Email/import", {"accountId": user.account_id, "emails": {
            "e": {"blobId": blob, "mailboxIds": {mailbox: true}}}}, "i"]]),
    )
    .await;
    responses[0][1]["created"]["e"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{responses:?}"))
        .to_owned()
}

async fn identity(server: &TestServer, user: &TestUser) -> String {
    let answer = server
        .post_api(
            user,
            &json!({"using": [CORE, MAIL, "urn:ietf:params:jmap:submission"], "methodCalls": [
                ["Identity/get", {"accountId": user.account_id, "ids": null}, "i"]]}),
        )
        .await
        .json();
    answer["methodResponses"][0][1]["list"][0]["id"]
        .as_str()
        .expect("an identity")
        .to_owned()
}

const ORIGINAL: &str = "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n\
    Subject: Quarterly report\r\nMessage-ID: <report-q3@example.test>\r\n\
    Disposition-Notification-To: Bob <bob@example.test>\r\n\r\nPlease confirm you read it.\r\n";

#[tokio::test]
async fn a_read_receipt_is_sent_delivered_and_parsed() {
    let server = TestServer::start().await;
    let (alice, bob) = (server.alice(), server.bob());
    let session = server.session(alice).await;
    assert_eq!(session["capabilities"][MDN], json!({}));
    assert_eq!(
        session["accounts"][&alice.account_id]["accountCapabilities"][MDN],
        json!({})
    );
    let received = import(&server, alice, "inbox", ORIGINAL).await;
    // Bob keeps his copy in Sent: the receipt will name it.
    let sent_copy = import(&server, bob, "sent", ORIGINAL).await;
    let identity_id = identity(&server, alice).await;

    let responses = calls(
        &server,
        alice,
        json!([["MDN/send", {"accountId": alice.account_id, "identityId": identity_id,
            "send": {"k1": {"forEmailId": received,
                "disposition": {"actionMode": "manual-action", "sendingMode": "mdn-sent-manually", "type": "displayed"}}},
            "onSuccessUpdateEmail": {"#k1": {"keywords/$mdnsent": true}}}, "s"],
            ["Email/get", {"accountId": alice.account_id, "ids": [received], "properties": ["keywords"]}, "g"]]),
    )
    .await;
    let sent = &responses[0][1]["sent"]["k1"];
    assert_eq!(
        sent["finalRecipient"], "rfc822; alice@example.test",
        "{responses:?}"
    );
    assert_eq!(sent["originalMessageId"], "<report-q3@example.test>");
    assert!(
        sent["subject"]
            .as_str()
            .is_some_and(|subject| subject.contains("Quarterly report"))
    );
    assert_eq!(
        responses[1][0], "Email/set",
        "the implicit update: {responses:?}"
    );
    assert!(
        responses[1][1]["updated"].get(&received).is_some(),
        "{responses:?}"
    );
    assert_eq!(
        responses[2][1]["list"][0]["keywords"]["$mdnsent"], true,
        "{responses:?}"
    );

    // The outbound queue delivers it to bob (a local recipient): MDN/parse reads it.
    let receipt = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let found = calls(
                &server,
                bob,
                json!([["Email/query", {"accountId": bob.account_id,
                    "filter": {"subject": "Return Receipt"}}, "q"],
                    ["Email/get", {"accountId": bob.account_id,
                        "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                        "properties": ["blobId"]}, "g"]]),
            )
            .await;
            if let Some(blob) = found[1][1]["list"][0]["blobId"].as_str() {
                return blob.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the receipt reaches bob's Inbox");
    let plain = server
        .upload(
            bob,
            b"Subject: not a receipt\r\n\r\nhello\r\n".to_vec(),
            "message/rfc822",
        )
        .await
        .json()["blobId"]
        .clone();
    let responses = calls(
        &server,
        bob,
        json!([["MDN/parse", {"accountId": bob.account_id, "blobIds": [receipt, plain, "Gnope"]}, "p"]]),
    )
    .await;
    let parse = &responses[0][1];
    let mdn = &parse["parsed"][&receipt];
    assert_eq!(mdn["forEmailId"], json!(sent_copy), "{parse}");
    assert_eq!(
        mdn["disposition"],
        json!({"actionMode": "manual-action", "sendingMode": "mdn-sent-manually", "type": "displayed"})
    );
    assert_eq!(mdn["finalRecipient"], "rfc822; alice@example.test");
    assert_eq!(mdn["originalMessageId"], "<report-q3@example.test>");
    assert_eq!(mdn["includeOriginalMessage"], false);
    assert!(
        mdn["reportingUA"]
            .as_str()
            .is_some_and(|ua| ua.contains("Tern"))
    );
    assert_eq!(parse["notParsable"], json!([plain]));
    assert_eq!(parse["notFound"], json!(["Gnope"]));

    // Once is enough: $mdnsent is set.
    let responses = calls(
        &server,
        alice,
        json!([["MDN/send", {"accountId": alice.account_id, "identityId": identity_id,
            "send": {"again": {"forEmailId": received,
                "disposition": {"actionMode": "manual-action", "sendingMode": "mdn-sent-manually", "type": "displayed"}}}}, "s"]]),
    )
    .await;
    assert_eq!(
        responses[0][1]["notSent"]["again"]["type"], "mdnAlreadySent",
        "{responses:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_mdn_requests_are_refused() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let identity_id = identity(&server, alice).await;
    let no_request = import(
        &server,
        alice,
        "inbox",
        "From: x@example.net\r\nSubject: no receipt wanted\r\nMessage-ID: <plain@x>\r\n\r\nhi\r\n",
    )
    .await;
    let asks = import(&server, alice, "inbox", ORIGINAL).await;
    let displayed = json!({"actionMode": "manual-action", "sendingMode": "mdn-sent-manually", "type": "displayed"});
    let responses = calls(
        &server,
        alice,
        json!([
            ["MDN/send", {"accountId": alice.account_id, "identityId": identity_id, "send": {
                "noHeader": {"forEmailId": no_request, "disposition": displayed},
                "noEmail": {"forEmailId": "e999999", "disposition": displayed},
                "badType": {"forEmailId": asks, "disposition":
                    {"actionMode": "manual-action", "sendingMode": "mdn-sent-manually", "type": "shredded"}},
                "serverSet": {"forEmailId": asks, "disposition": displayed, "finalRecipient": "rfc822; x@y"},
                "noDisposition": {"forEmailId": asks}}}, "s1"],
            ["MDN/send", {"accountId": alice.account_id, "identityId": "i999999", "send": {}}, "s2"],
            ["MDN/send", {"accountId": alice.account_id, "identityId": identity_id, "send": {},
                "onSuccessUpdateEmail": {"#nobody": {"keywords/$mdnsent": true}}}, "s3"]
        ]),
    )
    .await;
    let not_sent = &responses[0][1]["notSent"];
    for key in [
        "noHeader",
        "noEmail",
        "badType",
        "serverSet",
        "noDisposition",
    ] {
        assert_eq!(
            not_sent[key]["type"], "invalidProperties",
            "{key}: {not_sent}"
        );
    }
    assert_eq!(
        not_sent["serverSet"]["properties"],
        json!(["finalRecipient"])
    );
    assert_eq!(responses[0][1]["sent"], Value::Null);
    assert_eq!(responses[1][1]["type"], "invalidArguments", "{responses:?}");
    assert_eq!(responses[2][1]["type"], "invalidArguments", "{responses:?}");
    server.shutdown().await;
}
