//! Listeners: the accept loop (HTTP/1.1 and HTTP/2 on one port, optionally TLS with ALPN),
//! and graceful shutdown: stop accepting, let in-flight requests finish within a grace
//! period, then drop what is left.

use std::convert::Infallible;
use std::future::Future;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::response::ResponseBody;

/// How long a client may take to send its request headers (slowloris protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub type Handler = Arc<
    dyn Fn(
            Request<Incoming>,
            SocketAddr,
        ) -> Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>
        + Send
        + Sync,
>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// A TLS acceptor (rustls, ring provider) offering h2 and http/1.1 by ALPN.
pub fn tls_acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, TlsError> {
    let open = |path: &Path| {
        std::fs::File::open(path)
            .map(BufReader::new)
            .map_err(|error| TlsError(format!("cannot read {}: {error}", path.display())))
    };
    let certificates = rustls_pemfile::certs(&mut open(cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError(format!("{}: bad PEM: {error}", cert_path.display())))?;
    if certificates.is_empty() {
        return Err(TlsError(format!(
            "{} contains no certificate",
            cert_path.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut open(key_path)?)
        .map_err(|error| TlsError(format!("{}: bad PEM: {error}", key_path.display())))?
        .ok_or_else(|| TlsError(format!("{} contains no private key", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|error| TlsError(format!("certificate and key do not fit: {error}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(60)));
    builder
}

/// Accepts connections until `shutdown` turns true, then waits up to `grace` for open
/// connections to finish their in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(connection_builder());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |request| {
            let response = handler(request, remote);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        tokio::spawn(async move {
            let outcome = match tls {
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let stream = match handshake {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%remote, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(error) = outcome {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::debug!(
        open = graceful.count(),
        "listener closed; draining connections"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "connections still open after the grace period; closing them"
        );
    }
}
