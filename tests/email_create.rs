//! Email/set create (RFC 8621 §4.6) end to end: a draft with text, HTML, an inline image and
//! an attachment made through the real `jmap-client` crate, its message read back from the
//! server; the SetErrors of bad creates over raw HTTP.

mod common;

use common::{TestServer, TestUser, mail_request};
use jmap_client::client::Client;
use jmap_client::core::query::QueryResponse;
use jmap_client::core::response::{EmailGetResponse, EmailSetResponse};
use jmap_client::core::set::SetObject;
use jmap_client::email::{self, EmailBodyPart};
use jmap_client::mailbox::{self, Role};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

async fn drafts_mailbox(client: &Client) -> String {
    let mut request = mail_request(client);
    request
        .query_mailbox()
        .filter(mailbox::query::Filter::role(Role::Drafts));
    let mut response = request
        .send_single::<QueryResponse>()
        .await
        .expect("Mailbox/query");
    response.take_ids().pop().expect("a drafts mailbox")
}

#[tokio::test]
async fn jmap_client_creates_a_draft_with_attachments() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let drafts = drafts_mailbox(&client).await;
    let pdf: Vec<u8> = (0..70_000u32).map(|index| (index % 253) as u8).collect();
    let png: Vec<u8> = vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0, 0, 13];
    let pdf_blob = client
        .upload(None, pdf.clone(), Some("application/pdf"))
        .await
        .expect("upload pdf")
        .take_blob_id();
    let png_blob = client
        .upload(None, png.clone(), Some("image/png"))
        .await
        .expect("upload png")
        .take_blob_id();

    let mut request = mail_request(&client);
    let create_id = request
        .set_email()
        .create()
        .mailbox_ids([drafts.as_str()])
        .keywords(["$draft", "$seen"])
        .from([("Alice", alice.email.as_str())])
        .to([("Bob", "bob@example.test")])
        .subject("Quarterly report ✓")
        .body_value("t".to_owned(), "The report is attached.\nRegards")
        .body_value(
            "h".to_owned(),
            "<p>The report is attached.</p><img src=\"cid:logo@tern\">",
        )
        .text_body(EmailBodyPart::new().part_id("t"))
        .html_body(EmailBodyPart::new().part_id("h").content_type("text/html"))
        .attachment(
            EmailBodyPart::new()
                .blob_id(pdf_blob.as_str())
                .content_type("application/pdf")
                .name("report.pdf"),
        )
        .attachment(
            EmailBodyPart::new()
                .blob_id(png_blob.as_str())
                .content_type("image/png")
                .content_id("logo@tern"),
        )
        .create_id()
        .expect("creation id");
    let mut response = request
        .send_single::<EmailSetResponse>()
        .await
        .expect("Email/set");
    let created = response.created(&create_id).expect("created");
    assert!(created.id().is_some_and(|id| !id.is_empty()));
    let blob_id = created.blob_id().expect("blobId").to_owned();
    assert!(
        created.size() > pdf.len(),
        "size covers the encoded message"
    );

    // Email/get reads the created Email back as the RFC's body lists (RFC 8621 §4.1.4).
    let email_id = created.id().expect("id").to_owned();
    let mut request = mail_request(&client);
    request
        .get_email()
        .ids([email_id.as_str()])
        .properties([
            email::Property::Subject,
            email::Property::From,
            email::Property::To,
            email::Property::Keywords,
            email::Property::MailboxIds,
            email::Property::TextBody,
            email::Property::HtmlBody,
            email::Property::Attachments,
            email::Property::HasAttachment,
            email::Property::BodyValues,
            email::Property::MessageId,
        ])
        .arguments()
        .fetch_all_body_values(true);
    let email = request
        .send_single::<EmailGetResponse>()
        .await
        .expect("Email/get")
        .take_list()
        .pop()
        .expect("the created Email");
    assert_eq!(email.subject(), Some("Quarterly report ✓"));
    assert_eq!(email.from().expect("from")[0].email(), alice.email.as_str());
    assert_eq!(email.to().expect("to")[0].name(), Some("Bob"));
    let mut keywords = email.keywords();
    keywords.sort_unstable();
    assert_eq!(keywords, ["$draft", "$seen"]);
    assert_eq!(email.mailbox_ids(), [drafts.as_str()]);
    assert!(email.message_id().is_some_and(|ids| ids.len() == 1));
    let text = &email.text_body().expect("textBody")[0];
    assert_eq!(text.content_type(), Some("text/plain"));
    let text_value = email
        .body_value(text.part_id().expect("partId"))
        .expect("text value");
    assert_eq!(text_value.value(), "The report is attached.\r\nRegards");
    let html = &email.html_body().expect("htmlBody")[0];
    assert_eq!(html.content_type(), Some("text/html"));
    let attachments = email.attachments().expect("attachments");
    let names: Vec<Option<&str>> = attachments.iter().map(|part| part.name()).collect();
    assert!(names.contains(&Some("report.pdf")), "{names:?}");
    assert!(email.has_attachment());
    let pdf_part = attachments
        .iter()
        .find(|part| part.name() == Some("report.pdf"))
        .expect("the pdf");
    assert_eq!(pdf_part.size(), pdf.len());
    let pdf_back = client
        .download(pdf_part.blob_id().expect("part blobId"))
        .await
        .expect("download the attachment");
    assert!(pdf_back == pdf, "the attachment round-trips");

    // The stored message is the one built: mixed(alternative(text, related(html, png)), pdf).
    let raw = client
        .download(&blob_id)
        .await
        .expect("download the message");
    let message = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(message.subject(), Some("Quarterly report ✓"));
    let from = message.from().and_then(|from| from.first()).expect("From");
    assert_eq!(
        (from.name(), from.address()),
        (Some("Alice"), Some(alice.email.as_str()))
    );
    assert!(message.message_id().is_some_and(|id| id.contains('@')));
    assert!(message.date().is_some(), "a Date was added");
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("The report is attached.\r\nRegards")
    );
    let kinds: Vec<String> = message
        .parts
        .iter()
        .map(|part| {
            let content_type = part.content_type().expect("content type");
            format!(
                "{}/{}",
                content_type.ctype(),
                content_type.subtype().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "multipart/related",
            "text/html",
            "image/png",
            "application/pdf"
        ]
    );
    assert_eq!(message.parts[5].contents(), png.as_slice());
    assert_eq!(message.parts[5].content_id(), Some("logo@tern"));
    assert_eq!(message.parts[6].contents(), pdf.as_slice());
    assert_eq!(message.parts[6].attachment_name(), Some("report.pdf"));
    server.shutdown().await;
}

fn create_request(user: &TestUser, creates: Value) -> Value {
    json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [["Email/set", {"accountId": user.account_id, "create": creates}, "0"]]
    })
}

#[tokio::test]
async fn bad_creates_get_the_rfc_set_errors() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let drafts = drafts_mailbox(&client).await;
    let mailboxes = json!({ drafts.as_str(): true });
    let missing_blob = format!("G{}", "ab".repeat(32));
    let body = json!({"t": {"value": "hello"}});
    let creates = json!({
        "serverSet": {"mailboxIds": mailboxes, "id": "e1", "threadId": "t1", "size": 1,
            "preview": "x", "hasAttachment": false, "blobId": missing_blob},
        "bothBodies": {"mailboxIds": mailboxes, "bodyStructure": {"partId": "t"},
            "textBody": [{"partId": "t"}], "bodyValues": body},
        "twoTextParts": {"mailboxIds": mailboxes,
            "textBody": [{"partId": "t"}, {"partId": "t"}], "bodyValues": body},
        "encoding": {"mailboxIds": mailboxes, "textBody": [{"partId": "t",
            "header:Content-Transfer-Encoding": "base64"}], "bodyValues": body},
        "truncated": {"mailboxIds": mailboxes, "textBody": [{"partId": "t"}],
            "bodyValues": {"t": {"value": "x", "isTruncated": true}}},
        "sameField": {"mailboxIds": mailboxes, "subject": "a", "header:Subject:asText": "b"},
        "noBlob": {"mailboxIds": mailboxes, "textBody": [{"partId": "t"}], "bodyValues": body,
            "attachments": [{"blobId": missing_blob, "type": "application/pdf"}, {"blobId": "nonsense"}]}
    });
    let answer = server
        .post_api(alice, &create_request(alice, creates))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let response = &body["methodResponses"][0][1];
    assert_eq!(response["created"], Value::Null, "{body}");
    let not_created = &response["notCreated"];
    let properties = |id: &str| -> Vec<String> {
        assert_eq!(not_created[id]["type"], "invalidProperties", "{id}: {body}");
        let mut names: Vec<String> = not_created[id]["properties"]
            .as_array()
            .expect("properties")
            .iter()
            .map(|name| name.as_str().unwrap_or_default().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        properties("serverSet"),
        [
            "blobId",
            "hasAttachment",
            "id",
            "preview",
            "size",
            "threadId"
        ]
    );
    assert_eq!(properties("bothBodies"), ["bodyStructure", "textBody"]);
    assert_eq!(properties("twoTextParts"), ["textBody"]);
    assert_eq!(properties("encoding"), ["textBody"]);
    assert_eq!(properties("truncated"), ["bodyValues"]);
    assert_eq!(
        properties("sameField"),
        ["header:Subject:asText", "subject"]
    );
    assert_eq!(not_created["noBlob"]["type"], "blobNotFound", "{body}");
    assert_eq!(
        not_created["noBlob"]["notFound"],
        json!([missing_blob, "nonsense"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn attachments_over_max_size_attachments_per_email_are_too_large() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let drafts = drafts_mailbox(&client).await;
    let session = server.session(alice).await;
    let limit =
        session["accounts"][&alice.account_id]["accountCapabilities"]["urn:ietf:params:jmap:mail"]
            ["maxSizeAttachmentsPerEmail"]
            .as_u64()
            .expect("maxSizeAttachmentsPerEmail advertised");
    // One blob a third of the limit plus one, attached three times.
    let size = usize::try_from(limit / 3 + 1).expect("fits");
    let blob_id = client
        .upload(None, vec![b'x'; size], Some("application/octet-stream"))
        .await
        .expect("upload")
        .take_blob_id();
    let attachment = json!({"blobId": blob_id, "type": "application/octet-stream"});
    let creates = json!({
        "big": {"mailboxIds": {drafts.as_str(): true},
            "attachments": [attachment, attachment, attachment]},
        "fits": {"mailboxIds": {drafts.as_str(): true}, "attachments": [attachment]}
    });
    let body = server
        .post_api(alice, &create_request(alice, creates))
        .await
        .json();
    let response = &body["methodResponses"][0][1];
    assert_eq!(response["notCreated"]["big"]["type"], "tooLarge", "{body}");
    assert!(response["created"]["fits"]["id"].is_string(), "{body}");
    server.shutdown().await;
}
