//! The EventSource push channel (RFC 8620 §7.3): a `text/event-stream` response carrying
//! `state` events (a StateChange, its `id` the pushState) and `ping` events.
//!
//! Invariants:
//! - the query is validated before the stream starts: a bad `types`, `closeafter` or `ping`
//!   is a 400 problem, not a silent default;
//! - the ping interval is clamped to the configured minimum and maximum, and the `ping`
//!   event reports the interval actually used (RFC 8620 §7.3);
//! - `Last-Event-ID` is a pushState: what changed since is sent at once;
//! - like WebSocket push, a slow reader is coalesced by the hub's channel; the stream ends
//!   when the server shuts down.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use serde_json::Value;

use super::AppState;
use super::response::{BoxError, ResponseBody, problem};
use crate::auth::Principal;
use crate::push::hub::StatesReceiver;
use crate::push::shared::{Deliver, SharedListeners};
use crate::push::state_change::state_change;
use crate::push::{PushFilter, PushHub, PushState};

/// The EventSource query (RFC 8620 §7.3), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    filter: PushFilter,
    close_after_state: bool,
    /// `None`: no pings (`ping=0`).
    ping: Option<Duration>,
}

/// Ping bounds from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PingBounds {
    pub min: Duration,
    pub max: Duration,
}

impl PingBounds {
    pub fn from_config(config: &crate::push::PushConfig) -> PingBounds {
        let min = Duration::from_secs(config.eventsource_min_ping_seconds.max(1));
        PingBounds {
            min,
            max: Duration::from_secs(config.eventsource_max_ping_seconds).max(min),
        }
    }
}

fn parse_query(query: Option<&str>, bounds: PingBounds) -> Result<Query, String> {
    let mut types = None;
    let mut close_after = None;
    let mut ping = None;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| format!("{name} is not UTF-8"))?;
        match name {
            "types" => types = Some(value.into_owned()),
            "closeafter" => close_after = Some(value.into_owned()),
            "ping" => ping = Some(value.into_owned()),
            // Other parameters (a browser's ticket, cache busters) are not ours to refuse.
            _ => {}
        }
    }
    let filter = match types.as_deref() {
        None | Some("*") => PushFilter::all(),
        Some(list) => PushFilter::known_names(list.split(',').map(str::trim)),
    };
    let close_after_state = match close_after.as_deref() {
        Some("state") => true,
        None | Some("no") => false,
        Some(other) => {
            return Err(format!(
                "closeafter must be \"state\" or \"no\", not {other:?}"
            ));
        }
    };
    let ping = match ping.as_deref() {
        None | Some("0") => None,
        Some(text) => {
            let seconds: u64 = text
                .parse()
                .map_err(|_| format!("ping must be a non-negative integer, not {text:?}"))?;
            // RFC 8620 §7.3: the server may impose a minimum and a maximum.
            Some(Duration::from_secs(seconds).clamp(bounds.min, bounds.max))
        }
    };
    Ok(Query {
        filter,
        close_after_state,
        ping,
    })
}

/// Answers a GET on the EventSource URL.
pub async fn serve(
    state: &AppState,
    principal: &Principal,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response<ResponseBody> {
    let query = match parse_query(query, state.eventsource_ping) {
        Ok(query) => query,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, &detail),
    };
    let mut receiver = state.push.subscribe(principal.account_id);
    let Some(current) = PushHub::current(&mut receiver).await else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    };
    let up_to_date = PushState::from_states(&current, &query.filter);
    // The browser resends the last event's id, our pushState, when it reconnects.
    let first = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(|token| {
            let known = PushState::parse(token.trim()).unwrap_or_default();
            known.changed(&current, &query.filter)
        })
        .filter(|changed| !changed.is_empty())
        .map(|changed| state_event(principal.account_id, &changed, &up_to_date));
    // The accounts shared with the user (RFC 9670): their events carry no id, so the one a
    // browser resends stays this account's pushState.
    let (shared_sender, shared_changes) = tokio::sync::mpsc::channel::<String>(SHARED_EVENT_QUEUE);
    let deliver: Deliver = std::sync::Arc::new(move |account_id, changed, _push_state| {
        let data = Value::Object(state_change(account_id, changed)).to_string();
        shared_sender
            .try_send(format!("event: state\ndata: {data}\n\n"))
            .is_ok()
    });
    let started = match state.engine.viewer(principal).await {
        Ok(viewer) => SharedListeners::start(&state.push, viewer, &query.filter, deliver).await,
        Err(error) => Err(error),
    };
    let shared = match started {
        Ok(listeners) => Some(listeners),
        Err(error) => {
            tracing::warn!(%error, "shared-account events not started");
            None
        }
    };
    let stream = EventStream {
        receiver,
        shared_changes,
        _shared: shared,
        filter: query.filter,
        known: up_to_date,
        close_after_state: query.close_after_state,
        ping: query.ping,
        pending: first,
        finished: false,
        stopped: state.push.stopped(),
    };
    let body = StreamBody::new(futures_util::stream::unfold(
        stream,
        EventStream::next_frame,
    ));
    let mut response = Response::new(body.boxed_unsync());
    let response_headers = response.headers_mut();
    response_headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    response_headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    // Proxies such as nginx must not buffer the stream.
    response_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    *response.status_mut() = StatusCode::OK;
    response
}

/// How many events of shared accounts may wait for the stream.
const SHARED_EVENT_QUEUE: usize = 16;

struct EventStream {
    receiver: StatesReceiver,
    /// Events of the accounts shared with the user, from `_shared`'s listeners.
    shared_changes: tokio::sync::mpsc::Receiver<String>,
    _shared: Option<SharedListeners>,
    filter: PushFilter,
    known: PushState,
    close_after_state: bool,
    ping: Option<Duration>,
    /// A state event to send before waiting (the Last-Event-ID catch-up).
    pending: Option<String>,
    finished: bool,
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

type EventFrame = Result<Frame<Bytes>, BoxError>;

impl EventStream {
    async fn next_frame(mut self) -> Option<(EventFrame, EventStream)> {
        if self.finished {
            return None;
        }
        if let Some(event) = self.pending.take() {
            self.finished = self.close_after_state;
            return Some((Ok(Frame::data(Bytes::from(event))), self));
        }
        let event = loop {
            let ping = async {
                match self.ping {
                    Some(interval) => tokio::time::sleep(interval).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = self.receiver.changed() => {
                    changed.ok()?;
                    let Some(states) = self.receiver.borrow_and_update().clone() else {
                        continue;
                    };
                    let changed = self.known.changed(&states, &self.filter);
                    if changed.is_empty() {
                        continue;
                    }
                    self.known = PushState::from_states(&states, &self.filter);
                    // RFC 8620 §7.3 closeafter=state: end the response after one state event.
                    self.finished = self.close_after_state;
                    break state_event(states.account_id, &changed, &self.known);
                }
                Some(event) = self.shared_changes.recv() => {
                    self.finished = self.close_after_state;
                    break event;
                }
                () = ping => {
                    let seconds = self.ping.map_or(0, |interval| interval.as_secs());
                    break format!("event: ping\ndata: {{\"interval\":{seconds}}}\n\n");
                }
                () = &mut self.stopped => return None,
            }
        };
        Some((Ok(Frame::data(Bytes::from(event))), self))
    }
}

/// One `state` event: the StateChange as data, the pushState as id.
fn state_event(
    account_id: u32,
    changed: &[(crate::store::commit::DataType, u64)],
    push_state: &PushState,
) -> String {
    let data = Value::Object(state_change(account_id, changed)).to_string();
    format!("event: state\nid: {push_state}\ndata: {data}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commit::DataType;

    const BOUNDS: PingBounds = PingBounds {
        min: Duration::from_secs(5),
        max: Duration::from_secs(300),
    };

    #[test]
    fn query_parameters_are_validated_and_ping_clamped() {
        let query = parse_query(Some("types=Email,Mailbox&closeafter=state&ping=1"), BOUNDS)
            .expect("valid");
        assert!(query.filter.wants(DataType::Email) && !query.filter.wants(DataType::Thread));
        assert!(query.close_after_state);
        assert_eq!(
            query.ping,
            Some(Duration::from_secs(5)),
            "raised to the minimum"
        );
        let all = parse_query(Some("types=*&closeafter=no&ping=0"), BOUNDS).expect("valid");
        assert_eq!(all.filter, PushFilter::all());
        assert_eq!(all.ping, None);
        assert_eq!(
            parse_query(Some("ping=99999"), BOUNDS).expect("valid").ping,
            Some(Duration::from_secs(300))
        );
        assert!(parse_query(Some("closeafter=maybe"), BOUNDS).is_err());
        assert!(parse_query(Some("ping=-1"), BOUNDS).is_err());
        assert!(parse_query(Some("ping=soon"), BOUNDS).is_err());
    }
}
