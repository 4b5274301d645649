//! Message Disposition Notifications, read receipts (RFC 8098; JMAP: RFC 9007), sans-IO:
//! building an MDN message (`multipart/report; report-type=disposition-notification`) and
//! parsing a received one. Values in, bytes or values out; `jmap::mdn` does the I/O.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// RFC 8098 §3.2.6.1 action modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionMode {
    ManualAction,
    AutomaticAction,
}

/// RFC 8098 §3.2.6.2 sending modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendingMode {
    SentManually,
    SentAutomatically,
}

/// RFC 8098 §3.2.6.3 disposition types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispositionType {
    Deleted,
    Dispatched,
    Displayed,
    Processed,
}

/// What happened to the message (RFC 8098 §3.2.6; RFC 9007 §2 `Disposition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disposition {
    pub action_mode: ActionMode,
    pub sending_mode: SendingMode,
    pub kind: DispositionType,
}

impl ActionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionMode::ManualAction => "manual-action",
            ActionMode::AutomaticAction => "automatic-action",
        }
    }

    pub fn parse(text: &str) -> Option<ActionMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "manual-action" => Some(ActionMode::ManualAction),
            "automatic-action" => Some(ActionMode::AutomaticAction),
            _ => None,
        }
    }
}

impl SendingMode {
    /// RFC 9007 spells them in lower case (RFC 8098 in mixed case; both are case-insensitive).
    pub fn as_str(self) -> &'static str {
        match self {
            SendingMode::SentManually => "mdn-sent-manually",
            SendingMode::SentAutomatically => "mdn-sent-automatically",
        }
    }

    pub fn parse(text: &str) -> Option<SendingMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "mdn-sent-manually" => Some(SendingMode::SentManually),
            "mdn-sent-automatically" => Some(SendingMode::SentAutomatically),
            _ => None,
        }
    }
}

impl DispositionType {
    pub fn as_str(self) -> &'static str {
        match self {
            DispositionType::Deleted => "deleted",
            DispositionType::Dispatched => "dispatched",
            DispositionType::Displayed => "displayed",
            DispositionType::Processed => "processed",
        }
    }

    pub fn parse(text: &str) -> Option<DispositionType> {
        match text.trim().to_ascii_lowercase().as_str() {
            "deleted" => Some(DispositionType::Deleted),
            "dispatched" => Some(DispositionType::Dispatched),
            "displayed" => Some(DispositionType::Displayed),
            "processed" => Some(DispositionType::Processed),
            _ => None,
        }
    }
}

impl Disposition {
    /// The `Disposition` field's value: `manual-action/MDN-sent-manually; displayed`.
    pub fn field(&self) -> String {
        let sending = match self.sending_mode {
            SendingMode::SentManually => "MDN-sent-manually",
            SendingMode::SentAutomatically => "MDN-sent-automatically",
        };
        format!(
            "{}/{sending}; {}",
            self.action_mode.as_str(),
            self.kind.as_str()
        )
    }

    /// Parses a `Disposition` field (modifiers after `/` in the type are ignored, RFC 8098
    /// §3.2.6.4).
    pub fn parse_field(value: &str) -> Option<Disposition> {
        let (modes, kind) = value.split_once(';')?;
        let (action, sending) = modes.split_once('/')?;
        let kind = kind.split('/').next()?;
        Some(Disposition {
            action_mode: ActionMode::parse(action)?,
            sending_mode: SendingMode::parse(sending)?,
            kind: DispositionType::parse(kind)?,
        })
    }
}

/// An MDN to send.
#[derive(Debug, Clone)]
pub struct OutgoingMdn<'a> {
    /// The sender: the Identity's name and address.
    pub from_name: Option<&'a str>,
    pub from_email: &'a str,
    /// The original's `Disposition-Notification-To` address.
    pub to: &'a str,
    pub subject: &'a str,
    /// The human-readable first part.
    pub text: &'a str,
    pub reporting_ua: Option<&'a str>,
    /// `Final-Recipient` (e.g. `rfc822; alice@example.test`).
    pub final_recipient: &'a str,
    pub original_recipient: Option<&'a str>,
    pub original_message_id: Option<&'a str>,
    pub disposition: Disposition,
    pub errors: &'a [String],
    /// Extension fields (`X-…` names), written after the standard ones.
    pub extension_fields: &'a [(String, String)],
    /// The original message, as the third part (`includeOriginalMessage`).
    pub original: Option<&'a [u8]>,
}

/// Whether a field value is one header line's worth of printable text.
fn field_safe(value: &str) -> bool {
    !value.chars().any(|c| c.is_control())
}

/// The `message/disposition-notification` body (RFC 8098 §3.1).
pub fn notification_fields(mdn: &OutgoingMdn<'_>) -> Result<String, String> {
    let mut fields = Vec::new();
    if let Some(ua) = mdn.reporting_ua {
        fields.push(("Reporting-UA".to_owned(), ua.to_owned()));
    }
    if let Some(original) = mdn.original_recipient {
        fields.push(("Original-Recipient".to_owned(), original.to_owned()));
    }
    fields.push(("Final-Recipient".to_owned(), mdn.final_recipient.to_owned()));
    if let Some(id) = mdn.original_message_id {
        fields.push(("Original-Message-ID".to_owned(), id.to_owned()));
    }
    fields.push(("Disposition".to_owned(), mdn.disposition.field()));
    for error in mdn.errors {
        fields.push(("Error".to_owned(), error.clone()));
    }
    for (name, value) in mdn.extension_fields {
        // RFC 8098 §3.3: extension fields are X- names (or registered ones).
        let valid_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_name {
            return Err(format!("{name:?} is not a field name"));
        }
        fields.push((name.clone(), value.clone()));
    }
    let mut body = String::new();
    for (name, value) in fields {
        if !field_safe(&value) {
            return Err(format!("the {name} field contains control characters"));
        }
        body.push_str(&name);
        body.push_str(": ");
        body.push_str(value.trim());
        body.push_str("\r\n");
    }
    Ok(body)
}

/// The MDN message (RFC 8098 §3): a `multipart/report` of the text, the notification fields
/// and, when asked, the original message.
pub fn build(mdn: &OutgoingMdn<'_>) -> Result<Vec<u8>, String> {
    let fields = notification_fields(mdn)?;
    let mut parts = vec![
        MimePart::new("text/plain", mdn.text.to_owned()),
        // Binary contents with an explicit 7bit encoding: written as they are, no charset.
        MimePart::new(
            ContentType::new("message/disposition-notification"),
            fields.into_bytes(),
        )
        .transfer_encoding("7bit"),
    ];
    if let Some(original) = mdn.original {
        let encoding = if original.is_ascii() { "7bit" } else { "8bit" };
        parts.push(
            MimePart::new(ContentType::new("message/rfc822"), original.to_vec())
                .transfer_encoding(encoding),
        );
    }
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "disposition-notification"),
        parts,
    );
    MessageBuilder::new()
        .from(Address::new_address(
            mdn.from_name.map(str::to_owned),
            mdn.from_email.to_owned(),
        ))
        .to(Address::new_address(None::<&str>, mdn.to.to_owned()))
        .subject(mdn.subject.to_owned())
        // RFC 3834 §5: generated, not a reply a person wrote; nothing should answer it.
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .map_err(|error| error.to_string())
}

/// Where the sender of `raw` asks for MDNs (`Disposition-Notification-To`, RFC 8098 §2.1):
/// its first address, if the header is there.
pub fn requested_by(raw: &[u8]) -> Option<String> {
    let message = MessageParser::default().parse_headers(raw)?;
    // mail-parser keeps this field unparsed: the first mailbox of its raw value
    // (`Name <addr>` or a bare `addr`), RFC 8098 §2.1.
    let value = unfold(message.header_raw("Disposition-Notification-To")?);
    // The first `<addr>` (a display name may hold commas), else the first bare address.
    let address = match value.find('<').zip(value.find('>')) {
        Some((open, close)) if open < close => &value[open + 1..close],
        _ => value.split(',').next()?,
    };
    let address = address.trim();
    (address.contains('@') && !address.contains(char::is_whitespace)).then(|| address.to_owned())
}

/// A received MDN, as RFC 9007 §2's MDN object reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedMdn {
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub include_original_message: bool,
    pub reporting_ua: Option<String>,
    pub disposition: Option<Disposition>,
    pub mdn_gateway: Option<String>,
    pub original_recipient: Option<String>,
    pub final_recipient: Option<String>,
    pub original_message_id: Option<String>,
    pub errors: Vec<String>,
    pub extension_fields: Vec<(String, String)>,
}

/// Parses an MDN; `None` when `raw` is not one (no `multipart/report` with a
/// `message/disposition-notification` part, or no valid `Disposition`).
pub fn parse(raw: &[u8]) -> Option<ReceivedMdn> {
    let message = MessageParser::default().parse(raw)?;
    let root = message.root_part();
    let report = root.content_type()?;
    let is_report = report.ctype().eq_ignore_ascii_case("multipart")
        && report
            .subtype()
            .is_some_and(|subtype| subtype.eq_ignore_ascii_case("report"));
    if !is_report {
        return None;
    }
    let mut mdn = ReceivedMdn {
        subject: message.subject().map(str::to_owned),
        ..ReceivedMdn::default()
    };
    let mut fields_found = false;
    for part in message.parts.iter().skip(1) {
        let Some(content_type) = part.content_type() else {
            if mdn.text_body.is_none()
                && let PartType::Text(text) = &part.body
            {
                mdn.text_body = Some(text.to_string());
            }
            continue;
        };
        let full = format!(
            "{}/{}",
            content_type.ctype().to_ascii_lowercase(),
            content_type.subtype().unwrap_or("").to_ascii_lowercase()
        );
        match full.as_str() {
            "message/disposition-notification" if !fields_found => {
                fields_found = read_fields(part.contents(), &mut mdn);
            }
            "message/rfc822" | "message/global" | "text/rfc822-headers" => {
                mdn.include_original_message = true;
            }
            "text/plain" if mdn.text_body.is_none() => {
                if let PartType::Text(text) = &part.body {
                    mdn.text_body = Some(text.to_string());
                }
            }
            _ => {}
        }
    }
    (fields_found && mdn.disposition.is_some()).then_some(mdn)
}

/// Reads the notification fields (header syntax, RFC 8098 §3.1) into `mdn`.
fn read_fields(body: &[u8], mdn: &mut ReceivedMdn) -> bool {
    // Header syntax; a blank line ends them, so one is added for a body without it.
    let mut block = body.to_vec();
    block.extend_from_slice(b"\r\n\r\n");
    let Some(parsed) = MessageParser::default().parse_headers(&block) else {
        return false;
    };
    for (name, value) in parsed.headers_raw() {
        let value = unfold(value);
        match name.to_ascii_lowercase().as_str() {
            "reporting-ua" => mdn.reporting_ua = Some(value),
            "mdn-gateway" => mdn.mdn_gateway = Some(value),
            "original-recipient" => mdn.original_recipient = Some(value),
            "final-recipient" => mdn.final_recipient = Some(value),
            "original-message-id" => mdn.original_message_id = Some(value),
            "disposition" => mdn.disposition = Disposition::parse_field(&value),
            "error" => mdn.errors.push(value),
            _ => mdn.extension_fields.push((name.to_owned(), value)),
        }
    }
    true
}

/// A raw header value unfolded (RFC 5322 §2.2.3) and trimmed.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn displayed() -> Disposition {
        Disposition {
            action_mode: ActionMode::ManualAction,
            sending_mode: SendingMode::SentManually,
            kind: DispositionType::Displayed,
        }
    }

    #[test]
    fn an_mdn_built_here_parses_back_to_the_same_values() {
        let extension = [("X-Tern-Test".to_owned(), "yes".to_owned())];
        let errors = ["none really".to_owned()];
        let original =
            b"From: b@example.test\r\nSubject: hi\r\nMessage-ID: <m1@example.test>\r\n\r\nbody\r\n";
        let mdn = OutgoingMdn {
            from_name: Some("Alice"),
            from_email: "alice@example.test",
            to: "b@example.test",
            subject: "Read: hi",
            text: "Your message was displayed.",
            reporting_ua: Some("example.test; Tern"),
            final_recipient: "rfc822; alice@example.test",
            original_recipient: None,
            original_message_id: Some("<m1@example.test>"),
            disposition: displayed(),
            errors: &errors,
            extension_fields: &extension,
            original: Some(original),
        };
        let raw = build(&mdn).expect("built");
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.contains("report-type=\"disposition-notification\"")
                || text.contains("report-type=disposition-notification"),
            "{text}"
        );
        assert!(
            text.contains("Disposition: manual-action/MDN-sent-manually; displayed\r\n"),
            "{text}"
        );
        let parsed = parse(&raw).expect("an MDN");
        assert_eq!(parsed.subject.as_deref(), Some("Read: hi"));
        assert_eq!(
            parsed.text_body.as_deref().map(str::trim),
            Some("Your message was displayed.")
        );
        assert!(parsed.include_original_message);
        assert_eq!(parsed.reporting_ua.as_deref(), Some("example.test; Tern"));
        assert_eq!(parsed.disposition, Some(displayed()));
        assert_eq!(
            parsed.final_recipient.as_deref(),
            Some("rfc822; alice@example.test")
        );
        assert_eq!(
            parsed.original_message_id.as_deref(),
            Some("<m1@example.test>")
        );
        assert_eq!(parsed.errors, errors);
        assert_eq!(parsed.extension_fields, extension);
    }

    #[test]
    fn rfc_8098_example_parses_and_ordinary_mail_is_no_mdn() {
        let raw = "Date: Wed, 20 Sep 1995 00:19:00 (EDT) -0400\r\n\
            From: Joe Recipient <Joe_Recipient@example.com>\r\n\
            Message-Id: <199509200019.12345@example.com>\r\n\
            Subject: Disposition notification\r\n\
            To: Jane Sender <Jane_Sender@example.org>\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/report; report-type=disposition-notification;\r\n\
            \tboundary=\"RAA14128.773615765/example.com\"\r\n\r\n\
            --RAA14128.773615765/example.com\r\n\r\n\
            The message sent on 1995 Sep 19 at 13:30:00 (EDT) -0400 to Joe\r\n\
            Recipient <Joe_Recipient@example.com> with subject \"First draft of\r\n\
            report\" has been displayed.\r\n\r\n\
            --RAA14128.773615765/example.com\r\n\
            content-type: message/disposition-notification\r\n\r\n\
            Reporting-UA: joes-pc.cs.example.com; Foomail 97.1\r\n\
            Original-Recipient: rfc822;Joe_Recipient@example.com\r\n\
            Final-Recipient: rfc822;Joe_Recipient@example.com\r\n\
            Original-Message-ID: <199509192301.23456@example.org>\r\n\
            Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n\
            --RAA14128.773615765/example.com--\r\n";
        let parsed = parse(raw.as_bytes()).expect("an MDN");
        assert_eq!(
            parsed.reporting_ua.as_deref(),
            Some("joes-pc.cs.example.com; Foomail 97.1")
        );
        assert_eq!(
            parsed.original_recipient.as_deref(),
            Some("rfc822;Joe_Recipient@example.com")
        );
        assert_eq!(parsed.disposition, Some(displayed()));
        assert!(!parsed.include_original_message);
        assert!(
            parsed
                .text_body
                .as_deref()
                .is_some_and(|text| text.contains("has been displayed"))
        );
        assert!(parse(b"From: a@b\r\nSubject: x\r\n\r\nhello\r\n").is_none());
        assert_eq!(
            requested_by(b"Disposition-Notification-To: Jane <jane@example.org>\r\n\r\nx"),
            Some("jane@example.org".to_owned())
        );
        assert_eq!(requested_by(b"Subject: x\r\n\r\nx"), None);
        assert_eq!(
            requested_by(b"Disposition-Notification-To: \"Doe, Jane\" <jane@example.org>\r\n\r\nx"),
            Some("jane@example.org".to_owned())
        );
        assert_eq!(
            requested_by(b"Disposition-Notification-To: jane@example.org, b@c\r\n\r\nx"),
            Some("jane@example.org".to_owned())
        );
        assert_eq!(
            Disposition::parse_field("manual-action/MDN-sent-manually"),
            None
        );
        assert_eq!(
            Disposition::parse_field("Automatic-Action/MDN-Sent-Automatically; processed/error"),
            Some(Disposition {
                action_mode: ActionMode::AutomaticAction,
                sending_mode: SendingMode::SentAutomatically,
                kind: DispositionType::Processed,
            })
        );
    }
}
