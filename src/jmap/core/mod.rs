//! Methods of the Core data type (RFC 8620 §4).

pub mod echo;
