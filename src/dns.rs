//! DNS for mail: one `mail_auth::MessageAuthenticator` (a hickory resolver inside) shared by
//! SMTP delivery (SPF, DKIM, DMARC) and outbound delivery (MX, A/AAAA, TXT).
//!
//! Config: `[dns] nameserver = "IP:PORT"` (or `tern serve --dns IP:PORT`) sends every query to
//! that one server over UDP, falling back to TCP for truncated answers; this is how tests point
//! the server at a local `dnsmasq`. Unset, the system configuration (`/etc/resolv.conf`) is
//! used.
//!
//! Caching: hickory caches answers by their TTL (and NXDOMAIN at least
//! `negative_ttl_seconds`, since a local server may answer without an SOA); on top, [`DnsCache`]
//! keeps the parsed SPF/DKIM/DMARC records for mail-auth, so mail from one sender domain or IP
//! costs one lookup and one parse per TTL rather than per message.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::{MX, MessageAuthenticator, Parameters, RecordSet, ResolverCache, Txt};
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
    /// The least time a "no such name / no records" answer is cached (its SOA may say longer).
    pub negative_ttl_seconds: u64,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            nameserver: None,
            timeout_ms: 5_000,
            attempts: 2,
            negative_ttl_seconds: 30,
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
    options.negative_min_ttl = Some(Duration::from_secs(config.negative_ttl_seconds));
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

/// Answers kept at most this long, whatever their TTL says.
const MAX_CACHED_TTL: Duration = Duration::from_secs(3600);
/// Entries per record type; past it, expired entries are dropped, then the oldest half.
const CACHE_ENTRIES: usize = 4096;

/// A TTL-bounded map from a DNS name (or address) to a parsed answer, shared by every
/// delivery: SPF, DKIM and DMARC of mail from one sender domain or IP ask DNS once per TTL
/// instead of once per message (and the records are parsed once).
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    fn new() -> TtlCache<K, V> {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries held now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        let mut entries = self.lock();
        let (value, valid_until) = entries.get(name)?.clone();
        if valid_until > now {
            return Some(value);
        }
        entries.remove(name);
        None
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(name).map(|(value, _)| value)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let now = Instant::now();
        let valid_until = valid_until.min(now + MAX_CACHED_TTL);
        if valid_until <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= CACHE_ENTRIES {
                // Keep the half that lives longest; an evicted name is simply asked again.
                let mut deadlines: Vec<Instant> =
                    entries.values().map(|(_, until)| *until).collect();
                deadlines.sort_unstable();
                let cut = deadlines[deadlines.len() / 2];
                entries.retain(|_, (_, until)| *until > cut);
            }
        }
        entries.insert(key, (value, valid_until));
    }
}

/// The answer caches of SPF, DKIM and DMARC verification (mail-auth's `Parameters` caches).
pub struct DnsCache {
    pub txt: TtlCache<Box<str>, Txt>,
    pub mx: TtlCache<Box<str>, RecordSet<MX>>,
    pub ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    pub ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    pub ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
}

impl Default for DnsCache {
    fn default() -> DnsCache {
        DnsCache {
            txt: TtlCache::new(),
            mx: TtlCache::new(),
            ipv4: TtlCache::new(),
            ipv6: TtlCache::new(),
            ptr: TtlCache::new(),
        }
    }
}

/// mail-auth verification parameters with every cache of `cache` attached.
pub type CachedParameters<'x, P> = Parameters<
    'x,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

impl DnsCache {
    /// `params` with this cache attached.
    pub fn parameters<'x, P>(&'x self, params: P) -> CachedParameters<'x, P> {
        Parameters {
            params,
            cache_txt: Some(&self.txt),
            cache_mx: Some(&self.mx),
            cache_ptr: Some(&self.ptr),
            cache_ipv4: Some(&self.ipv4),
            cache_ipv6: Some(&self.ipv6),
        }
    }
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

    #[test]
    fn cached_answers_expire_and_the_cache_stays_bounded() {
        let cache: TtlCache<Box<str>, u32> = TtlCache::new();
        let now = Instant::now();
        cache.insert("a.example.".into(), 1, now + Duration::from_secs(60));
        cache.insert("gone.example.".into(), 2, now);
        assert_eq!(cache.get("a.example."), Some(1));
        assert_eq!(
            cache.get("gone.example."),
            None,
            "an expired answer is not served"
        );
        // A TTL beyond the cap is cut to it.
        cache.insert(
            "far.example.".into(),
            3,
            now + Duration::from_secs(86_400 * 365),
        );
        let (_, until) = cache.lock().get("far.example.").copied().expect("kept");
        assert!(until <= Instant::now() + MAX_CACHED_TTL);
        for index in 0..(CACHE_ENTRIES * 2) {
            let ttl = Duration::from_secs(10 + index as u64);
            cache.insert(format!("n{index}.example.").into(), 0, now + ttl);
        }
        assert!(cache.len() <= CACHE_ENTRIES, "{} entries", cache.len());
        // The longest-lived answers survive an eviction.
        let last = format!("n{}.example.", CACHE_ENTRIES * 2 - 1);
        assert_eq!(cache.get(last.as_str()), Some(0));
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
