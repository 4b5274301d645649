//! The stable-toolchain counterpart of the `smtp_session` libFuzzer target: a deterministic
//! pass of random and mutated transcripts through [`super::fuzzing::run`], so every
//! `cargo test` checks the session's invariants on a few thousand hostile inputs.

use super::fuzzing::{FUZZ_MAX_MESSAGE_SIZE, run};
use crate::test_random::Generator;

/// Transcripts that reach every state: pipelined transactions, BDAT, AUTH, STARTTLS, DATA
/// with dot-stuffing. 0xFF cuts the input into the pieces the client sends.
const SEEDS: &[&[u8]] = &[
    b"\x00EHLO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n\xffSubject: s\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    b"\x01EHLO a\r\nAUTH PLAIN AGFAYgBj\r\n\xffAUTH LOGIN\r\nYQ==\r\n\xffYg==\r\nMAIL FROM:<a@b.c> SIZE=10\r\n",
    b"\x06EHLO a\r\nSTARTTLS\r\n\xffEHLO b\r\nAUTH PLAIN\r\nAGFAYgBj\r\nRCPT TO:<q@r.s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;q@r.s\r\n",
    b"\x08EHLO a\r\nMAIL FROM:<> BODY=BINARYMIME\r\nRCPT TO:<x@y.z>\r\nBDAT 5\r\nhello\xffBDAT 0 LAST\r\nRSET\r\n",
    b"\xf0HELO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<1@y.z>\r\nRCPT TO:<2@y.z>\r\nRCPT TO:<3@y.z>\r\nRCPT TO:<4@y.z>\r\nDATA\r\nx\r\n.\r\n",
];

const FRAGMENTS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"\r\n.\r\n",
    b"\n.\r\n",
    b"\xff",
    b"\x00",
    b"DATA\r\n",
    b"BDAT 4096 LAST\r\n",
    b"BDAT 99999999999999999999\r\n",
    b"RCPT TO:<x@y.z>\r\n",
    b"MAIL FROM:<a@b.c> SIZE=99999999999\r\n",
    b"STARTTLS\r\n",
    b"AUTH LOGIN\r\n",
    b"*\r\n",
    b"NOOP\r\n",
    b"\xc3\x28",
];

fn mutate(generator: &mut Generator, seed: &[u8]) -> Vec<u8> {
    let mut input = seed.to_vec();
    for _ in 0..=generator.below(6) {
        let at = generator.below(input.len() + 1);
        match generator.below(5) {
            0 if !input.is_empty() => {
                let end = (at + generator.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            1 => {
                let fragment = FRAGMENTS[generator.below(FRAGMENTS.len())];
                input.splice(at..at, fragment.iter().copied());
            }
            2 if at < input.len() => input[at] = generator.next() as u8,
            3 => {
                // A long run: line-length and size limits.
                let byte = [b'x', b'.', b'\n', b' '][generator.below(4)];
                let length = generator.below(2 * FUZZ_MAX_MESSAGE_SIZE);
                input.splice(at..at, std::iter::repeat_n(byte, length));
            }
            _ => {
                let fragment = SEEDS[generator.below(SEEDS.len())];
                let from = generator.below(fragment.len());
                input.splice(at..at, fragment[from..].iter().copied());
            }
        }
    }
    input
}

#[test]
fn hostile_transcripts_keep_every_session_invariant() {
    let mut generator = Generator(0x5EED_5A17_0000_0013);
    let mut messages = 0;
    for seed in SEEDS {
        messages += run(seed).messages;
    }
    assert!(messages >= 2, "the seeds deliver messages: {messages}");
    for round in 0..20_000 {
        let input = if round % 10 == 0 {
            let length = generator.below(512);
            (0..length).map(|_| generator.next() as u8).collect()
        } else {
            mutate(&mut generator, SEEDS[round % SEEDS.len()])
        };
        let outcome = run(&input);
        assert!(outcome.closed, "every run ends with the session closed");
    }
}

/// Found by the pass above: a MAIL parameter is quoted in the `555` reply, and a MAIL line
/// may be 1,112 octets, so the reply passed the 512-octet line limit (RFC 5321 §4.5.3.1.5).
#[test]
fn a_reply_quoting_a_long_parameter_stays_within_512_octets() {
    let mut input = b"\x00EHLO a\r\nMAIL FROM:<a@b.c> X".to_vec();
    input.extend(std::iter::repeat_n(b'X', 1000));
    input.extend_from_slice(b"\r\nQUIT\r\n");
    let outcome = run(&input);
    assert!(outcome.replies >= 3, "greeting, EHLO, the 555 and the 221");
}
