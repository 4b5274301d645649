//! The acceptance policy: which recipients are taken (local domains and accounts only; no
//! open relay), who may authenticate, which content is refused at DATA, and how an accepted
//! message is made durable before the `250`.
//!
//! - a recipient in a local domain is accepted if an account receives its mail
//!   (`Directory::account_for_address`), else `550 5.1.1`;
//! - a recipient in any other domain is `550 5.7.1` unless the session authenticated on the
//!   submission listener; then it is relayed through the outbound queue;
//! - the message body is stored as a blob and its incoming-queue entry (and, for relayed
//!   recipients, its outbound-queue entry) commit in the SAME transaction as the blob's last
//!   chunk; only then does the session answer `250` (RFC 5321 §6.1). A failed commit is
//!   `451 4.3.0` and nothing is acknowledged.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::incoming::{self, IncomingMessage, IncomingRecipient};
use super::session::{ReceivedMessage, RecipientDecision, RecipientQuery, Reply, replies};
use crate::auth::directory::Directory;
use crate::auth::rate_limit::LoginThrottle;
use crate::outbound::queue::{self as outbound_queue, EnqueueError, MessageKind, OutboundMessage};
use crate::store::blob::{BlobStore, FinishStep};
use crate::store::{BoxFuture, StoreError};

/// A content check at the end of DATA, before anything is stored (the antivirus scan).
pub trait DataFilter: Send + Sync {
    fn check<'a>(&'a self, message: &'a [u8]) -> BoxFuture<'a, DataVerdict>;
}

/// What a [`DataFilter`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataVerdict {
    /// Not checked (no check applies, or the checker was unavailable).
    Accept,
    /// Checked and found clean: delivery need not check it again.
    Scanned,
    /// Refuse the message with this reply (e.g. `554 5.7.1` for a virus); nothing is queued.
    Reject(Reply),
}

/// An authenticated submission client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitter {
    pub login: String,
    pub account_id: u32,
}

/// The policy shared by every session of every listener.
pub struct Policy {
    directory: Directory,
    blobs: BlobStore,
    filter: Option<Arc<dyn DataFilter>>,
    /// The server's login throttle, shared with HTTP (`crate::auth::rate_limit`).
    login_throttle: Arc<LoginThrottle>,
    /// Where `postmaster` goes when no account has that address (`[smtp] postmaster`).
    postmaster: Option<String>,
    /// The quota headroom of recently checked accounts: a burst to one mailbox reads it once
    /// a second, not once per RCPT.
    headroom: RoomCache,
}

/// Accounts' quota headroom as last read, trusted for [`ROOM_TRUSTED`] and spent by every
/// accepted RCPT, so a burst cannot accept more than the room that was read. Bounded.
#[derive(Default)]
struct RoomCache {
    entries:
        Mutex<std::collections::HashMap<u32, (std::time::Instant, crate::mail::quota::Headroom)>>,
}

const ROOM_TRUSTED: std::time::Duration = std::time::Duration::from_secs(1);
const ROOM_CACHE_CAPACITY: usize = 10_000;

impl RoomCache {
    /// Spends room for a message of `size` from a fresh entry: `Some(fits)`, or `None` when the
    /// account must be read.
    fn spend(&self, account_id: u32, size: u64) -> Option<bool> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let (read_at, room) = entries.get_mut(&account_id)?;
        if read_at.elapsed() > ROOM_TRUSTED {
            return None;
        }
        let fits = room.fits(size);
        if fits {
            *room = room.after(size);
        }
        Some(fits)
    }

    fn remember(&self, account_id: u32, room: crate::mail::quota::Headroom) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if entries.len() >= ROOM_CACHE_CAPACITY {
            entries.retain(|_, (read_at, _)| read_at.elapsed() <= ROOM_TRUSTED);
            if entries.len() >= ROOM_CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(account_id, (std::time::Instant::now(), room));
    }
}

impl Policy {
    pub fn new(
        directory: Directory,
        blobs: BlobStore,
        filter: Option<Arc<dyn DataFilter>>,
        login_throttle: Arc<LoginThrottle>,
    ) -> Policy {
        Policy {
            directory,
            blobs,
            filter,
            login_throttle,
            postmaster: None,
            headroom: RoomCache::default(),
        }
    }

    /// Routes `postmaster` to the account of `address` when no account has that address.
    pub fn with_postmaster(mut self, address: Option<String>) -> Policy {
        self.postmaster = address;
        self
    }

    /// RFC 5321 §4.5.1: `postmaster` (any case), bare or at a local domain, MUST be accepted.
    /// It goes to the account with that address if there is one, else to the account of
    /// `[smtp] postmaster`, else to the domain's first account (the oldest: on a small server,
    /// its owner); `None` when `address` is not a local postmaster.
    async fn postmaster(&self, address: &str) -> Option<RecipientDecision> {
        let (local, domain) = match address.rsplit_once('@') {
            Some((local, domain)) => (local, Some(domain)),
            None => (address, None),
        };
        if !local.eq_ignore_ascii_case("postmaster") {
            return None;
        }
        let accept = |account: crate::auth::directory::AccountInfo| {
            Some(RecipientDecision::Accept {
                account_id: Some(account.account_id),
            })
        };
        let lookup_failed = |error: crate::auth::directory::DirectoryError| {
            tracing::warn!(%error, "postmaster lookup failed");
            Some(RecipientDecision::Reject(replies::local_error()))
        };
        if let Some(domain) = domain {
            match self.directory.is_local_domain(domain).await {
                Ok(true) => {}
                // Someone else's postmaster: the usual relay rules.
                Ok(false) => return None,
                Err(error) => return lookup_failed(error),
            }
            match self.directory.account_for_address(address).await {
                Ok(Some(account)) => return accept(account),
                Ok(None) => {}
                Err(error) => return lookup_failed(error),
            }
        }
        if let Some(configured) = &self.postmaster {
            match self.directory.account_for_address(configured).await {
                Ok(Some(account)) => return accept(account),
                Ok(None) => {
                    tracing::warn!(postmaster = %configured, "smtp.postmaster names no account")
                }
                Err(error) => return lookup_failed(error),
            }
        }
        let accounts = match self.directory.list_accounts().await {
            Ok(accounts) => accounts,
            Err(error) => return lookup_failed(error),
        };
        let in_domain = |email: &str| match domain {
            Some(domain) => email
                .rsplit_once('@')
                .is_some_and(|(_, own)| own.eq_ignore_ascii_case(domain)),
            None => true,
        };
        match accounts
            .into_iter()
            .filter(|account| in_domain(&account.email))
            .min_by_key(|account| account.account_id)
        {
            Some(account) => accept(account),
            None => Some(RecipientDecision::Reject(replies::unknown_user())),
        }
    }

    /// Decides one RCPT TO.
    pub async fn recipient(&self, query: &RecipientQuery) -> RecipientDecision {
        if let Some(decision) = self.postmaster(&query.address).await {
            return decision;
        }
        let Some((_, domain)) = query.address.rsplit_once('@') else {
            return RecipientDecision::Reject(Reply::new(
                501,
                (5, 1, 3),
                "Recipient address needs a domain",
            ));
        };
        let local = match self.directory.is_local_domain(domain).await {
            Ok(local) => local,
            Err(error) => {
                tracing::warn!(%error, "recipient check failed");
                return RecipientDecision::Reject(replies::local_error());
            }
        };
        if !local {
            // RFC 5321 §3.6.2 / RFC 5068: only authenticated users relay.
            return if query.authenticated_as.is_some() {
                RecipientDecision::Accept { account_id: None }
            } else {
                RecipientDecision::Reject(replies::relay_denied())
            };
        }
        match self.directory.account_for_address(&query.address).await {
            Ok(Some(account)) => self.within_quota(account.account_id, query).await,
            Ok(None) => RecipientDecision::Reject(replies::unknown_user()),
            Err(error) => {
                tracing::warn!(%error, "recipient lookup failed");
                RecipientDecision::Reject(replies::local_error())
            }
        }
    }

    /// Accepts a local recipient whose account has room for one more message of the declared
    /// size (RFC 9425 hard limits; `mail::quota`), else `452 4.2.2`. Messages accepted here are
    /// delivered even if others filled the mailbox meanwhile: an acknowledged message is never
    /// refused later.
    async fn within_quota(&self, account_id: u32, query: &RecipientQuery) -> RecipientDecision {
        // Without a declared SIZE a message still takes an octet: a full mailbox refuses it.
        let size = (query.declared_size as u64).max(1);
        let fits = match self.headroom.spend(account_id, size) {
            Some(fits) => Ok(fits),
            None => self
                .directory
                .store()
                .read(move |tx| Box::pin(crate::mail::quota::headroom(tx, account_id)))
                .await
                .map(|room| {
                    let fits = room.fits(size);
                    self.headroom
                        .remember(account_id, if fits { room.after(size) } else { room });
                    fits
                }),
        };
        match fits {
            Ok(true) => RecipientDecision::Accept {
                account_id: Some(account_id),
            },
            Ok(false) => {
                tracing::info!(account_id, "recipient over quota: 452 4.2.2");
                RecipientDecision::Reject(replies::mailbox_full())
            }
            Err(error) => {
                tracing::warn!(%error, "quota check failed");
                RecipientDecision::Reject(replies::local_error())
            }
        }
    }

    /// Checks a submission login through the same throttle as HTTP logins (`[auth]`
    /// settings): a client guessing too fast is slowed down, then refused with `454 4.7.0`
    /// (RFC 4954 §6: temporary authentication failure) naming when to retry.
    pub async fn authenticate(
        &self,
        login: &str,
        password: &str,
        client_ip: IpAddr,
    ) -> Result<Option<Submitter>, Reply> {
        let attempt = match self.login_throttle.admit(client_ip, login) {
            Ok(attempt) => attempt,
            Err(refusal) => {
                let seconds = refusal.retry_after.as_secs() + 1;
                return Err(Reply::new(
                    454,
                    (4, 7, 0),
                    format!(
                        "Too many failed logins for this {}; try again in {seconds} s",
                        refusal.scope.as_str()
                    ),
                ));
            }
        };
        if !attempt.delay().is_zero() {
            tokio::time::sleep(attempt.delay()).await;
        }
        match self.directory.verify_password(login, password).await {
            Ok(Some(principal)) => {
                attempt.succeeded();
                Ok(Some(Submitter {
                    login: principal.email,
                    account_id: principal.account_id,
                }))
            }
            Ok(None) => {
                attempt.failed();
                Ok(None)
            }
            Err(error) => {
                tracing::warn!(%error, "SMTP AUTH check failed");
                Err(Reply::new(
                    454,
                    (4, 7, 0),
                    "Temporary authentication failure",
                ))
            }
        }
    }

    /// Makes an accepted message durable: the blob, the incoming-queue entry of its local
    /// recipients and the outbound entry of its relayed ones, in one commit. Returns the
    /// queue id to report in the `250`.
    pub async fn accept_message(
        &self,
        message: ReceivedMessage,
        submitter: Option<&Submitter>,
    ) -> Result<String, Reply> {
        let mut scanned = false;
        if let Some(filter) = &self.filter {
            match filter.check(&message.body).await {
                DataVerdict::Reject(reply) => {
                    tracing::info!(client_ip = %message.client_ip, %reply, "message refused by the content filter");
                    return Err(reply);
                }
                DataVerdict::Scanned => scanned = true,
                DataVerdict::Accept => {}
            }
        }
        let ReceivedMessage {
            envelope,
            body,
            helo,
            tls,
            authenticated_as,
            client_ip,
        } = message;
        let size = body.len() as u64;
        let blob = crate::store::blob::BlobHash::of(&body);
        let queue_id = incoming::new_queue_id();
        let mut local = Vec::new();
        let mut seen_accounts = HashSet::new();
        let mut relayed = Vec::new();
        let mut seen_relayed = HashSet::new();
        for recipient in &envelope.recipients {
            match recipient.account_id {
                // One delivery per account, however many of its addresses were named.
                Some(account_id) if seen_accounts.insert(account_id) => {
                    local.push(IncomingRecipient {
                        address: recipient.address.clone(),
                        account_id,
                        delivered: false,
                        notify: recipient.notify,
                        orcpt: recipient.orcpt.clone(),
                    });
                }
                Some(_) => {}
                None if seen_relayed.insert(recipient.address.to_lowercase()) => {
                    relayed.push(recipient.clone());
                }
                None => {}
            }
        }
        let incoming_entry = (!local.is_empty()).then(|| IncomingMessage {
            queue_id,
            blob,
            size,
            mail_from: envelope.mail_from.clone(),
            recipients: local,
            client_ip: Some(client_ip),
            helo,
            tls,
            authenticated_as,
            received_at: incoming::unix_now(),
            env_id: envelope.env_id.clone(),
            ret: envelope.ret,
            body_type: envelope.body_type,
            smtputf8: envelope.smtputf8,
            attempts: 0,
            not_before: 0,
        });
        let outbound_entry = match (relayed.is_empty(), submitter) {
            (true, _) => None,
            (false, None) => return Err(replies::relay_denied()),
            (false, Some(submitter)) => {
                let mut entry = OutboundMessage::new(
                    submitter.account_id,
                    blob,
                    size,
                    envelope.mail_from.clone(),
                    relayed.iter().map(|r| r.address.clone()),
                    0,
                );
                entry.kind = MessageKind::Relay;
                entry.env_id = envelope.env_id.clone();
                entry.ret = envelope.ret.map(|ret| match ret {
                    incoming::DsnRet::Full => outbound_queue::DsnReturn::Full,
                    incoming::DsnRet::Headers => outbound_queue::DsnReturn::Headers,
                });
                for (slot, recipient) in entry.recipients.iter_mut().zip(&relayed) {
                    if let Some(notify) = recipient.notify {
                        slot.notify = if notify.never {
                            outbound_queue::Notify::NEVER
                        } else {
                            outbound_queue::Notify {
                                success: notify.success,
                                failure: notify.failure,
                                delay: notify.delay,
                            }
                        };
                    }
                    slot.orcpt = recipient.orcpt.clone();
                }
                Some(entry)
            }
        };
        // Why the finishing step failed, when it was the outbound queue's refusal.
        let refusal: Arc<Mutex<Option<Reply>>> = Arc::new(Mutex::new(None));
        let step_refusal = Arc::clone(&refusal);
        let incoming_entry = Arc::new(incoming_entry);
        let outbound_entry = Arc::new(outbound_entry);
        let finish: FinishStep = Arc::new(move |tx, _info| {
            let incoming_entry = Arc::clone(&incoming_entry);
            let outbound_entry = Arc::clone(&outbound_entry);
            let refusal = Arc::clone(&step_refusal);
            Box::pin(async move {
                if let Some(entry) = incoming_entry.as_ref() {
                    incoming::enqueue(tx, entry).await?;
                    if scanned {
                        crate::smtp::delivery::prepared::mark_scanned(tx, entry.queue_id)?;
                    }
                }
                if let Some(entry) = outbound_entry.as_ref()
                    && let Err(error) = outbound_queue::enqueue(tx, entry).await
                {
                    let (reply, store_error) = outbound_refusal(error);
                    if let Ok(mut slot) = refusal.lock() {
                        *slot = Some(reply);
                    }
                    return Err(store_error);
                }
                Ok(())
            })
        });
        let content =
            futures_util::stream::iter([Ok::<Bytes, std::convert::Infallible>(Bytes::from(body))]);
        match self.blobs.put_with(content, u64::MAX, finish).await {
            Ok(_) => {
                tracing::info!(
                    queue_id,
                    %client_ip,
                    size,
                    relayed = relayed.len(),
                    "message accepted"
                );
                Ok(format!("{queue_id:016x}"))
            }
            Err(error) => {
                let refused = refusal.lock().ok().and_then(|mut slot| slot.take());
                if let Some(reply) = refused {
                    return Err(reply);
                }
                tracing::warn!(%error, %client_ip, "storing an accepted message failed");
                Err(replies::local_error())
            }
        }
    }
}

/// The reply for an outbound-queue refusal, and the error that aborts the transaction.
fn outbound_refusal(error: EnqueueError) -> (Reply, StoreError) {
    let reply = match &error {
        EnqueueError::RateLimited {
            retry_after_seconds,
        } => Reply::new(
            451,
            (4, 7, 1),
            format!("Sending too fast; try again in {retry_after_seconds} s"),
        ),
        EnqueueError::InvalidAddress(address) => {
            Reply::new(553, (5, 1, 3), format!("Invalid address {address}"))
        }
        EnqueueError::NoRecipients | EnqueueError::BlobNotFound | EnqueueError::Store(_) => {
            replies::local_error()
        }
    };
    let store_error = match error {
        EnqueueError::Store(error) => error,
        other => StoreError::io(other.to_string()),
    };
    (reply, store_error)
}
