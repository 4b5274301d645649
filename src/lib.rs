//! Tern: a JMAP mail server. `main.rs` only parses the command line; everything else lives in
//! this library so that tests, examples and the bench tool can start a real server in-process.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod group_cli;
pub mod http;
pub mod jmap;
pub mod limits;
pub mod mail;
pub mod outbound;
pub mod push;
pub mod search;
pub mod server;
pub mod smtp;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod test_random;
