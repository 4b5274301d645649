//! The SMTP server session as a sans-IO state machine: bytes in ([`Session::feed`]), replies
//! out ([`Session::take_output`]) and events ([`Session::next_event`]) for whatever needs the
//! outside world: a recipient lookup, a password check, storing a message, a TLS handshake.
//! No sockets, no clock, no store: the listener (`smtp::listener`) drives it, and the tests
//! drive it alone.
//!
//! Commands are parsed by smtp-proto's `Request` parser; EHLO is written by its
//! `EhloResponse`. Pipelining (RFC 2920) falls out of the design: commands are handled in
//! order, one at a time, replies accumulate in the output, and the listener flushes them
//! whenever the session needs more input.
//!
//! AUTH (PLAIN, LOGIN) is offered only on a submission listener, and only on an encrypted
//! connection unless [`SessionConfig::auth_without_tls`] is set (the listener sets it for
//! loopback clients, so local tools and tests can submit without certificates; a password
//! never crosses a network in clear).

mod data;
mod envelope;
#[cfg(test)]
mod fuzz_tests;
#[doc(hidden)]
pub mod fuzzing;
mod reply;
mod sasl;
mod security;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_AUTH, EXT_CHUNKING, EXT_DSN,
    EXT_ENHANCED_STATUS_CODES, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS,
    EhloResponse, Error as ParseError, MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME,
    MAIL_REQUIRETLS, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, RCPT_NOTIFY_DELAY,
    RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, Request,
};

pub use data::MAX_TEXT_LINE;
use data::{DataScanner, Scan};
pub use envelope::{
    Envelope, ReceivedMessage, Recipient, RecipientDecision, RecipientQuery, SessionConfig,
};
pub use reply::{Reply, replies};

use super::incoming::{BodyType, DsnNotify, DsnRet};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including the CRLF.
pub const MAX_COMMAND_LINE: usize = 512;
/// RFC 3461 §5 (ENVID, ORCPT) and RFC 4954 §5 (AUTH=) raise the MAIL and RCPT limits; these
/// are the extra octets allowed on those lines.
pub const MAIL_RCPT_EXTRA: usize = 600;

/// What the listener must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Flush the output, then read and [`feed`](Session::feed) more bytes.
    NeedInput,
    /// Answer with [`Session::answer_recipient`].
    Recipient(RecipientQuery),
    /// Check the password; answer with [`Session::answer_auth`].
    Authenticate { login: String, password: String },
    /// Store the message durably; answer with [`Session::answer_message`].
    Message(Box<ReceivedMessage>),
    /// Flush the output (the `220` to STARTTLS), run the TLS handshake, then call
    /// [`Session::tls_started`].
    StartTls,
    /// Flush the output and close the connection.
    Close,
}

#[derive(Debug)]
enum State {
    Command,
    Data(DataScanner),
    /// Reading a BDAT chunk of `left` octets; `discard` when the transaction is refused.
    Bdat {
        left: usize,
        last: bool,
        discard: bool,
    },
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword {
        login: String,
    },
    /// An event was returned and its answer is awaited.
    Waiting(Event),
    Closed,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    client_ip: IpAddr,
    state: State,
    input: Vec<u8>,
    output: Vec<u8>,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    authenticated_as: Option<String>,
    envelope: Option<Envelope>,
    body: Vec<u8>,
    /// A BDAT chunk sequence is open (DATA is then out of sequence).
    bdat_open: bool,
    /// A BDAT chunk pushed the body past the size limit; the transaction fails at LAST.
    bdat_too_big: bool,
    /// Discarding the rest of an overlong command line.
    skipping_line: bool,
    errors: usize,
}

impl Session {
    /// A session for a new connection; the `220` greeting is already in the output.
    pub fn new(config: Arc<SessionConfig>, client_ip: IpAddr, tls: bool) -> Session {
        let mut session = Session {
            config,
            client_ip,
            state: State::Command,
            input: Vec::new(),
            output: Vec::new(),
            helo: None,
            esmtp: false,
            tls,
            authenticated_as: None,
            envelope: None,
            body: Vec::new(),
            bdat_open: false,
            bdat_too_big: false,
            skipping_line: false,
            errors: 0,
        };
        let greeting = Reply::new(
            220,
            (0, 0, 0),
            format!("{} ESMTP Tern", session.config.hostname),
        );
        session
            .output
            .extend_from_slice(format!("{} {}\r\n", greeting.code, greeting.text).as_bytes());
        session
    }

    /// Adds bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Closed) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The replies to send; the listener writes them before reading again.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Whether the client is sending message content (the listener's data timeout applies).
    pub fn in_data(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Bdat { .. })
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn authenticated_as(&self) -> Option<&str> {
        self.authenticated_as.as_deref()
    }

    /// Bytes held for this session (input, output, body): the idle-memory figure.
    pub fn buffered_bytes(&self) -> usize {
        self.input.capacity() + self.output.capacity() + self.body.capacity()
    }

    /// The client closed its side. A transaction in progress is dropped (nothing was
    /// acknowledged, so nothing is lost); the session ends.
    pub fn input_closed(&mut self) {
        self.envelope = None;
        self.body = Vec::new();
        self.state = State::Closed;
    }

    /// The listener's timer fired: `421 4.4.2`, then close (RFC 5321 §4.5.3.2).
    pub fn timed_out(&mut self) {
        self.close_with(replies::timeout());
    }

    /// The server is stopping: `421 4.3.2`, then close.
    pub fn shutting_down(&mut self) {
        self.close_with(replies::shutting_down());
    }

    fn close_with(&mut self, reply: Reply) {
        reply.write_to(&mut self.output);
        self.envelope = None;
        self.body = Vec::new();
        self.state = State::Closed;
    }

    fn reply(&mut self, reply: Reply) {
        if reply.code >= 400 {
            self.errors += 1;
        }
        reply.write_to(&mut self.output);
        if self.errors >= self.config.max_errors {
            self.close_with(replies::too_many_errors());
        }
    }

    /// Runs the state machine until it needs input or an answer.
    pub fn next_event(&mut self) -> Event {
        loop {
            let step = match &mut self.state {
                State::Closed => return Event::Close,
                State::Waiting(event) => return event.clone(),
                State::Command => self.command_step(),
                State::Data(_) => self.data_step(),
                State::Bdat { .. } => self.bdat_step(),
                State::AuthPlain | State::AuthLoginUser | State::AuthLoginPassword { .. } => {
                    self.auth_step()
                }
            };
            match step {
                Step::Continue => {}
                Step::NeedInput => {
                    self.compact_input();
                    return Event::NeedInput;
                }
                Step::Event(event) => {
                    self.state = State::Waiting(event.clone());
                    return event;
                }
            }
        }
    }

    fn compact_input(&mut self) {
        if self.input.is_empty() && self.input.capacity() > 4096 {
            // An idle session keeps no large buffer.
            self.input = Vec::new();
        }
        if self.output.is_empty() && self.output.capacity() > 4096 {
            self.output = Vec::new();
        }
    }

    /// Takes one line (with its LF) off the input, enforcing the command-line limits.
    fn take_line(&mut self) -> Line {
        let newline = self.input.iter().position(|&byte| byte == b'\n');
        let limit = MAX_COMMAND_LINE + MAIL_RCPT_EXTRA;
        match newline {
            None => {
                if self.input.len() > limit {
                    // Keep nothing of it; the rest of the line is skipped when it comes.
                    self.input.clear();
                    let first = !std::mem::replace(&mut self.skipping_line, true);
                    return if first {
                        Line::TooLong
                    } else {
                        Line::Incomplete
                    };
                }
                Line::Incomplete
            }
            Some(position) => {
                let line: Vec<u8> = self.input.drain(..=position).collect();
                if std::mem::take(&mut self.skipping_line) {
                    // Its error was answered when the line passed the limit.
                    return Line::Skipped;
                }
                let allowed = if starts_with_ignore_case(&line, b"MAIL ")
                    || starts_with_ignore_case(&line, b"RCPT ")
                {
                    limit
                } else {
                    MAX_COMMAND_LINE
                };
                if line.len() > allowed {
                    return Line::TooLong;
                }
                Line::Complete(line)
            }
        }
    }

    fn command_step(&mut self) -> Step {
        let line = match self.take_line() {
            Line::Incomplete => return Step::NeedInput,
            Line::Skipped => return Step::Continue,
            Line::TooLong => {
                self.reply(replies::line_too_long());
                return Step::Continue;
            }
            Line::Complete(line) => line,
        };
        let mut request = match Request::parse(&mut line.iter()) {
            Ok(request) => request.into_owned(),
            Err(error) => {
                self.reply(parse_error_reply(error));
                return Step::Continue;
            }
        };
        // RFC 5321 §4.1.1.3: `RCPT TO:<Postmaster>` (no domain) is valid and MUST be accepted
        // (§4.5.1); smtp-proto reads it as an empty address, like `<>`.
        if let Request::Rcpt { to } = &mut request
            && to.address.is_empty()
            && line
                .windows(12)
                .any(|window| window.eq_ignore_ascii_case(b"<postmaster>"))
        {
            to.address = "postmaster".to_owned();
        }
        self.handle(request)
    }

    fn handle(&mut self, request: Request<String>) -> Step {
        match request {
            Request::Ehlo { host } => {
                self.greet(host, true);
                Step::Continue
            }
            Request::Helo { host } => {
                self.greet(host, false);
                Step::Continue
            }
            Request::Lhlo { .. } => {
                self.reply(replies::unknown_command());
                Step::Continue
            }
            Request::Mail { from } => {
                self.mail(from);
                Step::Continue
            }
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Request::StartTls => self.starttls(),
            Request::Rset => {
                self.reset_transaction();
                self.reply(replies::reset());
                Step::Continue
            }
            Request::Noop { .. } => {
                self.reply(replies::ok());
                Step::Continue
            }
            Request::Vrfy { .. } => {
                self.reply(replies::cannot_verify());
                Step::Continue
            }
            Request::Help { .. } => {
                self.reply(replies::help());
                Step::Continue
            }
            Request::Quit => {
                replies::bye().write_to(&mut self.output);
                self.state = State::Closed;
                Step::Continue
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.reply(replies::not_implemented());
                Step::Continue
            }
        }
    }

    fn greet(&mut self, host: String, extended: bool) {
        // RFC 5321 §4.1.4: EHLO/HELO also resets any transaction.
        self.reset_transaction();
        self.helo = Some(host);
        self.esmtp = extended;
        if !extended {
            // HELO clients expect no enhanced code.
            Reply::new(250, (0, 0, 0), self.config.hostname.clone()).write_plain(&mut self.output);
            return;
        }
        let mut ehlo = EhloResponse::new(self.config.hostname.as_str());
        ehlo.capabilities = EXT_PIPELINING
            | EXT_8BIT_MIME
            | EXT_SMTP_UTF8
            | EXT_SIZE
            | EXT_ENHANCED_STATUS_CODES
            | EXT_CHUNKING
            | EXT_DSN;
        ehlo.size = self.config.max_message_size;
        if self.config.starttls && !self.tls {
            ehlo.capabilities |= EXT_START_TLS;
        }
        if self.auth_offered() {
            ehlo.capabilities |= EXT_AUTH;
            ehlo.auth_mechanisms = AUTH_PLAIN | AUTH_LOGIN;
        }
        let _ = ehlo.write(&mut self.output);
    }

    fn auth_offered(&self) -> bool {
        self.config.submission
            && self.authenticated_as.is_none()
            && (self.tls || self.config.auth_without_tls)
    }

    fn reset_transaction(&mut self) {
        self.envelope = None;
        self.body = Vec::new();
        self.bdat_open = false;
        self.bdat_too_big = false;
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            return self.reply(replies::bad_sequence("Send EHLO or HELO first"));
        }
        if self.envelope.is_some() {
            return self.reply(replies::bad_sequence("Nested MAIL command"));
        }
        if self.config.submission && self.authenticated_as.is_none() {
            return self.reply(replies::auth_required());
        }
        if from.flags & (MAIL_REQUIRETLS | MAIL_BODY_BINARYMIME) != 0 {
            return self.reply(Reply::new(
                555,
                (5, 5, 4),
                "REQUIRETLS and BODY=BINARYMIME are not supported",
            ));
        }
        if from.size > self.config.max_message_size {
            // RFC 1870 §6.1.
            return self.reply(replies::message_too_big(self.config.max_message_size));
        }
        let body_type = if from.flags & MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else if from.flags & MAIL_BODY_7BIT != 0 {
            BodyType::SevenBit
        } else {
            BodyType::default()
        };
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some(DsnRet::Full)
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some(DsnRet::Headers)
        } else {
            None
        };
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            // RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter.
            return self.reply(Reply::new(
                553,
                (5, 6, 7),
                "Non-ASCII address without SMTPUTF8",
            ));
        }
        self.envelope = Some(Envelope {
            mail_from: from.address,
            declared_size: from.size,
            body_type,
            smtputf8,
            ret,
            env_id: from.env_id,
            recipients: Vec::new(),
            recipients_tried: 0,
        });
        self.reply(replies::sender_ok());
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Step {
        let Some(envelope) = self.envelope.as_mut() else {
            self.reply(replies::bad_sequence("Need MAIL before RCPT"));
            return Step::Continue;
        };
        envelope.recipients_tried += 1;
        if !envelope.smtputf8 && !to.address.is_ascii() {
            self.reply(Reply::new(
                553,
                (5, 6, 7),
                "Non-ASCII address without SMTPUTF8",
            ));
            return Step::Continue;
        }
        if envelope.recipients.len() >= self.config.max_recipients {
            // RFC 5321 §4.5.3.1.8: 452, and the client sends the rest in a new transaction.
            self.reply(replies::too_many_recipients());
            return Step::Continue;
        }
        if to.address.is_empty() {
            self.reply(Reply::new(501, (5, 1, 3), "Bad recipient address syntax"));
            return Step::Continue;
        }
        let notify_flags =
            RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER;
        let notify = (to.flags & notify_flags != 0).then_some(DsnNotify {
            success: to.flags & RCPT_NOTIFY_SUCCESS != 0,
            failure: to.flags & RCPT_NOTIFY_FAILURE != 0,
            delay: to.flags & RCPT_NOTIFY_DELAY != 0,
            never: to.flags & RCPT_NOTIFY_NEVER != 0,
        });
        let query = RecipientQuery {
            address: to.address.clone(),
            mail_from: envelope.mail_from.clone(),
            authenticated_as: self.authenticated_as.clone(),
            declared_size: envelope.declared_size,
        };
        // Kept until the policy answers.
        envelope.recipients.push(Recipient {
            address: to.address,
            account_id: None,
            notify,
            // smtp-proto accepts only the rfc822 type and decodes the xtext.
            orcpt: to.orcpt.map(|address| format!("rfc822;{address}")),
        });
        Step::Event(Event::Recipient(query))
    }

    /// The policy's answer to the last [`Event::Recipient`].
    pub fn answer_recipient(&mut self, decision: RecipientDecision) {
        if !matches!(self.state, State::Waiting(Event::Recipient(_))) {
            return;
        }
        self.state = State::Command;
        let Some(envelope) = self.envelope.as_mut() else {
            return;
        };
        match decision {
            RecipientDecision::Accept { account_id } => {
                if let Some(last) = envelope.recipients.last_mut() {
                    last.account_id = account_id;
                }
                self.reply(replies::recipient_ok());
            }
            RecipientDecision::Reject(reply) => {
                envelope.recipients.pop();
                self.reply(reply);
            }
        }
    }

    /// Whether a DATA/BDAT may start: an envelope with accepted recipients.
    fn transaction_ready(&mut self) -> bool {
        match &self.envelope {
            None => {
                self.reply(replies::bad_sequence("Need MAIL and RCPT first"));
                false
            }
            Some(envelope) if envelope.recipients.is_empty() => {
                if envelope.recipients_tried > 0 {
                    self.reply(replies::no_valid_recipients());
                } else {
                    self.reply(replies::bad_sequence("Need RCPT first"));
                }
                false
            }
            Some(_) => true,
        }
    }

    fn data(&mut self) -> Step {
        if self.bdat_open {
            self.reply(replies::bad_sequence("DATA after BDAT"));
            return Step::Continue;
        }
        if !self.transaction_ready() {
            return Step::Continue;
        }
        // 354 carries no enhanced status code (RFC 3463 applies to completion replies).
        replies::start_data().write_plain(&mut self.output);
        self.body = Vec::new();
        self.state = State::Data(DataScanner::new(self.config.max_message_size));
        Step::Continue
    }

    fn data_step(&mut self) -> Step {
        let State::Data(scanner) = &mut self.state else {
            return Step::Continue;
        };
        match scanner.feed(&self.input, &mut self.body) {
            Scan::NeedMore => {
                self.input.clear();
                Step::NeedInput
            }
            Scan::Complete(end) => {
                self.input.drain(..end);
                let (too_big, line_too_long) = (scanner.too_big, scanner.line_too_long);
                self.state = State::Command;
                if too_big {
                    self.reset_transaction();
                    self.reply(replies::message_too_big(self.config.max_message_size));
                    return Step::Continue;
                }
                if line_too_long {
                    self.reset_transaction();
                    self.reply(Reply::new(
                        500,
                        (5, 5, 2),
                        format!("Message has a line longer than {MAX_TEXT_LINE} octets"),
                    ));
                    return Step::Continue;
                }
                self.message_complete()
            }
        }
    }

    fn bdat(&mut self, chunk_size: usize, last: bool) -> Step {
        // RFC 3030 §2: the chunk follows the command whatever the reply; a refused
        // transaction still has its octets read (and thrown away).
        let ready = self
            .envelope
            .as_ref()
            .is_some_and(|e| !e.recipients.is_empty());
        if !ready {
            self.transaction_ready();
        } else if !self.bdat_open {
            self.bdat_open = true;
            self.body = Vec::new();
        }
        let too_big = ready
            && (self.bdat_too_big
                || self.body.len().saturating_add(chunk_size) > self.config.max_message_size);
        if too_big && !self.bdat_too_big {
            self.bdat_too_big = true;
            self.body = Vec::new();
        }
        self.state = State::Bdat {
            left: chunk_size,
            last,
            discard: !ready || too_big,
        };
        Step::Continue
    }

    fn bdat_step(&mut self) -> Step {
        let State::Bdat {
            left,
            last,
            discard,
        } = &mut self.state
        else {
            return Step::Continue;
        };
        let take = (*left).min(self.input.len());
        if !*discard {
            self.body.extend_from_slice(&self.input[..take]);
        }
        self.input.drain(..take);
        *left -= take;
        if *left > 0 {
            return Step::NeedInput;
        }
        let (last, discard) = (*last, *discard);
        self.state = State::Command;
        if discard {
            if self.bdat_too_big {
                if last {
                    self.reset_transaction();
                }
                self.reply(replies::message_too_big(self.config.max_message_size));
            }
            // Otherwise the refusal was already answered when the command came.
            return Step::Continue;
        }
        if !last {
            self.reply(Reply::new(
                250,
                (2, 0, 0),
                format!("{} octets received", self.body.len()),
            ));
            return Step::Continue;
        }
        self.message_complete()
    }

    fn message_complete(&mut self) -> Step {
        let Some(envelope) = self.envelope.take() else {
            return Step::Continue;
        };
        self.bdat_open = false;
        let message = ReceivedMessage {
            envelope,
            body: std::mem::take(&mut self.body),
            helo: self.helo.clone().unwrap_or_default(),
            tls: self.tls,
            authenticated_as: self.authenticated_as.clone(),
            client_ip: self.client_ip,
        };
        Step::Event(Event::Message(Box::new(message)))
    }

    /// The outcome of storing the message of the last [`Event::Message`]: the `250` is sent
    /// only now, after the commit (`Ok(queue id)`), or the given failure (e.g. `451 4.3.0`).
    pub fn answer_message(&mut self, outcome: Result<String, Reply>) {
        if !matches!(self.state, State::Waiting(Event::Message(_))) {
            return;
        }
        self.state = State::Command;
        self.reset_transaction();
        match outcome {
            Ok(queue_id) => self.reply(Reply::new(
                250,
                (2, 0, 0),
                format!("OK queued as {queue_id}"),
            )),
            Err(reply) => self.reply(reply),
        }
    }
}

impl Reply {
    /// `code text CRLF` without an enhanced code (334 challenges, RFC 4954 §4).
    fn write_plain(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {}\r\n", self.code, self.text).as_bytes());
    }
}

enum Line {
    Complete(Vec<u8>),
    Incomplete,
    /// Over the limit: answered with `500 5.5.2`.
    TooLong,
    /// The end of a line already answered as too long.
    Skipped,
}

enum Step {
    Continue,
    NeedInput,
    Event(Event),
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn parse_error_reply(error: ParseError) -> Reply {
    match error {
        ParseError::UnknownCommand => replies::unknown_command(),
        ParseError::SyntaxError { syntax } => replies::syntax(syntax),
        ParseError::InvalidSenderAddress => Reply::new(501, (5, 1, 7), "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, (5, 1, 3), "Bad recipient address syntax")
        }
        ParseError::InvalidParameter { param } => {
            Reply::new(501, (5, 5, 4), format!("Invalid {param} parameter"))
        }
        ParseError::UnsupportedParameter { param } => {
            Reply::new(555, (5, 5, 4), format!("Unsupported parameter {param}"))
        }
        ParseError::ResponseTooLong => replies::line_too_long(),
        ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
            replies::syntax("a command line ending in CRLF")
        }
    }
}
