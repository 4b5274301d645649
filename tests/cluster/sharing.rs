//! Sharing on a cluster (RFC 9670): a grantee's writes to a shared account run on that
//! account's owner, whichever node the grantee's own account lives on and whichever node the
//! request reaches, so they pass the owner's fence.

use serde_json::{Value, json};

use crate::harness::{Call, api, claim_through, client, create_account, three_nodes, with_fdb};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn response(call: Call) -> Value {
    match call {
        Call::Ok(value) => value["methodResponses"][0].clone(),
        other => panic!("no answer: {other:?}"),
    }
}

#[test]
fn a_grantees_writes_run_on_the_shared_accounts_owner() {
    with_fdb("sharing", |fdb| {
        let nodes = three_nodes(fdb);
        let (owner, grantee) = ("owner@cluster.test", "grantee@cluster.test");
        create_account(&nodes[0], owner);
        create_account(&nodes[0], grantee);
        runtime().block_on(async {
            let http = client();
            // The owner's account lives on c, the grantee's on a.
            let owner_account = claim_through(&http, &nodes[2], owner).await;
            let grantee_account = claim_through(&http, &nodes[0], grantee).await;
            let created = response(
                api(
                    &http,
                    &nodes[1].base_url,
                    owner,
                    json!([["Mailbox/set", {"accountId": owner_account, "create": {"t": {
                        "name": "Team",
                        "shareWith": {grantee_account.clone(): {"mayReadItems": true, "mayCreateChild": true}},
                    }}}, "0"]]),
                )
                .await,
            );
            let team = created[1]["created"]["t"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{created}"))
                .to_owned();
            // Through every node, including the grantee's own (a) and the owner's (c).
            for (index, node) in nodes.iter().enumerate() {
                let child = response(
                    api(
                        &http,
                        &node.base_url,
                        grantee,
                        json!([["Mailbox/set", {"accountId": owner_account, "create": {"c": {
                            "name": format!("child {index}"), "parentId": team,
                        }}}, "0"]]),
                    )
                    .await,
                );
                assert!(
                    child[1]["created"]["c"]["id"].is_string(),
                    "through node {}: {child}",
                    node.name
                );
            }
            let listed = response(
                api(
                    &http,
                    &nodes[0].base_url,
                    grantee,
                    json!([["Mailbox/get", {"accountId": owner_account, "properties": ["name"]}, "0"]]),
                )
                .await,
            );
            assert_eq!(listed[1]["list"].as_array().map(Vec::len), Some(4), "{listed}");
        });
    });
}
