//! Methods on blobs (RFC 8620 §6).

pub mod copy;
