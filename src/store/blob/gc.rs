//! Garbage collection of blobs (`schema/blobs.md`, "Garbage collection"): expired upload
//! references, unreferenced blobs, and the chunks of uploads that never finished. Every step
//! runs in bounded transactions of [`GC_BATCH`] entries and re-reads what it deletes, so it
//! races safely with uploads, links and downloads.

use std::time::SystemTime;

use super::{
    BlobError, BlobHash, BlobStore, GC_BATCH, GcReport, INTERRUPTED_UPLOAD_GRACE,
    UPLOAD_REFERENCE_LIFETIME, read_meta, unix_seconds,
};
use crate::store::keys::{
    self, BLOB_GC_CANDIDATE, BLOB_META, BLOB_PENDING, BLOB_REFCOUNT, BLOB_UPLOAD_EXPIRY,
};
use crate::store::{KeyRange, RangeOptions};

impl BlobStore {
    /// Deletes unreferenced blobs, expired upload references and the chunks of uploads that
    /// never finished, as of now.
    pub async fn gc(&self) -> Result<GcReport, BlobError> {
        self.gc_as_of(SystemTime::now()).await
    }

    /// [`gc`](Self::gc) as if the clock read `now` (tests, and operators catching up).
    pub async fn gc_as_of(&self, now: SystemTime) -> Result<GcReport, BlobError> {
        let mut report = GcReport {
            expired_upload_references: self.expire_upload_references(now).await?,
            ..GcReport::default()
        };
        report.deleted_blobs = self.collect_candidates().await?;
        report.interrupted_uploads = self.clear_interrupted_uploads(now).await?;
        tracing::info!(
            expired_upload_references = report.expired_upload_references,
            deleted_blobs = report.deleted_blobs,
            interrupted_uploads = report.interrupted_uploads,
            "blob garbage collection done"
        );
        Ok(report)
    }

    async fn expire_upload_references(&self, now: SystemTime) -> Result<u64, BlobError> {
        let now_seconds = unix_seconds(now);
        let section = keys::blob_section(BLOB_UPLOAD_EXPIRY);
        let due = KeyRange {
            begin: section.clone(),
            end: keys::KeyBuilder::new(keys::SUBSPACE_BLOB)
                .u8(BLOB_UPLOAD_EXPIRY)
                .u64(now_seconds.saturating_add(1))
                .build(),
        };
        let mut expired_total = 0u64;
        loop {
            let (handled, expired) = self
                .store
                .transact(|tx| {
                    let due = due.clone();
                    let prefix_length = section.len();
                    Box::pin(async move {
                        let entries = tx.get_range(&due, gc_page()).await?;
                        let mut expired = 0u64;
                        for (key, _) in &entries {
                            tx.clear(key)?;
                            let Some((hash, account_id)) =
                                parse_expiry_suffix(&key[prefix_length..])
                            else {
                                continue;
                            };
                            let reference_key = keys::blob_upload_ref(hash.as_bytes(), account_id);
                            let Some(uploaded_at) = tx.get(&reference_key).await? else {
                                continue;
                            };
                            let uploaded_at = keys::be_u64(&uploaded_at).unwrap_or(0);
                            if uploaded_at + UPLOAD_REFERENCE_LIFETIME.as_secs() > now_seconds {
                                continue;
                            }
                            tx.clear(&reference_key)?;
                            let digest = hash.as_bytes();
                            tx.atomic_add(&keys::blob_by_digest(BLOB_REFCOUNT, digest), -1)?;
                            tx.set(&keys::blob_by_digest(BLOB_GC_CANDIDATE, digest), &[])?;
                            expired += 1;
                        }
                        Ok((entries.len(), expired))
                    })
                })
                .await?;
            expired_total += expired;
            if handled < GC_BATCH {
                return Ok(expired_total);
            }
        }
    }

    async fn collect_candidates(&self) -> Result<u64, BlobError> {
        let section = KeyRange::prefix(&keys::blob_section(BLOB_GC_CANDIDATE));
        let mut deleted_total = 0u64;
        loop {
            let (handled, deleted) = self
                .store
                .transact(|tx| {
                    let section = section.clone();
                    Box::pin(async move {
                        let candidates = tx.get_range(&section, gc_page()).await?;
                        let mut deleted = 0u64;
                        for (key, _) in &candidates {
                            tx.clear(key)?;
                            let Some(hash) = key
                                .get(section.begin.len()..)
                                .and_then(|digest| <[u8; 32]>::try_from(digest).ok())
                                .map(BlobHash)
                            else {
                                continue;
                            };
                            let refcount_key = keys::blob_by_digest(BLOB_REFCOUNT, hash.as_bytes());
                            let references = tx
                                .get(&refcount_key)
                                .await?
                                .map(|count| keys::le_i64(&count));
                            if references.is_some_and(|count| count > 0) {
                                continue;
                            }
                            if let Some(meta) = read_meta(tx, &hash).await? {
                                tx.clear_range(&KeyRange::prefix(&keys::blob_chunk_prefix(
                                    meta.storage_id,
                                )))?;
                                tx.clear(&keys::blob_by_digest(BLOB_META, hash.as_bytes()))?;
                                deleted += 1;
                            }
                            tx.clear(&refcount_key)?;
                        }
                        Ok((candidates.len(), deleted))
                    })
                })
                .await?;
            deleted_total += deleted;
            if handled < GC_BATCH {
                return Ok(deleted_total);
            }
        }
    }

    async fn clear_interrupted_uploads(&self, now: SystemTime) -> Result<u64, BlobError> {
        let section = KeyRange::prefix(&keys::blob_section(BLOB_PENDING));
        let cutoff = unix_seconds(now).saturating_sub(INTERRUPTED_UPLOAD_GRACE.as_secs());
        let mut cleared_total = 0u64;
        let mut resume_from = section.begin.clone();
        loop {
            let page = KeyRange {
                begin: resume_from.clone(),
                end: section.end.clone(),
            };
            let (last_key, handled, cleared) = self
                .store
                .transact(|tx| {
                    let page = page.clone();
                    let prefix_length = section.begin.len();
                    Box::pin(async move {
                        let pending = tx.get_range(&page, gc_page()).await?;
                        let mut cleared = 0u64;
                        for (key, started) in &pending {
                            let started_at = keys::be_u64(started).unwrap_or(0);
                            let Some(storage_id) = keys::be_u64(&key[prefix_length..]) else {
                                continue;
                            };
                            if started_at > cutoff {
                                continue;
                            }
                            tx.clear_range(&KeyRange::prefix(&keys::blob_chunk_prefix(
                                storage_id,
                            )))?;
                            tx.clear(key)?;
                            cleared += 1;
                        }
                        let last_key = pending.last().map(|(key, _)| key.clone());
                        Ok((last_key, pending.len(), cleared))
                    })
                })
                .await?;
            cleared_total += cleared;
            match last_key {
                Some(last_key) if handled >= GC_BATCH => {
                    resume_from = last_key;
                    resume_from.push(0x00);
                }
                _ => return Ok(cleared_total),
            }
        }
    }
}

fn gc_page() -> RangeOptions {
    RangeOptions {
        limit: GC_BATCH,
        reverse: false,
    }
}

/// `sha256, account_id` after the `expires_at` of a `BLOB_UPLOAD_EXPIRY` key's section.
fn parse_expiry_suffix(suffix: &[u8]) -> Option<(BlobHash, u32)> {
    let digest = <[u8; 32]>::try_from(suffix.get(8..40)?).ok()?;
    let account_id = u32::from_be_bytes(suffix.get(40..44)?.try_into().ok()?);
    Some((BlobHash(digest), account_id))
}
