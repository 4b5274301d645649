//! STARTTLS (RFC 3207) and AUTH (RFC 4954: PLAIN, LOGIN) for the session: the commands that
//! change who the client is or how it talks, kept apart from the mail transaction.

use super::*;

impl Session {
    pub(super) fn starttls(&mut self) -> Step {
        if !self.config.starttls || self.tls {
            self.reply(replies::not_implemented());
            return Step::Continue;
        }
        if self.envelope.is_some() {
            self.reply(replies::bad_sequence("STARTTLS during a mail transaction"));
            return Step::Continue;
        }
        replies::ready_for_tls().write_to(&mut self.output);
        // RFC 3207 §4.2 / §5: anything pipelined after STARTTLS came in clear and is dropped.
        self.input = Vec::new();
        Step::Event(Event::StartTls)
    }

    /// The TLS handshake after [`Event::StartTls`] finished: the session starts over
    /// (RFC 3207 §4.2: the client must EHLO again; nothing learned before counts).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.authenticated_as = None;
        self.reset_transaction();
        self.input = Vec::new();
        self.state = State::Command;
    }

    pub(super) fn auth(&mut self, mechanism: u64, initial: String) -> Step {
        if !self.config.submission {
            self.reply(replies::not_implemented());
            return Step::Continue;
        }
        if self.helo.is_none() || !self.esmtp {
            self.reply(replies::bad_sequence("Send EHLO first"));
            return Step::Continue;
        }
        if self.authenticated_as.is_some() {
            self.reply(replies::bad_sequence("Already authenticated"));
            return Step::Continue;
        }
        if self.envelope.is_some() {
            self.reply(replies::bad_sequence("AUTH during a mail transaction"));
            return Step::Continue;
        }
        if !self.tls && !self.config.auth_without_tls {
            self.reply(replies::encryption_required());
            return Step::Continue;
        }
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                Reply::new(334, (0, 0, 0), "").write_plain(&mut self.output);
                self.state = State::AuthPlain;
                Step::Continue
            }
            AUTH_PLAIN => self.auth_plain(&initial),
            AUTH_LOGIN if initial.is_empty() => {
                Reply::new(334, (0, 0, 0), sasl::encode("Username:")).write_plain(&mut self.output);
                self.state = State::AuthLoginUser;
                Step::Continue
            }
            AUTH_LOGIN => self.auth_login_user(&initial),
            _ => {
                self.reply(Reply::new(
                    504,
                    (5, 5, 4),
                    "Unrecognized authentication type",
                ));
                Step::Continue
            }
        }
    }

    pub(super) fn auth_step(&mut self) -> Step {
        let line = match self.take_line() {
            Line::Incomplete => return Step::NeedInput,
            Line::Skipped => return Step::Continue,
            Line::TooLong => {
                self.state = State::Command;
                self.reply(replies::line_too_long());
                return Step::Continue;
            }
            Line::Complete(line) => line,
        };
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if text == "*" {
            // RFC 4954 §4: the client cancels the exchange.
            self.state = State::Command;
            self.reply(replies::auth_cancelled());
            return Step::Continue;
        }
        match std::mem::replace(&mut self.state, State::Command) {
            State::AuthPlain => self.auth_plain(&text),
            State::AuthLoginUser => self.auth_login_user(&text),
            State::AuthLoginPassword { login } => match sasl::decode_line(&text) {
                Some(password) => Step::Event(Event::Authenticate {
                    login,
                    password: String::from_utf8_lossy(&password).into_owned(),
                }),
                None => {
                    self.reply(Reply::new(501, (5, 5, 2), "Invalid base64"));
                    Step::Continue
                }
            },
            _ => Step::Continue,
        }
    }

    pub(super) fn auth_plain(&mut self, text: &str) -> Step {
        let credentials = if text == "=" {
            None
        } else {
            sasl::decode_line(text).and_then(|bytes| sasl::parse_plain(&bytes))
        };
        match credentials {
            Some((login, password)) => Step::Event(Event::Authenticate { login, password }),
            None => {
                self.reply(Reply::new(501, (5, 5, 2), "Invalid PLAIN response"));
                Step::Continue
            }
        }
    }

    pub(super) fn auth_login_user(&mut self, text: &str) -> Step {
        match sasl::decode_line(text).and_then(|bytes| String::from_utf8(bytes).ok()) {
            Some(login) if !login.is_empty() => {
                Reply::new(334, (0, 0, 0), sasl::encode("Password:")).write_plain(&mut self.output);
                self.state = State::AuthLoginPassword { login };
                Step::Continue
            }
            _ => {
                self.reply(Reply::new(501, (5, 5, 2), "Invalid base64"));
                Step::Continue
            }
        }
    }

    /// The outcome of the last [`Event::Authenticate`]: the account login, or `None`.
    pub fn answer_auth(&mut self, account: Option<String>) {
        if !matches!(self.state, State::Waiting(Event::Authenticate { .. })) {
            return;
        }
        self.state = State::Command;
        match account {
            Some(login) => {
                self.authenticated_as = Some(login);
                self.reply(replies::auth_ok());
            }
            None => self.reply(replies::auth_failed()),
        }
    }

    /// Answers a pending AUTH with `reply` instead of checking it (e.g. `454 4.7.0`, RFC 4954
    /// §6, when the login throttle refuses the client for now).
    pub fn refuse_auth(&mut self, reply: Reply) {
        if !matches!(self.state, State::Waiting(Event::Authenticate { .. })) {
            return;
        }
        self.state = State::Command;
        self.reply(reply);
    }
}
