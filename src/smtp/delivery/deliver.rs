//! Stage two: per recipient, a `commit_account` (shared with other deliveries to the same
//! account by the `filer`) marks the recipient delivered in the queue entry AND imports the
//! Email (Inbox, or Junk with `$junk`), so a crash or a replay never delivers twice; the last
//! recipient's commit also removes the entry and the prepared record (releasing their blob
//! holds — the Emails hold their own links). Push follows from the commit itself: the account
//! version it bumps is what the push hub watches.

use std::collections::BTreeSet;
use std::sync::Arc;

use mail_parser::MessageParser;

use super::duplicate::{self, Fingerprint};
use super::prepared::{self, Prepared, prepare};
use super::{DeliveryContext, DeliveryError, Pipeline};
use crate::auth::directory::account_email_in;
use crate::jmap::types::UtcDate;
use crate::mail::mailbox::{create_default_mailboxes, mailbox_with_role};
use crate::mail::parsed::{ParsedEmail, parse_message};
use crate::mail::store::{BlobAccess, ImportSpec, import_email_linked, import_reads};
use crate::smtp::incoming::{self, IncomingMessage, unix_now};
use crate::smtp::quarantine::{self, QuarantineRecord};
use crate::smtp::spam::{self, bayes, tokens::tokenize_message};
use crate::smtp::vacation::{self, PlannedReply};
use crate::store::blob::BlobHash;
use crate::store::commit::Changes;
use crate::store::{KeyRange, StoreError, StoreResult, Transaction};

/// What happened to one queue entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryOutcome {
    pub delivered: usize,
    pub junk: usize,
    pub duplicates: usize,
    pub quarantined: bool,
    pub vacation_replies: usize,
    /// Recipients left to the node that owns their account (a cluster).
    pub deferred: usize,
}

/// What happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientOutcome {
    Delivered {
        junk: bool,
        replied: bool,
    },
    Duplicate,
    /// An earlier attempt delivered it (a replay).
    AlreadyDelivered,
    /// The account was deleted after the message was accepted.
    AccountGone,
    /// The account's Sieve script discarded it (RFC 5228 §4.4).
    Discarded,
}

/// Everything one recipient's commit needs, shared by its retries.
pub struct RecipientDelivery {
    pub queue_id: u64,
    pub index: usize,
    pub account_id: u32,
    pub blob: BlobHash,
    pub parsed: Arc<ParsedEmail>,
    pub received_at: i64,
    pub junk: bool,
    pub fingerprint: Option<Fingerprint>,
    pub reply: Option<PlannedReply>,
    pub vacation_period: i64,
    /// What the account's active Sieve script decided (`None`: no script, or it failed to
    /// compile: the default filing).
    pub sieve: Option<crate::mail::sieve::Plan>,
}

/// Delivers every pending recipient of `entry`.
pub async fn deliver_entry(
    pipeline: &Pipeline,
    entry: &IncomingMessage,
) -> Result<EntryOutcome, DeliveryError> {
    let context = &pipeline.context;
    let mut outcome = EntryOutcome::default();
    // On a cluster each recipient is delivered by its account's owner (claimed here when it
    // has none); the others are left to their owners, whose actors read the same queue.
    let local = locally_deliverable(pipeline, entry).await?;
    outcome.deferred = entry.pending_recipients().count() - local.len();
    if local.is_empty() && outcome.deferred > 0 {
        return Ok(outcome);
    }
    let (prepared, bytes) = prepare(context, &pipeline.dns_cache, entry).await?;
    if let Some(virus) = prepared.virus.clone() {
        quarantine(context, entry, &prepared, &virus).await?;
        tracing::warn!(queue_id = entry.queue_id, %virus, "infected message quarantined");
        outcome.quarantined = true;
        return Ok(outcome);
    }
    let parsed = Arc::new(parse_message(&bytes));
    // mail-parser's view, parsed only when a recipient needs it (a trained classifier, an
    // active vacation response).
    let mut message: Option<Option<mail_parser::Message<'_>>> = None;
    // Tokenized only for an account whose classifier votes (most have not been trained).
    let mut tokens: Option<Arc<BTreeSet<u64>>> = None;
    let mut pending = entry.pending_recipients().peekable();
    if pending.peek().is_none() {
        // Every recipient delivered but the entry still here: cannot normally happen (the last
        // delivery removes it); finish it now.
        finish(context, entry.queue_id).await?;
        return Ok(outcome);
    }
    for (index, recipient) in pending {
        let account_id = recipient.account_id;
        if !local.contains(&index) {
            continue;
        }
        let min_spam = context.spam.bayes_min_spam;
        let spam_enabled = context.spam.enabled;
        // One read for what the account decides per message: has its classifier been trained
        // enough to vote, and is its vacation response on.
        let (spam_total, vacation_active, script) = context
            .store
            .read(move |tx| {
                Box::pin(async move {
                    // The active Sieve script and the Mailbox names its tests may ask about.
                    let script = match crate::mail::sieve::active_script(tx, account_id).await? {
                        Some(content) => {
                            let mailboxes = crate::mail::mailbox::load_all(tx, account_id).await?;
                            Some((content, crate::mail::sieve::mailbox_paths(&mailboxes)))
                        }
                        None => None,
                    };
                    let spam_total = match spam_enabled {
                        true => bayes::totals(tx, account_id).await?.0,
                        false => 0,
                    };
                    let vacation_active =
                        match vacation::is_active_in(tx, account_id, UtcDate::now()).await {
                            Ok(active) => active,
                            Err(error) if error.kind.is_retryable() => return Err(error),
                            Err(error) => {
                                tracing::warn!(account_id, %error, "vacation response not read");
                                false
                            }
                        };
                    Ok((spam_total, vacation_active, script))
                })
            })
            .await?;
        let classifier_votes = spam_enabled && spam_total >= min_spam.max(1);
        let parsed_message = if classifier_votes {
            message
                .get_or_insert_with(|| MessageParser::default().parse(&bytes[..]))
                .as_ref()
        } else {
            None
        };
        let probability = match parsed_message {
            Some(parsed_message) => {
                let tokens = Arc::clone(
                    tokens.get_or_insert_with(|| Arc::new(tokenize_message(parsed_message))),
                );
                context
                    .store
                    .read(move |tx| {
                        let tokens = Arc::clone(&tokens);
                        Box::pin(
                            async move { bayes::classify(tx, account_id, &tokens, min_spam).await },
                        )
                    })
                    .await?
            }
            _ => None,
        };
        let verdict = spam::verdict(
            &context.spam,
            prepared.rules_score,
            prepared.spamd_spam,
            probability,
        );
        let vacation_on = !verdict.is_junk && vacation_active;
        let parsed_message = if vacation_on {
            message
                .get_or_insert_with(|| MessageParser::default().parse(&bytes[..]))
                .as_ref()
        } else {
            None
        };
        let reply = match parsed_message {
            Some(parsed_message) => {
                plan_vacation(
                    context,
                    entry,
                    &recipient.address,
                    account_id,
                    parsed_message,
                    verdict.is_junk,
                )
                .await
            }
            None => None,
        };
        let sieve = script.and_then(|(content, paths)| {
            run_sieve(
                &pipeline.sieve_cache,
                &content,
                &paths,
                &bytes,
                entry,
                &recipient.address,
                account_id,
            )
        });
        let delivery = RecipientDelivery {
            queue_id: entry.queue_id,
            index,
            account_id,
            blob: prepared.blob,
            parsed: Arc::clone(&parsed),
            received_at: entry.received_at,
            junk: verdict.is_junk,
            fingerprint: prepared.fingerprint,
            reply,
            vacation_period: context.settings.vacation_period_seconds,
            sieve,
        };
        let committed = pipeline.filer.file(delivery).await?;
        tracing::debug!(
            queue_id = entry.queue_id,
            account_id,
            outcome = ?committed,
            score = verdict.score,
            "delivered"
        );
        match committed {
            RecipientOutcome::Delivered { junk, replied } => {
                outcome.delivered += 1;
                outcome.junk += usize::from(junk);
                outcome.vacation_replies += usize::from(replied);
            }
            RecipientOutcome::Duplicate => outcome.duplicates += 1,
            // Delivered as the user's own rule asked: into nowhere.
            RecipientOutcome::Discarded => outcome.delivered += 1,
            RecipientOutcome::AlreadyDelivered | RecipientOutcome::AccountGone => {}
        }
    }
    Ok(outcome)
}

/// Runs the account's Sieve script over the message (sans-IO, `mail::sieve`): the plan, or
/// `None` when the stored script no longer compiles (the message is filed as without one).
fn run_sieve(
    cache: &crate::mail::sieve::ScriptCache,
    content: &[u8],
    paths: &std::collections::BTreeSet<String>,
    message: &[u8],
    entry: &IncomingMessage,
    address: &str,
    account_id: u32,
) -> Option<crate::mail::sieve::Plan> {
    let script = match cache.get_or_compile(content) {
        Ok(script) => script,
        Err(error) => {
            tracing::warn!(account_id, %error, "Sieve script does not compile; message kept");
            return None;
        }
    };
    let account = crate::mail::sieve::Account {
        address,
        mailbox_paths: paths,
    };
    let plan = crate::mail::sieve::run(&script, message, &account, &entry.mail_from, address);
    if let Some(error) = &plan.error {
        tracing::info!(account_id, queue_id = entry.queue_id, %error, "Sieve script stopped; message kept");
    }
    if !plan.redirects.is_empty() || plan.rejected.is_some() {
        tracing::info!(
            account_id,
            queue_id = entry.queue_id,
            redirects = plan.redirects.len(),
            rejected = plan.rejected.is_some(),
            "Sieve redirect/reject not carried out by this version; message kept"
        );
    }
    Some(plan)
}

/// The pending recipients (by index) this node may deliver: all of them on a single node; on
/// a cluster, those whose account this node owns or has just claimed.
async fn locally_deliverable(
    pipeline: &Pipeline,
    entry: &IncomingMessage,
) -> Result<Vec<usize>, DeliveryError> {
    let context = &pipeline.context;
    let Some(fence) = context.store.fence() else {
        return Ok(entry.pending_recipients().map(|(index, _)| index).collect());
    };
    let mut local = Vec::new();
    for (index, recipient) in entry.pending_recipients() {
        let account_id = recipient.account_id;
        if fence.holds(account_id) {
            local.push(index);
            continue;
        }
        // Known to be another live node's for a moment: no transaction per queued entry.
        if pipeline.owned_elsewhere(account_id) {
            continue;
        }
        match crate::store::ownership::ensure_owned(&context.store, fence, account_id).await? {
            Ok(_epoch) => local.push(index),
            Err(_owner) => pipeline.remember_owned_elsewhere(account_id),
        }
    }
    Ok(local)
}

async fn plan_vacation(
    context: &DeliveryContext,
    entry: &IncomingMessage,
    address: &str,
    account_id: u32,
    message: &mail_parser::Message<'_>,
    is_junk: bool,
) -> Option<PlannedReply> {
    let read = context
        .store
        .read(move |tx| Box::pin(async move { account_email_in(tx, account_id).await }))
        .await;
    let account_email = read.ok().flatten()?;
    let to = vacation::reply_address(
        &entry.mail_from,
        &[address, account_email.as_str()],
        message,
        is_junk,
    )?;
    match vacation::plan(
        &context.store,
        &context.blobs,
        account_id,
        &account_email,
        &to,
        message,
        context.settings.vacation_period_seconds,
        UtcDate::now(),
    )
    .await
    {
        Ok(reply) => reply,
        Err(error) => {
            tracing::warn!(account_id, %error, "vacation reply not prepared");
            None
        }
    }
}

/// What one delivery's commit reads that other deliveries of its batch do not (the queue
/// entry, the duplicate window, the prepared record, the import's own keys): the filer reads
/// them all at once before the batch ([`Transaction::prefetch`]) instead of one round trip
/// after another.
pub fn commit_reads(
    delivery: &RecipientDelivery,
    now: i64,
    keys: &mut Vec<Vec<u8>>,
    ranges: &mut Vec<KeyRange>,
) {
    ranges.push(KeyRange::prefix(&incoming::entry_key(delivery.queue_id)));
    if let Some(fingerprint) = delivery.fingerprint {
        keys.extend(duplicate::window_keys(
            delivery.account_id,
            fingerprint,
            now,
        ));
    }
    keys.push(prepared::key(delivery.queue_id));
    import_reads(
        delivery.account_id,
        &delivery.parsed,
        &delivery.blob,
        keys,
        ranges,
    );
}

/// One recipient's part of a delivery commit (several may share one commit: `filer`).
pub async fn deliver_in_commit(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    delivery: &RecipientDelivery,
) -> StoreResult<RecipientOutcome> {
    let RecipientDelivery {
        queue_id,
        index,
        account_id,
        ..
    } = *delivery;
    if !incoming::mark_recipient_delivered(tx, queue_id, index).await? {
        return Ok(RecipientOutcome::AlreadyDelivered);
    }
    let now = unix_now();
    let outcome = if account_email_in(tx, account_id).await?.is_none() {
        RecipientOutcome::AccountGone
    } else if let Some(fingerprint) = delivery.fingerprint
        && duplicate::is_duplicate(tx, account_id, fingerprint, queue_id, now).await?
    {
        RecipientOutcome::Duplicate
    } else {
        let inbox = inbox_of(tx, changes, account_id).await?;
        // Where the message goes when no rule says otherwise: the Inbox, or Junk.
        let (kept_in, mut keywords) = if delivery.junk {
            let junk = mailbox_with_role(tx, account_id, "junk").await?;
            (junk.unwrap_or(inbox), vec!["$junk".to_owned()])
        } else {
            (inbox, Vec::new())
        };
        let mut mailbox_ids = vec![kept_in];
        if let Some(plan) = &delivery.sieve {
            // RFC 5228: each target gets the message (one Email in several Mailboxes), with
            // the flags its action set (RFC 5232) as keywords.
            mailbox_ids.clear();
            for (folder, flags) in &plan.targets {
                let target = match folder {
                    crate::mail::sieve::Folder::Inbox => kept_in,
                    crate::mail::sieve::Folder::Named { name, create } => {
                        crate::mail::sieve::resolve_folder(tx, changes, account_id, name, *create)
                            .await?
                            .unwrap_or(kept_in)
                    }
                };
                if !mailbox_ids.contains(&target) {
                    mailbox_ids.push(target);
                }
                keywords.extend(flags.iter().cloned());
            }
        }
        if mailbox_ids.is_empty() {
            // Discarded by the account's own script (RFC 5228 §4.4).
            if let Some(fingerprint) = delivery.fingerprint {
                duplicate::remember(tx, account_id, fingerprint, queue_id, now)?;
            }
            return finish_recipient(tx, queue_id, RecipientOutcome::Discarded).await;
        }
        let spec = ImportSpec {
            blob: delivery.blob,
            parsed: (*delivery.parsed).clone(),
            mailbox_ids,
            keywords,
            received_at: delivery.received_at,
        };
        import_email_linked(tx, changes, account_id, spec, BlobAccess::QueueHeld).await?;
        if let Some(fingerprint) = delivery.fingerprint {
            duplicate::remember(tx, account_id, fingerprint, queue_id, now)?;
        }
        let replied = match &delivery.reply {
            Some(reply) => {
                vacation::queue_in_commit(tx, account_id, reply, delivery.vacation_period, now)
                    .await?
            }
            None => false,
        };
        RecipientOutcome::Delivered {
            junk: delivery.junk,
            replied,
        }
    };
    finish_recipient(tx, queue_id, outcome).await
}

/// The last recipient takes the entry and the prepared record with it, in its commit.
async fn finish_recipient(
    tx: &mut dyn Transaction,
    queue_id: u64,
    outcome: RecipientOutcome,
) -> StoreResult<RecipientOutcome> {
    let remaining = incoming::load(tx, queue_id)
        .await?
        .map_or(0, |entry| entry.pending_recipients().count());
    if remaining == 0 {
        incoming::finish(tx, queue_id).await?;
        prepared::clear(tx, queue_id).await?;
    }
    Ok(outcome)
}

/// The account's Inbox; an account whose Mailboxes were never created gets them now.
async fn inbox_of(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
) -> StoreResult<u64> {
    if let Some(inbox) = mailbox_with_role(tx, account_id, "inbox").await? {
        return Ok(inbox);
    }
    create_default_mailboxes(tx, changes, account_id).await?;
    mailbox_with_role(tx, account_id, "inbox")
        .await?
        .ok_or_else(|| StoreError::io(format!("account {account_id} has no Inbox")))
}

/// Removes an entry whose recipients were all delivered.
async fn finish(context: &DeliveryContext, queue_id: u64) -> StoreResult<()> {
    context
        .store
        .transact(move |tx| {
            Box::pin(async move {
                incoming::finish(tx, queue_id).await?;
                prepared::clear(tx, queue_id).await
            })
        })
        .await
}

/// Keeps an infected message out of every mailbox: a quarantine record holding its prepared
/// blob (`tern quarantine list|release|delete`), written with the entry's removal.
async fn quarantine(
    context: &DeliveryContext,
    entry: &IncomingMessage,
    prepared: &Prepared,
    virus: &str,
) -> StoreResult<()> {
    let record = Arc::new(QuarantineRecord {
        virus: virus.to_owned(),
        blob: prepared.blob.to_hex(),
        mail_from: entry.mail_from.clone(),
        recipients: entry
            .recipients
            .iter()
            .map(|recipient| recipient.address.clone())
            .collect(),
        client_ip: entry.client_ip.map(|ip| ip.to_string()),
        received_at: entry.received_at,
        rules_score: prepared.rules_score,
        rules: prepared.rules.clone(),
        fingerprint: prepared.fingerprint,
        size: prepared.size,
    });
    let queue_id = entry.queue_id;
    context
        .store
        .transact(move |tx| {
            let record = Arc::clone(&record);
            Box::pin(async move {
                if incoming::load(tx, queue_id).await?.is_none() {
                    return Ok(());
                }
                quarantine::put(tx, queue_id, &record).await?;
                incoming::finish(tx, queue_id).await?;
                prepared::clear(tx, queue_id).await
            })
        })
        .await
}
