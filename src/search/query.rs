//! Text conditions as the index understands them: the same words matched the same way by the
//! index (`to_query`) and by a scan of an Email not yet indexed (`ScannedEmail::matches`).
//!
//! Semantics: a condition matches when every word of its text occurs in one of the fields it
//! names (a word is what `schema::words` makes of it: lower-cased, accents folded). A text
//! without any word (only punctuation) matches every Email, as the empty substring would.

use std::collections::HashSet;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, Term};

use super::document::EmailContent;
use super::schema::{self, Fields};

/// Which fields a text condition looks in (RFC 8621 §4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `text`: the addresses, the subject, and every body part that can be read as text.
    Any,
    From,
    To,
    Cc,
    Bcc,
    Subject,
    /// `body`: the body parts, attachments that are text included.
    Body,
}

/// One text condition of an Email/query filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TextMatch {
    Words {
        target: Target,
        words: Vec<String>,
    },
    /// `header`: the (lower-case) field name, and the words its value must hold (none: the
    /// field exists).
    Header {
        name: String,
        words: Vec<String>,
    },
}

impl TextMatch {
    pub fn words(target: Target, text: &str) -> TextMatch {
        TextMatch::Words {
            target,
            words: schema::words(text),
        }
    }

    pub fn header(name: &str, value: Option<&str>) -> TextMatch {
        TextMatch::Header {
            name: name.trim().to_lowercase(),
            words: value.map(schema::words).unwrap_or_default(),
        }
    }
}

fn target_fields(fields: &Fields, target: Target) -> Vec<Field> {
    match target {
        Target::Any => vec![
            fields.subject,
            fields.from,
            fields.to,
            fields.cc,
            fields.bcc,
            fields.body,
            fields.attachment_text,
            fields.attachment_name,
        ],
        Target::From => vec![fields.from],
        Target::To => vec![fields.to],
        Target::Cc => vec![fields.cc],
        Target::Bcc => vec![fields.bcc],
        Target::Subject => vec![fields.subject],
        Target::Body => vec![fields.body, fields.attachment_text],
    }
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// The tantivy query for `condition` within one account.
pub fn to_query(fields: &Fields, account_id: u32, condition: &TextMatch) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
        Occur::Must,
        term_query(Term::from_field_u64(fields.account, u64::from(account_id))),
    )];
    match condition {
        TextMatch::Words { target, words } => {
            let targets = target_fields(fields, *target);
            for word in words {
                let alternatives: Vec<(Occur, Box<dyn Query>)> = targets
                    .iter()
                    .map(|field| {
                        (
                            Occur::Should,
                            term_query(Term::from_field_text(*field, word)),
                        )
                    })
                    .collect();
                clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
            }
        }
        TextMatch::Header { name, words } => {
            clauses.push((
                Occur::Must,
                term_query(Term::from_field_text(fields.header, name)),
            ));
            for word in words {
                let term = format!("{name}:{word}");
                clauses.push((
                    Occur::Must,
                    term_query(Term::from_field_text(fields.header, &term)),
                ));
            }
        }
    }
    Box::new(BooleanQuery::new(clauses))
}

/// Collects the Email ids (the `email` fast field) of every matching document.
pub struct EmailIds;

pub struct SegmentEmailIds {
    column: Column<u64>,
    ids: Vec<u64>,
}

impl Collector for EmailIds {
    type Fruit = Vec<u64>;
    type Child = SegmentEmailIds;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentEmailIds> {
        Ok(SegmentEmailIds {
            column: reader.fast_fields().u64("email")?,
            ids: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        Ok(fruits.concat())
    }
}

impl SegmentCollector for SegmentEmailIds {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(id) = self.column.first(doc) {
            self.ids.push(id);
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.ids
    }
}

/// The words of an Email, per field, for matching without the index.
#[derive(Debug, Default)]
pub struct ScannedEmail {
    subject: HashSet<String>,
    from: HashSet<String>,
    to: HashSet<String>,
    cc: HashSet<String>,
    bcc: HashSet<String>,
    body: HashSet<String>,
    attachment_text: HashSet<String>,
    attachment_names: HashSet<String>,
    headers: HashSet<String>,
}

fn word_set(text: &str) -> HashSet<String> {
    schema::words(text).into_iter().collect()
}

impl ScannedEmail {
    pub fn new(content: &EmailContent) -> ScannedEmail {
        ScannedEmail {
            subject: word_set(&content.subject),
            from: word_set(&content.from),
            to: word_set(&content.to),
            cc: word_set(&content.cc),
            bcc: word_set(&content.bcc),
            body: word_set(&content.body),
            attachment_text: word_set(&content.attachment_text),
            attachment_names: word_set(&content.attachment_names),
            headers: content
                .headers
                .iter()
                .flat_map(|(name, value)| schema::header_terms(name, value))
                .collect(),
        }
    }

    fn sets(&self, target: Target) -> Vec<&HashSet<String>> {
        match target {
            Target::Any => vec![
                &self.subject,
                &self.from,
                &self.to,
                &self.cc,
                &self.bcc,
                &self.body,
                &self.attachment_text,
                &self.attachment_names,
            ],
            Target::From => vec![&self.from],
            Target::To => vec![&self.to],
            Target::Cc => vec![&self.cc],
            Target::Bcc => vec![&self.bcc],
            Target::Subject => vec![&self.subject],
            Target::Body => vec![&self.body, &self.attachment_text],
        }
    }

    pub fn matches(&self, condition: &TextMatch) -> bool {
        match condition {
            TextMatch::Words { target, words } => {
                let sets = self.sets(*target);
                words
                    .iter()
                    .all(|word| sets.iter().any(|set| set.contains(word)))
            }
            TextMatch::Header { name, words } => {
                self.headers.contains(name)
                    && words
                        .iter()
                        .all(|word| self.headers.contains(&format!("{name}:{word}")))
            }
        }
    }
}
