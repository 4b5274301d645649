//! The server configuration: one TOML file (every setting has a key), command-line flags
//! override it, validated once at start-up. An unknown key is an error naming the key and
//! its line, not a silently ignored typo.
//!
//! Reference (every key, with its default):
//!
//! ```toml
//! [server]
//! data_dir = "./tern-data"        # embedded store, admin.json
//! http = "127.0.0.1:8080"         # JMAP listener (HTTP/1.1 and HTTP/2)
//! base_url = "http://127.0.0.1:8080"  # public URL in the session; default from `http`
//! tls_cert = "cert.pem"           # PEM chain; with tls_key, the listener speaks TLS
//! tls_key = "key.pem"             # PEM private key (PKCS#8, PKCS#1 or SEC1)
//! demo = false                    # create alice@ and bob@example.test on first start
//! shutdown_grace_seconds = 10     # how long in-flight requests may finish on shutdown
//! blob_gc_interval_seconds = 3600 # how often unreferenced blobs are collected
//! fd_reserve = 256                # descriptors kept out of the connection caps (store, index,
//!                                 # outbound, admin); the soft RLIMIT_NOFILE is raised to the
//!                                 # hard one at start-up and http.max_connections plus
//!                                 # smtp.max_connections are shrunk to fit under it
//! memory_budget_mb = 1024         # what requests may hold: half for in-flight responses,
//!                                 # 1/32 per request's JSON, 1/256 per body value
//! memory_trim_interval_seconds = 30  # give freed heap back to the system this often; 0: never
//!
//! [http]                          # the JMAP listener's connections
//! max_connections = 4096          # open connections; more: 503 + Retry-After (last tenth kept
//!                                 # for client addresses holding < 4)
//! max_connections_per_address = 256  # more: 429 + Retry-After
//! max_push_connections = 2048     # WebSocket + EventSource (no idle timeout), in total ...
//! max_push_connections_per_address = 192  # ... and per client address
//! first_byte_timeout_seconds = 10 # a new connection must send a byte within this time
//! header_timeout_seconds = 20     # a request head must be whole this long after its first byte
//! idle_timeout_seconds = 60       # keep-alive connection with no request in flight
//! retry_after_seconds = 5         # Retry-After of a refused connection
//!
//! [jmap]                          # RFC 8620 §2 core capability limits
//! max_size_upload = 50000000
//! max_concurrent_upload = 4
//! max_size_request = 10000000
//! max_concurrent_requests = 8
//! max_calls_in_request = 64
//! max_objects_in_get = 1000
//! max_objects_in_set = 1000
//!
//! [auth]
//! failed_login_burst = 10         # failed logins per client address before slowing down
//! failed_login_refill_seconds = 6 # one more attempt allowed every this many seconds
//! failed_login_account_burst = 10 # failed logins per account (from any address) likewise
//! failed_login_account_refill_seconds = 10
//! failed_login_max_delay_seconds = 10  # slowed logins wait up to this, then 429
//! max_concurrent_password_checks = 4   # argon2 verifications at once (19 MiB each)
//! credential_cache_seconds = 60   # successful Basic logins skip argon2 for this long
//!
//! [cors]
//! allowed_origins = ["*"]         # "*" or exact origins like "https://mail.example"
//! allow_credentials = false       # send Access-Control-Allow-Credentials (never with "*")
//! max_age_seconds = 600           # how long browsers may cache a preflight
//!
//! [telemetry]
//! log_format = "text"             # "text" or "json"
//! log_filter = "info"             # tracing filter; RUST_LOG overrides it
//! otlp_endpoint = "http://127.0.0.1:4318"  # OTLP/HTTP base URL; unset: nothing exported
//! service_name = "tern"
//! metrics_interval_seconds = 60
//!
//! [admin]
//! enabled = true                  # the loopback admin endpoint the CLI uses while serving
//! addr = "127.0.0.1:0"            # must be a loopback address
//!
//! [smtp]                          # receiving mail (schema/smtp.md)
//! listen = "127.0.0.1:2525"       # MX (--smtp); "" disables; port 25 in production
//! submission = "127.0.0.1:587"    # STARTTLS + AUTH (--submission); unset: off
//! submissions = "0.0.0.0:465"     # implicit TLS + AUTH (--submissions); unset: off
//! hostname = "mx.example.org"     # greeting/EHLO name; default: base_url host
//! max_message_size = 26214400     # SIZE; larger: 552 5.3.4
//! max_recipients = 100            # per message; more: 452 4.5.3
//! max_connections = 1000          # over all SMTP listeners; more: 421 4.7.0
//! max_connections_per_address = 20   # sessions from one client address; more: 421 4.7.0
//! max_connections_per_network = 100  # ... from one /24 (IPv4) or /64 (IPv6)
//! ipv4_network_prefix = 24        # what "network" means for the cap above
//! ipv6_network_prefix = 64
//! connection_rate_burst = 60      # new connections per client address, then ...
//! connection_rate_refill_ms = 100 # ... one more every this many ms
//! command_timeout_seconds = 300   # RFC 5321 §4.5.3.2; a whole command, not per byte
//! data_timeout_seconds = 180      # per read in DATA/BDAT, and the grace of ...
//! min_data_rate = 1024            # ... the whole-DATA deadline: data_timeout_seconds plus
//!                                 # one second per this many bytes received
//! max_errors = 20                 # error replies before 421 and close
//! loopback_auth_without_tls = true # AUTH in clear for loopback clients only
//!
//! [dns]                           # SPF/DKIM/DMARC checks and outbound MX lookups
//! nameserver = "127.0.0.1:53"     # one server (tests: a local dnsmasq); unset: /etc/resolv.conf
//! timeout_ms = 5000
//! attempts = 2
//!
//! [outbound]                      # sending (schema/outbound.md)
//! relay = "smtp.example.net:587"  # smarthost for all non-local mail (--relay); unset: MX
//! hostname = "mail.example.org"   # EHLO name; default: base_url host
//! mx_port = 25
//! starttls = true                 # opportunistic
//! concurrency = 32                # messages sent at once
//! per_domain_concurrency = 8
//! retry_initial_seconds = 120     # then doubling (±20 % jitter) up to retry_max_seconds
//! retry_max_seconds = 14400
//! lifetime_seconds = 432000       # 5 days, then a bounce
//! delay_notice_seconds = 14400    # 0: no delay notices
//! rate_per_hour = 1000            # recipients per account per hour (0: unlimited)
//! rate_burst = 200
//!
//! [delivery]                      # the actor that files incoming SMTP mail (schema/delivery.md)
//! hostname = "mx.example.org"     # in Received: and Authentication-Results:; default: base_url host
//! concurrency = 8                 # queued messages delivered at once
//! max_message_bytes = 268435456
//! vacation_period_days = 7        # RFC 3834: one auto-reply per sender per period
//! sieve_cache_scripts = 256       # compiled Sieve scripts kept for the next deliveries
//!
//! [spam]
//! enabled = true
//! threshold = 5.0                 # rules + classifier score from which mail goes to Junk
//! bayes_weight = 6.0              # what a certain per-account classifier adds (or subtracts)
//! bayes_min_spam = 1              # trained spam messages before the classifier votes
//! spamd = "127.0.0.1:783"         # optional SpamAssassin spamd; unset: not used
//! spamd_timeout_ms = 10000
//! spamd_max_bytes = 500000
//!
//! [antivirus]
//! clamd = "127.0.0.1:3310"        # or "/run/clamav/clamd.ctl"; unset: no scanning
//! action = "reject"               # "reject" (554 5.7.1 at DATA) or "quarantine"
//! timeout_ms = 30000
//! chunk_bytes = 65536
//!
//! [cluster]                       # several nodes on one FoundationDB (schema/cluster.md)
//! enabled = false                 # needs store.backend = "foundationdb"
//! node_name = "node-a"            # the operator's name; default: host name and HTTP port
//! advertise_url = "http://10.0.0.5:8080"  # where other nodes forward this node's accounts'
//!                                 # requests; default: http://<server.http>
//! heartbeat_interval_ms = 500     # this node's beat (a blind write)
//! lease_ms = 2500                 # a node silent this long is expired; its accounts move
//! forward_timeout_seconds = 60    # a request forwarded to an account's owner
//! forget_nodes_after_seconds = 600  # registry records of nodes expired this long are removed
//! commit_hints = true             # tell other nodes of commits: push without the watch's lag
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::jmap::CoreLimits;

/// What is wrong with a configuration, as one line for the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub kind: ConfigErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Read,
    /// Not TOML, an unknown key, or a value of the wrong type.
    Parse,
    /// Well-formed but inconsistent (e.g. a TLS certificate without a key).
    Invalid,
}

impl ConfigError {
    fn invalid(message: impl Into<String>) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Invalid,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub http: crate::http::config::HttpConfig,
    pub store: StoreConfig,
    pub jmap: JmapConfig,
    pub auth: AuthConfig,
    pub cors: CorsConfig,
    pub telemetry: TelemetryConfig,
    pub admin: AdminConfig,
    pub push: crate::push::PushConfig,
    pub dns: crate::dns::DnsConfig,
    pub outbound: crate::outbound::config::OutboundConfig,
    pub smtp: crate::smtp::config::SmtpConfig,
    pub delivery: crate::smtp::delivery::DeliveryConfig,
    pub spam: crate::smtp::spam::SpamConfig,
    pub antivirus: crate::smtp::antivirus::AntivirusConfig,
    pub cluster: crate::cluster::ClusterConfig,
    pub quota: crate::mail::quota::QuotaConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    /// The public URL clients reach the server at; `None`: derived from the bound address.
    pub base_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub demo: bool,
    pub shutdown_grace_seconds: u64,
    pub blob_gc_interval_seconds: u64,
    /// File descriptors kept out of the HTTP and SMTP connection caps (`limits::descriptors`).
    pub fd_reserve: u64,
    /// The memory API requests may use, in MiB; the response limits derive from it
    /// (`jmap::budget::MemoryLimits`).
    pub memory_budget_mb: u64,
    /// How often freed heap memory is given back to the system (`limits::memory`); 0: never.
    pub memory_trim_interval_seconds: u64,
}

/// `[server] memory_budget_mb` by default: what API requests may hold (`jmap::budget`).
pub const DEFAULT_MEMORY_BUDGET_MB: u64 = 1024;

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            data_dir: PathBuf::from("./tern-data"),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            base_url: None,
            tls_cert: None,
            tls_key: None,
            demo: false,
            shutdown_grace_seconds: 10,
            blob_gc_interval_seconds: 3600,
            fd_reserve: 256,
            memory_budget_mb: DEFAULT_MEMORY_BUDGET_MB,
            memory_trim_interval_seconds: 30,
        }
    }
}

/// Which storage backend holds the data.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreBackendKind,
    /// The embedded store's page cache, in MiB.
    pub cache_size_mb: u64,
    /// FoundationDB cluster file; `None`: the client library's default
    /// (`FDB_CLUSTER_FILE`, then `/etc/foundationdb/fdb.cluster`).
    pub fdb_cluster_file: Option<PathBuf>,
    /// Outstanding FoundationDB watches this node may hold (one per account with a push
    /// listener, plus one per actor queue); FoundationDB's own default is 10,000.
    pub fdb_max_watches: u32,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            backend: StoreBackendKind::Embedded,
            cache_size_mb: (crate::store::embedded::DEFAULT_CACHE_BYTES >> 20) as u64,
            fdb_cluster_file: None,
            fdb_max_watches: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackendKind {
    /// redb in `server.data_dir`: one process, zero setup.
    #[default]
    Embedded,
    /// A FoundationDB 7.3 cluster (needs a build with `--features foundationdb`).
    Foundationdb,
}

/// The RFC 8620 §2 limits, in snake case (the session shows them in camel case).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JmapConfig {
    pub max_size_upload: u64,
    pub max_concurrent_upload: u64,
    pub max_size_request: u64,
    pub max_concurrent_requests: u64,
    pub max_calls_in_request: u64,
    pub max_objects_in_get: u64,
    pub max_objects_in_set: u64,
}

impl Default for JmapConfig {
    fn default() -> JmapConfig {
        let limits = CoreLimits::default();
        JmapConfig {
            max_size_upload: limits.max_size_upload,
            max_concurrent_upload: limits.max_concurrent_upload,
            max_size_request: limits.max_size_request,
            max_concurrent_requests: limits.max_concurrent_requests,
            max_calls_in_request: limits.max_calls_in_request,
            max_objects_in_get: limits.max_objects_in_get,
            max_objects_in_set: limits.max_objects_in_set,
        }
    }
}

impl JmapConfig {
    pub fn core_limits(&self) -> CoreLimits {
        CoreLimits {
            max_size_upload: self.max_size_upload,
            max_concurrent_upload: self.max_concurrent_upload,
            max_size_request: self.max_size_request,
            max_concurrent_requests: self.max_concurrent_requests,
            max_calls_in_request: self.max_calls_in_request,
            max_objects_in_get: self.max_objects_in_get,
            max_objects_in_set: self.max_objects_in_set,
            ..CoreLimits::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub failed_login_burst: u32,
    pub failed_login_refill_seconds: u64,
    pub failed_login_account_burst: u32,
    pub failed_login_account_refill_seconds: u64,
    pub failed_login_max_delay_seconds: u64,
    pub max_concurrent_password_checks: usize,
    pub credential_cache_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            failed_login_burst: 10,
            failed_login_refill_seconds: 6,
            failed_login_account_burst: 10,
            failed_login_account_refill_seconds: 10,
            failed_login_max_delay_seconds: 10,
            max_concurrent_password_checks: 4,
            credential_cache_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    pub allow_credentials: bool,
    pub max_age_seconds: u64,
}

impl Default for CorsConfig {
    fn default() -> CorsConfig {
        CorsConfig {
            allowed_origins: vec!["*".to_owned()],
            allow_credentials: false,
            max_age_seconds: 600,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    pub log_filter: String,
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    pub metrics_interval_seconds: u64,
}

impl Default for TelemetryConfig {
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            service_name: "tern".to_owned(),
            metrics_interval_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    pub addr: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            enabled: true,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

impl Config {
    /// Reads and validates `path`, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            kind: ConfigErrorKind::Read,
            message: format!("cannot read config file {}: {error}", path.display()),
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names it in errors (a file name).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError {
            kind: ConfigErrorKind::Parse,
            message: one_line_parse_error(&error, text, origin),
        })?;
        Ok(config)
    }

    /// Checks what the types cannot: call after command-line overrides are applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.outbound.relay_target().map_err(ConfigError::invalid)?;
        self.smtp
            .validate(self.tls_enabled())
            .map_err(ConfigError::invalid)?;
        self.http.validate().map_err(ConfigError::invalid)?;
        self.cluster.validate().map_err(ConfigError::invalid)?;
        self.quota.limits().map_err(ConfigError::invalid)?;
        if self.cluster.enabled && self.store.backend != StoreBackendKind::Foundationdb {
            return Err(ConfigError::invalid(
                "cluster.enabled needs store.backend = \"foundationdb\" (nodes share one store)",
            ));
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "server.tls_cert is set but server.tls_key is not (TLS needs both)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "server.tls_key is set but server.tls_cert is not (TLS needs both)",
                ));
            }
            _ => {}
        }
        if let Some(base_url) = &self.server.base_url
            && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        {
            return Err(ConfigError::invalid(format!(
                "server.base_url {base_url:?} must start with http:// or https://"
            )));
        }
        let limits = [
            ("jmap.max_size_upload", self.jmap.max_size_upload),
            (
                "jmap.max_concurrent_upload",
                self.jmap.max_concurrent_upload,
            ),
            ("jmap.max_size_request", self.jmap.max_size_request),
            (
                "jmap.max_concurrent_requests",
                self.jmap.max_concurrent_requests,
            ),
            ("jmap.max_calls_in_request", self.jmap.max_calls_in_request),
            ("jmap.max_objects_in_get", self.jmap.max_objects_in_get),
            ("jmap.max_objects_in_set", self.jmap.max_objects_in_set),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::invalid(format!("{name} must be at least 1")));
        }
        if self.auth.failed_login_burst == 0 || self.auth.failed_login_refill_seconds == 0 {
            return Err(ConfigError::invalid(
                "auth.failed_login_burst and auth.failed_login_refill_seconds must be at least 1",
            ));
        }
        if self.auth.failed_login_account_burst == 0
            || self.auth.failed_login_account_refill_seconds == 0
            || self.auth.max_concurrent_password_checks == 0
        {
            return Err(ConfigError::invalid(
                "auth.failed_login_account_burst, auth.failed_login_account_refill_seconds and \
                 auth.max_concurrent_password_checks must be at least 1",
            ));
        }
        if self.cors.allow_credentials && self.cors.allowed_origins.iter().any(|o| o == "*") {
            return Err(ConfigError::invalid(
                "cors.allow_credentials cannot be combined with the \"*\" origin; list the origins",
            ));
        }
        if self.admin.enabled && !self.admin.addr.ip().is_loopback() {
            return Err(ConfigError::invalid(format!(
                "admin.addr {} must be a loopback address",
                self.admin.addr
            )));
        }
        if self.server.memory_budget_mb < 16 {
            return Err(ConfigError::invalid(
                "server.memory_budget_mb must be at least 16",
            ));
        }
        if self.server.blob_gc_interval_seconds == 0 {
            return Err(ConfigError::invalid(
                "server.blob_gc_interval_seconds must be at least 1",
            ));
        }
        if self.telemetry.metrics_interval_seconds == 0 {
            return Err(ConfigError::invalid(
                "telemetry.metrics_interval_seconds must be at least 1",
            ));
        }
        Ok(())
    }

    /// Whether the HTTP listener speaks TLS.
    pub fn tls_enabled(&self) -> bool {
        self.server.tls_cert.is_some() && self.server.tls_key.is_some()
    }
}

/// toml's messages span several lines (a source excerpt); users get `origin:line: message`.
fn one_line_parse_error(error: &toml::de::Error, text: &str, origin: &str) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let section = enclosing_section(text, span.start);
            match section {
                Some(section) => format!("{origin}:{line}: in [{section}]: {message}"),
                None => format!("{origin}:{line}: {message}"),
            }
        }
        None => format!("{origin}: {message}"),
    }
}

/// The `[table]` header above byte `offset`, if any.
fn enclosing_section(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    before.lines().rev().find_map(|line| {
        let trimmed = line.trim();
        let inner = trimmed.strip_prefix('[')?.strip_suffix(']')?;
        Some(inner.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = Config::parse("", "t.toml").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.server.http.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.data_dir, PathBuf::from("./tern-data"));
        config.validate().unwrap();
    }

    /// README.md's "Configuration" block: what it shows as defaults must be the defaults, and
    /// every optional key it shows commented out must be a real key.
    #[test]
    fn readme_configuration_block_is_the_defaults() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("## Configuration").expect("section")..];
        let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("block end")];
        assert_eq!(
            Config::parse(block, "README.md").unwrap(),
            Config::default()
        );
        let uncommented: String = block
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if setting.contains(" = ") => setting,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        Config::parse(&uncommented, "README.md (optional keys set)").unwrap();
    }

    #[test]
    fn every_section_parses() {
        let text = r#"
            [server]
            data_dir = "/var/lib/tern"
            http = "0.0.0.0:443"
            base_url = "https://mail.example"
            tls_cert = "c.pem"
            tls_key = "k.pem"
            demo = true
            shutdown_grace_seconds = 3
            blob_gc_interval_seconds = 60
            fd_reserve = 100
            [http]
            max_connections = 10
            max_connections_per_address = 2
            max_push_connections = 5
            max_push_connections_per_address = 1
            first_byte_timeout_seconds = 1
            header_timeout_seconds = 2
            idle_timeout_seconds = 3
            retry_after_seconds = 4
            [jmap]
            max_size_upload = 1000
            max_concurrent_upload = 2
            max_size_request = 2000
            max_concurrent_requests = 3
            max_calls_in_request = 4
            max_objects_in_get = 5
            max_objects_in_set = 6
            [auth]
            failed_login_burst = 3
            failed_login_refill_seconds = 1
            credential_cache_seconds = 0
            [cors]
            allowed_origins = ["https://app.example"]
            allow_credentials = true
            max_age_seconds = 5
            [telemetry]
            log_format = "json"
            log_filter = "debug"
            otlp_endpoint = "http://127.0.0.1:4318"
            service_name = "t"
            metrics_interval_seconds = 5
            [admin]
            enabled = false
            addr = "127.0.0.1:9999"
        "#;
        let config = Config::parse(text, "t.toml").unwrap();
        config.validate().unwrap();
        assert!(config.tls_enabled());
        assert_eq!(config.jmap.core_limits().max_objects_in_set, 6);
        assert_eq!(config.telemetry.log_format, LogFormat::Json);
        assert_eq!(config.cors.allowed_origins, vec!["https://app.example"]);
        assert_eq!(config.http.deadlines().idle.as_secs(), 3);
        assert_eq!(config.server.fd_reserve, 100);
    }

    #[test]
    fn store_backend_is_chosen_by_name() {
        let text = "[store]\nbackend = \"foundationdb\"\nfdb_cluster_file = \"/etc/fdb.cluster\"\n";
        let config = Config::parse(text, "t.toml").unwrap();
        assert_eq!(config.store.backend, StoreBackendKind::Foundationdb);
        assert_eq!(
            config.store.fdb_cluster_file,
            Some(PathBuf::from("/etc/fdb.cluster"))
        );
        let error = Config::parse("[store]\nbackend = \"sqlite\"\n", "t.toml").unwrap_err();
        assert_eq!(error.kind, ConfigErrorKind::Parse);
        assert!(error.message.contains("sqlite"), "{}", error.message);
    }

    #[cfg(not(feature = "foundationdb"))]
    #[tokio::test]
    async fn a_foundationdb_store_needs_the_feature() {
        let text = "[store]\nbackend = \"foundationdb\"\n";
        let config = Config::parse(text, "t.toml").unwrap();
        let error = crate::server::open_store(&config)
            .await
            .err()
            .expect("refused");
        assert!(
            error.message.contains("--features foundationdb"),
            "{}",
            error.message
        );
    }

    #[test]
    fn unknown_key_is_one_line_naming_key_and_line() {
        let text = "[server]\ndata_dir = \"x\"\nhttp_addr = \"127.0.0.1:1\"\n";
        let error = Config::parse(text, "tern.toml").unwrap_err();
        assert_eq!(error.kind, ConfigErrorKind::Parse);
        assert!(!error.message.contains('\n'), "{}", error.message);
        assert!(error.message.contains("http_addr"), "{}", error.message);
        assert!(
            error.message.starts_with("tern.toml:3:"),
            "{}",
            error.message
        );
        assert!(error.message.contains("[server]"), "{}", error.message);
    }

    #[test]
    fn unknown_section_is_rejected() {
        let error = Config::parse("[srever]\n", "t.toml").unwrap_err();
        assert!(error.message.contains("srever"), "{}", error.message);
    }

    #[test]
    fn wrong_types_are_rejected() {
        let error = Config::parse("[server]\nhttp = \"not an address\"\n", "t.toml").unwrap_err();
        assert!(error.message.starts_with("t.toml:2:"), "{}", error.message);
        let error = Config::parse("[jmap]\nmax_size_upload = -1\n", "t.toml").unwrap_err();
        assert_eq!(error.kind, ConfigErrorKind::Parse);
        let error = Config::parse("[telemetry]\nlog_format = \"xml\"\n", "t.toml").unwrap_err();
        assert!(error.message.contains("xml"), "{}", error.message);
    }

    #[test]
    fn inconsistent_settings_are_rejected() {
        let mut config = Config::default();
        config.server.tls_cert = Some("c.pem".into());
        assert!(config.validate().unwrap_err().message.contains("tls_key"));
        let mut config = Config::default();
        config.jmap.max_size_request = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .message
                .contains("max_size_request")
        );
        let mut config = Config::default();
        config.cors.allow_credentials = true;
        assert!(config.validate().is_err());
        let mut config = Config::default();
        config.admin.addr = "0.0.0.0:1".parse().unwrap();
        assert!(config.validate().unwrap_err().message.contains("loopback"));
        let mut config = Config::default();
        config.server.base_url = Some("mail.example".into());
        assert!(config.validate().is_err());
        let mut config = Config::default();
        config.http.first_byte_timeout_seconds = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .message
                .contains("first_byte")
        );
        let mut config = Config::default();
        config.smtp.ipv4_network_prefix = 33;
        assert!(config.validate().unwrap_err().message.contains("prefix"));
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let error = Config::load(Some(Path::new("/nonexistent/tern.toml"))).unwrap_err();
        assert_eq!(error.kind, ConfigErrorKind::Read);
        assert!(error.message.contains("/nonexistent/tern.toml"));
    }
}
