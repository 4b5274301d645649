//! Fuzzes the sans-IO SMTP server session: any bytes from any client (MX or submission, with
//! or without TLS) must end the session without a panic, with well-formed replies, bounded
//! buffers and no message over the SIZE limit (`tern::smtp::session::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    tern::smtp::session::fuzzing::run(input);
});
