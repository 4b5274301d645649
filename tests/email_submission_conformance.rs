//! The conformance runner's sending cases (`conformance/cases/email-submission-outbound.json`)
//! against a Tern server relaying to the runner, which plays the next hop: a recipient refused
//! with 550 bounces (deliveryStatus, dsnBlobIds), a refused DATA fails every recipient, an
//! accepted message is relayed.

mod common;

use common::TestServer;
use tern_conformance::Config;

#[tokio::test]
async fn tern_passes_the_sending_conformance_cases() {
    let next_hop = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let server = TestServer::start_with(move |config| {
        config.outbound.relay = Some(next_hop.to_string());
        config.outbound.starttls = false;
    })
    .await;
    let alice = server.alice();
    let config = Config::new(
        server.session_url(),
        alice.email.clone(),
        alice.password.clone(),
    );
    let report = tern_conformance::outbound::run(&config, next_hop).await;
    println!("{}", report.render_text());
    let failures: Vec<String> = report
        .failures()
        .map(|result| format!("{}: {:?}", result.name, result.outcome))
        .collect();
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(report.passed(), 3, "every case ran");
    server.shutdown().await;
}
