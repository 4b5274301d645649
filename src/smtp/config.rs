//! The `[smtp]` section of the configuration: the listeners that receive mail and their
//! limits. Defaults follow RFC 5321 §4.5.3 (timeouts) and common practice (sizes).

use std::net::SocketAddr;

use serde::Deserialize;

/// The MX listener's default address (port 25 in production).
pub const DEFAULT_MX_LISTEN: &str = "127.0.0.1:2525";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The MX listener (`tern serve --smtp ADDR`); `None` (or `listen = ""`) disables it.
    /// When the address is the default and already taken, the server starts without MX and
    /// logs a warning; a configured address that is taken is an error.
    #[serde(deserialize_with = "optional_address")]
    pub listen: Option<SocketAddr>,
    /// The submission listener with STARTTLS, port 587 style (`--submission ADDR`).
    #[serde(deserialize_with = "optional_address")]
    pub submission: Option<SocketAddr>,
    /// The submission listener with implicit TLS, port 465 style (`--submissions ADDR`).
    #[serde(deserialize_with = "optional_address")]
    pub submissions: Option<SocketAddr>,
    /// The name in the greeting and EHLO reply; default: the host of `server.base_url`, or
    /// `localhost`.
    pub hostname: Option<String>,
    /// SIZE (RFC 1870): larger messages get `552 5.3.4`.
    pub max_message_size: u64,
    /// Accepted recipients per message; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Open SMTP connections over all listeners; more get `421 4.7.0` and are closed. The
    /// last tenth is kept for client networks that hold fewer than four sessions (fair share).
    pub max_connections: usize,
    /// Open sessions from one client address; more get `421 4.7.0`.
    pub max_connections_per_address: usize,
    /// Open sessions from one client network (see the prefixes); more get `421 4.7.0`.
    pub max_connections_per_network: usize,
    /// Leading bits of an IPv4 client address that name its network (24: a /24).
    pub ipv4_network_prefix: u8,
    /// Leading bits of an IPv6 client address that name its network (64: a /64).
    pub ipv6_network_prefix: u8,
    /// New connections per client address before throttling (a token bucket) ...
    pub connection_rate_burst: u32,
    /// ... refilled by one every this many milliseconds.
    pub connection_rate_refill_ms: u64,
    /// RFC 5321 §4.5.3.2.7: waiting for the next command (at least 5 minutes). A deadline
    /// for the whole command from the previous reply: bytes trickling in do not extend it.
    pub command_timeout_seconds: u64,
    /// RFC 5321 §4.5.3.2.5/6: waiting for the next block of message data (3 minutes); also
    /// the grace of the whole-DATA deadline (see `min_data_rate`).
    pub data_timeout_seconds: u64,
    /// Bytes per second a message transfer (DATA, or one BDAT chunk) must average: it must
    /// end within `data_timeout_seconds` plus one second per `min_data_rate` bytes received.
    /// RFC 5321 §4.5.3.2's timeouts are minimums for the client's benefit, not a licence to
    /// trickle one byte at a time.
    pub min_data_rate: u64,
    /// Error replies per session before it is closed with `421 4.7.0`.
    pub max_errors: usize,
    /// Allow AUTH without TLS on the submission listeners for loopback clients (local tools
    /// and tests). Never for remote clients.
    pub loopback_auth_without_tls: bool,
    /// The address whose account receives mail for `postmaster` (RFC 5321 §4.5.1) when no
    /// account has the address `postmaster@<domain>`; unset: the domain's first account.
    pub postmaster: Option<String>,
}

fn optional_address<'de, D>(deserializer: D) -> Result<Option<SocketAddr>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse()
        .map(Some)
        .map_err(|error| serde::de::Error::custom(format!("{text:?}: {error}")))
}

impl Default for SmtpConfig {
    fn default() -> SmtpConfig {
        SmtpConfig {
            listen: DEFAULT_MX_LISTEN.parse().ok(),
            submission: None,
            submissions: None,
            hostname: None,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 1000,
            max_connections_per_address: 20,
            max_connections_per_network: 100,
            ipv4_network_prefix: 24,
            ipv6_network_prefix: 64,
            connection_rate_burst: 60,
            connection_rate_refill_ms: 100,
            command_timeout_seconds: 300,
            data_timeout_seconds: 180,
            min_data_rate: 1024,
            max_errors: 20,
            loopback_auth_without_tls: true,
            postmaster: None,
        }
    }
}

impl SmtpConfig {
    /// Checks what the types cannot; `tls` says whether a certificate is configured.
    pub fn validate(&self, tls: bool) -> Result<(), String> {
        if (self.submission.is_some() || self.submissions.is_some()) && !tls {
            if self.submissions.is_some() {
                return Err(
                    "smtp.submissions (implicit TLS) needs server.tls_cert and server.tls_key"
                        .to_owned(),
                );
            }
            if !self.loopback_auth_without_tls
                || !self
                    .submission
                    .is_some_and(|address| address.ip().is_loopback())
            {
                return Err(
                    "smtp.submission needs server.tls_cert and server.tls_key (AUTH needs TLS) \
                     unless it listens on loopback with smtp.loopback_auth_without_tls"
                        .to_owned(),
                );
            }
        }
        let checks = [
            ("smtp.max_message_size", self.max_message_size),
            ("smtp.max_recipients", self.max_recipients as u64),
            ("smtp.max_connections", self.max_connections as u64),
            (
                "smtp.max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            (
                "smtp.max_connections_per_network",
                self.max_connections_per_network as u64,
            ),
            ("smtp.min_data_rate", self.min_data_rate),
            (
                "smtp.connection_rate_burst",
                u64::from(self.connection_rate_burst),
            ),
            (
                "smtp.connection_rate_refill_ms",
                self.connection_rate_refill_ms,
            ),
            ("smtp.command_timeout_seconds", self.command_timeout_seconds),
            ("smtp.data_timeout_seconds", self.data_timeout_seconds),
            ("smtp.max_errors", self.max_errors as u64),
        ];
        if let Some((name, _)) = checks.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.ipv4_network_prefix > 32 || self.ipv6_network_prefix > 128 {
            return Err(
                "smtp.ipv4_network_prefix is at most 32 and smtp.ipv6_network_prefix at most 128"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_may_be_empty_to_disable() {
        let config: SmtpConfig =
            toml::from_str("listen = \"\"\nsubmission = \"127.0.0.1:1587\"\n").unwrap();
        assert_eq!(config.listen, None);
        assert_eq!(config.submission, "127.0.0.1:1587".parse().ok());
        assert_eq!(SmtpConfig::default().listen, DEFAULT_MX_LISTEN.parse().ok());
        assert!(
            config.validate(false).is_ok(),
            "loopback submission without TLS"
        );
        let remote: SmtpConfig = toml::from_str("submission = \"0.0.0.0:587\"\n").unwrap();
        assert!(remote.validate(false).is_err());
        assert!(remote.validate(true).is_ok());
        assert!(toml::from_str::<SmtpConfig>("listen = \"nowhere\"\n").is_err());
        assert!(toml::from_str::<SmtpConfig>("bogus = 1\n").is_err());
    }
}
