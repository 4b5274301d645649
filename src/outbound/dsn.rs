//! Delivery status notifications (RFC 3464): the bounce of failed recipients and the delay
//! notice, as a `multipart/report; report-type=delivery-status` message (RFC 6522) built with
//! mail-builder, for the sender's Inbox.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::{BodyPart, MimePart};

use super::clock::UnixMillis;
use super::queue::{DsnReturn, OutboundMessage};

/// What happened to one recipient, for the report.
#[derive(Debug, Clone)]
pub struct RecipientStatus {
    pub address: String,
    pub orcpt: Option<String>,
    /// RFC 3464 §2.3.3 Action.
    pub action: DsnAction,
    /// RFC 3464 §2.3.4 Status (RFC 3463 code), e.g. `5.1.1`.
    pub status: String,
    /// The remote server's reply, `smtp; 550 5.1.1 ...` (RFC 3464 §2.3.6), when there was one.
    pub diagnostic: Option<String>,
    /// The host that gave it (RFC 3464 §2.3.5 Remote-MTA).
    pub remote_mta: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    Failed,
    Delayed,
}

impl DsnAction {
    fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
        }
    }
}

/// The header section of `raw` (up to the first empty line).
fn header_section(raw: &[u8]) -> &[u8] {
    let crlf = raw.windows(4).position(|window| window == b"\r\n\r\n");
    let lf = raw.windows(2).position(|window| window == b"\n\n");
    match (crlf, lf) {
        (Some(at), _) => &raw[..at + 2],
        (None, Some(at)) => &raw[..at + 1],
        (None, None) => raw,
    }
}

/// Builds the report. `raw` is the original message; `reporting_mta` the host name of this
/// server; `retry_until` when a delayed message gives up.
pub fn build_report(
    message: &OutboundMessage,
    raw: &[u8],
    statuses: &[RecipientStatus],
    reporting_mta: &str,
    now: UnixMillis,
    retry_until: UnixMillis,
) -> Vec<u8> {
    let failed = statuses
        .iter()
        .any(|status| status.action == DsnAction::Failed);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else {
        "Delayed Mail (still being retried)"
    };
    let mut human = String::new();
    if failed {
        human.push_str("This is the mail system at ");
        human.push_str(reporting_mta);
        human.push_str(
            ".\r\n\r\nYour message could not be delivered to one or more recipients.\r\n\r\n",
        );
    } else {
        human.push_str("This is the mail system at ");
        human.push_str(reporting_mta);
        human.push_str(
            ".\r\n\r\nYour message has not been delivered yet to the recipients below; it is \
             still being retried. You do not need to resend it.\r\n\r\n",
        );
    }
    for status in statuses {
        human.push_str(&format!(
            "<{}>: {}\r\n",
            status.address,
            status
                .diagnostic
                .as_deref()
                .unwrap_or(status.action.as_str())
        ));
    }

    // RFC 3464 §2.2: per-message fields, then one block per recipient.
    let mut report = String::new();
    report.push_str(&format!("Reporting-MTA: dns; {reporting_mta}\r\n"));
    if let Some(env_id) = &message.env_id {
        report.push_str(&format!("Original-Envelope-Id: {env_id}\r\n"));
    }
    report.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc2822_date(message.created_at)
    ));
    for status in statuses {
        report.push_str("\r\n");
        if let Some(orcpt) = &status.orcpt {
            report.push_str(&format!("Original-Recipient: {orcpt}\r\n"));
        }
        report.push_str(&format!("Final-Recipient: rfc822; {}\r\n", status.address));
        report.push_str(&format!("Action: {}\r\n", status.action.as_str()));
        report.push_str(&format!("Status: {}\r\n", status.status));
        if let Some(remote) = &status.remote_mta {
            report.push_str(&format!("Remote-MTA: dns; {remote}\r\n"));
        }
        if let Some(diagnostic) = &status.diagnostic {
            report.push_str(&format!("Diagnostic-Code: smtp; {diagnostic}\r\n"));
        }
        report.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc2822_date(now)));
        if status.action == DsnAction::Delayed {
            report.push_str(&format!(
                "Will-Retry-Until: {}\r\n",
                rfc2822_date(retry_until)
            ));
        }
    }

    let returned = if message.ret == Some(DsnReturn::Full) {
        MimePart::new(
            ContentType::new("message/rfc822"),
            BodyPart::Binary(Cow::Owned(raw.to_vec())),
        )
    } else {
        MimePart::new(
            ContentType::new("text/rfc822-headers"),
            BodyPart::Binary(Cow::Owned(header_section(raw).to_vec())),
        )
        .transfer_encoding("7bit")
    };
    let parts = vec![
        MimePart::new(ContentType::new("text/plain"), BodyPart::Text(human.into())),
        MimePart::new(
            ContentType::new("message/delivery-status"),
            BodyPart::Binary(Cow::Owned(report.into_bytes())),
        )
        .transfer_encoding("7bit"),
        returned,
    ];
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        BodyPart::Multipart(parts),
    );
    let from = format!("MAILER-DAEMON@{reporting_mta}");
    let to = message.mail_from.clone();
    let builder = MessageBuilder::new()
        .from(("Mail Delivery System", from.as_str()))
        .to(to.as_str())
        .subject(subject)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .date(now / 1000)
        .body(body);
    builder.write_to_vec().unwrap_or_default()
}

/// RFC 5322 date-time in UTC.
fn rfc2822_date(at: UnixMillis) -> String {
    mail_builder::headers::date::Date::new(at / 1000).to_rfc822()
}
