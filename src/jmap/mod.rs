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
pub mod budget;
pub mod context;
pub mod core;
pub mod dispatch;
pub mod error;
pub mod generic;
pub mod mail;
pub mod mdn;
pub mod principal;
pub mod push_subscription;
pub mod quota;
pub mod reference;
pub mod request;
pub mod response;
pub mod session;
pub mod share_notification;
pub mod sieve;
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

use budget::{MemoryLimits, ResponseBudget, ResponseMeter};
use context::{Arguments, CallContext};
use dispatch::MethodEntry;
use reference::{MethodResponse, resolve_result_references};
use request::Request;
pub use response::ApiResponse;
use response::Spliced;

use crate::auth::Principal;
use crate::auth::directory::principals::groups_of;
use crate::mail::sharing::{self, SharedAccount, Viewer};
use crate::store::blob::BlobStore;
use crate::store::{Store, StoreResult};

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
    /// What `[server] memory_budget_mb` allows requests (see `budget.rs`).
    pub memory: MemoryLimits,
    /// Bytes held by in-flight responses, server-wide.
    response_budget: Arc<ResponseBudget>,
    /// Heavy renders (an Email of many parts) running at once: half the cores, so that the
    /// rest keep answering everyone else while heavy requests queue here.
    pub heavy_renders: tokio::sync::Semaphore,
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
                memory: MemoryLimits::default(),
                response_budget: ResponseBudget::new(MemoryLimits::default().response_budget_bytes),
                heavy_renders: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism()
                        .map_or(1, |cores| (cores.get() / 2).max(1)),
                ),
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

    /// Sets the memory limits (call before cloning the engine).
    pub fn with_memory_limits(mut self, memory: MemoryLimits) -> Engine {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => {
                shared.memory = memory;
                shared.response_budget = ResponseBudget::new(memory.response_budget_bytes);
            }
            None => tracing::warn!("memory limits set after the engine was shared"),
        }
        self
    }

    /// Bytes held by in-flight responses right now, server-wide.
    pub fn response_bytes_held(&self) -> u64 {
        self.shared.response_budget.used()
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

    /// The session resource (RFC 8620 §2) for `principal`, with the accounts shared with them.
    pub async fn session(&self, principal: &Principal) -> StoreResult<Value> {
        let (viewer, shared) = self.access(principal).await?;
        let described = session::describe_shared(&self.shared, &viewer, &shared).await?;
        Ok(session::session_object(
            &self.shared,
            principal,
            &shared,
            &described,
        ))
    }

    /// Who `principal` is for sharing (with their groups), and the accounts shared with them;
    /// one read, at the start of every request.
    pub async fn access(&self, principal: &Principal) -> StoreResult<(Viewer, Vec<SharedAccount>)> {
        let principal_id = principal.account_id;
        self.shared
            .store
            .read(move |tx| {
                Box::pin(async move {
                    let viewer = Viewer {
                        principal_id,
                        groups: groups_of(tx, principal_id).await?,
                    };
                    let shared = sharing::shared_accounts(tx, &viewer).await?;
                    Ok((viewer, shared))
                })
            })
            .await
    }

    /// Who `principal` is for sharing: their id and groups.
    pub async fn viewer(&self, principal: &Principal) -> StoreResult<Viewer> {
        Ok(self.access(principal).await?.0)
    }

    /// Runs one API request (RFC 8620 §3.3–§3.4). `Err` is a request-level error; method
    /// errors are inside the `Ok` response.
    pub async fn handle_api(
        &self,
        principal: &Principal,
        body: &[u8],
    ) -> Result<Value, ProblemDetails> {
        Ok(self
            .handle_api_response(principal, body)
            .await?
            .into_value())
    }

    /// The `state` of `principal`'s Session object on this node (RFC 8620 §2).
    pub async fn session_state(&self, principal: &Principal) -> StoreResult<String> {
        let (_, shared) = self.access(principal).await?;
        Ok(session::session_state(&self.shared, principal, &shared))
    }

    /// [`Engine::handle_api`], with the response kept serialized (what HTTP sends).
    pub async fn handle_api_response(
        &self,
        principal: &Principal,
        body: &[u8],
    ) -> Result<ApiResponse, ProblemDetails> {
        let max_calls =
            usize::try_from(self.shared.limits.max_calls_in_request).unwrap_or(usize::MAX);
        let request = Request::parse(body, max_calls)?;
        self.handle_request_response(principal, request).await
    }

    /// Runs an already parsed request (the WebSocket transport parses its own frames).
    pub async fn handle_request(
        &self,
        principal: &Principal,
        request: Request,
    ) -> Result<Value, ProblemDetails> {
        Ok(self
            .handle_request_response(principal, request)
            .await?
            .into_value())
    }

    /// [`Engine::handle_request`], with the response kept serialized. Each method response is
    /// serialized when its method returns and charged to the request's and the server's
    /// response budgets (`budget.rs`); one that does not fit is answered with the error.
    pub async fn handle_request_response(
        &self,
        principal: &Principal,
        request: Request,
    ) -> Result<ApiResponse, ProblemDetails> {
        // RFC 8620 §3.6.1: every capability in `using` must be known.
        if let Some(unknown) = request
            .using
            .iter()
            .find(|capability| !self.shared.capabilities.contains(&capability.as_str()))
        {
            return Err(ProblemDetails::unknown_capability(unknown));
        }
        let return_created_ids = request.created_ids.is_some();
        let (viewer, shared_accounts) = self
            .access(principal)
            .await
            .map_err(|error| ProblemDetails::store_unavailable(&error))?;
        let session_state = session::session_state(&self.shared, principal, &shared_accounts);
        let mut context = CallContext {
            engine: &self.shared,
            principal,
            created_ids: request.created_ids.unwrap_or_default(),
            implicit_responses: Vec::new(),
            meter: ResponseMeter::new(self.shared.memory, self.shared.response_budget.clone()),
            raw_list: None,
            using: &request.using,
            viewer,
            shared_accounts: shared_accounts
                .iter()
                .map(|shared| shared.account_id)
                .collect(),
            call_on_shared_accounts: dispatch::SharedAccess::None,
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
            let raw_list = context.raw_list.take();
            let (name, arguments) = match outcome {
                Ok(arguments) => (invocation.name, arguments),
                Err(error) => ("error".to_owned(), error.to_json()),
            };
            let response = settle(
                &mut context.meter,
                name,
                &arguments,
                raw_list,
                invocation.call_id,
            )
            .await;
            drop(arguments);
            // The method's own response precedes its implicit ones (RFC 8620 §5.4).
            let implicit = std::mem::take(&mut context.implicit_responses);
            let call_id = response.call_id.clone();
            responses.push(response);
            for (implicit_name, implicit_arguments) in implicit {
                let response = settle(
                    &mut context.meter,
                    implicit_name,
                    &implicit_arguments,
                    None,
                    call_id.clone(),
                )
                .await;
                responses.push(response);
            }
        }
        let created_ids = return_created_ids.then(|| {
            context
                .created_ids
                .into_iter()
                .map(|(creation_id, id)| {
                    (creation_id.into_string(), Value::String(id.into_string()))
                })
                .collect::<Map<String, Value>>()
        });
        Ok(ApiResponse {
            method_responses: responses,
            created_ids,
            session_state,
            reservation: context.meter.into_reservation(),
        })
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
        context.call_on_shared_accounts = entry.on_shared_accounts;
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

/// Serializes one method response and settles its size with the request's meter; a response
/// over the limits is replaced by the method error saying so (`budget.rs`).
async fn settle(
    meter: &mut ResponseMeter,
    name: String,
    arguments: &Value,
    raw_list: Option<Vec<Box<serde_json::value::RawValue>>>,
    call_id: String,
) -> MethodResponse {
    let serialized = match (&raw_list, arguments) {
        (Some(items), Value::Object(object)) => serde_json::value::to_raw_value(&Spliced {
            object,
            member: "list",
            items,
        }),
        _ => serde_json::value::to_raw_value(arguments),
    };
    drop(raw_list);
    let outcome = match serialized {
        Ok(raw) => match meter.settle(raw.get().len() as u64).await {
            Ok(()) => Ok(raw),
            Err(error) => Err(error),
        },
        Err(error) => Err(MethodError::with_description(
            MethodErrorType::ServerFail,
            format!("cannot serialize the response: {error}"),
        )),
    };
    let (name, raw) = match outcome {
        Ok(raw) => (name, raw),
        Err(error) => {
            let raw = serde_json::value::to_raw_value(&error.to_json())
                .unwrap_or_else(|_| error_fallback());
            meter.settle_error(raw.get().len() as u64);
            ("error".to_owned(), raw)
        }
    };
    MethodResponse {
        name,
        arguments: raw,
        call_id,
    }
}

fn error_fallback() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(r#"{"type":"serverFail"}"#.to_owned())
        .unwrap_or_default()
}
