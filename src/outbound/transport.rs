//! The network side of sending: where a domain's mail goes (the smarthost, or MX records by
//! preference with the implicit-MX fallback to A/AAAA, RFC 5321 §5.1, and null MX, RFC 7505),
//! and one SMTP transaction over TCP with opportunistic STARTTLS, driving the sans-IO
//! [`ClientSession`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::common::cache::NoCache;
use mail_auth::{DnsError, IpLookupStrategy, MX, RecordSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::smtp_client::{ClientSession, Envelope, Output, Reply};
use crate::dns::Resolver;

/// How the transport reaches the world.
#[derive(Clone)]
pub struct TransportSettings {
    /// The name this server gives in EHLO.
    pub helo_name: String,
    /// All non-local mail goes here when set (`--relay HOST:PORT`).
    pub relay: Option<(String, u16)>,
    /// The port MX hosts are contacted on (25; tests point it at a sink).
    pub mx_port: u16,
    pub connect_timeout: Duration,
    /// Each read or write of the session (RFC 5321 §4.5.3.2 suggests minutes).
    pub io_timeout: Duration,
    /// Try STARTTLS when offered.
    pub starttls: bool,
    pub resolver: Option<Resolver>,
}

/// One host to try, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub name: String,
    pub addresses: Vec<SocketAddr>,
}

/// The hosts for `domain`, best first; `Err` is the reply every recipient gets (a permanent
/// one for a null MX or a domain that does not exist, a temporary one for DNS trouble).
pub async fn route(settings: &TransportSettings, domain: &str) -> Result<Vec<Hop>, Reply> {
    if let Some((host, port)) = &settings.relay {
        return Ok(vec![hop(settings, host, *port).await?]);
    }
    let Some(resolver) = &settings.resolver else {
        return Err(Reply::local(451, [4, 4, 3], "no DNS resolver configured"));
    };
    let mx = resolver
        .mx_lookup(domain, None::<&NoCache<Box<str>, RecordSet<MX>>>)
        .await;
    let records = match mx {
        Ok(records) => records,
        Err(mail_auth::Error::Dns(DnsError::RecordNotFound(
            mail_auth::hickory_resolver::proto::op::ResponseCode::NXDomain,
        ))) => {
            return Err(Reply::local(
                550,
                [5, 1, 2],
                format!("the domain {domain} does not exist"),
            ));
        }
        Err(mail_auth::Error::Dns(DnsError::RecordNotFound(_))) => {
            // RFC 5321 §5.1: no MX records, the domain itself is the implicit MX.
            return Ok(vec![hop(settings, domain, settings.mx_port).await?]);
        }
        Err(error) => {
            return Err(Reply::local(
                451,
                [4, 4, 3],
                format!("MX lookup for {domain} failed: {error}"),
            ));
        }
    };
    let exchanges: Vec<&str> = records
        .rrset
        .iter()
        .flat_map(|record| record.exchanges.iter().map(|name| name.as_ref()))
        .collect();
    if exchanges.is_empty() {
        return Ok(vec![hop(settings, domain, settings.mx_port).await?]);
    }
    // RFC 7505 §3: a single MX with the root as exchange means "accepts no mail".
    if exchanges
        .iter()
        .all(|name| name.trim_end_matches('.').is_empty())
    {
        return Err(Reply::local(
            556,
            [5, 1, 10],
            format!("the domain {domain} accepts no mail (null MX)"),
        ));
    }
    let mut hops = Vec::new();
    let mut last_error = None;
    for name in exchanges {
        if name.trim_end_matches('.').is_empty() {
            continue;
        }
        match hop(settings, name, settings.mx_port).await {
            Ok(found) => hops.push(found),
            Err(error) => last_error = Some(error),
        }
    }
    if hops.is_empty() {
        return Err(last_error.unwrap_or_else(|| {
            Reply::local(451, [4, 4, 3], format!("no address for the MX of {domain}"))
        }));
    }
    Ok(hops)
}

async fn hop(settings: &TransportSettings, host: &str, port: u16) -> Result<Hop, Reply> {
    let name = host.trim_end_matches('.').to_owned();
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(Hop {
            name,
            addresses: vec![SocketAddr::new(ip, port)],
        });
    }
    let addresses = match &settings.resolver {
        Some(resolver) => resolver
            .ip_lookup(
                &name,
                IpLookupStrategy::Ipv4thenIpv6,
                8,
                None::<&NoCache<Box<str>, RecordSet<std::net::Ipv4Addr>>>,
                None::<&NoCache<Box<str>, RecordSet<std::net::Ipv6Addr>>>,
            )
            .await
            .map_err(|error| {
                Reply::local(
                    451,
                    [4, 4, 3],
                    format!("address lookup for {name}: {error}"),
                )
            })?,
        None => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map(|found| found.map(|address| address.ip()).collect())
            .map_err(|error| {
                Reply::local(
                    451,
                    [4, 4, 3],
                    format!("address lookup for {name}: {error}"),
                )
            })?,
    };
    if addresses.is_empty() {
        return Err(Reply::local(
            451,
            [4, 4, 3],
            format!("{name} has no address"),
        ));
    }
    Ok(Hop {
        name,
        addresses: addresses
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
    })
}

/// How long an open session may wait unused for the next message to the same host (Postfix's
/// `smtp_connection_cache_time_limit` default), and how long one may be reused in all.
pub(super) const IDLE_LIMIT: Duration = Duration::from_secs(2);
const REUSE_LIMIT: Duration = Duration::from_secs(300);
/// Open sessions kept per host address.
const MAX_IDLE_PER_ADDRESS: usize = 32;

/// A session kept open after a transaction, for the next message to the same host.
struct IdleSession {
    connection: Connection,
    session: ClientSession,
    opened: Instant,
    idle_since: Instant,
}

/// Open SMTP sessions by host, reused for later messages (RFC 5321 §3.3: a session may carry
/// several transactions). Dropped after [`IDLE_LIMIT`] unused; a session the server closed
/// meanwhile is noticed at its RSET, before anything of the message is sent, and replaced.
#[derive(Default)]
pub struct ConnectionPool {
    idle: Mutex<HashMap<(String, SocketAddr), Vec<IdleSession>>>,
}

impl ConnectionPool {
    fn take(&self, host: &str, address: SocketAddr) -> Option<IdleSession> {
        let mut idle = self.lock();
        let sessions = idle.get_mut(&(host.to_owned(), address))?;
        while let Some(candidate) = sessions.pop() {
            if candidate.idle_since.elapsed() < IDLE_LIMIT
                && candidate.opened.elapsed() < REUSE_LIMIT
            {
                return Some(candidate);
            }
            close(candidate);
        }
        None
    }

    fn put(&self, host: &str, address: SocketAddr, session: IdleSession) {
        let mut idle = self.lock();
        let sessions = idle.entry((host.to_owned(), address)).or_default();
        if sessions.len() >= MAX_IDLE_PER_ADDRESS {
            close(sessions.remove(0));
        }
        sessions.push(session);
    }

    /// Closes the sessions idle for longer than [`IDLE_LIMIT`] (the actor calls this as it
    /// goes round, so an idle server is not held open).
    pub fn sweep(&self) {
        let mut idle = self.lock();
        for sessions in idle.values_mut() {
            let (keep, expired): (Vec<_>, Vec<_>) = std::mem::take(sessions)
                .into_iter()
                .partition(|session| session.idle_since.elapsed() < IDLE_LIMIT);
            *sessions = keep;
            expired.into_iter().for_each(close);
        }
        idle.retain(|_, sessions| !sessions.is_empty());
    }

    /// Open sessions waiting for reuse.
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, SocketAddr), Vec<IdleSession>>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Ends an idle session politely (RFC 5321 §4.1.1.10 QUIT), without waiting for it.
fn close(idle: IdleSession) {
    let mut connection = idle.connection;
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.write_all(b"QUIT\r\n"))
                .await;
        });
    }
}

/// Sends `message` to `envelope.recipients` through the first of `hops` that answers; one
/// reply per recipient (in envelope order). Connection failures move on to the next address
/// and host (RFC 5321 §5.1); a session that ran reports what the server said. An open session
/// to the host from `pool` is used first, and the session goes back to it afterwards.
pub async fn send(
    settings: &TransportSettings,
    pool: &ConnectionPool,
    hops: &[Hop],
    envelope: &Envelope,
    message: &[u8],
) -> Vec<Reply> {
    let mut last_error = Reply::local(451, [4, 4, 1], "no host to connect to");
    for hop in hops {
        for address in &hop.addresses {
            while let Some(idle) = pool.take(&hop.name, *address) {
                let mut session = idle.session;
                let mut connection = Some(idle.connection);
                let first = session.next_transaction(envelope.clone(), message.to_vec());
                run_session(settings, &mut connection, &hop.name, &mut session, first).await;
                if session.died_idle() {
                    // Closed by the server while idle: nothing was accepted; try another.
                    continue;
                }
                let results = results_of(&session);
                if let Some(connection) = connection.filter(|_| session.is_reusable()) {
                    pool.put(
                        &hop.name,
                        *address,
                        IdleSession {
                            connection,
                            session,
                            opened: idle.opened,
                            idle_since: Instant::now(),
                        },
                    );
                }
                return results;
            }
            let connected =
                tokio::time::timeout(settings.connect_timeout, TcpStream::connect(address)).await;
            let stream = match connected {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    last_error = Reply::local(
                        451,
                        [4, 4, 1],
                        format!("connecting to {} ({address}): {error}", hop.name),
                    );
                    continue;
                }
                Err(_) => {
                    last_error = Reply::local(
                        451,
                        [4, 4, 1],
                        format!("connecting to {} ({address}) timed out", hop.name),
                    );
                    continue;
                }
            };
            let opened = Instant::now();
            let _ = stream.set_nodelay(true);
            let mut session = ClientSession::new(
                &settings.helo_name,
                envelope.clone(),
                message.to_vec(),
                settings.starttls,
            )
            .keep_open();
            let mut connection = Some(Connection::Plain(stream));
            run_session(
                settings,
                &mut connection,
                &hop.name,
                &mut session,
                Vec::new(),
            )
            .await;
            let results = results_of(&session);
            // A server that refused the whole session temporarily (busy greeting, say):
            // another MX may do better.
            let all_transient = results.iter().all(Reply::is_transient);
            let greeting_or_connection_level = !session.reached_transaction();
            if all_transient && greeting_or_connection_level {
                last_error = results.into_iter().next().unwrap_or(last_error);
                continue;
            }
            if let Some(connection) = connection.filter(|_| session.is_reusable()) {
                pool.put(
                    &hop.name,
                    *address,
                    IdleSession {
                        connection,
                        session,
                        opened,
                        idle_since: Instant::now(),
                    },
                );
            }
            return results;
        }
    }
    vec![last_error; envelope.recipients.len()]
}

/// One reply per recipient; a missing one (the session ended first) is a transient failure.
fn results_of(session: &ClientSession) -> Vec<Reply> {
    session
        .results()
        .iter()
        .map(|reply| {
            reply.clone().unwrap_or_else(|| {
                Reply::local(451, [4, 4, 2], "the session ended without an answer")
            })
        })
        .collect()
}

enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection {
    async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Connection::Plain(stream) => stream.read(buffer).await,
            Connection::Tls(stream) => stream.read(buffer).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Connection::Plain(stream) => stream.write_all(bytes).await,
            Connection::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
        }
    }
}

/// Drives `session` over `connection` until its transaction ends: first the `initial`
/// outputs (a resumed session's RSET and commands), then reply after reply. `connection` is
/// `None` afterwards when it failed or was given up.
async fn run_session(
    settings: &TransportSettings,
    connection: &mut Option<Connection>,
    host: &str,
    session: &mut ClientSession,
    initial: Vec<Output>,
) {
    if !apply_outputs(settings, connection, host, session, initial).await {
        return;
    }
    let mut buffer = vec![0u8; 16 * 1024];
    while !session.is_finished() {
        let Some(current) = connection.as_mut() else {
            break;
        };
        let read = tokio::time::timeout(settings.io_timeout, current.read(&mut buffer)).await;
        let count = match read {
            Ok(Ok(0)) => {
                session.abort(&Reply::local(
                    451,
                    [4, 4, 2],
                    format!("{host} closed the connection"),
                ));
                *connection = None;
                break;
            }
            Ok(Ok(count)) => count,
            Ok(Err(error)) => {
                session.abort(&Reply::local(
                    451,
                    [4, 4, 2],
                    format!("reading from {host}: {error}"),
                ));
                *connection = None;
                break;
            }
            Err(_) => {
                session.abort(&Reply::local(451, [4, 4, 2], format!("{host} timed out")));
                *connection = None;
                break;
            }
        };
        let outputs = match session.receive(&buffer[..count]) {
            Ok(outputs) => outputs,
            Err(error) => {
                session.abort(&Reply::local(451, [4, 5, 0], format!("{host}: {error}")));
                *connection = None;
                break;
            }
        };
        if !apply_outputs(settings, connection, host, session, outputs).await {
            return;
        }
    }
}

/// Carries out what the session asked; `false` when the session is over.
async fn apply_outputs(
    settings: &TransportSettings,
    connection: &mut Option<Connection>,
    host: &str,
    session: &mut ClientSession,
    outputs: Vec<Output>,
) -> bool {
    let mut pending: std::collections::VecDeque<Output> = outputs.into();
    while let Some(output) = pending.pop_front() {
        let Some(current) = connection.as_mut() else {
            return false;
        };
        match output {
            Output::Send(bytes) => {
                let written =
                    tokio::time::timeout(settings.io_timeout, current.write_all(&bytes)).await;
                if !matches!(written, Ok(Ok(()))) {
                    session.abort(&Reply::local(
                        451,
                        [4, 4, 2],
                        format!("writing to {host} failed"),
                    ));
                    *connection = None;
                    return false;
                }
            }
            Output::StartTls => {
                let Some(Connection::Plain(plain)) = connection.take() else {
                    session.abort(&Reply::local(451, [4, 5, 0], "STARTTLS twice"));
                    return false;
                };
                match start_tls(plain, host, settings.io_timeout).await {
                    Ok(tls) => {
                        *connection = Some(Connection::Tls(Box::new(tls)));
                        pending.extend(session.tls_started());
                    }
                    Err(error) => {
                        // Opportunistic TLS that failed mid-handshake leaves the
                        // connection unusable: retry later (RFC 3207 §4.1).
                        session.abort(&Reply::local(
                            451,
                            [4, 7, 5],
                            format!("TLS with {host} failed: {error}"),
                        ));
                        return false;
                    }
                }
            }
            Output::Finished => {
                if !session.is_reusable() {
                    *connection = None;
                }
                return false;
            }
        }
    }
    true
}

async fn start_tls(
    stream: TcpStream,
    host: &str,
    timeout: Duration,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(opportunistic_tls_config());
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into())
    });
    tokio::time::timeout(timeout, connector.connect(name, stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Opportunistic TLS (RFC 7435): encrypt whenever possible, whatever the certificate, since
/// the alternative is plain text. Signatures are still checked (the handshake is real).
fn opportunistic_tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(AnyCertificate(Arc::clone(&provider)));
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|builder| {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth()
            });
        match config {
            Ok(config) => Arc::new(config),
            // The ring provider supports the default versions; keep a usable fallback.
            Err(_) => Arc::new(
                rustls::ClientConfig::builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))))
                    .with_no_client_auth(),
            ),
        }
    }))
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
