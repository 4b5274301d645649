//! Accounts, credentials and authentication (the directory).
//!
//! - [`Directory`]: accounts, argon2id password hashes and bearer tokens in the store;
//! - [`Authenticator`]: turns an `Authorization` header (HTTP Basic, RFC 7617, or Bearer,
//!   RFC 6750) into a [`Principal`], with a short-lived cache of successful checks and the
//!   login throttle (per client address and per account, [`rate_limit`]) in front of a
//!   bounded password verifier ([`verifier`]).

pub mod cache;
pub mod directory;
pub mod password;
pub mod rate_limit;
pub mod verifier;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

pub use directory::{AccountInfo, Directory, DirectoryError, DirectoryErrorKind, Email};
use rate_limit::{Attempt, LoginThrottle, Scope, ThrottleSettings};

/// An authenticated user. Every JMAP call runs on behalf of one; an account is reachable only
/// through `Principal::may_access`, checked once at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's own account (RFC 8620 §1.6.2: one account per user for now).
    pub account_id: u32,
    /// The login name, an email address.
    pub email: String,
}

impl Principal {
    pub fn may_access(&self, account_id: u32) -> bool {
        self.account_id == account_id
    }
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("too many failed logins for this {}; retry in {} s", scope.as_str(), retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration, scope: Scope },
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
}

/// The `WWW-Authenticate` challenge of a 401 (RFC 9110 §11.6.1): both schemes we accept.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"tern\", Bearer realm=\"tern\"";

/// Authenticates requests against a [`Directory`].
pub struct Authenticator {
    directory: Directory,
    throttle: Arc<LoginThrottle>,
    /// Concurrent logins with identical credentials verify once (and take one throttle
    /// reservation): later ones wait for the first and find the cache filled.
    in_flight: InFlight,
}

type CacheKey = [u8; 32];

#[derive(Default)]
struct InFlight {
    logins: std::sync::Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// One login's turn for its credentials; leaving forgets the entry when nobody else waits.
struct Flight<'a> {
    flights: &'a InFlight,
    key: CacheKey,
    lock: Arc<tokio::sync::Mutex<()>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl InFlight {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>> {
        self.logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn enter(&self, key: CacheKey) -> Flight<'_> {
        let lock = Arc::clone(self.map().entry(key).or_default());
        let mut flight = Flight {
            flights: self,
            key,
            lock: Arc::clone(&lock),
            held: None,
        };
        flight.held = Some(lock.lock_owned().await);
        flight
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.held = None;
        let mut logins = self.flights.map();
        // Only the map and this flight still hold it: nobody is waiting.
        if Arc::strong_count(&self.lock) <= 2 {
            logins.remove(&self.key);
        }
    }
}

/// A parsed `Authorization` header.
enum Credentials {
    Basic { email: String, password: String },
    Bearer { token: String },
}

fn parse_authorization(header: &[u8]) -> Option<Credentials> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    // RFC 9110 §11.1: the scheme is case-insensitive.
    if scheme.eq_ignore_ascii_case("basic") {
        // RFC 7617 §2: base64 of user-id ":" password; the user-id cannot contain ':'.
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (email, password) = decoded.split_once(':')?;
        return Some(Credentials::Basic {
            email: email.to_owned(),
            password: password.to_owned(),
        });
    }
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Some(Credentials::Bearer {
            token: rest.to_owned(),
        });
    }
    None
}

impl Authenticator {
    /// An authenticator with its own throttle: `failed_login_burst` and `refill` per address,
    /// the default account limits.
    pub fn new(directory: Directory, failed_login_burst: u32, refill: Duration) -> Authenticator {
        let settings = ThrottleSettings::per_address(failed_login_burst, refill);
        Authenticator::with_throttle(directory, Arc::new(LoginThrottle::new(settings)))
    }

    /// An authenticator sharing `throttle` (with SMTP AUTH).
    pub fn with_throttle(directory: Directory, throttle: Arc<LoginThrottle>) -> Authenticator {
        Authenticator {
            directory,
            throttle,
            in_flight: InFlight::default(),
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The login throttle (SMTP AUTH shares it).
    pub fn throttle(&self) -> &Arc<LoginThrottle> {
        &self.throttle
    }

    /// Authenticates the value of an `Authorization` header sent from `client`.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        client: IpAddr,
    ) -> Result<Principal, AuthError> {
        let Some(header) = authorization else {
            return Err(AuthError::Missing);
        };
        let cache_key: [u8; 32] = Sha256::digest(header).into();
        let cache = self.directory.credential_cache();
        if let Some(principal) = cache.get(&cache_key) {
            return Ok(principal);
        }
        let (email, password) = match parse_authorization(header) {
            Some(Credentials::Basic { email, password }) => (email, password),
            Some(Credentials::Bearer { token }) => {
                return self.bearer(&token, client, cache_key).await;
            }
            None => {
                // Counts against the address like a wrong password (no account to charge).
                if let Ok(attempt) = self.throttle.admit(client, "") {
                    attempt.failed();
                }
                tracing::info!(%client, reason = "malformed Authorization", "failed login");
                return Err(AuthError::Invalid);
            }
        };
        let _flight = self.in_flight.enter(cache_key).await;
        if let Some(principal) = cache.get(&cache_key) {
            return Ok(principal);
        }
        let attempt = self.admitted(client, &email).await?;
        let found = self
            .directory
            .verify_password(&email, &password)
            .await
            .map_err(|error| AuthError::Unavailable(error.message))?;
        match found {
            Some(principal) => {
                attempt.succeeded();
                cache.insert(cache_key, principal.clone());
                Ok(principal)
            }
            None => {
                let delayed_by = attempt.delayed_by().map(Scope::as_str);
                attempt.failed();
                tracing::info!(%client, login = %email, delayed_by, "failed login");
                Err(AuthError::Invalid)
            }
        }
    }

    /// The throttle's admission of a login try: refused, or admitted after its delay (slowed
    /// down, not refused: see `rate_limit`; the right password still gets in).
    async fn admitted(&self, client: IpAddr, login: &str) -> Result<Attempt<'_>, AuthError> {
        let attempt =
            self.throttle
                .admit(client, login)
                .map_err(|refusal| AuthError::RateLimited {
                    retry_after: refusal.retry_after,
                    scope: refusal.scope,
                })?;
        if !attempt.delay().is_zero() {
            tokio::time::sleep(attempt.delay()).await;
        }
        Ok(attempt)
    }

    /// Bearer tokens are random (no guessing to throttle per account); a wrong one counts
    /// against the client's address.
    async fn bearer(
        &self,
        token: &str,
        client: IpAddr,
        cache_key: [u8; 32],
    ) -> Result<Principal, AuthError> {
        let attempt = self.admitted(client, "").await?;
        let found = self
            .directory
            .principal_for_token(token)
            .await
            .map_err(|error| AuthError::Unavailable(error.message))?;
        match found {
            Some(principal) => {
                attempt.succeeded();
                self.directory
                    .credential_cache()
                    .insert(cache_key, principal.clone());
                Ok(principal)
            }
            None => {
                attempt.failed();
                tracing::info!(%client, reason = "unknown bearer token", "failed login");
                Err(AuthError::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests;
