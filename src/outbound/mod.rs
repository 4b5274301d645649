//! Sending mail: the durable outbound queue ([`queue`]), the clock its retry timeline runs on
//! ([`clock`]), and the actor that delivers queued messages to local accounts (through the
//! SMTP ingress queue) or to remote MX hosts / a smarthost over SMTP. Layout and behaviour:
//! `schema/outbound.md`.

pub mod clock;
pub mod config;
pub mod queue;
pub mod rate;
pub mod smtp_client;
pub mod suite;
pub mod transport;
