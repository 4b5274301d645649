//! Where the bytes of a (stopped) Tern data directory go: logical key + value bytes per
//! subspace and account section, next to the file size. Used for the store-overhead figure of
//! `examples/BENCHMARKS.md` (logical bytes versus raw message bytes, and file bytes versus
//! logical bytes, which is the engine's own overhead).
//!
//! Three sizes of the file are reported against the raw message bytes: its length, the disk
//! blocks it occupies (redb grows the file by doubling, up to 4 GiB, with `set_len`: the
//! reserved tail is a hole that takes no disk until pages are written there), and redb's
//! allocated pages (what a compaction leaves). Run it on a stopped server's directory: "as
//! found" is what the server's close left (it compacts a sparse file), "after close" what a
//! restarted server finds. The live file of a running server is measured with `ls -l` and
//! `du -B1` while it runs (the store is locked then).
//!
//! `cargo run --release --example store_usage -- DATA_DIR`

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tern::store::embedded::EmbeddedBackend;
use tern::store::{KeyRange, RangeOptions, Store};

/// Keys read per transaction (each read transaction stays far below the 5 s limit).
const BATCH: usize = 20_000;

fn section_name(key: &[u8]) -> String {
    match key.first() {
        Some(0x10) if key.len() > 5 => match key[5] {
            0x01 => format!("account object type {}", key.get(6).copied().unwrap_or(0)),
            0x02 => format!("account index type {}", key.get(6).copied().unwrap_or(0)),
            0x03 => "account change log".to_owned(),
            0x09 => "account Email metadata".to_owned(),
            0x0A => "account Mailbox counters".to_owned(),
            other => format!("account section {other:#04x}"),
        },
        Some(0x20) => format!("blob section {}", key.get(1).copied().unwrap_or(0)),
        Some(other) => format!("subspace {other:#04x}"),
        None => "empty".to_owned(),
    }
}

/// The file's length and the bytes of disk its blocks take.
fn file_sizes(path: &Path) -> std::io::Result<(u64, u64)> {
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.len(), metadata.blocks() * 512))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .ok_or("usage: store_usage DATA_DIR")?
        .into();
    let (file_bytes, disk_bytes) = file_sizes(&dir.join("tern.redb"))?;
    let store = Store::new(Arc::new(EmbeddedBackend::open(&dir)?));
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // Content bytes of every blob (BLOB_META: tag, storage id, size, ...), and stored chunk
    // bytes (values only), to separate compression from the engine's own overhead.
    let mut raw_blob_bytes = 0u64;
    let mut chunk_value_bytes = 0u64;
    let mut begin = Vec::new();
    loop {
        let range = KeyRange {
            begin: begin.clone(),
            end: vec![0xFF; 16],
        };
        let pairs = store
            .read(|tx| {
                let range = range.clone();
                Box::pin(async move {
                    tx.get_range(
                        &range,
                        RangeOptions {
                            limit: BATCH,
                            reverse: false,
                        },
                    )
                    .await
                })
            })
            .await?;
        for (key, value) in &pairs {
            let entry = totals.entry(section_name(key)).or_default();
            entry.0 += 1;
            entry.1 += (key.len() + value.len()) as u64;
            match key.get(..2) {
                Some([0x20, 0x02]) if value.len() >= 17 => {
                    raw_blob_bytes += u64::from_be_bytes(value[9..17].try_into()?);
                }
                Some([0x20, 0x01]) => chunk_value_bytes += value.len() as u64,
                _ => {}
            }
        }
        let Some((last, _)) = pairs.last() else { break };
        begin = last.clone();
        begin.push(0);
        if pairs.len() < BATCH {
            break;
        }
    }
    let logical: u64 = totals.values().map(|(_, bytes)| bytes).sum();
    for (name, (count, bytes)) in &totals {
        println!(
            "{name:32} {count:>10} pairs {:>10.1} MB",
            *bytes as f64 / 1e6
        );
    }
    println!(
        "logical {:.1} MB, file {:.1} MB ({:.2}x)",
        logical as f64 / 1e6,
        file_bytes as f64 / 1e6,
        file_bytes as f64 / logical.max(1) as f64
    );
    println!(
        "blob content {:.1} MB stored as {:.1} MB of chunk values ({:.2}x); file / blob content {:.2}x",
        raw_blob_bytes as f64 / 1e6,
        chunk_value_bytes as f64 / 1e6,
        chunk_value_bytes as f64 / raw_blob_bytes.max(1) as f64,
        file_bytes as f64 / raw_blob_bytes.max(1) as f64
    );
    store.close().await?;
    // Closing compacts a sparse file (`store::embedded`): what a restarted server finds.
    let (closed_file_bytes, closed_disk_bytes) = file_sizes(&dir.join("tern.redb"))?;
    let raw = raw_blob_bytes.max(1) as f64;
    println!(
        "file as found {:.1} MB ({:.2}x blob content), on disk {:.1} MB ({:.2}x)",
        file_bytes as f64 / 1e6,
        file_bytes as f64 / raw,
        disk_bytes as f64 / 1e6,
        disk_bytes as f64 / raw
    );
    println!(
        "file after close {:.1} MB ({:.2}x blob content), on disk {:.1} MB ({:.2}x)",
        closed_file_bytes as f64 / 1e6,
        closed_file_bytes as f64 / raw,
        closed_disk_bytes as f64 / 1e6,
        closed_disk_bytes as f64 / raw
    );
    // The engine's own view: bytes in leaves versus pages, and free pages.
    let database = redb::Database::open(dir.join("tern.redb"))?;
    let transaction = database.begin_write()?;
    let stats = transaction.stats()?;
    transaction.abort()?;
    let page = stats.page_size() as f64;
    println!(
        "redb: {} leaf pages ({:.1} MB) holding {:.1} MB, {} branch pages ({:.1} MB), \
         metadata {:.1} MB, fragmented + free {:.1} MB, allocated {:.1} MB",
        stats.leaf_pages(),
        stats.leaf_pages() as f64 * page / 1e6,
        stats.stored_bytes() as f64 / 1e6,
        stats.branch_pages(),
        stats.branch_pages() as f64 * page / 1e6,
        stats.metadata_bytes() as f64 / 1e6,
        stats.fragmented_bytes() as f64 / 1e6,
        stats.allocated_pages() as f64 * page / 1e6,
    );
    println!(
        "allocated pages / blob content {:.2}x",
        stats.allocated_pages() as f64 * page / raw
    );
    Ok(())
}
