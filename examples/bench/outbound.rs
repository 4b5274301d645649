//! Outbound queue scenarios (issue 7), in process on a fresh embedded store (`--data-dir`
//! or a temporary one), with a minimal SMTP sink in the bench:
//! - `outbound-throughput --messages N`: N messages (one recipient each, 32 destination
//!   domains, 2 KB) enqueued in batches, the outbound actor relaying them to the sink with the
//!   default concurrency; headline messages/s from the first enqueue to the last end of DATA;
//!   latency percentiles are enqueue commit → sink.
//! - `outbound-schedule --messages N`: N messages queued for later (send_at in a day), then
//!   the cost of what the actor does per wake-up: the due-set range read, the next-wakeup read
//!   and a claim round that finds nothing due, each measured 1,000 times.
//!
//! The EmailSubmission/set → sink latency is `submission-latency` (submission.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
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

fn open(options: &Options) -> Result<(Store, Option<tempfile::TempDir>), String> {
    let (path, temp) = match &options.data_dir {
        Some(dir) => (std::path::PathBuf::from(dir), None),
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
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH && index < count {
            let info = blobs
                .put(1, Bytes::from(message_text(index)))
                .await
                .map_err(|error| error.to_string())?;
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
            index += 1;
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

/// A sink that answers every command at once (pipelining-friendly) and counts messages; each
/// arrival records the Subject's index and the time.
async fn sink(arrivals: Arc<std::sync::Mutex<Vec<(u64, Instant)>>>) -> Result<u16, String> {
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
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                let mut line = String::new();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut in_data = false;
                let mut subject_index = 0;
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            arrivals
                                .lock()
                                .unwrap()
                                .push((subject_index, Instant::now()));
                            let _ = write.write_all(b"250 2.0.0 ok\r\n").await;
                        } else if let Some(rest) = line.strip_prefix("Subject: outbound bench ") {
                            subject_index = rest.trim().parse().unwrap_or(0);
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink\r\n250 PIPELINING\r\n"
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        b"354 go\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

pub async fn throughput(options: &Options) -> Result<RunFigures, String> {
    let count = options.messages.clamp(1, 100_000);
    let (store, _temp) = open(options)?;
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = sink(Arc::clone(&arrivals)).await?;
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
    let handle = actor::start(context, true)
        .await
        .map_err(|error| error.to_string())?;
    let started = Instant::now();
    let queued = enqueue_all(&store, count, 0).await?;
    let enqueued_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while (arrivals.lock().unwrap().len() as u64) < count {
        if Instant::now() > deadline {
            return Err("messages did not all arrive within 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "  {count} messages: enqueued in {:.0} ms, all at the sink after {:.0} ms → {rate:.0} msg/s; enqueue → sink {summary}",
        enqueued_in.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3
    );
    store.close().await.map_err(|error| error.to_string())?;
    Ok(RunFigures {
        headline: rate,
        headline_unit: "msg/s enqueue → sink",
        p50: summary.p50,
        p99: summary.p99,
    })
}

pub async fn schedule(options: &Options) -> Result<RunFigures, String> {
    let count = options.messages.clamp(1, 1_000_000);
    let (store, _temp) = open(options)?;
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
