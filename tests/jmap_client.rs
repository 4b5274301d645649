//! Tests with a real third-party JMAP client, the `jmap-client` crate, against a server
//! started in-process: login, session, Core/echo, upload, download, Blob/copy.

mod common;

use common::TestServer;
use jmap_client::Method;
use jmap_client::URI;
use jmap_client::blob::copy::CopyBlobResponse;
use jmap_client::client::Client;
use jmap_client::core::request::Arguments;

#[tokio::test]
async fn jmap_client_logs_in_and_reads_the_session() {
    let server = TestServer::start().await;
    let alice = server.alice();
    let client = server.jmap_client(alice).await;
    let session = client.session();
    assert_eq!(session.username(), alice.email);
    assert!(
        session
            .capabilities()
            .any(|capability| capability == "urn:ietf:params:jmap:core")
    );
    assert_eq!(client.default_account_id(), alice.account_id);

    let wrong = Client::new()
        .credentials((alice.email.as_str(), "not the password"))
        .connect(&server.base_url())
        .await;
    assert!(wrong.is_err(), "a wrong password must not log in");
    server.shutdown().await;
}

#[tokio::test]
async fn jmap_client_calls_core_echo() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let mut request = client.build();
    request.using = vec![URI::Core];
    // jmap-client has no typed Core/echo arguments; echo returns whatever it is given.
    let payload = Arguments::blob_copy(request.params(Method::Echo), "payload-account".to_owned());
    request.add_method_call(Method::Echo, payload);
    let mut responses = request
        .send()
        .await
        .expect("echo answered")
        .unwrap_method_responses();
    assert_eq!(responses.len(), 1);
    let echoed = responses
        .pop()
        .unwrap()
        .unwrap_echo()
        .expect("a Core/echo response");
    assert_eq!(echoed["fromAccountId"], "payload-account");
    server.shutdown().await;
}

#[tokio::test]
async fn jmap_client_uploads_copies_and_downloads() {
    let server = TestServer::start().await;
    let client = server.jmap_client(server.alice()).await;
    let content: Vec<u8> = (0..300_000u32).map(|index| (index % 251) as u8).collect();
    let uploaded = client
        .upload(None, content.clone(), Some("application/octet-stream"))
        .await
        .expect("upload");
    assert_eq!(uploaded.size(), content.len());
    assert_eq!(uploaded.content_type(), "application/octet-stream");

    let downloaded = client.download(uploaded.blob_id()).await.expect("download");
    assert!(downloaded == content, "downloaded bytes differ");

    let account_id = client.default_account_id().to_owned();
    let mut request = client.build();
    request.using = vec![URI::Core];
    request
        .copy_blob(account_id.as_str())
        .blob_id(uploaded.blob_id());
    let mut copied: CopyBlobResponse = request.send_single().await.expect("Blob/copy");
    let copy_id = copied.copied(uploaded.blob_id()).expect("copied");
    let copy = client.download(&copy_id).await.expect("download the copy");
    assert!(copy == content, "the copy differs");
    server.shutdown().await;
}
