//! Giving freed heap memory back to the system. glibc keeps what is freed in its arenas (and
//! raises its mmap threshold after a large free, so the next large block comes from an arena
//! too): issue 13 measured 2.6 GB kept after one heavy request, and an argon2 verification's
//! 19 MiB stayed resident after the login. Bounding the peak alone still leaves the peak
//! resident, so the holders of large transient memory trim after letting it go.

use std::sync::atomic::{AtomicBool, Ordering};

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
    // SAFETY: malloc_trim takes no pointer and only walks glibc's own arenas, each under its
    // lock (MT-Safe in the glibc manual); it cannot invalidate any live allocation.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_heap() {}
