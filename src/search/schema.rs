//! The tantivy schema of the Email index and the one text analyzer used for indexing, for
//! queries and for snippet highlighting, so the three always agree on what a word is.
//!
//! Words: tantivy's `SimpleTokenizer` splits on every non-alphanumeric character (Unicode
//! aware: `char::is_alphanumeric`), then lower-casing and ASCII folding (`é` → `e`, `ß` →
//! `ss`), so `Résumé`, `resume` and `RESUME` are one word. Words over 40 bytes (base64,
//! hashes) are dropped: nobody searches them and they bloat the term dictionary. No stemming
//! and no CJK n-grams (`schema/search.md` says why).

use tantivy::schema::{
    BytesOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TokenStream,
};

/// The name the analyzer is registered under in the index's tokenizer manager.
pub const ANALYZER: &str = "tern";
/// Header terms are stored as they are built (`name` and `name:word`), not re-tokenized.
const RAW: &str = "raw";
const MAX_WORD_BYTES: usize = 40;

/// The analyzer: words, lower-cased, accents folded.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The words of `text`, as the index sees them, in order.
pub fn words(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while stream.advance() {
        words.push(stream.token().text.clone());
    }
    words
}

/// The fields of the index, resolved once.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// `account_id: u32 BE ++ email_id: u64 BE`: one term per document, for delete-by-term.
    pub uid: Field,
    /// The account id, indexed: every query is confined to one account by this term.
    pub account: Field,
    /// The Email id, a fast field: what a query collects.
    pub email: Field,
    pub subject: Field,
    pub from: Field,
    pub to: Field,
    pub cc: Field,
    pub bcc: Field,
    /// textBody and htmlBody (HTML turned into text).
    pub body: Field,
    /// Text of text/* attachments.
    pub attachment_text: Field,
    /// Attachment file names.
    pub attachment_name: Field,
    /// Top-level header terms: `name` and `name:word` for each word of its value.
    pub header: Field,
}

/// The schema and its fields.
pub fn build() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    // Only "which documents contain the word" is ever asked: no frequencies, positions or
    // field norms (no scoring, no phrase queries), which keeps the index small.
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let raw = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(RAW)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let uid = builder.add_bytes_field("uid", BytesOptions::default().set_indexed());
    let account = builder.add_u64_field("account", NumericOptions::default().set_indexed());
    let email = builder.add_u64_field("email", NumericOptions::default().set_fast());
    let fields = Fields {
        uid,
        account,
        email,
        subject: builder.add_text_field("subject", text.clone()),
        from: builder.add_text_field("from", text.clone()),
        to: builder.add_text_field("to", text.clone()),
        cc: builder.add_text_field("cc", text.clone()),
        bcc: builder.add_text_field("bcc", text.clone()),
        body: builder.add_text_field("body", text.clone()),
        attachment_text: builder.add_text_field("attachment_text", text.clone()),
        attachment_name: builder.add_text_field("attachment_name", text),
        header: builder.add_text_field("header", raw),
    };
    (builder.build(), fields)
}

/// The delete-by-term key of one Email.
pub fn uid(account_id: u32, email_id: u64) -> [u8; 12] {
    let mut uid = [0u8; 12];
    uid[..4].copy_from_slice(&account_id.to_be_bytes());
    uid[4..].copy_from_slice(&email_id.to_be_bytes());
    uid
}

/// The header terms of one header field: its lower-case name, and `name:word` per word.
pub fn header_terms(name: &str, value: &str) -> Vec<String> {
    let name = name.trim().to_lowercase();
    let mut terms = vec![name.clone()];
    terms.extend(
        words(value)
            .into_iter()
            .map(|word| format!("{name}:{word}")),
    );
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_cased_and_folded_unicode_aware() {
        assert_eq!(
            words("Résumé, RESUME; naïve-Zoë Straße 東京"),
            vec!["resume", "resume", "naive", "zoe", "strasse", "東京"]
        );
        assert_eq!(words("bob@example.test"), vec!["bob", "example", "test"]);
        assert!(words(&"x".repeat(60)).is_empty());
    }

    #[test]
    fn header_terms_carry_the_name() {
        assert_eq!(
            header_terms("X-Tag", "Blue  Moon"),
            vec!["x-tag", "x-tag:blue", "x-tag:moon"]
        );
    }
}
