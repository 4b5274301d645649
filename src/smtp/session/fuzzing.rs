//! Drives a [`Session`] from arbitrary bytes and checks what must hold for any client: the
//! session never panics, always ends, answers only well-formed replies, never holds more
//! than its limits allow, and never hands over a message larger than the SIZE limit. Shared
//! by the libFuzzer target (`conformance/fuzz/fuzz_targets/smtp_session.rs`) and the
//! deterministic pass that runs with `cargo test` (`tests.rs`).
//!
//! The input's first byte chooses the listener (MX or submission, TLS or not); the rest is
//! cut into the pieces the client sends, at every 0xFF byte, and each event the session asks
//! about is answered from a rolling choice, so refusals, failed stores and STARTTLS are
//! explored as well as the happy path.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::{Event, RecipientDecision, Session, SessionConfig, replies};

/// The SIZE limit of the fuzzed sessions: small, so the fuzzer reaches it.
pub const FUZZ_MAX_MESSAGE_SIZE: usize = 4096;

/// What one run saw, for the caller's own checks.
#[derive(Debug, Default)]
pub struct Outcome {
    pub replies: usize,
    pub messages: usize,
    pub closed: bool,
}

/// Runs one fuzz input through a session; panics (the fuzzer's finding) when an invariant
/// breaks.
pub fn run(input: &[u8]) -> Outcome {
    let (&options, script) = match input.split_first() {
        Some(split) => split,
        None => (&0, &[][..]),
    };
    let config = SessionConfig {
        hostname: "mx.fuzz.test".to_owned(),
        submission: options & 1 != 0,
        starttls: options & 2 != 0,
        auth_without_tls: options & 4 != 0,
        max_message_size: FUZZ_MAX_MESSAGE_SIZE,
        max_recipients: 3,
        max_errors: 1 + usize::from(options >> 4),
    };
    let mut session = Session::new(
        Arc::new(config),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        options & 8 != 0,
    );
    let mut pieces = script.split(|&byte| byte == 0xFF);
    let mut choice = u32::from(options);
    let mut outcome = Outcome::default();
    // Each step consumes a piece or answers an event; an event is answered at most once
    // before the session must move on, so this bound is never reached by a correct session.
    let step_limit = 4 * (script.len() + 16);
    for _ in 0..step_limit {
        let event = session.next_event();
        check_output(&mut session, &mut outcome);
        assert!(
            session.buffered_bytes() <= 2 * (script.len() + FUZZ_MAX_MESSAGE_SIZE) + 65_536,
            "a session holds more than its input and limits explain"
        );
        choice = choice.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        match event {
            Event::NeedInput => match pieces.next() {
                Some(piece) => session.feed(piece),
                None => session.input_closed(),
            },
            Event::Close => {
                outcome.closed = true;
                return outcome;
            }
            Event::Recipient(_) => {
                let decision = if choice & 0x300 == 0 {
                    RecipientDecision::Reject(replies::unknown_user())
                } else {
                    RecipientDecision::Accept {
                        account_id: Some(choice >> 20),
                    }
                };
                session.answer_recipient(decision);
            }
            Event::Authenticate { .. } => {
                session.answer_auth((choice & 0x100 != 0).then(|| "fuzz@fuzz.test".to_owned()));
            }
            Event::Message(message) => {
                assert!(
                    message.body.len() <= FUZZ_MAX_MESSAGE_SIZE,
                    "a message over the SIZE limit was handed over"
                );
                assert!(
                    !message.envelope.recipients.is_empty(),
                    "a message without an accepted recipient was handed over"
                );
                assert!(message.envelope.recipients.len() <= 3);
                outcome.messages += 1;
                if choice & 0x700 == 0 {
                    session.answer_message(Err(replies::local_error()));
                } else {
                    session.answer_message(Ok(format!("Q{}", outcome.messages)));
                }
            }
            Event::StartTls => session.tls_started(),
        }
    }
    panic!("the session did not end within {step_limit} steps");
}

/// Every reply line is `DDD` then a space or a dash, printable, and at most 512 octets
/// (RFC 5321 §4.5.3.1.5 reply line limit).
fn check_output(session: &mut Session, outcome: &mut Outcome) {
    let output = session.take_output();
    if output.is_empty() {
        return;
    }
    assert!(output.ends_with(b"\r\n"), "replies end with CRLF");
    for line in output
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        let line = line.strip_suffix(b"\r").expect("reply lines end with CRLF");
        assert!(
            line.len() <= 512,
            "reply line over 512 octets: {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(
            line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit),
            "reply without a code: {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(matches!(line[0], b'2'..=b'5'), "reply code out of range");
        assert!(line.len() == 3 || line[3] == b' ' || line[3] == b'-');
        if line.len() == 3 || line[3] == b' ' {
            outcome.replies += 1;
        }
    }
}
