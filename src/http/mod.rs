//! HTTP: the JMAP endpoints (session, API, upload/download) on hyper 1, CORS, request-size
//! and concurrency limits, the loopback admin endpoint, and the listeners (plain or TLS).
//!
//! Invariants:
//! - every route but the preflight authenticates first; an account id in a URL is checked
//!   with `Principal::may_access` before anything else is read;
//! - a request body is never buffered past its limit: `Content-Length` is checked before
//!   reading, and the read itself is capped (RFC 8620 §2 `maxSizeRequest`);
//! - every error is problem JSON; a panic in a handler becomes a 500 problem for that request
//!   only (a last resort: handlers return errors as values).

pub mod admin;
pub mod admin_client;
mod blob;
mod cluster_api;
pub mod config;
mod connection;
mod cors;
pub mod download_headers;
pub mod eventsource;
pub mod forward;
pub mod hints;
pub mod listener;
pub mod response;
mod slots;
pub mod websocket;
pub mod websocket_wire;

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::header::{ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::auth::{Authenticator, Principal};
use crate::cluster::Route as Placement;
use crate::config::Config;
use crate::jmap::Engine;
use crate::store::blob::BlobStore;
pub use cors::Cors;
use response::{
    ResponseBody, api_response, auth_problem, jmap_problem, json_response, limit_problem, problem,
};
use slots::AccountSlots;

/// Everything a request handler needs; shared by all connections.
pub struct AppState {
    pub engine: Engine,
    pub authenticator: Authenticator,
    pub blobs: BlobStore,
    cors: Cors,
    request_slots: Arc<AccountSlots>,
    upload_slots: Arc<AccountSlots>,
    /// State-change fan-out for WebSocket and EventSource push.
    pub push: crate::push::PushHub,
    /// Browser tickets for WebSocket and EventSource (`POST /jmap/ticket`).
    pub tickets: crate::push::TicketStore,
    websocket_limits: websocket::WebSocketLimits,
    eventsource_ping: eventsource::PingBounds,
    /// WebSocket and EventSource connections: long-lived, so bounded on their own
    /// (`http.max_push_connections`, `http.max_push_connections_per_address`).
    push_connections: Arc<crate::limits::ConnectionLimiter>,
    retry_after_seconds: u64,
    /// This node's cluster membership and the client that forwards requests to owners.
    pub cluster: Option<Arc<ClusterLink>>,
}

/// What the HTTP layer needs of the cluster: routing decisions and the forwarding client.
pub struct ClusterLink {
    pub node: Arc<crate::cluster::ClusterNode>,
    pub forwarder: forward::Forwarder,
}

impl AppState {
    pub fn new(
        config: &Config,
        engine: Engine,
        authenticator: Authenticator,
        blobs: BlobStore,
    ) -> AppState {
        let limits = engine.limits().clone();
        let push = crate::push::PushHub::new(engine.store().clone());
        AppState {
            engine,
            authenticator,
            blobs,
            cors: Cors::new(&config.cors),
            request_slots: AccountSlots::new(limits.max_concurrent_requests),
            upload_slots: AccountSlots::new(limits.max_concurrent_upload),
            push,
            tickets: crate::push::TicketStore::new(),
            websocket_limits: websocket::WebSocketLimits::from_config(config),
            eventsource_ping: eventsource::PingBounds::from_config(&config.push),
            push_connections: crate::limits::ConnectionLimiter::new(
                crate::limits::ConnectionLimits {
                    total: config.http.max_push_connections,
                    per_address: config.http.max_push_connections_per_address,
                    per_network: config.http.max_push_connections,
                    ipv4_prefix: 32,
                    ipv6_prefix: 128,
                },
            ),
            retry_after_seconds: config.http.retry_after_seconds,
            cluster: None,
        }
    }

    /// Serves as a node of `cluster` (API requests and uploads run on the account's owner).
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::ClusterNode>>) -> AppState {
        self.cluster = cluster.map(|node| {
            let forwarder = forward::Forwarder::new(node.forward_timeout());
            Arc::new(ClusterLink { node, forwarder })
        });
        self
    }
}

/// The routes of the JMAP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'p> {
    /// RFC 8620 §2.2: `/.well-known/jmap` (answered directly, no redirect).
    Session,
    Api,
    Upload {
        account: &'p str,
    },
    Download {
        account: &'p str,
        blob: &'p str,
        name: &'p str,
    },
    /// RFC 8887: the WebSocket URL of the session's websocket capability.
    WebSocket,
    /// RFC 8620 §7.3: the eventSourceUrl.
    EventSource,
    /// A short-lived ticket for browsers (they cannot set headers on WebSocket/EventSource).
    Ticket,
    /// Another cluster node's commit hints (`hints`); not for clients.
    CommitHints,
}

impl Route<'_> {
    fn name(&self) -> &'static str {
        match self {
            Route::Session => "session",
            Route::Api => "api",
            Route::Upload { .. } => "upload",
            Route::Download { .. } => "download",
            Route::WebSocket => "websocket",
            Route::EventSource => "eventsource",
            Route::Ticket => "ticket",
            Route::CommitHints => "commit-hints",
        }
    }

    /// The `Allow` header value (RFC 9110 §10.2.1).
    fn allowed_methods(&self) -> &'static str {
        match self {
            Route::Session | Route::Download { .. } => "GET, HEAD, OPTIONS",
            Route::Api | Route::Upload { .. } | Route::Ticket => "POST, OPTIONS",
            Route::CommitHints => "POST",
            Route::WebSocket | Route::EventSource => "GET, OPTIONS",
        }
    }

    fn accepts(&self, method: &Method) -> bool {
        match self {
            Route::Session | Route::Download { .. } => {
                method == Method::GET || method == Method::HEAD
            }
            Route::Api | Route::Upload { .. } | Route::Ticket | Route::CommitHints => {
                method == Method::POST
            }
            Route::WebSocket | Route::EventSource => method == Method::GET,
        }
    }
}

fn match_route(path: &str) -> Option<Route<'_>> {
    match path {
        "/.well-known/jmap" | "/jmap/session" => return Some(Route::Session),
        "/jmap/api" | "/jmap/api/" => return Some(Route::Api),
        "/jmap/ws" => return Some(Route::WebSocket),
        "/jmap/eventsource" => return Some(Route::EventSource),
        "/jmap/ticket" => return Some(Route::Ticket),
        hints::HINTS_PATH => return Some(Route::CommitHints),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/jmap/upload/") {
        let account = rest.strip_suffix('/').unwrap_or(rest);
        if !account.is_empty() && !account.contains('/') {
            return Some(Route::Upload { account });
        }
        return None;
    }
    if let Some(rest) = path.strip_prefix("/jmap/download/") {
        let mut segments = rest.splitn(3, '/');
        let (account, blob, name) = (segments.next()?, segments.next()?, segments.next()?);
        if account.is_empty() || blob.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        return Some(Route::Download {
            account,
            blob,
            name,
        });
    }
    None
}

/// Serves one request of the JMAP listener: routing, CORS, telemetry, panic containment.
pub async fn serve_request(
    state: Arc<AppState>,
    request: Request<Incoming>,
    remote: SocketAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let origin = request.headers().get(http::header::ORIGIN).cloned();
    let route_name = match_route(request.uri().path()).map_or("unknown", |route| route.name());
    // DEBUG: per-request spans cost more than the rest of a Core/echo call when formatted,
    // so plain `info` logs skip them; OTLP export (see telemetry) still records them.
    let span = tracing::debug_span!(
        "http.request",
        http.method = %method,
        http.route = route_name,
        http.path = %request.uri().path(),
        http.status = tracing::field::Empty,
        account_id = tracing::field::Empty,
        latency_us = tracing::field::Empty,
    );
    let handled = AssertUnwindSafe(route_request(&state, request, remote.ip()))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let mut response = handled.unwrap_or_else(|_| {
        tracing::error!(parent: &span, "request handler panicked");
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error while handling the request",
        )
    });
    state.cors.decorate(origin.as_ref(), &mut response);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.record("http.status", status);
    span.record("latency_us", elapsed.as_micros() as u64);
    crate::telemetry::record_http_request(route_name, method.as_str(), status, elapsed);
    response
}

async fn route_request(
    state: &AppState,
    request: Request<Incoming>,
    client: IpAddr,
) -> Response<ResponseBody> {
    // A `Uri` clone shares its bytes: the route can borrow the path while the request moves.
    let uri = request.uri().clone();
    let Some(route) = match_route(uri.path()) else {
        return problem(StatusCode::NOT_FOUND, "no such resource");
    };
    if request.method() == Method::OPTIONS {
        return state
            .cors
            .options(request.headers(), route.allowed_methods());
    }
    if !route.accepts(request.method()) {
        let mut response = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} is not allowed here", request.method()),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(route.allowed_methods()));
        return response;
    }
    if route == Route::CommitHints {
        let node = state.cluster.as_ref().map(|cluster| cluster.node.as_ref());
        return hints::receive(node, &state.push, request).await;
    }
    if route == Route::Api
        && let Some(refusal) = refuse_unless_json(request.headers())
    {
        return refusal;
    }
    let ticket = match route {
        Route::WebSocket | Route::EventSource => ticket_in_query(uri.query()),
        _ => None,
    };
    // A request another node forwarded: the cluster secret vouches for its principal.
    let vouched = state
        .cluster
        .as_ref()
        .and_then(|cluster| forward::forwarded_principal(&cluster.node, request.headers()));
    let forwarded = vouched.is_some();
    let principal = match (vouched, ticket) {
        (Some(Ok(principal)), _) => principal,
        (Some(Err(())), _) => return auth_problem(&crate::auth::AuthError::Invalid),
        (None, Some(ticket)) => match state.tickets.redeem(ticket) {
            Some(principal) => principal,
            None => return auth_problem(&crate::auth::AuthError::Invalid),
        },
        (None, None) => match authenticate(state, request.headers(), client).await {
            Ok(principal) => principal,
            Err(response) => return response,
        },
    };
    tracing::Span::current().record("account_id", principal.account_id);
    // API requests run on the owner of the account they write (`cluster_api`).
    if let Some(cluster) = &state.cluster
        && route == Route::Api
    {
        return cluster_api::serve(state, cluster, &principal, forwarded, request).await;
    }
    // Uploads run on the account's owner (see `forward` for what is served anywhere).
    if let Some(cluster) = &state.cluster
        && matches!(route, Route::Upload { .. })
    {
        match cluster.node.route(principal.account_id).await {
            Placement::Local => {}
            Placement::Forward { node, url } if !forwarded => {
                let session_state = match state.engine.session_state(&principal).await {
                    Ok(session_state) => session_state,
                    Err(error) => return forward::unavailable(&error.to_string()),
                };
                if let Some(refusal) = blob::refuse_declared_oversize(state, request.headers()) {
                    return refusal;
                }
                return cluster
                    .forwarder
                    .forward(
                        &cluster.node,
                        node,
                        &url,
                        &principal,
                        &session_state,
                        request,
                    )
                    .await;
            }
            Placement::Forward { .. } => {
                return forward::unavailable("the account moved to another node; retry");
            }
            Placement::Unavailable(detail) => return forward::unavailable(&detail),
        }
    }
    let push_slot = match route {
        Route::WebSocket | Route::EventSource => match state.push_connections.try_acquire(client) {
            Ok(permit) => Some(permit),
            Err(refusal) => return push_refused(state, refusal, client),
        },
        _ => None,
    };
    // The slot is kept as long as the connection (an upgraded WebSocket outlives this request).
    let hold = request
        .extensions()
        .get::<listener::ConnectionHold>()
        .cloned();
    let response = match route {
        Route::Session => session(state, &principal).await,
        Route::Api => {
            let session_state = forwarded
                .then(|| forward::forwarded_session_state(request.headers()))
                .flatten();
            api(state, &principal, session_state, request).await
        }
        Route::Upload { account } => blob::upload(state, &principal, account, request).await,
        Route::Download {
            account,
            blob: blob_id,
            name,
        } => blob::download(state, &principal, account, blob_id, name, &request).await,
        Route::WebSocket => websocket::upgrade(state, principal, request),
        Route::EventSource => {
            eventsource::serve(state, &principal, uri.query(), request.headers()).await
        }
        // Answered before authentication, above.
        Route::CommitHints => problem(StatusCode::NOT_FOUND, "no such resource"),
        Route::Ticket => {
            let ticket = state.tickets.issue(&principal);
            json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "ticket": ticket,
                    "expiresInSeconds": crate::push::ticket::TICKET_LIFETIME.as_secs(),
                }),
            )
        }
    };
    let accepted =
        response.status().is_success() || response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (Some(slot), Some(hold), true) = (push_slot, hold, accepted) {
        hold.keep(slot);
    }
    response
}

/// A push connection over its bound: `429` (this client's share) or `503` (the server's),
/// with `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3), and one rate-limited log line.
fn push_refused(
    state: &AppState,
    refusal: crate::limits::Refusal,
    client: IpAddr,
) -> Response<ResponseBody> {
    if let Some(suppressed) = state.push_connections.log_refusal(refusal) {
        tracing::warn!(client_ip = %client, reason = refusal.name(),
            open = state.push_connections.open(), suppressed, "push connection refused");
    }
    let status = if refusal.is_client_share() {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = problem(
        status,
        &format!("{refusal} for push (WebSocket, EventSource)"),
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(state.retry_after_seconds.max(1)),
    );
    response
}

/// RFC 8620 §3.1: an API request is `application/json` (the media type, case-insensitive,
/// RFC 9110 §8.3.1; a `charset` parameter, if any, must be UTF-8, RFC 8259 §8.1). Anything
/// else, a missing type included, is `notJSON` (RFC 8620 §3.6.1), checked before the
/// credentials: a cross-site form or `no-cors` fetch (which can only send `text/plain`, form
/// types or none) never runs a method with the browser's cached credentials.
fn refuse_unless_json(headers: &HeaderMap) -> Option<Response<ResponseBody>> {
    let value = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let acceptable = value.is_some_and(|value| {
        let mut parts = value.split(';');
        let essence = parts.next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
            && parts.all(|parameter| match parameter.split_once('=') {
                Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                    let charset = charset.trim().trim_matches('"');
                    charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
                }
                _ => true,
            })
    });
    if acceptable {
        return None;
    }
    let shown = value.unwrap_or("none");
    tracing::info!(
        content_type = shown,
        reason = "notJSON",
        "API request refused"
    );
    Some(jmap_problem(&crate::jmap::ProblemDetails::not_json(
        format!("the request must be application/json (RFC 8620 §3.1), not {shown:?}"),
    )))
}

/// The `ticket` query parameter of a WebSocket or EventSource URL (browsers).
fn ticket_in_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ticket="))
        .filter(|ticket| !ticket.is_empty())
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Principal, Response<ResponseBody>> {
    let authorization = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    state
        .authenticator
        .authenticate(authorization, client)
        .await
        .map_err(|error| auth_problem(&error))
}

async fn session(state: &AppState, principal: &Principal) -> Response<ResponseBody> {
    let session = match state.engine.session(principal).await {
        Ok(session) => session,
        Err(error) => {
            tracing::warn!(%error, "session refused: the store is unavailable");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; retry",
            );
        }
    };
    let mut response = json_response(StatusCode::OK, &session);
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    response
}

/// The declared `Content-Length`, if any and well-formed.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Why a body could not be read whole.
enum BodyError {
    TooLarge,
    /// The client went away or sent a malformed body.
    Broken(String),
}

/// Reads at most `max` bytes; more is an error, detected as soon as it arrives.
async fn read_capped(body: Incoming, max: u64) -> Result<Bytes, BodyError> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(error) => Err(BodyError::Broken(error.to_string())),
    }
}

async fn api(
    state: &AppState,
    principal: &Principal,
    session_state: Option<String>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let limits = state.engine.limits();
    // RFC 8620 §2: maxConcurrentRequests, per account.
    let Some(_slot) = state.request_slots.try_acquire(principal.account_id) else {
        return limit_problem(
            StatusCode::TOO_MANY_REQUESTS,
            "maxConcurrentRequests",
            &format!(
                "at most {} concurrent API requests per account",
                limits.max_concurrent_requests
            ),
        );
    };
    let (parts, body) = request.into_parts();
    let body = match read_api_body(state, &parts.headers, body).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    drop(_slot);
    api_body(state, principal, session_state, body).await
}

/// Runs an API request whose body was read (`api`, `cluster_api`).
async fn api_body(
    state: &AppState,
    principal: &Principal,
    session_state: Option<String>,
    body: Bytes,
) -> Response<ResponseBody> {
    let limits = state.engine.limits();
    // RFC 8620 §2: maxConcurrentRequests, per account.
    let Some(_slot) = state.request_slots.try_acquire(principal.account_id) else {
        return limit_problem(
            StatusCode::TOO_MANY_REQUESTS,
            "maxConcurrentRequests",
            &format!(
                "at most {} concurrent API requests per account",
                limits.max_concurrent_requests
            ),
        );
    };
    let received = Instant::now();
    match state.engine.handle_api_response(principal, &body).await {
        Ok(value) => {
            let value = match session_state {
                Some(session_state) => value.with_session_state(session_state),
                None => value,
            };
            let handled = received.elapsed();
            // A commit of this account that the push hub saw during the request.
            let committed = state
                .push
                .last_commit_seen(principal.account_id)
                .and_then(|seen| seen.checked_duration_since(received))
                .filter(|committed| *committed <= handled);
            let mut response = api_response(value);
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(SERVER_TIMING, server_timing(handled, committed));
            response
        }
        Err(details) => jmap_problem(&details),
    }
}

/// An API request's body, within `maxSizeRequest` (RFC 8620 §2), or the refusal to answer:
/// refused before the body is read when the request says its size.
async fn read_api_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Bytes, Response<ResponseBody>> {
    let max = state.engine.limits().max_size_request;
    let too_large = || {
        limit_problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "maxSizeRequest",
            &format!("the request is larger than {max} bytes"),
        )
    };
    if declared_length(headers).is_some_and(|length| length > max) {
        return Err(too_large());
    }
    match read_capped(body, max).await {
        Ok(body) => Ok(body),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::Broken(detail)) => Err(problem(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the request body: {detail}"),
        )),
    }
}

/// W3C Server-Timing (`Server-Timing` response header), in milliseconds from the request body
/// being read: `app` until every method call finished; `commit` until the push hub saw a
/// commit of the account (the store tells it before the commit returns to its writer; only
/// when something listens to the account's changes and a commit landed meanwhile). A client
/// that knows when it sent the request places the commit at `sent + commit dur` — which leaves
/// out the request's own trip, ≈ 0.05 ms on loopback — and so measures commit → StateChange
/// without a shared clock. `app` alone would be late by however long the answering task waits
/// for a thread after the commit, which on 2 busy cores is milliseconds.
const SERVER_TIMING: http::header::HeaderName =
    http::header::HeaderName::from_static("server-timing");

fn server_timing(handled: Duration, committed: Option<Duration>) -> HeaderValue {
    // Microsecond precision, as the spec's examples use.
    let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let text = match committed {
        Some(committed) => format!(
            "app;dur={:.3}, commit;dur={:.3}",
            millis(handled),
            millis(committed)
        ),
        None => format!("app;dur={:.3}", millis(handled)),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("app"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_metrics_have_durations_in_milliseconds() {
        let handled = Duration::from_micros(1_234);
        let value = server_timing(handled, None);
        assert_eq!(value.to_str().expect("ASCII"), "app;dur=1.234");
        let value = server_timing(handled, Some(Duration::from_micros(987)));
        assert_eq!(
            value.to_str().expect("ASCII"),
            "app;dur=1.234, commit;dur=0.987"
        );
    }

    #[test]
    fn api_requests_must_be_json() {
        let with = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_str(value).expect("header"),
                );
            }
            refuse_unless_json(&headers).is_none()
        };
        for good in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(with(Some(good)), "{good}");
        }
        for bad in [
            None,
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/json; charset=utf-16"),
            Some("application/jsonx"),
        ] {
            assert!(!with(bad), "{bad:?}");
        }
    }

    #[test]
    fn routes() {
        assert_eq!(match_route("/.well-known/jmap"), Some(Route::Session));
        assert_eq!(match_route("/jmap/api"), Some(Route::Api));
        assert_eq!(
            match_route("/jmap/upload/a1/"),
            Some(Route::Upload { account: "a1" })
        );
        assert_eq!(
            match_route("/jmap/download/a1/G12/x%20y.txt"),
            Some(Route::Download {
                account: "a1",
                blob: "G12",
                name: "x%20y.txt"
            })
        );
        for missing in [
            "/",
            "/jmap",
            "/jmap/upload//",
            "/jmap/download/a/b",
            "/jmap/download/a/b/c/d",
        ] {
            assert_eq!(match_route(missing), None, "{missing}");
        }
        assert!(Route::Api.accepts(&Method::POST));
        assert!(!Route::Api.accepts(&Method::GET));
        assert!(Route::Session.accepts(&Method::HEAD));
    }
}

#[cfg(test)]
mod server_tests;
