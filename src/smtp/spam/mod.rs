//! Spam classification of incoming mail, in three parts combined into one score:
//! - `rules`: fixed checks on the message and its authentication results (GTUBE, failed
//!   DMARC/SPF/DKIM, missing Message-ID or Date, …), the same for every recipient;
//! - `bayes`: a per-account statistical classifier (Robinson–Fisher over tokens of the subject,
//!   body and a few headers), trained only from what the user does (`training`);
//! - `spamd`: an optional external SpamAssassin `spamd`, when `[spam] spamd` is configured.
//!
//! A recipient's copy goes to Junk with `$junk` when `rules + bayes ≥ threshold`, or when spamd
//! says spam.

pub mod bayes;
pub mod rules;
pub mod spamd;
pub mod tokens;
pub mod training;

use std::time::Duration;

use serde::Deserialize;

/// The `[spam]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpamConfig {
    /// Classify at all (false: everything goes to the Inbox).
    pub enabled: bool,
    /// The score from which a message is junk.
    pub threshold: f64,
    /// What the statistical classifier adds at probability 1 (and subtracts at 0); linear in
    /// between, 0 at 0.5.
    pub bayes_weight: f64,
    /// Trained spam messages an account needs before its classifier votes.
    pub bayes_min_spam: u64,
    /// `HOST:PORT` of a SpamAssassin spamd; unset: not used.
    pub spamd: Option<String>,
    pub spamd_timeout_ms: u64,
    /// Larger messages are not sent to spamd (spamc's own default is 500 KB).
    pub spamd_max_bytes: usize,
}

impl Default for SpamConfig {
    fn default() -> SpamConfig {
        SpamConfig {
            enabled: true,
            threshold: 5.0,
            bayes_weight: 6.0,
            bayes_min_spam: 1,
            spamd: None,
            spamd_timeout_ms: 10_000,
            spamd_max_bytes: 500_000,
        }
    }
}

impl SpamConfig {
    pub fn spamd_client(&self) -> Option<spamd::SpamdClient> {
        self.spamd.as_ref().map(|address| spamd::SpamdClient {
            address: address.clone(),
            timeout: Duration::from_millis(self.spamd_timeout_ms.max(1)),
            max_bytes: self.spamd_max_bytes,
        })
    }

    /// The contribution of a Bayesian probability to the score.
    pub fn bayes_score(&self, probability: Option<f64>) -> f64 {
        probability.map_or(0.0, |p| (p - 0.5) * 2.0 * self.bayes_weight)
    }
}

/// What a recipient's copy is classified as, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamVerdict {
    pub is_junk: bool,
    pub score: f64,
    pub bayes_probability: Option<f64>,
}

/// Combines the message-wide part (rules, spamd) with one account's classifier.
pub fn verdict(
    config: &SpamConfig,
    rules_score: f64,
    spamd_says_spam: bool,
    bayes_probability: Option<f64>,
) -> SpamVerdict {
    if !config.enabled {
        return SpamVerdict {
            is_junk: false,
            score: 0.0,
            bayes_probability: None,
        };
    }
    let score = rules_score + config.bayes_score(bayes_probability);
    SpamVerdict {
        is_junk: spamd_says_spam || score >= config.threshold,
        score,
        bayes_probability,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_combines_rules_and_the_classifier() {
        let config = SpamConfig::default();
        assert!(!verdict(&config, 1.0, false, None).is_junk);
        assert!(verdict(&config, 1000.0, false, None).is_junk);
        assert!(verdict(&config, 0.0, true, None).is_junk);
        // A confident classifier alone is enough; an unsure one changes nothing.
        assert!(verdict(&config, 0.0, false, Some(0.99)).is_junk);
        assert_eq!(verdict(&config, 1.0, false, Some(0.5)).score, 1.0);
        assert!(!verdict(&config, 4.0, false, Some(0.0)).is_junk);
        let disabled = SpamConfig {
            enabled: false,
            ..SpamConfig::default()
        };
        assert!(!verdict(&disabled, 1000.0, true, None).is_junk);
    }
}
