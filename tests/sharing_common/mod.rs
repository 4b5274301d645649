//! What the sharing tests share: raw JMAP calls, jmap-client requests with mail's `using`,
//! the fixture where alice shares one Mailbox with bob, and a push WebSocket.
#![allow(dead_code)]

use crate::common::{TestServer, TestUser, mail_request};
use jmap_client::client::Client;
use jmap_client::core::query::{Filter, QueryResponse};
use jmap_client::core::response::{EmailGetResponse, EmailSetResponse, MailboxGetResponse};
use jmap_client::email::import::EmailImportResponse;
use serde_json::{Value, json};

pub const CORE: &str = "urn:ietf:params:jmap:core";
pub const MAIL: &str = "urn:ietf:params:jmap:mail";

pub async fn call(server: &TestServer, user: &TestUser, method: &str, arguments: Value) -> Value {
    calls(server, user, json!([[method, arguments, "c"]])).await[0].clone()
}

/// Runs `method_calls` as `user`; returns `[name, arguments]` per response.
pub async fn calls(server: &TestServer, user: &TestUser, method_calls: Value) -> Vec<Value> {
    let answer = server
        .post_api(
            user,
            &json!({"using": [CORE, MAIL], "methodCalls": method_calls}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["methodResponses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|response| json!([response[0], response[1]]))
        .collect()
}

/// A top-level Mailbox of alice's (raw Mailbox/set: jmap-client's asks for more capabilities
/// than mail).
pub async fn create_mailbox(server: &TestServer, name: &str) -> String {
    let created = call(
        server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": server.alice().account_id, "create": {"new": {"name": name}}}),
    )
    .await;
    created[1]["created"]["new"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned()
}

// jmap-client's helper methods ask for every capability it knows; these ask for mail's.

pub async fn import(client: &Client, raw: Vec<u8>, mailbox_id: &str) -> String {
    let blob_id = client
        .upload(None, raw, Some("message/rfc822"))
        .await
        .expect("upload")
        .take_blob_id();
    let mut request = mail_request(client);
    let import = request
        .import_email()
        .email(blob_id)
        .mailbox_ids([mailbox_id]);
    let create_id = import.create_id();
    request
        .send_single::<EmailImportResponse>()
        .await
        .expect("Email/import answered")
        .created(&create_id)
        .expect("the Email was created")
        .take_id()
}

pub async fn get_email(client: &Client, id: &str) -> Option<jmap_client::email::Email> {
    let mut request = mail_request(client);
    request.get_email().ids([id]);
    request
        .send_single::<EmailGetResponse>()
        .await
        .expect("Email/get answered")
        .take_list()
        .pop()
}

pub async fn get_mailbox(client: &Client, id: &str) -> Option<jmap_client::mailbox::Mailbox> {
    let mut request = mail_request(client);
    request.get_mailbox().ids([id]);
    request
        .send_single::<MailboxGetResponse>()
        .await
        .expect("Mailbox/get answered")
        .take_list()
        .pop()
}

pub async fn query(
    client: &Client,
    filter: Option<Filter<jmap_client::email::query::Filter>>,
) -> Vec<String> {
    let mut request = mail_request(client);
    let query = request.query_email();
    if let Some(filter) = filter {
        query.filter(filter);
    }
    request
        .send_single::<QueryResponse>()
        .await
        .expect("Email/query answered")
        .take_ids()
}

pub async fn set_keyword(client: &Client, id: &str, keyword: &str) -> jmap_client::Result<()> {
    let mut request = mail_request(client);
    request.set_email().update(id).keyword(keyword, true);
    request
        .send_single::<EmailSetResponse>()
        .await?
        .updated(id)
        .map(|_| ())
}

pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: carol@example.net\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.net>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

pub struct Shared {
    pub server: TestServer,
    pub alice: jmap_client::client::Client,
    pub team: String,
    pub private: String,
    pub team_email: String,
    pub private_email: String,
}

/// alice has "Team" (shared with bob: read, seen, add) and "Private" (not shared), one Email
/// in each; the private one's text is searchable.
pub async fn shared() -> Shared {
    let server = TestServer::start().await;
    let alice = server.jmap_client(server.alice()).await;
    let team = create_mailbox(&server, "Team").await;
    let private = create_mailbox(&server, "Private").await;
    let team_email = import(&alice, message("rota", "the team rota"), &team).await;
    let private_email = import(&alice, message("payslip", "salary confidential"), &private).await;
    let bob_id = server.bob().account_id.clone();
    let rights = json!({"mayReadItems": true, "maySetSeen": true, "mayAddItems": true});
    let shared = share(&server, &team, &bob_id, rights).await;
    assert_eq!(shared[1]["updated"][&team], Value::Null, "{shared}");
    Shared {
        server,
        alice,
        team,
        private,
        team_email,
        private_email,
    }
}

/// alice grants `rights` on `mailbox` to `principal` (a patch of `shareWith/<principal>`).
pub async fn share(server: &TestServer, mailbox: &str, principal: &str, rights: Value) -> Value {
    call(
        server,
        server.alice(),
        "Mailbox/set",
        json!({"accountId": server.alice().account_id, "update": {mailbox: {
            format!("shareWith/{principal}"): rights}}}),
    )
    .await
}

pub type Socket = crate::common::PushSocket;

pub async fn push_socket(server: &TestServer, user: &TestUser) -> Socket {
    let socket =
        crate::common::push_websocket(server, user, json!({"@type": "WebSocketPushEnable"})).await;
    // The listeners start with the enable message.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    socket
}

/// The next StateChange naming `account_id` within `wait`, if any.
pub async fn state_change_of(
    socket: &mut Socket,
    account_id: &str,
    wait: std::time::Duration,
) -> Option<Value> {
    use futures_util::StreamExt;
    tokio::time::timeout(wait, async {
        loop {
            let frame = socket.next().await?.ok()?;
            let text = frame.into_text().unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if value["@type"] == "StateChange" && value["changed"].get(account_id).is_some() {
                return Some(value);
            }
        }
    })
    .await
    .ok()
    .flatten()
}
