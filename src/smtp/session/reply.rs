//! SMTP replies: a code, an enhanced status code (RFC 3463, advertised as
//! ENHANCEDSTATUSCODES, RFC 2034) and one line of text, written with smtp-proto's `Response`.

use std::fmt;

/// The longest reply text: 512 octets less `DDD C.SSS.DDD ` (14) and CRLF.
const MAX_REPLY_TEXT: usize = 512 - 14 - 2;

/// One single-line SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code `class.subject.detail` (RFC 3463).
    pub enhanced: (u8, u16, u16),
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Reply {
        // One line only: a CR or LF in the text would let it forge further replies.
        let mut text: String = text
            .into()
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        // RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its code and CRLF.
        // Texts that quote the client (an unsupported parameter, an address) are cut to fit.
        if text.len() > MAX_REPLY_TEXT {
            let mut end = MAX_REPLY_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Reply {
            code,
            enhanced,
            text,
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// Writes `code class.subject.detail text CRLF`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let (class, subject, detail) = self.enhanced;
        match (u8::try_from(subject), u8::try_from(detail)) {
            (Ok(subject), Ok(detail)) if subject < 10 && detail < 10 => {
                let response =
                    smtp_proto::Response::new(self.code, class, subject, detail, &self.text);
                // Writing to a Vec cannot fail.
                let _ = response.write(&mut *out);
            }
            _ => {
                // smtp-proto writes only one-digit subjects and details compactly; this is
                // the same format for the longer ones (e.g. 5.7.11).
                out.extend_from_slice(
                    format!("{} {class}.{subject}.{detail} {}\r\n", self.code, self.text)
                        .as_bytes(),
                );
            }
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (class, subject, detail) = self.enhanced;
        write!(
            formatter,
            "{} {class}.{subject}.{detail} {}",
            self.code, self.text
        )
    }
}

/// The replies the session and the policy use, by name.
pub mod replies {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, (2, 0, 0), "OK")
    }
    pub fn sender_ok() -> Reply {
        Reply::new(250, (2, 1, 0), "Sender OK")
    }
    pub fn recipient_ok() -> Reply {
        Reply::new(250, (2, 1, 5), "Recipient OK")
    }
    pub fn reset() -> Reply {
        Reply::new(250, (2, 0, 0), "Reset")
    }
    pub fn bye() -> Reply {
        Reply::new(221, (2, 0, 0), "Bye")
    }
    pub fn start_data() -> Reply {
        Reply::new(354, (0, 0, 0), "Start mail input; end with <CRLF>.<CRLF>")
    }
    pub fn help() -> Reply {
        Reply::new(
            214,
            (2, 0, 0),
            "See RFC 5321; Tern receives mail for its accounts",
        )
    }
    /// RFC 5321 §3.5.3: VRFY may answer 252 without telling which users exist.
    pub fn cannot_verify() -> Reply {
        Reply::new(
            252,
            (2, 1, 5),
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    pub fn unknown_command() -> Reply {
        Reply::new(500, (5, 5, 1), "Unknown command")
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, (5, 5, 2), "Line too long")
    }
    pub fn syntax(usage: &str) -> Reply {
        Reply::new(501, (5, 5, 2), format!("Syntax: {usage}"))
    }
    pub fn not_implemented() -> Reply {
        Reply::new(502, (5, 5, 1), "Command not implemented")
    }
    pub fn bad_sequence(why: &str) -> Reply {
        Reply::new(503, (5, 5, 1), why)
    }
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, (5, 5, 1), "No valid recipients")
    }
    pub fn message_too_big(limit: usize) -> Reply {
        Reply::new(
            552,
            (5, 3, 4),
            format!("Message size exceeds the {limit}-octet limit"),
        )
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, (4, 5, 3), "Too many recipients")
    }
    /// RFC 3463 X.2.2 "mailbox full", as a temporary failure: RFC 5321 §4.5.3.1.10 has
    /// clients treat a 552 at RCPT as temporary anyway, and the owner may make room; the sender
    /// retries and delivers then, or bounces after its queue lifetime.
    pub fn mailbox_full() -> Reply {
        Reply::new(452, (4, 2, 2), "Mailbox full: the recipient is over quota")
    }
    pub fn unknown_user() -> Reply {
        Reply::new(550, (5, 1, 1), "No such user here")
    }
    pub fn relay_denied() -> Reply {
        Reply::new(550, (5, 7, 1), "Relaying denied")
    }
    pub fn local_error() -> Reply {
        Reply::new(451, (4, 3, 0), "Local error in processing; try again later")
    }
    pub fn auth_required() -> Reply {
        Reply::new(530, (5, 7, 0), "Authentication required")
    }
    pub fn encryption_required() -> Reply {
        Reply::new(
            538,
            (5, 7, 11),
            "Encryption required for AUTH; use STARTTLS",
        )
    }
    pub fn auth_ok() -> Reply {
        Reply::new(235, (2, 7, 0), "Authentication successful")
    }
    pub fn auth_failed() -> Reply {
        Reply::new(535, (5, 7, 8), "Authentication credentials invalid")
    }
    pub fn auth_cancelled() -> Reply {
        Reply::new(501, (5, 0, 0), "Authentication cancelled")
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many errors; closing connection")
    }
    pub fn timeout() -> Reply {
        Reply::new(421, (4, 4, 2), "Timeout; closing connection")
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, (4, 3, 2), "Service shutting down; try again later")
    }
    pub fn ready_for_tls() -> Reply {
        Reply::new(220, (2, 0, 0), "Ready to start TLS")
    }
}
