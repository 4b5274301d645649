//! Three Tern nodes on one FoundationDB, as real processes on loopback (issue 14): push
//! across nodes, forwarding to the owner, failover after kill -9, fencing of a paused owner,
//! a FoundationDB restart under load, graceful hand-over, and the operator's commands.
//!
//! Built only with `--features foundationdb`; each test starts its own FoundationDB server
//! (see `harness`) and says loudly when none is installed.
#![cfg(feature = "foundationdb")]

mod conformance;
mod harness;
mod outbound;
mod scenarios;
mod sharing;
mod smtp_burst;
