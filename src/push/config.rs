//! The `[push]` section of the configuration: WebSocket, EventSource and Web Push settings.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// WebSocket: a Ping is sent this often; it keeps NATs open and detects dead peers.
    pub websocket_ping_seconds: u64,
    /// WebSocket: a peer that sent nothing (not even a Pong) for this long is closed.
    pub websocket_idle_timeout_seconds: u64,
    /// WebSocket: a peer that does not take a message for this long is closed (a stalled
    /// reader must not hold server memory forever).
    pub websocket_send_timeout_seconds: u64,
    /// WebSocket: requests one connection may have in flight; more get a `limit` error.
    /// 0 means `jmap.max_concurrent_requests`.
    pub websocket_max_in_flight: u64,
    /// EventSource: the smallest `ping` interval honoured (RFC 8620 §7.3 lets the server
    /// raise it).
    pub eventsource_min_ping_seconds: u64,
    /// EventSource: the largest `ping` interval honoured.
    pub eventsource_max_ping_seconds: u64,
    /// PushSubscription: `expires` is clamped to at most this far in the future
    /// (RFC 8620 §7.2.2).
    pub subscription_max_expiry_days: u64,
    /// Web Push: allow `http://` push URLs (local test receivers only; push services use
    /// https, and plain URLs make the server an open relay onto internal networks).
    pub allow_insecure_push_urls: bool,
    /// Web Push: the VAPID `sub` contact (RFC 8292 §2.1), a `mailto:` or `https:` URI.
    pub vapid_subject: String,
    /// Web Push: attempts per message before giving up (429, 5xx and network errors).
    pub web_push_attempts: u32,
    /// Web Push: the first retry waits this long; each next one twice as long.
    pub web_push_retry_base_ms: u64,
}

impl Default for PushConfig {
    fn default() -> PushConfig {
        PushConfig {
            websocket_ping_seconds: 30,
            websocket_idle_timeout_seconds: 90,
            websocket_send_timeout_seconds: 60,
            websocket_max_in_flight: 0,
            eventsource_min_ping_seconds: 5,
            eventsource_max_ping_seconds: 3600,
            subscription_max_expiry_days: 7,
            allow_insecure_push_urls: false,
            vapid_subject: "mailto:postmaster@localhost".to_owned(),
            web_push_attempts: 4,
            web_push_retry_base_ms: 2_000,
        }
    }
}

/// What the JMAP methods and the session need of the push settings (carried into the engine
/// with the session URLs; see `jmap::session::SessionUrls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPushSettings {
    /// The VAPID public key, base64url (`applicationServerKey`); `None` before start-up
    /// loaded it (engines built by unit tests).
    pub vapid_public_key: Option<String>,
    pub max_expiry_seconds: i64,
    pub allow_insecure_push_urls: bool,
}

impl Default for WebPushSettings {
    fn default() -> WebPushSettings {
        let config = PushConfig::default();
        WebPushSettings {
            vapid_public_key: None,
            max_expiry_seconds: i64::try_from(config.subscription_max_expiry_days * 86_400)
                .unwrap_or(i64::MAX),
            allow_insecure_push_urls: config.allow_insecure_push_urls,
        }
    }
}

impl WebPushSettings {
    pub fn new(config: &PushConfig, vapid_public_key: String) -> WebPushSettings {
        WebPushSettings {
            vapid_public_key: Some(vapid_public_key),
            max_expiry_seconds: i64::try_from(config.subscription_max_expiry_days.max(1) * 86_400)
                .unwrap_or(i64::MAX),
            allow_insecure_push_urls: config.allow_insecure_push_urls,
        }
    }
}
