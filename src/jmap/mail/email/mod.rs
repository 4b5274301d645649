//! Email (RFC 8621 §4): one file per method; `fields` validates the two mutable properties,
//! `store_new` turns a message blob into an Email for create, import and copy; the stored
//! model lives in `mail::store`.

pub mod changes;
pub mod copy;
pub mod create;
pub mod fields;
pub mod get;
pub mod import;
pub mod parse;
pub mod query;
pub mod query_changes;
pub mod render;
pub mod rights;
pub mod set;
pub mod store_new;
