//! Uploads a blob, copies it with `Blob/copy` and downloads the copy, all through the
//! `jmap-client` crate (RFC 8620 §6.1–6.3).
//!
//! Run against a local Tern (`cargo run --release -- serve --demo` prints the demo passwords):
//! ```text
//! cargo run --example blob_roundtrip -- http://127.0.0.1:8080 alice@example.test PASSWORD
//! ```

use jmap_client::URI;
use jmap_client::blob::copy::CopyBlobResponse;
use jmap_client::client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let usage = "usage: blob_roundtrip BASE_URL USER PASSWORD";
    let base_url = arguments.next().ok_or(usage)?;
    let user = arguments.next().ok_or(usage)?;
    let password = arguments.next().ok_or(usage)?;

    let client = Client::new()
        .credentials((user.as_str(), password.as_str()))
        .follow_redirects(["127.0.0.1", "localhost"])
        .connect(&base_url)
        .await?;

    let content = b"Hello from the Tern blob example.\n".repeat(100);
    let uploaded = client
        .upload(None, content.clone(), Some("text/plain"))
        .await?;
    println!(
        "uploaded {} bytes as blob {} ({})",
        uploaded.size(),
        uploaded.blob_id(),
        uploaded.content_type()
    );

    // Copy within the user's own account; ask for Core only (see examples/echo.rs).
    let account_id = client.default_account_id().to_owned();
    let mut request = client.build();
    request.using = vec![URI::Core];
    request
        .copy_blob(account_id.as_str())
        .blob_id(uploaded.blob_id());
    let mut copied: CopyBlobResponse = request.send_single().await?;
    let copy_id = copied.copied(uploaded.blob_id())?;
    println!("Blob/copy made {copy_id}");

    let downloaded = client.download(&copy_id).await?;
    if downloaded != content {
        return Err("the downloaded copy differs from what was uploaded".into());
    }
    println!("downloaded {} bytes; content matches", downloaded.len());
    Ok(())
}
