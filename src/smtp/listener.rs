//! The SMTP listeners: the only SMTP code that owns sockets. Each connection drives one
//! sans-IO [`Session`]: read bytes → feed → answer its events through the [`Policy`] →
//! write its replies. Three kinds: MX (port 25 style, no AUTH), submission (587 style,
//! STARTTLS then AUTH) and submissions (465 style, implicit TLS).
//!
//! Limits: a maximum of open connections over all listeners, a per-client-address token
//! bucket for new connections, RFC 5321 §4.5.3.2 timeouts (command and data, configurable),
//! and a read buffer allocated per read rather than per connection, so an idle session costs
//! its small state and the socket only.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::SmtpConfig;
use super::policy::{Policy, Submitter};
use super::session::{Event, Reply, Session, SessionConfig};
use crate::auth::rate_limit::FailedLoginLimiter;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read per socket read.
const READ_CHUNK: usize = 16 * 1024;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Mx,
    /// STARTTLS, then AUTH.
    Submission,
    /// Implicit TLS from the first byte (RFC 8314).
    Submissions,
}

impl ListenerKind {
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Mx => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
        }
    }
}

/// What every connection of every SMTP listener shares.
pub struct SmtpShared {
    pub policy: Policy,
    pub tls: Option<TlsAcceptor>,
    connections: Arc<Semaphore>,
    connection_rate: FailedLoginLimiter,
    mx_config: Arc<SessionConfig>,
    submission_config: Arc<SessionConfig>,
    loopback_submission_config: Arc<SessionConfig>,
    command_timeout: Duration,
    data_timeout: Duration,
}

impl SmtpShared {
    pub fn new(
        config: &SmtpConfig,
        hostname: String,
        policy: Policy,
        tls: Option<TlsAcceptor>,
    ) -> SmtpShared {
        let base = SessionConfig {
            hostname,
            submission: false,
            starttls: tls.is_some(),
            auth_without_tls: false,
            max_message_size: usize::try_from(config.max_message_size).unwrap_or(usize::MAX),
            max_recipients: config.max_recipients,
            max_errors: config.max_errors,
        };
        let submission = SessionConfig {
            submission: true,
            ..base.clone()
        };
        let loopback_submission = SessionConfig {
            auth_without_tls: config.loopback_auth_without_tls,
            ..submission.clone()
        };
        SmtpShared {
            policy,
            tls,
            connections: Arc::new(Semaphore::new(config.max_connections)),
            connection_rate: FailedLoginLimiter::new(
                config.connection_rate_burst,
                Duration::from_millis(config.connection_rate_refill_ms),
            ),
            mx_config: Arc::new(base),
            submission_config: Arc::new(submission),
            loopback_submission_config: Arc::new(loopback_submission),
            command_timeout: Duration::from_secs(config.command_timeout_seconds),
            data_timeout: Duration::from_secs(config.data_timeout_seconds),
        }
    }

    /// Connections open now (for tests and metrics).
    pub fn open_connections(&self, max_connections: usize) -> usize {
        max_connections.saturating_sub(self.connections.available_permits())
    }

    fn session_config(&self, kind: ListenerKind, peer: IpAddr) -> Arc<SessionConfig> {
        match kind {
            ListenerKind::Mx => Arc::clone(&self.mx_config),
            _ if peer.is_loopback() => Arc::clone(&self.loopback_submission_config),
            _ => Arc::clone(&self.submission_config),
        }
    }
}

/// Accepts connections on `listener` until `stop` turns true; sessions in progress then get
/// `421 4.3.2` at their next read.
pub async fn serve(
    listener: TcpListener,
    kind: ListenerKind,
    shared: Arc<SmtpShared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, listener = kind.name(), "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        tokio::spawn(async move {
            handle_connection(stream, peer, kind, shared, stop).await;
        });
    }
}

async fn refuse(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&out)).await;
    let _ = stream.shutdown().await;
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: Arc<SmtpShared>,
    stop: watch::Receiver<bool>,
) {
    let ip = peer.ip();
    if shared.connection_rate.check(ip).is_err() {
        tracing::info!(client_ip = %ip, listener = kind.name(), "connection rate limit");
        return refuse(
            stream,
            Reply::new(
                421,
                (4, 7, 0),
                "Too many connections from your address; try later",
            ),
        )
        .await;
    }
    shared.connection_rate.record_failure(ip);
    let Ok(_permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
        tracing::warn!(client_ip = %ip, "SMTP connection limit reached");
        return refuse(
            stream,
            Reply::new(421, (4, 7, 0), "Too many connections; try again later"),
        )
        .await;
    };
    let connection = match kind {
        ListenerKind::Submissions => {
            let Some(acceptor) = shared.tls.clone() else {
                return;
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Connection::Tls(Box::new(tls)),
                _ => {
                    tracing::debug!(client_ip = %ip, "TLS handshake failed");
                    return;
                }
            }
        }
        _ => Connection::Plain(stream),
    };
    let session = Session::new(
        shared.session_config(kind, ip),
        ip,
        matches!(connection, Connection::Tls(_)),
    );
    tracing::debug!(client_ip = %ip, listener = kind.name(), "SMTP session started");
    let mut driver = Driver {
        client_ip: ip,
        connection: Some(connection),
        session,
        shared,
        submitter: None,
        stop,
    };
    if let Err(error) = driver.run().await {
        tracing::debug!(client_ip = %ip, %error, "SMTP session ended with an error");
    }
}

struct Driver {
    client_ip: IpAddr,
    connection: Option<Connection>,
    session: Session,
    shared: Arc<SmtpShared>,
    submitter: Option<Submitter>,
    stop: watch::Receiver<bool>,
}

impl Driver {
    fn connection(&mut self) -> io::Result<&mut Connection> {
        self.connection
            .as_mut()
            .ok_or_else(|| io::Error::other("connection gone"))
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.session.has_output() {
            return Ok(());
        }
        let output = self.session.take_output();
        let timeout = self.shared.command_timeout;
        let connection = self.connection()?;
        let write = async {
            connection.write_all(&output).await?;
            connection.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        loop {
            match self.session.next_event() {
                Event::NeedInput => {
                    self.flush().await?;
                    self.read_some().await?;
                }
                Event::Recipient(query) => {
                    let decision = self.shared.policy.recipient(&query).await;
                    self.session.answer_recipient(decision);
                }
                Event::Authenticate { login, password } => {
                    let ip = self.client_ip;
                    match self.shared.policy.authenticate(&login, &password, ip).await {
                        Ok(Some(submitter)) => {
                            tracing::info!(client_ip = %ip, account_id = submitter.account_id, "SMTP AUTH succeeded");
                            self.session.answer_auth(Some(submitter.login.clone()));
                            self.submitter = Some(submitter);
                        }
                        Ok(None) => {
                            tracing::info!(client_ip = %ip, "SMTP AUTH failed");
                            self.session.answer_auth(None);
                        }
                        Err(reply) => {
                            tracing::info!(client_ip = %ip, %reply, "SMTP AUTH refused");
                            self.session.refuse_auth(reply);
                        }
                    }
                }
                Event::Message(message) => {
                    let outcome = self
                        .shared
                        .policy
                        .accept_message(*message, self.submitter.as_ref())
                        .await;
                    self.session.answer_message(outcome);
                }
                Event::StartTls => {
                    self.flush().await?;
                    self.start_tls().await?;
                    self.submitter = None;
                    self.session.tls_started();
                }
                Event::Close => {
                    let _ = self.flush().await;
                    if let Some(mut connection) = self.connection.take() {
                        let _ = connection.shutdown().await;
                    }
                    return Ok(());
                }
            }
        }
    }

    async fn read_some(&mut self) -> io::Result<()> {
        let timeout = if self.session.in_data() {
            self.shared.data_timeout
        } else {
            self.shared.command_timeout
        };
        let mut stop = self.stop.clone();
        let mut buffer = Vec::new();
        let connection = self
            .connection
            .as_mut()
            .ok_or_else(|| io::Error::other("connection gone"))?;
        let read = async {
            // The buffer exists only while a read is in progress... and a read only starts
            // once the socket is readable, so idle sessions hold no read buffer.
            connection.readable().await?;
            buffer.reserve_exact(READ_CHUNK);
            connection.read_buf(&mut buffer).await
        };
        tokio::select! {
            outcome = tokio::time::timeout(timeout, read) => match outcome {
                Ok(Ok(0)) | Ok(Err(_)) => self.session.input_closed(),
                Ok(Ok(_)) => self.session.feed(&buffer),
                Err(_) => self.session.timed_out(),
            },
            _ = stop.wait_for(|stop| *stop) => self.session.shutting_down(),
        }
        Ok(())
    }

    async fn start_tls(&mut self) -> io::Result<()> {
        let Some(acceptor) = self.shared.tls.clone() else {
            return Err(io::Error::other("STARTTLS without a certificate"));
        };
        let Some(Connection::Plain(stream)) = self.connection.take() else {
            return Err(io::Error::other("STARTTLS on a TLS connection"));
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                self.connection = Some(Connection::Tls(Box::new(tls)));
                Ok(())
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake")),
        }
    }
}

/// A plain or TLS connection.
enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    /// Waits until the socket has something to read (or TLS has buffered plaintext).
    async fn readable(&mut self) -> io::Result<()> {
        match self {
            Connection::Plain(stream) => stream.readable().await,
            // rustls may hold decrypted bytes already; let the read itself wait.
            Connection::Tls(_) => Ok(()),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write(context, bytes),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_flush(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}

/// The bound SMTP sockets of a server being started (bound before the store is opened, so a
/// taken port is reported first).
#[derive(Default)]
pub struct SmtpSockets {
    mx: Option<TcpListener>,
    submission: Option<TcpListener>,
    submissions: Option<TcpListener>,
}

/// The addresses the SMTP listeners are bound to (real ports when configured with port 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmtpAddresses {
    pub mx: Option<SocketAddr>,
    pub submission: Option<SocketAddr>,
    pub submissions: Option<SocketAddr>,
}

/// Why a listener could not be bound: `(address in use?, message)`.
pub type BindError = (bool, String);

async fn bind_one(address: SocketAddr, what: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(address).await.map_err(|error| {
        let in_use = error.kind() == io::ErrorKind::AddrInUse;
        let why = if in_use {
            "the address is already in use".to_owned()
        } else {
            error.to_string()
        };
        (
            in_use,
            format!("cannot listen on {address} ({what}): {why}"),
        )
    })
}

/// Binds the configured SMTP listeners. The MX listener on its default address is optional:
/// when that port is taken (another Tern, a test server), the server starts without it.
pub async fn bind(config: &SmtpConfig) -> Result<SmtpSockets, BindError> {
    let mut sockets = SmtpSockets::default();
    if let Some(address) = config.listen {
        let is_default = Some(address) == super::config::DEFAULT_MX_LISTEN.parse().ok();
        match bind_one(address, "SMTP MX listener").await {
            Ok(listener) => sockets.mx = Some(listener),
            Err((true, message)) if is_default => {
                tracing::warn!(%message, "starting without the SMTP MX listener; set smtp.listen");
            }
            Err(error) => return Err(error),
        }
    }
    if let Some(address) = config.submission {
        sockets.submission = Some(bind_one(address, "SMTP submission listener").await?);
    }
    if let Some(address) = config.submissions {
        sockets.submissions = Some(bind_one(address, "SMTP submissions listener").await?);
    }
    Ok(sockets)
}

/// Starts a task per bound listener; returns the bound addresses and the tasks.
pub fn start(
    sockets: SmtpSockets,
    shared: Arc<SmtpShared>,
    stop: &watch::Receiver<bool>,
) -> (SmtpAddresses, Vec<tokio::task::JoinHandle<()>>) {
    let mut addresses = SmtpAddresses::default();
    let mut tasks = Vec::new();
    let listeners = [
        (sockets.mx, ListenerKind::Mx, &mut addresses.mx),
        (
            sockets.submission,
            ListenerKind::Submission,
            &mut addresses.submission,
        ),
        (
            sockets.submissions,
            ListenerKind::Submissions,
            &mut addresses.submissions,
        ),
    ];
    for (socket, kind, slot) in listeners {
        let Some(socket) = socket else { continue };
        *slot = socket.local_addr().ok();
        tracing::info!(address = ?slot, listener = kind.name(), "SMTP listener ready");
        tasks.push(tokio::spawn(serve(
            socket,
            kind,
            Arc::clone(&shared),
            stop.clone(),
        )));
    }
    (addresses, tasks)
}

/// Builds the policy and starts the bound listeners (called by `server::Server::start`).
/// `hostname` is the greeting name when `smtp.hostname` is unset. SMTP AUTH uses the HTTP
/// authenticator's directory and login throttle: a guess counts wherever it is made.
pub async fn launch(
    config: &crate::config::Config,
    authenticator: &crate::auth::Authenticator,
    blobs: &crate::store::blob::BlobStore,
    tls: Option<TlsAcceptor>,
    sockets: SmtpSockets,
    stop: &watch::Receiver<bool>,
    hostname: &str,
) -> Result<(SmtpAddresses, Vec<tokio::task::JoinHandle<()>>), String> {
    let directory = authenticator.directory();
    // Stores from before the domain index learn their local domains from their accounts.
    directory
        .ensure_domain_index()
        .await
        .map_err(|error| format!("local domain index: {error}"))?;
    let antivirus = crate::smtp::antivirus::Antivirus::from_config(&config.antivirus);
    let policy = Policy::new(
        directory.clone(),
        blobs.clone(),
        antivirus.map(|antivirus| Arc::new(antivirus) as Arc<dyn crate::smtp::policy::DataFilter>),
        Arc::clone(authenticator.throttle()),
    )
    .with_postmaster(config.smtp.postmaster.clone());
    let hostname = config
        .smtp
        .hostname
        .clone()
        .unwrap_or_else(|| hostname.to_owned());
    let shared = Arc::new(SmtpShared::new(&config.smtp, hostname, policy, tls));
    Ok(start(sockets, shared, stop))
}
