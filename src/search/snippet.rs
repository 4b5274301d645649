//! SearchSnippet text (RFC 8621 §5.1): the subject, or the relevant section of the body, with
//! `&`, `<` and `>` replaced by HTML entities and the words that matched the filter wrapped
//! in `<mark></mark>`. Words are found with the index's analyzer, so what is marked is exactly
//! what matched (accents and case folded).

use std::collections::HashSet;

use tantivy::tokenizer::TokenStream;

use super::schema;

/// RFC 8621 §5.1: the preview "MUST NOT be bigger than 255 octets in size".
pub const MAX_PREVIEW_BYTES: usize = 255;
/// How much text before the first match the preview keeps, for context.
const CONTEXT_BEFORE_BYTES: usize = 40;

/// (start, end, word) of every word of `text`.
fn tokens(text: &str) -> Vec<(usize, usize, String)> {
    let mut analyzer = schema::analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        let token = stream.token();
        tokens.push((token.offset_from, token.offset_to, token.text.clone()));
    }
    tokens
}

fn push_escaped(out: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(character),
        }
    }
}

fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

/// Renders `text[from..]`, marking matched words, within `max_bytes` if given (cut between
/// characters or before a word, never inside an entity or a mark).
fn render(
    text: &str,
    tokens: &[(usize, usize, String)],
    words: &HashSet<String>,
    from: usize,
    max_bytes: Option<usize>,
) -> String {
    let max = max_bytes.unwrap_or(usize::MAX);
    let mut out = String::new();
    let mut position = from;
    let fits = |out: &String, piece: &str| out.len() + piece.len() <= max;
    for (start, end, word) in tokens.iter().filter(|(start, _, _)| *start >= from) {
        for character in text[position..*start].chars() {
            let piece = escaped(character.encode_utf8(&mut [0u8; 4]));
            if !fits(&out, &piece) {
                return out;
            }
            out.push_str(&piece);
        }
        let original = escaped(&text[*start..*end]);
        let piece = if words.contains(word) {
            format!("<mark>{original}</mark>")
        } else {
            original
        };
        if !fits(&out, &piece) {
            return out;
        }
        out.push_str(&piece);
        position = *end;
    }
    for character in text[position..].chars() {
        let piece = escaped(character.encode_utf8(&mut [0u8; 4]));
        if !fits(&out, &piece) {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The subject with its matching words marked; `None` when no word matches.
pub fn mark_subject(subject: &str, words: &HashSet<String>) -> Option<String> {
    let tokens = tokens(subject);
    if !tokens.iter().any(|(_, _, word)| words.contains(word)) {
        return None;
    }
    Some(render(subject, &tokens, words, 0, None))
}

fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(1 << 20));
    let mut pending_space = false;
    for character in text.chars() {
        if character.is_whitespace() || character.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(character);
    }
    out
}

/// The part of `body` around its first matching word, marked, at most 255 octets; `None` when
/// no word matches.
pub fn preview(body: &str, words: &HashSet<String>) -> Option<String> {
    let text = collapse_whitespace(body);
    let tokens = tokens(&text);
    let (first_match, _, _) = tokens.iter().find(|(_, _, word)| words.contains(word))?;
    // Some context before the match, starting at a word boundary.
    let mut from = first_match.saturating_sub(CONTEXT_BEFORE_BYTES);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    if from > 0
        && let Some(space) = text[from..*first_match].find(' ')
    {
        from += space + 1;
    }
    Some(render(&text, &tokens, words, from, Some(MAX_PREVIEW_BYTES)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> HashSet<String> {
        list.iter().map(|word| (*word).to_owned()).collect()
    }

    #[test]
    fn subject_is_escaped_and_marked() {
        assert_eq!(
            mark_subject("Café <Résumé> & more", &words(&["resume"])).as_deref(),
            Some("Café &lt;<mark>Résumé</mark>&gt; &amp; more")
        );
        assert_eq!(mark_subject("Nothing here", &words(&["resume"])), None);
    }

    #[test]
    fn preview_is_bounded_and_starts_near_the_match() {
        let body = format!(
            "{} the needle is here {}",
            "filler ".repeat(100),
            "after ".repeat(100)
        );
        let preview = preview(&body, &words(&["needle"])).expect("a match");
        assert!(preview.len() <= MAX_PREVIEW_BYTES, "{}", preview.len());
        assert!(preview.contains("<mark>needle</mark>"), "{preview}");
        assert!(preview.starts_with("filler"), "{preview}");
        assert!(preview.find("<mark>").expect("mark") <= CONTEXT_BEFORE_BYTES + 1);
        let escaped = super::preview("a < b & c\n\nwords", &words(&["words"])).expect("match");
        assert_eq!(escaped, "a &lt; b &amp; c <mark>words</mark>");
    }
}
