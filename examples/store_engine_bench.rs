//! Storage engine benchmark: redb vs fjall, the two pure-Rust candidates for the embedded
//! store, plus Tern's own embedded backend (redb + group commit) through the `Store` trait.
//! The figures and the choice they support are in `schema/storage-engine.md`.
//!
//! Run (release mode matters; takes about a minute):
//!     cargo run --release --example store_engine_bench
//! Optional: STORE_BENCH_DIR=/some/disk to measure another file system than the temp dir.
//!
//! Measured, each engine in a fresh directory:
//! - durable commits/s, one writer: each commit writes one 200-byte value and waits for fsync;
//! - durable commits/s, 8 concurrent writers (does the engine share fsyncs between writers?);
//! - range-read latency, p50/p99: 50 consecutive pairs from a random start in 100,000 keys.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, TableDefinition};
use tern::store::embedded::EmbeddedBackend;
use tern::store::{KeyRange, RangeOptions, Store};

const PHASE: Duration = Duration::from_secs(4);
const WRITERS: usize = 8;
const VALUE_BYTES: usize = 200;
const PRELOADED_KEYS: u64 = 100_000;
const RANGE_PAIRS: usize = 50;
const RANGE_READS: usize = 20_000;
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

fn key(index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = 0x10;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Runs `commit` from `writers` threads for [`PHASE`]; returns commits per second.
fn commits_per_second(writers: usize, commit: Arc<dyn Fn(u64) + Send + Sync>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers as u64)
        .map(|writer| {
            let (stop, done, commit) = (stop.clone(), done.clone(), commit.clone());
            std::thread::spawn(move || {
                let mut sequence = writer << 40;
                while !stop.load(Ordering::Relaxed) {
                    commit(sequence);
                    sequence += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(PHASE);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("writer thread");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// p50 and p99 of `read` over random starts, in microseconds.
fn range_latency(mut read: impl FnMut(u64) -> usize) -> (f64, f64) {
    let mut samples = Vec::with_capacity(RANGE_READS);
    for _ in 0..RANGE_READS {
        let start = rand::random::<u64>() % (PRELOADED_KEYS - RANGE_PAIRS as u64);
        let began = Instant::now();
        let pairs = read(start);
        samples.push(began.elapsed());
        assert_eq!(pairs, RANGE_PAIRS);
    }
    samples.sort_unstable();
    let micros = |quantile: f64| {
        samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)].as_secs_f64()
            * 1e6
    };
    (micros(0.50), micros(0.99))
}

struct Figures {
    engine: &'static str,
    sequential: f64,
    concurrent: f64,
    range_p50_us: f64,
    range_p99_us: f64,
}

fn bench_redb(dir: &Path) -> Figures {
    let database = Arc::new(redb::Database::create(dir.join("redb.db")).expect("redb"));
    let writer_database = database.clone();
    let commit: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |sequence| {
        // Durability::Immediate is redb's default: commit returns after fsync.
        let write = writer_database.begin_write().expect("begin_write");
        {
            let mut table = write.open_table(TABLE).expect("table");
            table
                .insert(key(sequence).as_slice(), [7u8; VALUE_BYTES].as_slice())
                .expect("insert");
        }
        write.commit().expect("commit");
    });
    let sequential = commits_per_second(1, commit.clone());
    let concurrent = commits_per_second(WRITERS, commit);

    let write = database.begin_write().expect("begin_write");
    {
        let mut table = write.open_table(TABLE).expect("table");
        for index in 0..PRELOADED_KEYS {
            table
                .insert(key(index).as_slice(), [7u8; VALUE_BYTES].as_slice())
                .expect("insert");
        }
    }
    write.commit().expect("commit");
    let (range_p50_us, range_p99_us) = range_latency(|start| {
        let read = database.begin_read().expect("begin_read");
        let table = read.open_table(TABLE).expect("table");
        let begin = key(start);
        let range = table.range::<&[u8]>(begin.as_slice()..).expect("range");
        range
            .take(RANGE_PAIRS)
            .map(|pair| {
                let (key, value) = pair.expect("pair");
                key.value().len() + value.value().len()
            })
            .filter(|length| *length > 0)
            .count()
    });
    Figures {
        engine: "redb 4 (raw)",
        sequential,
        concurrent,
        range_p50_us,
        range_p99_us,
    }
}

fn bench_fjall(dir: &Path) -> Figures {
    let database = fjall::Database::builder(dir.join("fjall"))
        .open()
        .expect("fjall");
    let keyspace = database
        .keyspace("bench", fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    let writer_database = database.clone();
    let writer_keyspace = keyspace.clone();
    let commit: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |sequence| {
        let mut batch = writer_database
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        batch.insert(&writer_keyspace, key(sequence), [7u8; VALUE_BYTES]);
        batch.commit().expect("commit");
    });
    let sequential = commits_per_second(1, commit.clone());
    let concurrent = commits_per_second(WRITERS, commit);

    let mut batch = database.batch();
    for index in 0..PRELOADED_KEYS {
        batch.insert(&keyspace, key(index), [7u8; VALUE_BYTES]);
    }
    batch.commit().expect("preload");
    database
        .persist(fjall::PersistMode::SyncAll)
        .expect("persist");
    let (range_p50_us, range_p99_us) = range_latency(|start| {
        keyspace
            .range(key(start)..)
            .take(RANGE_PAIRS)
            .map(|guard| {
                let (key, value) = guard.into_inner().expect("pair");
                key.len() + value.len()
            })
            .filter(|length| *length > 0)
            .count()
    });
    Figures {
        engine: "fjall 3 (raw)",
        sequential,
        concurrent,
        range_p50_us,
        range_p99_us,
    }
}

/// Tern's backend: transactions with conflict checks, and one fsync per batch of commits.
fn bench_tern_embedded(dir: &Path) -> Figures {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::new(Arc::new(
            EmbeddedBackend::open(&dir.join("tern")).expect("open"),
        ));
        let commits = |tasks: usize| {
            let store = store.clone();
            async move {
                let stop = Arc::new(AtomicBool::new(false));
                let done = Arc::new(AtomicU64::new(0));
                let started = Instant::now();
                let handles: Vec<_> = (0..tasks as u64)
                    .map(|task| {
                        let (store, stop, done) = (store.clone(), stop.clone(), done.clone());
                        tokio::spawn(async move {
                            let mut sequence = task << 40;
                            while !stop.load(Ordering::Relaxed) {
                                let bench_key = key(sequence).to_vec();
                                store
                                    .transact(|tx| {
                                        let bench_key = bench_key.clone();
                                        Box::pin(
                                            async move { tx.set(&bench_key, &[7u8; VALUE_BYTES]) },
                                        )
                                    })
                                    .await
                                    .expect("commit");
                                sequence += 1;
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                tokio::time::sleep(PHASE).await;
                stop.store(true, Ordering::Relaxed);
                for handle in handles {
                    handle.await.expect("task");
                }
                done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
            }
        };
        let sequential = commits(1).await;
        let concurrent = commits(WRITERS * 4).await;

        for first in (0..PRELOADED_KEYS).step_by(20_000) {
            store
                .transact(|tx| {
                    Box::pin(async move {
                        for index in first..first + 20_000 {
                            tx.set(&key(index), &[7u8; VALUE_BYTES])?;
                        }
                        Ok(())
                    })
                })
                .await
                .expect("preload");
        }
        let mut samples = Vec::with_capacity(RANGE_READS);
        for _ in 0..RANGE_READS {
            let start = rand::random::<u64>() % (PRELOADED_KEYS - RANGE_PAIRS as u64);
            let range = KeyRange {
                begin: key(start).to_vec(),
                end: vec![0x11],
            };
            let began = Instant::now();
            let mut tx = store.backend().begin().await.expect("begin");
            let pairs = tx
                .get_range(
                    &range,
                    RangeOptions {
                        limit: RANGE_PAIRS,
                        reverse: false,
                    },
                )
                .await
                .expect("range");
            samples.push(began.elapsed());
            assert_eq!(pairs.len(), RANGE_PAIRS);
        }
        samples.sort_unstable();
        let micros = |quantile: f64| {
            samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)]
                .as_secs_f64()
                * 1e6
        };
        store.close().await.expect("close");
        Figures {
            engine: "tern embedded (redb + group commit)",
            sequential,
            concurrent,
            range_p50_us: micros(0.50),
            range_p99_us: micros(0.99),
        }
    })
}

fn main() {
    let base = std::env::var_os("STORE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("bench directory");
    println!(
        "store engine bench: {} cores, {} s per write phase, {WRITERS} concurrent writers \
         (tern: {} tasks), dir {}",
        std::thread::available_parallelism().map_or(0, |cores| cores.get()),
        PHASE.as_secs(),
        WRITERS * 4,
        dir.path().display()
    );
    let results = [
        bench_redb(dir.path()),
        bench_fjall(dir.path()),
        bench_tern_embedded(dir.path()),
    ];
    println!(
        "| engine | durable commits/s, 1 writer | durable commits/s, concurrent | range 50 p50 µs | range 50 p99 µs |"
    );
    println!("|---|---:|---:|---:|---:|");
    for figures in results {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} |",
            figures.engine,
            figures.sequential,
            figures.concurrent,
            figures.range_p50_us,
            figures.range_p99_us
        );
    }
}
