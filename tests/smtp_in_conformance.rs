//! The SMTP C:/S: transcripts of the conformance runner (`conformance/cases/smtp-*.json`)
//! against Tern's MX listener.

mod smtp_in_common;

#[tokio::test]
async fn smtp_transcripts_pass() {
    let harness = smtp_in_common::start(|_| {}).await;
    let address = harness.server.smtp.mx.expect("MX listener");
    let outcomes = tern_conformance::smtp::run(address, "alice@example.test")
        .await
        .expect("cases parse");
    assert!(outcomes.len() >= 10, "{outcomes:?}");
    let failures: Vec<_> = outcomes
        .iter()
        .filter(|outcome| outcome.failure.is_some())
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    harness.server.shutdown().await;
}
