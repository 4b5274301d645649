//! The `[outbound]` settings.

use serde::Deserialize;

/// `[outbound]`: how queued mail leaves the server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Run the outbound actor (tests of other parts may turn it off).
    pub enabled: bool,
    /// `HOST:PORT` of a smarthost (`tern serve --relay`): all non-local mail goes there.
    pub relay: Option<String>,
    /// The EHLO name; default: the host of `server.base_url`, else `localhost`.
    pub hostname: Option<String>,
    /// The port MX hosts are contacted on.
    pub mx_port: u16,
    /// Use STARTTLS when a server offers it (certificates are not checked: opportunistic).
    pub starttls: bool,
    /// Messages being sent at once.
    pub concurrency: usize,
    /// Connections to one destination domain at once.
    pub per_domain_concurrency: usize,
    pub connect_timeout_seconds: u64,
    /// Each read or write of an SMTP session.
    pub io_timeout_seconds: u64,
    /// The first retry after a temporary failure comes this long after it; each next one
    /// doubles, up to `retry_max_seconds`, with ±20 % jitter.
    pub retry_initial_seconds: u64,
    pub retry_max_seconds: u64,
    /// A message still undelivered this long after it was queued bounces (default 5 days).
    pub lifetime_seconds: u64,
    /// A delay notice (RFC 3464, action "delayed") goes to the sender once a message has
    /// waited this long; 0 turns delay notices off.
    pub delay_notice_seconds: u64,
    /// Per-account token bucket of recipients: refill per hour (0: no limit) and capacity.
    pub rate_per_hour: u64,
    pub rate_burst: u64,
    /// How long an attempt's claim lasts; an attempt whose process died is retried after it.
    pub claim_seconds: u64,
    /// Messages bigger than this go to the error queue.
    pub max_message_bytes: u64,
}

impl Default for OutboundConfig {
    fn default() -> OutboundConfig {
        OutboundConfig {
            enabled: true,
            relay: None,
            hostname: None,
            mx_port: 25,
            starttls: true,
            concurrency: 32,
            per_domain_concurrency: 8,
            connect_timeout_seconds: 30,
            io_timeout_seconds: 300,
            retry_initial_seconds: 120,
            retry_max_seconds: 4 * 3600,
            lifetime_seconds: 5 * 24 * 3600,
            delay_notice_seconds: 4 * 3600,
            rate_per_hour: 1_000,
            rate_burst: 200,
            claim_seconds: 900,
            max_message_bytes: 64 << 20,
        }
    }
}

impl OutboundConfig {
    /// The relay as host and port; an error names the bad value.
    pub fn relay_target(&self) -> Result<Option<(String, u16)>, String> {
        let Some(relay) = self.relay.as_deref() else {
            return Ok(None);
        };
        let (host, port) = relay
            .rsplit_once(':')
            .ok_or_else(|| format!("outbound.relay {relay:?} is not HOST:PORT"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("outbound.relay {relay:?} has no valid port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("outbound.relay {relay:?} has no host"));
        }
        Ok(Some((host.to_owned(), port)))
    }
}
