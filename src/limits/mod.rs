//! Limits shared by every listener (HTTP, admin, SMTP), below them so that none owns them:
//!
//! - [`connections`]: concurrent connections per client address, per client network (an IPv4
//!   /24 or IPv6 /64 by default) and in total, with a fair-share reserve so that clients
//!   already holding connections cannot take the last slots from a new one;
//! - [`descriptors`]: the process's file descriptor limit, raised to the hard limit at
//!   start-up, and the connection budgets that fit under it with a reserve for everything
//!   else (store, search index, outbound mail, the admin endpoint);
//! - [`memory`]: freed heap memory given back to the system after large transient uses;
//! - [`log`]: log lines that an attacker can make repeat (refused connections, `accept`
//!   failures) are rate-limited, with a count of what was left out.

pub mod connections;
pub mod descriptors;
pub mod log;
pub mod memory;

pub use connections::{ConnectionLimiter, ConnectionLimits, ConnectionPermit, Refusal};
pub use log::LogThrottle;
