//! Bounded password verification: argon2 runs on a fixed number of dedicated threads, each
//! reusing one memory area while logins are queued, so however many logins arrive at once the server never holds more
//! than `workers` argon2 working sets (19 MiB each with the default parameters). Issue 13
//! measured 40 concurrent wrong logins taking RSS from 40 MB to 384 MB when each verification
//! allocated its own memory on the blocking pool.
//!
//! Logins wait in a queue (FIFO) for a worker; the login throttle in front of it keeps that
//! queue short. The SMTP AUTH path and HTTP go through the same [`Verifier`] (the directory's).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError, mpsc};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::password::MAX_PASSWORD_BYTES;

/// Stored hashes asking for more memory than this (in 1 KiB blocks: 256 MiB) never match: a
/// corrupt or hostile record must not make one login allocate without bound.
const MAX_BLOCKS: usize = 256 * 1024;

struct Job {
    password: String,
    phc_hash: String,
    reply: tokio::sync::oneshot::Sender<bool>,
}

/// Verifications running now and the most that ever ran at once.
#[derive(Default)]
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
    /// Argon2 working memory the workers hold right now, in bytes.
    held_bytes: AtomicUsize,
}

pub struct Verifier {
    queue: Mutex<mpsc::Sender<Job>>,
    gauge: Arc<Gauge>,
    workers: usize,
}

impl Verifier {
    /// Starts `workers` verification threads (at least one). They end when the verifier is
    /// dropped.
    pub fn new(workers: usize) -> Verifier {
        let workers = workers.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let gauge = Arc::new(Gauge::default());
        for index in 0..workers {
            let receiver = Arc::clone(&receiver);
            let gauge = Arc::clone(&gauge);
            let spawned = std::thread::Builder::new()
                .name(format!("tern-argon2-{index}"))
                .spawn(move || work(&receiver, &gauge));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password verification thread");
            }
        }
        Verifier {
            queue: Mutex::new(sender),
            gauge,
            workers,
        }
    }

    /// How many verifications may run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Argon2 working memory held by the workers now: none once no login is waiting.
    pub fn held_memory_bytes(&self) -> usize {
        self.gauge.held_bytes.load(Ordering::Relaxed)
    }

    /// The most verifications that ever ran at the same time (never above [`Self::workers`]).
    pub fn peak_concurrent(&self) -> usize {
        self.gauge.peak.load(Ordering::Relaxed)
    }

    /// Whether `password` matches `phc_hash`; `false` for a malformed hash, and when the
    /// workers are gone (a login is refused rather than verified without a bound).
    pub async fn verify(&self, password: String, phc_hash: String) -> bool {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            password,
            phc_hash,
            reply,
        };
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job);
        if sent.is_err() {
            tracing::error!("password verification threads are gone; login refused");
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

fn work(receiver: &Mutex<mpsc::Receiver<Job>>, gauge: &Gauge) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let lock = || receiver.lock().unwrap_or_else(PoisonError::into_inner);
        // A login already waiting keeps the working memory; otherwise it is let go before
        // waiting, and the heap trimmed, so an idle server holds no argon2 memory (19 MiB a
        // worker, which glibc would otherwise keep resident).
        // Another worker holding the queue's lock is the one waiting for the next login.
        let ready = match receiver.try_lock() {
            Ok(queue) => queue.try_recv(),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().try_recv(),
            Err(TryLockError::WouldBlock) => Err(mpsc::TryRecvError::Empty),
        };
        let job = match ready {
            Ok(job) => job,
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {
                if !memory.is_empty() {
                    gauge
                        .held_bytes
                        .fetch_sub(std::mem::size_of_val(&memory[..]), Ordering::Relaxed);
                    memory = Vec::new();
                    crate::limits::memory::trim_heap();
                }
                match lock().recv() {
                    Ok(job) => job,
                    Err(mpsc::RecvError) => return,
                }
            }
        };
        // The client may have gone away meanwhile: no work for nobody.
        if job.reply.is_closed() {
            continue;
        }
        let running = gauge.running.fetch_add(1, Ordering::Relaxed) + 1;
        gauge.peak.fetch_max(running, Ordering::Relaxed);
        let held = std::mem::size_of_val(&memory[..]);
        let matches = verify_with_memory(&job.password, &job.phc_hash, &mut memory);
        gauge
            .held_bytes
            .fetch_add(std::mem::size_of_val(&memory[..]) - held, Ordering::Relaxed);
        gauge.running.fetch_sub(1, Ordering::Relaxed);
        let _ = job.reply.send(matches);
    }
}

/// Argon2 verification of `password` against a PHC string, in `memory` (grown as needed).
pub fn verify_with_memory(password: &str, phc_hash: &str, memory: &mut Vec<Block>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc_hash) else {
        tracing::warn!("stored password hash is malformed");
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        tracing::warn!(blocks, "stored password hash asks for too much memory");
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    let hasher = Argon2::new(algorithm, version, params);
    if hasher
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, &mut memory[..])
        .is_err()
    {
        return false;
    }
    // `Output` compares in constant time.
    Output::new(&computed).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_library() {
        let phc = super::super::password::hash("correct horse").expect("hash");
        let mut memory = Vec::new();
        assert!(verify_with_memory("correct horse", &phc, &mut memory));
        assert!(!verify_with_memory("correct horsf", &phc, &mut memory));
        assert!(!verify_with_memory("", &phc, &mut memory));
        assert!(!verify_with_memory("x", "not a phc string", &mut memory));
        assert!(!verify_with_memory(
            "x",
            "$argon2id$v=19$m=999999999,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            &mut memory
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_than_its_workers() {
        let verifier = Arc::new(Verifier::new(2));
        let phc = super::super::password::hash("secret").expect("hash");
        let checks: Vec<_> = (0..8)
            .map(|index| {
                let verifier = Arc::clone(&verifier);
                let phc = phc.clone();
                tokio::spawn(async move {
                    let password = if index == 0 { "secret" } else { "wrong" };
                    verifier.verify(password.to_owned(), phc).await
                })
            })
            .collect();
        let mut matched = 0;
        for check in checks {
            matched += usize::from(check.await.expect("joined"));
        }
        assert_eq!(matched, 1);
        let peak = verifier.peak_concurrent();
        assert!((1..=2).contains(&peak), "peak {peak}");
    }

    /// Found by `bench abuse`: a worker kept its 19 MiB after the login (it only let go after
    /// 30 s with nothing queued, and while it waited for the queue's lock it never did).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_hold_no_memory_once_no_login_waits() {
        let verifier = Verifier::new(2);
        let phc = super::super::password::hash("secret").expect("hash");
        for _ in 0..3 {
            assert!(verifier.verify("secret".to_owned(), phc.clone()).await);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while verifier.held_memory_bytes() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} bytes of argon2 memory still held",
                verifier.held_memory_bytes()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
