//! The features the statistical classifier counts: lowercase words of the subject (marked
//! apart from body words), of the text and HTML bodies (tags stripped), the From domain, the
//! domains of links, and a few header facts. Each becomes a stable 64-bit hash (FNV-1a), so
//! the store holds fixed-width keys and never the words themselves.

use std::collections::BTreeSet;

use mail_parser::{HeaderName, Message, MessageParser};

/// At most this many distinct tokens per message, so training and classifying stay bounded
/// (far under FoundationDB's transaction limits: two small keys per token).
pub const MAX_TOKENS: usize = 400;
/// At most this much body text is read.
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// FNV-1a 64: stable across builds and platforms, unlike `DefaultHasher`.
pub fn token_hash(kind: &str, word: &str) -> u64 {
    fnv1a(kind, word.bytes())
}

fn fnv1a(kind: &str, word: impl Iterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in kind.bytes().chain([0u8]).chain(word) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `token_hash(kind, &word.to_lowercase())` without allocating for ASCII words (most).
fn lowercase_token_hash(kind: &str, word: &str) -> u64 {
    if word.is_ascii() {
        fnv1a(kind, word.bytes().map(|byte| byte.to_ascii_lowercase()))
    } else {
        token_hash(kind, &word.to_lowercase())
    }
}

/// The token hashes of a raw message (deduplicated, at most [`MAX_TOKENS`]).
pub fn tokenize(raw: &[u8]) -> BTreeSet<u64> {
    let Some(message) = MessageParser::default().parse(raw) else {
        return BTreeSet::new();
    };
    tokenize_message(&message)
}

/// The tokens of a parsed message. Stops reading once [`MAX_TOKENS`] were found; the HTML
/// body is read only when the message has one (mail-parser would render a text body as HTML,
/// which adds no word).
pub fn tokenize_message(message: &Message<'_>) -> BTreeSet<u64> {
    let mut tokens = BTreeSet::new();
    let mut add = |kind: &str, word: &str| {
        if tokens.len() < MAX_TOKENS {
            tokens.insert(token_hash(kind, word));
        }
    };
    if let Some(subject) = message.subject() {
        for word in words(subject) {
            add("s", &word);
        }
    }
    if let Some(from) = message.from().and_then(|from| from.first())
        && let Some((_, domain)) = from.address().and_then(|a| a.rsplit_once('@'))
    {
        add("fd", &domain.to_lowercase());
    }
    for header in message.headers() {
        if let HeaderName::Other(name) = &header.name
            && name.len() <= 40
        {
            add("h", &name.to_lowercase());
        }
    }
    let mut text = String::new();
    if let Some(body) = message.body_text(0) {
        text.push_str(&body[..floor_char_boundary(&body, MAX_TEXT_BYTES)]);
    }
    let html_part = message
        .html_body
        .first()
        .and_then(|id| message.part(*id))
        .filter(|part| part.is_text_html());
    if html_part.is_some()
        && let Some(html) = message.body_html(0)
    {
        let html = &html[..floor_char_boundary(&html, MAX_TEXT_BYTES)];
        for domain in link_domains(html) {
            add("u", &domain);
        }
        text.push(' ');
        text.push_str(&strip_tags(html));
    }
    for domain in link_domains(&text) {
        add("u", &domain);
    }
    for word in raw_words(&text) {
        if tokens.len() >= MAX_TOKENS {
            break;
        }
        tokens.insert(lowercase_token_hash("w", word));
    }
    tokens
}

fn floor_char_boundary(text: &str, limit: usize) -> usize {
    if text.len() <= limit {
        return text.len();
    }
    (0..=limit)
        .rev()
        .find(|index| text.is_char_boundary(*index))
        .unwrap_or(0)
}

/// Words of 3 to 24 characters, lowercased; digits-only runs are skipped.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    raw_words(text).map(str::to_lowercase)
}

/// [`words`] before lowercasing.
fn raw_words(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '$' || c == '\''))
        .map(|word| word.trim_matches('\''))
        .filter(|word| {
            let length = word.chars().count();
            (3..=24).contains(&length) && !word.chars().all(|c| c.is_ascii_digit())
        })
}

fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// Host names after `http://` or `https://`.
fn link_domains(text: &str) -> Vec<String> {
    let mut domains = Vec::new();
    for (index, _) in text.match_indices("http") {
        let rest = &text[index + 4..];
        let rest = rest.strip_prefix('s').unwrap_or(rest);
        let Some(rest) = rest.strip_prefix("://") else {
            continue;
        };
        let host: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '-')
            .take(100)
            .collect();
        if host.contains('.') {
            domains.push(host.to_lowercase());
        }
    }
    domains
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_and_body_words_are_distinct_features() {
        let raw = b"From: a@spam.example\r\nSubject: Cheap pills\r\n\r\ncheap pills at https://pills.example/buy now 12345\r\n";
        let tokens = tokenize(raw);
        assert!(tokens.contains(&token_hash("s", "cheap")));
        assert!(tokens.contains(&token_hash("w", "cheap")));
        assert!(tokens.contains(&token_hash("fd", "spam.example")));
        assert!(tokens.contains(&token_hash("u", "pills.example")));
        assert!(!tokens.contains(&token_hash("w", "12345")));
        assert_ne!(token_hash("s", "cheap"), token_hash("w", "cheap"));
    }

    #[test]
    fn words_hash_as_their_lowercase_form() {
        for word in ["Cheap", "PILLS", "déjà", "ÉTÉ", "mixed123"] {
            assert_eq!(
                lowercase_token_hash("w", word),
                token_hash("w", &word.to_lowercase()),
                "{word}"
            );
        }
        let raw = "Subject: x\r\n\r\nCheap PILLS Déjà\r\n".as_bytes();
        let tokens = tokenize(raw);
        for word in ["cheap", "pills", "déjà"] {
            assert!(tokens.contains(&token_hash("w", word)), "{word}");
        }
    }

    #[test]
    fn html_is_stripped_and_the_count_is_bounded() {
        let mut body = String::from("<p>Hello <b>world</b></p>");
        for index in 0..2000 {
            body.push_str(&format!(" word{index}x"));
        }
        let raw = format!("Subject: x\r\nContent-Type: text/html\r\n\r\n{body}\r\n");
        let tokens = tokenize(raw.as_bytes());
        assert!(tokens.contains(&token_hash("w", "hello")));
        assert!(!tokens.contains(&token_hash("w", "p")));
        assert_eq!(tokens.len(), MAX_TOKENS);
    }
}
