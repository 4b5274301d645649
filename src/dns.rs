//! DNS for mail: one `mail_auth::MessageAuthenticator` (a hickory resolver inside) shared by
//! SMTP delivery (SPF, DKIM, DMARC) and outbound delivery (MX, A/AAAA, TXT).
//!
//! Config: `[dns] nameserver = "IP:PORT"` (or `tern serve --dns IP:PORT`) sends every query to
//! that one server over UDP, falling back to TCP for truncated answers; this is how tests point
//! the server at a local `dnsmasq`. Unset, the system configuration (`/etc/resolv.conf`) is
//! used.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use serde::Deserialize;

/// The `[dns]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// The one nameserver to ask; `None`: the system's resolvers.
    pub nameserver: Option<SocketAddr>,
    /// How long one query may take before it is retried or fails.
    pub timeout_ms: u64,
    /// Attempts per query (hickory retries after a timeout).
    pub attempts: usize,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            nameserver: None,
            timeout_ms: 5_000,
            attempts: 2,
        }
    }
}

/// Why the resolver could not be built.
#[derive(Debug, thiserror::Error)]
#[error("dns: {message}")]
pub struct DnsError {
    pub kind: DnsErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsErrorKind {
    /// The system configuration could not be read (no usable `/etc/resolv.conf`).
    SystemConfig,
    /// hickory refused the configuration.
    Resolver,
}

/// The shared resolver handle. Cheap to clone.
pub type Resolver = Arc<MessageAuthenticator>;

/// Builds the resolver `config` describes.
pub fn build(config: &DnsConfig) -> Result<Resolver, DnsError> {
    let (resolver_config, mut options) = match config.nameserver {
        Some(address) => (single_server(address), ResolverOpts::default()),
        None => system_config()?,
    };
    options.timeout = Duration::from_millis(config.timeout_ms.max(1));
    options.attempts = config.attempts.max(1);
    if config.nameserver.is_some() {
        // A configured nameserver is the whole truth (tests rely on it): /etc/hosts is not
        // consulted and nothing else is asked.
        options.use_hosts_file = ResolveHosts::Never;
    }
    MessageAuthenticator::new(resolver_config, options)
        .map(Arc::new)
        .map_err(|error| DnsError {
            kind: DnsErrorKind::Resolver,
            message: error.to_string(),
        })
}

/// Like [`build`], but a missing system configuration falls back to `127.0.0.1:53` with a
/// warning, so that a server without `/etc/resolv.conf` still starts (lookups then fail as
/// temporary errors, which SPF/DKIM/DMARC report as `temperror`).
pub fn build_or_fallback(config: &DnsConfig) -> Result<Resolver, DnsError> {
    match build(config) {
        Err(error) if error.kind == DnsErrorKind::SystemConfig => {
            tracing::warn!(%error, "no system DNS configuration; using 127.0.0.1:53");
            let fallback = DnsConfig {
                nameserver: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 53))),
                ..config.clone()
            };
            build(&fallback)
        }
        other => other,
    }
}

fn single_server(address: SocketAddr) -> ResolverConfig {
    let connection = |protocol| {
        let mut connection = ConnectionConfig::new(protocol);
        connection.port = address.port();
        connection
    };
    let server = NameServerConfig::new(
        address.ip(),
        true,
        vec![
            connection(ProtocolConfig::Udp),
            connection(ProtocolConfig::Tcp),
        ],
    );
    ResolverConfig::from_name_servers(vec![server])
}

fn system_config() -> Result<(ResolverConfig, ResolverOpts), DnsError> {
    mail_auth::hickory_resolver::system_conf::read_system_conf().map_err(|error| DnsError {
        kind: DnsErrorKind::SystemConfig,
        message: format!("reading the system resolver configuration: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_nameserver_is_the_only_one_and_keeps_its_port() {
        let config = single_server("127.0.0.1:5353".parse().unwrap());
        let servers = config.name_servers();
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].ip.to_string(), "127.0.0.1");
        assert!(servers[0].connections.iter().all(|c| c.port == 5353));
        assert_eq!(servers[0].connections.len(), 2);
    }

    #[tokio::test]
    async fn builds_with_a_configured_nameserver() {
        let config = DnsConfig {
            nameserver: Some("127.0.0.1:5353".parse().unwrap()),
            ..DnsConfig::default()
        };
        build(&config).expect("resolver");
    }
}
