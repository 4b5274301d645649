//! RFC 9404 (JMAP Blob Management) end to end over raw JMAP (jmap-client has no Blob/upload,
//! Blob/get or Blob/lookup): the session capability, blobs built from text, base64 and ranges
//! of other blobs (`#creationId` references included, and used by Email/import), ranged reads
//! with digests, truncation and encoding problems, reverse lookups through Emails, Threads and
//! Mailboxes, and every refusal (bad data, missing blobs, ranges past the end, size, quota,
//! unknown types, another user's blob).

mod common;

use base64::Engine as _;
use common::TestServer;
use serde_json::{Value, json};
use sha2::Digest as _;

const BLOB: &str = "urn:ietf:params:jmap:blob";
const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";

async fn server() -> TestServer {
    TestServer::start_with(|config| {
        config.jmap.max_size_upload = 100_000;
    })
    .await
}

/// Sends `calls` as alice with `using`; the method responses.
async fn calls(server: &TestServer, using: &[&str], calls: Value) -> Vec<Value> {
    let answer = server
        .post_api(
            server.alice(),
            &json!({"using": using, "methodCalls": calls}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["methodResponses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn inbox_id(server: &TestServer) -> String {
    let account = server.alice().account_id.clone();
    let responses = calls(
        server,
        &[CORE, MAIL],
        json!([["Mailbox/query", {"accountId": account, "filter": {"role": "inbox"}}, "m"]]),
    )
    .await;
    responses[0][1]["ids"][0]
        .as_str()
        .expect("an inbox")
        .to_owned()
}

fn arguments(response: &Value) -> &Value {
    &response[1]
}

#[tokio::test]
async fn blobs_are_built_from_text_base64_and_ranges_and_read_back_in_ranges() {
    let server = server().await;
    let account = server.alice().account_id.clone();
    let session = server.session(server.alice()).await;
    assert_eq!(session["capabilities"][BLOB], json!({}));
    let capability = &session["accounts"][&account]["accountCapabilities"][BLOB];
    assert_eq!(capability["maxSizeBlobSet"], 100_000, "{session}");
    assert_eq!(capability["maxDataSources"], 64);
    assert_eq!(
        capability["supportedTypeNames"],
        json!(["Mailbox", "Thread", "Email"])
    );
    assert_eq!(
        capability["supportedDigestAlgorithms"],
        json!(["sha", "sha-256"])
    );

    // RFC 9404 §4.1's example: a blob, then one joined from five sources (two of them ranges
    // of the first, named by creation id), read back in the same request.
    let responses = calls(
        &server,
        &[CORE, BLOB],
        json!([
            ["Blob/upload", {"accountId": account, "create": {
                "b4": {"data": [{"data:asText": "The quick brown fox jumped over the lazy dog."}]}}}, "S4"],
            ["Blob/upload", {"accountId": account, "create": {
                "cat": {"type": "text/plain", "data": [
                    {"data:asText": "How"},
                    {"blobId": "#b4", "offset": 3, "length": 7},
                    {"data:asBase64": "d2FzIHQ="},
                    {"blobId": "#b4", "offset": 1, "length": 1},
                    {"data:asBase64": "YXQ/"}]}}}, "CAT"],
            ["Blob/get", {"accountId": account, "ids": ["#cat"],
                "properties": ["data:asText", "size", "digest:sha-256"]}, "G4"],
            ["Blob/get", {"accountId": account, "ids": ["#b4", "Gnope"],
                "offset": 4, "length": 9}, "R1"],
            ["Blob/get", {"accountId": account, "ids": ["#b4"],
                "properties": ["data:asBase64", "size"], "offset": 40, "length": 100}, "R2"]
        ]),
    )
    .await;
    let created = &arguments(&responses[0])["created"]["b4"];
    assert_eq!(created["size"], 45, "{responses:?}");
    assert_eq!(created["type"], Value::Null);
    let joined = &arguments(&responses[1])["created"]["cat"];
    assert_eq!(joined["size"], 19, "{responses:?}");
    assert_eq!(joined["type"], "text/plain");
    let expected_digest = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(b"How quick was that?"));
    let got = &arguments(&responses[2])["list"][0];
    assert_eq!(got["id"], joined["id"]);
    assert_eq!(got["data:asText"], "How quick was that?");
    assert_eq!(got["size"], 19);
    assert_eq!(got["digest:sha-256"], expected_digest);
    let ranged = arguments(&responses[3]);
    assert_eq!(ranged["list"][0]["data:asText"], "quick bro", "{ranged}");
    assert_eq!(ranged["list"][0]["size"], 45);
    assert!(ranged["list"][0].get("isTruncated").is_none());
    assert_eq!(ranged["notFound"], json!(["Gnope"]));
    let truncated = &arguments(&responses[4])["list"][0];
    assert_eq!(truncated["isTruncated"], true, "{truncated}");
    assert_eq!(truncated["data:asBase64"], "IGRvZy4=", "\" dog.\"");

    // Bytes that are not UTF-8: `data` falls back to base64 with isEncodingProblem.
    let responses = calls(
        &server,
        &[CORE, BLOB],
        json!([
            ["Blob/upload", {"accountId": account, "create": {
                "bin": {"data": [{"data:asBase64": "w6l4/w=="}]}}}, "u"],
            ["Blob/get", {"accountId": account, "ids": ["#bin"], "length": 1,
                "properties": ["data", "digest:sha"]}, "g"]
        ]),
    )
    .await;
    let cut = &arguments(&responses[1])["list"][0];
    assert_eq!(cut["isEncodingProblem"], true, "{cut}");
    assert_eq!(cut["data:asBase64"], "ww==");
    assert!(cut.get("data:asText").is_none());
    assert_eq!(
        cut["digest:sha"],
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest([0xC3u8]))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_uploads_and_gets_are_refused_with_the_right_errors() {
    let server = TestServer::start_with(|config| {
        config.jmap.max_size_upload = 100_000;
        config.quota.storage = "150000".into();
    })
    .await;
    let account = server.alice().account_id.clone();
    let bob_blob = server
        .upload(server.bob(), b"bob's secret".to_vec(), "text/plain")
        .await
        .json()["blobId"]
        .clone();
    let many: Vec<Value> = (0..65).map(|_| json!({"data:asText": "x"})).collect();
    let big = "y".repeat(60_000);
    let responses = calls(
        &server,
        &[CORE, BLOB],
        json!([
            ["Blob/upload", {"accountId": account, "create": {
                "base": {"data": [{"data:asText": "0123456789"}]},
                "badBase64": {"data": [{"data:asBase64": "not base64!"}]},
                "twoKinds": {"data": [{"data:asText": "a", "data:asBase64": "YQ=="}]},
                "noData": {"type": "text/plain"},
                "unknownSource": {"data": [{"data:asHex": "00"}]},
                "missing": {"data": [{"blobId": "G0000000000000000000000000000000000000000000000000000000000000000"}]},
                "bobs": {"data": [{"blobId": bob_blob}]},
                "tooMany": {"data": many},
                "tooLarge": {"data": [{"data:asText": big}, {"data:asText": big}]}}}, "u1"],
            ["Blob/upload", {"accountId": account, "create": {
                "pastEnd": {"data": [{"blobId": "#base", "offset": 8, "length": 3}]},
                "farPastEnd": {"data": [{"blobId": "#base", "offset": 11}]},
                "whole": {"data": [{"blobId": "#base", "offset": 10}]}}}, "u2"],
            ["Blob/get", {"accountId": account, "ids": [bob_blob]}, "g1"],
            ["Blob/get", {"accountId": account, "ids": ["#base"], "properties": ["digest:md5"]}, "g2"],
            ["Blob/get", {"accountId": account, "ids": null}, "g3"],
            ["Blob/get", {"accountId": server.bob().account_id, "ids": [bob_blob]}, "g4"]
        ]),
    )
    .await;
    let not_created = &arguments(&responses[0])["notCreated"];
    let kind = |key: &str| not_created[key]["type"].as_str().unwrap_or("").to_owned();
    assert!(
        arguments(&responses[0])["created"]["base"].is_object(),
        "{responses:?}"
    );
    for key in [
        "badBase64",
        "twoKinds",
        "noData",
        "unknownSource",
        "tooMany",
    ] {
        assert_eq!(kind(key), "invalidProperties", "{key}: {not_created}");
    }
    assert_eq!(kind("missing"), "blobNotFound");
    assert_eq!(
        kind("bobs"),
        "blobNotFound",
        "another user's blob is not there"
    );
    assert_eq!(kind("tooLarge"), "tooLarge");
    let second = arguments(&responses[1]);
    assert_eq!(
        second["notCreated"]["pastEnd"]["type"], "invalidProperties",
        "{second}"
    );
    assert_eq!(
        second["notCreated"]["farPastEnd"]["type"],
        "invalidProperties"
    );
    assert_eq!(
        second["created"]["whole"]["size"], 0,
        "an empty range at the end is fine"
    );
    assert_eq!(arguments(&responses[2])["notFound"], json!([bob_blob]));
    assert_eq!(responses[3][0], "error");
    assert_eq!(arguments(&responses[3])["type"], "invalidArguments");
    assert_eq!(arguments(&responses[4])["type"], "invalidArguments");
    assert_eq!(arguments(&responses[5])["type"], "accountNotFound");

    // The storage left (150,000 octets of quota) is checked like an upload's.
    let fill = "z".repeat(90_000);
    let responses = calls(
        &server,
        &[CORE, BLOB],
        json!([["Blob/upload", {"accountId": account, "create": {
            "first": {"data": [{"data:asText": fill}]}}}, "q"]]),
    )
    .await;
    assert!(arguments(&responses[0])["created"]["first"].is_object());
    // Uploads count only once an Email holds them: store one, then the next is over quota.
    let message = format!(
        "From: a@example.test\r\nSubject: fill\r\nMessage-ID: <fill@x>\r\n\r\n{}\r\n",
        "f".repeat(90_000)
    );
    let stored = server
        .upload(server.alice(), message.into_bytes(), "message/rfc822")
        .await
        .json()["blobId"]
        .clone();
    let inbox = inbox_id(&server).await;
    let responses = calls(
        &server,
        &[CORE, MAIL, BLOB],
        json!([
            ["Email/import", {"accountId": account, "emails": {
                "e": {"blobId": stored, "mailboxIds": {inbox: true}}}}, "i"],
            ["Blob/upload", {"accountId": account, "create": {
                "over": {"data": [{"data:asText": "z".repeat(70_000)}]}}}, "q2"]
        ]),
    )
    .await;
    assert!(
        arguments(&responses[0])["created"]["e"].is_object(),
        "{responses:?}"
    );
    assert_eq!(
        arguments(&responses[1])["notCreated"]["over"]["type"],
        "overQuota",
        "{responses:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn lookup_finds_the_emails_threads_and_mailboxes_of_a_blob() {
    let server = server().await;
    let account = server.alice().account_id.clone();
    let inbox = inbox_id(&server).await;
    let message = "From: a@example.test\r\nTo: alice@example.test\r\nSubject: with a file\r\n\
         Message-ID: <lookup@x>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
         hello\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; \
         filename=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n";
    // The message comes in through Blob/upload and Email/import in one request (#creationId).
    let responses = calls(
        &server,
        &[CORE, MAIL, BLOB],
        json!([
            ["Blob/upload", {"accountId": account, "create": {
                "raw": {"type": "message/rfc822", "data": [{"data:asText": message}]},
                "loose": {"data": [{"data:asText": "not in any Email"}]}}}, "u"],
            ["Email/import", {"accountId": account, "emails": {
                "e": {"blobId": "#raw", "mailboxIds": {inbox.clone(): true}}}}, "i"],
            ["Email/get", {"accountId": account, "ids": ["#e"],
                "properties": ["blobId", "threadId", "attachments"]}, "g"]
        ]),
    )
    .await;
    let email = &arguments(&responses[2])["list"][0];
    let email_id = email["id"].clone();
    assert!(email_id.is_string(), "{responses:?}");
    let raw_blob = email["blobId"].as_str().unwrap().to_owned();
    assert_eq!(
        json!(raw_blob),
        arguments(&responses[0])["created"]["raw"]["id"]
    );
    let part_blob = email["attachments"][0]["blobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let loose = arguments(&responses[0])["created"]["loose"]["id"].clone();
    let responses = calls(
        &server,
        &[CORE, MAIL, BLOB],
        json!([
            ["Blob/lookup", {"accountId": account, "typeNames": ["Mailbox", "Thread", "Email"],
                "ids": [raw_blob, part_blob, loose, "Gnope"]}, "l"],
            ["Blob/get", {"accountId": account, "ids": [part_blob], "properties": ["data:asBase64", "size"]}, "p"]
        ]),
    )
    .await;
    let found = arguments(&responses[0]);
    let expected = json!({"Mailbox": [inbox], "Thread": [email["threadId"]], "Email": [email_id]});
    assert_eq!(found["list"][0]["id"], json!(raw_blob), "{found}");
    assert_eq!(found["list"][0]["matchedIds"], expected, "{found}");
    assert_eq!(found["list"][1]["matchedIds"], expected, "a part: {found}");
    assert_eq!(
        found["list"][2]["matchedIds"],
        json!({"Mailbox": [], "Thread": [], "Email": []}),
        "an upload nothing references"
    );
    assert_eq!(found["notFound"], json!(["Gnope"]));
    let part = &arguments(&responses[1])["list"][0];
    assert_eq!(
        part["data:asBase64"], "AAECAw==",
        "the decoded part: {part}"
    );
    assert_eq!(part["size"], 4);

    // Unknown types, or types whose capability the request does not use.
    let responses = calls(
        &server,
        &[CORE, MAIL, BLOB],
        json!([["Blob/lookup", {"accountId": account, "typeNames": ["Calendar"], "ids": [raw_blob]}, "x"]]),
    )
    .await;
    assert_eq!(arguments(&responses[0])["type"], "unknownDataType");
    let responses = calls(
        &server,
        &[CORE, BLOB],
        json!([["Blob/lookup", {"accountId": account, "typeNames": ["Email"], "ids": [raw_blob]}, "y"]]),
    )
    .await;
    assert_eq!(arguments(&responses[0])["type"], "unknownDataType");

    // Destroyed: nothing references it any more (the upload still lets alice read it).
    let responses = calls(
        &server,
        &[CORE, MAIL, BLOB],
        json!([
            ["Email/set", {"accountId": account, "destroy": [email_id]}, "d"],
            ["Blob/lookup", {"accountId": account, "typeNames": ["Email"], "ids": [raw_blob]}, "l"]
        ]),
    )
    .await;
    assert_eq!(
        arguments(&responses[1])["list"][0]["matchedIds"],
        json!({"Email": []}),
        "{responses:?}"
    );
    server.shutdown().await;
}
