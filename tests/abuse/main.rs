//! The abuse suite (issue 13), in its bounded form: every attack that once took the server
//! down — heavy requests, idle and trickling connections, password guessing, WebSocket
//! misuse — run against a real server, each asserting that a normal client is still served
//! within a bound and that memory stays under the configured budget. The longer form is
//! `bench abuse` (examples/bench).

#[path = "../common/mod.rs"]
mod common;

#[path = "../smtp_in_common/mod.rs"]
mod smtp_in_common;

/// The pathological messages, shared with `bench abuse`.
#[path = "../../examples/bench/abuse/messages.rs"]
mod messages;

mod connections;
mod heavy_request;
mod logins;
mod smtp_sessions;
mod websocket;
