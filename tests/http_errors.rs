//! Raw-HTTP tests of the error paths (RFC 8620 §3.6, §6, auth), against a real server started
//! in-process. Each test asserts the exact RFC error shape a client would see on the wire.

mod common;

use common::{TestServer, echo_request};
use serde_json::{Value, json};

fn problem_type(body: &Value) -> &str {
    body["type"].as_str().unwrap_or("")
}

#[tokio::test]
async fn request_level_errors_are_problem_details() {
    let server = TestServer::start().await;
    let alice = server.alice();

    let cases: [(&str, &[u8], &str); 4] = [
        (
            "truncated JSON",
            b"{\"using\": [",
            "urn:ietf:params:jmap:error:notJSON",
        ),
        (
            "an array",
            b"[1, 2]",
            "urn:ietf:params:jmap:error:notRequest",
        ),
        (
            "a two-element invocation",
            br#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{}]]}"#,
            "urn:ietf:params:jmap:error:notRequest",
        ),
        (
            "an unknown capability",
            br#"{"using":["urn:ietf:params:jmap:core","urn:example:nope"],"methodCalls":[]}"#,
            "urn:ietf:params:jmap:error:unknownCapability",
        ),
    ];
    for (what, body, expected_type) in cases {
        let answer = server
            .post_raw(&server.api_url(), alice, "application/json", body.to_vec())
            .await;
        assert_eq!(answer.status, 400, "{what}: {:?}", answer.text());
        assert_eq!(answer.media_type(), "application/problem+json", "{what}");
        let problem = answer.json();
        assert_eq!(problem_type(&problem), expected_type, "{what}: {problem}");
        assert_eq!(problem["status"], 400, "{what}: {problem}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn max_calls_in_request_is_enforced_with_the_limit_named() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let session = server.session(alice).await;
    let max_calls = session["capabilities"]["urn:ietf:params:jmap:core"]["maxCallsInRequest"]
        .as_u64()
        .expect("maxCallsInRequest advertised");
    let calls = usize::try_from(max_calls).unwrap();

    let at_limit = server.post_api(alice, &echo_request(calls)).await;
    assert_eq!(at_limit.status, 200);
    assert_eq!(
        at_limit.json()["methodResponses"].as_array().unwrap().len(),
        calls
    );

    let over = server.post_api(alice, &echo_request(calls + 1)).await;
    assert_eq!(over.status, 400, "{}", over.text());
    let problem = over.json();
    assert_eq!(problem_type(&problem), "urn:ietf:params:jmap:error:limit");
    assert_eq!(problem["limit"], "maxCallsInRequest");
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_request_is_refused_from_its_content_length_before_the_body() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let session = server.session(alice).await;
    let max_size = session["capabilities"]["urn:ietf:params:jmap:core"]["maxSizeRequest"]
        .as_u64()
        .expect("maxSizeRequest advertised");
    // Only the head is sent: a server that waited for the body would never answer.
    let answer = common::raw_head_only(&server.api_url(), alice, max_size + 1).await;
    assert!(
        matches!(answer.status, 400 | 413),
        "status {}",
        answer.status
    );
    let problem = answer.json();
    assert_eq!(
        problem_type(&problem),
        "urn:ietf:params:jmap:error:limit",
        "{problem}"
    );
    assert_eq!(problem["limit"], "maxSizeRequest");

    // The server keeps serving others afterwards.
    let echo = server.post_api(alice, &echo_request(1)).await;
    assert_eq!(echo.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_upload_is_refused_before_the_body() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let session = server.session(alice).await;
    let max_upload = session["capabilities"]["urn:ietf:params:jmap:core"]["maxSizeUpload"]
        .as_u64()
        .expect("maxSizeUpload advertised");
    let upload_url = server.upload_url(alice);
    let answer = common::raw_head_only(&upload_url, alice, max_upload + 1).await;
    assert!(
        matches!(answer.status, 400 | 413),
        "status {}: {}",
        answer.status,
        answer.text()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn method_level_errors() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let bob_account = server.bob().account_id.clone();
    let request = json!({
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [
            ["Nope/nothing", {}, "unknown"],
            ["Blob/copy", {"fromAccountId": alice.account_id, "blobIds": "not a list", "accountId": alice.account_id}, "invalid"],
            ["Blob/copy", {"fromAccountId": alice.account_id, "accountId": bob_account, "blobIds": []}, "other-account"],
            ["Blob/copy", {"fromAccountId": alice.account_id, "accountId": "zzzz", "blobIds": []}, "no-account"],
            ["Core/echo", {"still": "running"}, "after"]
        ]
    });
    let answer = server.post_api(alice, &request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let responses = body["methodResponses"].as_array().unwrap();
    let error_type = |index: usize| -> (&str, &str, &str) {
        let response = &responses[index];
        (
            response[0].as_str().unwrap(),
            response[1]["type"].as_str().unwrap_or(""),
            response[2].as_str().unwrap(),
        )
    };
    assert_eq!(error_type(0), ("error", "unknownMethod", "unknown"));
    assert_eq!(error_type(1), ("error", "invalidArguments", "invalid"));
    // Another user's account and an account that does not exist look the same.
    assert_eq!(error_type(2), ("error", "accountNotFound", "other-account"));
    assert_eq!(error_type(3), ("error", "accountNotFound", "no-account"));
    assert_eq!(
        responses[4],
        json!(["Core/echo", {"still": "running"}, "after"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn result_references_with_wildcards_and_their_errors() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let request = json!({
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [
            ["Core/echo", {"list": [{"ids": ["a", "b"]}, {"ids": ["c"]}], "n": {"a/b": 1}}, "c1"],
            ["Core/echo", {"#ids": {"resultOf": "c1", "name": "Core/echo", "path": "/list/*/ids"}}, "c2"],
            ["Core/echo", {"#v": {"resultOf": "c1", "name": "Core/echo", "path": "/n/a~1b"}}, "c3"],
            ["Core/echo", {"#v": {"resultOf": "c1", "name": "Core/echo", "path": "/missing"}}, "c4"],
            ["Core/echo", {"#v": {"resultOf": "c9", "name": "Core/echo", "path": "/n"}}, "c5"],
            ["Core/echo", {"v": 1, "#v": {"resultOf": "c1", "name": "Core/echo", "path": "/n"}}, "c6"]
        ]
    });
    let body = server.post_api(alice, &request).await.json();
    let responses = &body["methodResponses"];
    assert_eq!(
        responses[1],
        json!(["Core/echo", {"ids": ["a", "b", "c"]}, "c2"])
    );
    assert_eq!(responses[2], json!(["Core/echo", {"v": 1}, "c3"]));
    assert_eq!(responses[3][1]["type"], "invalidResultReference");
    assert_eq!(responses[4][1]["type"], "invalidResultReference");
    assert_eq!(responses[5][1]["type"], "invalidArguments");
    server.shutdown().await;
}

#[tokio::test]
async fn unauthenticated_requests_get_401_with_a_challenge() {
    let server = TestServer::start().await;
    for url in [server.session_url(), server.api_url()] {
        let answer = server.post_or_get_anonymous(&url).await;
        assert_eq!(answer.status, 401, "{url}");
        let challenge = answer
            .header("www-authenticate")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            challenge.contains("basic") || challenge.contains("bearer"),
            "{url}: {challenge:?}"
        );
    }
    let mut wrong = server.alice().clone();
    wrong.password.push_str("-wrong");
    let answer = server.post_api(&wrong, &echo_request(1)).await;
    assert_eq!(answer.status, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn blobs_are_isolated_between_accounts() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let bob = server.bob();
    let uploaded = server
        .upload(bob, b"bob's private attachment".to_vec(), "text/plain")
        .await;
    assert!(matches!(uploaded.status, 200 | 201), "{}", uploaded.text());
    let blob_id = uploaded.json()["blobId"].as_str().unwrap().to_owned();

    // Bob reads his own blob.
    let own = server.download(bob, &bob.account_id, &blob_id).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body, b"bob's private attachment");
    // Alice gets 404 through her own account and through Bob's account id alike.
    let through_alice = server.download(alice, &alice.account_id, &blob_id).await;
    assert_eq!(through_alice.status, 404);
    let through_bob = server.download(alice, &bob.account_id, &blob_id).await;
    assert!(
        matches!(through_bob.status, 403 | 404),
        "{}",
        through_bob.status
    );
    // Nor can she copy it into her account.
    let copy = json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [
        ["Blob/copy", {"fromAccountId": alice.account_id, "accountId": alice.account_id, "blobIds": [blob_id]}, "c1"]]});
    let body = server.post_api(alice, &copy).await.json();
    assert_eq!(
        body["methodResponses"][0][1]["notCopied"][&blob_id]["type"], "blobNotFound",
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn session_urls_are_absolute_and_bearer_tokens_work() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let session = server.session(alice).await;
    for member in ["apiUrl", "downloadUrl", "uploadUrl", "eventSourceUrl"] {
        let url = session[member].as_str().unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{member} = {url}");
    }
    let token = server.alice_token();
    let answer = server.get_with_bearer(&server.session_url(), token).await;
    assert_eq!(answer.status, 200);
    let answer = server
        .get_with_bearer(&server.session_url(), &format!("{token}x"))
        .await;
    assert_eq!(answer.status, 401);
    server.shutdown().await;
}
