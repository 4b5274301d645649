//! Sending mail: the durable outbound queue ([`queue`]), the clock its retry timeline runs on
//! ([`clock`]), and the actor that delivers queued messages to local accounts (through the
//! SMTP ingress queue) or to remote MX hosts / a smarthost over SMTP. Layout and behaviour:
//! `schema/outbound.md`.

pub mod actor;
pub mod admin;
mod attempt;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dkim;
mod dsn;
mod outcome;
pub mod queue;
pub mod rate;
pub mod smtp_client;
pub mod suite;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Directory;
use crate::config::{Config, StoreBackendKind};
use crate::store::Store;

/// Starts the outbound actor as `tern serve` runs it (system clock, `[outbound]`, `[dns]`);
/// `None` when `outbound.enabled` is off.
pub async fn start_for_server(
    config: &Config,
    store: &Store,
    directory: &Directory,
    default_hostname: &str,
) -> Result<Option<actor::OutboundHandle>, String> {
    if !config.outbound.enabled {
        return Ok(None);
    }
    let dns = crate::dns::build_or_fallback(&config.dns).map_err(|error| error.to_string())?;
    let transport = transport_settings(&config.outbound, Some(dns), default_hostname)?;
    let context = actor::Context::new(
        store.clone(),
        directory.clone(),
        Arc::new(clock::SystemClock),
        transport,
        config.outbound.clone(),
    );
    let single_process = config.store.backend == StoreBackendKind::Embedded;
    actor::start(context, single_process)
        .await
        .map(Some)
        .map_err(|error| format!("outbound queue: {error}"))
}

/// The transport settings `[outbound]` describes.
pub fn transport_settings(
    config: &config::OutboundConfig,
    resolver: Option<crate::dns::Resolver>,
    default_hostname: &str,
) -> Result<transport::TransportSettings, String> {
    Ok(transport::TransportSettings {
        helo_name: config
            .hostname
            .clone()
            .unwrap_or_else(|| default_hostname.to_owned()),
        relay: config.relay_target()?,
        mx_port: config.mx_port,
        connect_timeout: Duration::from_secs(config.connect_timeout_seconds.max(1)),
        io_timeout: Duration::from_secs(config.io_timeout_seconds.max(1)),
        starttls: config.starttls,
        resolver,
    })
}
