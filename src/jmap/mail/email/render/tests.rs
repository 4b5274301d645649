use serde_json::{Map, Value, json};

use super::body::truncate;
use super::*;
use crate::jmap::types::BlobSection;
use crate::mail::parsed::{decode::transfer_decode, parse_message};

const MESSAGE: &str = "From: Joe <joe@x.test>\r\n\
To: Ann <ann@y.test>\r\n\
Subject: =?UTF-8?B?w6l0w6k=?= report\r\n\
Date: Sat, 20 Nov 2021 14:22:01 -0800\r\n\
Message-ID: <one@x.test>\r\n\
X-Tag: first\r\n\
X-Tag: second\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\
\r\n\
--m\r\n\
Content-Type: multipart/alternative; boundary=\"a\"\r\n\
\r\n\
--a\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=E9 cr=E8me, =\r\nr=E9sum=E9.\r\n\
--a\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Café <b>crème</b></p>\r\n\
--a--\r\n\
--m\r\n\
Content-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Language: en, fr\r\n\
Content-ID: <pdf@x.test>\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--m--\r\n";

fn message_blob() -> BlobId {
    BlobId::from_digest([9u8; 32])
}

fn options() -> BodyOptions {
    BodyOptions::default()
}

fn render_with(property: &str, options: &BodyOptions) -> Value {
    let parsed = parse_message(MESSAGE.as_bytes());
    let property = EmailProperty::parse(property).expect("known property");
    render(
        &parsed,
        Some(MESSAGE.as_bytes()),
        &message_blob(),
        &property,
        options,
    )
    .expect("rendered")
}

#[test]
fn property_names() {
    for name in [
        "id",
        "blobId",
        "bodyStructure",
        "header:X-Tag",
        "header:X-Tag:all",
        "header:Subject:asText",
        "header:From:asAddresses:all",
        "header:List-Post:asURLs",
        "header:x-custom:asDate",
    ] {
        let property = EmailProperty::parse(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(property.name(), name);
    }
    for bad in [
        "header:",
        "header:From:asText",
        "header:Subject:asAddresses",
        "header:Date:asMessageIds",
        "header:X:asNothing",
        "header:X:all:asRaw",
        "header:X:asRaw:all:all",
        "header:Bad Name",
        "bodystructure",
        "nope",
    ] {
        assert_eq!(EmailProperty::parse(bad), None, "{bad}");
    }
    assert_eq!(
        BodyProperty::parse("header:Content-Type:asRaw").map(|p| p.name().to_owned()),
        Some("header:Content-Type:asRaw".to_owned())
    );
    assert_eq!(BodyProperty::parse("textBody"), None);
}

#[test]
fn body_options_from_arguments() {
    let mut arguments = Arguments::new(
        json!({
            "bodyProperties": ["partId", "header:Content-Type"],
            "fetchTextBodyValues": true,
            "maxBodyValueBytes": 10,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    let options = BodyOptions::take(&mut arguments).expect("valid");
    assert_eq!(options.body_properties.len(), 2);
    assert!(options.fetch_text_body_values && !options.fetch_all_body_values);
    assert_eq!(options.max_body_value_bytes, 10);
    assert!(arguments.finish().is_ok());
    for bad in [
        json!({"bodyProperties": ["nope"]}),
        json!({"bodyProperties": "partId"}),
        json!({"maxBodyValueBytes": -1}),
        json!({"fetchAllBodyValues": "yes"}),
    ] {
        let mut arguments = Arguments::new(bad.as_object().cloned().unwrap_or_default());
        assert!(BodyOptions::take(&mut arguments).is_err(), "{bad}");
    }
    let defaults = BodyOptions::take(&mut Arguments::new(Map::new())).expect("defaults");
    assert_eq!(defaults, BodyOptions::default());
}

#[test]
fn raw_is_needed_only_for_headers_and_values() {
    let list = EmailProperty::get_defaults();
    assert!(!needs_raw(
        &list
            .iter()
            .filter(|p| **p != EmailProperty::BodyValues)
            .cloned()
            .collect::<Vec<_>>(),
        &options()
    ));
    // bodyValues without a fetch option renders `{}`: no raw message.
    assert!(!needs_raw(&list, &options()));
    let fetch = BodyOptions {
        fetch_html_body_values: true,
        ..options()
    };
    assert!(needs_raw(&list, &fetch));
    assert!(needs_raw(&[EmailProperty::Headers], &options()));
    let part_headers = BodyOptions {
        body_properties: vec![BodyProperty::Headers],
        ..options()
    };
    assert!(needs_raw(&[EmailProperty::TextBody], &part_headers));
    assert!(!needs_raw(&[EmailProperty::Preview], &part_headers));
}

#[test]
fn list_properties_without_raw() {
    let parsed = parse_message(MESSAGE.as_bytes());
    let object = render_object(
        &parsed,
        None,
        &message_blob(),
        &EmailProperty::get_defaults(),
        &options(),
    );
    assert_eq!(object.get("id"), None, "the store supplies id");
    assert_eq!(object["subject"], json!("été report"));
    assert_eq!(
        object["from"],
        json!([{"name": "Joe", "email": "joe@x.test"}])
    );
    assert_eq!(object["sentAt"], json!("2021-11-20T14:22:01-08:00"));
    assert_eq!(object["messageId"], json!(["one@x.test"]));
    assert_eq!(object["inReplyTo"], Value::Null);
    assert_eq!(object["size"], json!(MESSAGE.len()));
    assert_eq!(object["hasAttachment"], json!(true));
    assert_eq!(object["preview"], json!("Café crème, résumé."));
    assert_eq!(object["blobId"], json!(message_blob().to_string()));
    assert_eq!(object["bodyValues"], json!({}));
    assert_eq!(object["textBody"][0]["type"], json!("text/plain"));
    assert_eq!(object["htmlBody"][0]["type"], json!("text/html"));
    let attachment = &object["attachments"][0];
    assert_eq!(
        attachment,
        &json!({
            "partId": attachment["partId"],
            "blobId": attachment["blobId"],
            "size": 9,
            "name": "report.pdf",
            "type": "application/pdf",
            "charset": null,
            "disposition": "attachment",
            "cid": "pdf@x.test",
            "language": ["en", "fr"],
            "location": null,
        })
    );
    // Header properties need the raw message.
    let header = EmailProperty::parse("header:X-Tag").unwrap();
    assert_eq!(
        render(&parsed, None, &message_blob(), &header, &options()),
        None
    );
}

#[test]
fn part_blob_ids_name_the_decoded_content() {
    let object = render_with("attachments", &options());
    let blob = BlobId::parse(object[0]["blobId"].as_str().unwrap()).unwrap();
    assert_eq!(blob.stored(), message_blob());
    let [section]: [BlobSection; 1] = blob.sections().try_into().unwrap();
    let body = &MESSAGE.as_bytes()[section.start as usize..section.end as usize];
    assert_eq!(
        transfer_decode(body, section.encoding).0.as_ref(),
        b"%PDF-1.4\n"
    );
}

#[test]
fn header_properties() {
    assert_eq!(render_with("header:X-Tag", &options()), json!(" second"));
    assert_eq!(
        render_with("header:x-tag:all", &options()),
        json!([" first", " second"])
    );
    assert_eq!(
        render_with("header:Subject:asText", &options()),
        json!("été report")
    );
    assert_eq!(
        render_with("header:X-Missing:asText", &options()),
        Value::Null
    );
    let headers = render_with("headers", &options());
    assert_eq!(headers.as_array().map(Vec::len), Some(9));
    assert_eq!(
        headers[0],
        json!({"name": "From", "value": " Joe <joe@x.test>"})
    );
}

#[test]
fn body_structure_tree() {
    let options = BodyOptions {
        body_properties: vec![
            BodyProperty::PartId,
            BodyProperty::Type,
            BodyProperty::Header(HeaderProperty::parse("header:Content-Type").unwrap()),
        ],
        ..options()
    };
    let tree = render_with("bodyStructure", &options);
    assert_eq!(tree["type"], json!("multipart/mixed"));
    assert_eq!(tree["partId"], Value::Null);
    assert_eq!(tree["subParts"][0]["type"], json!("multipart/alternative"));
    let plain = &tree["subParts"][0]["subParts"][0];
    assert_eq!(plain["type"], json!("text/plain"));
    assert_eq!(plain["subParts"], Value::Null);
    assert_eq!(
        plain["header:Content-Type"],
        json!(" text/plain; charset=iso-8859-1")
    );
    assert_eq!(tree["subParts"][1]["type"], json!("application/pdf"));
}

#[test]
fn body_values_decode_and_truncate() {
    let text_only = BodyOptions {
        fetch_text_body_values: true,
        ..options()
    };
    let values = render_with("bodyValues", &text_only);
    let values = values.as_object().unwrap();
    assert_eq!(values.len(), 1);
    let (_, plain) = values.iter().next().unwrap();
    assert_eq!(
        plain,
        &json!({"value": "Café crème, résumé.", "isEncodingProblem": false, "isTruncated": false})
    );
    let all_cut = BodyOptions {
        fetch_all_body_values: true,
        max_body_value_bytes: 4,
        ..options()
    };
    let values = render_with("bodyValues", &all_cut);
    let values: Vec<&Value> = values.as_object().unwrap().values().collect();
    assert_eq!(values.len(), 2, "both text parts, not the PDF");
    // "Café" is 5 octets in UTF-8: the cut falls inside "é" and backs off to 3 octets.
    assert_eq!(values[0]["value"], json!("Caf"));
    assert_eq!(values[0]["isTruncated"], json!(true));
    assert_eq!(values[1]["value"], json!("<p>C"));
}

#[test]
fn truncation_rules() {
    let mut text = "aé".to_owned();
    assert!(!truncate(&mut text, 0, false));
    assert!(!truncate(&mut text, 3, false));
    assert!(truncate(&mut text, 2, false));
    assert_eq!(text, "a");
    let mut html = "<p>hello</p>".to_owned();
    assert!(truncate(&mut html, 10, true));
    assert_eq!(html, "<p>hello");
}

#[test]
fn broken_charset_is_an_encoding_problem() {
    let raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nbad \xff byte\r\n";
    let parsed = parse_message(raw);
    let values = render(
        &parsed,
        Some(raw),
        &message_blob(),
        &EmailProperty::BodyValues,
        &BodyOptions {
            fetch_text_body_values: true,
            ..options()
        },
    )
    .unwrap();
    let value = values.as_object().unwrap().values().next().unwrap();
    assert_eq!(value["isEncodingProblem"], json!(true));
    assert_eq!(value["value"], json!("bad \u{fffd} byte\r\n"));
}
