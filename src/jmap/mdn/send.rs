//! `MDN/send` (RFC 9007 §3.1): a read receipt for each Email named, to the address its
//! `Disposition-Notification-To` asks (RFC 8098 §2.1), from the Identity given, through the
//! outbound queue with a null reverse-path (RFC 8098 §3: an MDN never bounces). Then the
//! implicit Email/set of `onSuccessUpdateEmail` (typically `keywords/$mdnsent: true`).

use std::collections::HashMap;

use mail_parser::MessageParser;
use serde_json::{Map, Value, json};

use super::disposition_from_json;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::generic::storage;
use crate::jmap::mail::email::fields::EMAIL_ID_PREFIX;
use crate::jmap::types::{AccountId, Id};
use crate::mail::mdn::{self, OutgoingMdn};
use crate::outbound::queue::{self, EnqueueError, MessageKind, OutboundMessage};
use crate::store::blob::{BlobErrorKind, BlobHash};
use crate::store::commit::{DataType, commit_account};
use crate::store::{BoxFuture, StoreError, StoreErrorKind};

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(send(context, arguments))
}

/// The properties a client sets (RFC 9007 §2); the others are the server's.
const CLIENT_PROPERTIES: [&str; 7] = [
    "forEmailId",
    "subject",
    "textBody",
    "includeOriginalMessage",
    "reportingUA",
    "disposition",
    "extensionFields",
];
const SERVER_PROPERTIES: [&str; 5] = [
    "mdnGateway",
    "originalRecipient",
    "finalRecipient",
    "originalMessageId",
    "error",
];

/// The sender of the MDNs.
struct Sender {
    name: Option<String>,
    email: String,
}

async fn send(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let identity_id = arguments
        .take_string("identityId")?
        .ok_or_else(|| MethodError::invalid_arguments("\"identityId\" is required"))?;
    let requests = arguments
        .take_object("send")?
        .ok_or_else(|| MethodError::invalid_arguments("\"send\" is required"))?;
    let on_success = arguments
        .take_object("onSuccessUpdateEmail")?
        .unwrap_or_default();
    arguments.finish()?;
    let max_objects = context.engine.limits.max_objects_in_set;
    if requests.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInSet ({max_objects}) MDNs"),
        ));
    }
    // RFC 9007 §3.1: onSuccessUpdateEmail keys are always back references to `send`.
    for key in on_success.keys() {
        let named = key
            .strip_prefix('#')
            .is_some_and(|creation_id| requests.contains_key(creation_id));
        if !named {
            return Err(MethodError::invalid_arguments(format!(
                "onSuccessUpdateEmail key {key:?} is not #creationId of an MDN in send"
            )));
        }
    }
    let sender = load_sender(context, account, &identity_id).await?;
    let mut sent = Map::new();
    let mut not_sent = Map::new();
    let mut email_of: HashMap<String, u64> = HashMap::new();
    for (creation_id, request) in requests {
        match send_one(context, account, &sender, request).await? {
            Ok((email_id, answer)) => {
                email_of.insert(creation_id.clone(), email_id);
                sent.insert(creation_id, answer);
            }
            Err(error) => {
                not_sent.insert(creation_id, error.to_json());
            }
        }
    }
    let or_null = |map: Map<String, Value>| match map.is_empty() {
        true => Value::Null,
        false => Value::Object(map),
    };
    let response = json!({
        "accountId": account,
        "sent": or_null(sent),
        "notSent": or_null(not_sent),
    });
    let update: Map<String, Value> = on_success
        .into_iter()
        .filter_map(|(key, patch)| {
            let email_id = email_of.get(key.strip_prefix('#')?)?;
            Some((
                Id::from_number(EMAIL_ID_PREFIX, *email_id).into_string(),
                patch,
            ))
        })
        .collect();
    if !update.is_empty() {
        // One implicit Email/set, answered after this response (as RFC 8621 §7.5 does).
        let mut implicit = Map::new();
        implicit.insert("accountId".into(), Value::String(account.to_string()));
        implicit.insert("update".into(), Value::Object(update));
        let outcome =
            crate::jmap::mail::email::set::handle(context, Arguments::new(implicit)).await;
        let (name, arguments) = match outcome {
            Ok(arguments) => ("Email/set".to_owned(), arguments),
            Err(error) => ("error".to_owned(), error.to_json()),
        };
        context.implicit_responses.push((name, arguments));
    }
    Ok(response)
}

async fn load_sender(
    context: &CallContext<'_>,
    account: AccountId,
    identity_id: &str,
) -> Result<Sender, MethodError> {
    let unknown =
        || MethodError::invalid_arguments("\"identityId\" names no Identity of the account");
    let number = Id::parse(identity_id)
        .ok()
        .and_then(|id| id.to_number(crate::jmap::mail::email_submission::IDENTITY_ID_PREFIX))
        .ok_or_else(unknown)?;
    let account_id = account.number();
    let identity = context
        .engine
        .store
        .read(move |tx| {
            Box::pin(async move { storage::load(tx, account_id, DataType::Identity, number).await })
        })
        .await
        .map_err(|error| MethodError::from_store(&error))?
        .ok_or_else(unknown)?;
    let email = identity
        .get("email")
        .and_then(Value::as_str)
        .ok_or_else(unknown)?
        .to_owned();
    let name = identity
        .get("name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    Ok(Sender { name, email })
}

fn invalid(property: &str, description: impl Into<String>) -> SetError {
    SetError::invalid_properties([property.to_owned()], description)
}

fn optional_text(request: &Map<String, Value>, name: &str) -> Result<Option<String>, SetError> {
    match request.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(name, format!("{name} must be a String"))),
    }
}

/// Sends one MDN: the Email it is for and the server-set properties, or why not.
async fn send_one(
    context: &CallContext<'_>,
    account: AccountId,
    sender: &Sender,
    request: Value,
) -> Result<Result<(u64, Value), SetError>, MethodError> {
    let Value::Object(request) = request else {
        return Ok(Err(invalid("forEmailId", "an MDN is an object")));
    };
    if let Some(name) = request
        .keys()
        .find(|name| !CLIENT_PROPERTIES.contains(&name.as_str()))
    {
        let why = match SERVER_PROPERTIES.contains(&name.as_str()) {
            true => format!("{name} is set by the server"),
            false => format!("MDN has no property {name:?}"),
        };
        return Ok(Err(invalid(name, why)));
    }
    let parsed = parse_request(context, &request);
    let (email_id, fields) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Ok(Err(error)),
    };
    let account_id = account.number();
    let record = context
        .engine
        .store
        .read(move |tx| {
            Box::pin(async move { crate::mail::store::load_record(tx, account_id, email_id).await })
        })
        .await
        .map_err(|error| MethodError::from_store(&error))?;
    let Some(record) = record else {
        return Ok(Err(invalid("forEmailId", "no such Email")));
    };
    // RFC 9007 §3.1: an MDN is sent once per message.
    if record.has_keyword("$mdnsent") {
        return Ok(Err(SetError::with_description(
            SetErrorType::MdnAlreadySent,
            "the Email already has $mdnsent",
        )));
    }
    let max_size = context.engine.limits.max_size_upload;
    let raw = match context
        .engine
        .blobs
        .read_to_vec(account_id, &record.blob, max_size)
        .await
    {
        Ok(raw) => raw,
        Err(error) if error.kind == BlobErrorKind::NotFound => {
            return Ok(Err(invalid("forEmailId", "the Email's message is gone")));
        }
        Err(error) => {
            let kind = error.store_kind.unwrap_or(StoreErrorKind::Io);
            return Err(MethodError::from_store(&StoreError::new(
                kind,
                error.message,
            )));
        }
    };
    // RFC 8098 §2.1: only to the address the sender asked for.
    let Some(to) = mdn::requested_by(&raw).filter(|to| queue::is_valid_address(to)) else {
        return Ok(Err(invalid(
            "forEmailId",
            "the Email asks for no MDN (no valid Disposition-Notification-To)",
        )));
    };
    let original = MessageParser::default().parse_headers(&raw);
    let original_message_id = original
        .as_ref()
        .and_then(|message| message.message_id())
        .map(|id| format!("<{id}>"));
    let original_subject = original
        .as_ref()
        .and_then(|message| message.subject())
        .unwrap_or("")
        .to_owned();
    // RFC 8098 §3.2.3: from the original's Original-Recipient header, when it has one.
    let original_recipient = original
        .as_ref()
        .and_then(|message| message.header_raw("Original-Recipient"))
        .map(|value| value.trim().to_owned());
    let final_recipient = format!("rfc822; {}", sender.email);
    let domain = sender
        .email
        .rsplit_once('@')
        .map_or("", |(_, domain)| domain);
    let reporting_ua = fields
        .reporting_ua
        .clone()
        .unwrap_or_else(|| format!("{domain}; Tern {}", env!("CARGO_PKG_VERSION")));
    let subject = fields.subject.clone().unwrap_or_else(|| {
        format!(
            "Return Receipt ({}): {original_subject}",
            fields.disposition.kind.as_str()
        )
    });
    let text_body = fields.text_body.clone().unwrap_or_else(|| {
        format!(
            "This is a receipt for the message sent to {} with the subject \"{original_subject}\": \
             it was {}.\r\nIt says nothing about whether it was read or understood.\r\n",
            sender.email,
            fields.disposition.kind.as_str()
        )
    });
    let outgoing = OutgoingMdn {
        from_name: sender.name.as_deref(),
        from_email: &sender.email,
        to: &to,
        subject: &subject,
        text: &text_body,
        reporting_ua: Some(&reporting_ua),
        final_recipient: &final_recipient,
        original_recipient: original_recipient.as_deref(),
        original_message_id: original_message_id.as_deref(),
        disposition: fields.disposition,
        errors: &[],
        extension_fields: &fields.extension_fields,
        original: fields.include_original.then_some(raw.as_slice()),
    };
    let bytes = match mdn::build(&outgoing) {
        Ok(bytes) => bytes,
        Err(why) => return Ok(Err(invalid("extensionFields", why))),
    };
    let size = bytes.len() as u64;
    let stored = context
        .engine
        .blobs
        .put(account_id, bytes::Bytes::from(bytes))
        .await
        .map_err(|error| {
            let kind = error.store_kind.unwrap_or(StoreErrorKind::Io);
            MethodError::from_store(&StoreError::new(kind, error.message))
        })?;
    match enqueue(context, account_id, stored.id, size, &to).await? {
        Ok(()) => {}
        Err(error) => return Ok(Err(error)),
    }
    tracing::info!(account_id, email_id, %to, "MDN queued");
    let mut answer = Map::new();
    // RFC 9007 §3.1: the properties the client did not set, as the server set them.
    if fields.subject.is_none() {
        answer.insert("subject".into(), json!(subject));
    }
    if fields.text_body.is_none() {
        answer.insert("textBody".into(), json!(text_body));
    }
    if fields.reporting_ua.is_none() {
        answer.insert("reportingUA".into(), json!(reporting_ua));
    }
    answer.insert("mdnGateway".into(), Value::Null);
    answer.insert("originalRecipient".into(), json!(original_recipient));
    answer.insert("finalRecipient".into(), json!(final_recipient));
    answer.insert("originalMessageId".into(), json!(original_message_id));
    answer.insert("error".into(), Value::Null);
    Ok(Ok((email_id, Value::Object(answer))))
}

/// The client's settings of one MDN.
struct Fields {
    subject: Option<String>,
    text_body: Option<String>,
    reporting_ua: Option<String>,
    include_original: bool,
    disposition: mdn::Disposition,
    extension_fields: Vec<(String, String)>,
}

fn parse_request(
    context: &CallContext<'_>,
    request: &Map<String, Value>,
) -> Result<(u64, Fields), SetError> {
    let email_id = match request.get("forEmailId") {
        Some(Value::String(text)) => context
            .resolve_id(text)
            .ok()
            .flatten()
            .and_then(|id| id.to_number(EMAIL_ID_PREFIX))
            .ok_or_else(|| invalid("forEmailId", "no such Email"))?,
        _ => return Err(invalid("forEmailId", "forEmailId is required")),
    };
    let disposition = request
        .get("disposition")
        .ok_or_else(|| invalid("disposition", "disposition is required"))
        .and_then(|value| {
            disposition_from_json(value).map_err(|why| invalid("disposition", why))
        })?;
    let include_original = match request.get("includeOriginalMessage") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            return Err(invalid(
                "includeOriginalMessage",
                "includeOriginalMessage must be a Boolean",
            ));
        }
    };
    let extension_fields = match request.get("extensionFields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(fields)) => fields
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => Ok((name.clone(), text.clone())),
                _ => Err(invalid(
                    "extensionFields",
                    "extension field values are Strings",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(invalid(
                "extensionFields",
                "extensionFields must be a String[String]",
            ));
        }
    };
    Ok((
        email_id,
        Fields {
            subject: optional_text(request, "subject")?,
            text_body: optional_text(request, "textBody")?,
            reporting_ua: optional_text(request, "reportingUA")?,
            include_original,
            disposition,
            extension_fields,
        },
    ))
}

/// Queues the MDN for `to` in the account's commit.
async fn enqueue(
    context: &CallContext<'_>,
    account_id: u32,
    blob: BlobHash,
    size: u64,
    to: &str,
) -> Result<Result<(), SetError>, MethodError> {
    let to = to.to_owned();
    let outcome = commit_account(&context.engine.store, account_id, |tx, _changes| {
        let to = to.clone();
        Box::pin(async move {
            // RFC 8098 §3: the envelope sender of an MDN is null.
            let mut message = OutboundMessage::new(account_id, blob, size, "", [to], 0);
            message.kind = MessageKind::Mdn;
            match queue::enqueue(tx, &message).await {
                Ok(_) => Ok(Ok(())),
                Err(EnqueueError::Store(error)) => Err(error),
                Err(EnqueueError::RateLimited {
                    retry_after_seconds,
                }) => Ok(Err(SetError::with_description(
                    SetErrorType::RateLimit,
                    format!("sending limit reached; retry in {retry_after_seconds} s"),
                ))),
                Err(other) => Ok(Err(invalid("forEmailId", other.to_string()))),
            }
        })
    })
    .await
    .map_err(|error| MethodError::from_store(&error))?;
    Ok(outcome.value)
}
