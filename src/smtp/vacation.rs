//! Vacation auto-replies (RFC 3834) from the account's VacationResponse (RFC 8621 §8).
//!
//! A reply is sent only when (RFC 3834 §2, §3.1):
//! - the VacationResponse is enabled and now is within [fromDate, toDate);
//! - the message has a non-null reverse-path, which is where the reply goes (§3.1.1), and it
//!   is not a mailer daemon or a list's own address (`MAILER-DAEMON`, `owner-*`, `*-request`);
//! - it is not auto-submitted (`Auto-Submitted` other than `no`), not from a list (`List-Id` or
//!   any `List-*` field), not bulk/junk/list `Precedence`, and not classified junk;
//! - the recipient's address (or the account's) appears in To or Cc (§3.1.1: "addressed to the
//!   user");
//! - no reply went to the same sender within the period (`ACCT_VACATION_SENT`, once per sender
//!   per period, 7 days by default as §2 suggests).
//!
//! The reply has `Auto-Submitted: auto-replied` (§5.1), `In-Reply-To`/`References` (§3.1.4),
//! a null reverse-path (§3.1.6 ... the response SHOULD NOT bounce back), and is queued through
//! the outbound queue in the same transaction as the delivery and the per-sender timestamp.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_parser::{HeaderName, HeaderValue, Message};

use crate::jmap::mail::vacation;
use crate::jmap::types::UtcDate;
use crate::outbound::queue::{self as outbound_queue, EnqueueError, MessageKind, OutboundMessage};
use crate::store::blob::{BlobHash, BlobStore};
use crate::store::keys::{self, ACCT_VACATION_SENT, be_u64};
use crate::store::{Store, StoreError, StoreResult, Transaction};

/// A reply to send, its message already stored as a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedReply {
    /// The envelope sender replied to, lowercased.
    pub to: String,
    pub blob: BlobHash,
    pub size: u64,
}

fn sent_key(account_id: u32, sender: &str) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_VACATION_SENT)
        .str(sender)
        .build()
}

/// RFC 3834 §2 and §3.1: whether this message may get an auto-reply at all (before looking at
/// the account). Returns the address to reply to.
pub fn reply_address(
    mail_from: &str,
    recipient_addresses: &[&str],
    message: &Message<'_>,
    is_junk: bool,
) -> Option<String> {
    if is_junk || mail_from.is_empty() {
        return None;
    }
    let sender = mail_from.to_lowercase();
    let local = sender.rsplit_once('@').map_or(sender.as_str(), |(l, _)| l);
    if local == "mailer-daemon"
        || local == "postmaster"
        || local.starts_with("owner-")
        || local.ends_with("-request")
    {
        return None;
    }
    for header in message.headers() {
        let name = header.name.as_str().to_ascii_lowercase();
        // RFC 2369 / RFC 2919: any List-* field marks list mail.
        if name.starts_with("list-") {
            return None;
        }
        let value = match &header.value {
            HeaderValue::Text(text) => text.trim().to_ascii_lowercase(),
            _ => String::new(),
        };
        if name == "auto-submitted" && value != "no" && !value.starts_with("no;") {
            return None;
        }
        if name == "precedence" && matches!(value.as_str(), "bulk" | "junk" | "list") {
            return None;
        }
    }
    let addressed = [HeaderName::To, HeaderName::Cc].into_iter().any(|name| {
        message
            .header(name)
            .and_then(|value| value.as_address())
            .is_some_and(|list| {
                list.iter().any(|address| {
                    address.address().is_some_and(|email| {
                        recipient_addresses
                            .iter()
                            .any(|mine| mine.eq_ignore_ascii_case(email))
                    })
                })
            })
    });
    addressed.then_some(sender)
}

/// Whether the account's VacationResponse is on at `now`, read in the caller's transaction,
/// so that a delivery to an account without one skips planning a reply altogether.
pub async fn is_active_in(
    tx: &mut dyn Transaction,
    account_id: u32,
    now: UtcDate,
) -> StoreResult<bool> {
    Ok(vacation::load(tx, account_id).await?.is_active_at(now))
}

/// Decides whether the account replies to `to` now and, if so, builds and stores the reply.
/// The final check and the sending happen in [`queue_in_commit`].
#[allow(clippy::too_many_arguments)]
pub async fn plan(
    store: &Store,
    blobs: &BlobStore,
    account_id: u32,
    account_email: &str,
    to: &str,
    message: &Message<'_>,
    period_seconds: i64,
    now: UtcDate,
) -> StoreResult<Option<PlannedReply>> {
    let sender = to.to_owned();
    let (response, last_sent) = store
        .read(move |tx| {
            Box::pin(async move {
                let response = vacation::load(tx, account_id).await?;
                let last = tx.get(&sent_key(account_id, &sender)).await?;
                Ok((response, last.as_deref().and_then(be_u64)))
            })
        })
        .await?;
    if !response.is_active_at(now) || recently(last_sent, now.unix_seconds(), period_seconds) {
        return Ok(None);
    }
    let original_subject = message.subject().unwrap_or_default();
    // RFC 3834 §3.1.5: a subject that says what this is.
    let subject = response
        .subject
        .clone()
        .unwrap_or_else(|| format!("Auto: {original_subject}"));
    let mut references: Vec<String> = match message.references() {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    };
    let original_id = message.message_id().map(str::to_owned);
    if let Some(id) = &original_id {
        references.push(id.clone());
    }
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(None::<&str>, account_email.to_owned()))
        .to(Address::new_address(None::<&str>, to.to_owned()))
        .subject(subject)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        );
    if let Some(id) = original_id {
        builder = builder.in_reply_to(id);
    }
    if !references.is_empty() {
        builder = builder.references(references);
    }
    let text = response
        .text_body
        .clone()
        .unwrap_or_else(|| "I am away and will read your message when I return.".to_owned());
    builder = builder.text_body(text);
    if let Some(html) = response.html_body.clone() {
        builder = builder.html_body(html);
    }
    let bytes = builder.write_to_vec().map_err(StoreError::io)?;
    let size = bytes.len() as u64;
    let stored = blobs
        .put(account_id, bytes::Bytes::from(bytes))
        .await
        .map_err(|error| StoreError::io(error.to_string()))?;
    Ok(Some(PlannedReply {
        to: to.to_owned(),
        blob: stored.id,
        size,
    }))
}

fn recently(last_sent: Option<u64>, now: i64, period_seconds: i64) -> bool {
    last_sent.is_some_and(|last| (last as i64).saturating_add(period_seconds) > now)
}

/// Inside the delivery commit: re-checks the per-sender period, records the reply time and
/// queues the reply through the outbound queue. Returns whether it was queued.
pub async fn queue_in_commit(
    tx: &mut dyn Transaction,
    account_id: u32,
    reply: &PlannedReply,
    period_seconds: i64,
    now: i64,
) -> StoreResult<bool> {
    let key = sent_key(account_id, &reply.to);
    let last = tx.get(&key).await?;
    if recently(last.as_deref().and_then(be_u64), now, period_seconds) {
        return Ok(false);
    }
    // RFC 3834 §3.1.6 (with RFC 5321 §4.5.5): auto-replies go out with a null reverse-path.
    let mut message = OutboundMessage::new(
        account_id,
        reply.blob,
        reply.size,
        "",
        [reply.to.clone()],
        now.saturating_mul(1000),
    );
    message.kind = MessageKind::VacationReply;
    match outbound_queue::enqueue(tx, &message).await {
        Ok(_) => {}
        Err(EnqueueError::Store(error)) => return Err(error),
        Err(error) => {
            // A bad address or the account's rate limit: the delivery itself goes on.
            tracing::info!(account_id, %error, "vacation reply not queued");
            return Ok(false);
        }
    }
    tx.set(&key, &(now.max(0) as u64).to_be_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn check(mail_from: &str, headers: &str) -> Option<String> {
        let raw = format!("{headers}Subject: hi\r\n\r\nbody\r\n");
        let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
        reply_address(mail_from, &["me@local.example"], &message, false)
    }

    #[test]
    fn only_personal_mail_gets_a_reply() {
        let to_me = "From: a@remote.example\r\nTo: Me <ME@local.example>\r\n";
        assert_eq!(
            check("A@remote.example", to_me),
            Some("a@remote.example".into())
        );
        assert_eq!(check("", to_me), None);
        assert_eq!(check("MAILER-DAEMON@remote.example", to_me), None);
        assert_eq!(check("list-request@remote.example", to_me), None);
        assert_eq!(
            check(
                "a@remote.example",
                &format!("{to_me}List-Id: <l.remote.example>\r\n")
            ),
            None
        );
        assert_eq!(
            check(
                "a@remote.example",
                &format!("{to_me}List-Unsubscribe: <mailto:x>\r\n")
            ),
            None
        );
        assert_eq!(
            check("a@remote.example", &format!("{to_me}Precedence: bulk\r\n")),
            None
        );
        assert_eq!(
            check(
                "a@remote.example",
                &format!("{to_me}Auto-Submitted: auto-replied\r\n")
            ),
            None
        );
        assert!(
            check(
                "a@remote.example",
                &format!("{to_me}Auto-Submitted: no\r\n")
            )
            .is_some()
        );
        assert_eq!(
            check("a@remote.example", "To: other@local.example\r\n"),
            None
        );
        assert!(
            check(
                "a@remote.example",
                "To: x@y.example\r\nCc: me@local.example\r\n"
            )
            .is_some()
        );
    }

    #[test]
    fn the_period_is_per_sender() {
        assert!(!recently(None, 1000, 100));
        assert!(recently(Some(950), 1000, 100));
        assert!(!recently(Some(900), 1000, 100));
    }
}
