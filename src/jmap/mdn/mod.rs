//! Read receipts over JMAP (RFC 9007, `urn:ietf:params:jmap:mdn`): `MDN/send` builds an MDN
//! (RFC 8098) for an Email that asks for one and sends it through the outbound queue;
//! `MDN/parse` reads received MDNs. The message formats are `mail::mdn` (sans-IO).

pub mod parse;
pub mod send;

use serde_json::{Map, Value, json};

use crate::mail::mdn::{ActionMode, Disposition, DispositionType, ReceivedMdn, SendingMode};

/// RFC 9007 §2 Disposition object from its JSON form.
pub fn disposition_from_json(value: &Value) -> Result<Disposition, String> {
    let Value::Object(members) = value else {
        return Err("disposition must be an object".to_owned());
    };
    let text = |name: &str| {
        members
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("disposition.{name} is required"))
    };
    if let Some(unknown) = members
        .keys()
        .find(|name| !["actionMode", "sendingMode", "type"].contains(&name.as_str()))
    {
        return Err(format!("disposition has no {unknown:?}"));
    }
    Ok(Disposition {
        action_mode: ActionMode::parse(text("actionMode")?)
            .ok_or("disposition.actionMode is manual-action or automatic-action")?,
        sending_mode: SendingMode::parse(text("sendingMode")?)
            .ok_or("disposition.sendingMode is mdn-sent-manually or mdn-sent-automatically")?,
        kind: DispositionType::parse(text("type")?)
            .ok_or("disposition.type is deleted, dispatched, displayed or processed")?,
    })
}

pub fn disposition_json(disposition: &Disposition) -> Value {
    json!({
        "actionMode": disposition.action_mode.as_str(),
        "sendingMode": disposition.sending_mode.as_str(),
        "type": disposition.kind.as_str(),
    })
}

/// A received MDN as an RFC 9007 §2 MDN object (with the Email it is for, if found).
pub fn received_json(mdn: &ReceivedMdn, for_email_id: Option<String>) -> Value {
    let mut object = Map::new();
    object.insert("forEmailId".into(), json!(for_email_id));
    object.insert("subject".into(), json!(mdn.subject));
    object.insert("textBody".into(), json!(mdn.text_body));
    object.insert(
        "includeOriginalMessage".into(),
        Value::Bool(mdn.include_original_message),
    );
    object.insert("reportingUA".into(), json!(mdn.reporting_ua));
    object.insert(
        "disposition".into(),
        mdn.disposition
            .as_ref()
            .map_or(Value::Null, disposition_json),
    );
    object.insert("mdnGateway".into(), json!(mdn.mdn_gateway));
    object.insert("originalRecipient".into(), json!(mdn.original_recipient));
    object.insert("finalRecipient".into(), json!(mdn.final_recipient));
    object.insert("originalMessageId".into(), json!(mdn.original_message_id));
    object.insert(
        "error".into(),
        match mdn.errors.is_empty() {
            true => Value::Null,
            false => json!(mdn.errors),
        },
    );
    object.insert(
        "extensionFields".into(),
        match mdn.extension_fields.is_empty() {
            true => Value::Null,
            false => Value::Object(
                mdn.extension_fields
                    .iter()
                    .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                    .collect(),
            ),
        },
    );
    Value::Object(object)
}
