//! The byte stream under one JMAP WebSocket, shared by the connection task (through
//! tungstenite) and the push hub's fan-out, which writes pre-encoded StateChange frames to an
//! idle plain-TCP socket itself instead of waking the connection's task.
//!
//! Invariants:
//! - frames never interleave on the wire: the fan-out writes only at a frame boundary (no
//!   partial frame of the connection's own writer outstanding, nothing queued for push), and
//!   the unsent tail of a frame it started goes out before any other byte;
//! - the fan-out never blocks: one non-blocking `write` per socket; a socket that cannot take
//!   the whole frame now gets the newest states queued instead (one slot: coalescing) and its
//!   task is woken to send them, under the connection's send deadline;
//! - a StateChange is never older than one the client already got: the fan-out writes only
//!   the frame that follows what the client was told, and nothing while the connection task
//!   is sending a push of its own.
//!
//! The tail-first rule relies on tungstenite writing its whole output buffer on every `write`
//! (complete frames, front first): a `write` that takes all it was given ends at a frame
//! boundary, a shorter one does not.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::push::hub::DirectTarget;
use crate::push::{AccountStates, PushFilter};

/// The socket state shared by a connection's task, its tungstenite stream and the fan-out.
pub struct Wire {
    /// `None` when the connection is not plain TCP (TLS): the fan-out then only queues.
    tcp: Option<TcpStream>,
    state: Mutex<WireState>,
    /// Wakes the connection task: a tail to finish or queued states to send.
    wake: Notify,
}

#[derive(Default)]
struct WireState {
    /// The rest of a frame the fan-out started: goes out before anything else.
    tail: Option<Bytes>,
    /// The connection's own writer left a partial frame on the wire.
    mid_frame: bool,
    /// No more push frames (a Close frame was or is being sent).
    closed: bool,
    push: Option<PushSlot>,
}

/// What a connection with push enabled has told its client, and what is queued.
struct PushSlot {
    filter: PushFilter,
    /// Only a listener of every type can take the hub's shared frame.
    takes_shared: bool,
    told: Arc<AccountStates>,
    /// The newest states not sent yet (one slot: a slow client is coalesced).
    pending: Option<Arc<AccountStates>>,
    /// The connection task is sending a push itself: the fan-out must not overtake it.
    sending: bool,
}

/// A push the connection task has to send: `told` is what the client knew before.
pub struct PushWork {
    pub filter: PushFilter,
    pub told: Arc<AccountStates>,
    pub states: Arc<AccountStates>,
}

fn lock(mutex: &Mutex<WireState>) -> MutexGuard<'_, WireState> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wire {
    fn new(tcp: Option<TcpStream>) -> Arc<Wire> {
        Arc::new(Wire {
            tcp,
            state: Mutex::new(WireState::default()),
            wake: Notify::new(),
        })
    }

    /// The connection's byte stream: the plain TCP socket (shared with the fan-out) when the
    /// upgrade was over one, else the upgraded stream as it is.
    pub fn from_upgraded(upgraded: Upgraded) -> (Arc<Wire>, WireIo) {
        match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded) {
            Ok(parts) => {
                let wire = Wire::new(Some(parts.io.into_inner()));
                // A copy: the bytes hyper read ahead are a slice of its whole read buffer,
                // which would otherwise stay allocated for the life of an idle socket.
                let io = WireIo::Shared {
                    wire: Arc::clone(&wire),
                    unread: Bytes::copy_from_slice(&parts.read_buf),
                };
                (wire, io)
            }
            Err(upgraded) => (Wire::new(None), WireIo::Upgraded(TokioIo::new(upgraded))),
        }
    }

    /// Resolves when the fan-out left work for the connection task.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Starts (or restarts, with a new filter) push: the client now knows `told`. While
    /// `sending`, the fan-out queues instead of writing (the caller is about to send a reply
    /// about `told` and calls [`Wire::sent_push`] after).
    pub fn enable_push(&self, filter: PushFilter, told: Arc<AccountStates>, sending: bool) {
        let takes_shared = filter == PushFilter::all();
        lock(&self.state).push = Some(PushSlot {
            filter,
            takes_shared,
            told,
            pending: None,
            sending,
        });
    }

    pub fn disable_push(&self) {
        lock(&self.state).push = None;
    }

    /// No push frame may follow: the connection is closing.
    pub fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.push = None;
    }

    /// The queued states to send, if any; marks the connection as sending until
    /// [`Wire::sent_push`]. The client counts as told once this returns.
    pub fn take_push(&self) -> Option<PushWork> {
        let mut state = lock(&self.state);
        let slot = state.push.as_mut()?;
        let states = slot.pending.take()?;
        let told = std::mem::replace(&mut slot.told, Arc::clone(&states));
        slot.sending = true;
        Some(PushWork {
            filter: slot.filter.clone(),
            told,
            states,
        })
    }

    /// The connection's own push (or whatever it sent) went out: the fan-out may write again.
    /// States queued meanwhile wake the connection task once more.
    pub fn sent_push(&self) {
        let mut state = lock(&self.state);
        let Some(slot) = state.push.as_mut() else {
            return;
        };
        slot.sending = false;
        if slot.pending.is_some() {
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Writes what is left of a frame the fan-out started; Ready once nothing is left.
    pub fn poll_flush_tail(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(tcp) = &self.tcp else {
            return Poll::Ready(Ok(()));
        };
        loop {
            let mut state = lock(&self.state);
            let Some(tail) = state.tail.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match tcp.try_write(tail) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(written) if written == tail.len() => state.tail = None,
                Ok(written) => tail.advance(written),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    drop(state);
                    ready!(tcp.poll_write_ready(cx))?;
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// The connection's own bytes (tungstenite's output buffer), after any tail.
    fn poll_write_own(
        &self,
        tcp: &TcpStream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_flush_tail(cx))?;
            let mut state = lock(&self.state);
            if state.tail.is_some() {
                // The fan-out started a frame between the two locks.
                continue;
            }
            match tcp.try_write(buf) {
                Ok(written) => {
                    state.mid_frame = written < buf.len();
                    return Poll::Ready(Ok(written));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    drop(state);
                    ready!(tcp.poll_write_ready(cx))?;
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl DirectTarget for Wire {
    fn offer(&self, states: &Arc<AccountStates>) {
        let mut state = lock(&self.state);
        let at_boundary = state.tail.is_none() && !state.mid_frame && !state.closed;
        let Some(slot) = state.push.as_mut() else {
            return;
        };
        if states.version <= slot.told.version
            || slot
                .pending
                .as_ref()
                .is_some_and(|pending| states.version <= pending.version)
        {
            return;
        }
        let frame = match (&self.tcp, &states.shared) {
            (Some(tcp), Some(shared))
                if at_boundary
                    && slot.takes_shared
                    && !slot.sending
                    && slot.pending.is_none()
                    && shared.since_version == slot.told.version =>
            {
                Some((tcp, &shared.frame))
            }
            _ => None,
        };
        if let Some((tcp, frame)) = frame {
            match tcp.try_write(frame) {
                Ok(written) if written == frame.len() => {
                    slot.told = Arc::clone(states);
                    return;
                }
                Ok(written) if written > 0 => {
                    slot.told = Arc::clone(states);
                    state.tail = Some(frame.slice(written..));
                    drop(state);
                    self.wake.notify_one();
                    return;
                }
                // Full (or broken: the connection task finds out when it writes or reads).
                _ => {}
            }
        }
        slot.pending = Some(Arc::clone(states));
        drop(state);
        self.wake.notify_one();
    }
}

/// The stream tungstenite reads and writes.
pub enum WireIo {
    /// Plain TCP shared with the fan-out; `unread` holds bytes hyper read past the upgrade.
    Shared {
        wire: Arc<Wire>,
        unread: Bytes,
    },
    Upgraded(TokioIo<Upgraded>),
}

impl AsyncRead for WireIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WireIo::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
            WireIo::Shared { wire, unread } => {
                if !unread.is_empty() {
                    let count = unread.len().min(buf.remaining());
                    buf.put_slice(&unread.split_to(count));
                    if unread.is_empty() {
                        // Let go of the allocation.
                        *unread = Bytes::new();
                    }
                    return Poll::Ready(Ok(()));
                }
                let Some(tcp) = &wire.tcp else {
                    return Poll::Ready(Ok(()));
                };
                loop {
                    ready!(tcp.poll_read_ready(cx))?;
                    match tcp.try_read(buf.initialize_unfilled()) {
                        Ok(read) => {
                            buf.advance(read);
                            return Poll::Ready(Ok(()));
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        Err(error) => return Poll::Ready(Err(error)),
                    }
                }
            }
        }
    }
}

impl AsyncWrite for WireIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WireIo::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
            WireIo::Shared { wire, .. } => match &wire.tcp {
                Some(tcp) => wire.poll_write_own(tcp, cx, buf),
                None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WireIo::Upgraded(io) => Pin::new(io).poll_flush(cx),
            // TCP has no user-space buffer; only a tail may be waiting.
            WireIo::Shared { wire, .. } => wire.poll_flush_tail(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WireIo::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
            // The socket closes when the connection and the hub both let go of it.
            WireIo::Shared { wire, .. } => {
                wire.close();
                wire.poll_flush_tail(cx)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::hub::SharedStateChange;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn states(version: u64) -> Arc<AccountStates> {
        Arc::new(AccountStates {
            account_id: 1,
            version,
            states: Vec::new(),
            shared: Some(SharedStateChange::new(
                version - 1,
                format!("{{\"v\":{version}}}"),
            )),
        })
    }

    /// A server-side wire over a loopback connection, and the client's end.
    async fn wire_pair() -> (Arc<Wire>, WireIo, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let wire = Wire::new(Some(server));
        let io = WireIo::Shared {
            wire: Arc::clone(&wire),
            unread: Bytes::new(),
        };
        (wire, io, client)
    }

    #[tokio::test]
    async fn the_fan_out_writes_only_between_the_connections_own_frames() {
        let (wire, mut io, mut client) = wire_pair().await;
        wire.enable_push(PushFilter::all(), states(1), false);
        // At a boundary: the frame goes straight out.
        wire.offer(&states(2));
        let mut first = vec![0u8; states(2).shared.as_ref().expect("frame").frame.len()];
        client.read_exact(&mut first).await.expect("read");
        assert_eq!(first, states(2).shared.as_ref().expect("frame").frame);

        // The connection's own "frame" is far larger than the socket buffers: its first
        // write ends partway through it.
        let own: Vec<u8> = (0..16 * 1024 * 1024)
            .map(|index| (index % 251) as u8)
            .collect();
        let written = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, &own))
            .await
            .expect("write");
        assert!(written < own.len(), "a partial write");
        // Room frees up while the rest is not written yet: the fan-out must still wait.
        let mut received = vec![0u8; 64 * 1024];
        client.read_exact(&mut received).await.expect("read");
        wire.tcp
            .as_ref()
            .expect("tcp")
            .writable()
            .await
            .expect("writable");
        wire.offer(&states(3));
        assert!(
            lock(&wire.state)
                .push
                .as_ref()
                .expect("push")
                .pending
                .is_some()
        );

        // The connection finishes its frame; then the queued push is its to send.
        let expected_own = own.clone();
        let reading = tokio::spawn(async move {
            let own = expected_own;
            let mut all = received;
            let mut rest = vec![0u8; own.len() - all.len()];
            client.read_exact(&mut rest).await.expect("read");
            all.extend_from_slice(&rest);
            (all == own, client)
        });
        io.write_all(&own[written..]).await.expect("the rest");
        let (intact, mut client) = reading.await.expect("reader");
        assert!(intact, "no push bytes inside the connection's frame");
        let work = wire.take_push().expect("queued states");
        assert_eq!((work.told.version, work.states.version), (2, 3));
        wire.sent_push();
        // Back at a boundary: direct again.
        wire.offer(&states(4));
        let expected = states(4).shared.as_ref().expect("frame").frame.clone();
        let mut next = vec![0u8; expected.len()];
        client.read_exact(&mut next).await.expect("read");
        assert_eq!(next, expected);
        // Nothing older than what the client was told is ever offered again.
        wire.offer(&states(3));
        assert!(
            lock(&wire.state)
                .push
                .as_ref()
                .expect("push")
                .pending
                .is_none()
        );
    }
}
