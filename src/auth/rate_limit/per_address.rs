//! A plain token bucket per client address that only recorded events drain: a client gets
//! `burst` events, then one more every `refill`; while the bucket is empty `check` refuses.
//! The SMTP listener limits new connections per address with it (logins go through the
//! [`super::LoginThrottle`], which never refuses outright what it can slow down).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bounds the table: past it, buckets that have refilled completely are dropped (they carry
/// no information), and if that is not enough the oldest half goes.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures still allowed, fractional while refilling.
    tokens: f64,
    updated: Instant,
}

pub struct FailedLoginLimiter {
    burst: f64,
    refill: Duration,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl FailedLoginLimiter {
    pub fn new(burst: u32, refill: Duration) -> FailedLoginLimiter {
        debug_assert!(burst > 0 && !refill.is_zero());
        FailedLoginLimiter {
            burst: f64::from(burst.max(1)),
            refill: refill.max(Duration::from_millis(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated);
        let gained = elapsed.as_secs_f64() / self.refill.as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + gained).min(self.burst),
            updated: now,
        }
    }

    /// `Err(retry_after)` when `address` has used up its failures.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let buckets = self.lock();
        let Some(bucket) = buckets.get(&address) else {
            return Ok(());
        };
        let bucket = self.refilled(*bucket, now);
        if bucket.tokens >= 1.0 {
            return Ok(());
        }
        Err(self.refill.mul_f64(1.0 - bucket.tokens))
    }

    /// Records a failed login from `address`.
    pub fn record_failure(&self, address: IpAddr) {
        let now = Instant::now();
        let mut buckets = self.lock();
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&address) {
            self.prune(&mut buckets, now);
        }
        let current = buckets.get(&address).copied().unwrap_or(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let mut bucket = self.refilled(current, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        buckets.insert(address, bucket);
    }

    fn prune(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < self.burst);
        if buckets.len() >= MAX_TRACKED_ADDRESSES {
            let mut ages: Vec<Instant> = buckets.values().map(|bucket| bucket.updated).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            buckets.retain(|_, bucket| bucket.updated > cutoff);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn burst_then_refused_then_refilled() {
        let limiter = FailedLoginLimiter::new(3, Duration::from_millis(50));
        for _ in 0..3 {
            assert!(limiter.check(CLIENT).is_ok());
            limiter.record_failure(CLIENT);
        }
        let retry_after = limiter.check(CLIENT).unwrap_err();
        assert!(retry_after <= Duration::from_millis(50) && !retry_after.is_zero());
        assert!(
            limiter.check(OTHER).is_ok(),
            "other addresses are unaffected"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            limiter.check(CLIENT).is_ok(),
            "one attempt regained after refill"
        );
        limiter.record_failure(CLIENT);
        assert!(limiter.check(CLIENT).is_err());
    }
}
