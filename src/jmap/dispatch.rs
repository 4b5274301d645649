//! THE dispatch table: every JMAP method Tern implements, with the capability that must be in
//! `using` for it and the one file that implements it. The session advertises exactly the
//! capabilities listed here; tests check this table against `jmap-spec/methods.json`.

use serde_json::Value;

use super::context::{Arguments, CallContext};
use super::error::MethodError;
use crate::store::BoxFuture;

pub const CAPABILITY_CORE: &str = "urn:ietf:params:jmap:core";

/// What a method returns: its response arguments, or a method error (a response too, never
/// an abort of the request: RFC 8620 §3.6.2).
pub type MethodResult = Result<Value, MethodError>;

/// A method implementation. One file per method; each exposes a `handle` of this type.
pub type Handler =
    for<'a, 'r> fn(&'a mut CallContext<'r>, Arguments) -> BoxFuture<'a, MethodResult>;

/// One row of the table.
#[derive(Clone, Copy)]
pub struct MethodEntry {
    pub name: &'static str,
    pub capability: &'static str,
    pub handler: Handler,
}

impl std::fmt::Debug for MethodEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodEntry")
            .field("name", &self.name)
            .field("capability", &self.capability)
            .finish()
    }
}

/// Every method. Keep sorted by name.
pub const METHODS: &[MethodEntry] = &[
    MethodEntry {
        name: "Blob/copy",
        capability: CAPABILITY_CORE,
        handler: super::blob::copy::handle,
    },
    MethodEntry {
        name: "Core/echo",
        capability: CAPABILITY_CORE,
        handler: super::core::echo::handle,
    },
];
