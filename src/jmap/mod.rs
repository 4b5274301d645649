//! The JMAP request engine (RFC 8620): request parsing and validation, result references,
//! the one dispatch table, method errors as values, and the generic /get, /set, /changes,
//! /query and /queryChanges machinery that object types plug into.
//!
//! How HTTP uses it: `Engine::new` once at start-up; for `POST apiUrl`,
//! `engine.handle_api(&principal, &body).await` gives either the Response object (200,
//! `application/json`) or a [`ProblemDetails`] (status `problem.status`, content type
//! [`ProblemDetails::CONTENT_TYPE`], body `serde_json::to_vec(&problem)`); for the session
//! resource, `engine.session(&principal)`.
//!
//! Invariants:
//! - method calls run in order; each yields exactly one response (plus any implicit ones),
//!   and an error is a response, never an abort of the request (RFC 8620 §3.6.2);
//! - a method runs only if its capability is in `using`; an account is reachable only through
//!   [`context::CallContext::authorize`].

pub mod blob;
pub mod context;
pub mod core;
pub mod dispatch;
pub mod error;
pub mod generic;
pub mod mail;
pub mod push_subscription;
pub mod reference;
pub mod request;
pub mod session;
pub mod types;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod spec_tests;
#[cfg(test)]
pub(crate) mod test_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument;

pub use error::{MethodError, MethodErrorType, ProblemDetails, SetError, SetErrorType};
pub use session::SessionUrls;

use context::{Arguments, CallContext};
use dispatch::MethodEntry;
use reference::{MethodResponse, resolve_result_references};
use request::Request;

use crate::auth::Principal;
use crate::store::Store;
use crate::store::blob::BlobStore;

/// The limits of the core capability (RFC 8620 §2), advertised in the session. HTTP enforces
/// the size and concurrency ones; the engine enforces calls and objects per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreLimits {
    pub max_size_upload: u64,
    pub max_concurrent_upload: u64,
    pub max_size_request: u64,
    pub max_concurrent_requests: u64,
    pub max_calls_in_request: u64,
    pub max_objects_in_get: u64,
    pub max_objects_in_set: u64,
    pub collation_algorithms: Vec<String>,
}

impl Default for CoreLimits {
    fn default() -> CoreLimits {
        CoreLimits {
            max_size_upload: 50_000_000,
            max_concurrent_upload: 4,
            max_size_request: 10_000_000,
            max_concurrent_requests: 8,
            max_calls_in_request: 64,
            max_objects_in_get: 1000,
            max_objects_in_set: 1000,
            collation_algorithms: vec![
                "i;ascii-numeric".to_owned(),
                "i;ascii-casemap".to_owned(),
                "i;unicode-casemap".to_owned(),
            ],
        }
    }
}

/// Called after every method call with its name, duration and whether it answered an error;
/// telemetry records the per-method count and latency histogram from it.
pub type MethodObserver = Arc<dyn Fn(&str, Duration, bool) + Send + Sync>;

/// State shared by every request: read-only after start-up.
pub struct EngineShared {
    pub store: Store,
    pub blobs: BlobStore,
    pub limits: CoreLimits,
    pub urls: SessionUrls,
    methods: HashMap<&'static str, MethodEntry>,
    /// Every capability a client may put in `using` (those of the dispatch table).
    capabilities: Vec<&'static str>,
    /// The session-state digest of everything but the principal (see `session.rs`).
    session_digest: sha2::Sha256,
    observer: Option<MethodObserver>,
    /// The full-text index, once the server started it (absent: text filters scan the store).
    search: std::sync::OnceLock<crate::search::SearchHandle>,
}

impl EngineShared {
    pub fn search(&self) -> Option<&crate::search::SearchHandle> {
        self.search.get()
    }
}

/// The JMAP engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<EngineShared>,
}

impl Engine {
    pub fn new(store: Store, limits: CoreLimits, urls: SessionUrls) -> Engine {
        Engine::with_methods(store, limits, urls, dispatch::METHODS)
    }

    /// An engine with another method table (tests add test-only object types).
    pub fn with_methods(
        store: Store,
        limits: CoreLimits,
        urls: SessionUrls,
        table: &[MethodEntry],
    ) -> Engine {
        let mut methods = HashMap::with_capacity(table.len());
        let mut capabilities = Vec::new();
        for entry in table {
            let previous = methods.insert(entry.name, *entry);
            debug_assert!(previous.is_none(), "method {} listed twice", entry.name);
            if !capabilities.contains(&entry.capability) {
                capabilities.push(entry.capability);
            }
        }
        let limits_digest_input = format!(
            "{}\0{:?}",
            serde_json::to_string(&limits).unwrap_or_default(),
            urls
        );
        let session_digest = session::shared_digest(&capabilities, &limits_digest_input);
        Engine {
            shared: Arc::new(EngineShared {
                session_digest,
                blobs: BlobStore::new(store.clone()),
                store,
                limits,
                urls,
                methods,
                capabilities,
                observer: None,
                search: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Installs the per-method observer (call before cloning the engine).
    pub fn with_method_observer(mut self, observer: MethodObserver) -> Engine {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.observer = Some(observer),
            None => tracing::warn!("method observer installed after the engine was shared"),
        }
        self
    }

    /// Connects the full-text index (once; later calls are ignored).
    pub fn install_search(&self, search: crate::search::SearchHandle) {
        let _ = self.shared.search.set(search);
    }

    pub fn search(&self) -> Option<&crate::search::SearchHandle> {
        self.shared.search.get()
    }

    pub fn limits(&self) -> &CoreLimits {
        &self.shared.limits
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The blob store the engine's methods use (one per store; cheap to clone).
    pub fn blobs(&self) -> &BlobStore {
        &self.shared.blobs
    }

    /// The capabilities the server supports (the keys of the session's `capabilities`).
    pub fn capabilities(&self) -> &[&'static str] {
        &self.shared.capabilities
    }

    /// The session resource (RFC 8620 §2) for `principal`.
    pub fn session(&self, principal: &Principal) -> Value {
        session::session_object(&self.shared, principal)
    }

    /// Runs one API request (RFC 8620 §3.3–§3.4). `Err` is a request-level error; method
    /// errors are inside the `Ok` response.
    pub async fn handle_api(
        &self,
        principal: &Principal,
        body: &[u8],
    ) -> Result<Value, ProblemDetails> {
        let max_calls =
            usize::try_from(self.shared.limits.max_calls_in_request).unwrap_or(usize::MAX);
        let request = Request::parse(body, max_calls)?;
        self.handle_request(principal, request).await
    }

    /// Runs an already parsed request (the WebSocket transport parses its own frames).
    pub async fn handle_request(
        &self,
        principal: &Principal,
        request: Request,
    ) -> Result<Value, ProblemDetails> {
        // RFC 8620 §3.6.1: every capability in `using` must be known.
        if let Some(unknown) = request
            .using
            .iter()
            .find(|capability| !self.shared.capabilities.contains(&capability.as_str()))
        {
            return Err(ProblemDetails::unknown_capability(unknown));
        }
        let return_created_ids = request.created_ids.is_some();
        let mut context = CallContext {
            engine: &self.shared,
            principal,
            created_ids: request.created_ids.unwrap_or_default(),
            implicit_responses: Vec::new(),
        };
        let mut responses: Vec<MethodResponse> = Vec::with_capacity(request.method_calls.len());
        for invocation in request.method_calls {
            let outcome = self
                .run_call(
                    &mut context,
                    &request.using,
                    &invocation.name,
                    &invocation.call_id,
                    invocation.arguments,
                    &responses,
                )
                .await;
            let (name, arguments) = match outcome {
                Ok(arguments) => (invocation.name, arguments),
                Err(error) => ("error".to_owned(), error.to_json()),
            };
            // The method's own response precedes its implicit ones (RFC 8620 §5.4).
            let implicit = std::mem::take(&mut context.implicit_responses);
            let call_id = invocation.call_id;
            let implicit_responses: Vec<MethodResponse> = implicit
                .into_iter()
                .map(|(implicit_name, implicit_arguments)| MethodResponse {
                    name: implicit_name,
                    arguments: implicit_arguments,
                    call_id: call_id.clone(),
                })
                .collect();
            responses.push(MethodResponse {
                name,
                arguments,
                call_id,
            });
            responses.extend(implicit_responses);
        }
        let mut response = Map::with_capacity(3);
        response.insert(
            "methodResponses".to_owned(),
            Value::Array(
                responses
                    .into_iter()
                    .map(MethodResponse::into_json)
                    .collect(),
            ),
        );
        if return_created_ids {
            let created: Map<String, Value> = context
                .created_ids
                .into_iter()
                .map(|(creation_id, id)| {
                    (creation_id.into_string(), Value::String(id.into_string()))
                })
                .collect();
            response.insert("createdIds".to_owned(), Value::Object(created));
        }
        response.insert(
            "sessionState".to_owned(),
            Value::String(session::session_state(&self.shared, principal)),
        );
        Ok(Value::Object(response))
    }

    async fn run_call(
        &self,
        context: &mut CallContext<'_>,
        using: &[String],
        name: &str,
        call_id: &str,
        mut arguments: Map<String, Value>,
        earlier: &[MethodResponse],
    ) -> Result<Value, MethodError> {
        // RFC 8620 §3.6.2: a method whose capability the client did not ask for is unknown.
        let entry = self
            .shared
            .methods
            .get(name)
            .filter(|entry| {
                using
                    .iter()
                    .any(|capability| capability == entry.capability)
            })
            .ok_or_else(|| MethodError::unknown_method(name))?;
        resolve_result_references(&mut arguments, earlier)?;
        let span = tracing::debug_span!(
            "jmap.method",
            method = entry.name,
            call_id,
            account_id = context.principal.account_id,
            error = tracing::field::Empty,
        );
        let started = Instant::now();
        let outcome = (entry.handler)(context, Arguments::new(arguments))
            .instrument(span.clone())
            .await;
        if let Err(error) = &outcome {
            span.record("error", error.kind.name());
        }
        if let Some(observer) = &self.shared.observer {
            observer(entry.name, started.elapsed(), outcome.is_err());
        }
        outcome
    }
}
