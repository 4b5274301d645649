//! The SMTP client session, sans-IO: bytes from the server go in ([`ClientSession::receive`]),
//! what to do next comes out ([`Output`]: bytes to write, start TLS, finished). Replies are
//! parsed by `smtp-proto`. One transaction sends one message to the recipients of one
//! destination; a session opened with [`ClientSession::keep_open`] stays usable after it, and
//! [`ClientSession::next_transaction`] sends the next message over the same connection
//! (RFC 5321 §3.3 allows several transactions per session; RSET first, §4.1.1.5, which also
//! shows that a cached connection is still alive before anything of the message is sent).
//!
//! - EHLO (HELO when EHLO is refused, RFC 5321 §4.1.1.1); opportunistic STARTTLS when offered
//!   and wanted (RFC 3207), then EHLO again (RFC 3207 §4.2: forget what was learned before);
//! - PIPELINING (RFC 2920): MAIL, every RCPT and DATA in one write, replies read in order;
//! - the body is dot-stuffed (RFC 5321 §4.5.2) and ends with CRLF.CRLF;
//! - each recipient gets its own result: its RCPT reply when refused, else the reply to the
//!   end of data; a failure of the whole transaction (greeting, MAIL, DATA) applies to every
//!   recipient not refused already.

use std::collections::VecDeque;
use std::fmt;

use smtp_proto::response::parser::ResponseReceiver;

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code (RFC 3463), `[0, 0, 0]` when absent.
    pub esc: [u8; 3],
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// A reply this side makes up (a timeout or refused connection), reported like a peer's.
    pub fn local(code: u16, esc: [u8; 3], text: impl Into<String>) -> Reply {
        Reply {
            code,
            esc,
            text: text.into(),
        }
    }

    /// The enhanced status as `x.y.z`, or a default from the reply class.
    pub fn status(&self) -> String {
        if self.esc[0] != 0 {
            format!("{}.{}.{}", self.esc[0], self.esc[1], self.esc[2])
        } else {
            format!("{}.0.0", self.code / 100)
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.replace('\n', " ");
        if self.esc[0] != 0 {
            write!(formatter, "{} {} {}", self.code, self.status(), text.trim())
        } else {
            write!(formatter, "{} {}", self.code, text.trim())
        }
    }
}

/// What the envelope of the session is.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// "" for the null reverse-path.
    pub mail_from: String,
    pub recipients: Vec<String>,
    /// RFC 3461 ENVID / RET and per-recipient NOTIFY/ORCPT are sent when the server offers DSN.
    pub dsn: Option<EnvelopeDsn>,
}

#[derive(Debug, Clone, Default)]
pub struct EnvelopeDsn {
    pub env_id: Option<String>,
    pub ret_full: Option<bool>,
    /// One per recipient: the NOTIFY value (`SUCCESS,FAILURE`, `NEVER`, …) or `None`.
    pub notify: Vec<Option<String>>,
}

/// What the I/O side must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Vec<u8>),
    /// Upgrade the connection to TLS now, then call [`ClientSession::tls_started`].
    StartTls,
    /// The session is over (QUIT was sent when possible); read [`ClientSession::results`].
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Mail,
    Rcpt(usize),
    Data,
    Body,
    Rset,
}

/// The protocol went wrong in a way no reply describes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SMTP protocol error: {0}")]
pub struct ProtocolError(pub String);

pub struct ClientSession {
    helo_name: String,
    envelope: Envelope,
    message: Vec<u8>,
    want_tls: bool,
    tls_active: bool,
    pipelining: bool,
    dsn_offered: bool,
    size_limit: Option<u64>,
    receiver: ResponseReceiver,
    /// Commands sent whose replies are still to come, in order.
    awaiting: VecDeque<Command>,
    results: Vec<Option<Reply>>,
    accepted: Vec<bool>,
    finished: bool,
    transaction_started: bool,
    /// Leave the connection open after the transaction instead of QUIT.
    keep_open: bool,
    /// The transaction ended with the session in a state another one may follow.
    reusable: bool,
    /// This transaction runs on a session that already carried one.
    resumed: bool,
    /// Replies received since the transaction began (0 on a resumed session means the cached
    /// connection was dead before anything of this message was accepted).
    replies_in_transaction: usize,
    /// The server refused the RSET that began a resumed transaction (shutting down, say).
    rset_refused: bool,
}

impl ClientSession {
    /// A session that will send `message` (raw RFC 5322 bytes). With `want_tls`, STARTTLS is
    /// used when the server offers it.
    pub fn new(helo_name: &str, envelope: Envelope, message: Vec<u8>, want_tls: bool) -> Self {
        let count = envelope.recipients.len();
        ClientSession {
            helo_name: helo_name.to_owned(),
            envelope,
            message,
            want_tls,
            tls_active: false,
            pipelining: false,
            dsn_offered: false,
            size_limit: None,
            receiver: ResponseReceiver::default(),
            awaiting: VecDeque::from([Command::Greeting]),
            results: vec![None; count],
            accepted: vec![false; count],
            finished: false,
            transaction_started: false,
            keep_open: false,
            reusable: false,
            resumed: false,
            replies_in_transaction: 0,
            rset_refused: false,
        }
    }

    /// Keeps the connection open after the transaction (no QUIT) so that
    /// [`next_transaction`](Self::next_transaction) can reuse it.
    pub fn keep_open(mut self) -> Self {
        self.keep_open = true;
        self
    }

    /// Whether the transaction ended cleanly on an open session that another may reuse.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// A resumed session that ended without a single reply, or whose RSET was refused: the
    /// cached connection was closed (or is being closed) by the server while idle. Nothing of
    /// the message was accepted, so a fresh connection may send it at once.
    pub fn died_idle(&self) -> bool {
        self.resumed && (self.replies_in_transaction == 0 || self.rset_refused)
    }

    /// Starts the next transaction on a reusable session: RSET, then (pipelined with it when
    /// PIPELINING was offered) MAIL, RCPT… and DATA.
    pub fn next_transaction(&mut self, envelope: Envelope, message: Vec<u8>) -> Vec<Output> {
        let count = envelope.recipients.len();
        self.envelope = envelope;
        self.message = message;
        self.results = vec![None; count];
        self.accepted = vec![false; count];
        self.awaiting.clear();
        self.finished = false;
        self.reusable = false;
        self.resumed = true;
        self.replies_in_transaction = 0;
        self.rset_refused = false;
        self.transaction_started = false;
        self.awaiting.push_back(Command::Rset);
        let mut outputs = vec![Output::Send(b"RSET\r\n".to_vec())];
        if self.pipelining {
            // RFC 2920 §3.1: RSET may lead the group.
            self.start_transaction(&mut outputs);
            if let [Output::Send(first), Output::Send(second)] = outputs.as_mut_slice() {
                first.extend_from_slice(second);
                outputs.truncate(1);
            }
        }
        outputs
    }

    pub fn is_tls(&self) -> bool {
        self.tls_active
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the server greeted and took EHLO/HELO (MAIL was sent): a failure before that
    /// is a connection-level one, worth trying the next MX for.
    pub fn reached_transaction(&self) -> bool {
        self.transaction_started
    }

    /// Per recipient (in envelope order): the final reply, `None` when the session ended
    /// before one came (the caller treats it as a transient failure).
    pub fn results(&self) -> &[Option<Reply>] {
        &self.results
    }

    /// Fails every recipient without a result with `reply` (a timeout, a dropped connection).
    pub fn abort(&mut self, reply: &Reply) {
        for result in &mut self.results {
            if result.is_none() {
                *result = Some(reply.clone());
            }
        }
        self.finished = true;
    }

    /// Feeds bytes read from the server; returns what to do, in order.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<Output>, ProtocolError> {
        let mut outputs = Vec::new();
        let mut iter = bytes.iter();
        while !iter.as_slice().is_empty() && !self.finished {
            match self.receiver.parse(&mut iter) {
                Ok(response) => {
                    self.receiver.reset();
                    let reply = Reply {
                        code: response.code,
                        esc: response.esc,
                        text: response.message,
                    };
                    self.on_reply(reply, &mut outputs)?;
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => break,
                Err(error) => {
                    return Err(ProtocolError(format!("unreadable reply: {error:?}")));
                }
            }
        }
        Ok(outputs)
    }

    /// After the TLS handshake: EHLO again.
    pub fn tls_started(&mut self) -> Vec<Output> {
        self.tls_active = true;
        self.pipelining = false;
        self.dsn_offered = false;
        self.awaiting.push_back(Command::Ehlo);
        vec![Output::Send(
            format!("EHLO {}\r\n", self.helo_name).into_bytes(),
        )]
    }

    fn fail_all(&mut self, reply: &Reply, outputs: &mut Vec<Output>) {
        for (result, accepted) in self.results.iter_mut().zip(&self.accepted) {
            if result.is_none() || *accepted {
                *result = Some(reply.clone());
            }
        }
        self.quit(outputs);
    }

    /// The end of a transaction that leaves the session in a known state: kept open when
    /// asked, else QUIT.
    fn end_transaction(&mut self, outputs: &mut Vec<Output>) {
        if self.keep_open && !self.finished {
            self.awaiting.clear();
            outputs.push(Output::Finished);
            self.finished = true;
            self.reusable = true;
        } else {
            self.quit(outputs);
        }
    }

    fn quit(&mut self, outputs: &mut Vec<Output>) {
        if !self.finished {
            self.awaiting.clear();
            outputs.push(Output::Send(b"QUIT\r\n".to_vec()));
            outputs.push(Output::Finished);
            self.finished = true;
        }
    }

    fn on_reply(&mut self, reply: Reply, outputs: &mut Vec<Output>) -> Result<(), ProtocolError> {
        let Some(command) = self.awaiting.pop_front() else {
            return Err(ProtocolError(format!("unexpected reply {reply}")));
        };
        self.replies_in_transaction += 1;
        match command {
            Command::Rset => {
                if reply.code != 250 {
                    self.rset_refused = true;
                    self.fail_all(&reply, outputs);
                } else if !self.pipelining {
                    self.start_transaction(outputs);
                }
            }
            Command::Greeting => {
                if reply.code != 220 {
                    self.fail_all(&reply, outputs);
                } else {
                    self.awaiting.push_back(Command::Ehlo);
                    outputs.push(Output::Send(
                        format!("EHLO {}\r\n", self.helo_name).into_bytes(),
                    ));
                }
            }
            Command::Ehlo => {
                if reply.code == 250 {
                    self.learn_extensions(&reply.text);
                    if self.want_tls && !self.tls_active && self.offers(&reply.text, "STARTTLS") {
                        self.awaiting.push_back(Command::StartTls);
                        outputs.push(Output::Send(b"STARTTLS\r\n".to_vec()));
                    } else {
                        self.start_transaction(outputs);
                    }
                } else if reply.is_permanent() && !self.tls_active {
                    self.awaiting.push_back(Command::Helo);
                    outputs.push(Output::Send(
                        format!("HELO {}\r\n", self.helo_name).into_bytes(),
                    ));
                } else {
                    self.fail_all(&reply, outputs);
                }
            }
            Command::Helo => {
                if reply.code == 250 {
                    self.start_transaction(outputs);
                } else {
                    self.fail_all(&reply, outputs);
                }
            }
            Command::StartTls => {
                if reply.code == 220 {
                    outputs.push(Output::StartTls);
                } else {
                    // Opportunistic: a refused STARTTLS falls back to plain text.
                    self.want_tls = false;
                    self.start_transaction(outputs);
                }
            }
            Command::Mail => {
                if !reply.is_positive() {
                    self.fail_all(&reply, outputs);
                } else if !self.pipelining {
                    self.send_rcpt(0, outputs);
                }
            }
            Command::Rcpt(index) => {
                if reply.is_positive() {
                    self.accepted[index] = true;
                } else {
                    self.results[index] = Some(reply);
                }
                if !self.pipelining {
                    if index + 1 < self.envelope.recipients.len() {
                        self.send_rcpt(index + 1, outputs);
                    } else if self.accepted.iter().any(|accepted| *accepted) {
                        self.awaiting.push_back(Command::Data);
                        outputs.push(Output::Send(b"DATA\r\n".to_vec()));
                    } else {
                        self.end_transaction(outputs);
                    }
                }
            }
            Command::Data => {
                if reply.code == 354 {
                    let any_accepted = self.accepted.iter().any(|accepted| *accepted);
                    self.awaiting.push_back(Command::Body);
                    if any_accepted {
                        outputs.push(Output::Send(dot_stuff(&self.message)));
                    } else {
                        // RFC 2920 §3.1: a server may answer 354 after refusing every RCPT;
                        // send an empty message so the transaction ends without content.
                        outputs.push(Output::Send(b".\r\n".to_vec()));
                    }
                } else if self.accepted.iter().any(|accepted| *accepted) {
                    self.fail_all(&reply, outputs);
                } else {
                    self.end_transaction(outputs);
                }
            }
            Command::Body => {
                if self.accepted.iter().any(|accepted| *accepted) {
                    for (result, accepted) in self.results.iter_mut().zip(&self.accepted) {
                        if *accepted {
                            *result = Some(reply.clone());
                        }
                    }
                }
                self.end_transaction(outputs);
            }
        }
        Ok(())
    }

    fn offers(&self, ehlo_text: &str, keyword: &str) -> bool {
        ehlo_text.split('\n').skip(1).any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
        })
    }

    fn learn_extensions(&mut self, ehlo_text: &str) {
        self.pipelining = self.offers(ehlo_text, "PIPELINING");
        self.dsn_offered = self.offers(ehlo_text, "DSN");
        self.size_limit = ehlo_text.split('\n').skip(1).find_map(|line| {
            let mut words = line.split_whitespace();
            let keyword = words.next()?;
            if !keyword.eq_ignore_ascii_case("SIZE") {
                return None;
            }
            words.next()?.parse::<u64>().ok().filter(|limit| *limit > 0)
        });
    }

    fn start_transaction(&mut self, outputs: &mut Vec<Output>) {
        self.transaction_started = true;
        if let Some(limit) = self.size_limit
            && self.message.len() as u64 > limit
        {
            // RFC 1870 §6: a message over the declared SIZE is refused permanently.
            let reply = Reply::local(
                552,
                [5, 3, 4],
                format!("message size exceeds the server's limit of {limit} bytes"),
            );
            self.fail_all(&reply, outputs);
            return;
        }
        let mut mail = format!("MAIL FROM:<{}>", self.envelope.mail_from);
        if self.size_limit.is_some() {
            mail.push_str(&format!(" SIZE={}", self.message.len()));
        }
        if self.dsn_offered
            && let Some(dsn) = &self.envelope.dsn
        {
            if let Some(full) = dsn.ret_full {
                mail.push_str(if full { " RET=FULL" } else { " RET=HDRS" });
            }
            if let Some(env_id) = &dsn.env_id {
                mail.push_str(&format!(" ENVID={}", xtext(env_id)));
            }
        }
        mail.push_str("\r\n");
        self.awaiting.push_back(Command::Mail);
        if !self.pipelining {
            outputs.push(Output::Send(mail.into_bytes()));
            return;
        }
        // RFC 2920 §3.1: MAIL, RCPTs and DATA in one group; DATA is the last command of it.
        let mut batch = mail.into_bytes();
        for index in 0..self.envelope.recipients.len() {
            batch.extend_from_slice(self.rcpt_command(index).as_bytes());
            self.awaiting.push_back(Command::Rcpt(index));
        }
        batch.extend_from_slice(b"DATA\r\n");
        self.awaiting.push_back(Command::Data);
        outputs.push(Output::Send(batch));
    }

    fn rcpt_command(&self, index: usize) -> String {
        let mut rcpt = format!("RCPT TO:<{}>", self.envelope.recipients[index]);
        if self.dsn_offered
            && let Some(notify) = self
                .envelope
                .dsn
                .as_ref()
                .and_then(|dsn| dsn.notify.get(index).cloned().flatten())
        {
            rcpt.push_str(&format!(" NOTIFY={notify}"));
        }
        rcpt.push_str("\r\n");
        rcpt
    }

    fn send_rcpt(&mut self, index: usize, outputs: &mut Vec<Output>) {
        if index >= self.envelope.recipients.len() {
            self.quit(outputs);
            return;
        }
        self.awaiting.push_back(Command::Rcpt(index));
        outputs.push(Output::Send(self.rcpt_command(index).into_bytes()));
    }
}

/// RFC 3461 §4: xtext encoding of ENVID.
fn xtext(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (33..=126).contains(&byte) && byte != b'+' && byte != b'=' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("+{byte:02X}"));
        }
    }
    encoded
}

/// RFC 5321 §4.5.2: a line starting with "." gets another; the data ends with CRLF.CRLF.
/// Bare LFs are sent as CRLF (RFC 5321 §2.3.8).
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut at_line_start = true;
    let mut previous = 0u8;
    for &byte in message {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
        previous = byte;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(recipients: &[&str], message: &[u8]) -> ClientSession {
        ClientSession::new(
            "client.example",
            Envelope {
                mail_from: "a@example.test".into(),
                recipients: recipients.iter().map(|r| r.to_string()).collect(),
                dsn: None,
            },
            message.to_vec(),
            true,
        )
    }

    fn sent(outputs: &[Output]) -> String {
        outputs
            .iter()
            .filter_map(|output| match output {
                Output::Send(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn pipelined_transaction_reports_each_recipient() {
        let mut session = session(
            &["x@example.net", "y@example.net"],
            b"Subject: hi\r\n\r\n.dot\r\n",
        );
        let out = session.receive(b"220 mx ready\r\n").expect("greeting");
        assert_eq!(sent(&out), "EHLO client.example\r\n");
        let out = session
            .receive(b"250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
            .expect("ehlo");
        assert_eq!(
            sent(&out),
            "MAIL FROM:<a@example.test> SIZE=21\r\nRCPT TO:<x@example.net>\r\nRCPT TO:<y@example.net>\r\nDATA\r\n"
        );
        // Replies may arrive split anywhere.
        let out = session
            .receive(b"250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n35")
            .expect("rcpts");
        assert!(out.is_empty());
        let out = session.receive(b"4 go ahead\r\n").expect("data");
        assert_eq!(sent(&out), "Subject: hi\r\n\r\n..dot\r\n.\r\n");
        let out = session.receive(b"250 2.0.0 queued\r\n").expect("body");
        assert_eq!(out.last(), Some(&Output::Finished));
        let results = session.results();
        assert_eq!(results[0].as_ref().map(|r| r.code), Some(550));
        assert_eq!(
            results[0].as_ref().map(Reply::status).as_deref(),
            Some("5.1.1")
        );
        assert_eq!(results[1].as_ref().map(|r| r.code), Some(250));
    }

    #[test]
    fn starttls_when_offered_then_ehlo_again_and_one_command_at_a_time() {
        let mut session = session(&["x@example.net"], b"body");
        session.receive(b"220 mx\r\n").expect("greeting");
        let out = session
            .receive(b"250-mx\r\n250 STARTTLS\r\n")
            .expect("ehlo");
        assert_eq!(sent(&out), "STARTTLS\r\n");
        let out = session.receive(b"220 go\r\n").expect("starttls");
        assert_eq!(out, vec![Output::StartTls]);
        assert_eq!(sent(&session.tls_started()), "EHLO client.example\r\n");
        let out = session.receive(b"250 mx\r\n").expect("ehlo 2");
        assert_eq!(sent(&out), "MAIL FROM:<a@example.test>\r\n");
        let out = session.receive(b"250 ok\r\n").expect("mail");
        assert_eq!(sent(&out), "RCPT TO:<x@example.net>\r\n");
        let out = session.receive(b"250 ok\r\n").expect("rcpt");
        assert_eq!(sent(&out), "DATA\r\n");
        let out = session.receive(b"354 go\r\n").expect("data");
        assert_eq!(sent(&out), "body\r\n.\r\n");
        session.receive(b"451 4.3.0 try later\r\n").expect("body");
        assert!(
            session.results()[0]
                .as_ref()
                .is_some_and(Reply::is_transient)
        );
        assert!(session.is_tls());
    }

    #[test]
    fn a_refused_greeting_fails_everyone() {
        let mut session = session(&["x@example.net"], b"body");
        let out = session.receive(b"554 go away\r\n").expect("greeting");
        assert_eq!(sent(&out), "QUIT\r\n");
        assert_eq!(session.results()[0].as_ref().map(|r| r.code), Some(554));
    }

    #[test]
    fn a_kept_session_sends_the_next_message_after_rset_in_one_group() {
        let mut session = session(&["x@example.net"], b"one").keep_open();
        session.receive(b"220 mx\r\n").expect("greeting");
        session
            .receive(b"250-mx\r\n250 PIPELINING\r\n")
            .expect("ehlo");
        session
            .receive(b"250 ok\r\n250 ok\r\n354 go\r\n")
            .expect("envelope");
        let out = session.receive(b"250 2.0.0 queued\r\n").expect("body");
        assert_eq!(out, vec![Output::Finished], "no QUIT: the session is kept");
        assert!(session.is_reusable());

        let out = session.next_transaction(
            Envelope {
                mail_from: "b@example.test".into(),
                recipients: vec!["y@example.net".into()],
                dsn: None,
            },
            b"two".to_vec(),
        );
        assert_eq!(
            sent(&out),
            "RSET\r\nMAIL FROM:<b@example.test>\r\nRCPT TO:<y@example.net>\r\nDATA\r\n"
        );
        assert_eq!(out.len(), 1, "one write");
        let out = session
            .receive(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
            .expect("envelope 2");
        assert_eq!(sent(&out), "two\r\n.\r\n");
        session.receive(b"250 2.0.0 queued\r\n").expect("body 2");
        assert_eq!(session.results()[0].as_ref().map(|r| r.code), Some(250));
        assert!(!session.died_idle());
    }

    #[test]
    fn a_kept_session_closed_while_idle_is_reported_as_died_idle() {
        let mut session = session(&["x@example.net"], b"one").keep_open();
        session.receive(b"220 mx\r\n").expect("greeting");
        session.receive(b"250 mx\r\n").expect("ehlo");
        session.receive(b"250 ok\r\n").expect("mail");
        session.receive(b"250 ok\r\n").expect("rcpt");
        session.receive(b"354 go\r\n").expect("data");
        session.receive(b"250 ok\r\n").expect("body");
        let out = session.next_transaction(
            Envelope {
                mail_from: "b@example.test".into(),
                recipients: vec!["y@example.net".into()],
                dsn: None,
            },
            b"two".to_vec(),
        );
        // Without PIPELINING, RSET goes alone and MAIL waits for its answer.
        assert_eq!(sent(&out), "RSET\r\n");
        session.abort(&Reply::local(451, [4, 4, 2], "closed"));
        assert!(
            session.died_idle(),
            "nothing was answered on the reused session"
        );
    }
}
