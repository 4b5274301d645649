//! The session alone: bytes in, replies out, no sockets.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

/// Drives a session like a listener, answering events with a fixed little world: accounts
/// alice@local.test (1) and bob@local.test (2), password "secret".
struct Driver {
    session: Session,
    messages: Vec<ReceivedMessage>,
    store_fails: bool,
    tls_handshakes: usize,
    closed: bool,
}

impl Driver {
    fn new(config: SessionConfig) -> Driver {
        Driver::with_tls(config, false)
    }

    fn with_tls(config: SessionConfig, tls: bool) -> Driver {
        let session = Session::new(
            Arc::new(config),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            tls,
        );
        Driver {
            session,
            messages: Vec::new(),
            store_fails: false,
            tls_handshakes: 0,
            closed: false,
        }
    }

    /// Feeds `input` (in one piece) and returns every reply line produced until the session
    /// needs more input or closes.
    fn send(&mut self, input: &[u8]) -> Vec<String> {
        self.session.feed(input);
        self.run()
    }

    fn run(&mut self) -> Vec<String> {
        loop {
            match self.session.next_event() {
                Event::NeedInput => break,
                Event::Close => {
                    self.closed = true;
                    break;
                }
                Event::Recipient(query) => {
                    let decision = match query.address.to_lowercase().as_str() {
                        "alice@local.test" => RecipientDecision::Accept {
                            account_id: Some(1),
                        },
                        "bob@local.test" | "postmaster" => RecipientDecision::Accept {
                            account_id: Some(2),
                        },
                        address if address.ends_with("@local.test") => {
                            RecipientDecision::Reject(replies::unknown_user())
                        }
                        _ if query.authenticated_as.is_some() => {
                            RecipientDecision::Accept { account_id: None }
                        }
                        _ => RecipientDecision::Reject(replies::relay_denied()),
                    };
                    self.session.answer_recipient(decision);
                }
                Event::Authenticate { login, password } => {
                    let ok = login == "alice@local.test" && password == "secret";
                    self.session.answer_auth(ok.then_some(login));
                }
                Event::Message(message) => {
                    if self.store_fails {
                        self.session.answer_message(Err(replies::local_error()));
                    } else {
                        self.messages.push(*message);
                        let id = format!("Q{}", self.messages.len());
                        self.session.answer_message(Ok(id));
                    }
                }
                Event::StartTls => {
                    self.tls_handshakes += 1;
                    self.session.tls_started();
                }
            }
        }
        let output = String::from_utf8(self.session.take_output()).expect("replies are UTF-8");
        output.lines().map(str::to_owned).collect()
    }

    fn greeting(&mut self) -> Vec<String> {
        self.run()
    }
}

fn codes(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(|line| &line[..3.min(line.len())])
        .collect()
}

fn mx() -> Driver {
    let mut driver = Driver::new(SessionConfig {
        hostname: "mx.local.test".into(),
        ..SessionConfig::default()
    });
    let greeting = driver.greeting();
    assert_eq!(greeting, vec!["220 mx.local.test ESMTP Tern"]);
    driver
}

#[test]
fn ehlo_advertises_the_extensions() {
    let mut driver = mx();
    let lines = driver.send(b"EHLO client.test\r\n");
    let text = lines.join("\n");
    for extension in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "SIZE 26214400",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "DSN",
    ] {
        assert!(text.contains(extension), "{extension} missing in {text}");
    }
    assert!(
        !text.contains("STARTTLS") && !text.contains("AUTH"),
        "{text}"
    );
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.starts_with("250-"))
    );
    assert!(lines.last().unwrap().starts_with("250 "));
    assert_eq!(
        driver.send(b"HELO client.test\r\n"),
        vec!["250 mx.local.test"]
    );
}

#[test]
fn a_pipelined_transaction_is_answered_in_order_and_kept_whole() {
    let mut driver = mx();
    driver.send(b"EHLO client.test\r\n");
    let lines = driver.send(
        b"MAIL FROM:<s@remote.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=abc\r\n\
          RCPT TO:<alice@local.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@local.test\r\n\
          RCPT TO:<nobody@local.test>\r\n\
          RCPT TO:<someone@elsewhere.test>\r\n\
          RCPT TO:<Bob@local.test>\r\n\
          DATA\r\n\
          Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\n\
          QUIT\r\n",
    );
    assert_eq!(
        codes(&lines),
        vec!["250", "250", "550", "550", "250", "354", "250", "221"]
    );
    assert!(lines[2].starts_with("550 5.1.1"), "{}", lines[2]);
    assert!(lines[3].starts_with("550 5.7.1"), "{}", lines[3]);
    assert_eq!(lines[6], "250 2.0.0 OK queued as Q1");
    assert!(driver.closed);
    let message = &driver.messages[0];
    assert_eq!(message.body, b"Subject: hi\r\n\r\n.dot\r\nline\r\n");
    let envelope = &message.envelope;
    assert_eq!(envelope.mail_from, "s@remote.test");
    assert_eq!(envelope.body_type, BodyType::EightBitMime);
    assert_eq!(envelope.ret, Some(DsnRet::Headers));
    assert_eq!(envelope.env_id.as_deref(), Some("abc"));
    assert_eq!(envelope.declared_size, 100);
    let addresses: Vec<_> = envelope
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.account_id))
        .collect();
    assert_eq!(
        addresses,
        vec![("alice@local.test", Some(1)), ("Bob@local.test", Some(2))]
    );
    let alice = &envelope.recipients[0];
    assert_eq!(
        alice.notify,
        Some(DsnNotify {
            success: true,
            failure: true,
            ..DsnNotify::default()
        })
    );
    assert_eq!(alice.orcpt.as_deref(), Some("rfc822;alice@local.test"));
    assert_eq!(message.helo, "client.test");
    assert!(!message.tls);
}

#[test]
fn input_split_at_every_byte_gives_the_same_result() {
    let script: &[u8] =
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
    let mut whole = mx();
    let expected = whole.send(script);
    for split in 1..script.len() {
        let mut driver = mx();
        let mut lines = driver.send(&script[..split]);
        lines.extend(driver.send(&script[split..]));
        assert_eq!(lines, expected, "split at {split}");
        assert_eq!(driver.messages[0].body, b"x\r\n");
        assert_eq!(driver.messages[0].envelope.mail_from, "");
    }
}

#[test]
fn bad_sequences_get_503_and_syntax_errors_500_501() {
    let mut driver = mx();
    assert!(driver.send(b"MAIL FROM:<a@b.test>\r\n")[0].starts_with("503 5.5.1"));
    assert!(driver.send(b"RCPT TO:<alice@local.test>\r\n")[0].starts_with("503"));
    assert!(driver.send(b"DATA\r\n")[0].starts_with("503"));
    assert!(driver.send(b"FROBNICATE\r\n")[0].starts_with("500 5.5.1"));
    assert!(driver.send(b"EHLO\r\n")[0].starts_with("501"));
    driver.send(b"EHLO c\r\n");
    assert!(driver.send(b"MAIL FROM:a@b\r\n")[0].starts_with("501"));
    assert!(driver.send(b"MAIL FROM:<a@b.test> SIZE=x\r\n")[0].starts_with("501"));
    assert!(driver.send(b"MAIL FROM:<a@b.test>\r\n")[0].starts_with("250"));
    assert!(
        driver.send(b"MAIL FROM:<a@b.test>\r\n")[0].starts_with("503"),
        "nested"
    );
    assert!(driver.send(b"RCPT TO:<a@b.test> NOTIFY=SOMETIMES\r\n")[0].starts_with("501"));
    // Only refused recipients: DATA is "no valid recipients".
    assert!(driver.send(b"RCPT TO:<x@local.test>\r\n")[0].starts_with("550"));
    assert!(driver.send(b"DATA\r\n")[0].starts_with("554 5.5.1"));
    assert_eq!(driver.send(b"RSET\r\n"), vec!["250 2.0.0 Reset"]);
    assert!(driver.send(b"RCPT TO:<alice@local.test>\r\n")[0].starts_with("503"));
    assert_eq!(driver.send(b"NOOP\r\n"), vec!["250 2.0.0 OK"]);
    assert!(driver.send(b"VRFY alice\r\n")[0].starts_with("252"));
    assert!(driver.send(b"EXPN list\r\n")[0].starts_with("502"));
    assert!(driver.send(b"HELP\r\n")[0].starts_with("214"));
    assert!(driver.send(b"LHLO c\r\n")[0].starts_with("500"));
    assert!(
        driver.send(b"AUTH PLAIN AGEAYg==\r\n")[0].starts_with("502"),
        "no AUTH on MX"
    );
    assert!(
        driver.send(b"STARTTLS\r\n")[0].starts_with("502"),
        "no certificate"
    );
    assert!(driver.messages.is_empty());
    assert!(!driver.closed);
}

#[test]
fn line_length_limits_follow_rfc_5321() {
    let mut driver = mx();
    driver.send(b"EHLO c\r\n");
    // 512 octets with CRLF is fine, 513 is not.
    let mut ok = b"NOOP ".to_vec();
    ok.resize(510, b'x');
    ok.extend_from_slice(b"\r\n");
    assert_eq!(driver.send(&ok), vec!["250 2.0.0 OK"]);
    let mut long = b"NOOP ".to_vec();
    long.resize(511, b'x');
    long.extend_from_slice(b"\r\n");
    assert_eq!(driver.send(&long), vec!["500 5.5.2 Line too long"]);
    // An endless line is refused once, skipped until its end, and the session goes on.
    assert_eq!(codes(&driver.send(&[b'y'; 5000])), vec!["500"]);
    assert!(driver.send(&[b'y'; 5000]).is_empty());
    assert_eq!(driver.send(b"yyy\r\nNOOP\r\n"), vec!["250 2.0.0 OK"]);
    // A text line of 1001 octets in DATA fails the message; 1000 passes.
    let mut data = b"MAIL FROM:<>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n".to_vec();
    data.extend(std::iter::repeat_n(b'z', MAX_TEXT_LINE - 2));
    data.extend_from_slice(b"\r\n.\r\n");
    assert_eq!(codes(&driver.send(&data)), vec!["250", "250", "354", "250"]);
    let mut data = b"MAIL FROM:<>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n".to_vec();
    data.extend(std::iter::repeat_n(b'z', MAX_TEXT_LINE - 1));
    data.extend_from_slice(b"\r\n.\r\n");
    let lines = driver.send(&data);
    assert_eq!(codes(&lines), vec!["250", "250", "354", "500"]);
    assert_eq!(driver.messages.len(), 1);
}

#[test]
fn size_and_recipient_limits() {
    let mut driver = Driver::new(SessionConfig {
        max_message_size: 50,
        max_recipients: 2,
        ..SessionConfig::default()
    });
    driver.greeting();
    driver.send(b"EHLO c\r\n");
    assert!(driver.send(b"MAIL FROM:<a@b.test> SIZE=51\r\n")[0].starts_with("552 5.3.4"));
    let lines = driver.send(
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@local.test>\r\nRCPT TO:<bob@local.test>\r\n\
          RCPT TO:<alice@local.test>\r\n",
    );
    assert_eq!(codes(&lines), vec!["250", "250", "250", "452"]);
    assert!(lines[3].starts_with("452 4.5.3"));
    let mut data = b"DATA\r\n".to_vec();
    data.extend([b'a'; 60]);
    data.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    assert_eq!(codes(&driver.send(&data)), vec!["354", "552", "250"]);
    // BDAT past the limit: the chunks are still read, the transaction fails.
    let lines = driver.send(
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@local.test>\r\nBDAT 40\r\n\
          0123456789012345678901234567890123456789BDAT 20 LAST\r\n01234567890123456789NOOP\r\n",
    );
    assert_eq!(codes(&lines), vec!["250", "250", "250", "552", "250"]);
    assert!(driver.messages.is_empty());
}

#[test]
fn bdat_chunks_make_one_message() {
    let mut driver = mx();
    let lines = driver.send(
        b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@local.test>\r\n\
          BDAT 7\r\nHello\r\nBDAT 0\r\nBDAT 7 LAST\r\n World\n",
    );
    assert_eq!(
        codes(&lines)[lines.len() - 4..],
        ["250", "250", "250", "250"]
    );
    assert!(lines.last().unwrap().contains("queued as Q1"));
    // Exact octets: no dot handling, a bare LF kept.
    assert_eq!(driver.messages[0].body, b"Hello\r\n World\n");
    // BDAT without a transaction: refused, and the chunk is still consumed.
    let lines = driver.send(b"BDAT 4 LAST\r\nabcdNOOP\r\n");
    assert_eq!(codes(&lines), vec!["503", "250"]);
    // DATA in the middle of a BDAT sequence is out of sequence.
    let lines = driver
        .send(b"MAIL FROM:<>\r\nRCPT TO:<bob@local.test>\r\nBDAT 2\r\nabDATA\r\nBDAT 1 LAST\r\nc");
    assert_eq!(codes(&lines), vec!["250", "250", "250", "503", "250"]);
    assert_eq!(driver.messages[1].body, b"abc");
    // Empty chunk split from its command across reads.
    let lines = driver.send(b"MAIL FROM:<>\r\nRCPT TO:<bob@local.test>\r\nBDAT 3 LA");
    assert_eq!(codes(&lines), vec!["250", "250"]);
    assert!(driver.send(b"ST\r\nx").is_empty());
    assert_eq!(codes(&driver.send(b"yz")), vec!["250"]);
    assert_eq!(driver.messages[2].body, b"xyz");
}

#[test]
fn a_failed_store_answers_451_and_the_session_goes_on() {
    let mut driver = mx();
    driver.store_fails = true;
    let lines = driver.send(
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n",
    );
    assert!(lines[lines.len() - 2].starts_with("451 4.3.0"));
    assert_eq!(lines.last().unwrap(), "250 2.0.0 OK");
    // The transaction is over: a new MAIL is accepted.
    assert!(driver.send(b"MAIL FROM:<>\r\n")[0].starts_with("250"));
}

#[test]
fn disconnect_mid_data_drops_the_transaction() {
    let mut driver = mx();
    driver.send(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\npartial");
    assert!(driver.session.in_data());
    driver.session.input_closed();
    assert_eq!(driver.session.next_event(), Event::Close);
    assert!(driver.messages.is_empty());
}

#[test]
fn too_many_errors_close_the_session() {
    let mut driver = Driver::new(SessionConfig {
        max_errors: 3,
        ..SessionConfig::default()
    });
    driver.greeting();
    let lines = driver.send(b"a\r\nb\r\nc\r\nd\r\n");
    assert_eq!(codes(&lines), vec!["500", "500", "500", "421"]);
    assert!(driver.closed);
}

#[test]
fn timeouts_and_shutdown_answer_421() {
    let mut driver = mx();
    driver.session.timed_out();
    assert_eq!(driver.run(), vec!["421 4.4.2 Timeout; closing connection"]);
    assert!(driver.closed);
}

fn submission(tls: bool, auth_without_tls: bool) -> Driver {
    let mut driver = Driver::with_tls(
        SessionConfig {
            submission: true,
            starttls: true,
            auth_without_tls,
            ..SessionConfig::default()
        },
        tls,
    );
    driver.greeting();
    driver
}

#[test]
fn submission_requires_auth_and_auth_requires_tls() {
    let mut driver = submission(false, false);
    let ehlo = driver.send(b"EHLO c\r\n").join("\n");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(driver.send(b"MAIL FROM:<alice@local.test>\r\n")[0].starts_with("530 5.7.0"));
    assert!(
        driver.send(b"AUTH PLAIN AGFsaWNlQGxvY2FsLnRlc3QAc2VjcmV0\r\n")[0]
            .starts_with("538 5.7.11")
    );
    // STARTTLS drops whatever was pipelined after it (RFC 3207 §5) and starts over.
    let lines = driver.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n");
    assert_eq!(lines, vec!["220 2.0.0 Ready to start TLS"]);
    assert_eq!(driver.tls_handshakes, 1);
    assert!(
        driver.send(b"MAIL FROM:<a@b.test>\r\n")[0].starts_with("503"),
        "EHLO again"
    );
    let ehlo = driver.send(b"EHLO c\r\n").join("\n");
    assert!(
        !ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"),
        "{ehlo}"
    );
    assert!(
        driver.send(b"AUTH PLAIN AGFsaWNlQGxvY2FsLnRlc3QAd3Jvbmc=\r\n")[0].starts_with("535 5.7.8")
    );
    assert_eq!(
        driver.send(b"AUTH PLAIN AGFsaWNlQGxvY2FsLnRlc3QAc2VjcmV0\r\n"),
        vec!["235 2.7.0 Authentication successful"]
    );
    // Authenticated: a non-local recipient is accepted for relay (account None).
    let lines = driver.send(
        b"MAIL FROM:<alice@local.test>\r\nRCPT TO:<friend@far.test>\r\nRCPT TO:<bob@local.test>\r\n\
          DATA\r\nhi\r\n.\r\n",
    );
    assert_eq!(codes(&lines), vec!["250", "250", "250", "354", "250"]);
    let message = &driver.messages[0];
    assert_eq!(
        message.authenticated_as.as_deref(),
        Some("alice@local.test")
    );
    assert!(message.tls);
    assert_eq!(message.envelope.recipients[0].account_id, None);
    assert_eq!(message.envelope.recipients[1].account_id, Some(2));
}

#[test]
fn auth_login_and_plain_with_continuations() {
    let mut driver = submission(true, false);
    driver.send(b"EHLO c\r\n");
    assert_eq!(driver.send(b"AUTH LOGIN\r\n"), vec!["334 VXNlcm5hbWU6"]);
    assert_eq!(
        driver.send(b"YWxpY2VAbG9jYWwudGVzdA==\r\n"),
        vec!["334 UGFzc3dvcmQ6"]
    );
    assert!(driver.send(b"c2VjcmV0\r\n")[0].starts_with("235"));
    assert!(
        driver.send(b"AUTH LOGIN\r\n")[0].starts_with("503"),
        "already authenticated"
    );

    let mut driver = submission(true, false);
    driver.send(b"EHLO c\r\n");
    assert_eq!(driver.send(b"AUTH PLAIN\r\n"), vec!["334 "]);
    assert!(driver.send(b"*\r\n")[0].starts_with("501 5.0.0"));
    assert_eq!(driver.send(b"AUTH PLAIN\r\n"), vec!["334 "]);
    assert!(driver.send(b"!!!\r\n")[0].starts_with("501"));
    assert!(driver.send(b"AUTH CRAM-MD5\r\n")[0].starts_with("504"));
    assert!(driver.authenticated().is_none());

    // Loopback without TLS: allowed when configured so.
    let mut driver = submission(false, true);
    let ehlo = driver.send(b"EHLO c\r\n").join("\n");
    assert!(ehlo.contains("AUTH"), "{ehlo}");
    assert!(driver.send(b"AUTH PLAIN AGFsaWNlQGxvY2FsLnRlc3QAc2VjcmV0\r\n")[0].starts_with("235"));
}

impl Driver {
    fn authenticated(&self) -> Option<&str> {
        self.session.authenticated_as()
    }
}

#[test]
fn smtputf8_addresses_need_the_parameter() {
    let mut driver = mx();
    driver.send(b"EHLO c\r\n");
    assert!(driver.send("MAIL FROM:<jos\u{e9}@b.test>\r\n".as_bytes())[0].starts_with("553 5.6.7"));
    let lines = driver.send(
        "MAIL FROM:<jos\u{e9}@b.test> SMTPUTF8\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nx\r\n.\r\n"
            .as_bytes(),
    );
    assert_eq!(codes(&lines), vec!["250", "250", "354", "250"]);
    assert!(driver.messages[0].envelope.smtputf8);
}

#[test]
fn an_idle_session_holds_little_memory() {
    let mut driver = mx();
    driver.send(b"EHLO c\r\n");
    let mut big = b"MAIL FROM:<>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n".to_vec();
    for _ in 0..2000 {
        big.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    big.extend_from_slice(b".\r\n");
    driver.send(&big);
    assert_eq!(driver.messages.len(), 1);
    assert!(
        driver.session.buffered_bytes() <= 8192,
        "{}",
        driver.session.buffered_bytes()
    );
    assert!(std::mem::size_of::<Session>() < 1024);
}

#[test]
fn bare_postmaster_is_a_recipient_and_an_empty_path_is_not() {
    // RFC 5321 §4.1.1.3 / §4.5.1: `<Postmaster>` without a domain is a valid forward-path.
    let mut driver = mx();
    driver.send(b"EHLO c\r\n");
    let lines = driver.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<PostMaster>\r\nRCPT TO:<>\r\n");
    assert_eq!(codes(&lines), vec!["250", "250", "501"], "{lines:?}");
    let lines = driver.send(b"DATA\r\nx\r\n.\r\n");
    assert_eq!(codes(&lines), vec!["354", "250"], "{lines:?}");
    let recipients = &driver.messages[0].envelope.recipients;
    assert_eq!(recipients.len(), 1);
    assert_eq!(recipients[0].address, "postmaster");
    assert_eq!(recipients[0].account_id, Some(2));
}
