//! Push: telling connected clients that an account changed, within milliseconds of the
//! commit, whoever the writer was (JMAP, SMTP delivery, a background task).
//!
//! How it works: [`hub::PushHub`] keeps one watcher task per account that has listeners. The
//! watcher waits on the store's account watch (`store::commit::watch_account`: in-process on
//! the embedded backend, a FoundationDB watch across nodes), reads every type's state in one
//! snapshot, and publishes the result on a `tokio::sync::watch` channel. Listeners (WebSocket
//! connections, EventSource streams, the Web Push deliverer) each hold a receiver. On
//! FoundationDB, whose watch fires ≈ 10 ms after a commit on an idle cluster, the committing
//! process also pokes the watcher directly ([`hub::PushHub::poke`]) and hints the other nodes
//! (`http::hints`); a poke only makes the watcher read sooner, the read decides.
//!
//! Invariants:
//! - publication never blocks: a watch channel keeps only the latest value, so a slow or
//!   stalled listener is coalesced (it sees the newest states when it next looks) and never
//!   holds up the watcher or other listeners;
//! - the watch is registered before the states are read, so a commit is never missed between
//!   a read and the next wait;
//! - nothing is published before its commit returned (the watch fires after the commit).

pub mod config;
pub mod deliverer;
pub mod hub;
pub mod shared;
pub mod state_change;
pub mod ticket;
pub mod webpush;

pub use config::PushConfig;
pub use hub::{AccountStates, PushHub};
pub use state_change::{PushFilter, PushState};
pub use ticket::TicketStore;
