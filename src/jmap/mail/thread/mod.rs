//! Thread (RFC 8621 §3): read-only; Threads are made and merged by the Email store
//! (`mail::store::thread`).

pub mod changes;
pub mod get;
