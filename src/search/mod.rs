//! Full-text search: a tantivy index of every Email, kept by one indexer actor, derived from
//! the store and rebuildable from it at any time (`schema/search.md`).
//!
//! Invariants:
//! - Index tasks are born in the Email's own transaction (`queue.rs`); the index is never
//!   written from a request path. A crash loses no task; replaying one is harmless.
//! - A task leaves the queue only after the tantivy commit that applied it and the reader
//!   reload, so "no task pending" means "the index answers for this Email".
//! - Queries are exact: an Email with a pending task, or an account being rebuilt, is matched
//!   by scanning its text from the store (`query::ScannedEmail`) with the same words and the
//!   same rules, never silently left out.
//! - Every query carries its account term: no query can see another account's documents.
//! - Every Email without a pending task has exactly one document (an Email whose text cannot
//!   be read gets one without words), so counts from the index are counts of Emails.

pub mod document;
pub mod indexer;
pub mod query;
pub mod queue;
pub mod rebuild;
pub mod schema;
pub mod snapshot;
pub mod snippet;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tantivy::{Index, IndexReader, ReloadPolicy};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::store::Store;
use crate::store::blob::BlobStore;
use indexer::{Command, Indexer};
use query::{EmailIds, TextMatch};
use schema::Fields;

/// The indexing threads of the writer: one (the server shares two cores with everything).
const INDEXING_THREADS: usize = 1;
/// The writer's memory budget (tantivy's minimum per thread is 15 MB).
const WRITER_MEMORY_BYTES: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
#[error("search ({kind:?}): {message}")]
pub struct SearchError {
    pub kind: SearchErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchErrorKind {
    /// The index files could not be opened, created, read or written.
    Index,
    /// The store failed.
    Store,
    /// The indexer has stopped.
    Stopped,
}

impl SearchError {
    fn index(error: impl std::fmt::Display) -> SearchError {
        SearchError {
            kind: SearchErrorKind::Index,
            message: error.to_string(),
        }
    }
}

impl From<crate::store::StoreError> for SearchError {
    fn from(error: crate::store::StoreError) -> SearchError {
        SearchError {
            kind: SearchErrorKind::Store,
            message: error.to_string(),
        }
    }
}

struct Shared {
    reader: IndexReader,
    fields: Fields,
    commands: mpsc::Sender<Command>,
}

/// What the rest of the server holds: queries and the indexer's mailbox. Cheap to clone.
#[derive(Clone)]
pub struct SearchHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SearchHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SearchHandle")
    }
}

impl SearchHandle {
    /// The Emails of `account_id` whose committed document matches `condition`. Emails with a
    /// pending task are the caller's to scan (`queue::account_backlog`).
    pub fn search(
        &self,
        account_id: u32,
        condition: &TextMatch,
    ) -> Result<HashSet<u64>, SearchError> {
        let searcher = self.shared.reader.searcher();
        let query = query::to_query(&self.shared.fields, account_id, condition);
        let ids = searcher
            .search(query.as_ref(), &EmailIds)
            .map_err(SearchError::index)?;
        Ok(ids.into_iter().collect())
    }

    /// Waits until the queue is empty and everything is committed and searchable.
    pub async fn flush(&self) -> Result<(), SearchError> {
        let stopped = || SearchError {
            kind: SearchErrorKind::Stopped,
            message: "the indexer has stopped".to_owned(),
        };
        let (sender, receiver) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Flush(sender))
            .await
            .map_err(|_| stopped())?;
        receiver.await.map_err(|_| stopped())
    }

    /// Holds the indexer (`true`: tasks stay pending, queries scan those Emails) or lets it
    /// go on (`false`). Returns once in effect.
    pub async fn hold_indexing(&self, hold: bool) -> Result<(), SearchError> {
        let stopped = || SearchError {
            kind: SearchErrorKind::Stopped,
            message: "the indexer has stopped".to_owned(),
        };
        let (sender, receiver) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Hold(hold, sender))
            .await
            .map_err(|_| stopped())?;
        receiver.await.map_err(|_| stopped())
    }

    /// Documents in the index (all accounts, deleted ones excluded).
    pub fn document_count(&self) -> u64 {
        self.shared.reader.searcher().num_docs()
    }
}

/// Opens the index in `dir`, or creates it when it is missing, unreadable or of another
/// schema. `true` when created: its content must be rebuilt from the store.
fn open_or_create(dir: &Path) -> Result<(Index, bool), SearchError> {
    let (schema, _) = schema::build();
    if dir.join("meta.json").exists() {
        let opened = Index::open_in_dir(dir).and_then(|index| {
            if index.schema() != schema {
                return Err(tantivy::TantivyError::SchemaError(
                    "the index was written with another schema".to_owned(),
                ));
            }
            // Opening a reader opens every segment: missing or truncated files fail here.
            index
                .tokenizers()
                .register(schema::ANALYZER, schema::analyzer());
            index.reader()?;
            Ok(index)
        });
        match opened {
            Ok(index) => return Ok((index, false)),
            Err(error) => {
                tracing::warn!(%error, dir = %dir.display(), "search index unusable; rebuilding it from the store");
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(SearchError::index)?;
    }
    std::fs::create_dir_all(dir).map_err(SearchError::index)?;
    let index = Index::create_in_dir(dir, schema).map_err(SearchError::index)?;
    Ok((index, true))
}

/// The index directory of a data directory.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("search")
}

/// Opens (or creates) the index in `dir` and starts the indexer, which runs until `stop`.
/// `accounts` are the store's accounts: if the index had to be created, each is marked as
/// rebuilding before this returns (text queries scan until its tasks are queued) and is
/// re-enqueued in the background. Interrupted rebuilds are resumed.
pub async fn start(
    store: Store,
    blobs: BlobStore,
    dir: PathBuf,
    accounts: Vec<u32>,
    stop: watch::Receiver<bool>,
) -> Result<(SearchHandle, JoinHandle<()>), SearchError> {
    let (index, created) = tokio::task::spawn_blocking(move || open_or_create(&dir))
        .await
        .map_err(SearchError::index)??;
    index
        .tokenizers()
        .register(schema::ANALYZER, schema::analyzer());
    let fields = schema::build().1;
    let writer = index
        .writer_with_num_threads(INDEXING_THREADS, WRITER_MEMORY_BYTES)
        .map_err(SearchError::index)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(SearchError::index)?;
    let (commands, mailbox) = mpsc::channel(64);
    let handle = SearchHandle {
        shared: Arc::new(Shared {
            reader: reader.clone(),
            fields,
            commands,
        }),
    };
    // On a cluster, accounts are rebuilt as this node comes to own them (`follow_ownership`),
    // not all at start-up: another node's index answers for the others.
    let clustered = store.fence().is_some();
    let mut to_rebuild = if clustered {
        Vec::new()
    } else {
        queue::rebuilding_accounts(&store).await?
    };
    if created && !accounts.is_empty() && !clustered {
        tracing::info!(
            accounts = accounts.len(),
            "search index created; rebuilding from the store"
        );
        store
            .transact(|tx| {
                let accounts = accounts.clone();
                Box::pin(async move {
                    for account_id in &accounts {
                        queue::set_rebuilding(tx, *account_id, true)?;
                    }
                    Ok(())
                })
            })
            .await?;
        to_rebuild.extend(accounts);
    }
    to_rebuild.sort_unstable();
    to_rebuild.dedup();
    let actor = Indexer {
        store: store.clone(),
        blobs,
        fields,
        writer: Arc::new(Mutex::new(writer)),
        reader,
    };
    let task = tokio::spawn(async move {
        let rebuild_store = store.clone();
        let rebuild = tokio::spawn(async move {
            for account_id in to_rebuild {
                match queue::rebuild_account(&rebuild_store, account_id).await {
                    Ok(emails) => tracing::info!(account_id, emails, "search rebuild queued"),
                    Err(error) => {
                        tracing::warn!(account_id, %error, "search rebuild failed; resumed at next start")
                    }
                }
            }
        });
        let following = store
            .fence()
            .map(|fence| tokio::spawn(follow_ownership(store.clone(), Arc::clone(fence))));
        actor.run(mailbox, stop).await;
        rebuild.abort();
        if let Some(following) = following {
            following.abort();
        }
    });
    Ok((handle, task))
}

/// On a cluster node: every account this node comes to own is rebuilt into its index. The
/// claim itself marked the account as rebuilding (`server::claim_hooks`), so its text
/// queries scan the store until the rebuild's tasks are queued, and each Email with a pending
/// task is scanned until indexed: queries stay exact while the index catches up.
async fn follow_ownership(store: Store, fence: Arc<crate::store::ownership::Fence>) {
    let mut generations = fence.subscribe();
    let mut known: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    loop {
        let held: std::collections::HashMap<u32, u64> = fence.held_accounts().into_iter().collect();
        for (&account_id, &epoch) in &held {
            if known.get(&account_id) == Some(&epoch) {
                continue;
            }
            match queue::rebuild_account(&store, account_id).await {
                Ok(emails) => tracing::info!(
                    account_id,
                    epoch,
                    emails,
                    "search: rebuilding an account this node now owns"
                ),
                Err(error) => {
                    tracing::warn!(account_id, %error, "search: rebuilding a newly owned account failed")
                }
            }
        }
        known = held;
        if generations.changed().await.is_err() {
            return;
        }
    }
}
