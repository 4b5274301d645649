//! One HTTP connection's deadlines and accounting, around hyper (which knows only a header
//! timeout for HTTP/1, started when it begins reading a head, and nothing before hyper-util's
//! protocol sniff has its first bytes):
//!
//! - [`WatchedIo`] wraps the socket: it holds the connection's [`ConnectionPermit`] (so the
//!   slot is held as long as the socket, an upgraded WebSocket included) and tells the
//!   [`Activity`] when bytes arrive while no request is in flight;
//! - [`TrackedBody`] wraps each response body: a request is in flight from the moment hyper
//!   hands it over until its response body is dropped (an EventSource stream stays in flight
//!   as long as it streams, so push is never cut by the idle timeout);
//! - [`watchdog`] closes the connection when no request is in flight and one deadline
//!   passed: no first byte within `first_byte`, a request head not whole within `header` of
//!   its first byte (however slowly it trickles), or no new request within `idle`.
//!
//! A refused connection gets a short HTTP/1.1 answer, `429` (its address or network is over
//! its share) or `503` (the listener is full), with `Retry-After` (RFC 9110 §10.2.3,
//! RFC 6585 §4), unless it is TLS: then it is closed, as no handshake is spent on it.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::limits::{ConnectionPermit, Refusal};

/// The per-connection deadlines (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub first_byte: Duration,
    pub header: Duration,
    pub idle: Duration,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            first_byte: Duration::from_secs(10),
            header: Duration::from_secs(20),
            idle: Duration::from_secs(60),
        }
    }
}

const NONE: u64 = u64::MAX;

/// What the watchdog needs to know about one connection; times are milliseconds since
/// `started`.
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    requests_seen: AtomicBool,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    changed: Notify,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests_seen: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            changed: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.started + Duration::from_millis(millis)
    }

    /// Bytes arrived: when no request is in flight, they start the next request head.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == NONE
        {
            self.head_started.store(self.now(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests_seen.store(true, Ordering::Release);
        self.head_started.store(NONE, Ordering::Release);
        self.changed.notify_one();
    }

    fn request_finished(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// When the connection is to be closed if nothing changes, and why.
    fn deadline(&self, deadlines: &Deadlines) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head != NONE {
            return Some((self.at(head) + deadlines.header, "header"));
        }
        if !self.requests_seen.load(Ordering::Acquire) {
            return Some((self.started + deadlines.first_byte, "first_byte"));
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        Some((self.at(idle) + deadlines.idle, "idle"))
    }
}

/// Returns (with the deadline's name) once the connection is to be closed.
pub async fn watchdog(activity: Arc<Activity>, deadlines: Deadlines) -> &'static str {
    loop {
        let changed = activity.changed.notified();
        match activity.deadline(&deadlines) {
            None => changed.await,
            Some((deadline, why)) => {
                if Instant::now() >= deadline {
                    return why;
                }
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
        }
    }
}

/// Marks a request in flight until dropped.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    pub fn start(activity: &Arc<Activity>) -> InFlight {
        activity.request_started();
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request in flight until hyper drops it.
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, in_flight: InFlight) -> TrackedBody<B> {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a handler keeps until its connection closes (a request extension): the push slot of a
/// WebSocket, whose connection outlives the request that upgraded it.
#[derive(Clone, Default)]
pub struct ConnectionHold(Arc<Mutex<Vec<Box<dyn Any + Send>>>>);

impl ConnectionHold {
    pub fn keep(&self, value: impl Any + Send) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Box::new(value));
    }
}

/// The socket of one connection with its slot and its activity.
pub struct WatchedIo<I> {
    inner: I,
    activity: Arc<Activity>,
    _permit: ConnectionPermit,
    _hold: ConnectionHold,
}

impl<I> WatchedIo<I> {
    pub fn new(
        inner: I,
        activity: Arc<Activity>,
        permit: ConnectionPermit,
        hold: ConnectionHold,
    ) -> WatchedIo<I> {
        WatchedIo {
            inner,
            activity,
            _permit: permit,
            _hold: hold,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WatchedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        let outcome = Pin::new(&mut this.inner).poll_read(context, buffer);
        if matches!(outcome, Poll::Ready(Ok(()))) && buffer.filled().len() > before {
            this.activity.bytes_read();
        }
        outcome
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WatchedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}

/// The bytes of a refusal: problem JSON with `Retry-After`, then the connection closes.
pub fn refusal_response(refusal: Refusal, retry_after: u64) -> Vec<u8> {
    let (code, reason) = if refusal.is_client_share() {
        (429, "Too Many Requests")
    } else {
        (503, "Service Unavailable")
    };
    let body = serde_json::json!({
        "type": "about:blank",
        "title": reason,
        "status": code,
        "detail": format!("{refusal}; retry in {retry_after} s"),
    })
    .to_string();
    format!(
        "HTTP/1.1 {code} {reason}\r\nRetry-After: {retry_after}\r\n\
         Content-Type: application/problem+json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers a refused plain-HTTP connection and closes it: the answer, then a short drain of
/// what the client already sent (closing with unread bytes would reset the connection and
/// could destroy the answer before the client reads it).
pub async fn refuse(mut stream: TcpStream, answer: Vec<u8>) {
    let work = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 2048];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                read => drained += read,
            }
        }
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), work).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_connection_through_its_phases() {
        let deadlines = Deadlines {
            first_byte: Duration::from_secs(1),
            header: Duration::from_secs(2),
            idle: Duration::from_secs(3),
        };
        let activity = Activity::new();
        let (_, why) = activity.deadline(&deadlines).unwrap();
        assert_eq!(why, "first_byte");
        activity.bytes_read();
        assert_eq!(activity.deadline(&deadlines).unwrap().1, "header");
        let in_flight = InFlight::start(&activity);
        assert!(activity.deadline(&deadlines).is_none());
        // Bytes while a request is in flight (its body) start no head.
        activity.bytes_read();
        drop(in_flight);
        assert_eq!(activity.deadline(&deadlines).unwrap().1, "idle");
        activity.bytes_read();
        assert_eq!(activity.deadline(&deadlines).unwrap().1, "header");
    }

    #[test]
    fn refusals_say_why_with_retry_after() {
        let answer = String::from_utf8(refusal_response(Refusal::Address, 7)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(answer.contains("\r\nRetry-After: 7\r\n"));
        assert!(answer.contains("your address"));
        let answer = String::from_utf8(refusal_response(Refusal::Total, 5)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    }
}
