//! Start-up and shutdown of a whole server, used by `tern serve` and by the integration
//! tests (a real server on an ephemeral port with a temporary data dir):
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = tern::config::Config::default();
//! config.server.data_dir = "/tmp/tern-test".into();
//! config.server.http = "127.0.0.1:0".parse()?;
//! let server = tern::server::Server::start(config).await?;
//! server.create_account("alice@example.test", "secret").await?;
//! let session_url = server.session_url(); // http://127.0.0.1:PORT/.well-known/jmap
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Order of start-up: validate config → open the store (the data dir lock) → directory and
//! engine → bind the JMAP listener → demo accounts → admin listener and `admin.json` →
//! serve. Shutdown reverses it: stop accepting, drain in-flight requests (bounded), remove
//! `admin.json`, close the store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{AccountInfo, Authenticator, Directory, DirectoryError};
use crate::cluster::ClusterNode;
use crate::config::{Config, StoreBackendKind};
use crate::http::admin::{AdminFile, AdminState, serve_admin_request};
use crate::http::listener::{self, Handler};
use crate::http::{AppState, serve_request};
use crate::jmap::{Engine, SessionUrls};
use crate::store::blob::BlobStore;
use crate::store::embedded::EmbeddedBackend;
use crate::store::ownership::ClaimHook;
use crate::store::{Store, StoreErrorKind, purge};

mod demo;
use demo::create_demo_accounts;

/// Why the server did not start; `message` is one line for the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub kind: StartErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartErrorKind {
    Config,
    /// Another process holds the data directory.
    Locked,
    /// The listen address is taken.
    PortInUse,
    Tls,
    Store,
    Io,
}

impl StartError {
    fn new(kind: StartErrorKind, message: impl Into<String>) -> StartError {
        StartError {
            kind,
            message: message.into(),
        }
    }
}

pub use demo::{DEMO_EMAILS, DEMO_GROUP, DemoAccount};

pub struct Server;

/// The bound sockets of a server being started.
struct Listeners {
    http: TcpListener,
    admin: Option<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    smtp: crate::smtp::listener::SmtpSockets,
    cluster: Option<Arc<ClusterNode>>,
}

/// A started server. Dropping it stops accepting connections (in-flight ones finish on their
/// own) but does not close the store or remove `admin.json`: call
/// [`RunningServer::shutdown`] for a clean stop.
pub struct RunningServer {
    /// The bound JMAP listener address (the real port when configured with port 0).
    pub http_addr: SocketAddr,
    /// The public base URL, e.g. `http://127.0.0.1:8080` (no trailing slash).
    pub base_url: String,
    /// The loopback admin endpoint, if enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The bound SMTP listeners (MX, submission, submissions); `None` when not listening.
    pub smtp: crate::smtp::listener::SmtpAddresses,
    /// Demo accounts created on this start (empty unless `server.demo` and first start).
    pub demo_accounts: Vec<DemoAccount>,
    data_dir: PathBuf,
    store: Store,
    directory: Directory,
    engine: Engine,
    push: crate::push::PushHub,
    outbound: Option<crate::outbound::actor::OutboundHandle>,
    dns: crate::dns::Resolver,
    delivery: crate::smtp::delivery::DeliveryActor,
    admin_file: Option<AdminFile>,
    cluster: Option<Arc<ClusterNode>>,
    /// Commit hints to the other nodes (a cluster on FoundationDB).
    commit_hints: Option<Arc<crate::http::hints::CommitHints>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Opens the configured store: the embedded one in `server.data_dir` (blocking I/O, so off
/// the async workers), or a FoundationDB cluster.
pub async fn open_store(config: &Config) -> Result<Store, crate::store::StoreError> {
    match config.store.backend {
        StoreBackendKind::Embedded => {
            let dir = config.server.data_dir.clone();
            let cache_bytes = usize::try_from(config.store.cache_size_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX);
            let backend = tokio::task::spawn_blocking(move || {
                EmbeddedBackend::open_with_cache(&dir, cache_bytes)
            })
            .await
            .map_err(|error| crate::store::StoreError::io(format!("store open task: {error}")))??;
            Ok(Store::new(Arc::new(backend)))
        }
        StoreBackendKind::Foundationdb => open_foundationdb(config).await,
    }
}

#[cfg(feature = "foundationdb")]
async fn open_foundationdb(config: &Config) -> Result<Store, crate::store::StoreError> {
    let cluster_file = config.store.fdb_cluster_file.as_deref();
    let backend = crate::store::fdb::FdbBackend::open_with_watches(
        cluster_file,
        config.store.fdb_max_watches,
    )
    .await?;
    Ok(Store::new(Arc::new(backend)))
}

#[cfg(not(feature = "foundationdb"))]
async fn open_foundationdb(_config: &Config) -> Result<Store, crate::store::StoreError> {
    Err(crate::store::StoreError::io(
        "store.backend = \"foundationdb\" needs a tern built with `--features foundationdb`",
    ))
}

/// The host of `scheme://host[:port][/path]`.
fn url_host(url: &str) -> Option<&str> {
    let authority = url.split_once("://")?.1.split('/').next()?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

fn base_url_for(config: &Config, bound: SocketAddr) -> String {
    if let Some(base_url) = &config.server.base_url {
        return base_url.trim_end_matches('/').to_owned();
    }
    let scheme = if config.tls_enabled() {
        "https"
    } else {
        "http"
    };
    let mut public = bound;
    if bound.ip().is_unspecified() {
        // Bound to every interface: loopback is the one address sure to work; set
        // server.base_url for remote clients.
        public.set_ip(if bound.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("{scheme}://{public}")
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::AddrInUse {
            StartError::new(
                StartErrorKind::PortInUse,
                format!("cannot listen on {addr} ({what}): the address is already in use"),
            )
        } else {
            StartError::new(
                StartErrorKind::Io,
                format!("cannot listen on {addr} ({what}): {error}"),
            )
        }
    })
}

/// Raises the open file limit and fits the connection caps under it, keeping
/// `server.fd_reserve` descriptors for the store, the search index, outbound mail, DNS and the
/// admin endpoint (`limits::descriptors`): so that idle connections cannot make `accept`
/// fail for every listener.
fn fit_to_descriptors(config: &mut Config) {
    let limit = crate::limits::descriptors::raise_nofile_limit();
    let smtp = &config.smtp;
    let smtp_listens =
        smtp.listen.is_some() || smtp.submission.is_some() || smtp.submissions.is_some();
    let smtp_wanted = if smtp_listens {
        smtp.max_connections
    } else {
        0
    };
    let (http, smtp_cap) = crate::limits::descriptors::fit_connection_caps(
        limit.now,
        config.server.fd_reserve,
        config.http.max_connections,
        smtp_wanted,
    );
    if http < config.http.max_connections || smtp_cap < smtp_wanted {
        tracing::warn!(
            open_file_limit = ?limit.now,
            fd_reserve = config.server.fd_reserve,
            http.max_connections = http,
            smtp.max_connections = smtp_cap,
            "connection caps lowered to fit the open file limit; raise the hard limit \
             (e.g. LimitNOFILE=) to allow more"
        );
    } else if limit.before != limit.now {
        tracing::debug!(before = ?limit.before, now = ?limit.now, "open file limit raised");
    }
    config.http.max_connections = http;
    if smtp_listens {
        config.smtp.max_connections = smtp_cap;
        config.smtp.max_connections_per_address =
            config.smtp.max_connections_per_address.min(smtp_cap);
    }
}

/// Expires upload references and deletes unreferenced blobs every `interval` until `stop`.
async fn collect_blobs_periodically(
    blobs: BlobStore,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match blobs.gc().await {
            Ok(report) => tracing::debug!(?report, "blob collection done"),
            Err(error) => tracing::warn!(%error, "blob collection failed; retrying next round"),
        }
    }
}

/// Opens the full-text index (`search`), rebuilding it in the background when it is missing
/// or unusable, starts its indexer and connects it to the engine.
async fn start_search(
    config: &Config,
    store: &Store,
    engine: &Engine,
    directory: &Directory,
    stop: &watch::Receiver<bool>,
) -> Result<JoinHandle<()>, StartError> {
    let accounts = directory
        .list_accounts()
        .await
        .map_err(|error| StartError::new(StartErrorKind::Store, error.to_string()))?
        .into_iter()
        .map(|account| account.account_id)
        .collect();
    let (search, task) = crate::search::start(
        store.clone(),
        engine.blobs().clone(),
        crate::search::index_dir(&config.server.data_dir),
        accounts,
        stop.clone(),
    )
    .await
    .map_err(|error| StartError::new(StartErrorKind::Io, format!("search index: {error}")))?;
    engine.install_search(search);
    Ok(task)
}

/// Builds the DNS resolver and starts the delivery actor that files incoming SMTP mail.
fn start_delivery(
    config: &Config,
    store: &Store,
    blobs: &BlobStore,
    base_url: &str,
) -> Result<(crate::dns::Resolver, crate::smtp::delivery::DeliveryActor), StartError> {
    let dns = crate::dns::build_or_fallback(&config.dns)
        .map_err(|error| StartError::new(StartErrorKind::Config, error.to_string()))?;
    // The name the MX greets with, so Received: and Authentication-Results: match it.
    let hostname = config
        .smtp
        .hostname
        .as_deref()
        .or_else(|| url_host(base_url))
        .unwrap_or("localhost");
    let context = crate::smtp::delivery::DeliveryContext {
        store: store.clone(),
        blobs: blobs.clone(),
        dns: Arc::clone(&dns),
        spam: config.spam.clone(),
        spamd: config.spam.spamd_client(),
        antivirus: crate::smtp::antivirus::Antivirus::from_config(&config.antivirus),
        settings: crate::smtp::delivery::DeliverySettings::new(&config.delivery, hostname),
    };
    Ok((dns, crate::smtp::delivery::DeliveryActor::start(context)))
}

/// The writes every claim of an account makes in its transaction (and an operator's move):
/// the search index marks the account as rebuilding, so its text queries scan the store until
/// the new owner's index has caught up (`search::follow_ownership`).
pub fn claim_hooks() -> Vec<ClaimHook> {
    vec![Arc::new(
        |tx: &mut dyn crate::store::Transaction, account_id: u32| {
            crate::search::queue::set_rebuilding(tx, account_id, true)
        },
    )]
}

/// Joins the store's cluster when `cluster.enabled`: registers this node and fences every
/// account commit of the returned store.
async fn join_cluster(
    config: &Config,
    store: Store,
    http_listener: &TcpListener,
) -> Result<(Store, Option<Arc<ClusterNode>>), StartError> {
    if !config.cluster.enabled {
        return Ok((store, None));
    }
    let http_addr = http_listener
        .local_addr()
        .map_err(|error| StartError::new(StartErrorKind::Io, error.to_string()))?;
    let url = config
        .cluster
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));
    let name = config.cluster.node_name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "tern".to_owned());
        format!("{host}:{}", http_addr.port())
    });
    let node = ClusterNode::join(&store, &config.cluster, name, url, claim_hooks())
        .await
        .map_err(|error| StartError::new(StartErrorKind::Store, error.message))?;
    let fenced = store.with_fence(Arc::clone(node.fence()));
    Ok((fenced, Some(node)))
}

/// On FoundationDB a watch fires ≈ 10 ms after the commit on an idle cluster (see
/// `http::hints`), so each account commit of this process also pokes the local push hub and, on
/// a cluster, hints the other nodes. The embedded store's watch is in-process and immediate.
fn push_fast_path(
    store: &Store,
    push: &crate::push::PushHub,
    cluster: Option<&crate::http::ClusterLink>,
) -> Option<Arc<crate::http::hints::CommitHints>> {
    if store.backend().name() != "foundationdb" {
        return None;
    }
    let hints = cluster
        .filter(|link| link.node.commit_hints())
        .map(|link| crate::http::hints::CommitHints::new(Arc::clone(&link.node)));
    // Weak: the hints hold the cluster node, which holds the store, which holds this.
    let remote = hints.as_ref().map(Arc::downgrade);
    let local = push.poker();
    store.on_account_commit(Arc::new(move |account_id| {
        local(account_id);
        if let Some(hints) = remote.as_ref().and_then(std::sync::Weak::upgrade) {
            hints.hint(account_id);
        }
    }));
    hints
}

impl Server {
    /// Starts a server; ready to serve when this returns.
    pub async fn start(mut config: Config) -> Result<RunningServer, StartError> {
        config
            .validate()
            .map_err(|error| StartError::new(StartErrorKind::Config, error.message))?;
        fit_to_descriptors(&mut config);
        let tls = match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert), Some(key)) => Some(
                listener::tls_acceptor(cert, key)
                    .map_err(|error| StartError::new(StartErrorKind::Tls, error.0))?,
            ),
            _ => None,
        };
        // HTTP and admin listeners first: a taken port is reported before the store is touched.
        let http_listener = bind(config.server.http, "JMAP HTTP listener").await?;
        let admin_listener = if config.admin.enabled {
            Some(bind(config.admin.addr, "admin endpoint").await?)
        } else {
            None
        };
        let store = open_store(&config).await.map_err(|error| {
            let kind = if error.kind == StoreErrorKind::Locked {
                StartErrorKind::Locked
            } else {
                StartErrorKind::Store
            };
            StartError::new(kind, error.message)
        })?;
        let (store, cluster) = match join_cluster(&config, store.clone(), &http_listener).await {
            Ok(joined) => joined,
            Err(error) => {
                if let Err(close_error) = store.close().await {
                    tracing::warn!(%close_error, "closing the store after a failed start");
                }
                return Err(error);
            }
        };
        // SMTP after the store: its default MX address may be taken (only a warning), and a
        // data directory held by another server must be the one error a second start reports.
        let smtp_sockets = match crate::smtp::listener::bind(&config.smtp).await {
            Ok(sockets) => sockets,
            Err((in_use, message)) => {
                let kind = if in_use {
                    StartErrorKind::PortInUse
                } else {
                    StartErrorKind::Io
                };
                if let Err(close_error) = store.close().await {
                    tracing::warn!(%close_error, "closing the store after a failed start");
                }
                return Err(StartError::new(kind, message));
            }
        };
        let listeners = Listeners {
            http: http_listener,
            admin: admin_listener,
            tls,
            smtp: smtp_sockets,
            cluster: cluster.clone(),
        };
        match Server::start_on_store(config, store.clone(), listeners).await {
            Ok(running) => Ok(running),
            Err(error) => {
                if let Some(cluster) = cluster {
                    cluster.leave().await;
                }
                if let Err(close_error) = store.close().await {
                    tracing::warn!(%close_error, "closing the store after a failed start");
                }
                Err(error)
            }
        }
    }

    async fn start_on_store(
        config: Config,
        store: Store,
        listeners: Listeners,
    ) -> Result<RunningServer, StartError> {
        let Listeners {
            http: http_listener,
            admin: admin_listener,
            tls,
            smtp: smtp_sockets,
            cluster,
        } = listeners;
        let data_dir = config.server.data_dir.clone();
        let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
        let directory = Directory::with_limits(
            store.clone(),
            Duration::from_secs(config.auth.credential_cache_seconds),
            config.auth.max_concurrent_password_checks,
        );

        let http_addr = http_listener
            .local_addr()
            .map_err(|error| StartError::new(StartErrorKind::Io, error.to_string()))?;
        let base_url = base_url_for(&config, http_addr);
        // Generated Message-IDs name the server's public host when it has a DNS name.
        if let Some(host) = config.server.base_url.as_deref().and_then(url_host) {
            crate::mail::build::set_message_id_host(host);
        }
        // Every account without limits of its own gets these (RFC 9425; `mail::quota`).
        let default_limits = config
            .quota
            .limits()
            .map_err(|error| StartError::new(StartErrorKind::Config, error))?;
        store
            .transact(move |tx| {
                Box::pin(async move { crate::mail::quota::write_defaults(tx, &default_limits) })
            })
            .await
            .map_err(|error| StartError::new(StartErrorKind::Store, error.message))?;
        // Accounts from before the usage counters get them counted once, and accounts from
        // before domain quotas are counted in their domain, before anything can write (paged;
        // a no-op for accounts already done).
        let store_failed = |message: String| StartError::new(StartErrorKind::Store, message);
        let accounts = directory.list_accounts().await;
        let ids = accounts.map_err(|error| store_failed(error.message))?;
        let ids = ids
            .into_iter()
            .map(|account| (account.account_id, account.email))
            .collect();
        crate::mail::quota::backfill_all(&store, ids)
            .await
            .map_err(|error| store_failed(error.message))?;
        // Web Push (RFC 8292): one VAPID key per store, advertised in the session.
        let vapid =
            crate::push::webpush::VapidKey::load_or_create(&store, &config.push.vapid_subject)
                .await
                .map_err(|error| StartError::new(StartErrorKind::Store, error.message))?;
        let mut urls = SessionUrls::from_base_url(&base_url);
        urls.web_push =
            crate::push::config::WebPushSettings::new(&config.push, vapid.public_key_base64());
        let engine = Engine::new(store.clone(), config.jmap.core_limits(), urls)
            .with_memory_limits(crate::jmap::budget::MemoryLimits::from_budget_mb(
                config.server.memory_budget_mb,
            ))
            .with_method_observer(crate::telemetry::method_observer());

        // Computed once, off the async workers, so the first login of an unknown user does
        // not pay for it (and timing stays the same as for a known one).
        drop(tokio::task::spawn_blocking(|| {
            crate::auth::password::decoy_hash();
        }));
        let demo_accounts = if config.server.demo {
            create_demo_accounts(&directory).await?
        } else {
            Vec::new()
        };

        let (stop, stop_receiver) = watch::channel(false);
        let mut tasks = Vec::new();

        let mut admin_addr = None;
        let mut admin_file = None;
        if let Some(admin_listener) = admin_listener {
            let bound = admin_listener
                .local_addr()
                .map_err(|error| StartError::new(StartErrorKind::Io, error.to_string()))?;
            let file = AdminFile::new(bound);
            file.write(&data_dir).map_err(|error| {
                StartError::new(
                    StartErrorKind::Io,
                    format!(
                        "cannot write {}: {error}",
                        AdminFile::path(&data_dir).display()
                    ),
                )
            })?;
            let admin_state = Arc::new(AdminState {
                directory: directory.clone(),
                secret: file.secret.clone(),
            });
            let admin_handler: Handler = Arc::new(move |request, _remote| {
                Box::pin(serve_admin_request(Arc::clone(&admin_state), request))
            });
            tasks.push(tokio::spawn(listener::serve(
                admin_listener,
                None,
                admin_handler,
                stop_receiver.clone(),
                grace,
                listener::ListenerLimits::admin(),
            )));
            admin_addr = Some(bound);
            admin_file = Some(file);
        }

        // One throttle for every login path: SMTP AUTH uses this authenticator's too.
        let login_throttle = Arc::new(crate::auth::rate_limit::LoginThrottle::new(
            crate::auth::rate_limit::ThrottleSettings::from_config(&config.auth),
        ));
        let authenticator = Authenticator::with_throttle(directory.clone(), login_throttle);
        // Passwords changed and accounts deleted by other processes (the CLI on FoundationDB,
        // other nodes) stop working here at once, not when a cached check expires.
        tasks.push(tokio::spawn({
            let directory = directory.clone();
            let stop = stop_receiver.clone();
            async move { directory.forget_on_credential_changes(stop).await }
        }));
        let purge_store = store.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = purge::resume_pending_purges(&purge_store).await {
                tracing::warn!(%error, "resuming account purges failed; retrying at next start");
            }
        }));
        let blobs = engine.blobs().clone();
        let search_task =
            start_search(&config, &store, &engine, &directory, &stop_receiver).await?;
        tasks.push(search_task);
        if config.server.memory_trim_interval_seconds > 0 {
            tasks.push(tokio::spawn(crate::limits::memory::trim_periodically(
                Duration::from_secs(config.server.memory_trim_interval_seconds),
                stop_receiver.clone(),
            )));
        }
        tasks.push(tokio::spawn(collect_blobs_periodically(
            blobs.clone(),
            Duration::from_secs(config.server.blob_gc_interval_seconds),
            stop_receiver.clone(),
        )));
        let state = Arc::new(
            AppState::new(&config, engine.clone(), authenticator, blobs)
                .with_cluster(cluster.clone()),
        );
        let push = state.push.clone();
        let commit_hints = push_fast_path(&store, &push, state.cluster.as_deref());
        tasks.push(crate::push::deliverer::start(
            push.clone(),
            vapid,
            &config.push,
        ));
        let (dns, delivery) = start_delivery(&config, &store, engine.blobs(), &base_url)?;
        let (smtp, smtp_tasks) = crate::smtp::listener::launch(
            &config,
            &state.authenticator,
            engine.blobs(),
            tls.clone(),
            smtp_sockets,
            &stop_receiver,
            url_host(&base_url).unwrap_or("localhost"),
        )
        .await
        .map_err(|message| StartError::new(StartErrorKind::Store, message))?;
        tasks.extend(smtp_tasks);
        let outbound = crate::outbound::start_for_server(
            &config,
            &store,
            &directory,
            url_host(&base_url).unwrap_or("localhost"),
        )
        .await
        .map_err(|message| StartError::new(StartErrorKind::Store, message))?;
        let handler: Handler = Arc::new(move |request, remote| {
            Box::pin(serve_request(Arc::clone(&state), request, remote))
        });
        tasks.push(tokio::spawn(listener::serve(
            http_listener,
            tls,
            handler,
            stop_receiver,
            grace,
            listener::ListenerLimits::from_config(&config.http, config.http.max_connections),
        )));
        tracing::info!(%http_addr, %base_url, data_dir = %data_dir.display(), "Tern is serving");
        Ok(RunningServer {
            http_addr,
            base_url,
            smtp,
            admin_addr,
            demo_accounts,
            data_dir,
            store,
            directory,
            engine,
            push,
            dns,
            delivery,
            outbound,
            admin_file,
            cluster,
            commit_hints,
            stop,
            tasks,
        })
    }
}

impl RunningServer {
    /// `<base_url>/.well-known/jmap`.
    pub fn session_url(&self) -> String {
        format!("{}/.well-known/jmap", self.base_url)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory (accounts, passwords, tokens) of this server.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The DNS resolver of SPF/DKIM/DMARC checks and outbound lookups (`[dns]`).
    pub fn dns(&self) -> &crate::dns::Resolver {
        &self.dns
    }

    /// The outbound actor (`None` when `outbound.enabled` is off); `wake()` makes it look at
    /// the queue now.
    pub fn outbound(&self) -> Option<&crate::outbound::actor::OutboundHandle> {
        self.outbound.as_ref()
    }

    /// The state-change fan-out (WebSocket, EventSource and Web Push listen to it).
    pub fn push(&self) -> &crate::push::PushHub {
        &self.push
    }

    /// Creates an account (shorthand for tests).
    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
    ) -> Result<AccountInfo, DirectoryError> {
        self.directory.create_account(email, password).await
    }

    /// Creates a bearer token for an existing account (shorthand for tests).
    pub async fn create_token(&self, email: &str) -> Result<String, DirectoryError> {
        self.directory.create_token(email).await
    }

    /// Stops accepting, lets in-flight requests finish (up to the configured grace period),
    /// removes `admin.json` and closes the store.
    pub async fn shutdown(self) {
        let RunningServer {
            data_dir,
            store,
            admin_file,
            stop,
            tasks,
            engine,
            directory,
            push,
            delivery,
            outbound,
            cluster,
            commit_hints,
            ..
        } = self;
        let _ = stop.send(true);
        if let Some(hints) = commit_hints {
            hints.shutdown();
        }
        if let Some(outbound) = outbound {
            outbound.stop().await;
        }
        // Entries in progress finish their commit; the rest stay queued for the next start.
        delivery.shutdown().await;
        // Long-lived push connections end now rather than at the end of the grace period.
        push.shutdown();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "listener task failed");
            }
        }
        // Graceful hand-over: the accounts are released only once nothing here writes them,
        // and the next node that needs each one claims it at once.
        if let Some(cluster) = cluster {
            cluster.leave().await;
        }
        if let Some(file) = admin_file {
            file.remove_if_ours(&data_dir);
        }
        // The store is closed once nothing can use it any more.
        drop(engine);
        drop(directory);
        match store.close().await {
            Ok(()) => tracing::info!("store closed; shutdown complete"),
            Err(error) => tracing::error!(%error, "closing the store failed"),
        }
    }
}
