//! Outbound queue scenarios (issue 7), in process on a fresh embedded store (`--data-dir`
//! or a temporary one), with a minimal SMTP sink in the bench:
//! - `outbound-throughput --messages N`: N messages (one recipient each, 32 destination
//!   domains, 2 KB), the outbound actor relaying them to the sink with the default
//!   concurrency, measured twice per run on fresh stores: the delivery rate (all N queued
//!   first, then the actor starts; actor start → last end of DATA: the headline) and the
//!   enqueue+deliver rate (the actor already running while the bench stores and enqueues the
//!   N messages in batches; first enqueue → last end of DATA, with enqueue commit → sink
//!   latency percentiles).
//! - `outbound-schedule --messages N`: N messages queued for later (send_at in a day), then
//!   the cost of what the actor does per wake-up: the due-set range read, the next-wakeup read
//!   and a claim round that finds nothing due, each measured 1,000 times.
//!
//! The EmailSubmission/set → sink latency is `submission-latency` (submission.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use tern::auth::Directory;
use tern::outbound::actor::{self, Context};
use tern::outbound::clock::{SystemClock, system_now};
use tern::outbound::config::OutboundConfig;
use tern::outbound::queue::{self, MessageKind, OutboundMessage};
use tern::store::blob::BlobStore;
use tern::store::embedded::EmbeddedBackend;
use tern::store::{Store, StoreError};

use super::{Options, RunFigures, Samples};

const BATCH: usize = 200;
/// Concurrent blob writers while enqueueing.
const PUT_CONCURRENCY: usize = 32;

fn open(options: &Options, name: &str) -> Result<(Store, Option<tempfile::TempDir>), String> {
    let (path, temp) = match &options.data_dir {
        Some(dir) => {
            let path = std::path::Path::new(dir).join(name);
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).map_err(|error| error.to_string())?;
            (path, None)
        }
        None => {
            let temp = tempfile::tempdir().map_err(|error| error.to_string())?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let backend = EmbeddedBackend::open(&path).map_err(|error| error.to_string())?;
    Ok((Store::new(Arc::new(backend)), temp))
}

fn message_text(index: u64) -> String {
    let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(32);
    format!(
        "From: bench@example.test\r\nTo: r{index}@d{}.example\r\nSubject: outbound bench {index}\r\n\
         Message-ID: <ob-{index}@example.test>\r\n\r\n{filler}\r\n",
        index % 32
    )
}

/// Enqueues `count` messages in batches; returns (queue id, enqueue commit instant) per message.
async fn enqueue_all(
    store: &Store,
    count: u64,
    send_at: i64,
) -> Result<Vec<(u64, Instant)>, String> {
    let blobs = BlobStore::new(store.clone());
    let mut queued = Vec::with_capacity(count as usize);
    let mut index = 0;
    while index < count {
        // The blobs of a batch are stored by concurrent writers (as many clients submitting
        // at once would), so the store shares their fsyncs; then one transaction queues them.
        let indexes: Vec<u64> = (index..count.min(index + BATCH as u64)).collect();
        index += indexes.len() as u64;
        let stored: Vec<_> = futures_util::stream::iter(indexes.iter().copied())
            .map(|index| {
                let blobs = blobs.clone();
                async move {
                    blobs
                        .put(1, Bytes::from(message_text(index)))
                        .await
                        .map(|info| (index, info))
                }
            })
            .buffered(PUT_CONCURRENCY)
            .collect()
            .await;
        let mut batch = Vec::with_capacity(BATCH);
        for result in stored {
            let (index, info) = result.map_err(|error| error.to_string())?;
            let mut message = OutboundMessage::new(
                1,
                info.id,
                info.size,
                "bench@example.test",
                [format!("r{index}@d{}.example", index % 32)],
                send_at,
            );
            message.kind = MessageKind::Bounce;
            batch.push(message);
        }
        let batch = Arc::new(batch);
        let ids = store
            .transact(|tx| {
                let batch = Arc::clone(&batch);
                Box::pin(async move {
                    let mut ids = Vec::with_capacity(batch.len());
                    for message in batch.iter() {
                        ids.push(
                            queue::enqueue(tx, message)
                                .await
                                .map_err(|error| StoreError::io(error.to_string()))?,
                        );
                    }
                    Ok(ids)
                })
            })
            .await
            .map_err(|error| error.to_string())?;
        let now = Instant::now();
        queued.extend(ids.into_iter().map(|id| (id, now)));
    }
    Ok(queued)
}

/// A sink that answers every command at once and counts messages; each arrival records the
/// Subject's index and the time. Replies are buffered and written when the client's pipelined
/// group is consumed (one write per group, as a real server does), and a session takes any
/// number of transactions (RSET answered), so the sink costs little next to the sender.
async fn sink(arrivals: Arrivals) -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| error.to_string())?;
    let port = listener
        .local_addr()
        .map_err(|error| error.to_string())?
        .port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let arrivals = Arc::clone(&arrivals);
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                let mut lines = BufReader::with_capacity(16 * 1024, read);
                let mut write = tokio::io::BufWriter::new(write);
                let mut line = Vec::with_capacity(256);
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let _ = write.flush().await;
                let mut in_data = false;
                let mut subject_index = 0;
                loop {
                    line.clear();
                    match lines.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if in_data {
                        if line == b".\r\n" {
                            in_data = false;
                            arrivals
                                .lock()
                                .unwrap()
                                .push((subject_index, Instant::now()));
                            if write.write_all(b"250 2.0.0 ok\r\n").await.is_err() {
                                return;
                            }
                        } else if let Some(rest) = line.strip_prefix(b"Subject: outbound bench ") {
                            subject_index = std::str::from_utf8(rest)
                                .ok()
                                .and_then(|text| text.trim().parse().ok())
                                .unwrap_or(0);
                        }
                    } else {
                        let command = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                        let reply: &[u8] = match command.as_slice() {
                            b"EHLO" => b"250-sink\r\n250 PIPELINING\r\n",
                            b"DATA" => {
                                in_data = true;
                                b"354 go\r\n"
                            }
                            b"QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                let _ = write.flush().await;
                                return;
                            }
                            _ => b"250 ok\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                    // The client waits for replies once its group is sent: flush when nothing
                    // more is buffered.
                    if lines.buffer().is_empty() && write.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// The enqueue+deliver rates of the runs so far (their median is printed after each run).
static COMBINED_RATES: std::sync::Mutex<Vec<f64>> = std::sync::Mutex::new(Vec::new());

/// An outbound actor on `store` relaying to the sink at `port`.
async fn start_actor(store: &Store, port: u16) -> Result<actor::OutboundHandle, String> {
    let config = OutboundConfig {
        relay: Some(format!("127.0.0.1:{port}")),
        rate_per_hour: 0,
        ..OutboundConfig::default()
    };
    let transport = tern::outbound::transport_settings(&config, None, "bench.test")?;
    let context = Context::new(
        store.clone(),
        Directory::new(store.clone()),
        Arc::new(SystemClock),
        transport,
        config,
    );
    actor::start(context, true)
        .await
        .map_err(|error| error.to_string())
}

type Arrivals = Arc<std::sync::Mutex<Vec<(u64, Instant)>>>;

async fn wait_for_all(arrivals: &Arrivals, count: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while (arrivals.lock().unwrap().len() as u64) < count {
        if Instant::now() > deadline {
            return Err("messages did not all arrive within 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Two measures per run, each on a fresh store:
/// - delivery: N messages already queued, then the actor starts; from its start to the last
///   message at the sink (the queue's own throughput);
/// - enqueue+deliver: the actor runs while the bench stores and enqueues the N messages; from
///   the first enqueue to the last message at the sink, with enqueue → sink latencies.
pub async fn throughput(options: &Options) -> Result<RunFigures, String> {
    let count = options.messages.clamp(1, 100_000);

    // Delivery only.
    let (store, _temp) = open(options, "deliver")?;
    let arrivals: Arrivals = Arc::default();
    let port = sink(Arc::clone(&arrivals)).await?;
    let queued_started = Instant::now();
    enqueue_all(&store, count, 0).await?;
    let queued_in = queued_started.elapsed();
    let started = Instant::now();
    let handle = start_actor(&store, port).await?;
    wait_for_all(&arrivals, count).await?;
    let delivered_in = started.elapsed();
    handle.stop().await;
    let (first, last) = {
        let arrivals = arrivals.lock().unwrap();
        let first = arrivals.iter().map(|(_, at)| *at).min().unwrap_or(started);
        let last = arrivals.iter().map(|(_, at)| *at).max().unwrap_or(started);
        (first, last)
    };
    store.close().await.map_err(|error| error.to_string())?;
    drop(_temp);
    let delivery_rate = count as f64 / delivered_in.as_secs_f64();
    println!(
        "  delivery: {count} queued in {:.0} ms; actor start → last at the sink {:.0} ms → \
         {delivery_rate:.0} msg/s (first → last arrival {:.0} ms)",
        queued_in.as_secs_f64() * 1e3,
        delivered_in.as_secs_f64() * 1e3,
        last.saturating_duration_since(first).as_secs_f64() * 1e3,
    );

    // Enqueue while delivering.
    let (store, _temp) = open(options, "combined")?;
    let arrivals: Arrivals = Arc::default();
    let port = sink(Arc::clone(&arrivals)).await?;
    let handle = start_actor(&store, port).await?;
    let started = Instant::now();
    let queued = enqueue_all(&store, count, 0).await?;
    let enqueued_in = started.elapsed();
    wait_for_all(&arrivals, count).await?;
    let elapsed = started.elapsed();
    handle.stop().await;
    let mut samples = Samples::default();
    let arrivals = arrivals.lock().unwrap().clone();
    let mut sent_at = vec![started; count as usize];
    for (index, (_, at)) in queued.iter().enumerate() {
        sent_at[index] = *at;
    }
    for (index, arrived) in arrivals {
        if let Some(sent) = sent_at.get(index as usize) {
            samples.push(arrived.saturating_duration_since(*sent));
        }
    }
    let summary = samples.summary();
    let combined_rate = count as f64 / elapsed.as_secs_f64();
    let combined_median = {
        let mut rates = COMBINED_RATES.lock().unwrap();
        rates.push(combined_rate);
        let mut sorted = rates.clone();
        super::median(&mut sorted)
    };
    println!(
        "  enqueue+deliver: {count} messages enqueued in {:.0} ms, all at the sink after {:.0} ms → \
         {combined_rate:.0} msg/s (median so far {combined_median:.0}); enqueue → sink {summary}",
        enqueued_in.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3
    );
    store.close().await.map_err(|error| error.to_string())?;
    Ok(RunFigures {
        headline: delivery_rate,
        headline_unit: "msg/s delivery (queued → sink; enqueue+deliver median above)",
        p50: summary.p50,
        p99: summary.p99,
    })
}

pub async fn schedule(options: &Options) -> Result<RunFigures, String> {
    let count = options.messages.clamp(1, 1_000_000);
    let (store, _temp) = open(options, "schedule")?;
    let later = system_now() + 86_400_000;
    let started = Instant::now();
    enqueue_all(&store, count, later).await?;
    println!(
        "  {count} messages queued for later in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut due = Samples::default();
    let mut wakeup = Samples::default();
    let claimed = AtomicU64::new(0);
    for _ in 0..1_000 {
        let now = system_now();
        let began = Instant::now();
        let found = store
            .read(|tx| Box::pin(async move { queue::due(tx, now, 32).await }))
            .await
            .map_err(|error| error.to_string())?;
        due.push(began.elapsed());
        claimed.fetch_add(found.len() as u64, Ordering::Relaxed);
        let began = Instant::now();
        let next = store
            .read(|tx| Box::pin(async move { queue::next_wakeup(tx).await }))
            .await
            .map_err(|error| error.to_string())?;
        wakeup.push(began.elapsed());
        if next.is_none_or(|at| at < later) {
            return Err("the next wake-up is not the queued messages' time".into());
        }
    }
    let due = due.summary();
    let wakeup = wakeup.summary();
    println!(
        "  with {count} queued: due-set read {due}; next wake-up read {wakeup}; due found {}",
        claimed.load(Ordering::Relaxed)
    );
    store.close().await.map_err(|error| error.to_string())?;
    Ok(RunFigures {
        headline: due.p50,
        headline_unit: "ms per schedule tick (due-set range read, p50)",
        p50: due.p50,
        p99: due.p99,
    })
}
