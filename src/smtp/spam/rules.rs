//! Fixed rules, scored like SpamAssassin's (the default threshold is 5): each hit adds its
//! score, and the names of the hits go into the `X-Tern-Spam` trace header.

use mail_parser::{HeaderName, Message};

/// The GTUBE test string (the spam equivalent of EICAR): always junk.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// What authentication found, as the rules need it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthSummary {
    pub spf_fail: bool,
    pub spf_softfail: bool,
    /// A DKIM signature was present and did not verify.
    pub dkim_fail: bool,
    pub dmarc_fail: bool,
    /// The failing domain publishes `p=reject` or `p=quarantine`.
    pub dmarc_enforced: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesOutcome {
    pub score: f64,
    pub hits: Vec<&'static str>,
}

impl RulesOutcome {
    fn hit(&mut self, name: &'static str, score: f64) {
        self.score += score;
        self.hits.push(name);
    }
}

/// Runs every rule on a message (`message` is `None` when it did not parse at all).
pub fn evaluate(raw: &[u8], message: Option<&Message<'_>>, auth: AuthSummary) -> RulesOutcome {
    let mut outcome = RulesOutcome::default();
    if memchr_find(raw, GTUBE.as_bytes()) {
        outcome.hit("GTUBE", 1000.0);
    }
    if auth.dmarc_fail {
        if auth.dmarc_enforced {
            outcome.hit("DMARC_FAIL_ENFORCED", 5.0);
        } else {
            outcome.hit("DMARC_FAIL", 2.5);
        }
    }
    if auth.spf_fail {
        outcome.hit("SPF_FAIL", 2.0);
    } else if auth.spf_softfail {
        outcome.hit("SPF_SOFTFAIL", 0.7);
    }
    if auth.dkim_fail {
        outcome.hit("DKIM_INVALID", 1.5);
    }
    let Some(message) = message else {
        outcome.hit("NOT_A_MESSAGE", 3.0);
        return outcome;
    };
    let has = |name: HeaderName<'_>| message.headers().iter().any(|h| h.name == name);
    if !has(HeaderName::MessageId) {
        outcome.hit("MISSING_MESSAGE_ID", 1.0);
    }
    if !has(HeaderName::Date) {
        outcome.hit("MISSING_DATE", 1.0);
    }
    if !has(HeaderName::From) {
        outcome.hit("MISSING_FROM", 2.0);
    }
    match message.subject() {
        None => outcome.hit("MISSING_SUBJECT", 0.5),
        Some(subject) => {
            let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
            if letters.len() >= 10 && letters.iter().all(|c| c.is_uppercase()) {
                outcome.hit("SUBJECT_ALL_CAPS", 1.0);
            }
        }
    }
    outcome
}

/// Whether `needle` occurs in `haystack`: a scan for its first byte, and a comparison only
/// there (comparing every window cost a `memcmp` call per byte of every message).
fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut start = 0;
    while let Some(offset) = haystack[start..].iter().position(|&byte| byte == first) {
        let at = start + offset;
        if haystack.len() - at < needle.len() {
            return false;
        }
        if &haystack[at + 1..at + needle.len()] == rest {
            return true;
        }
        start = at + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn substring_search_finds_only_whole_needles() {
        assert!(memchr_find(b"xxabcxx", b"abc"));
        assert!(memchr_find(b"abc", b"abc"));
        assert!(memchr_find(b"aababc", b"abc"));
        assert!(!memchr_find(b"ab", b"abc"));
        assert!(!memchr_find(b"xxabxabd", b"abc"));
        assert!(memchr_find(b"anything", b""));
    }

    fn run(raw: &str, auth: AuthSummary) -> RulesOutcome {
        let message = MessageParser::default().parse(raw.as_bytes());
        evaluate(raw.as_bytes(), message.as_ref(), auth)
    }

    #[test]
    fn a_complete_message_hits_nothing() {
        let raw = "From: a@b.example\r\nDate: Sun, 22 Nov 2026 07:00:00 +0000\r\nMessage-ID: <1@b.example>\r\nSubject: Lunch?\r\n\r\nHi\r\n";
        assert_eq!(run(raw, AuthSummary::default()), RulesOutcome::default());
    }

    #[test]
    fn gtube_missing_headers_and_failed_dmarc_score() {
        let raw = format!("Subject: FREE MONEY NOW!!!\r\n\r\n{GTUBE}\r\n");
        let outcome = run(
            &raw,
            AuthSummary {
                dmarc_fail: true,
                dmarc_enforced: true,
                ..AuthSummary::default()
            },
        );
        for rule in [
            "GTUBE",
            "DMARC_FAIL_ENFORCED",
            "MISSING_MESSAGE_ID",
            "MISSING_DATE",
            "MISSING_FROM",
            "SUBJECT_ALL_CAPS",
        ] {
            assert!(outcome.hits.contains(&rule), "{rule}: {:?}", outcome.hits);
        }
        assert!(outcome.score > 1000.0);
    }
}
