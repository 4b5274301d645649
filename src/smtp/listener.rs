//! The SMTP listeners: the only SMTP code that owns sockets. Each connection drives one
//! sans-IO [`Session`]: read bytes → feed → answer its events through the [`Policy`] →
//! write its replies. Three kinds: MX (port 25 style, no AUTH), submission (587 style,
//! STARTTLS then AUTH) and submissions (465 style, implicit TLS).
//!
//! Limits: open sessions over all listeners, per client address and per client network
//! (`limits::connections`, with a fair-share reserve for networks holding none), a
//! per-client-address token bucket for new connections, and a read buffer allocated per read
//! rather than per connection, so an idle session costs its small state and the socket only.
//!
//! Deadlines (the session is sans-IO, so they live here, with the socket): RFC 5321
//! §4.5.3.2 sets minimum timeouts for the client's benefit, not a licence to trickle. A
//! command must be whole within `command_timeout_seconds` of the previous reply, however its
//! bytes trickle in; message content (DATA, or one BDAT chunk) must not pause longer than
//! `data_timeout_seconds` (§4.5.3.2.5) and must end within `data_timeout_seconds` plus one
//! second per `min_data_rate` bytes received.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::SmtpConfig;
use super::policy::{Policy, Submitter};
use super::session::{Event, Reply, Session, SessionConfig};
use crate::auth::rate_limit::FailedLoginLimiter;
use crate::limits::{ConnectionLimiter, ConnectionLimits, LogThrottle};

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
    connections: Arc<ConnectionLimiter>,
    connection_rate: FailedLoginLimiter,
    mx_config: Arc<SessionConfig>,
    submission_config: Arc<SessionConfig>,
    loopback_submission_config: Arc<SessionConfig>,
    command_timeout: Duration,
    data_timeout: Duration,
    min_data_rate: u64,
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
            connections: ConnectionLimiter::new(ConnectionLimits {
                total: config.max_connections,
                per_address: config.max_connections_per_address,
                per_network: config.max_connections_per_network,
                ipv4_prefix: config.ipv4_network_prefix,
                ipv6_prefix: config.ipv6_network_prefix,
            }),
            connection_rate: FailedLoginLimiter::new(
                config.connection_rate_burst,
                Duration::from_millis(config.connection_rate_refill_ms),
            ),
            mx_config: Arc::new(base),
            submission_config: Arc::new(submission),
            loopback_submission_config: Arc::new(loopback_submission),
            command_timeout: Duration::from_secs(config.command_timeout_seconds),
            data_timeout: Duration::from_secs(config.data_timeout_seconds),
            min_data_rate: config.min_data_rate.max(1),
        }
    }

    /// Connections open now (for tests and metrics).
    pub fn open_connections(&self) -> usize {
        self.connections.open()
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
                if let Some(suppressed) = ACCEPT_FAILED.allow() {
                    tracing::warn!(%error, listener = kind.name(), suppressed, "accept failed");
                }
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

static ACCEPT_FAILED: LogThrottle = LogThrottle::new(crate::limits::log::DEFAULT_INTERVAL);
static TIMED_OUT: LogThrottle = LogThrottle::new(crate::limits::log::DEFAULT_INTERVAL);
static RATE_LIMITED: LogThrottle = LogThrottle::new(crate::limits::log::DEFAULT_INTERVAL);

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
        if let Some(suppressed) = RATE_LIMITED.allow() {
            tracing::info!(client_ip = %ip, listener = kind.name(), reason = "rate",
                suppressed, "SMTP connection refused");
        }
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
    let _permit = match shared.connections.try_acquire(ip) {
        Ok(permit) => permit,
        Err(refusal) => {
            if let Some(suppressed) = shared.connections.log_refusal(refusal) {
                tracing::warn!(client_ip = %ip, listener = kind.name(), reason = refusal.name(),
                    open = shared.connections.open(), suppressed, "SMTP connection refused");
            }
            // RFC 5321 §3.1: a server may refuse a session with 421 instead of the greeting.
            return refuse(
                stream,
                Reply::new(421, (4, 7, 0), format!("{refusal}; try again later")),
            )
            .await;
        }
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
    let shared_command_timeout = shared.command_timeout;
    let mut driver = Driver {
        client_ip: ip,
        connection: Some(connection),
        session,
        shared,
        submitter: None,
        stop,
        command_deadline: Instant::now() + shared_command_timeout,
        data: None,
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
    /// The whole current command must have arrived by then (reset by every reply).
    command_deadline: Instant,
    /// Message content being read: since when, and how many bytes so far.
    data: Option<(Instant, u64)>,
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
        // A reply ends a command: the next one gets a whole command timeout.
        self.command_deadline = Instant::now() + timeout;
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

    /// When the read now starting must have returned.
    fn read_deadline(&mut self) -> Instant {
        let now = Instant::now();
        if !self.session.in_data() {
            self.data = None;
            return self.command_deadline;
        }
        let (started, received) = *self.data.get_or_insert((now, 0));
        let earned = Duration::from_secs_f64(received as f64 / self.shared.min_data_rate as f64);
        (now + self.shared.data_timeout).min(started + self.shared.data_timeout + earned)
    }

    async fn read_some(&mut self) -> io::Result<()> {
        let deadline = self.read_deadline();
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
            outcome = tokio::time::timeout_at(deadline.into(), read) => match outcome {
                Ok(Ok(0)) | Ok(Err(_)) => self.session.input_closed(),
                Ok(Ok(read)) => {
                    if let Some((_, received)) = &mut self.data {
                        *received += read as u64;
                    }
                    self.session.feed(&buffer)
                }
                Err(_) => {
                    if let Some(suppressed) = TIMED_OUT.allow() {
                        tracing::info!(client_ip = %self.client_ip, in_data = self.session.in_data(),
                            suppressed, "SMTP session timed out");
                    }
                    self.session.timed_out()
                }
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
