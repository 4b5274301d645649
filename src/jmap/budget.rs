//! The memory budget of API responses (issue 13): every method response is serialized as soon
//! as the method returns and its bytes are charged, both to the request (at most
//! [`MemoryLimits::max_response_bytes`] of JSON per request) and to one server-wide budget of
//! bytes held by in-flight responses ([`MemoryLimits::response_budget_bytes`]). A charge that
//! does not fit the server-wide budget waits (the request queues) up to
//! [`MemoryLimits::queue_wait`], then the call fails cleanly.
//!
//! Errors, and why these (RFC 8620 §3.6.2 lets any method answer the general method errors;
//! §5.1 defines `requestTooLarge` for /get):
//! - over the per-request limit: `requestTooLarge`, the error of a /get asked for more than the
//!   server will answer at once; the client fixes it by asking for fewer objects or
//!   properties, and retrying unchanged would fail again (`serverPartialFail` would wrongly
//!   say that some changes were made, `serverFail` that the server is broken).
//! - the server-wide budget stays full for `queue_wait`: `serverUnavailable` (§3.6.2: "Some
//!   internal server resource was temporarily unavailable. Attempting the same operation
//!   later (perhaps after a backoff with a random factor) may succeed").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::error::{MethodError, MethodErrorType};

/// Limits derived from `[server] memory_budget_mb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// The whole budget, in bytes.
    pub budget_bytes: u64,
    /// Bytes of serialized responses all in-flight requests may hold together (half the
    /// budget: the rest is for the store's cache, parsing and rendering).
    pub response_budget_bytes: u64,
    /// JSON bytes one API request may answer (1/32 of the budget: 32 MiB by default).
    pub max_response_bytes: u64,
    /// Server-side cap on one EmailBodyValue's `value` (on top of the client's
    /// `maxBodyValueBytes`): 1/256 of the budget, 4 MiB by default.
    pub max_body_value_bytes: u64,
    /// How long a request waits for room in the server-wide budget before its call fails.
    pub queue_wait: Duration,
}

/// `[server] memory_budget_mb` by default (the configuration owns the value).
pub use crate::config::DEFAULT_MEMORY_BUDGET_MB;

impl MemoryLimits {
    pub fn from_budget_mb(budget_mb: u64) -> MemoryLimits {
        let budget_bytes = budget_mb.max(16).saturating_mul(1 << 20);
        MemoryLimits {
            budget_bytes,
            response_budget_bytes: budget_bytes / 2,
            max_response_bytes: budget_bytes / 32,
            max_body_value_bytes: budget_bytes / 256,
            queue_wait: Duration::from_secs(5),
        }
    }
}

impl Default for MemoryLimits {
    fn default() -> MemoryLimits {
        MemoryLimits::from_budget_mb(DEFAULT_MEMORY_BUDGET_MB)
    }
}

/// The server-wide count of bytes held by in-flight responses.
#[derive(Debug)]
pub struct ResponseBudget {
    capacity: u64,
    used: AtomicU64,
    freed: Notify,
}

impl ResponseBudget {
    pub fn new(capacity: u64) -> Arc<ResponseBudget> {
        Arc::new(ResponseBudget {
            capacity,
            used: AtomicU64::new(0),
            freed: Notify::new(),
        })
    }

    /// Bytes currently held.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let total = used.checked_add(bytes)?;
                (total <= self.capacity).then_some(total)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
        self.freed.notify_waiters();
    }

    /// Takes `bytes`, waiting up to `wait` for other responses to be sent.
    async fn take(&self, bytes: u64, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = self.freed.notified();
            if self.try_take(bytes) {
                return true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return self.try_take(bytes);
            }
        }
    }
}

/// Bytes held in a [`ResponseBudget`], given back when dropped (or bit by bit as a response is
/// sent, [`Reservation::release`]).
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ResponseBudget>,
    bytes: u64,
}

impl Reservation {
    pub fn new(budget: Arc<ResponseBudget>) -> Reservation {
        Reservation { budget, bytes: 0 }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gives back up to `bytes` (what was sent).
    pub fn release(&mut self, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.budget.release(bytes);
    }

    /// Holds `bytes` more even over the budget (for the few bytes of an error response).
    fn force(&mut self, bytes: u64) {
        self.budget.used.fetch_add(bytes, Ordering::AcqRel);
        self.bytes += bytes;
    }

    async fn take(&mut self, bytes: u64, wait: Duration) -> bool {
        if !self.budget.take(bytes, wait).await {
            return false;
        }
        self.bytes += bytes;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// One request's account of the JSON it answers.
#[derive(Debug)]
pub struct ResponseMeter {
    limits: MemoryLimits,
    /// Bytes charged so far (responses settled plus the running call's advance charges).
    used: u64,
    /// What the running call charged in advance ([`ResponseMeter::charge`]).
    call_charged: u64,
    reservation: Reservation,
}

impl ResponseMeter {
    pub fn new(limits: MemoryLimits, budget: Arc<ResponseBudget>) -> ResponseMeter {
        ResponseMeter {
            limits,
            used: 0,
            call_charged: 0,
            reservation: Reservation::new(budget),
        }
    }

    pub fn limits(&self) -> &MemoryLimits {
        &self.limits
    }

    /// JSON bytes this request has answered (or been charged for) so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Charges `bytes` of the running call's response before the call returns, so that a
    /// method building a large answer stops early. Errors as in the module documentation.
    pub async fn charge(&mut self, bytes: u64) -> Result<(), MethodError> {
        if self.used.saturating_add(bytes) > self.limits.max_response_bytes {
            return Err(self.too_large());
        }
        if !self.reservation.take(bytes, self.limits.queue_wait).await {
            return Err(unavailable());
        }
        self.used += bytes;
        self.call_charged += bytes;
        Ok(())
    }

    /// Settles a call's serialized response of `size` bytes against what the call charged in
    /// advance. `Err` says the response does not fit: the caller answers the error instead
    /// (and settles that with [`ResponseMeter::settle_error`]).
    pub async fn settle(&mut self, size: u64) -> Result<(), MethodError> {
        let advance = std::mem::take(&mut self.call_charged);
        let before = self.used - advance;
        if before.saturating_add(size) > self.limits.max_response_bytes {
            self.used = before;
            self.reservation.release(advance);
            return Err(self.too_large());
        }
        if size > advance {
            if !self
                .reservation
                .take(size - advance, self.limits.queue_wait)
                .await
            {
                self.used = before;
                self.reservation.release(advance);
                return Err(unavailable());
            }
        } else {
            self.reservation.release(advance - size);
        }
        self.used = before + size;
        Ok(())
    }

    /// Settles an error response: small (at most a few hundred bytes per call, and calls are
    /// bounded by maxCallsInRequest), so always held even over the budget, and not counted
    /// against the request's limit, which would otherwise refuse the small calls after it.
    pub fn settle_error(&mut self, size: u64) {
        let advance = std::mem::take(&mut self.call_charged);
        self.used -= advance;
        self.reservation.release(advance);
        self.reservation.force(size);
    }

    /// The bytes held, to be given back as the response is sent.
    pub fn into_reservation(self) -> Reservation {
        self.reservation
    }

    fn too_large(&self) -> MethodError {
        MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!(
                "the response would exceed {} bytes; ask for fewer objects or properties",
                self.limits.max_response_bytes
            ),
        )
    }
}

fn unavailable() -> MethodError {
    MethodError::with_description(
        MethodErrorType::ServerUnavailable,
        "the server is answering too much at once; retry after a backoff",
    )
}

/// Gives freed heap back after a large response (the mechanism lives below every layer).
pub use crate::limits::memory::{TRIM_AFTER_BYTES, return_freed_memory};

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_response: u64) -> MemoryLimits {
        MemoryLimits {
            max_response_bytes: max_response,
            queue_wait: Duration::from_millis(20),
            ..MemoryLimits::from_budget_mb(16)
        }
    }

    #[test]
    fn limits_derive_from_the_budget() {
        let limits = MemoryLimits::default();
        assert_eq!(limits.budget_bytes, 1 << 30);
        assert_eq!(limits.response_budget_bytes, 512 << 20);
        assert_eq!(limits.max_response_bytes, 32 << 20);
        assert_eq!(limits.max_body_value_bytes, 4 << 20);
    }

    #[tokio::test]
    async fn per_request_limit_and_advance_charges() {
        let budget = ResponseBudget::new(1000);
        let mut meter = ResponseMeter::new(limits(100), budget.clone());
        meter.charge(60).await.unwrap();
        meter.settle(50).await.unwrap();
        assert_eq!((meter.used(), budget.used()), (50, 50));
        let error = meter.charge(60).await.unwrap_err();
        assert_eq!(error.kind, MethodErrorType::RequestTooLarge);
        let error = meter.settle(51).await.unwrap_err();
        assert_eq!(error.kind, MethodErrorType::RequestTooLarge);
        meter.settle_error(10);
        assert_eq!((meter.used(), budget.used()), (50, 60));
        meter.settle(50).await.unwrap();
        assert_eq!((meter.used(), budget.used()), (100, 110));
        drop(meter);
        assert_eq!(budget.used(), 0, "everything is given back");
    }

    #[tokio::test]
    async fn server_wide_budget_queues_then_fails() {
        let budget = ResponseBudget::new(100);
        let mut first = ResponseMeter::new(limits(1000), budget.clone());
        first.settle(80).await.unwrap();
        let mut second = ResponseMeter::new(limits(1000), budget.clone());
        let error = second.settle(30).await.unwrap_err();
        assert_eq!(error.kind, MethodErrorType::ServerUnavailable);
        assert_eq!(budget.used(), 80);
        let waiting = tokio::spawn(async move {
            let mut third = ResponseMeter::new(
                MemoryLimits {
                    queue_wait: Duration::from_secs(5),
                    ..limits(1000)
                },
                budget,
            );
            third
                .settle(30)
                .await
                .map(|()| third.into_reservation().bytes())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut reservation = first.into_reservation();
        reservation.release(50);
        assert_eq!(
            waiting.await.unwrap().unwrap(),
            30,
            "the queued request got in"
        );
    }
}
