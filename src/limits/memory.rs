//! Giving freed heap memory back to the system. glibc keeps what is freed in its arenas (and
//! raises its mmap threshold after a large free, so the next large block comes from an arena
//! too): issue 13 measured 2.6 GB kept after one heavy request, and an argon2 verification's
//! 19 MiB stayed resident after the login. Bounding the peak alone still leaves the peak
//! resident, so the holders of large transient memory trim after letting it go.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// How many trims ran (a gauge for tests and the admin view).
static TRIMS: AtomicU64 = AtomicU64::new(0);

/// Trims that ran since start.
pub fn trims() -> u64 {
    TRIMS.load(Ordering::Relaxed)
}

/// Responses at least this large trim the heap once sent ([`return_freed_memory`]).
pub const TRIM_AFTER_BYTES: u64 = 4 << 20;

/// Gives the heap's free memory back to the system after a large response was sent, from a
/// tokio runtime. One trim runs at a time on a blocking thread, and one more runs if
/// responses finished meanwhile.
pub fn return_freed_memory(response_bytes: u64) {
    static PENDING: AtomicBool = AtomicBool::new(false);
    static RUNNING: AtomicBool = AtomicBool::new(false);
    if response_bytes < TRIM_AFTER_BYTES {
        return;
    }
    PENDING.store(true, Ordering::Release);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    drop(runtime.spawn_blocking(|| {
        while PENDING.swap(false, Ordering::AcqRel) {
            trim_heap();
        }
        RUNNING.store(false, Ordering::Release);
    }));
}

/// Trims every arena now, on the calling thread (a dedicated thread may; async code calls
/// [`return_freed_memory`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_heap() {
    TRIMS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: malloc_trim takes no pointer and only walks glibc's own arenas, each under its
    // lock (MT-Safe in the glibc manual); it cannot invalidate any live allocation.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_heap() {
    TRIMS.fetch_add(1, Ordering::Relaxed);
}

/// Trims the heap every `interval` until `stop` turns true (`[server]
/// memory_trim_interval_seconds`). Many small allocations freed by floods, deliveries and
/// WebSocket traffic stay in glibc's per-thread arenas; `bench abuse` saw 18 MB of a 50 MB
/// server given back by one trim after a WebSocket flood. A trim walks the arenas under
/// their locks on a blocking thread: milliseconds, not on any request's path.
pub async fn trim_periodically(interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if tokio::task::spawn_blocking(trim_heap).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trims_periodically_until_stopped() {
        let (stop, stopped) = watch::channel(false);
        let before = trims();
        let task = tokio::spawn(trim_periodically(Duration::from_millis(20), stopped));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while trims() < before + 3 {
            assert!(std::time::Instant::now() < deadline, "no periodic trim");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).expect("the task listens");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops when told")
            .expect("joined");
    }
}
