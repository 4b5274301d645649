//! Fuzzes the JMAP request parser (RFC 8620 §3.3): any bytes must give a Request or a
//! ProblemDetails of one of the §3.6.1 types, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::jmap::request::Request;

const PROBLEM_TYPES: [&str; 4] = [
    "urn:ietf:params:jmap:error:unknownCapability",
    "urn:ietf:params:jmap:error:notJSON",
    "urn:ietf:params:jmap:error:notRequest",
    "urn:ietf:params:jmap:error:limit",
];

fuzz_target!(|body: &[u8]| {
    match Request::parse(body, 64) {
        Ok(request) => assert!(request.method_calls.len() <= 64),
        Err(problem) => {
            assert!(PROBLEM_TYPES.contains(&problem.kind.as_str()));
            assert_eq!(problem.status, 400);
        }
    }
});
