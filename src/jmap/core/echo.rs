//! `Core/echo` (RFC 8620 §4): returns its arguments unchanged. The hot path of latency
//! benchmarks, so it moves the arguments instead of copying them.

use serde_json::Value;

use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::store::BoxFuture;

pub fn handle<'a>(
    _context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(std::future::ready(Ok(Value::Object(
        arguments.into_inner(),
    ))))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::jmap::test_support::{alice, engine};

    const ECHO: &[u8] =
        br#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"hello":true,"n":[1,2,3]},"c1"]]}"#;

    #[tokio::test]
    async fn echo_returns_its_arguments() {
        let test = engine();
        let response = test
            .engine
            .handle_api(&alice(), ECHO)
            .await
            .expect("response");
        assert_eq!(
            response["methodResponses"],
            serde_json::json!([["Core/echo", {"hello": true, "n": [1, 2, 3]}, "c1"]])
        );
    }

    /// The engine's share of the Core/echo latency budget (p50 ≤ 0.3 ms over HTTP). Run with
    /// `cargo test --release --lib echo_engine_cost -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement, not a check"]
    async fn echo_engine_cost() {
        let test = engine();
        let principal = alice();
        let rounds = 100_000;
        let started = Instant::now();
        for _ in 0..rounds {
            let response = test
                .engine
                .handle_api(&principal, ECHO)
                .await
                .expect("response");
            std::hint::black_box(serde_json::to_vec(&response).expect("serialize"));
        }
        let per_call = started.elapsed() / rounds;
        println!("Core/echo through the engine (parse, dispatch, serialize): {per_call:?}");
    }
}
