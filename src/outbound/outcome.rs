//! Recording what destinations answered, and the last commit of an attempt.
//!
//! - [`record`]: one commit for one destination's answer while others are still being sent
//!   to (so an accepted recipient is on disk as soon as possible and never resent);
//! - [`Finisher`]: the common end of an attempt — the last destination's answer, the claim
//!   dropped, the entry removed or rescheduled and the EmailSubmission updated — in ONE
//!   commit, and the ends of attempts that complete close together share one transaction
//!   (while one batch commits, the next gathers). An attempt is told it is done only after
//!   the commit holding it. When a bounce or delay notice is owed, the attempt takes the
//!   longer path of `attempt::finish_attempt` (the report is a blob built first).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::actor::Context;
use super::clock::UnixMillis;
use super::config::OutboundConfig;
use super::queue::{self, OutboundMessage, RecipientState};
use super::smtp_client::Reply;
use crate::mail::submission::{Delivered, DeliveryReport, RecipientReport, apply_delivery_report};
use crate::smtp::incoming::{self, IncomingMessage};
use crate::store::commit::{Changes, commit_account};
use crate::store::{Store, StoreResult, Transaction};

/// What one destination said about some recipients (indexes into the message's list).
#[derive(Clone)]
pub(super) struct Outcome {
    pub replies: Vec<(usize, Reply)>,
    /// Handed to the local delivery queue (reported as delivered: yes).
    pub local: bool,
}

/// The wait before each recipient's next attempt, should its reply be a temporary failure.
/// Decided once, outside retried transaction closures, so every retry writes the same thing.
fn waits_for(context: &Context, entry: &OutboundMessage, outcome: &Outcome) -> Vec<Duration> {
    outcome
        .replies
        .iter()
        .map(|(index, _)| {
            let attempts = entry
                .recipients
                .get(*index)
                .map_or(0, |recipient| recipient.attempts);
            super::attempt::backoff(context, attempts + 1)
        })
        .collect()
}

fn millis(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1_000)).unwrap_or(i64::MAX)
}

/// Applies `outcome` to the pending recipients of `entry`; returns the EmailSubmission's
/// per-recipient report.
fn apply(
    entry: &mut OutboundMessage,
    outcome: &Outcome,
    waits: &[Duration],
    now: UnixMillis,
    lifetime_ms: i64,
) -> Vec<RecipientReport> {
    let created_at = entry.created_at;
    let mut reports = Vec::new();
    for ((index, reply), wait) in outcome.replies.iter().zip(waits) {
        let Some(recipient) = entry.recipients.get_mut(*index) else {
            continue;
        };
        if recipient.state != RecipientState::Pending {
            continue;
        }
        recipient.attempts += 1;
        recipient.last_reply = Some(reply.to_string());
        let delivered = if reply.is_positive() {
            recipient.state = RecipientState::Delivered;
            if outcome.local {
                Delivered::Yes
            } else {
                // RFC 8621 §7: relayed to another server, the final status is unknown.
                Delivered::Unknown
            }
        } else if reply.is_permanent() {
            recipient.state = RecipientState::Failed;
            Delivered::No
        } else if now.saturating_sub(created_at) >= lifetime_ms {
            recipient.state = RecipientState::Failed;
            recipient.last_reply = Some(format!(
                "{reply} (gave up after {} attempts)",
                recipient.attempts
            ));
            Delivered::No
        } else {
            let wait = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            recipient.next_attempt_at = now.saturating_add(wait);
            Delivered::Queued
        };
        reports.push(RecipientReport {
            address: recipient.address.clone(),
            delivered,
            smtp_reply: recipient.last_reply.clone().unwrap_or_default(),
            displayed: None,
        });
    }
    reports
}

/// Whether the end of this attempt owes the sender a report: a bounce for a failed recipient
/// not reported yet, or the (single) delay notice. The same rules as `finish_attempt`.
pub(super) fn report_owed(
    entry: &OutboundMessage,
    now: UnixMillis,
    config: &OutboundConfig,
) -> bool {
    if !entry.kind.may_bounce() || entry.mail_from.is_empty() {
        return false;
    }
    let bounce = entry.recipients.iter().any(|recipient| {
        recipient.state == RecipientState::Failed && !recipient.reported && recipient.notify.failure
    });
    let delay_notice_ms = millis(config.delay_notice_seconds);
    let delay = !entry.delay_notified
        && delay_notice_ms > 0
        && now.saturating_sub(entry.created_at) >= delay_notice_ms
        && entry
            .recipients
            .iter()
            .any(|recipient| recipient.state == RecipientState::Pending && recipient.notify.delay);
    bounce || delay
}

/// Commits what one destination said: recipient states (+ the local hand-over) and the
/// EmailSubmission report, in one transaction; `current` follows the stored entry.
pub(super) async fn record(
    context: &Context,
    current: &mut OutboundMessage,
    outcome: Outcome,
    incoming: Option<IncomingMessage>,
) -> StoreResult<()> {
    let now = context.clock.now();
    let lifetime_ms = millis(context.config.lifetime_seconds);
    let waits = waits_for(context, current, &outcome);
    let id = current.id;
    let account_id = current.account_id;
    let submission_id = current.submission_id;
    let outcome = Arc::new(outcome);
    let incoming = Arc::new(incoming);
    let owner = context.owner;
    let committed = commit_account(&context.store, account_id, |tx, changes| {
        let outcome = Arc::clone(&outcome);
        let incoming = Arc::clone(&incoming);
        let waits = waits.clone();
        Box::pin(async move {
            let Some(mut entry) = queue::load(tx, id).await? else {
                return Ok(None);
            };
            if !entry.claimed_by(owner) {
                // Deposed: the new claimer records its own answers (and hands local
                // recipients over itself).
                return Ok(Some(Err(())));
            }
            if let Some(incoming) = incoming.as_ref() {
                incoming::enqueue(tx, incoming).await?;
            }
            let reports = apply(&mut entry, &outcome, &waits, now, lifetime_ms);
            queue::save(tx, &mut entry)?;
            if let Some(submission_id) = submission_id {
                let report = DeliveryReport {
                    recipients: reports,
                    undo_final: true,
                    dsn_blob: None,
                    mdn_blob: None,
                };
                apply_delivery_report(tx, changes, account_id, submission_id, &report).await?;
            }
            Ok(Some(Ok(entry)))
        })
    })
    .await?;
    match committed.value {
        Some(Ok(entry)) => *current = entry,
        Some(Err(())) => return Err(queue::claim_lost(id)),
        None => {}
    }
    Ok(())
}

/// How an attempt ended in the finisher's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finished {
    /// Claim dropped; the entry is gone (every recipient final) or rescheduled.
    Done,
    /// The last answer is recorded but a report is owed: the attempt sends it and drops the
    /// claim itself (`attempt::finish_attempt`).
    NeedsReport,
}

/// The end of one attempt, as the finisher commits it.
#[derive(Clone)]
struct Job {
    id: u64,
    /// The worker whose claim the attempt ran under.
    owner: u64,
    account_id: u32,
    submission_id: Option<u64>,
    /// The last destination's answer, not recorded yet.
    outcome: Option<Outcome>,
    waits: Vec<Duration>,
    now: UnixMillis,
}

struct Completion {
    job: Job,
    done: oneshot::Sender<StoreResult<Finished>>,
}

/// Ends of attempts waiting to be committed together.
const FINISHER_QUEUE: usize = 1_024;
/// At most this many attempt ends per transaction (far under the transaction limits).
const MAX_BATCH: usize = 256;

/// The coalescing committer of attempt ends (one task per actor).
pub(super) struct Finisher {
    sender: mpsc::Sender<Completion>,
}

impl Finisher {
    pub(super) fn start(store: Store, config: OutboundConfig) -> Finisher {
        let (sender, receiver) = mpsc::channel(FINISHER_QUEUE);
        tokio::spawn(run_finisher(store, config, receiver));
        Finisher { sender }
    }
}

/// Ends the attempt of `current` (the entry as stored, claim held) with the last destination's
/// answer `last`: one commit, shared with the attempts that end at the same time.
pub(super) async fn finish(
    context: &Context,
    current: &OutboundMessage,
    last: Option<Outcome>,
) -> StoreResult<Finished> {
    let now = context.clock.now();
    let waits = last
        .as_ref()
        .map(|outcome| waits_for(context, current, outcome))
        .unwrap_or_default();
    let (done, answer) = oneshot::channel();
    let completion = Completion {
        job: Job {
            id: current.id,
            owner: context.owner,
            account_id: current.account_id,
            submission_id: current.submission_id,
            outcome: last,
            waits,
            now,
        },
        done,
    };
    let completion = match &context.finisher {
        Some(finisher) => match finisher.sender.send(completion).await {
            Ok(()) => {
                return answer.await.unwrap_or_else(|_| {
                    Err(crate::store::StoreError::io(
                        "the outbound finisher stopped",
                    ))
                });
            }
            Err(mpsc::error::SendError(completion)) => completion,
        },
        None => completion,
    };
    // No finisher running (an actor being stopped): commit alone.
    let config = Arc::new(context.config.clone());
    commit_one(&context.store, &config, completion.job).await
}

async fn commit_one(
    store: &Store,
    config: &Arc<OutboundConfig>,
    job: Job,
) -> StoreResult<Finished> {
    commit_batch(store, config, Arc::new(vec![job]))
        .await
        .map(|finished| finished.first().copied().unwrap_or(Finished::Done))
}

async fn run_finisher(
    store: Store,
    config: OutboundConfig,
    mut receiver: mpsc::Receiver<Completion>,
) {
    let config = Arc::new(config);
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        // Attempts that end while this task was busy are already queued; give the ones
        // finishing right now one turn of the scheduler to join.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(completion) => batch.push(completion),
                Err(_) => break,
            }
        }
        let jobs: Arc<Vec<Job>> = Arc::new(batch.iter().map(|c| c.job.clone()).collect());
        let results = match commit_batch(&store, &config, Arc::clone(&jobs)).await {
            Ok(results) => results.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) if batch.len() == 1 => vec![Err(error)],
            Err(error) => {
                // One bad entry must not fail the others: commit them one by one.
                tracing::warn!(%error, batch = batch.len(), "outbound: batched finish failed; committing one by one");
                let mut results = Vec::with_capacity(batch.len());
                for job in jobs.iter() {
                    results.push(commit_one(&store, &config, job.clone()).await);
                }
                results
            }
        };
        for (completion, result) in batch.into_iter().zip(results) {
            let _ = completion.done.send(result);
        }
    }
}

/// Commits the ends of `batch`: the entries without an EmailSubmission in one transaction,
/// those with one in one transaction per account (its change log), all at once so the store
/// writes them in the same group commit. Results in `batch` order.
async fn commit_batch(
    store: &Store,
    config: &Arc<OutboundConfig>,
    batch: Arc<Vec<Job>>,
) -> StoreResult<Vec<Finished>> {
    let mut plain = Vec::new();
    let mut by_account: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (index, job) in batch.iter().enumerate() {
        match job.submission_id {
            Some(_) => by_account.entry(job.account_id).or_default().push(index),
            None => plain.push(index),
        }
    }
    let plain = Arc::new(plain);
    let plain_commit = async {
        if plain.is_empty() {
            return Ok(Vec::new());
        }
        store
            .transact(|tx| {
                let (plain, batch, config) =
                    (Arc::clone(&plain), Arc::clone(&batch), Arc::clone(config));
                Box::pin(async move {
                    let mut changes = Changes::default();
                    let mut finished = Vec::with_capacity(plain.len());
                    for index in plain.iter() {
                        let result = complete(tx, &mut changes, &batch[*index], &config).await?;
                        finished.push((*index, result));
                    }
                    Ok(finished)
                })
            })
            .await
    };
    let account_commits = by_account.into_iter().map(|(account_id, indexes)| {
        let indexes = Arc::new(indexes);
        let batch = Arc::clone(&batch);
        let config = Arc::clone(config);
        async move {
            commit_account(store, account_id, |tx, changes| {
                let (indexes, batch, config) = (
                    Arc::clone(&indexes),
                    Arc::clone(&batch),
                    Arc::clone(&config),
                );
                Box::pin(async move {
                    let mut finished = Vec::with_capacity(indexes.len());
                    for index in indexes.iter() {
                        let result = complete(tx, changes, &batch[*index], &config).await?;
                        finished.push((*index, result));
                    }
                    Ok(finished)
                })
            })
            .await
            .map(|committed| committed.value)
        }
    });
    let (plain, accounts) = futures_util::future::join(
        plain_commit,
        futures_util::future::join_all(account_commits),
    )
    .await;
    let mut results = vec![Finished::Done; batch.len()];
    for (index, finished) in plain?.into_iter().chain(
        accounts
            .into_iter()
            .collect::<StoreResult<Vec<_>>>()?
            .into_iter()
            .flatten(),
    ) {
        results[index] = finished;
    }
    Ok(results)
}

/// One attempt's end inside the batch transaction.
async fn complete(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    completion: &Job,
    config: &OutboundConfig,
) -> StoreResult<Finished> {
    let lifetime_ms = millis(config.lifetime_seconds);
    let Some(mut entry) = queue::load(tx, completion.id).await? else {
        return Ok(Finished::Done);
    };
    if !entry.claimed_by(completion.owner) {
        // Deposed (paused past its lease, another worker claimed the message): this late
        // answer is discarded and the new claimer's attempt decides.
        tracing::warn!(
            queue_id = completion.id,
            "outbound: the claim was taken over; this attempt's answer is discarded"
        );
        return Ok(Finished::Done);
    }
    let reports = match &completion.outcome {
        Some(outcome) => apply(
            &mut entry,
            outcome,
            &completion.waits,
            completion.now,
            lifetime_ms,
        ),
        None => Vec::new(),
    };
    let owed = report_owed(&entry, completion.now, config);
    if owed {
        // The claim stays: the attempt builds the report and ends itself.
        queue::save(tx, &mut entry)?;
    } else {
        // Nothing is sent about these failures (NOTIFY, a null sender): they are settled.
        for recipient in &mut entry.recipients {
            if recipient.state == RecipientState::Failed {
                recipient.reported = true;
            }
        }
        entry.claim = None;
        if entry.is_finished() {
            queue::finish(tx, &entry)?;
        } else {
            queue::save(tx, &mut entry)?;
        }
    }
    if let Some(submission_id) = completion.submission_id {
        let report = DeliveryReport {
            recipients: reports,
            undo_final: true,
            dsn_blob: None,
            mdn_blob: None,
        };
        apply_delivery_report(tx, changes, completion.account_id, submission_id, &report).await?;
    }
    Ok(if owed {
        Finished::NeedsReport
    } else {
        Finished::Done
    })
}
