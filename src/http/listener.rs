//! Listeners: the accept loop (HTTP/1.1 and HTTP/2 on one port, optionally TLS with ALPN),
//! connection caps (total and per client address, `[http]`), per-connection deadlines
//! (`http::connection`), and graceful shutdown: stop accepting, let in-flight requests
//! finish within a grace period, then drop what is left.

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
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::config::HttpConfig;
pub use super::connection::ConnectionHold;
pub use super::connection::Deadlines;
use super::connection::{self, Activity, InFlight, TrackedBody, WatchedIo};
use super::response::ResponseBody;
use crate::limits::{ConnectionLimiter, ConnectionLimits, LogThrottle};

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

fn connection_builder(deadlines: &Deadlines) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper starts this timer when it starts waiting for a head, idle keep-alive included;
    // the watchdog enforces the real deadlines, this is a backstop.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.idle + deadlines.header);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(60)));
    builder
}

/// The connection caps and deadlines of one listener.
#[derive(Clone)]
pub struct ListenerLimits {
    pub connections: Arc<ConnectionLimiter>,
    pub deadlines: Deadlines,
    /// What `Retry-After` says to a refused connection.
    pub retry_after_seconds: u64,
}

impl ListenerLimits {
    /// The JMAP listener's, from `[http]`; `max_connections` is `http.max_connections` as
    /// fitted under the descriptor limit.
    pub fn from_config(config: &HttpConfig, max_connections: usize) -> ListenerLimits {
        ListenerLimits {
            connections: ConnectionLimiter::new(ConnectionLimits {
                total: max_connections,
                per_address: config.max_connections_per_address,
                // Per client address only: one office behind NAT is one network.
                per_network: max_connections,
                ipv4_prefix: 32,
                ipv6_prefix: 128,
            }),
            deadlines: config.deadlines(),
            retry_after_seconds: config.retry_after_seconds,
        }
    }

    /// The admin endpoint's: loopback only, used by the CLI, so a few connections.
    pub fn admin() -> ListenerLimits {
        ListenerLimits {
            connections: ConnectionLimiter::new(ConnectionLimits {
                total: 64,
                per_address: 64,
                per_network: 64,
                ipv4_prefix: 32,
                ipv6_prefix: 128,
            }),
            deadlines: Deadlines::default(),
            retry_after_seconds: 1,
        }
    }
}

static ACCEPT_FAILED: LogThrottle = LogThrottle::new(crate::limits::log::DEFAULT_INTERVAL);

/// Refusals answered at once; more are closed without an answer (a flood must not hold
/// descriptors for its answers).
const MAX_REFUSALS_IN_PROGRESS: usize = 32;

/// Accepts connections until `shutdown` turns true, then waits up to `grace` for open
/// connections to finish their in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    limits: ListenerLimits,
) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(connection_builder(&limits.deadlines));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_PROGRESS));
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                if let Some(suppressed) = ACCEPT_FAILED.allow() {
                    tracing::warn!(%error, listener = ?local, suppressed, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match limits.connections.try_acquire(remote.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                if let Some(suppressed) = limits.connections.log_refusal(refusal) {
                    tracing::warn!(
                        client_ip = %remote.ip(),
                        listener = ?local,
                        reason = refusal.name(),
                        open = limits.connections.open(),
                        suppressed,
                        "HTTP connection refused"
                    );
                }
                if tls.is_none()
                    && let Ok(slot) = Arc::clone(&refusals).try_acquire_owned()
                {
                    let answer = connection::refusal_response(refusal, limits.retry_after_seconds);
                    tokio::spawn(async move {
                        connection::refuse(stream, answer).await;
                        drop(slot);
                    });
                }
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let activity = Activity::new();
        let hold = ConnectionHold::default();
        let service = {
            let handler = Arc::clone(&handler);
            let activity = Arc::clone(&activity);
            let hold = hold.clone();
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                let in_flight = InFlight::start(&activity);
                request.extensions_mut().insert(hold.clone());
                let response = handler(request, remote);
                async move {
                    let response = response.await;
                    Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight)))
                }
            })
        };
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        let deadlines = limits.deadlines;
        tokio::spawn(async move {
            let watchdog = connection::watchdog(Arc::clone(&activity), deadlines);
            let outcome = match tls {
                None => {
                    let io = WatchedIo::new(stream, activity, permit, hold);
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    tokio::select! {
                        outcome = watcher.watch(connection) => outcome,
                        why = watchdog => {
                            tracing::debug!(%remote, deadline = why, "connection closed at its deadline");
                            Ok(())
                        }
                    }
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        TLS_HANDSHAKE_TIMEOUT.min(deadlines.first_byte + deadlines.header),
                        acceptor.accept(stream),
                    )
                    .await;
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
                    let io = WatchedIo::new(stream, activity, permit, hold);
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    tokio::select! {
                        outcome = watcher.watch(connection) => outcome,
                        why = watchdog => {
                            tracing::debug!(%remote, deadline = why, "connection closed at its deadline");
                            Ok(())
                        }
                    }
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
