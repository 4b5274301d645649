//! The login throttle: password guessing is limited per client address *and* per account,
//! without letting an attacker lock the real user out (issue 13, defect 4).
//!
//! Two families of token buckets, one per client address and one per login name (known
//! account or not, so a refusal tells nothing about which accounts exist). Failures drain
//! them; a bucket refills one token every `refill`, up to `burst`.
//!
//! - Every verified attempt first *reserves* a token in each bucket that applies to it; a
//!   failure keeps the reservation, a success gives it back. When a bucket is empty the
//!   attempt is **slowed down, not refused**: it waits until its reserved token is due, at
//!   most `max_delay`, then is verified. Only an attempt that would wait longer than
//!   `max_delay` (a client guessing faster than one try per `refill`) is refused at once
//!   with a retry-after, and without verifying anything. Guessing is therefore capped at one
//!   try per `refill` per bucket after the burst, however many attempts run concurrently.
//! - The **account** bucket applies only to attempts from an address that has itself failed
//!   a login in the last [`FAILED_ADDRESS_MEMORY`]. An address that never failed is never
//!   slowed by the account's bucket: the real user's own devices keep logging in at once
//!   while the account is under attack from elsewhere (its failures still count against
//!   the account). An attacker gets one try per fresh address; from then on the address is
//!   "failed" and shares the account's slow lane.
//! - The **address** bucket does not apply to a login name that logged in successfully from
//!   that address in the last [`KNOWN_GOOD_FOR`]: users behind a NAT shared with a guesser
//!   keep working. Such attempts still pass the account bucket (the address has failed), so
//!   this gives a guesser on the same NAT nothing against that account.
//! - A user behind a throttled NAT who never logged in from it is delayed (at most
//!   `max_delay`) but not refused unless the guessers there keep the address's slow lane
//!   full; the refusal carries `Retry-After`.
//!
//! Tables are bounded: past [`MAX_TRACKED`] entries, idle ones are dropped, then the oldest
//! half.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Entries per table before pruning.
const MAX_TRACKED: usize = 100_000;
/// How long an address counts as "has failed" after its last failed login.
pub const FAILED_ADDRESS_MEMORY: Duration = Duration::from_secs(3600);
/// How long a successful (address, login) pair skips the address bucket.
pub const KNOWN_GOOD_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Login names are keyed by at most this many bytes (a longer name is no real account).
const MAX_KEY_BYTES: usize = 320;
/// At most one "login refused" log line per this interval; the others are counted.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The throttle's settings (`[auth]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleSettings {
    pub address_burst: u32,
    pub address_refill: Duration,
    pub account_burst: u32,
    pub account_refill: Duration,
    pub max_delay: Duration,
}

impl ThrottleSettings {
    pub fn from_config(auth: &crate::config::AuthConfig) -> ThrottleSettings {
        ThrottleSettings {
            address_burst: auth.failed_login_burst,
            address_refill: Duration::from_secs(auth.failed_login_refill_seconds),
            account_burst: auth.failed_login_account_burst,
            account_refill: Duration::from_secs(auth.failed_login_account_refill_seconds),
            max_delay: Duration::from_secs(auth.failed_login_max_delay_seconds),
        }
    }

    /// The given address limits with the default account limits and delay.
    pub fn per_address(burst: u32, refill: Duration) -> ThrottleSettings {
        ThrottleSettings {
            address_burst: burst,
            address_refill: refill,
            ..ThrottleSettings::from_config(&crate::config::AuthConfig::default())
        }
    }
}

/// Which bucket made an attempt wait or refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Address,
    Account,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Address => "address",
            Scope::Account => "account",
        }
    }
}

/// An attempt refused without verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after: Duration,
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens left; below 1 attempts wait; negative while reservations are outstanding.
    tokens: f64,
    updated: Instant,
    last_failure: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    burst: f64,
    refill: Duration,
    /// The lowest the tokens go: a reservation is only made within `max_delay`.
    floor: f64,
}

impl Limits {
    fn new(burst: u32, refill: Duration, max_delay: Duration) -> Limits {
        let refill = refill.max(Duration::from_millis(1));
        Limits {
            burst: f64::from(burst.max(1)),
            refill,
            floor: -(max_delay.as_secs_f64() / refill.as_secs_f64()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated);
        let gained = elapsed.as_secs_f64() / self.refill.as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + gained).min(self.burst),
            updated: now,
            ..bucket
        }
    }

    fn fresh(&self, now: Instant) -> Bucket {
        Bucket {
            tokens: self.burst,
            updated: now,
            last_failure: None,
        }
    }

    /// How long an attempt waits for a token of `bucket`.
    fn wait(&self, bucket: Option<&Bucket>, now: Instant) -> Duration {
        let tokens = bucket.map_or(self.burst, |bucket| self.refilled(*bucket, now).tokens);
        if tokens >= 1.0 {
            Duration::ZERO
        } else {
            self.refill.mul_f64(1.0 - tokens)
        }
    }
}

#[derive(Default)]
struct State {
    addresses: HashMap<IpAddr, Bucket>,
    accounts: HashMap<String, Bucket>,
    known_good: HashMap<(IpAddr, String), Instant>,
    last_log: Option<Instant>,
    suppressed_logs: u64,
}

pub struct LoginThrottle {
    address: Limits,
    account: Limits,
    max_delay: Duration,
    state: Mutex<State>,
}

/// An admitted attempt: wait [`Attempt::delay`], verify, then report the outcome. Dropped
/// without an outcome (the client went away before verification), its reservations are
/// given back: no password was tried.
pub struct Attempt<'t> {
    throttle: &'t LoginThrottle,
    address: IpAddr,
    account: String,
    delay: Duration,
    delayed_by: Option<Scope>,
    reserved_address: bool,
    reserved_account: bool,
    settled: bool,
}

impl Attempt<'_> {
    /// How long to wait before verifying (zero unless a bucket is empty).
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The bucket that made the attempt wait, if any.
    pub fn delayed_by(&self) -> Option<Scope> {
        self.delayed_by
    }

    /// The password was right: reservations back, and the pair is remembered as good.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.throttle.settle(&self, true);
    }

    /// The password was wrong: the failure counts against the address and the account.
    pub fn failed(mut self) {
        self.settled = true;
        self.throttle.settle(&self, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.refund(self);
        }
    }
}

fn account_key(login: &str) -> String {
    let login = login.trim();
    let mut end = login.len().min(MAX_KEY_BYTES);
    while !login.is_char_boundary(end) {
        end -= 1;
    }
    login[..end].to_lowercase()
}

impl LoginThrottle {
    pub fn new(settings: ThrottleSettings) -> LoginThrottle {
        LoginThrottle {
            address: Limits::new(
                settings.address_burst,
                settings.address_refill,
                settings.max_delay,
            ),
            account: Limits::new(
                settings.account_burst,
                settings.account_refill,
                settings.max_delay,
            ),
            max_delay: settings.max_delay,
            state: Mutex::new(State::default()),
        }
    }

    /// Decides about one login attempt of `login` from `address`: go (after a delay) or
    /// refuse. A refusal is logged (rate-limited).
    pub fn admit(&self, address: IpAddr, login: &str) -> Result<Attempt<'_>, Refusal> {
        let account = account_key(login);
        let now = Instant::now();
        let mut state = self.lock();
        let address_failed = state
            .addresses
            .get(&address)
            .and_then(|bucket| bucket.last_failure)
            .is_some_and(|at| now.saturating_duration_since(at) < FAILED_ADDRESS_MEMORY);
        let known_good = state
            .known_good
            .get(&(address, account.clone()))
            .is_some_and(|at| now.saturating_duration_since(*at) < KNOWN_GOOD_FOR);
        let use_address = !known_good;
        // An empty login (bearer tokens, malformed headers) has no account bucket.
        let use_account = address_failed && !account.is_empty();
        let address_wait = if use_address {
            self.address.wait(state.addresses.get(&address), now)
        } else {
            Duration::ZERO
        };
        let account_wait = if use_account {
            self.account.wait(state.accounts.get(&account), now)
        } else {
            Duration::ZERO
        };
        let (delay, scope) = if account_wait > address_wait {
            (account_wait, Scope::Account)
        } else {
            (address_wait, Scope::Address)
        };
        if delay > self.max_delay {
            let refusal = Refusal {
                retry_after: delay,
                scope,
            };
            self.log_refusal(&mut state, now, address, &refusal);
            return Err(refusal);
        }
        if use_address {
            reserve(&mut state.addresses, address, &self.address, now);
        }
        if use_account {
            reserve(&mut state.accounts, account.clone(), &self.account, now);
        }
        Ok(Attempt {
            throttle: self,
            address,
            account,
            delay,
            delayed_by: (!delay.is_zero()).then_some(scope),
            reserved_address: use_address,
            reserved_account: use_account,
            settled: false,
        })
    }

    fn settle(&self, attempt: &Attempt<'_>, success: bool) {
        let now = Instant::now();
        let mut state = self.lock();
        if success {
            if attempt.reserved_address {
                give_back(&mut state.addresses, &attempt.address, &self.address, now);
            }
            if attempt.reserved_account {
                give_back(&mut state.accounts, &attempt.account, &self.account, now);
            }
            if state.known_good.len() >= MAX_TRACKED {
                prune_known_good(&mut state.known_good, now);
            }
            state
                .known_good
                .insert((attempt.address, attempt.account.clone()), now);
            return;
        }
        if !attempt.reserved_address {
            reserve(&mut state.addresses, attempt.address, &self.address, now);
        }
        if !attempt.reserved_account && !attempt.account.is_empty() {
            reserve(
                &mut state.accounts,
                attempt.account.clone(),
                &self.account,
                now,
            );
        }
        if let Some(bucket) = state.addresses.get_mut(&attempt.address) {
            bucket.last_failure = Some(now);
        }
        if let Some(bucket) = state.accounts.get_mut(&attempt.account) {
            bucket.last_failure = Some(now);
        }
    }

    fn refund(&self, attempt: &Attempt<'_>) {
        let now = Instant::now();
        let mut state = self.lock();
        if attempt.reserved_address {
            give_back(&mut state.addresses, &attempt.address, &self.address, now);
        }
        if attempt.reserved_account {
            give_back(&mut state.accounts, &attempt.account, &self.account, now);
        }
    }

    fn log_refusal(&self, state: &mut State, now: Instant, address: IpAddr, refusal: &Refusal) {
        if state
            .last_log
            .is_some_and(|at| now.saturating_duration_since(at) < LOG_INTERVAL)
        {
            state.suppressed_logs += 1;
            return;
        }
        tracing::info!(
            client = %address,
            scope = refusal.scope.as_str(),
            retry_after_ms = refusal.retry_after.as_millis() as u64,
            suppressed = state.suppressed_logs,
            "login refused: too many failed logins"
        );
        state.last_log = Some(now);
        state.suppressed_logs = 0;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Takes one token (down to the floor), creating the bucket full if it is new.
fn reserve<K: std::hash::Hash + Eq>(
    buckets: &mut HashMap<K, Bucket>,
    key: K,
    limits: &Limits,
    now: Instant,
) {
    if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
        prune(buckets, limits, now);
    }
    let current = buckets
        .get(&key)
        .map_or_else(|| limits.fresh(now), |bucket| limits.refilled(*bucket, now));
    let tokens = (current.tokens - 1.0).max(limits.floor);
    buckets.insert(key, Bucket { tokens, ..current });
}

fn give_back<K: std::hash::Hash + Eq>(
    buckets: &mut HashMap<K, Bucket>,
    key: &K,
    limits: &Limits,
    now: Instant,
) {
    if let Some(bucket) = buckets.get_mut(key) {
        let refilled = limits.refilled(*bucket, now);
        *bucket = Bucket {
            tokens: (refilled.tokens + 1.0).min(limits.burst),
            ..refilled
        };
    }
}

fn prune<K: std::hash::Hash + Eq>(buckets: &mut HashMap<K, Bucket>, limits: &Limits, now: Instant) {
    buckets.retain(|_, bucket| {
        let recent_failure = bucket
            .last_failure
            .is_some_and(|at| now.saturating_duration_since(at) < FAILED_ADDRESS_MEMORY);
        recent_failure || limits.refilled(*bucket, now).tokens < limits.burst
    });
    if buckets.len() >= MAX_TRACKED {
        let mut ages: Vec<Instant> = buckets.values().map(|bucket| bucket.updated).collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() / 2];
        buckets.retain(|_, bucket| bucket.updated > cutoff);
    }
}

fn prune_known_good(known_good: &mut HashMap<(IpAddr, String), Instant>, now: Instant) {
    known_good.retain(|_, at| now.saturating_duration_since(*at) < KNOWN_GOOD_FOR);
    if known_good.len() >= MAX_TRACKED {
        let mut ages: Vec<Instant> = known_good.values().copied().collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() / 2];
        known_good.retain(|_, at| *at > cutoff);
    }
}

mod per_address;
pub use per_address::FailedLoginLimiter;

#[cfg(test)]
mod tests;
