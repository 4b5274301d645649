//! Accounts, credentials and authentication (the directory).
//!
//! - [`Directory`]: accounts, argon2id password hashes and bearer tokens in the store;
//! - [`Authenticator`]: turns an `Authorization` header (HTTP Basic, RFC 7617, or Bearer,
//!   RFC 6750) into a [`Principal`], with a short-lived cache of successful checks and
//!   failed-login rate limiting per client address.

pub mod cache;
pub mod directory;
pub mod password;
pub mod rate_limit;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

pub use directory::{AccountInfo, Directory, DirectoryError, DirectoryErrorKind, Email};
use rate_limit::FailedLoginLimiter;

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
    #[error("too many failed logins from this address; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
}

/// The `WWW-Authenticate` challenge of a 401 (RFC 9110 §11.6.1): both schemes we accept.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"tern\", Bearer realm=\"tern\"";

/// Authenticates requests against a [`Directory`].
pub struct Authenticator {
    directory: Directory,
    limiter: FailedLoginLimiter,
    /// Bounds concurrent argon2 verifications (each takes ~19 MiB and a core for tens of
    /// milliseconds): a burst of logins, honest or not, cannot exhaust memory or starve
    /// the blocking pool. It also makes concurrent identical logins verify once: later
    /// ones find the cache filled when their turn comes.
    password_checks: tokio::sync::Semaphore,
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
    pub fn new(directory: Directory, failed_login_burst: u32, refill: Duration) -> Authenticator {
        let parallelism = std::thread::available_parallelism().map_or(2, usize::from);
        Authenticator {
            directory,
            limiter: FailedLoginLimiter::new(failed_login_burst, refill),
            password_checks: tokio::sync::Semaphore::new(parallelism),
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
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
        self.limiter
            .check(client)
            .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
        let found = match parse_authorization(header) {
            Some(Credentials::Basic { email, password }) => {
                let _permit = self.password_checks.acquire().await.map_err(|_| {
                    AuthError::Unavailable("password verification is shut down".into())
                })?;
                if let Some(principal) = cache.get(&cache_key) {
                    return Ok(principal);
                }
                self.directory.verify_password(&email, &password).await
            }
            Some(Credentials::Bearer { token }) => self.directory.principal_for_token(&token).await,
            None => Ok(None),
        }
        .map_err(|error| AuthError::Unavailable(error.message))?;
        match found {
            Some(principal) => {
                cache.insert(cache_key, principal.clone());
                Ok(principal)
            }
            None => {
                self.limiter.record_failure(client);
                tracing::info!(%client, "failed login");
                Err(AuthError::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests;
