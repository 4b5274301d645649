//! One attempt at a claimed message: local recipients are handed to the SMTP ingress queue
//! (`smtp::incoming`, the delivery actor files them), remote ones go to their MX hosts (or the
//! smarthost), one session per destination domain, several domains at once.
//!
//! Order of writes, which is what makes a crash harmless:
//! 1. as soon as a destination answers, ONE commit records its recipients' outcomes (and the
//!    EmailSubmission's deliveryStatus); a recipient recorded delivered is never sent again.
//!    The window left is between the peer's 250 and that commit: a crash there sends the
//!    message again to those recipients (at-least-once, as every MTA);
//! 2. local recipients: the ingress entry and their delivered state commit together, so they
//!    are handed over exactly once;
//! 3. the last destination's answer is not committed alone: the attempt's final commit holds
//!    it together with the dropped claim and the removal or rescheduling of the entry
//!    (`outcome::finish`, shared by attempts ending together); when a bounce or delay notice
//!    is owed, [`finish_attempt`] sends it (once: `reported`, `delay_notified`) in the last
//!    commit instead.
//!
//! While the attempt runs, its claim is renewed (`renew_claim`), so a long transaction (a big
//! message to a slow server) is never taken over by another worker whose claim check sees an
//! expired lease.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::actor::Context;
use super::dsn::{self, DsnAction, RecipientStatus};
use super::outcome::{Finished, Outcome, finish, record};
use super::queue::{self, OutboundMessage, RecipientState};
use super::smtp_client::{Envelope, EnvelopeDsn, Reply};
use super::transport;
use crate::mail::submission::{DeliveryReport, apply_delivery_report};
use crate::smtp::incoming::{self, IncomingMessage, IncomingRecipient};
use crate::store::blob::{BlobErrorKind, BlobHash};
use crate::store::commit::commit_account;
use crate::store::{StoreError, StoreResult};

/// Runs one attempt; errors are store errors (the caller reschedules), or
/// [`queue::claim_lost`] when another worker took the message over (the attempt stops at once,
/// mid-session if need be, and nothing it learns afterwards is recorded). The claim is renewed
/// while it runs.
pub(super) async fn run(context: &Context, message: OutboundMessage) -> StoreResult<()> {
    let id = message.id;
    tokio::select! {
        result = send_and_record(context, message) => result,
        lost = renew_while_running(context, id) => Err(lost),
    }
}

/// Extends the claim of message `id` by a whole lease every third of one, for as long as the
/// attempt runs (the future is dropped when it ends). An attempt slower than the lease (a big
/// message, a server slow to answer the end of data) keeps its message, so no other worker
/// takes it over and sends it a second time; a dead process renews nothing, and its claim
/// lapses as before. Returns only when the claim is no longer this worker's (a pause longer
/// than the lease let another worker take it over).
async fn renew_while_running(context: &Context, id: u64) -> StoreError {
    let lease_ms = i64::try_from(context.config.claim_seconds.max(1).saturating_mul(1_000))
        .unwrap_or(i64::MAX);
    loop {
        let at = context.clock.now().saturating_add(lease_ms / 3);
        context.clock.sleep_until(at).await;
        match renew_claim(context, id, lease_ms).await {
            Ok(true) => tracing::debug!(queue_id = id, "outbound: claim renewed"),
            Ok(false) => {
                tracing::warn!(queue_id = id, "outbound: claim taken over; attempt stopped");
                return queue::claim_lost(id);
            }
            Err(error) => {
                tracing::warn!(queue_id = id, %error, "outbound: renewing the claim failed")
            }
        }
    }
}

/// Moves the claim's expiry (and so the entry's schedule key) to a lease from now; false when
/// this worker no longer holds the claim.
async fn renew_claim(context: &Context, id: u64, lease_ms: i64) -> StoreResult<bool> {
    let owner = context.owner;
    let until = context.clock.now().saturating_add(lease_ms);
    context
        .store
        .transact(|tx| {
            Box::pin(async move {
                let Some(mut entry) = queue::load(tx, id).await? else {
                    return Ok(false);
                };
                match entry.claim {
                    Some(claim) if claim.owner == owner => {
                        if claim.until < until {
                            entry.claim = Some(queue::Claim { owner, until });
                            queue::save(tx, &mut entry)?;
                        }
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
        })
        .await
}

async fn send_and_record(context: &Context, message: OutboundMessage) -> StoreResult<()> {
    let now = context.clock.now();
    let raw = match context
        .blobs
        .read_held_to_vec(&message.blob, context.config.max_message_bytes)
        .await
    {
        Ok(raw) => raw,
        Err(error) if error.kind == BlobErrorKind::NotFound => {
            return hold(context, message.id, "the message content is missing").await;
        }
        Err(error) if error.kind == BlobErrorKind::TooLarge => {
            return hold(
                context,
                message.id,
                "the message exceeds outbound.max_message_bytes",
            )
            .await;
        }
        Err(error) => return Err(StoreError::io(error.message)),
    };
    if let Some(reason) = validation_failure(&raw) {
        return hold(context, message.id, reason).await;
    }
    let signed = Arc::new(super::dkim::sign(context, &message, raw.clone()).await);

    let due: Vec<usize> = message
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, recipient)| {
            recipient.state == RecipientState::Pending
                && recipient.next_attempt_at.max(message.send_at) <= now
        })
        .map(|(index, _)| index)
        .collect();

    let mut immediate = Vec::new();
    let mut local = Vec::new();
    let mut remote: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for index in due {
        let recipient = &message.recipients[index];
        let domain = recipient.domain();
        match context.directory.is_local_domain(&domain).await {
            Ok(true) => match context
                .directory
                .account_for_address(&recipient.address)
                .await
            {
                Ok(Some(account)) => local.push((index, account.account_id)),
                Ok(None) => {
                    immediate.push((index, Reply::local(550, [5, 1, 1], "no such user here")))
                }
                Err(error) => immediate.push((
                    index,
                    Reply::local(451, [4, 3, 0], format!("directory lookup failed: {error}")),
                )),
            },
            Ok(false) => remote.entry(domain).or_default().push(index),
            Err(error) => immediate.push((
                index,
                Reply::local(451, [4, 3, 0], format!("directory lookup failed: {error}")),
            )),
        }
    }

    // Follows the stored entry as this attempt's commits change it.
    let mut current = message.clone();
    if !immediate.is_empty() {
        record(
            context,
            &mut current,
            Outcome {
                replies: immediate,
                local: false,
            },
            None,
        )
        .await?;
    }
    if !local.is_empty() {
        let incoming = IncomingMessage {
            queue_id: incoming::new_queue_id(),
            blob: message.blob,
            size: message.size,
            mail_from: message.mail_from.clone(),
            recipients: local
                .iter()
                .map(|(index, account_id)| IncomingRecipient {
                    address: message.recipients[*index].address.clone(),
                    account_id: *account_id,
                    delivered: false,
                    notify: None,
                    orcpt: message.recipients[*index].orcpt.clone(),
                })
                .collect(),
            client_ip: None,
            helo: String::new(),
            tls: false,
            authenticated_as: None,
            received_at: now / 1000,
            env_id: message.env_id.clone(),
            ret: None,
            body_type: Default::default(),
            smtputf8: false,
            attempts: 0,
            not_before: 0,
        };
        let replies = local
            .iter()
            .map(|(index, _)| (*index, Reply::local(250, [2, 1, 5], "delivered locally")))
            .collect();
        record(
            context,
            &mut current,
            Outcome {
                replies,
                local: true,
            },
            Some(incoming),
        )
        .await?;
    }

    let mut sessions = FuturesUnordered::new();
    for (domain, indexes) in remote {
        let signed = Arc::clone(&signed);
        let message = &message;
        sessions.push(async move {
            let limit = context.domain_limit(&domain);
            let _permit = limit.acquire_owned().await;
            let replies = send_to_domain(context, message, &domain, &indexes, &signed).await;
            indexes.into_iter().zip(replies).collect::<Vec<_>>()
        });
    }
    // Every answer but the last is committed as it comes; the last one goes into the
    // attempt's final commit (shared with other attempts ending at the same time).
    let mut last = None;
    while let Some(replies) = sessions.next().await {
        let outcome = Outcome {
            replies,
            local: false,
        };
        if sessions.is_empty() {
            last = Some(outcome);
        } else {
            record(context, &mut current, outcome, None).await?;
        }
    }
    drop(sessions);
    match finish(context, &current, last).await? {
        Finished::Done => Ok(()),
        Finished::NeedsReport => finish_attempt(context, message.id, &raw).await,
    }
}

/// A message the queue cannot send as it is: the error queue (`tern queue list`).
fn validation_failure(raw: &[u8]) -> Option<&'static str> {
    let headers_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|window| window == b"\n\n"));
    let Some(end) = headers_end else {
        return Some("the message has no header section");
    };
    let headers = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    // RFC 5322 §3.6: Date and From are the two required fields.
    if !headers.starts_with("from:") && !headers.contains("\nfrom:") {
        return Some("the message has no From header field");
    }
    None
}

async fn send_to_domain(
    context: &Context,
    message: &OutboundMessage,
    domain: &str,
    indexes: &[usize],
    raw: &[u8],
) -> Vec<Reply> {
    let hops = match transport::route(&context.transport, domain).await {
        Ok(hops) => hops,
        Err(reply) => return vec![reply; indexes.len()],
    };
    let envelope = Envelope {
        mail_from: message.mail_from.clone(),
        recipients: indexes
            .iter()
            .map(|index| message.recipients[*index].address.clone())
            .collect(),
        dsn: Some(EnvelopeDsn {
            env_id: message.env_id.clone(),
            ret_full: message.ret.map(|ret| ret == queue::DsnReturn::Full),
            notify: indexes
                .iter()
                .map(|index| {
                    let notify = message.recipients[*index].notify;
                    if notify == queue::Notify::default() {
                        return None;
                    }
                    let mut words = Vec::new();
                    if notify.success {
                        words.push("SUCCESS");
                    }
                    if notify.failure {
                        words.push("FAILURE");
                    }
                    if notify.delay {
                        words.push("DELAY");
                    }
                    Some(if words.is_empty() {
                        "NEVER".to_owned()
                    } else {
                        words.join(",")
                    })
                })
                .collect(),
        }),
    };
    let replies = transport::send(
        &context.transport,
        &context.connections,
        &hops,
        &envelope,
        raw,
    )
    .await;
    tracing::info!(
        queue_id = message.id,
        domain,
        recipients = indexes.len(),
        first_reply = %replies.first().map(ToString::to_string).unwrap_or_default(),
        "outbound: attempt done"
    );
    replies
}

/// The wait before retry number `attempts` (1-based): doubling from the initial interval up
/// to the cap, ±20 % jitter so a recovering server is not hit by every queue at once.
pub(super) fn backoff(context: &Context, attempts: u32) -> Duration {
    let initial = context.config.retry_initial_seconds.max(1);
    let cap = context.config.retry_max_seconds.max(initial);
    let exponent = attempts.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u64 << exponent).min(cap);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    Duration::from_millis((base as f64 * 1_000.0 * jitter) as u64)
}

/// The status of a failed or delayed recipient for the DSN.
fn status_of(recipient: &queue::OutboundRecipient, action: DsnAction) -> RecipientStatus {
    let reply = recipient.last_reply.clone();
    let code = reply
        .as_deref()
        .and_then(|text| text.split_whitespace().next())
        .and_then(|code| code.parse::<u16>().ok())
        .unwrap_or(if action == DsnAction::Failed {
            550
        } else {
            451
        });
    let enhanced = reply
        .as_deref()
        .and_then(|text| text.split_whitespace().nth(1))
        .filter(|word| {
            word.split('.').count() == 3 && word.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(str::to_owned);
    let status = match (action, code / 100) {
        // A temporary failure that ran out of time (RFC 3463 §3.5: 4.4.7 delivery time expired).
        (DsnAction::Failed, 4) => "5.4.7".to_owned(),
        _ => enhanced.unwrap_or_else(|| format!("{}.0.0", code / 100)),
    };
    RecipientStatus {
        address: recipient.address.clone(),
        orcpt: recipient.orcpt.clone(),
        action,
        status,
        diagnostic: reply,
        remote_mta: None,
    }
}

/// The last commit of an attempt: DSNs owed, claim dropped, rescheduled or removed.
async fn finish_attempt(context: &Context, id: u64, raw: &[u8]) -> StoreResult<()> {
    let now = context.clock.now();
    let Some(snapshot) = context
        .store
        .read(|tx| Box::pin(async move { queue::load(tx, id).await }))
        .await?
    else {
        return Ok(());
    };
    let may_report = snapshot.kind.may_bounce() && !snapshot.mail_from.is_empty();
    let failed: Vec<usize> = snapshot
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, recipient)| recipient.state == RecipientState::Failed && !recipient.reported)
        .map(|(index, _)| index)
        .collect();
    let delay_notice_ms =
        i64::try_from(context.config.delay_notice_seconds.saturating_mul(1_000)).unwrap_or(0);
    let delayed: Vec<usize> = if may_report
        && !snapshot.delay_notified
        && delay_notice_ms > 0
        && now.saturating_sub(snapshot.created_at) >= delay_notice_ms
    {
        snapshot
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, recipient)| {
                recipient.state == RecipientState::Pending && recipient.notify.delay
            })
            .map(|(index, _)| index)
            .collect()
    } else {
        Vec::new()
    };
    let mut statuses: Vec<RecipientStatus> = Vec::new();
    if may_report {
        statuses.extend(
            failed
                .iter()
                .filter(|index| snapshot.recipients[**index].notify.failure)
                .map(|index| status_of(&snapshot.recipients[*index], DsnAction::Failed)),
        );
    }
    // A bounce and a delay notice are separate reports; the bounce goes first.
    let (report, is_delay_notice) = if !statuses.is_empty() {
        (Some(statuses), false)
    } else if !delayed.is_empty() {
        let delayed = delayed
            .iter()
            .map(|index| status_of(&snapshot.recipients[*index], DsnAction::Delayed))
            .collect();
        (Some(delayed), true)
    } else {
        (None, false)
    };
    let bounce: Option<(BlobHash, u64)> = match &report {
        Some(statuses) => {
            let lifetime = i64::try_from(context.config.lifetime_seconds * 1_000).unwrap_or(0);
            let bytes = dsn::build_report(
                &snapshot,
                raw,
                statuses,
                &context.hostname,
                now,
                snapshot.created_at.saturating_add(lifetime),
            );
            let info = context
                .blobs
                .put(snapshot.account_id, bytes::Bytes::from(bytes))
                .await
                .map_err(|error| StoreError::io(error.message))?;
            Some((info.id, info.size))
        }
        None => None,
    };
    let account_id = snapshot.account_id;
    let submission_id = snapshot.submission_id;
    let sender = snapshot.mail_from.clone();
    let failed = Arc::new(failed);
    let bounce_queue_id = incoming::new_queue_id();
    let owner = context.owner;
    commit_account(&context.store, account_id, |tx, changes| {
        let failed = Arc::clone(&failed);
        let sender = sender.clone();
        Box::pin(async move {
            let Some(mut entry) = queue::load(tx, id).await? else {
                return Ok(());
            };
            if !entry.claimed_by(owner) {
                return Err(queue::claim_lost(id));
            }
            for index in failed.iter() {
                if let Some(recipient) = entry.recipients.get_mut(*index) {
                    recipient.reported = true;
                }
            }
            if is_delay_notice {
                entry.delay_notified = true;
            }
            if let Some((blob, size)) = bounce {
                // RFC 3464 §2 / RFC 5321 §4.5.5: reports have a null reverse-path.
                let report = IncomingMessage::generated(
                    bounce_queue_id,
                    blob,
                    size,
                    sender.clone(),
                    account_id,
                    now / 1000,
                );
                incoming::enqueue(tx, &report).await?;
            }
            entry.claim = None;
            if entry.is_finished() {
                queue::finish(tx, &entry)?;
            } else {
                queue::save(tx, &mut entry)?;
            }
            if let Some(submission_id) = submission_id {
                let report = DeliveryReport {
                    recipients: Vec::new(),
                    undo_final: true,
                    dsn_blob: bounce.map(|(blob, _)| blob),
                    mdn_blob: None,
                };
                apply_delivery_report(tx, changes, account_id, submission_id, &report).await?;
            }
            Ok(())
        })
    })
    .await?;
    Ok(())
}

/// Moves the message to the error queue (if this worker still holds its claim).
async fn hold(context: &Context, id: u64, reason: &str) -> StoreResult<()> {
    tracing::warn!(
        queue_id = id,
        reason,
        "outbound: message moved to the error queue"
    );
    let reason = reason.to_owned();
    let owner = context.owner;
    context
        .store
        .transact(|tx| {
            let reason = reason.clone();
            Box::pin(async move {
                match queue::load(tx, id).await? {
                    Some(entry) if !entry.claimed_by(owner) => Err(queue::claim_lost(id)),
                    _ => queue::hold(tx, id, &reason).await.map(|_| ()),
                }
            })
        })
        .await
}
