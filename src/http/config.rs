//! The `[http]` section: connection limits and deadlines of the JMAP listener (the admin
//! endpoint has its own, fixed, small ones). Every connection holds a file descriptor, so the
//! caps are also fitted under the process's descriptor limit at start-up
//! (`limits::descriptors`).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Open connections over the JMAP listener (push connections included); more are refused
    /// with `503` and `Retry-After`. The last tenth is kept for client addresses that hold
    /// fewer than four connections (fair share).
    pub max_connections: usize,
    /// Open connections from one client address; more get `429` and `Retry-After`.
    pub max_connections_per_address: usize,
    /// WebSocket and EventSource connections (long-lived by design, so exempt from the idle
    /// timeout) over the listener, and ...
    pub max_push_connections: usize,
    /// ... from one client address; more get `429`/`503` with `Retry-After`.
    pub max_push_connections_per_address: usize,
    /// A new connection must send its first byte within this time, or it is closed.
    pub first_byte_timeout_seconds: u64,
    /// A request head (HTTP/1 headers, or an HTTP/2 request) must arrive whole within this
    /// time of its first byte, however it trickles (slowloris).
    pub header_timeout_seconds: u64,
    /// A keep-alive connection with no request in flight is closed after this time.
    pub idle_timeout_seconds: u64,
    /// What `Retry-After` says when a connection is refused.
    pub retry_after_seconds: u64,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_connections: 4096,
            max_connections_per_address: 256,
            max_push_connections: 2048,
            max_push_connections_per_address: 192,
            first_byte_timeout_seconds: 10,
            header_timeout_seconds: 20,
            idle_timeout_seconds: 60,
            retry_after_seconds: 5,
        }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("http.max_connections", self.max_connections as u64),
            (
                "http.max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            (
                "http.max_push_connections",
                self.max_push_connections as u64,
            ),
            (
                "http.max_push_connections_per_address",
                self.max_push_connections_per_address as u64,
            ),
            (
                "http.first_byte_timeout_seconds",
                self.first_byte_timeout_seconds,
            ),
            ("http.header_timeout_seconds", self.header_timeout_seconds),
            ("http.idle_timeout_seconds", self.idle_timeout_seconds),
        ];
        match checks.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(format!("{name} must be at least 1")),
            None => Ok(()),
        }
    }

    /// The deadlines the listener enforces.
    pub fn deadlines(&self) -> super::connection::Deadlines {
        super::connection::Deadlines {
            first_byte: Duration::from_secs(self.first_byte_timeout_seconds),
            header: Duration::from_secs(self.header_timeout_seconds),
            idle: Duration::from_secs(self.idle_timeout_seconds),
        }
    }
}
