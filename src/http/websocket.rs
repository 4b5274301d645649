//! JMAP over WebSocket (RFC 8887): the upgrade, then one task per connection that runs
//! requests concurrently (answered as they finish, possibly out of order) and pushes
//! StateChanges.
//!
//! Invariants:
//! - the upgrade needs the `jmap` subprotocol (RFC 8887 §4.2) and authentication (a header,
//!   or a ticket for browsers), checked before the 101;
//! - a bad message gets a RequestError and the socket stays usable (RFC 8887 §4.3.4); only a
//!   message over the hard frame cap, a protocol violation or a dead peer closes it;
//! - a connection holds at most `max_in_flight` requests and one pending push value (the
//!   slot in its [`Wire`]): a slow reader costs bounded memory and never blocks others;
//! - pushes usually bypass the connection's task: the hub's fan-out writes the shared,
//!   pre-encoded StateChange frame straight to an idle socket (`websocket_wire`); the task
//!   is woken only when that cannot be done at once;
//! - every send has a deadline; a peer that stops reading is closed, not waited for.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::AppState;
use super::response::{ResponseBody, empty_response, problem};
use super::websocket_wire::{PushWork, Wire, WireIo};
use crate::auth::Principal;
use crate::jmap::request::Request as JmapRequest;
use crate::jmap::{Engine, ProblemDetails};
use crate::push::hub::{DirectRegistration, DirectTarget as _, StatesReceiver};
use crate::push::shared::{Deliver, SharedListeners};
use crate::push::state_change::{state_change, websocket_state_change};
use crate::push::{PushFilter, PushHub, PushState};

/// The RFC 8887 subprotocol name.
pub const SUBPROTOCOL: &str = "jmap";

/// Per-connection limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct WebSocketLimits {
    /// RFC 8620 §2 maxSizeRequest: larger messages get a `limit` RequestError.
    pub max_request_bytes: usize,
    pub max_in_flight: usize,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
}

impl WebSocketLimits {
    pub fn from_config(config: &crate::config::Config) -> WebSocketLimits {
        let push = &config.push;
        let max_in_flight = if push.websocket_max_in_flight == 0 {
            config.jmap.max_concurrent_requests
        } else {
            push.websocket_max_in_flight
        };
        WebSocketLimits {
            max_request_bytes: usize::try_from(config.jmap.max_size_request).unwrap_or(usize::MAX),
            max_in_flight: usize::try_from(max_in_flight.max(1)).unwrap_or(usize::MAX),
            ping_interval: Duration::from_secs(push.websocket_ping_seconds.max(1)),
            idle_timeout: Duration::from_secs(push.websocket_idle_timeout_seconds.max(1)),
            send_timeout: Duration::from_secs(push.websocket_send_timeout_seconds.max(1)),
        }
    }

    /// Messages up to this size are read and answered (with a `limit` error when over
    /// `max_request_bytes`); a larger one closes the socket with 1009, bounding memory.
    fn hard_cap(&self) -> usize {
        self.max_request_bytes.saturating_mul(2).max(64 * 1024)
    }
}

/// Whether a comma-separated header (possibly repeated) holds `token`, case-insensitively.
fn header_has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// Whether a `Sec-WebSocket-Key` value is the base64 (with padding) of exactly 16 bytes.
fn is_valid_key(key: &[u8]) -> bool {
    use base64::Engine as _;
    // 16 bytes encode to 22 characters plus "==": anything longer is refused before decoding.
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|nonce| nonce.len() == 16)
}

/// Answers a GET on the WebSocket URL: the 101 and a spawned connection, or an HTTP error.
pub fn upgrade(
    state: &AppState,
    principal: Principal,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    let headers = request.headers();
    let is_upgrade = header_has_token(headers, CONNECTION, "upgrade")
        && header_has_token(headers, UPGRADE, "websocket");
    if !is_upgrade {
        // RFC 9110 §15.5.22: say which protocol this resource needs.
        let mut response = problem(
            StatusCode::UPGRADE_REQUIRED,
            "this is the JMAP WebSocket endpoint (RFC 8887): send a WebSocket upgrade",
        );
        response
            .headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    // RFC 6455 §4.2.2: only version 13; otherwise 426 naming the versions we speak.
    if headers
        .get("sec-websocket-version")
        .is_none_or(|version| version.as_bytes() != b"13")
    {
        let mut response = problem(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported Sec-WebSocket-Version (13 is required)",
        );
        response
            .headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return response;
    }
    let Some(key) = headers.get("sec-websocket-key") else {
        return problem(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing");
    };
    // RFC 6455 §4.2.1 item 5 (and §11.3.1): the key MUST be the base64 of 16 bytes; any other
    // value is a bad handshake, answered 400 (RFC 6455 §4.2.1) before any upgrade.
    if !is_valid_key(key.as_bytes()) {
        tracing::info!(
            reason = "bad Sec-WebSocket-Key",
            "WebSocket upgrade refused"
        );
        return problem(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be the base64 encoding of 16 bytes (RFC 6455 §4.2.1)",
        );
    }
    // RFC 8887 §4.2: the client must offer the jmap subprotocol.
    if !header_has_token(headers, SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL) {
        return problem(
            StatusCode::BAD_REQUEST,
            "the \"jmap\" WebSocket subprotocol is required (Sec-WebSocket-Protocol: jmap)",
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut request);
    let connection = Connection {
        engine: state.engine.clone(),
        hub: state.push.clone(),
        principal: Arc::new(principal),
        limits: state.websocket_limits,
        cluster: state.cluster.clone(),
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => connection.run(upgraded).await,
            Err(error) => tracing::debug!(%error, "WebSocket upgrade failed"),
        }
    });
    let mut response = empty_response(StatusCode::SWITCHING_PROTOCOLS);
    let response_headers = response.headers_mut();
    response_headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    response_headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        response_headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// How many StateChanges of shared accounts may wait for the socket (beyond it a listener
/// tells the change again with the next one).
const SHARED_PUSH_QUEUE: usize = 16;

/// The push of the accounts shared with the user (`push::shared`), started with push.
struct SharedPush {
    listeners: Option<SharedListeners>,
    sender: mpsc::Sender<String>,
}

/// The push side of a connection once WebSocketPushEnable arrived; what the client was told
/// and what is queued for it live in the connection's [`Wire`].
struct PushListener {
    /// Keeps the account's watcher running; read once at enable time.
    receiver: StatesReceiver,
    /// The hub offers every new value to the wire while this lives.
    _registration: DirectRegistration,
}

struct Connection {
    engine: Engine,
    hub: PushHub,
    principal: Arc<Principal>,
    limits: WebSocketLimits,
    /// Set on a cluster node: requests run on the account's owner.
    cluster: Option<Arc<super::ClusterLink>>,
}

type Socket = WebSocketStream<WireIo>;

/// Why the connection loop ended.
enum Ending {
    PeerClosed,
    /// The peer sent a Close frame: tungstenite queued the answering Close, still to be sent.
    PeerSentClose,
    Close(CloseCode, &'static str),
    Broken,
}

impl Connection {
    async fn run(self, upgraded: Upgraded) {
        let config = WebSocketConfig::default()
            // Small buffers: 10,000 idle sockets must fit in a few hundred MB.
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(self.limits.hard_cap()))
            .max_frame_size(Some(self.limits.hard_cap()));
        let (wire, io) = Wire::from_upgraded(upgraded);
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        let account_id = self.principal.account_id;
        tracing::debug!(account_id, "WebSocket connected");
        let ending = self.serve(socket, &wire).await;
        if let Ending::Close(code, reason) = &ending {
            tracing::debug!(account_id, ?code, reason, "WebSocket closed by the server");
        }
        tracing::debug!(account_id, "WebSocket ended");
    }

    async fn serve(&self, socket: Socket, wire: &Arc<Wire>) -> Ending {
        let (mut sink, mut stream) = socket.split();
        // Every in-flight request owns one slot, so a finished request never waits to report.
        let (done_sender, mut done) = mpsc::channel::<String>(self.limits.max_in_flight);
        let mut in_flight = 0usize;
        let mut push: Option<PushListener> = None;
        let (shared_sender, mut shared_changes) = mpsc::channel::<String>(SHARED_PUSH_QUEUE);
        let mut shared = SharedPush {
            listeners: None,
            sender: shared_sender,
        };
        let mut stopped = self.hub.stopped();
        let mut ping = tokio::time::interval(self.limits.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        let mut last_heard = Instant::now();
        let ending = loop {
            let outgoing: Option<Message> = tokio::select! {
                frame = stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        None => break Ending::PeerClosed,
                        Some(Err(error)) => {
                            tracing::debug!(%error, "WebSocket read failed");
                            break match error {
                                tokio_tungstenite::tungstenite::Error::Capacity(_) => Ending::Close(
                                    CloseCode::Size,
                                    "message larger than the server accepts",
                                ),
                                _ => Ending::Broken,
                            };
                        }
                        Some(Ok(Message::Text(text))) => {
                            self.on_text(
                                text.as_str(),
                                &mut in_flight,
                                &done_sender,
                                (&mut push, &mut shared),
                                wire,
                            )
                            .await
                            .map(Message::text)
                        }
                        // RFC 8887 §4.3.1: JMAP messages are text frames.
                        Some(Ok(Message::Binary(_))) => Some(Message::text(request_error(
                            &ProblemDetails::not_json(
                                "binary frames are not JMAP messages; send text frames",
                            ),
                            None,
                        ))),
                        Some(Ok(Message::Close(_))) => break Ending::PeerSentClose,
                        // Pongs are queued by the library; both just prove liveness.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => None,
                    }
                }
                Some(response) = done.recv() => {
                    in_flight = in_flight.saturating_sub(1);
                    Some(Message::text(response))
                }
                Some(change) = shared_changes.recv() => Some(Message::text(change)),
                () = wire.woken() => {
                    // First the rest of a frame the fan-out started, then queued states.
                    let tail = std::future::poll_fn(|cx| wire.poll_flush_tail(cx));
                    match tokio::time::timeout(self.limits.send_timeout, tail).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "WebSocket write failed");
                            break Ending::Broken;
                        }
                        Err(_) => {
                            tracing::debug!("WebSocket peer stopped reading; closing");
                            break Ending::Broken;
                        }
                    }
                    match wire.take_push() {
                        Some(work) => match push_text(self.principal.account_id, &work) {
                            Some(text) => Some(Message::text(text)),
                            // Only types this client did not ask for changed.
                            None => {
                                wire.sent_push();
                                None
                            }
                        },
                        None => None,
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= self.limits.idle_timeout {
                        break Ending::Close(CloseCode::Normal, "idle timeout");
                    }
                    Some(Message::Ping(Default::default()))
                }
                () = &mut stopped => break Ending::Close(CloseCode::Away, "server shutting down"),
            };
            if let Some(message) = outgoing {
                match tokio::time::timeout(self.limits.send_timeout, sink.send(message)).await {
                    // A push of this task's own (if that is what it was) is out: the fan-out
                    // may write again.
                    Ok(Ok(())) => wire.sent_push(),
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "WebSocket write failed");
                        break Ending::Broken;
                    }
                    Err(_) => {
                        tracing::debug!("WebSocket peer stopped reading; closing");
                        break Ending::Broken;
                    }
                }
            }
        };
        // RFC 6455 §5.5.1: nothing after a Close frame.
        wire.close();
        drop(push);
        drop(shared);
        if let Ending::Close(code, reason) = &ending {
            let frame = CloseFrame {
                code: *code,
                reason: (*reason).into(),
            };
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                sink.send(Message::Close(Some(frame))),
            )
            .await;
        }
        if let Ending::PeerSentClose = ending {
            // RFC 6455 §5.5.1: an endpoint that receives a Close frame MUST send a Close frame
            // in response (tungstenite queued it, echoing the status code); closing the sink
            // flushes it, then the server closes the TCP connection (RFC 6455 §7.1.1).
            let _ = tokio::time::timeout(self.limits.send_timeout, sink.close()).await;
        }
        ending
    }

    /// Handles one text message; returns what to send at once (errors, push replies).
    /// Requests run in their own task and report through `done`.
    async fn on_text(
        &self,
        text: &str,
        in_flight: &mut usize,
        done: &mpsc::Sender<String>,
        (push, shared): (&mut Option<PushListener>, &mut SharedPush),
        wire: &Arc<Wire>,
    ) -> Option<String> {
        if text.len() > self.limits.max_request_bytes {
            // RFC 8620 §2 maxSizeRequest applies to each WebSocket request too.
            let request_id = envelope(text).ok().and_then(|envelope| envelope.id);
            return Some(request_error(
                &ProblemDetails::limit(
                    "maxSizeRequest",
                    format!(
                        "the message is larger than {} bytes",
                        self.limits.max_request_bytes
                    ),
                ),
                request_id.as_deref(),
            ));
        }
        let envelope = match envelope(text) {
            Ok(envelope) => envelope,
            Err((problem, request_id)) => {
                return Some(request_error(&problem, request_id.as_deref()));
            }
        };
        let request_id = envelope.id;
        match envelope.kind.as_str() {
            "Request" => {
                if *in_flight >= self.limits.max_in_flight {
                    return Some(request_error(
                        &ProblemDetails::limit(
                            "maxConcurrentRequests",
                            format!(
                                "at most {} requests in flight on one WebSocket",
                                self.limits.max_in_flight
                            ),
                        ),
                        request_id.as_deref(),
                    ));
                }
                let max_calls = usize::try_from(self.engine.limits().max_calls_in_request)
                    .unwrap_or(usize::MAX);
                let request = match JmapRequest::parse(text.as_bytes(), max_calls) {
                    Ok(request) => request,
                    Err(problem) => return Some(request_error(&problem, request_id.as_deref())),
                };
                *in_flight += 1;
                let engine = self.engine.clone();
                let principal = Arc::clone(&self.principal);
                let done = done.clone();
                let cluster = self.cluster.clone();
                let message = text.to_owned();
                tokio::spawn(async move {
                    // On a cluster the request runs on the account's owner; this socket stays
                    // here (its pushes come from the store's watch on any node).
                    if let Some(cluster) = cluster
                        && let Ok(session_state) = engine.session_state(&principal).await
                        && let Some(text) = run_on_owner(
                            &cluster,
                            &principal,
                            session_state,
                            message,
                            request_id.as_deref(),
                        )
                        .await
                    {
                        let _ = done.send(text).await;
                        return;
                    }
                    let outcome =
                        AssertUnwindSafe(engine.handle_request_response(&principal, request))
                            .catch_unwind()
                            .await;
                    let text = match outcome {
                        Ok(Ok(response)) => response_message(response, request_id.as_deref()),
                        Ok(Err(problem)) => request_error(&problem, request_id.as_deref()),
                        Err(_) => {
                            tracing::error!("request handler panicked (WebSocket)");
                            let mut problem = ProblemDetails::not_request(
                                "internal error while handling the request",
                            );
                            problem.kind = "about:blank".to_owned();
                            problem.status = 500;
                            request_error(&problem, request_id.as_deref())
                        }
                    };
                    // The connection may be gone; then nobody needs the answer.
                    let _ = done.send(text).await;
                });
                None
            }
            "WebSocketPushEnable" => match push_enable_arguments(text) {
                Ok((filter, push_state)) => {
                    self.enable_shared_push(&filter, shared).await;
                    self.enable_push(filter, push_state, push, wire).await
                }
                Err(problem) => Some(request_error(&problem, request_id.as_deref())),
            },
            "WebSocketPushDisable" => {
                *push = None;
                shared.listeners = None;
                wire.disable_push();
                None
            }
            other => Some(request_error(
                &ProblemDetails::not_request(format!(
                    "unknown @type {other:?}: expected Request, WebSocketPushEnable or WebSocketPushDisable"
                )),
                request_id.as_deref(),
            )),
        }
    }

    /// Starts (or restarts) the push of the accounts shared with the user. Their StateChanges
    /// carry no `pushState`: the token a client resumes with stays its own account's.
    async fn enable_shared_push(&self, filter: &PushFilter, shared: &mut SharedPush) {
        shared.listeners = None;
        let sender = shared.sender.clone();
        let deliver: Deliver = Arc::new(move |account_id, changed, _push_state| {
            let text = Value::Object(state_change(account_id, changed)).to_string();
            sender.try_send(text).is_ok()
        });
        let viewer = match self.engine.viewer(&self.principal).await {
            Ok(viewer) => viewer,
            Err(error) => {
                tracing::warn!(%error, "shared-account push not started");
                return;
            }
        };
        match SharedListeners::start(&self.hub, viewer, filter, deliver).await {
            Ok(listeners) => shared.listeners = Some(listeners),
            Err(error) => tracing::warn!(%error, "shared-account push not started"),
        }
    }

    /// RFC 8887 §4.3.5.2: start (or restart) pushing; with a `pushState`, whatever changed
    /// since is sent at once.
    async fn enable_push(
        &self,
        filter: PushFilter,
        push_state: Option<String>,
        push: &mut Option<PushListener>,
        wire: &Arc<Wire>,
    ) -> Option<String> {
        let account_id = self.principal.account_id;
        let mut listener = match push.take() {
            Some(listener) => listener,
            None => {
                let receiver = self.hub.subscribe(account_id);
                PushListener {
                    receiver,
                    _registration: self.hub.register_direct(account_id, wire.clone()),
                }
            }
        };
        let current = PushHub::current(&mut listener.receiver).await?;
        let up_to_date = PushState::from_states(&current, &filter);
        let reply = push_state
            .map(|token| {
                // A token we cannot read: the client is told every state.
                let known = PushState::parse(&token).unwrap_or_default();
                known.changed(&current, &filter)
            })
            .filter(|changed| !changed.is_empty())
            .map(|changed| websocket_state_change(account_id, &changed, &up_to_date));
        // While the reply is on its way the fan-out queues instead of overtaking it.
        wire.enable_push(filter, current, reply.is_some());
        // A value published after `current` was read and before the registration took
        // effect was not offered to the wire: offer it now (offers are idempotent).
        let newest = listener.receiver.borrow_and_update().clone();
        if let Some(newest) = newest {
            wire.offer(&newest);
        }
        *push = Some(listener);
        reply
    }
}

/// The StateChange for queued push work; `None` when only types the client did not ask for
/// changed.
fn push_text(account_id: u32, work: &PushWork) -> Option<Utf8Bytes> {
    // The common case: a client of every type that saw the previous value gets the text the
    // hub encoded once for all of them.
    if let Some(shared) = &work.states.shared
        && shared.since_version == work.told.version
        && work.filter == PushFilter::all()
        && let Ok(text) = Utf8Bytes::try_from(shared.text.clone())
    {
        return Some(text);
    }
    let known = PushState::from_states(&work.told, &work.filter);
    let changed = known.changed(&work.states, &work.filter);
    if changed.is_empty() {
        return None;
    }
    let push_state = PushState::from_states(&work.states, &work.filter);
    Some(Utf8Bytes::from(websocket_state_change(
        account_id,
        &changed,
        &push_state,
    )))
}

/// The members every client message has (RFC 8887 §4.3).
struct Envelope {
    kind: String,
    id: Option<String>,
}

/// The envelope, or the problem with it and the request id if one could be read.
fn envelope(text: &str) -> Result<Envelope, (ProblemDetails, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(rename = "@type")]
        kind: Option<Value>,
        id: Option<Value>,
    }
    let raw: Raw = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(error) if error.is_data() => {
            return Err((
                ProblemDetails::not_request("the message is not a JSON object"),
                None,
            ));
        }
        Err(error) => {
            return Err((
                ProblemDetails::not_json(format!("the message is not JSON: {error}")),
                None,
            ));
        }
    };
    let id = match raw.id {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => {
            return Err((ProblemDetails::not_request("\"id\" must be a String"), None));
        }
    };
    match raw.kind {
        Some(Value::String(kind)) => Ok(Envelope { kind, id }),
        _ => Err((
            ProblemDetails::not_request("the message has no \"@type\" String"),
            id,
        )),
    }
}

/// `dataTypes` and `pushState` of a WebSocketPushEnable (RFC 8887 §4.3.5.2).
fn push_enable_arguments(text: &str) -> Result<(PushFilter, Option<String>), ProblemDetails> {
    let Ok(Value::Object(mut members)) = serde_json::from_str::<Value>(text) else {
        return Err(ProblemDetails::not_request("not a JSON object"));
    };
    let filter = match members.remove("dataTypes") {
        None | Some(Value::Null) => PushFilter::all(),
        Some(Value::Array(names)) => {
            let names: Option<Vec<&str>> = names.iter().map(Value::as_str).collect();
            let names = names
                .ok_or_else(|| ProblemDetails::not_request("\"dataTypes\" must be String[]"))?;
            // Types this server does not have can never change: ignoring them lets one
            // client talk to servers with different capabilities.
            PushFilter::known_names(names)
        }
        Some(_) => {
            return Err(ProblemDetails::not_request(
                "\"dataTypes\" must be String[] or null",
            ));
        }
    };
    let push_state = match members.remove("pushState") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(token),
        Some(_) => {
            return Err(ProblemDetails::not_request(
                "\"pushState\" must be a String",
            ));
        }
    };
    Ok((filter, push_state))
}

/// RFC 8887 §4.3.3: the Response object plus `@type` and the request's id.
fn response_message(response: crate::jmap::ApiResponse, request_id: Option<&str>) -> String {
    let mut extra = vec![("@type", json!("Response"))];
    if let Some(id) = request_id {
        extra.push(("requestId", Value::String(id.to_owned())));
    }
    response.into_string(&extra)
}

/// Runs a `Request` message on the account's owner when that is another node; `None` when
/// this node is the owner (the caller runs it). An owner that cannot be reached is a
/// `RequestError` with status 503: the client retries.
async fn run_on_owner(
    cluster: &super::ClusterLink,
    principal: &Principal,
    session_state: String,
    message: String,
    request_id: Option<&str>,
) -> Option<String> {
    let unavailable = |detail: String| {
        let mut problem = ProblemDetails::not_request(detail);
        problem.kind = "about:blank".to_owned();
        problem.status = 503;
        request_error(&problem, request_id)
    };
    let (owner, url) = match cluster.node.route(principal.account_id).await {
        crate::cluster::Route::Local => return None,
        crate::cluster::Route::Forward { node, url } => (node, url),
        crate::cluster::Route::Unavailable(detail) => return Some(unavailable(detail)),
    };
    let answer = cluster
        .forwarder
        .forward_api(
            &cluster.node,
            owner,
            &url,
            principal,
            &session_state,
            bytes::Bytes::from(message),
        )
        .await;
    Some(match answer {
        Ok(body) => match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(mut object)) => {
                object.insert("@type".to_owned(), json!("Response"));
                if let Some(id) = request_id {
                    object.insert("requestId".to_owned(), Value::String(id.to_owned()));
                }
                Value::Object(object).to_string()
            }
            _ => unavailable("the owner's answer is not a JMAP response".to_owned()),
        },
        // The owner refused the request itself: its problem details, as a RequestError.
        Err((status, body)) if status.is_client_error() => {
            match serde_json::from_str::<ProblemDetails>(&body) {
                Ok(problem) => request_error(&problem, request_id),
                Err(_) => unavailable(body),
            }
        }
        Err((_, detail)) => unavailable(detail),
    })
}

/// RFC 8887 §4.3.4: problem details plus `@type` and the request's id.
fn request_error(problem: &ProblemDetails, request_id: Option<&str>) -> String {
    let mut object = match problem.to_json() {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    object.insert("@type".to_owned(), json!("RequestError"));
    if let Some(id) = request_id {
        object.insert("requestId".to_owned(), Value::String(id.to_owned()));
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_checked() {
        assert!(envelope("{").is_err_and(|(p, _)| p.kind.ends_with("notJSON")));
        assert!(envelope("[1]").is_err_and(|(p, _)| p.kind.ends_with("notRequest")));
        assert!(
            envelope(r#"{"id":"x"}"#)
                .is_err_and(|(p, id)| p.kind.ends_with("notRequest") && id.as_deref() == Some("x"))
        );
        assert!(envelope(r#"{"@type":"Request","id":5}"#).is_err());
        let ok = envelope(r#"{"@type":"Request","id":"r1","using":[]}"#).expect("ok");
        assert_eq!(
            (ok.kind.as_str(), ok.id.as_deref()),
            ("Request", Some("r1"))
        );
    }

    #[test]
    fn keys_are_base64_of_16_bytes() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            &b"short"[..],
            b"",
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZSE=",
            b"dGhlIHNhbXBsZSBub25jZQ=!",
            b"dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
        ] {
            assert!(!is_valid_key(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn push_enable_reads_types_and_state() {
        let (filter, state) = push_enable_arguments(
            r#"{"@type":"WebSocketPushEnable","dataTypes":["Email","Calendar"],"pushState":"1.2"}"#,
        )
        .expect("ok");
        assert!(filter.wants(crate::store::commit::DataType::Email));
        assert!(!filter.wants(crate::store::commit::DataType::Mailbox));
        assert_eq!(state.as_deref(), Some("1.2"));
        assert!(
            push_enable_arguments(r#"{"@type":"WebSocketPushEnable","dataTypes":[1]}"#).is_err()
        );
    }
}
