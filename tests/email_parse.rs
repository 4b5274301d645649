//! Email/parse (RFC 8621 §4.9) and part blob downloads (§4.1.4), through the real
//! `jmap-client` crate, with raw HTTP for the error cases.

mod common;

use common::TestServer;
use jmap_client::URI;
use jmap_client::client::Client;
use jmap_client::email::parse::EmailParseResponse;
use jmap_client::email::{BodyProperty, Email, Property};
use serde_json::{Value, json};

const MAIL: &str = "urn:ietf:params:jmap:mail";

fn corpus(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

async fn upload(client: &Client, content: Vec<u8>) -> String {
    client
        .upload(None, content, Some("message/rfc822"))
        .await
        .expect("upload")
        .take_blob_id()
}

/// Email/parse of one blob with `properties`, fetching all body values.
async fn parse(client: &Client, blob_id: &str, properties: Vec<Property>) -> Email {
    let mut request = client.build();
    request.using = vec![URI::Core, URI::Mail];
    request
        .parse_email()
        .blob_ids([blob_id])
        .properties(properties)
        .body_properties([
            BodyProperty::PartId,
            BodyProperty::BlobId,
            BodyProperty::Size,
            BodyProperty::Name,
            BodyProperty::Type,
            BodyProperty::Charset,
            BodyProperty::Disposition,
            BodyProperty::Cid,
        ])
        .fetch_all_body_values(true);
    let mut response: EmailParseResponse = request.send_single().await.expect("Email/parse");
    response.parsed(blob_id).expect("parsed")
}

fn everything() -> Vec<Property> {
    vec![
        Property::Id,
        Property::BlobId,
        Property::Size,
        Property::MessageId,
        Property::From,
        Property::To,
        Property::Subject,
        Property::SentAt,
        Property::BodyValues,
        Property::TextBody,
        Property::HtmlBody,
        Property::Attachments,
        Property::HasAttachment,
        Property::Preview,
    ]
}

#[tokio::test]
async fn email_parse_reads_an_uploaded_message() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let raw = corpus("attachments.eml");
    let blob_id = upload(&client, raw.clone()).await;
    let email = parse(&client, &blob_id, everything()).await;

    assert_eq!(
        email.id(),
        None,
        "a parsed message is not an Email in the store"
    );
    assert_eq!(email.blob_id(), Some(blob_id.as_str()));
    assert_eq!(email.size(), raw.len());
    assert_eq!(email.subject(), Some("Quarterly report"));
    assert_eq!(
        email.message_id(),
        Some(&["attachments@example.test".to_owned()][..])
    );
    let from = email.from().expect("from");
    assert_eq!(
        (from[0].name(), from[0].email()),
        (Some("Reports"), "reports@example.test")
    );
    assert_eq!(email.sent_at(), Some(1_794_232_800)); // 2026-11-09T09:00:00-05:00
    assert!(email.has_attachment());
    assert_eq!(email.preview(), Some("See the chart:"));

    let html = email.html_body().expect("htmlBody");
    assert_eq!(html.len(), 1);
    assert_eq!(html[0].content_type(), Some("text/html"));
    let value = email
        .body_value(html[0].part_id().expect("partId"))
        .expect("the HTML body value");
    assert!(value.value().contains("cid:chart@example.test"));
    assert!(!value.is_truncated() && !value.is_encoding_problem());

    let attachments = email.attachments().expect("attachments");
    let names: Vec<Option<&str>> = attachments.iter().map(|part| part.name()).collect();
    assert_eq!(names, [None, Some("report.pdf"), Some("€ rates.txt")]);
    assert_eq!(attachments[0].content_id(), Some("chart@example.test"));
    assert_eq!(attachments[1].content_disposition(), Some("attachment"));
    server.shutdown().await;
}

#[tokio::test]
async fn part_blobs_download_decoded_and_parse_as_messages() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;

    // A base64 attachment downloads as its decoded octets.
    let blob_id = upload(&client, corpus("attachments.eml")).await;
    let email = parse(&client, &blob_id, vec![Property::Attachments]).await;
    let pdf = &email.attachments().expect("attachments")[1];
    let content = client
        .download(pdf.blob_id().expect("a part blob id"))
        .await
        .expect("download the PDF part");
    let mut expected = b"%PDF-1.4\n%fake pdf for tests\n".to_vec();
    expected.extend((0..4).flat_map(|_| 0..=255u8));
    assert!(
        content == expected,
        "the PDF part is not the decoded attachment"
    );
    assert_eq!(pdf.size(), expected.len());

    // Attached messages (plain and base64-encoded) are blobs Email/parse reads in turn.
    let blob_id = upload(&client, corpus("message-rfc822.eml")).await;
    let email = parse(&client, &blob_id, vec![Property::Attachments]).await;
    let attached = email.attachments().expect("attachments");
    assert_eq!(attached.len(), 2);
    for part in attached {
        assert_eq!(part.content_type(), Some("message/rfc822"));
        let inner_blob = part.blob_id().expect("blob id");
        let inner = parse(&client, inner_blob, everything()).await;
        assert_eq!(inner.subject(), Some("The original message"));
        assert_eq!(inner.blob_id(), Some(inner_blob));
        let text = &inner.text_body().expect("textBody")[0];
        let body = inner
            .body_value(text.part_id().expect("partId"))
            .expect("body value");
        assert_eq!(body.value(), "This is the forwarded original.\r\n");
        // A part of the attached message downloads too.
        let text_content = client
            .download(text.blob_id().expect("blob id"))
            .await
            .expect("download a part of an attached message");
        assert_eq!(text_content, b"This is the forwarded original.\r\n");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn part_blobs_keep_the_message_access_check() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let bob = server.bob();
    let client = server.jmap_client(alice).await;
    let blob_id = upload(&client, corpus("attachments.eml")).await;
    let email = parse(&client, &blob_id, vec![Property::Attachments]).await;
    let part_blob = email.attachments().expect("attachments")[1]
        .blob_id()
        .expect("blob id")
        .to_owned();
    let mine = server.download(alice, &alice.account_id, &part_blob).await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.header("content-length"), Some("1053"));
    // Bob may not read Alice's message, nor any part of it, in either account.
    let theirs = server.download(bob, &bob.account_id, &part_blob).await;
    assert_eq!(theirs.status, 404);
    let foreign = server.download(bob, &alice.account_id, &part_blob).await;
    assert_eq!(foreign.status, 404);
    // A range outside the message is no part of it.
    let outside = format!("{}_I0xv000", blob_id);
    let answer = server.download(alice, &alice.account_id, &outside).await;
    assert_eq!(answer.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn email_parse_reports_not_found_and_not_parsable() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let good = upload(&client, corpus("plain-7bit.eml")).await;
    let binary = upload(&client, vec![0u8, 159, 146, 150, 0, 255]).await;
    let missing = format!("G{}", "0".repeat(64));
    let request = json!({
        "using": ["urn:ietf:params:jmap:core", MAIL],
        "methodCalls": [["Email/parse", {
            "accountId": alice.account_id,
            "blobIds": [good, binary, missing, "not-a-blob-id"],
            "properties": ["subject", "header:Subject:asText", "receivedAt", "mailboxIds"],
        }, "c1"]],
    });
    let answer = server.post_api(alice, &request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let response = &answer.json()["methodResponses"][0];
    assert_eq!(response[0], "Email/parse", "{response}");
    let arguments = &response[1];
    assert_eq!(
        arguments["parsed"][&good],
        json!({
            "subject": "Lunch tomorrow",
            "header:Subject:asText": "Lunch tomorrow",
            "receivedAt": null,
            "mailboxIds": null,
        })
    );
    assert_eq!(arguments["notParsable"], json!([binary]));
    assert_eq!(arguments["notFound"], json!([missing, "not-a-blob-id"]));
    assert_eq!(arguments["accountId"], json!(alice.account_id));
    server.shutdown().await;
}

#[tokio::test]
async fn email_parse_refuses_invalid_arguments() {
    let server = TestServer::start().await;
    let alice = server.alice();
    for arguments in [
        json!({"blobIds": []}),
        json!({"accountId": alice.account_id}),
        json!({"accountId": alice.account_id, "blobIds": [], "properties": ["nope"]}),
        // RFC 8621 §4.1.2: the Addresses form is not allowed for Subject.
        json!({"accountId": alice.account_id, "blobIds": [],
               "properties": ["header:Subject:asAddresses"]}),
        json!({"accountId": alice.account_id, "blobIds": [], "bodyProperties": ["textBody"]}),
        json!({"accountId": alice.account_id, "blobIds": [], "maxBodyValueBytes": -1}),
        json!({"accountId": alice.account_id, "blobIds": [], "unknown": true}),
    ] {
        let request = json!({
            "using": ["urn:ietf:params:jmap:core", MAIL],
            "methodCalls": [["Email/parse", arguments, "c1"]],
        });
        let answer = server.post_api(alice, &request).await;
        let response = &answer.json()["methodResponses"][0];
        assert_eq!(response[0], "error", "{arguments}: {response}");
        assert_eq!(response[1]["type"], "invalidArguments", "{arguments}");
    }
    // Someone else's account is accountNotFound.
    let request = json!({
        "using": ["urn:ietf:params:jmap:core", MAIL],
        "methodCalls": [["Email/parse",
            {"accountId": server.bob().account_id, "blobIds": []}, "c1"]],
    });
    let answer = server.post_api(alice, &request).await;
    assert_eq!(
        answer.json()["methodResponses"][0][1]["type"],
        "accountNotFound"
    );
    server.shutdown().await;
}

/// Every corpus message (malformed MIME, broken charsets, huge headers…) parses through the
/// server, which stays up.
#[tokio::test]
async fn every_corpus_message_parses_through_the_server() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut names: Vec<String> = std::fs::read_dir(&directory)
        .expect("corpus")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    names.sort();
    let mut blob_ids = Vec::new();
    for name in &names {
        blob_ids.push(upload(&client, corpus(name)).await);
    }
    let request = json!({
        "using": ["urn:ietf:params:jmap:core", MAIL],
        "methodCalls": [["Email/parse", {
            "accountId": alice.account_id,
            "blobIds": blob_ids,
            "properties": ["subject", "headers", "bodyStructure", "bodyValues", "textBody",
                           "htmlBody", "attachments", "preview", "header:From:asAddresses:all"],
            "fetchAllBodyValues": true,
            "maxBodyValueBytes": 100,
        }, "c1"]],
    });
    let answer = server.post_api(alice, &request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let arguments = &answer.json()["methodResponses"][0][1];
    let parsed = arguments["parsed"].as_object().expect("parsed");
    for (name, blob_id) in names.iter().zip(&blob_ids) {
        let email = parsed
            .get(blob_id)
            .unwrap_or_else(|| panic!("{name} did not parse: {arguments}"));
        assert!(email["bodyStructure"].is_object(), "{name}");
        for value in email["bodyValues"]
            .as_object()
            .expect("bodyValues")
            .values()
        {
            assert!(
                value["value"].as_str().expect("value").len() <= 100,
                "{name}"
            );
        }
    }
    assert_eq!(arguments["notParsable"], Value::Null);
    server.shutdown().await;
}
