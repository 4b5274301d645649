//! Password hashing (argon2id, PHC string format) and generation.
//!
//! Hashing and verifying cost tens of milliseconds of CPU on purpose: callers on the async
//! runtime go through [`hash_blocking`] (the blocking pool) and, for logins, the directory's
//! bounded [`super::verifier::Verifier`].

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;

/// Longest password accepted; argon2 itself has no practical limit, this bounds the work a
/// request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a generated password looks like: 18 random bytes, URL-safe base64 (24 characters,
/// 144 bits).
const GENERATED_PASSWORD_BYTES: usize = 18;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

fn hasher() -> Argon2<'static> {
    // OWASP's recommended argon2id parameters (19 MiB, 2 passes, 1 lane): the crate default.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

pub fn check_password_acceptable(password: &str) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The PHC string (`$argon2id$v=19$m=...`) of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_password_acceptable(password)?;
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|error| PasswordError::Hashing(error.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError::Hashing(error.to_string()))
}

/// Whether `password` matches `phc_hash`. A malformed stored hash never matches.
pub fn verify(password: &str, phc_hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc_hash) else {
        tracing::warn!("stored password hash is malformed");
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash of a password nobody knows, verified against when the user does not exist so that
/// an unknown user costs the same time as a wrong password (no user enumeration by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let unguessable = generate();
        hash(&unguessable).unwrap_or_default()
    })
}

pub async fn hash_blocking(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|error| PasswordError::Hashing(format!("hashing task failed: {error}")))?
}

/// A random password for `account create` without `--password` and for `serve --demo`.
pub fn generate() -> String {
    let bytes: [u8; GENERATED_PASSWORD_BYTES] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horsf", &phc));
        assert!(!verify("", &phc));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash("same").unwrap(), hash("same").unwrap());
    }

    #[test]
    fn bad_inputs() {
        assert!(matches!(hash(""), Err(PasswordError::Empty)));
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(hash(&long), Err(PasswordError::TooLong)));
        assert!(!verify("anything", "not a phc string"));
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let first = generate();
        assert_eq!(first.len(), 24);
        assert_ne!(first, generate());
        assert!(!verify(&first, decoy_hash()));
    }
}
