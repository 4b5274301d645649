//! The per-account statistical classifier: Gary Robinson's token probabilities with Fisher's
//! chi-square combination (as SpamBayes does), over counts kept in the store.
//!
//! Storage (`schema/delivery.md`): per token and class an atomic counter of trained messages
//! containing it (`ACCT_SPAM_TOKEN`), per class the number of trained messages, and per Email the
//! class it was trained as (`ACCT_SPAM_TRAINED`). Training an Email again as the same class does
//! nothing; as the other class moves its counts — so a replayed or repeated training task never
//! counts twice. Atomic adds never conflict with concurrent training or delivery.

use std::collections::BTreeSet;

use crate::store::keys::{self, ACCT_SPAM_TOKEN, ACCT_SPAM_TRAINED, le_i64};
use crate::store::{StoreResult, Transaction};

pub use crate::mail::followup::training::Class;

/// Robinson's strength of the prior (s) and assumed probability of an unknown token (x).
const PRIOR_STRENGTH: f64 = 1.0;
const PRIOR_PROBABILITY: f64 = 0.5;
/// Tokens closer to 0.5 than this carry no evidence and are left out.
const MINIMUM_DEVIATION: f64 = 0.1;
/// At most this many of the strongest tokens are combined.
const MAX_DISCRIMINATORS: usize = 150;

fn token_key(account_id: u32, token: u64, class: Class) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_SPAM_TOKEN)
        .u64(token)
        .u8(class as u8)
        .build()
}

fn total_key(account_id: u32, class: Class) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_SPAM_TRAINED)
        .u8(0x00)
        .u8(class as u8)
        .build()
}

fn trained_key(account_id: u32, email_id: u64) -> Vec<u8> {
    keys::account_prefix(account_id)
        .u8(ACCT_SPAM_TRAINED)
        .u8(0x01)
        .u64(email_id)
        .build()
}

async fn counter(tx: &mut dyn Transaction, key: &[u8]) -> StoreResult<u64> {
    Ok(tx
        .get(key)
        .await?
        .map_or(0, |bytes| le_i64(&bytes).max(0) as u64))
}

/// How many messages of each class the account trained.
pub async fn totals(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<(u64, u64)> {
    Ok((
        counter(tx, &total_key(account_id, Class::Spam)).await?,
        counter(tx, &total_key(account_id, Class::Ham)).await?,
    ))
}

/// Records that `email_id` (with `tokens`) is of `class`, inside the caller's transaction.
/// Returns false when it already was (nothing written).
pub async fn train(
    tx: &mut dyn Transaction,
    account_id: u32,
    email_id: u64,
    tokens: &BTreeSet<u64>,
    class: Class,
) -> StoreResult<bool> {
    let marker = trained_key(account_id, email_id);
    let previous = tx
        .get(&marker)
        .await?
        .and_then(|bytes| bytes.first().copied().and_then(Class::from_u8));
    if previous == Some(class) {
        return Ok(false);
    }
    if previous.is_some() {
        let old = class.other();
        for token in tokens {
            tx.atomic_add(&token_key(account_id, *token, old), -1)?;
        }
        tx.atomic_add(&total_key(account_id, old), -1)?;
    }
    for token in tokens {
        tx.atomic_add(&token_key(account_id, *token, class), 1)?;
    }
    tx.atomic_add(&total_key(account_id, class), 1)?;
    tx.set(&marker, &[class as u8])?;
    Ok(true)
}

/// Forgets the training marker of a destroyed Email (its counts stay: they describe mail the
/// user judged, whatever happened to it later).
pub fn forget(tx: &mut dyn Transaction, account_id: u32, email_id: u64) -> StoreResult<()> {
    tx.clear(&trained_key(account_id, email_id))
}

/// The probability that a message with `tokens` is spam for this account, or `None` while the
/// account has trained fewer than `min_spam` spam messages.
pub async fn classify(
    tx: &mut dyn Transaction,
    account_id: u32,
    tokens: &BTreeSet<u64>,
    min_spam: u64,
) -> StoreResult<Option<f64>> {
    let (spam_total, ham_total) = totals(tx, account_id).await?;
    if spam_total < min_spam.max(1) {
        return Ok(None);
    }
    let mut probabilities = Vec::with_capacity(tokens.len());
    for token in tokens {
        let spam = counter(tx, &token_key(account_id, *token, Class::Spam)).await?;
        let ham = counter(tx, &token_key(account_id, *token, Class::Ham)).await?;
        if let Some(p) = token_probability(spam, ham, spam_total, ham_total) {
            probabilities.push(p);
        }
    }
    Ok(Some(combine(probabilities)))
}

/// Robinson's f(w): the token's spam ratio pulled towards 0.5 by the prior, by how little
/// evidence there is. `None` for a token never seen.
pub fn token_probability(spam: u64, ham: u64, spam_total: u64, ham_total: u64) -> Option<f64> {
    let seen = spam + ham;
    if seen == 0 {
        return None;
    }
    let spam_ratio = if spam_total == 0 {
        0.0
    } else {
        (spam as f64 / spam_total as f64).min(1.0)
    };
    let ham_ratio = if ham_total == 0 {
        0.0
    } else {
        (ham as f64 / ham_total as f64).min(1.0)
    };
    let raw = if spam_ratio + ham_ratio == 0.0 {
        PRIOR_PROBABILITY
    } else {
        spam_ratio / (spam_ratio + ham_ratio)
    };
    let n = seen as f64;
    Some((PRIOR_STRENGTH * PRIOR_PROBABILITY + n * raw) / (PRIOR_STRENGTH + n))
}

/// Fisher's method over the strongest tokens: (1 + S − H) / 2, where S and H are the
/// chi-square evidence for spam and for ham. 0.5 when nothing discriminates.
pub fn combine(mut probabilities: Vec<f64>) -> f64 {
    probabilities.retain(|p| (p - 0.5).abs() >= MINIMUM_DEVIATION);
    if probabilities.is_empty() {
        return 0.5;
    }
    probabilities.sort_by(|a, b| {
        (b - 0.5)
            .abs()
            .partial_cmp(&(a - 0.5).abs())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    probabilities.truncate(MAX_DISCRIMINATORS);
    let n = probabilities.len();
    let clamp = |p: f64| p.clamp(1e-6, 1.0 - 1e-6);
    let ln_ham: f64 = probabilities.iter().map(|p| clamp(*p).ln()).sum();
    let ln_spam: f64 = probabilities.iter().map(|p| (1.0 - clamp(*p)).ln()).sum();
    let spam_evidence = 1.0 - chi2_q(-2.0 * ln_spam, 2 * n);
    let ham_evidence = 1.0 - chi2_q(-2.0 * ln_ham, 2 * n);
    ((1.0 + spam_evidence - ham_evidence) / 2.0).clamp(0.0, 1.0)
}

/// The upper tail of the chi-square distribution with an even number of degrees of freedom.
fn chi2_q(chi: f64, degrees: usize) -> f64 {
    let m = chi / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for index in 1..degrees / 2 {
        term *= m / index as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_moves_the_probability_and_its_absence_does_not() {
        assert_eq!(combine(vec![]), 0.5);
        assert_eq!(combine(vec![0.5, 0.55, 0.45]), 0.5);
        let spammy = combine(vec![0.83; 12]);
        let hammy = combine(vec![0.17; 12]);
        assert!(spammy > 0.95, "{spammy}");
        assert!(hammy < 0.05, "{hammy}");
        let mixed = combine(vec![0.9, 0.1, 0.9, 0.1]);
        assert!((mixed - 0.5).abs() < 0.05, "{mixed}");
    }

    #[test]
    fn token_probabilities_follow_robinson() {
        assert_eq!(token_probability(0, 0, 5, 5), None);
        // Seen twice in spam only, with no ham trained: (0.5 + 2·1) / 3.
        let p = token_probability(2, 0, 2, 0).unwrap();
        assert!((p - 2.5 / 3.0).abs() < 1e-9);
        let p = token_probability(0, 3, 2, 3).unwrap();
        assert!(p < 0.2);
    }
}
