//! Time for the outbound queue (and anyone else with a retry timeline): a [`Clock`] tells the
//! time in unix milliseconds and sleeps until a point in time. [`SystemClock`] is the real one;
//! [`ManualClock`] only moves when a test advances it, so a five-day retry schedule runs in
//! milliseconds and without sleeps.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::store::BoxFuture;

/// Unix time in milliseconds.
pub type UnixMillis = i64;

pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> UnixMillis;
    /// Resolves once [`Clock::now`] reaches `at` (at once if it already has).
    fn sleep_until(&self, at: UnixMillis) -> BoxFuture<'static, ()>;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

pub fn system_now() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        system_now()
    }

    fn sleep_until(&self, at: UnixMillis) -> BoxFuture<'static, ()> {
        let wait = u64::try_from(at.saturating_sub(system_now())).unwrap_or(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    time: Arc<watch::Sender<UnixMillis>>,
}

impl ManualClock {
    pub fn new(start: UnixMillis) -> ManualClock {
        ManualClock {
            time: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Starts at the system time (so stored timestamps look plausible).
    pub fn starting_now() -> ManualClock {
        ManualClock::new(system_now())
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.time.send_modify(|now| *now = now.saturating_add(by));
    }

    /// Jumps to `at`; a clock never goes backwards, so an earlier `at` is ignored.
    pub fn set(&self, at: UnixMillis) {
        self.time.send_modify(|now| *now = (*now).max(at));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        *self.time.borrow()
    }

    fn sleep_until(&self, at: UnixMillis) -> BoxFuture<'static, ()> {
        let mut receiver = self.time.subscribe();
        Box::pin(async move {
            // An error means every sender is gone: time stops, and so does the sleeper.
            if receiver.wait_for(|now| *now >= at).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleepers_wake_only_when_time_reaches_them() {
        let clock = ManualClock::new(1_000);
        let sleeper = tokio::spawn(clock.sleep_until(5_000));
        clock.advance(Duration::from_millis(3_000));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_millis(1_000));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke")
            .expect("joined");
        clock.set(10);
        assert_eq!(clock.now(), 5_000, "never backwards");
    }
}
