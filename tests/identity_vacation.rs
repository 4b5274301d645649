//! Identity (RFC 8621 §6) and VacationResponse (RFC 8621 §8) through the real `jmap-client`
//! crate, plus raw HTTP for the error cases the client cannot express.

mod common;

use common::{TestServer, request_using};
use jmap_client::URI;
use jmap_client::client::Client;
use jmap_client::core::set::{SetErrorType, SetObject};
use jmap_client::email::EmailAddress;
use jmap_client::identity::Identity;
use jmap_client::vacation_response::VacationResponse;
use serde_json::{Value, json};

/// jmap-client's one-call helpers put every capability it knows in `using`; Tern refuses the
/// ones it does not serve, so every request here names its capabilities.
fn submission_request(client: &Client) -> jmap_client::core::request::Request<'_> {
    request_using(client, &[URI::Core, URI::Submission])
}

fn vacation_request(client: &Client) -> jmap_client::core::request::Request<'_> {
    request_using(client, &[URI::Core, URI::VacationResponse])
}

async fn identity_get(client: &Client, id: &str) -> Option<Identity> {
    let mut request = submission_request(client);
    request.get_identity().ids([id]);
    request
        .send_get_identity()
        .await
        .expect("Identity/get")
        .take_list()
        .pop()
}

async fn identity_destroy(client: &Client, id: &str) -> jmap_client::Result<()> {
    let mut request = submission_request(client);
    request.set_identity().destroy([id]);
    request.send_set_identity().await?.destroyed(id)
}

async fn vacation_get(client: &Client) -> VacationResponse {
    let mut request = vacation_request(client);
    request.get_vacation_response().ids(["singleton"]);
    request
        .send_get_vacation_response()
        .await
        .expect("VacationResponse/get")
        .take_list()
        .pop()
        .expect("the singleton")
}

async fn vacation_update(
    client: &Client,
    change: impl FnOnce(&mut VacationResponse<jmap_client::Set>),
) -> jmap_client::Result<()> {
    let mut request = vacation_request(client);
    change(request.set_vacation_response().update("singleton"));
    request
        .send_set_vacation_response()
        .await?
        .updated("singleton")
        .map(|_| ())
}

fn set_error_type(error: jmap_client::Error) -> SetErrorType {
    match error {
        jmap_client::Error::Set(error) => error.error().clone(),
        other => panic!("expected a SetError, got {other:?}"),
    }
}

async fn all_identities(client: &Client) -> (String, Vec<Identity>) {
    let mut request = submission_request(client);
    request.get_identity();
    let mut response = request.send_get_identity().await.expect("Identity/get");
    (response.take_state(), response.take_list())
}

#[tokio::test]
async fn the_session_advertises_submission_and_vacation_response() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let session = server.session(alice).await;
    for capability in [
        "urn:ietf:params:jmap:submission",
        "urn:ietf:params:jmap:vacationresponse",
    ] {
        assert!(
            session["capabilities"][capability].is_object(),
            "{capability}"
        );
        assert!(
            session["accounts"][&alice.account_id]["accountCapabilities"][capability].is_object(),
            "{capability}"
        );
        assert_eq!(
            session["primaryAccounts"][capability],
            alice.account_id.as_str()
        );
    }
    let submission = &session["accounts"][&alice.account_id]["accountCapabilities"]["urn:ietf:params:jmap:submission"];
    // Delayed send (FUTURERELEASE) up to 30 days, now that EmailSubmission sends.
    assert_eq!(submission["maxDelayedSend"], 30 * 24 * 3600);
    assert!(
        submission["submissionExtensions"]["FUTURERELEASE"].is_array(),
        "{submission}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_account_starts_with_its_default_identity() {
    let server = TestServer::start().await;
    for user in [server.alice(), server.bob()] {
        let client = server.jmap_client(user).await;
        let (_, identities) = all_identities(&client).await;
        assert_eq!(identities.len(), 1, "{}", user.email);
        let default = &identities[0];
        assert_eq!(default.email(), Some(user.email.as_str()));
        assert!(!default.may_delete(), "the default identity stays");
        assert!(default.id().is_some_and(|id| id.starts_with('i')));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn identities_are_created_updated_and_destroyed() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let (state, identities) = all_identities(&client).await;
    let default_id = identities[0].id().expect("id").to_owned();

    // Create a second identity for the same address, with a reply-to and signatures.
    let mut request = submission_request(&client);
    let create_id = request
        .set_identity()
        .create()
        .name("Alice at work")
        .email(alice.email.as_str())
        .reply_to(Some(
            [EmailAddress::from(("Desk", "desk@example.test"))].into_iter(),
        ))
        .text_signature("-- \nAlice")
        .html_signature("<p>Alice</p>")
        .create_id()
        .expect("creation id");
    let created = request
        .send_set_identity()
        .await
        .expect("Identity/set")
        .created(&create_id)
        .expect("created");
    let work_id = created.id().expect("id").to_owned();
    assert!(created.may_delete(), "created identities may be deleted");

    let fetched = identity_get(&client, &work_id).await.expect("found");
    assert_eq!(fetched.name(), Some("Alice at work"));
    assert_eq!(fetched.email(), Some(alice.email.as_str()));
    assert_eq!(fetched.text_signature(), Some("-- \nAlice"));
    assert_eq!(fetched.html_signature(), Some("<p>Alice</p>"));
    let reply_to = fetched.reply_to().expect("replyTo");
    assert_eq!(reply_to[0].email(), "desk@example.test");
    assert!(fetched.bcc().is_none());

    // RFC 8621 §6.2: the creation is in Identity/changes.
    let mut request = submission_request(&client);
    request.changes_identity(state.clone()).max_changes(10);
    let changes = request.send_changes_identity().await.expect("changes");
    assert_eq!(changes.created(), std::slice::from_ref(&work_id));
    assert!(changes.destroyed().is_empty());

    // Update the name.
    let mut request = submission_request(&client);
    request
        .set_identity()
        .update(&work_id)
        .name("Alice (office)");
    request
        .send_set_identity()
        .await
        .expect("Identity/set")
        .updated(&work_id)
        .expect("updated");
    let fetched = identity_get(&client, &work_id).await.expect("found");
    assert_eq!(fetched.name(), Some("Alice (office)"));

    // RFC 8621 §6: email is immutable.
    let mut request = submission_request(&client);
    request
        .set_identity()
        .update(&work_id)
        .email("alice2@example.test");
    let error = request
        .send_set_identity()
        .await
        .expect("Identity/set")
        .updated(&work_id)
        .expect_err("email cannot change");
    assert_eq!(set_error_type(error), SetErrorType::InvalidProperties);

    // The default identity cannot be destroyed; the other one can.
    let error = identity_destroy(&client, &default_id)
        .await
        .expect_err("mayDelete is false");
    assert_eq!(set_error_type(error), SetErrorType::Forbidden);
    identity_destroy(&client, &work_id)
        .await
        .expect("destroyed");
    let (_, identities) = all_identities(&client).await;
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].id(), Some(default_id.as_str()));
    let error = identity_destroy(&client, &work_id)
        .await
        .expect_err("already gone");
    assert_eq!(set_error_type(error), SetErrorType::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn identities_may_only_use_the_accounts_own_address() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let mut request = submission_request(&client);
    let create_id = request
        .set_identity()
        .create()
        .name("Not me")
        .email("bob@example.test")
        .create_id()
        .expect("creation id");
    let error = request
        .send_set_identity()
        .await
        .expect("Identity/set")
        .created(&create_id)
        .expect_err("forbiddenFrom");
    assert_eq!(set_error_type(error), SetErrorType::ForbiddenFrom);

    // Bob sees only his own identity.
    let bob_client = server.jmap_client(server.bob()).await;
    let (_, identities) = all_identities(&bob_client).await;
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].email(), Some("bob@example.test"));
    server.shutdown().await;
}

#[tokio::test]
async fn identity_errors_over_raw_http() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let request = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:submission"],
        "methodCalls": [
            ["Identity/set", {"accountId": alice.account_id, "create": {
                "a": {"email": alice.email, "mayDelete": true},
                "b": {"email": alice.email, "color": "red"},
                "c": {"name": "no email"},
                "d": {"email": alice.email, "bcc": [{"name": "x"}]}
            }}, "0"],
            ["Identity/get", {"accountId": server.bob().account_id}, "1"]
        ]
    });
    let answer = server.post_api(alice, &request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let not_created = &body["methodResponses"][0][1]["notCreated"];
    assert_eq!(not_created["a"]["type"], "invalidProperties");
    assert_eq!(not_created["a"]["properties"], json!(["mayDelete"]));
    assert_eq!(not_created["b"]["properties"], json!(["color"]));
    assert_eq!(not_created["c"]["properties"], json!(["email"]));
    assert_eq!(not_created["d"]["properties"], json!(["bcc"]));
    assert_eq!(body["methodResponses"][1][0], "error");
    assert_eq!(body["methodResponses"][1][1]["type"], "accountNotFound");

    // Without the submission capability in `using`, Identity methods are unknown.
    let request = json!({
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [["Identity/get", {"accountId": alice.account_id}, "0"]]
    });
    let body = server.post_api(alice, &request).await.json();
    assert_eq!(body["methodResponses"][0][1]["type"], "unknownMethod");
    server.shutdown().await;
}

#[tokio::test]
async fn vacation_response_is_a_singleton_read_and_updated() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;

    // Present with its defaults before anything was set.
    let vacation = vacation_get(&client).await;
    assert_eq!(vacation.id(), Some("singleton"));
    assert!(!vacation.is_enabled());
    assert_eq!(vacation.subject(), None);
    assert_eq!(vacation.from_date(), None);

    vacation_update(&client, |vacation| {
        vacation
            .is_enabled(true)
            .subject(Some("Out of office"))
            .text_body(Some("Back on Monday."))
            .html_body(Some("<p>Back on Monday.</p>"));
    })
    .await
    .expect("enabled");
    // 2030-01-01T00:00:00Z and 2030-01-08T00:00:00Z.
    vacation_update(&client, |vacation| {
        vacation
            .from_date(Some(1_893_456_000))
            .to_date(Some(1_894_060_800));
    })
    .await
    .expect("dates set");
    let vacation = vacation_get(&client).await;
    assert!(vacation.is_enabled());
    assert_eq!(vacation.subject(), Some("Out of office"));
    assert_eq!(vacation.text_body(), Some("Back on Monday."));
    assert_eq!(vacation.html_body(), Some("<p>Back on Monday.</p>"));
    assert_eq!(vacation.from_date(), Some(1_893_456_000));
    assert_eq!(vacation.to_date(), Some(1_894_060_800));

    vacation_update(&client, |vacation| {
        vacation.is_enabled(false);
    })
    .await
    .expect("disabled");
    let vacation = vacation_get(&client).await;
    assert!(!vacation.is_enabled());
    assert_eq!(
        vacation.subject(),
        Some("Out of office"),
        "other fields stay"
    );

    // RFC 8621 §8.2: the singleton is neither created nor destroyed.
    let mut request = vacation_request(&client);
    let create_id = request
        .set_vacation_response()
        .create()
        .is_enabled(true)
        .create_id()
        .expect("creation id");
    let error = request
        .send_set_vacation_response()
        .await
        .expect("VacationResponse/set")
        .created(&create_id)
        .expect_err("cannot create");
    assert_eq!(set_error_type(error), SetErrorType::Singleton);
    let mut request = vacation_request(&client);
    request.set_vacation_response().destroy(["singleton"]);
    let error = request
        .send_set_vacation_response()
        .await
        .expect("VacationResponse/set")
        .destroyed("singleton")
        .expect_err("cannot destroy");
    assert_eq!(set_error_type(error), SetErrorType::Singleton);

    // Bob's is his own, untouched.
    let bob_client = server.jmap_client(server.bob()).await;
    let bobs = vacation_get(&bob_client).await;
    assert!(!bobs.is_enabled());
    assert_eq!(bobs.subject(), None);
    server.shutdown().await;
}

#[tokio::test]
async fn vacation_response_state_and_errors_over_raw_http() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let using = json!([
        "urn:ietf:params:jmap:core",
        "urn:ietf:params:jmap:vacationresponse"
    ]);
    let call = |calls: Value| json!({"using": using, "methodCalls": calls});
    let body = server
        .post_api(
            alice,
            &call(json!([["VacationResponse/get", {
                "accountId": alice.account_id, "ids": ["singleton", "other"], "properties": ["isEnabled"]
            }, "0"]])),
        )
        .await
        .json();
    let get = &body["methodResponses"][0][1];
    assert_eq!(
        get["list"],
        json!([{"id": "singleton", "isEnabled": false}])
    );
    assert_eq!(get["notFound"], json!(["other"]));
    let state = get["state"].as_str().expect("state").to_owned();

    let body = server
        .post_api(
            alice,
            &call(json!([["VacationResponse/set", {
                "accountId": alice.account_id,
                "ifInState": state,
                "update": {
                    "singleton": {"isEnabled": true, "subject": "Away"},
                    "other": {"isEnabled": true}
                }
            }, "0"]])),
        )
        .await
        .json();
    let set = &body["methodResponses"][0][1];
    assert_eq!(set["updated"], json!({"singleton": null}), "{body}");
    assert_eq!(set["notUpdated"]["other"]["type"], "notFound");
    assert_eq!(set["oldState"], state.as_str());
    assert_ne!(set["newState"], state.as_str(), "the state moves");

    // A stale ifInState is stateMismatch; bad values are invalidProperties; id is server-set.
    let body = server
        .post_api(
            alice,
            &call(json!([
                ["VacationResponse/set", {"accountId": alice.account_id, "ifInState": state,
                    "update": {"singleton": {"isEnabled": false}}}, "0"],
                ["VacationResponse/set", {"accountId": alice.account_id, "update": {"singleton": {
                    "isEnabled": "yes", "fromDate": "2030-01-01T00:00:00+01:00", "textBody": 5, "color": "red"
                }}}, "1"],
                ["VacationResponse/set", {"accountId": alice.account_id,
                    "update": {"singleton": {"id": "other"}}}, "2"],
                ["VacationResponse/set", {"accountId": alice.account_id,
                    "update": {"singleton": {"toDate": "2030-01-01T00:00:00Z", "subject": null}}}, "3"],
                ["VacationResponse/get", {"accountId": alice.account_id}, "4"]
            ])),
        )
        .await
        .json();
    let responses = &body["methodResponses"];
    assert_eq!(responses[0][1]["type"], "stateMismatch", "{body}");
    let mut invalid: Vec<String> = responses[1][1]["notUpdated"]["singleton"]["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .map(|property| property.as_str().unwrap_or_default().to_owned())
        .collect();
    invalid.sort();
    assert_eq!(invalid, ["color", "fromDate", "isEnabled", "textBody"]);
    assert_eq!(
        responses[2][1]["notUpdated"]["singleton"]["properties"],
        json!(["id"])
    );
    assert_eq!(responses[3][1]["updated"], json!({"singleton": null}));
    let vacation = &responses[4][1]["list"][0];
    assert_eq!(vacation["isEnabled"], true);
    assert_eq!(vacation["subject"], Value::Null);
    assert_eq!(vacation["toDate"], "2030-01-01T00:00:00Z");
    server.shutdown().await;
}
