//! Runs the black-box conformance runner (`conformance/`) in-process against a Tern server
//! started by the harness, with two users and a bearer token so every section runs.

mod common;

use common::TestServer;
use tern_conformance::{Config, Credentials, Outcome};

#[tokio::test]
async fn tern_passes_the_rfc_8620_conformance_cases() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let bob = server.bob();
    let mut config = Config::new(
        server.session_url(),
        alice.email.clone(),
        alice.password.clone(),
    );
    config.bearer = Some(server.alice_token().to_owned());
    config.second_user = Some(Credentials {
        user: bob.email.clone(),
        password: bob.password.clone(),
    });
    let report = tern_conformance::run(&config).await;
    println!("{}", report.render_text());
    let failures: Vec<String> = report
        .failures()
        .map(|result| {
            format!(
                "{} :: {}: {:?}",
                result.section, result.name, result.outcome
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
    // With two users and a token nothing may be skipped for lack of configuration.
    let skipped: Vec<&str> = report
        .results
        .iter()
        .filter(|result| matches!(&result.outcome, Outcome::Skip(reason) if reason.contains("second user")))
        .map(|result| result.name.as_str())
        .collect();
    assert!(skipped.is_empty(), "skipped: {skipped:?}");
    assert!(report.passed() > 60, "only {} cases ran", report.passed());
    server.shutdown().await;
}

#[tokio::test]
async fn the_runner_fails_when_it_cannot_log_in() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let mut config = Config::new(server.session_url(), alice.email.clone(), "wrong password");
    config.filter = Some("3.3".to_owned());
    let report = tern_conformance::run(&config).await;
    assert_eq!(report.failed(), 1, "{}", report.render_text());
    assert_eq!(report.passed(), 0);
    assert!(report.summary_line().starts_with("0 passed, 1 failed"));
    server.shutdown().await;
}
