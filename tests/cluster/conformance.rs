//! The conformance runner against one node of a three-node cluster, exactly as
//! `tests/conformance.rs` runs it against a single embedded node: every case passes. The two
//! users' accounts are owned by the two OTHER nodes, so every API request is forwarded.

use tern_conformance::{Config, Credentials};

use crate::harness::{PASSWORD, claim_through, client, create_account, three_nodes, with_fdb};

#[test]
fn the_conformance_runner_passes_against_a_node_of_a_three_node_cluster() {
    with_fdb("conformance", |fdb| {
        let nodes = three_nodes(fdb);
        let (alice, bob) = ("alice@cluster.test", "bob@cluster.test");
        create_account(&nodes[0], alice);
        create_account(&nodes[0], bob);
        let token = nodes[0].tern(&["token", "create", alice]).trim().to_owned();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let report = runtime.block_on(async {
            let http = client();
            claim_through(&http, &nodes[0], alice).await;
            claim_through(&http, &nodes[2], bob).await;
            let mut config = Config::new(
                format!("{}/.well-known/jmap", nodes[1].base_url),
                alice.to_owned(),
                PASSWORD.to_owned(),
            );
            config.bearer = Some(token);
            config.second_user = Some(Credentials {
                user: bob.to_owned(),
                password: PASSWORD.to_owned(),
            });
            tern_conformance::run(&config).await
        });
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
            "conformance failures on a cluster node:\n{}",
            failures.join("\n")
        );
        assert!(report.passed() > 60, "only {} cases ran", report.passed());
    });
}
