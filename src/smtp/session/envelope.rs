//! What a session is configured with and what it hands the listener: the envelope of a
//! received message, recipient questions and their answers.

use super::*;

/// How one listener's sessions behave.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    /// A submission listener (587/465): AUTH offered and required before MAIL.
    pub submission: bool,
    /// STARTTLS offered (a certificate is configured and the connection is not TLS yet).
    pub starttls: bool,
    /// AUTH allowed on an unencrypted connection (loopback clients only).
    pub auth_without_tls: bool,
    /// The SIZE limit (RFC 1870), in octets.
    pub max_message_size: usize,
    /// Accepted recipients per message; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Errors (4xx/5xx replies to commands) before the session closes with `421`.
    pub max_errors: usize,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            hostname: "localhost".to_owned(),
            submission: false,
            starttls: false,
            auth_without_tls: false,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 20,
        }
    }
}

/// A recipient the policy accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// The local account, or `None` for a recipient to relay (authenticated submission).
    pub account_id: Option<u32>,
    pub notify: Option<DsnNotify>,
    pub orcpt: Option<String>,
}

/// The envelope of one mail transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `""` for the null reverse-path.
    pub mail_from: String,
    /// The SIZE the client declared (0: none).
    pub declared_size: usize,
    pub body_type: BodyType,
    pub smtputf8: bool,
    pub ret: Option<DsnRet>,
    pub env_id: Option<String>,
    pub recipients: Vec<Recipient>,
    /// RCPT commands tried in this transaction, accepted or not.
    pub recipients_tried: usize,
}

/// A complete message: envelope, body and what is known about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub envelope: Envelope,
    /// The message exactly as received (dot-stuffing removed).
    pub body: Vec<u8>,
    pub helo: String,
    pub tls: bool,
    pub authenticated_as: Option<String>,
    pub client_ip: IpAddr,
}

/// A RCPT TO the policy must decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientQuery {
    pub address: String,
    pub mail_from: String,
    pub authenticated_as: Option<String>,
    /// The message size declared with MAIL FROM (RFC 1870 SIZE; 0: none), for the quota check.
    pub declared_size: usize,
}

/// What the policy answers to a [`RecipientQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientDecision {
    /// A local account (`Some`) or, for an authenticated submission, a relay (`None`).
    Accept {
        account_id: Option<u32>,
    },
    Reject(Reply),
}
