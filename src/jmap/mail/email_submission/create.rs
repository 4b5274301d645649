//! EmailSubmission/set create (RFC 8621 §7.5): checks the Identity, the Email and the
//! envelope (given, or derived from the headers), then — in the caller's one transaction —
//! stores the EmailSubmission and puts the message on the outbound queue. Local recipients
//! are the queue's business too (it hands them to the ingress delivery path).

use serde_json::{Map, Value, json};

use super::envelope::{self, invalid_email, is_smtp_address};
use super::{IDENTITY_ID_PREFIX, MAX_RECIPIENTS, MAX_SUBMISSION_SIZE};
use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::generic::{Created, WriteScope, storage};
use crate::jmap::mail::email::fields::EMAIL_ID_PREFIX;
use crate::jmap::mail::identity::may_send_as;
use crate::jmap::types::UtcDate;
use crate::mail::mailbox::load_all;
use crate::mail::sharing::{Rights, SharedView, Viewer};
use crate::mail::store as mail_store;
use crate::mail::submission::{
    self, Envelope, EnvelopeAddress, RecipientStatus, SubmissionRecord, UndoStatus,
};
use crate::outbound::queue::{self, DsnReturn, EnqueueError, MessageKind, Notify, OutboundMessage};
use crate::store::blob::BlobHash;
use crate::store::commit::{Changes, DataType};
use crate::store::{StoreResult, Transaction};

/// What the client asked for, read from the create object.
struct Request {
    identity_id: u64,
    email_id: u64,
    envelope: Option<Envelope>,
}

pub async fn create(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    scope: &WriteScope<'_>,
    object: Map<String, Value>,
) -> StoreResult<Result<Created, SetError>> {
    let request = match read_request(scope, &object) {
        Ok(request) => request,
        Err(error) => return Ok(Err(error)),
    };
    if let Some(viewer) = scope.viewer
        && let Err(error) = may_submit(tx, scope.account_id, viewer, request.email_id).await?
    {
        return Ok(Err(error));
    }
    let checked = match check(tx, scope.account_id, &request).await? {
        Ok(checked) => checked,
        Err(error) => return Ok(Err(error)),
    };
    let account_id = scope.account_id;
    let submission_id = submission::allocate(tx, account_id).await?;
    let outbound_id = match enqueue(tx, account_id, submission_id, &checked).await? {
        Ok(id) => id,
        Err(error) => return Ok(Err(error)),
    };
    let record = SubmissionRecord {
        identity_id: request.identity_id,
        email_id: request.email_id,
        thread_id: checked.thread_id,
        delivery_status: checked
            .envelope
            .rcpt_to
            .iter()
            .map(|address| RecipientStatus::queued(address.email.clone()))
            .collect(),
        envelope: checked.envelope,
        send_at: checked.send_at,
        undo_status: UndoStatus::Pending,
        dsn_blobs: Vec::new(),
        mdn_blobs: Vec::new(),
        outbound_id: Some(outbound_id),
    };
    submission::insert(tx, changes, account_id, submission_id, &record)?;
    tracing::info!(
        account_id,
        submission_id,
        outbound_id,
        recipients = record.envelope.rcpt_to.len(),
        send_at = record.send_at,
        "EmailSubmission created"
    );
    // RFC 8620 §5.3: report what the server set or defaulted.
    let mut server_set = super::to_json(&record);
    server_set.remove("identityId");
    server_set.remove("emailId");
    if request.envelope.is_some() {
        server_set.remove("envelope");
    }
    Ok(Ok(Created {
        id: submission_id,
        server_set,
    }))
}

/// RFC 8621 §2 `maySubmit`, for a grantee sending from a shared account: the Email must be
/// one they see, in a Mailbox that grants it (an Email they do not see is as if missing).
async fn may_submit(
    tx: &mut dyn Transaction,
    account_id: u32,
    viewer: &Viewer,
    email_id: u64,
) -> StoreResult<Result<(), SetError>> {
    let view = SharedView::of_account(account_id, &load_all(tx, account_id).await?, viewer);
    let record = mail_store::load_record(tx, account_id, email_id).await?;
    let Some(record) = record.filter(|record| view.shows_email(&record.mailbox_ids)) else {
        return Ok(Err(SetError::invalid_properties(
            ["emailId"],
            "emailId must name an existing object",
        )));
    };
    if record
        .mailbox_ids
        .iter()
        .any(|mailbox_id| view.may(*mailbox_id, Rights::SUBMIT))
    {
        return Ok(Ok(()));
    }
    Ok(Err(SetError::with_description(
        SetErrorType::Forbidden,
        "none of the Email's Mailboxes grants maySubmit",
    )))
}

fn read_request(scope: &WriteScope<'_>, object: &Map<String, Value>) -> Result<Request, SetError> {
    let reference = |property: &str, prefix: char| {
        object
            .get(property)
            .and_then(Value::as_str)
            .and_then(|text| scope.resolve_id(text))
            .and_then(|id| id.to_number(prefix))
            .ok_or_else(|| {
                SetError::invalid_properties(
                    [property],
                    format!("{property} must name an existing object"),
                )
            })
    };
    let identity_id = reference("identityId", IDENTITY_ID_PREFIX)?;
    let email_id = reference("emailId", EMAIL_ID_PREFIX)?;
    let envelope = match object.get("envelope") {
        None | Some(Value::Null) => None,
        Some(value) => Some(envelope::parse(value)?),
    };
    // RFC 8621 §7: a new submission is pending; a client may say so, nothing else.
    match object.get("undoStatus") {
        None | Some(Value::Null) => {}
        Some(Value::String(status)) if status == "pending" => {}
        Some(_) => {
            return Err(SetError::invalid_properties(
                ["undoStatus"],
                "a new EmailSubmission is \"pending\"",
            ));
        }
    }
    Ok(Request {
        identity_id,
        email_id,
        envelope,
    })
}

/// A submission that passed every check.
struct Checked {
    blob: BlobHash,
    size: u64,
    thread_id: u64,
    envelope: Envelope,
    /// Unix seconds.
    send_at: i64,
}

async fn check(
    tx: &mut dyn Transaction,
    account_id: u32,
    request: &Request,
) -> StoreResult<Result<Checked, SetError>> {
    let identity = storage::load(tx, account_id, DataType::Identity, request.identity_id).await?;
    let Some(identity_email) = identity
        .as_ref()
        .and_then(|identity| identity.get("email"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Ok(Err(SetError::invalid_properties(
            ["identityId"],
            "no such Identity",
        )));
    };
    let record = mail_store::load_record(tx, account_id, request.email_id).await?;
    let parsed = mail_store::load_parsed(tx, account_id, request.email_id).await?;
    let (Some(record), Some(parsed)) = (record, parsed) else {
        return Ok(Err(SetError::invalid_properties(
            ["emailId"],
            "no such Email",
        )));
    };
    Ok(check_message(
        record,
        &parsed,
        &identity_email,
        request.envelope.clone(),
    ))
}

/// The checks that need no store (RFC 8621 §7.5 create errors), in the order a client can
/// fix them: size, From, envelope sender, recipients, release time.
fn check_message(
    record: mail_store::EmailRecord,
    parsed: &crate::mail::parsed::ParsedEmail,
    identity_email: &str,
    given: Option<Envelope>,
) -> Result<Checked, SetError> {
    if record.size > MAX_SUBMISSION_SIZE {
        return Err(SetError {
            extra: Some(single("maxSize", json!(MAX_SUBMISSION_SIZE))),
            ..SetError::with_description(
                SetErrorType::TooLarge,
                format!("the Email is larger than {MAX_SUBMISSION_SIZE} octets"),
            )
        });
    }
    // RFC 5322 §3.6: a message has a From; every From address must be the Identity's.
    let from = parsed.from.as_deref().unwrap_or_default();
    if from.is_empty() {
        return Err(invalid_email(["from"], "the Email has no From address"));
    }
    if let Some(other) = from
        .iter()
        .find(|address| !may_send_as(identity_email, &address.email))
    {
        return Err(SetError::with_description(
            SetErrorType::ForbiddenFrom,
            format!(
                "the Identity ({identity_email}) may not send as From {:?}",
                other.email
            ),
        ));
    }
    let envelope = match given {
        Some(envelope) => envelope,
        None => envelope::derive(parsed, identity_email)?,
    };
    let mail_from = &envelope.mail_from.email;
    if !is_smtp_address(mail_from) || !may_send_as(identity_email, mail_from) {
        return Err(SetError::with_description(
            SetErrorType::ForbiddenMailFrom,
            format!("the Identity ({identity_email}) may not use MAIL FROM {mail_from:?}"),
        ));
    }
    check_recipients(&envelope.rcpt_to)?;
    let now = UtcDate::now().unix_seconds();
    let send_at = envelope::release_time(&envelope.mail_from, now)?;
    Ok(Checked {
        blob: record.blob,
        size: record.size,
        thread_id: record.thread_id,
        envelope,
        send_at,
    })
}

fn check_recipients(rcpt_to: &[EnvelopeAddress]) -> Result<(), SetError> {
    if rcpt_to.is_empty() {
        return Err(SetError::with_description(
            SetErrorType::NoRecipients,
            "the envelope has no recipient",
        ));
    }
    if rcpt_to.len() > MAX_RECIPIENTS {
        return Err(SetError {
            extra: Some(single("maxRecipients", json!(MAX_RECIPIENTS))),
            ..SetError::with_description(
                SetErrorType::TooManyRecipients,
                format!("more than {MAX_RECIPIENTS} recipients"),
            )
        });
    }
    let invalid: Vec<Value> = rcpt_to
        .iter()
        .filter(|address| !is_smtp_address(&address.email))
        .map(|address| Value::String(address.email.clone()))
        .collect();
    if !invalid.is_empty() {
        return Err(SetError {
            extra: Some(single("invalidRecipients", Value::Array(invalid))),
            ..SetError::with_description(
                SetErrorType::InvalidRecipients,
                "some recipient addresses are not valid",
            )
        });
    }
    Ok(())
}

fn single(name: &str, value: Value) -> Map<String, Value> {
    let mut map = Map::with_capacity(1);
    map.insert(name.to_owned(), value);
    map
}

/// Puts the message on the outbound queue (same transaction); returns the queue entry's id.
/// The DSN parameters of the envelope (RFC 3461: RET, ENVID on mailFrom; NOTIFY, ORCPT on
/// recipients) travel with it.
async fn enqueue(
    tx: &mut dyn Transaction,
    account_id: u32,
    submission_id: u64,
    checked: &Checked,
) -> StoreResult<Result<u64, SetError>> {
    let envelope = &checked.envelope;
    let recipients = envelope.rcpt_to.iter().map(|a| a.email.clone());
    let mut message = OutboundMessage::new(
        account_id,
        checked.blob,
        checked.size,
        envelope.mail_from.email.clone(),
        recipients,
        checked.send_at.saturating_mul(1000),
    );
    message.kind = MessageKind::Submission;
    message.submission_id = Some(submission_id);
    message.ret = match envelope.mail_from.parameter("RET").flatten() {
        Some(value) if value.eq_ignore_ascii_case("FULL") => Some(DsnReturn::Full),
        Some(value) if value.eq_ignore_ascii_case("HDRS") => Some(DsnReturn::Headers),
        _ => None,
    };
    message.env_id = envelope
        .mail_from
        .parameter("ENVID")
        .flatten()
        .map(str::to_owned);
    for (recipient, address) in message.recipients.iter_mut().zip(&envelope.rcpt_to) {
        if let Some(notify) = address.parameter("NOTIFY").flatten() {
            recipient.notify = parse_notify(notify);
        }
        recipient.orcpt = address.parameter("ORCPT").flatten().map(str::to_owned);
    }
    match queue::enqueue(tx, &message).await {
        Ok(id) => Ok(Ok(id)),
        Err(EnqueueError::Store(error)) => Err(error),
        Err(EnqueueError::NoRecipients) => Ok(Err(SetError::new(SetErrorType::NoRecipients))),
        Err(EnqueueError::InvalidAddress(address)) if address == envelope.mail_from.email => {
            Ok(Err(SetError::new(SetErrorType::ForbiddenMailFrom)))
        }
        Err(EnqueueError::InvalidAddress(address)) => Ok(Err(SetError {
            extra: Some(single("invalidRecipients", json!([address]))),
            ..SetError::new(SetErrorType::InvalidRecipients)
        })),
        Err(EnqueueError::BlobNotFound) => Ok(Err(invalid_email(
            ["blobId"],
            "the Email's message is gone",
        ))),
        // RFC 8621 §7.5 forbiddenToSend: "not permitted to send at all right now".
        Err(EnqueueError::RateLimited {
            retry_after_seconds,
        }) => Ok(Err(SetError::with_description(
            SetErrorType::ForbiddenToSend,
            format!("sending limit reached; retry in {retry_after_seconds} s"),
        ))),
    }
}

/// RFC 3461 §4.1: `NEVER` or a comma list of SUCCESS, FAILURE, DELAY.
fn parse_notify(value: &str) -> Notify {
    if value.eq_ignore_ascii_case("NEVER") {
        return Notify::NEVER;
    }
    let has = |word: &str| value.split(',').any(|item| item.eq_ignore_ascii_case(word));
    Notify {
        success: has("SUCCESS"),
        failure: has("FAILURE"),
        delay: has("DELAY"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parsed::{EmailAddress, ParsedEmail};

    fn record(size: u64) -> mail_store::EmailRecord {
        mail_store::EmailRecord {
            blob: BlobHash::of(b"m"),
            thread_id: 4,
            received_at: 0,
            size,
            mailbox_ids: vec![1],
            keywords: Vec::new(),
            sent_at: None,
            has_attachment: false,
            base_subject: String::new(),
            from_sort: String::new(),
            to_sort: String::new(),
        }
    }

    fn parsed(from: &str, to: &[&str]) -> ParsedEmail {
        let address = |email: &str| EmailAddress {
            name: None,
            email: email.to_owned(),
        };
        ParsedEmail {
            from: Some(vec![address(from)]),
            to: Some(to.iter().map(|email| address(email)).collect()),
            ..ParsedEmail::default()
        }
    }

    fn error_of(result: Result<Checked, SetError>) -> SetError {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(error) => error,
        }
    }

    #[test]
    fn each_create_error_has_its_rfc_type_and_members() {
        let me = "alice@example.test";
        let ok = parsed(me, &["bob@example.org"]);
        let error = error_of(check_message(
            record(MAX_SUBMISSION_SIZE + 1),
            &ok,
            me,
            None,
        ));
        assert_eq!(error.to_json()["type"], "tooLarge");
        assert_eq!(error.to_json()["maxSize"], MAX_SUBMISSION_SIZE);

        let forged = parsed("mallory@example.test", &["bob@example.org"]);
        let error = error_of(check_message(record(10), &forged, me, None));
        assert_eq!(error.kind, SetErrorType::ForbiddenFrom);

        let nobody = parsed(me, &[]);
        let error = error_of(check_message(record(10), &nobody, me, None));
        assert_eq!(error.kind, SetErrorType::NoRecipients);

        let many: Vec<String> = (0..=MAX_RECIPIENTS)
            .map(|n| format!("r{n}@example.org"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let error = error_of(check_message(record(10), &parsed(me, &many), me, None));
        assert_eq!(error.to_json()["maxRecipients"], MAX_RECIPIENTS);

        let bad = parsed(me, &["bob@example.org", "not an address"]);
        let error = error_of(check_message(record(10), &bad, me, None));
        assert_eq!(
            error.to_json()["invalidRecipients"],
            json!(["not an address"])
        );

        let other_sender = Envelope {
            mail_from: EnvelopeAddress::plain("boss@example.test"),
            rcpt_to: vec![EnvelopeAddress::plain("bob@example.org")],
        };
        let error = error_of(check_message(record(10), &ok, me, Some(other_sender)));
        assert_eq!(error.kind, SetErrorType::ForbiddenMailFrom);

        let checked = check_message(record(10), &ok, me, None).expect("valid");
        assert_eq!(checked.envelope.mail_from.email, me);
        assert_eq!(checked.thread_id, 4);
    }

    #[test]
    fn notify_lists_are_read_case_insensitively() {
        assert_eq!(parse_notify("never"), Notify::NEVER);
        let notify = parse_notify("SUCCESS,failure");
        assert!(notify.success && notify.failure && !notify.delay);
    }
}
