//! The indexer actor: the one owner of the tantivy `IndexWriter`. It drains the durable queue
//! (`queue.rs`) in key order, turns each task into a delete-by-term (and, for an index task,
//! a new document built from the store), and commits on explicit triggers:
//! - a batch of [`COMMIT_DOCS`] tasks applied;
//! - [`MAX_COMMIT_LATENCY`] since the oldest uncommitted task (the freshness bound);
//! - the queue drained;
//! - shutdown.
//!
//! After each commit the shared reader reloads, and only then are the applied tasks cleared
//! from the store (compare-and-clear). A crash between the two replays tasks whose effect is
//! already in the index: harmless, since every task deletes the Email's document first.
//!
//! Its mailbox is a small bounded channel of typed [`Command`]s; new work is signalled by a
//! store watch on the queue's version key, so tasks written by any writer (or, on a cluster,
//! any node) wake it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tantivy::schema::Field;
use tantivy::{IndexReader, IndexWriter, TantivyDocument, Term};
use tokio::sync::{mpsc, oneshot, watch};

use super::document::{self, EmailContent};
use super::queue::{self, Task, TaskKind};
use super::schema::{self, Fields};
use crate::store::Store;
use crate::store::blob::BlobStore;

/// Tasks read from the store per round.
const READ_BATCH: usize = 500;
/// Commit at least every this many applied tasks.
pub const COMMIT_DOCS: usize = 2_000;
/// Commit at most this long after the oldest uncommitted task was applied.
pub const MAX_COMMIT_LATENCY: Duration = Duration::from_millis(400);
/// The least time between passes over the queue that found only other nodes' tasks.
const FOREIGN_RESCAN: Duration = Duration::from_millis(250);

/// What the actor's mailbox accepts.
#[derive(Debug)]
pub enum Command {
    /// Answer once the queue is empty and everything applied is committed and visible.
    Flush(oneshot::Sender<()>),
    /// `true`: apply no task until `Hold(false)` (what is applied is committed first), so
    /// tasks stay pending — for tests of exactness with a backlog, and for operators.
    /// Answered once in effect.
    Hold(bool, oneshot::Sender<()>),
}

/// Who waits for what.
#[derive(Default)]
struct Waiters {
    flush: Vec<oneshot::Sender<()>>,
    hold: Vec<oneshot::Sender<()>>,
}

/// Takes one command from the mailbox.
fn accept(command: Command, held: &mut bool, waiters: &mut Waiters) {
    match command {
        Command::Flush(waiter) => waiters.flush.push(waiter),
        Command::Hold(true, waiter) => {
            *held = true;
            waiters.hold.push(waiter);
        }
        Command::Hold(false, waiter) => {
            *held = false;
            let _ = waiter.send(());
        }
    }
}

enum Operation {
    DeleteAccount(u32),
    Delete([u8; 12]),
    Replace([u8; 12], Box<TantivyDocument>),
}

pub(super) struct Indexer {
    pub store: Store,
    pub blobs: BlobStore,
    pub fields: Fields,
    pub writer: Arc<Mutex<IndexWriter>>,
    pub reader: IndexReader,
}

/// Sleeps; true if the server is stopping meanwhile.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stop.wait_for(|stop| *stop) => {}
    }
    *stop.borrow()
}

fn add_text(document: &mut TantivyDocument, field: Field, text: &str) {
    if !text.is_empty() {
        document.add_text(field, text);
    }
}

/// The tantivy document of one Email.
pub fn build_document(
    fields: &Fields,
    account_id: u32,
    email_id: u64,
    content: &EmailContent,
) -> TantivyDocument {
    let mut document = TantivyDocument::default();
    document.add_bytes(fields.uid, &schema::uid(account_id, email_id));
    document.add_u64(fields.account, u64::from(account_id));
    document.add_u64(fields.email, email_id);
    add_text(&mut document, fields.subject, &content.subject);
    add_text(&mut document, fields.from, &content.from);
    add_text(&mut document, fields.to, &content.to);
    add_text(&mut document, fields.cc, &content.cc);
    add_text(&mut document, fields.bcc, &content.bcc);
    add_text(&mut document, fields.body, &content.body);
    add_text(
        &mut document,
        fields.attachment_text,
        &content.attachment_text,
    );
    add_text(
        &mut document,
        fields.attachment_name,
        &content.attachment_names,
    );
    let mut terms = std::collections::BTreeSet::new();
    for (name, value) in &content.headers {
        terms.extend(schema::header_terms(name, value));
    }
    for term in terms {
        document.add_text(fields.header, term);
    }
    document
}

impl Indexer {
    pub async fn run(self, mut commands: mpsc::Receiver<Command>, mut stop: watch::Receiver<bool>) {
        let mut cursor: Option<Vec<u8>> = None;
        let mut uncommitted: Vec<Task> = Vec::new();
        let mut oldest: Option<Instant> = None;
        let mut waiters = Waiters::default();
        let mut held = false;
        // Whether the last full pass read tasks, none of them this node's (a cluster).
        let mut foreign_only = false;
        loop {
            if held {
                if !uncommitted.is_empty() {
                    self.commit_and_clear(&uncommitted).await;
                    uncommitted.clear();
                    oldest = None;
                    cursor = None;
                }
                for waiter in waiters.hold.drain(..) {
                    let _ = waiter.send(());
                }
                tokio::select! {
                    command = commands.recv() => match command {
                        Some(command) => accept(command, &mut held, &mut waiters),
                        None => return,
                    },
                    _ = stop.wait_for(|stop| *stop) => return,
                }
                continue;
            }
            // Registered before reading, so a task written meanwhile still wakes us.
            let wake = self.store.watch(&queue::version_key());
            let batch = match queue::load(&self.store, cursor.as_deref(), READ_BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "reading the search queue failed; retrying");
                    if sleep_or_stop(&mut stop, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            let drained = batch.len() < READ_BATCH;
            // On a cluster this index holds only the accounts this node owns; the others'
            // tasks are their owners' (this node's cursor moves past them, and past the rest
            // of a foreign account at the end of the batch: ownership is per account).
            let read_up_to = batch.last().map(|task| match self.store.fence() {
                Some(fence) if !fence.holds(task.account_id) => {
                    queue::past_account(task.account_id)
                }
                _ => task.key.clone(),
            });
            let read_any = !batch.is_empty();
            let batch: Vec<Task> = match self.store.fence() {
                Some(fence) => batch
                    .into_iter()
                    .filter(|task| fence.holds(task.account_id))
                    .collect(),
                None => batch,
            };
            if cursor.is_none() {
                foreign_only = read_any && batch.is_empty();
            } else if read_any {
                foreign_only = foreign_only && batch.is_empty();
            }
            if batch.is_empty() && read_up_to.is_some() {
                cursor = read_up_to.clone();
            }
            if !batch.is_empty() {
                match self.apply(&batch).await {
                    Ok(()) => {
                        cursor = read_up_to;
                        oldest.get_or_insert_with(Instant::now);
                        uncommitted.extend(batch);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "indexing a batch failed; retrying");
                        if sleep_or_stop(&mut stop, Duration::from_secs(1)).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let stopping = *stop.borrow();
            let due = drained
                || stopping
                || uncommitted.len() >= COMMIT_DOCS
                || oldest.is_some_and(|since| since.elapsed() >= MAX_COMMIT_LATENCY);
            if due {
                if !uncommitted.is_empty() {
                    self.commit_and_clear(&uncommitted).await;
                    uncommitted.clear();
                    oldest = None;
                }
                // Start over: tasks written meanwhile under smaller keys are found too.
                cursor = None;
            }
            while let Ok(command) = commands.try_recv() {
                accept(command, &mut held, &mut waiters);
            }
            if stopping {
                return;
            }
            if held || !(drained && uncommitted.is_empty()) {
                continue;
            }
            for waiter in waiters.flush.drain(..) {
                let _ = waiter.send(());
            }
            let mut pause = false;
            tokio::select! {
                woke = wake => {
                    if woke.is_err() {
                        // The store closed: the server is going away.
                        return;
                    }
                    pause = foreign_only;
                }
                command = commands.recv() => match command {
                    Some(command) => accept(command, &mut held, &mut waiters),
                    None => return,
                },
                _ = stop.wait_for(|stop| *stop) => return,
            }
            // Every task bumps the queue's version, so during another node's burst this one
            // would re-read that node's tasks once per Email. After a pass that found only
            // other nodes' tasks the next one waits a little (this node's own tasks wait as
            // long; queries stay exact meanwhile: `AccountBacklog`).
            if pause && sleep_or_stop(&mut stop, FOREIGN_RESCAN).await {
                return;
            }
        }
    }

    /// Builds the batch's operations from the store, then hands them to the writer.
    async fn apply(&self, batch: &[Task]) -> Result<(), String> {
        // The Emails to index, read together (few read transactions for the whole batch).
        let to_index: Vec<(u32, u64)> = batch
            .iter()
            .filter(|task| task.kind == TaskKind::Index)
            .filter_map(|task| Some((task.account_id, task.email_id?)))
            .collect();
        // A store failure fails the whole batch, which is retried.
        let mut loaded = document::load_many(&self.store, &self.blobs, &to_index)
            .await
            .map_err(|error| error.to_string())?
            .into_iter();
        let mut operations = Vec::with_capacity(batch.len());
        for task in batch {
            let account_id = task.account_id;
            let operation = match (task.kind, task.email_id) {
                (TaskKind::ResetAccount, _) => Operation::DeleteAccount(account_id),
                (TaskKind::Delete, Some(email_id)) => {
                    Operation::Delete(schema::uid(account_id, email_id))
                }
                (TaskKind::Index, Some(email_id)) => {
                    let uid = schema::uid(account_id, email_id);
                    let loaded = match loaded.next() {
                        Some(Ok(loaded)) => loaded,
                        // One unreadable Email must not block the queue behind it. It gets a
                        // document without words: no text finds it, and the index still
                        // holds one document per Email (counts from the index stay exact).
                        Some(Err(error)) => {
                            tracing::error!(account_id, email_id, %error, "Email not indexable; indexed without text");
                            Some(EmailContent::default())
                        }
                        None => return Err("search batch loading lost an Email".to_owned()),
                    };
                    match loaded {
                        Some(content) => Operation::Replace(
                            uid,
                            Box::new(build_document(&self.fields, account_id, email_id, &content)),
                        ),
                        // Destroyed (or its account purged) since.
                        None => Operation::Delete(uid),
                    }
                }
                (_, None) => continue,
            };
            operations.push(operation);
        }
        let writer = Arc::clone(&self.writer);
        let fields = self.fields;
        tokio::task::spawn_blocking(move || {
            let writer = writer.lock().unwrap_or_else(|poison| poison.into_inner());
            for operation in operations {
                match operation {
                    Operation::DeleteAccount(account_id) => {
                        writer.delete_term(Term::from_field_u64(
                            fields.account,
                            u64::from(account_id),
                        ));
                    }
                    Operation::Delete(uid) => {
                        writer.delete_term(Term::from_field_bytes(fields.uid, &uid));
                    }
                    Operation::Replace(uid, document) => {
                        writer.delete_term(Term::from_field_bytes(fields.uid, &uid));
                        writer
                            .add_document(*document)
                            .map_err(|error| error.to_string())?;
                    }
                }
            }
            Ok::<(), String>(())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    /// Commits the writer, reloads the readers, then clears the applied tasks. On a failed
    /// commit the writer rolls back and the tasks stay queued (they are replayed).
    async fn commit_and_clear(&self, tasks: &[Task]) {
        let writer = Arc::clone(&self.writer);
        let started = Instant::now();
        let committed = tokio::task::spawn_blocking(move || {
            let mut writer = writer.lock().unwrap_or_else(|poison| poison.into_inner());
            match writer.commit() {
                Ok(_) => Ok(()),
                Err(error) => {
                    let _ = writer.rollback();
                    Err(error.to_string())
                }
            }
        })
        .await
        .map_err(|error| error.to_string())
        .and_then(|outcome| outcome);
        if let Err(error) = committed {
            tracing::error!(%error, tasks = tasks.len(), "search index commit failed; tasks stay queued");
            return;
        }
        if let Err(error) = self.reader.reload() {
            tracing::error!(%error, "search reader reload failed");
            return;
        }
        if let Err(error) = queue::clear_done(&self.store, tasks).await {
            // They are replayed later: harmless.
            tracing::warn!(%error, "clearing applied search tasks failed");
        }
        tracing::debug!(
            tasks = tasks.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index committed"
        );
    }
}
