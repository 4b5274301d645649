//! Sending from a shared account (RFC 8621 §2 `maySubmit`, §7 EmailSubmission): a grantee
//! with `maySubmit` sees the owner's Identities and submits an Email of a Mailbox granting it,
//! which the outbound queue delivers (here to the grantee's own inbox); without the right,
//! submission is `forbidden` and no Identity shows.

mod common;
#[path = "sharing_common/mod.rs"]
mod sharing_common;

use std::time::Duration;

use common::{TestServer, TestUser};
use serde_json::{Value, json};
use sharing_common::*;

const SUBMISSION: &str = "urn:ietf:params:jmap:submission";

async fn submit_call(
    server: &TestServer,
    user: &TestUser,
    method: &str,
    arguments: Value,
) -> Value {
    let answer = server
        .post_api(
            user,
            &json!({"using": [CORE, MAIL, SUBMISSION], "methodCalls": [[method, arguments, "c"]]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let response = answer.json()["methodResponses"][0].clone();
    json!([response[0], response[1]])
}

#[tokio::test]
async fn a_grantee_with_may_submit_sends_from_the_shared_account() {
    let Shared { server, team, .. } = shared().await;
    let alice_account = server.alice().account_id.clone();
    let bob_id = server.bob().account_id.clone();
    let bob = server.bob();

    // Without maySubmit: no Identity, no submission capability.
    let identities = submit_call(
        &server,
        bob,
        "Identity/get",
        json!({"accountId": alice_account}),
    )
    .await;
    assert_eq!(identities[1]["list"], json!([]), "{identities}");
    let session = server.session(bob).await;
    assert!(
        session["accounts"][&alice_account]["accountCapabilities"]
            .get(SUBMISSION)
            .is_none()
    );

    let rights = json!({"mayReadItems": true, "mayAddItems": true, "maySubmit": true});
    share(&server, &team, &bob_id, rights).await;
    let session = server.session(bob).await;
    assert!(
        session["accounts"][&alice_account]["accountCapabilities"][SUBMISSION].is_object(),
        "{session}"
    );
    let identities = submit_call(
        &server,
        bob,
        "Identity/get",
        json!({"accountId": alice_account}),
    )
    .await;
    let identity = &identities[1]["list"][0];
    assert_eq!(identity["email"], "alice@example.test", "{identities}");
    let identity_id = identity["id"].as_str().unwrap().to_owned();
    let refused = submit_call(
        &server,
        bob,
        "Identity/set",
        json!({"accountId": alice_account, "update": {identity_id.clone(): {"name": "Bob"}}}),
    )
    .await;
    assert_eq!(refused[1]["type"], "accountNotSupportedByMethod");

    // A message in Team, written by bob for alice's account, sent to bob himself.
    let created = call(
        &server,
        bob,
        "Email/set",
        json!({"accountId": alice_account, "create": {"d": {
            "mailboxIds": {team.clone(): true},
            "from": [{"email": "alice@example.test"}],
            "to": [{"email": "bob@example.test"}],
            "subject": "sent for alice by bob",
            "textBody": [{"partId": "1", "type": "text/plain"}],
            "bodyValues": {"1": {"value": "hello from the team"}},
        }}}),
    )
    .await;
    let email_id = created[1]["created"]["d"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let submitted = submit_call(
        &server,
        bob,
        "EmailSubmission/set",
        json!({"accountId": alice_account, "create": {"s": {"identityId": identity_id, "emailId": email_id}}}),
    )
    .await;
    let submission_id = submitted[1]["created"]["s"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{submitted}"))
        .to_owned();
    let seen = submit_call(
        &server,
        bob,
        "EmailSubmission/get",
        json!({"accountId": alice_account, "ids": null}),
    )
    .await;
    assert_eq!(seen[1]["list"][0]["id"], submission_id, "{seen}");

    // The outbound queue delivers it locally: it arrives in bob's own inbox.
    let arrived = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let found = call(
                &server,
                bob,
                "Email/query",
                json!({"accountId": bob_id, "filter": {"subject": "sent for alice by bob"}}),
            )
            .await;
            if found[1]["ids"]
                .as_array()
                .is_some_and(|ids| !ids.is_empty())
            {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(arrived.is_ok(), "the message never reached bob's inbox");

    // maySubmit taken away: forbidden, and the submissions of the account are hidden again.
    share(
        &server,
        &team,
        &bob_id,
        json!({"mayReadItems": true, "mayAddItems": true}),
    )
    .await;
    let forbidden = submit_call(
        &server,
        bob,
        "EmailSubmission/set",
        json!({"accountId": alice_account, "create": {"s": {"identityId": identity_id, "emailId": email_id}}}),
    )
    .await;
    assert_eq!(
        forbidden[1]["notCreated"]["s"]["type"], "forbidden",
        "{forbidden}"
    );
    let hidden = submit_call(
        &server,
        bob,
        "EmailSubmission/get",
        json!({"accountId": alice_account, "ids": [submission_id]}),
    )
    .await;
    assert_eq!(hidden[1]["notFound"], json!([submission_id]), "{hidden}");
    server.shutdown().await;
}
