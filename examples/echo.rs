//! Logs in to a JMAP server with the `jmap-client` crate and calls `Core/echo` (RFC 8620 §4).
//!
//! Run against a local Tern (`cargo run --release -- serve --demo` prints the demo passwords):
//! ```text
//! cargo run --example echo -- http://127.0.0.1:8080 alice@example.test PASSWORD
//! ```
//! Arguments: the server's base URL (jmap-client appends `/.well-known/jmap`), user, password.

use jmap_client::client::Client;
use jmap_client::core::request::Arguments;
use jmap_client::{Method, URI};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let usage = "usage: echo BASE_URL USER PASSWORD";
    let base_url = arguments.next().ok_or(usage)?;
    let user = arguments.next().ok_or(usage)?;
    let password = arguments.next().ok_or(usage)?;

    // Fetches and parses the session resource; fails on bad credentials (HTTP 401).
    let client = Client::new()
        .credentials((user.as_str(), password.as_str()))
        .follow_redirects(["127.0.0.1", "localhost"])
        .connect(&base_url)
        .await?;
    let session = client.session();
    println!(
        "logged in as {} (api: {})",
        session.username(),
        session.api_url()
    );

    // jmap-client's default `using` lists every capability it knows; a server answers
    // `unknownCapability` for the ones it lacks, so ask for Core only.
    let mut request = client.build();
    request.using = vec![URI::Core];
    // jmap-client 0.4 has no typed builder for Core/echo arguments. Echo returns whatever
    // arguments it gets, so any serializable arguments object serves as the payload; the
    // answer is parsed by jmap-client's own `Core/echo` response type.
    let payload = Arguments::blob_copy(request.params(Method::Echo), "echo-payload".to_owned());
    request.add_method_call(Method::Echo, payload);
    let response = request.send().await?;
    for method_response in response.unwrap_method_responses() {
        let call_id = method_response.call_id().to_owned();
        let echoed = method_response.unwrap_echo()?;
        println!("Core/echo [{call_id}] answered: {echoed}");
    }
    Ok(())
}
