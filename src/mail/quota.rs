//! Quotas (RFC 9425): what an account uses and may use, kept exact in the store.
//!
//! - `used` is two atomic-add counters per account (octets of its Emails, number of Emails),
//!   changed by `mail::store` in the transaction of every Email import and destroy: never a
//!   scan, never off by a crash (the counters commit with the data or not at all).
//! - Limits are the account's own (`tern account quota`) or, without them, the defaults each
//!   server writes at start-up from its `[quota]` configuration (`META_QUOTA_DEFAULTS`), so the
//!   write path reads both from the store and needs no configuration.
//! - The hard limit refuses new data where it enters (JMAP Email/import, Email/set create,
//!   Email/copy, uploads; SMTP at RCPT with `452 4.2.2`): [`check`]. Messages already accepted
//!   (an SMTP `250` was given, a bounce is owed) are filed even past it: refusing them then
//!   would lose acknowledged mail; they are bounded by what is in flight.
//! - Crossing `warnLimit` upward queues one warning to the owner (`QUEUE_QUOTA_WARNING`, a
//!   follow-up task born in the crossing transaction; the delivery actor files the message);
//!   falling back under it re-arms the warning.
//! - Every change of `used` or of the limits records an update of the Quota objects in the
//!   change log, so Quota/changes and push (RFC 9425 §6) follow.

use crate::store::commit::{Changes, DataType};
use crate::store::keys::{
    self, ACCT_QUOTA, KeyBuilder, META_QUOTA_DEFAULTS, QUEUE_QUOTA_WARNING,
    QUEUE_QUOTA_WARNING_VERSION, SUBSPACE_QUEUE, le_i64,
};
use crate::store::{StoreError, StoreResult, Transaction};

/// What a Quota counts (RFC 9425 §3.2 `ResourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `octets`: the sizes of the account's Emails.
    Octets = 1,
    /// `count`: the number of the account's Emails.
    Count = 2,
}

impl Resource {
    pub const ALL: [Resource; 2] = [Resource::Octets, Resource::Count];

    /// The Quota object's store id (its JMAP id is derived from it).
    pub fn quota_id(self) -> u64 {
        self as u64
    }

    pub fn from_quota_id(id: u64) -> Option<Resource> {
        match id {
            1 => Some(Resource::Octets),
            2 => Some(Resource::Count),
            _ => None,
        }
    }

    /// The store id of the account's domain-scope Quota of this resource.
    pub fn domain_quota_id(self) -> u64 {
        self as u64 + 2
    }

    pub fn from_domain_quota_id(id: u64) -> Option<Resource> {
        id.checked_sub(2).and_then(Resource::from_quota_id)
    }

    fn from_byte(byte: u8) -> Option<Resource> {
        Resource::from_quota_id(u64::from(byte))
    }

    /// RFC 9425 §3.2.
    pub fn resource_type(self) -> &'static str {
        match self {
            Resource::Octets => "octets",
            Resource::Count => "count",
        }
    }
}

/// The limits of one account. `None`: no limit (no Quota object of that resource exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub storage: Option<u64>,
    pub messages: Option<u64>,
    /// `warnLimit` as a percentage of the hard limit; 0 or 100 and above: no warning.
    pub warn_percent: u8,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            storage: None,
            messages: None,
            warn_percent: 90,
        }
    }
}

const LIMITS_BYTES: usize = 17;

impl Limits {
    pub fn hard(&self, resource: Resource) -> Option<u64> {
        match resource {
            Resource::Octets => self.storage,
            Resource::Count => self.messages,
        }
    }

    /// RFC 9425 `warnLimit`: a share of the hard limit.
    pub fn warn(&self, resource: Resource) -> Option<u64> {
        let hard = self.hard(resource)?;
        (1..100).contains(&self.warn_percent).then(|| {
            let share = u128::from(hard) * u128::from(self.warn_percent) / 100;
            u64::try_from(share).unwrap_or(hard)
        })
    }

    pub fn is_unlimited(&self) -> bool {
        self.storage.is_none() && self.messages.is_none()
    }

    pub fn encode(&self) -> [u8; LIMITS_BYTES] {
        let mut bytes = [0u8; LIMITS_BYTES];
        bytes[..8].copy_from_slice(&self.storage.unwrap_or(0).to_be_bytes());
        bytes[8..16].copy_from_slice(&self.messages.unwrap_or(0).to_be_bytes());
        bytes[16] = self.warn_percent;
        bytes
    }

    pub fn decode(bytes: &[u8]) -> StoreResult<Limits> {
        if bytes.len() != LIMITS_BYTES {
            return Err(StoreError::corrupt("quota limits are not 17 bytes"));
        }
        let limit =
            |range: std::ops::Range<usize>| keys::be_u64(&bytes[range]).filter(|value| *value > 0);
        Ok(Limits {
            storage: limit(0..8),
            messages: limit(8..16),
            warn_percent: bytes[16],
        })
    }
}

/// An account's own settings (`tern account quota`): each field given overrides the server's
/// default, the others follow it (so a later change of the defaults still reaches them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `Some(None)`: no limit for this account.
    pub storage: Option<Option<u64>>,
    pub messages: Option<Option<u64>>,
    pub warn_percent: Option<u8>,
}

/// In an encoded override: "follow the default".
const INHERIT: u64 = u64::MAX;
const INHERIT_PERCENT: u8 = u8::MAX;

impl Overrides {
    /// Every field set to `limits`.
    pub fn fixed(limits: Limits) -> Overrides {
        Overrides {
            storage: Some(limits.storage),
            messages: Some(limits.messages),
            warn_percent: Some(limits.warn_percent),
        }
    }

    pub fn apply(&self, defaults: Limits) -> Limits {
        Limits {
            storage: self.storage.unwrap_or(defaults.storage),
            messages: self.messages.unwrap_or(defaults.messages),
            warn_percent: self.warn_percent.unwrap_or(defaults.warn_percent),
        }
    }

    fn encode(&self) -> [u8; LIMITS_BYTES] {
        let field = |value: Option<Option<u64>>| match value {
            None => INHERIT,
            Some(None) => 0,
            Some(Some(limit)) => limit.min(INHERIT - 1),
        };
        let mut bytes = [0u8; LIMITS_BYTES];
        bytes[..8].copy_from_slice(&field(self.storage).to_be_bytes());
        bytes[8..16].copy_from_slice(&field(self.messages).to_be_bytes());
        bytes[16] = self.warn_percent.unwrap_or(INHERIT_PERCENT);
        bytes
    }

    fn decode(bytes: &[u8]) -> StoreResult<Overrides> {
        if bytes.len() != LIMITS_BYTES {
            return Err(StoreError::corrupt("quota overrides are not 17 bytes"));
        }
        let field = |range: std::ops::Range<usize>| match keys::be_u64(&bytes[range]) {
            Some(INHERIT) | None => None,
            Some(0) => Some(None),
            Some(limit) => Some(Some(limit)),
        };
        Ok(Overrides {
            storage: field(0..8),
            messages: field(8..16),
            warn_percent: (bytes[16] != INHERIT_PERCENT).then_some(bytes[16]),
        })
    }
}

/// What an account uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub octets: u64,
    pub count: u64,
}

impl Usage {
    pub fn of(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Octets => self.octets,
            Resource::Count => self.count,
        }
    }
}

/// Whose limit a Quota is (RFC 9425 §3.2 `scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Account,
    /// Every account of this mail domain together.
    Domain(String),
}

/// The refusal of new data (RFC 8620 §5.3 `overQuota`, SMTP `452 4.2.2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverQuota {
    pub scope: Scope,
    pub resource: Resource,
    pub used: u64,
    pub limit: u64,
}

impl std::fmt::Display for OverQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = match &self.scope {
            Scope::Account => "the account".to_owned(),
            Scope::Domain(domain) => format!("the domain {domain}"),
        };
        match self.resource {
            Resource::Octets => {
                write!(f, "{whose} uses {} of its {} octets", self.used, self.limit)
            }
            Resource::Count => write!(
                f,
                "{whose} holds {} of its {} messages",
                self.used, self.limit
            ),
        }
    }
}

/// The first hard limit of `limits` that `adding` would exceed.
fn exceeded(
    scope: &Scope,
    limits: &Limits,
    usage: &Usage,
    adding_octets: u64,
    adding_count: u64,
) -> Option<OverQuota> {
    [
        (Resource::Octets, adding_octets),
        (Resource::Count, adding_count),
    ]
    .into_iter()
    .find_map(|(resource, adding)| {
        let limit = limits.hard(resource)?;
        let used = usage.of(resource);
        (used.saturating_add(adding) > limit).then(|| OverQuota {
            scope: scope.clone(),
            resource,
            used,
            limit,
        })
    })
}

pub(super) fn used_key(account_id: u32, resource: Resource) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_QUOTA)
        .u8(0x00)
        .u8(resource as u8)
        .build()
}

fn own_limits_key(account_id: u32) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_QUOTA)
        .u8(0x01)
        .build()
}

fn warned_key(account_id: u32, resource: Resource) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_QUOTA)
        .u8(0x02)
        .u8(resource as u8)
        .build()
}

/// In a warning task's key: the domain's quota was crossed, not the account's.
const DOMAIN_WARNING: u8 = 0x10;

/// A warning task's key: `QUEUE, QUEUE_QUOTA_WARNING, account: u32, resource: u8` (with
/// [`DOMAIN_WARNING`] added for the account's domain's quota, crossed by this account).
pub fn warning_key(account_id: u32, resource: Resource) -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_QUOTA_WARNING)
        .u32(account_id)
        .u8(resource as u8)
        .build()
}

/// The task of a warning for `scope`'s quota, crossed by `account_id`.
pub fn scoped_warning_key(account_id: u32, scope: &Scope, resource: Resource) -> Vec<u8> {
    let flag = match scope {
        Scope::Account => 0,
        Scope::Domain(_) => DOMAIN_WARNING,
    };
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_QUOTA_WARNING)
        .u32(account_id)
        .u8(resource as u8 | flag)
        .build()
}

/// The prefix of every warning task.
pub fn warnings_prefix() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_QUOTA_WARNING)
        .build()
}

/// The key the warning consumer watches.
pub fn warning_version_key() -> Vec<u8> {
    KeyBuilder::new(SUBSPACE_QUEUE)
        .u8(QUEUE_QUOTA_WARNING_VERSION)
        .build()
}

/// One queued warning task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningTask {
    /// The account whose change crossed the limit.
    pub account_id: u32,
    pub scope: Scope,
    pub resource: Resource,
    pub used: u64,
    pub limit: u64,
}

impl WarningTask {
    pub fn key(&self) -> Vec<u8> {
        scoped_warning_key(self.account_id, &self.scope, self.resource)
    }

    /// `used: u64 BE, limit: u64 BE[, domain]`.
    fn value(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(16);
        value.extend_from_slice(&self.used.to_be_bytes());
        value.extend_from_slice(&self.limit.to_be_bytes());
        if let Scope::Domain(domain) = &self.scope {
            value.extend_from_slice(domain.as_bytes());
        }
        value
    }

    fn queue(&self, tx: &mut dyn Transaction) -> StoreResult<()> {
        tx.set(&self.key(), &self.value())?;
        tx.atomic_add(&warning_version_key(), 1)
    }

    /// Decodes a task; `None` for what this version cannot read.
    pub fn decode(key: &[u8], value: &[u8]) -> Option<WarningTask> {
        let rest = key.get(2..)?;
        let account_id = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let flags = *rest.get(4)?;
        let resource = Resource::from_byte(flags & !DOMAIN_WARNING)?;
        let scope = match flags & DOMAIN_WARNING {
            0 => Scope::Account,
            _ => Scope::Domain(String::from_utf8(value.get(16..)?.to_vec()).ok()?),
        };
        Some(WarningTask {
            account_id,
            scope,
            resource,
            used: keys::be_u64(value.get(..8)?)?,
            limit: keys::be_u64(value.get(8..16)?)?,
        })
    }
}

/// The keys every limits check and usage change reads, for [`Transaction::prefetch`]: on
/// FoundationDB one concurrent round instead of four sequential ones.
pub fn reads(account_id: u32, keys: &mut Vec<Vec<u8>>) {
    keys.push(domain::account_domain_key(account_id));
    keys.push(own_limits_key(account_id));
    keys.push(META_QUOTA_DEFAULTS.to_vec());
    keys.push(used_key(account_id, Resource::Octets));
    keys.push(used_key(account_id, Resource::Count));
}

async fn prefetch(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<()> {
    let mut keys = Vec::with_capacity(5);
    reads(account_id, &mut keys);
    tx.prefetch(&keys, &[]).await
}

/// Writes the server's default limits (at start-up, from the configuration).
pub fn write_defaults(tx: &mut dyn Transaction, limits: &Limits) -> StoreResult<()> {
    tx.set(META_QUOTA_DEFAULTS, &limits.encode())
}

/// The account's own settings, if it has any.
pub async fn own_overrides(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<Option<Overrides>> {
    match tx.get(&own_limits_key(account_id)).await? {
        Some(bytes) => Overrides::decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// The limits that apply to the account: the defaults with its own settings over them.
pub async fn limits(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Limits> {
    let defaults = match tx.get(META_QUOTA_DEFAULTS).await? {
        Some(bytes) => Limits::decode(&bytes)?,
        None => Limits::default(),
    };
    Ok(match own_overrides(tx, account_id).await? {
        Some(own) => own.apply(defaults),
        None => defaults,
    })
}

/// Sets (or with `None` removes) the account's own limits, inside its `commit_account`: the
/// Quota objects change (created, updated or destroyed as limits appear and disappear), and
/// the warnings re-arm against the new limits.
pub async fn set_own_limits(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    own: Option<Overrides>,
) -> StoreResult<()> {
    let before = limits(tx, account_id).await?;
    match own {
        Some(own) => tx.set(&own_limits_key(account_id), &own.encode())?,
        None => tx.clear(&own_limits_key(account_id))?,
    }
    let after = limits(tx, account_id).await?;
    for resource in Resource::ALL {
        let id = resource.quota_id();
        match (before.hard(resource), after.hard(resource)) {
            (None, Some(_)) => changes.created(DataType::Quota, id),
            (Some(_), None) => changes.destroyed(DataType::Quota, id),
            (Some(_), Some(_)) => changes.updated(DataType::Quota, id),
            (None, None) => {}
        }
        tx.clear(&warned_key(account_id, resource))?;
    }
    changes.touched(DataType::Quota);
    Ok(())
}

pub async fn usage(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Usage> {
    let value = |bytes: Option<Vec<u8>>| bytes.map_or(0, |bytes| le_i64(&bytes).max(0) as u64);
    Ok(Usage {
        octets: value(tx.get(&used_key(account_id, Resource::Octets)).await?),
        count: value(tx.get(&used_key(account_id, Resource::Count)).await?),
    })
}

/// Whether `adding_octets` in `adding_count` new Emails fit the account's hard limits
/// (RFC 9425 §4.1 `hardLimit`: objects in scope may not be created past it).
pub async fn check(
    tx: &mut dyn Transaction,
    account_id: u32,
    adding_octets: u64,
    adding_count: u64,
) -> StoreResult<Result<(), OverQuota>> {
    prefetch(tx, account_id).await?;
    let limits = limits(tx, account_id).await?;
    if !limits.is_unlimited() {
        let usage = usage(tx, account_id).await?;
        if let Some(over) = exceeded(
            &Scope::Account,
            &limits,
            &usage,
            adding_octets,
            adding_count,
        ) {
            return Ok(Err(over));
        }
    }
    if let Some((domain, limits)) = domain_limits(tx, account_id).await? {
        let usage = domain::usage(tx, &domain).await?;
        let scope = Scope::Domain(domain);
        if let Some(over) = exceeded(&scope, &limits, &usage, adding_octets, adding_count) {
            return Ok(Err(over));
        }
    }
    Ok(Ok(()))
}

/// The account's domain and its limits, when the domain has any.
pub async fn domain_limits(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<Option<(String, Limits)>> {
    let Some(domain) = domain::domain_of(tx, account_id).await? else {
        return Ok(None);
    };
    Ok(domain::limits(tx, &domain)
        .await?
        .map(|limits| (domain, limits)))
}

/// What fits before the hard limits: octets and Emails left (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    pub octets: Option<u64>,
    pub count: Option<u64>,
}

impl Headroom {
    fn left(limits: &Limits, usage: &Usage) -> Headroom {
        let left = |resource| {
            limits
                .hard(resource)
                .map(|limit: u64| limit.saturating_sub(usage.of(resource)))
        };
        Headroom {
            octets: left(Resource::Octets),
            count: left(Resource::Count),
        }
    }

    /// The tighter of two headrooms.
    fn min(self, other: Headroom) -> Headroom {
        let tighter = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Headroom {
            octets: tighter(self.octets, other.octets),
            count: tighter(self.count, other.count),
        }
    }

    /// Whether a message of `size` octets fits.
    pub fn fits(&self, size: u64) -> bool {
        self.octets.is_none_or(|left| size <= left) && self.count.is_none_or(|left| left >= 1)
    }

    /// The headroom after accepting a message of `size` octets.
    pub fn after(&self, size: u64) -> Headroom {
        Headroom {
            octets: self.octets.map(|left| left.saturating_sub(size)),
            count: self.count.map(|left| left.saturating_sub(1)),
        }
    }
}

pub async fn headroom(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Headroom> {
    prefetch(tx, account_id).await?;
    let limits = limits(tx, account_id).await?;
    let usage = usage(tx, account_id).await?;
    let mut room = Headroom::left(&limits, &usage);
    if let Some((domain, limits)) = domain_limits(tx, account_id).await? {
        let usage = domain::usage(tx, &domain).await?;
        room = room.min(Headroom::left(&limits, &usage));
    }
    Ok(room)
}

/// An Email of `size` octets was stored (`mail::store`, same transaction).
pub async fn email_added(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    size: u64,
) -> StoreResult<()> {
    changed(tx, changes, account_id, size_delta(size), 1).await
}

/// An Email of `size` octets was destroyed (`mail::store`, same transaction).
pub async fn email_removed(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    size: u64,
) -> StoreResult<()> {
    changed(tx, changes, account_id, -size_delta(size), -1).await
}

fn size_delta(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

async fn changed(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    octets: i64,
    count: i64,
) -> StoreResult<()> {
    prefetch(tx, account_id).await?;
    domain_changed(tx, changes, account_id, octets, count).await?;
    let limits = limits(tx, account_id).await?;
    // Read before the adds (the warning looks at the crossing), only when a limit applies.
    let before = match limits.is_unlimited() {
        true => None,
        false => Some(usage(tx, account_id).await?),
    };
    tx.atomic_add(&used_key(account_id, Resource::Octets), octets)?;
    tx.atomic_add(&used_key(account_id, Resource::Count), count)?;
    for resource in Resource::ALL {
        changes.updated(DataType::Quota, resource.quota_id());
    }
    let Some(before) = before else {
        return Ok(());
    };
    for (resource, delta) in [(Resource::Octets, octets), (Resource::Count, count)] {
        let Some(warn) = limits.warn(resource) else {
            continue;
        };
        let was = before.of(resource);
        let now = was.saturating_add_signed(delta);
        if was < warn && now >= warn {
            let flag = warned_key(account_id, resource);
            if tx.get(&flag).await?.is_none() {
                tx.set(&flag, &[])?;
                WarningTask {
                    account_id,
                    scope: Scope::Account,
                    resource,
                    used: now,
                    limit: limits.hard(resource).unwrap_or(0),
                }
                .queue(tx)?;
            }
        } else if was >= warn && now < warn {
            tx.clear(&warned_key(account_id, resource))?;
        }
    }
    Ok(())
}

/// The account's domain's share of a usage change: its counters move with the account's
/// (blind adds: no conflict between the domain's accounts), and where the domain has limits
/// its Quota objects change and its warning is queued once usage is at `warnLimit`.
async fn domain_changed(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    octets: i64,
    count: i64,
) -> StoreResult<()> {
    let Some(domain) = domain::domain_of(tx, account_id).await? else {
        return Ok(());
    };
    let limits = domain::limits(tx, &domain).await?;
    // Read (unconflicted) before the adds, only when a limit applies.
    let before = match limits {
        Some(_) => Some(domain::usage(tx, &domain).await?),
        None => None,
    };
    tx.atomic_add(&domain::used_key(&domain, Resource::Octets), octets)?;
    tx.atomic_add(&domain::used_key(&domain, Resource::Count), count)?;
    let (Some(limits), Some(before)) = (limits, before) else {
        return Ok(());
    };
    for (resource, delta) in [(Resource::Octets, octets), (Resource::Count, count)] {
        if limits.hard(resource).is_some() {
            changes.updated(DataType::Quota, resource.domain_quota_id());
        }
        let Some(warn) = limits.warn(resource) else {
            continue;
        };
        // Level, not edge: with unconflicted reads two accounts' commits may each miss the
        // crossing the other completed, so "at or over and not yet warned" decides. The flag
        // is an ordinary read: two commits that both queue the warning conflict, one stays.
        let now = before.of(resource).saturating_add_signed(delta);
        let flag = domain::warned_key(&domain, resource);
        let warned = tx.get(&flag).await?.is_some();
        if now >= warn && !warned {
            tx.set(&flag, &[])?;
            WarningTask {
                account_id,
                scope: Scope::Domain(domain.clone()),
                resource,
                used: now,
                limit: limits.hard(resource).unwrap_or(0),
            }
            .queue(tx)?;
        } else if now < warn && warned {
            tx.clear(&flag)?;
        }
    }
    Ok(())
}

mod admin;
mod backfill;
pub mod domain;
pub mod suite;

pub use admin::{
    DomainQuotaReport, LimitsChange, QuotaConfig, QuotaReport, change_domain_limits, change_limits,
    domain_report, parse_size, report,
};
pub use backfill::{backfill, backfill_all};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("5 gb"), Ok(5_000_000_000));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("GB").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("99999999999TB").is_err());
    }

    #[test]
    fn limits_round_trip_and_warn_is_a_share_of_the_hard_limit() {
        let limits = Limits {
            storage: Some(1_000),
            messages: None,
            warn_percent: 90,
        };
        assert_eq!(Limits::decode(&limits.encode()).ok(), Some(limits));
        assert_eq!(limits.warn(Resource::Octets), Some(900));
        assert_eq!(limits.warn(Resource::Count), None);
        let silent = Limits {
            warn_percent: 0,
            ..limits
        };
        assert_eq!(silent.warn(Resource::Octets), None);
        assert!(Limits::decode(&[1, 2, 3]).is_err());
        let own = Overrides {
            storage: Some(None),
            messages: Some(Some(7)),
            warn_percent: None,
        };
        assert_eq!(Overrides::decode(&own.encode()).ok(), Some(own));
        let applied = own.apply(limits);
        assert_eq!(
            (applied.storage, applied.messages, applied.warn_percent),
            (None, Some(7), 90)
        );
        assert_eq!(
            QuotaConfig::default().limits().map(|limits| limits.storage),
            Ok(Some(10_000_000_000))
        );
    }
}
