//! PushSubscription (RFC 8620 §7.2) and Web Push delivery (RFC 8030, RFC 8291 aes128gcm,
//! RFC 8292 VAPID) against a local push receiver, through the real `jmap-client` crate
//! (push_subscription_create / _verify) and raw JMAP for the error cases.

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine as _;
use bytes::Bytes;
use common::TestServer;
use hkdf::Hkdf;
use http_body_util::{BodyExt as _, Full};
use jmap_client::URI;
use jmap_client::client::Client;
use jmap_client::core::response::PushSubscriptionSetResponse;
use jmap_client::core::set::SetObject as _;
use jmap_client::push_subscription::Keys;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::{PublicKey, SecretKey};
use serde_json::{Value, json};
use sha2::Sha256;
use tern::jmap::types::{AccountId, State};
use tern::store::commit::{DataType, commit_account};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One POST the receiver got.
#[derive(Debug)]
struct Received {
    headers: http::HeaderMap,
    body: Bytes,
}

/// A local push service: records every POST and answers with the scripted statuses (201
/// once the script is empty).
struct Receiver {
    url: String,
    received: mpsc::UnboundedReceiver<Received>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/push/device-1",
            listener.local_addr().expect("addr")
        );
        let (sender, received) = mpsc::unbounded_channel();
        let script: Arc<Mutex<VecDeque<u16>>> = Arc::default();
        let answers = Arc::clone(&script);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let sender = sender.clone();
                let answers = Arc::clone(&answers);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let sender = sender.clone();
                            let answers = Arc::clone(&answers);
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|c| c.to_bytes())
                                    .unwrap_or_default();
                                let _ = sender.send(Received {
                                    headers: parts.headers,
                                    body,
                                });
                                let status =
                                    answers.lock().expect("lock").pop_front().unwrap_or(201);
                                let mut response = http::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() =
                                    http::StatusCode::from_u16(status).expect("status");
                                Ok::<_, Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            url,
            received,
            script,
        }
    }

    fn answer_next(&self, statuses: &[u16]) {
        self.script.lock().expect("lock").extend(statuses);
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.received.recv())
            .await
            .expect("a push in time")
            .expect("receiver open")
    }

    async fn expect_nothing(&mut self, quiet: Duration) {
        if let Ok(Some(unexpected)) = tokio::time::timeout(quiet, self.received.recv()).await {
            panic!("unexpected push: {unexpected:?}");
        }
    }
}

/// A browser's push keys (RFC 8291 §2).
struct UserAgent {
    secret: SecretKey,
    auth: [u8; 16],
}

impl UserAgent {
    fn new() -> UserAgent {
        let mut bytes = [0u8; 32];
        bytes[31] = 7;
        bytes[0] = 0x3a;
        bytes[5] = rand_byte();
        UserAgent {
            secret: SecretKey::from_slice(&bytes).expect("scalar"),
            auth: [rand_byte(); 16],
        }
    }

    fn public(&self) -> Vec<u8> {
        self.secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// RFC 8291 §3.4 and RFC 8188 from the receiving side, written independently of the
    /// server's code.
    fn decrypt(&self, body: &[u8]) -> Value {
        assert!(body.len() > 86, "too short for an aes128gcm header");
        let (salt, rest) = body.split_at(16);
        let record_size = u32::from_be_bytes(rest[..4].try_into().expect("rs"));
        assert!(record_size >= 18);
        let key_id_length = usize::from(rest[4]);
        assert_eq!(key_id_length, 65, "the key id is the server's public key");
        let server_public = &rest[5..5 + key_id_length];
        let ciphertext = &rest[5 + key_id_length..];
        let server = PublicKey::from_sec1_bytes(server_public).expect("server key");
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), server.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(&self.public());
        info.extend_from_slice(server_public);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .expect("hkdf");
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let mut cek = [0u8; 16];
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .expect("cek");
        let mut nonce = [0u8; 12];
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .expect("nonce");
        let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
            .expect("key")
            .decrypt(aes_gcm::Nonce::from_slice(&nonce), ciphertext)
            .expect("authentic ciphertext");
        while plain.last() == Some(&0) {
            plain.pop();
        }
        assert_eq!(plain.pop(), Some(2), "a final record");
        serde_json::from_slice(&plain).expect("JSON inside")
    }
}

fn rand_byte() -> u8 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos()
        % 200) as u8
        + 20
}

/// Checks the VAPID header (RFC 8292 §3): ES256 JWT for the receiver's origin, signed by the
/// key the session advertises.
fn check_vapid(received: &Received, receiver_url: &str, advertised_key: &str) {
    use p256::ecdsa::signature::Verifier as _;
    let header = received.headers["authorization"].to_str().expect("ascii");
    let (token, key) = header
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .expect("vapid t=..., k=...");
    assert_eq!(
        key, advertised_key,
        "k is the advertised applicationServerKey"
    );
    let (signing_input, signature) = token.rsplit_once('.').expect("JWS");
    let claims: Value = serde_json::from_slice(
        &B64.decode(signing_input.split('.').nth(1).expect("claims"))
            .expect("b64"),
    )
    .expect("claims JSON");
    let origin = receiver_url.split("/push").next().expect("origin");
    assert_eq!(claims["aud"], origin);
    assert!(
        claims["sub"]
            .as_str()
            .is_some_and(|sub| sub.starts_with("mailto:"))
    );
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&B64.decode(key).expect("b64"))
        .expect("P-256 key");
    let signature =
        p256::ecdsa::Signature::from_slice(&B64.decode(signature).expect("b64")).expect("sig");
    verifying
        .verify(signing_input.as_bytes(), &signature)
        .expect("the VAPID token verifies");
    assert!(received.headers.contains_key("ttl"), "RFC 8030 §5.2: TTL");
}

async fn start_server() -> TestServer {
    TestServer::start_with(|config| {
        config.push.allow_insecure_push_urls = true;
        config.push.web_push_retry_base_ms = 50;
    })
    .await
}

async fn connect(server: &TestServer, user: &common::TestUser) -> Client {
    Client::new()
        .credentials((user.email.as_str(), user.password.as_str()))
        .follow_redirects(["127.0.0.1"])
        .connect(&server.base_url())
        .await
        .expect("jmap-client connects")
}

fn account_number(user: &common::TestUser) -> u32 {
    AccountId::parse(&user.account_id)
        .expect("account id")
        .number()
}

async fn commit_change(server: &TestServer, account_id: u32, data_type: DataType) -> u64 {
    commit_account(server.running().store(), account_id, move |_tx, changes| {
        Box::pin(async move {
            changes.updated(data_type, 1);
            Ok(())
        })
    })
    .await
    .expect("commit")
    .version
}

async fn call(server: &TestServer, method: &str, arguments: Value) -> Value {
    let answer = server
        .post_api(
            server.alice(),
            &json!({
                "using": ["urn:ietf:params:jmap:core"],
                "methodCalls": [[method, arguments, "c0"]],
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let response = answer.json();
    assert_eq!(response["methodResponses"][0][0], method, "{response}");
    response["methodResponses"][0][1].clone()
}

#[tokio::test]
async fn jmap_client_subscribes_verifies_and_receives_encrypted_state_changes() {
    let server = start_server().await;
    let alice = server.alice().clone();
    let mut receiver = Receiver::start().await;
    let user_agent = UserAgent::new();
    let session = server.session(&alice).await;
    let advertised =
        session["capabilities"]["urn:ietf:params:jmap:webpush-vapid"]["applicationServerKey"]
            .as_str()
            .expect("the session advertises the VAPID key")
            .to_owned();

    let client = connect(&server, &alice).await;
    // jmap-client's one-call helpers put every capability it knows in `using`, which the
    // server must refuse (RFC 8620 §3.6.1); the request builder lets us set it.
    let mut request = client.build();
    request.using = vec![URI::Core];
    let create = request
        .set_push_subscription()
        .create()
        .device_client_id("device-1")
        .url(receiver.url.clone())
        .keys(Keys::new(&user_agent.public(), &user_agent.auth));
    let creation_id = create.create_id().expect("creation id");
    let created = request
        .send_single::<PushSubscriptionSetResponse>()
        .await
        .expect("PushSubscription/set")
        .created(&creation_id)
        .expect("created");
    let id = created.id().expect("id").to_owned();

    // The verification comes first, encrypted, with VAPID.
    let verification = receiver.next().await;
    check_vapid(&verification, &receiver.url, &advertised);
    assert_eq!(verification.headers["content-encoding"], "aes128gcm");
    let verification = user_agent.decrypt(&verification.body);
    assert_eq!(verification["@type"], "PushVerification");
    assert_eq!(verification["pushSubscriptionId"], id);
    let code = verification["verificationCode"]
        .as_str()
        .expect("code")
        .to_owned();

    // Unverified: nothing is pushed.
    commit_change(&server, account_number(&alice), DataType::Email).await;
    receiver.expect_nothing(Duration::from_millis(400)).await;

    // A wrong code is refused; the right one starts delivery.
    let wrong = call(
        &server,
        "PushSubscription/set",
        json!({"update": {id.clone(): {"verificationCode": "nope"}}}),
    )
    .await;
    assert_eq!(wrong["notUpdated"][&id]["type"], "invalidProperties");
    assert_eq!(
        wrong["notUpdated"][&id]["properties"],
        json!(["verificationCode"])
    );
    let mut request = client.build();
    request.using = vec![URI::Core];
    request
        .set_push_subscription()
        .update(&id)
        .verification_code(code.clone());
    request
        .send_single::<PushSubscriptionSetResponse>()
        .await
        .expect("PushSubscription/set")
        .updated(&id)
        .expect("verified");
    let version = commit_change(&server, account_number(&alice), DataType::Mailbox).await;
    let pushed = receiver.next().await;
    check_vapid(&pushed, &receiver.url, &advertised);
    let change = user_agent.decrypt(&pushed.body);
    assert_eq!(change["@type"], "StateChange");
    assert_eq!(
        change["changed"][&alice.account_id]["Mailbox"],
        State::new(version).to_string()
    );

    // /get: no url or keys; the confirmed code; expires clamped to the maximum (7 days).
    let got = call(&server, "PushSubscription/get", json!({"ids": null})).await;
    let object = &got["list"][0];
    assert_eq!(object["id"], id);
    assert_eq!(object["deviceClientId"], "device-1");
    assert_eq!(object["verificationCode"], code);
    assert!(object.get("url").is_none() && object.get("keys").is_none());
    assert!(got.get("accountId").is_none() && got.get("state").is_none());
    let expires = tern::jmap::types::UtcDate::parse(object["expires"].as_str().expect("expires"))
        .expect("UTCDate")
        .unix_seconds();
    let now = tern::jmap::types::UtcDate::now().unix_seconds();
    assert!(expires > now && expires <= now + 7 * 86_400 + 5);
    let url_asked = server
        .post_api(
            &alice,
            &json!({"using": ["urn:ietf:params:jmap:core"],
                    "methodCalls": [["PushSubscription/get", {"properties": ["url"]}, "c0"]]}),
        )
        .await
        .json();
    assert_eq!(url_asked["methodResponses"][0][0], "error");

    // types: only the listed types are pushed.
    let updated = call(
        &server,
        "PushSubscription/set",
        json!({"update": {id.clone(): {"types": ["Email"]}}}),
    )
    .await;
    assert!(updated["updated"].get(&id).is_some(), "{updated}");
    commit_change(&server, account_number(&alice), DataType::Mailbox).await;
    receiver.expect_nothing(Duration::from_millis(400)).await;
    let version = commit_change(&server, account_number(&alice), DataType::Email).await;
    let change = user_agent.decrypt(&receiver.next().await.body);
    assert_eq!(
        change["changed"][&alice.account_id],
        json!({"Email": State::new(version).to_string()})
    );

    let mut request = client.build();
    request.using = vec![URI::Core];
    request.set_push_subscription().destroy([id.as_str()]);
    request
        .send_single::<PushSubscriptionSetResponse>()
        .await
        .expect("PushSubscription/set")
        .destroyed(&id)
        .expect("destroyed");
    commit_change(&server, account_number(&alice), DataType::Email).await;
    receiver.expect_nothing(Duration::from_millis(400)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn failures_are_retried_and_a_gone_subscription_is_removed() {
    let server = start_server().await;
    let alice = server.alice().clone();
    let mut receiver = Receiver::start().await;
    // Without keys the message goes as JSON (RFC 8620 §7.2).
    receiver.answer_next(&[503, 500]);
    let created = call(
        &server,
        "PushSubscription/set",
        json!({"create": {"k1": {"deviceClientId": "d", "url": receiver.url}}}),
    )
    .await;
    let id = created["created"]["k1"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut attempts = Vec::new();
    for _ in 0..3 {
        attempts.push(receiver.next().await);
    }
    let bodies: Vec<Value> = attempts
        .iter()
        .map(|attempt| serde_json::from_slice(&attempt.body).expect("plain JSON"))
        .collect();
    assert!(
        bodies
            .iter()
            .all(|body| body["@type"] == "PushVerification")
    );
    assert_eq!(attempts[0].headers["content-type"], "application/json");
    let code = bodies[0]["verificationCode"]
        .as_str()
        .expect("code")
        .to_owned();
    call(
        &server,
        "PushSubscription/set",
        json!({"update": {id.clone(): {"verificationCode": code}}}),
    )
    .await;

    // The push service forgets the subscription: 410 removes it.
    receiver.answer_next(&[410]);
    commit_change(&server, account_number(&alice), DataType::Email).await;
    let gone = receiver.next().await;
    let body: Value = serde_json::from_slice(&gone.body).expect("JSON");
    assert_eq!(body["@type"], "StateChange");
    let removed = tokio::time::timeout(WAIT, async {
        loop {
            let got = call(&server, "PushSubscription/get", json!({})).await;
            if got["list"].as_array().is_some_and(Vec::is_empty) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(removed.is_ok(), "a 410 removes the subscription");
    commit_change(&server, account_number(&alice), DataType::Email).await;
    receiver.expect_nothing(Duration::from_millis(300)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn expired_subscriptions_are_cleaned_up() {
    let server = start_server().await;
    let receiver = Receiver::start().await;
    let soon = tern::jmap::types::UtcDate::from_unix(
        tern::jmap::types::UtcDate::now().unix_seconds() + 2,
        0,
    )
    .expect("date")
    .to_string();
    let created = call(
        &server,
        "PushSubscription/set",
        json!({"create": {"k1": {"deviceClientId": "d", "url": receiver.url, "expires": soon}}}),
    )
    .await;
    assert!(created["created"]["k1"]["id"].is_string(), "{created}");
    assert!(
        created["created"]["k1"].get("expires").is_none(),
        "an acceptable expires is not reported as changed"
    );
    let cleaned = tokio::time::timeout(WAIT, async {
        loop {
            let got = call(&server, "PushSubscription/get", json!({})).await;
            if got["list"].as_array().is_some_and(Vec::is_empty) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(cleaned.is_ok(), "expired subscriptions are removed");
    server.shutdown().await;
}

#[tokio::test]
async fn set_validates_every_property() {
    let server = TestServer::start().await;
    let far = tern::jmap::types::UtcDate::from_unix(
        tern::jmap::types::UtcDate::now().unix_seconds() + 400 * 86_400,
        0,
    )
    .expect("date")
    .to_string();
    let keys =
        json!({"p256dh": B64.encode(UserAgent::new().public()), "auth": B64.encode([1u8; 16])});
    let answer = call(
        &server,
        "PushSubscription/set",
        json!({"create": {
            "insecure": {"deviceClientId": "d", "url": "http://127.0.0.1:9/push"},
            "past": {"deviceClientId": "d", "url": "https://push.example.net/a", "expires": "2001-01-01T00:00:00Z"},
            "badTypes": {"deviceClientId": "d", "url": "https://push.example.net/a", "types": ["Nope"]},
            "code": {"deviceClientId": "d", "url": "https://push.example.net/a", "verificationCode": "x"},
            "badKeys": {"deviceClientId": "d", "url": "https://push.example.net/a", "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
            "noDevice": {"url": "https://push.example.net/a"},
            "far": {"deviceClientId": "d", "url": "https://push.example.net/a", "expires": far, "keys": keys},
        }}),
    )
    .await;
    for (creation_id, property) in [
        ("insecure", "url"),
        ("past", "expires"),
        ("badTypes", "types"),
        ("code", "verificationCode"),
        ("badKeys", "keys"),
        ("noDevice", "deviceClientId"),
    ] {
        let error = &answer["notCreated"][creation_id];
        assert_eq!(
            error["type"], "invalidProperties",
            "{creation_id}: {answer}"
        );
        assert_eq!(error["properties"], json!([property]), "{creation_id}");
    }
    let far_created = &answer["created"]["far"];
    let id = far_created["id"].as_str().expect("created").to_owned();
    let clamped = tern::jmap::types::UtcDate::parse(
        far_created["expires"]
            .as_str()
            .expect("clamped expires reported"),
    )
    .expect("date")
    .unix_seconds();
    assert!(clamped <= tern::jmap::types::UtcDate::now().unix_seconds() + 7 * 86_400);

    let answer = call(
        &server,
        "PushSubscription/set",
        json!({
            "update": {id.clone(): {"url": "https://elsewhere.example.net/"}, "p999": {"types": null}},
            "destroy": ["p998"],
        }),
    )
    .await;
    assert_eq!(answer["notUpdated"][&id]["type"], "invalidProperties");
    assert_eq!(answer["notUpdated"][&id]["properties"], json!(["url"]));
    assert_eq!(answer["notUpdated"]["p999"]["type"], "notFound");
    assert_eq!(answer["notDestroyed"]["p998"]["type"], "notFound");
    assert!(answer.get("oldState").is_none() && answer.get("newState").is_none());

    // Bob does not see Alice's subscriptions.
    let bobs = server
        .post_api(
            server.bob(),
            &json!({"using": ["urn:ietf:params:jmap:core"],
                    "methodCalls": [["PushSubscription/get", {"ids": [id]}, "c0"]]}),
        )
        .await
        .json();
    assert_eq!(bobs["methodResponses"][0][1]["notFound"], json!([id]));
    server.shutdown().await;
}

/// Runs one method as `user` with `using` core + mail.
async fn call_as(
    server: &TestServer,
    user: &common::TestUser,
    method: &str,
    arguments: Value,
) -> Value {
    let answer = server
        .post_api(
            user,
            &json!({
                "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                "methodCalls": [[method, arguments, "c0"]],
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["methodResponses"][0][1].clone()
}

#[tokio::test]
async fn a_grantees_web_push_hears_the_shared_account_until_revoked() {
    let server = start_server().await;
    let (alice, bob) = (server.alice().clone(), server.bob().clone());
    let alice_account = alice.account_id.clone();
    let created = call_as(
        &server,
        &alice,
        "Mailbox/set",
        json!({"accountId": alice_account, "create": {"t": {"name": "Team",
            "shareWith": {bob.account_id.clone(): {"mayReadItems": true}}}}}),
    )
    .await;
    let team = created["created"]["t"]["id"]
        .as_str()
        .expect("Team")
        .to_owned();

    // bob subscribes and verifies.
    let mut receiver = Receiver::start().await;
    let user_agent = UserAgent::new();
    let keys =
        json!({"p256dh": B64.encode(user_agent.public()), "auth": B64.encode(user_agent.auth)});
    let subscribed = call_as(
        &server,
        &bob,
        "PushSubscription/set",
        json!({"create": {"s": {"deviceClientId": "bob-1", "url": receiver.url, "keys": keys}}}),
    )
    .await;
    let id = subscribed["created"]["s"]["id"]
        .as_str()
        .expect("subscription")
        .to_owned();
    let verification = user_agent.decrypt(&receiver.next().await.body);
    let code = verification["verificationCode"]
        .as_str()
        .expect("code")
        .to_owned();
    let verified = call_as(
        &server,
        &bob,
        "PushSubscription/set",
        json!({"update": {id.clone(): {"verificationCode": code}}}),
    )
    .await;
    assert!(verified["updated"].get(&id).is_some(), "{verified}");

    // A change of alice's shared Mailbox reaches bob's push service, with alice's account.
    let version = commit_change(&server, account_number(&alice), DataType::Email).await;
    let change = user_agent.decrypt(&receiver.next().await.body);
    assert_eq!(change["@type"], "StateChange");
    assert_eq!(
        change["changed"][&alice_account]["Email"],
        State::new(version).to_string(),
        "{change}"
    );
    assert!(change["changed"][&alice_account].get("Identity").is_none());

    // Revoked: nothing more of alice's account.
    let revoked = call_as(
        &server,
        &alice,
        "Mailbox/set",
        json!({"accountId": alice_account, "update": {team: {"shareWith": {}}}}),
    )
    .await;
    assert!(revoked["notUpdated"].is_null(), "{revoked}");
    commit_change(&server, account_number(&alice), DataType::Email).await;
    // bob's own account moves (the ShareNotification of the revocation); alice's is silent.
    while let Ok(pushed) = tokio::time::timeout(Duration::from_millis(600), receiver.next()).await {
        let change = user_agent.decrypt(&pushed.body);
        assert!(change["changed"].get(&alice_account).is_none(), "{change}");
    }
    server.shutdown().await;
}
