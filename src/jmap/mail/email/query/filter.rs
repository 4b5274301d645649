//! Email/query filters (RFC 8621 §4.4.1): parsed once into a tree of typed conditions, then
//! evaluated per Email. Structural conditions are answered from the Email record; text
//! conditions from the full-text index (`search`), or, for an Email the index does not know
//! yet, from its text scanned with the same words and rules (`search::query::ScannedEmail`).
//! Evaluation is three-valued: what the record and the index cannot decide is `None`, and only
//! those Emails load their text.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::mail::email::fields::{MAILBOX_ID_PREFIX, is_valid_keyword};
use crate::jmap::types::{Id, UtcDate};
use crate::mail::store::EmailRecord;
use crate::search::query::{ScannedEmail, Target, TextMatch};

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Vec<Filter>),
    Condition(Condition),
}

/// One FilterCondition property. Mailbox ids that do not parse become `u64::MAX`, which no
/// Mailbox has (an unknown Mailbox matches nothing, it is not an error).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    InMailbox(u64),
    InMailboxOtherThan(Vec<u64>),
    Before(i64),
    After(i64),
    MinSize(u64),
    MaxSize(u64),
    AllInThreadHaveKeyword(String),
    SomeInThreadHaveKeyword(String),
    NoneInThreadHaveKeyword(String),
    HasKeyword(String),
    NotKeyword(String),
    HasAttachment(bool),
    /// text, from, to, cc, bcc, subject, body and header: words that must all occur.
    Text(TextMatch),
}

fn unsupported(description: String) -> MethodError {
    MethodError::with_description(MethodErrorType::UnsupportedFilter, description)
}

fn invalid(description: String) -> MethodError {
    MethodError::invalid_arguments(description)
}

/// Parses `filter` (RFC 8620 §5.5: a FilterOperator or a FilterCondition).
pub fn parse_filter(value: &Value) -> Result<Filter, MethodError> {
    let Value::Object(members) = value else {
        return Err(invalid("a filter must be an object".into()));
    };
    if let Some(operator) = members.get("operator") {
        return parse_operator(operator, members);
    }
    let mut conditions = Vec::with_capacity(members.len());
    for (name, value) in members {
        conditions.push(Filter::Condition(parse_condition(name, value)?));
    }
    // Several properties in one FilterCondition must all match.
    Ok(match conditions.len() {
        1 => conditions.remove(0),
        _ => Filter::And(conditions),
    })
}

fn parse_operator(operator: &Value, members: &Map<String, Value>) -> Result<Filter, MethodError> {
    if members.len() != 2 {
        return Err(invalid(
            "a FilterOperator has exactly \"operator\" and \"conditions\"".into(),
        ));
    }
    let Some(Value::Array(items)) = members.get("conditions") else {
        return Err(invalid("\"conditions\" must be an array".into()));
    };
    let children = items
        .iter()
        .map(parse_filter)
        .collect::<Result<Vec<_>, _>>()?;
    match operator.as_str() {
        Some("AND") => Ok(Filter::And(children)),
        Some("OR") => Ok(Filter::Or(children)),
        Some("NOT") => Ok(Filter::Not(children)),
        _ => Err(invalid(format!("unknown operator {operator}"))),
    }
}

fn mailbox_number(value: &Value, name: &str) -> Result<u64, MethodError> {
    let Value::String(text) = value else {
        return Err(invalid(format!("{name:?} must be an Id")));
    };
    Ok(Id::parse(text)
        .ok()
        .and_then(|id| id.to_number(MAILBOX_ID_PREFIX))
        .unwrap_or(u64::MAX))
}

fn keyword(value: &Value, name: &str) -> Result<String, MethodError> {
    match value {
        Value::String(text) if is_valid_keyword(text) => Ok(text.to_lowercase()),
        _ => Err(invalid(format!("{name:?} must be a keyword"))),
    }
}

fn date(value: &Value, name: &str) -> Result<i64, MethodError> {
    value
        .as_str()
        .and_then(|text| UtcDate::parse(text).ok())
        .map(UtcDate::unix_seconds)
        .ok_or_else(|| invalid(format!("{name:?} must be a UTCDate")))
}

fn size(value: &Value, name: &str) -> Result<u64, MethodError> {
    value
        .as_u64()
        .ok_or_else(|| invalid(format!("{name:?} must be an UnsignedInt")))
}

fn text(value: &Value, name: &str, target: Target) -> Result<Condition, MethodError> {
    value
        .as_str()
        .map(|text| Condition::Text(TextMatch::words(target, text)))
        .ok_or_else(|| invalid(format!("{name:?} must be a String")))
}

fn parse_condition(name: &str, value: &Value) -> Result<Condition, MethodError> {
    Ok(match name {
        "inMailbox" => Condition::InMailbox(mailbox_number(value, name)?),
        "inMailboxOtherThan" => {
            let Value::Array(items) = value else {
                return Err(invalid("\"inMailboxOtherThan\" must be an Id[]".into()));
            };
            let ids = items
                .iter()
                .map(|item| mailbox_number(item, name))
                .collect::<Result<Vec<_>, _>>()?;
            Condition::InMailboxOtherThan(ids)
        }
        "before" => Condition::Before(date(value, name)?),
        "after" => Condition::After(date(value, name)?),
        "minSize" => Condition::MinSize(size(value, name)?),
        "maxSize" => Condition::MaxSize(size(value, name)?),
        "allInThreadHaveKeyword" => Condition::AllInThreadHaveKeyword(keyword(value, name)?),
        "someInThreadHaveKeyword" => Condition::SomeInThreadHaveKeyword(keyword(value, name)?),
        "noneInThreadHaveKeyword" => Condition::NoneInThreadHaveKeyword(keyword(value, name)?),
        "hasKeyword" => Condition::HasKeyword(keyword(value, name)?),
        "notKeyword" => Condition::NotKeyword(keyword(value, name)?),
        "hasAttachment" => Condition::HasAttachment(
            value
                .as_bool()
                .ok_or_else(|| invalid("\"hasAttachment\" must be a Boolean".into()))?,
        ),
        "text" => text(value, name, Target::Any)?,
        "from" => text(value, name, Target::From)?,
        "to" => text(value, name, Target::To)?,
        "cc" => text(value, name, Target::Cc)?,
        "bcc" => text(value, name, Target::Bcc)?,
        "subject" => text(value, name, Target::Subject)?,
        "body" => text(value, name, Target::Body)?,
        "header" => {
            // RFC 8621 §4.4.1: [name] or [name, value].
            let parts: Vec<&str> = value
                .as_array()
                .map(|items| items.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let given = value.as_array().map_or(0, Vec::len);
            if parts.is_empty() || parts.len() > 2 || parts.len() != given {
                return Err(invalid("\"header\" must be [name] or [name, value]".into()));
            }
            let header_name = parts[0].trim().to_lowercase();
            if header_name.is_empty() {
                return Err(invalid("\"header\" needs a header name".into()));
            }
            Condition::Text(TextMatch::header(&header_name, parts.get(1).copied()))
        }
        _ => return Err(unsupported(format!("unsupported filter property {name:?}"))),
    })
}

/// Per Thread: which keywords all / some of its Emails have (for the thread conditions).
#[derive(Debug, Default)]
pub struct ThreadKeywords {
    pub all: HashMap<u64, Vec<String>>,
    pub some: HashMap<u64, Vec<String>>,
}

impl ThreadKeywords {
    fn all_have(&self, thread_id: u64, keyword: &str) -> bool {
        self.all
            .get(&thread_id)
            .is_some_and(|keywords| keywords.iter().any(|k| k == keyword))
    }

    fn some_have(&self, thread_id: u64, keyword: &str) -> bool {
        self.some
            .get(&thread_id)
            .is_some_and(|keywords| keywords.iter().any(|k| k == keyword))
    }
}

/// What decides the text conditions of one Email.
#[derive(Clone, Copy)]
pub enum TextEvidence<'a> {
    /// Nothing yet: text conditions are unknown.
    Unknown,
    /// The index knows this Email: per text condition, the Emails whose document matches.
    Indexed {
        email_id: u64,
        matches: &'a HashMap<TextMatch, HashSet<u64>>,
    },
    /// The Email's own text, scanned.
    Scanned(&'a ScannedEmail),
}

impl TextEvidence<'_> {
    fn matches(&self, condition: &TextMatch) -> Option<bool> {
        match self {
            TextEvidence::Unknown => None,
            TextEvidence::Indexed { email_id, matches } => matches
                .get(condition)
                .map(|emails| emails.contains(email_id)),
            TextEvidence::Scanned(email) => Some(email.matches(condition)),
        }
    }
}

/// Evaluates `filter` on one Email. With `TextEvidence::Unknown`, text conditions are unknown
/// and the result is `None` when they decide it.
pub fn evaluate(
    filter: &Filter,
    record: &EmailRecord,
    threads: &ThreadKeywords,
    text: TextEvidence<'_>,
) -> Option<bool> {
    match filter {
        Filter::Condition(condition) => evaluate_condition(condition, record, threads, text),
        Filter::And(children) => {
            let mut result = Some(true);
            for child in children {
                match evaluate(child, record, threads, text) {
                    Some(false) => return Some(false),
                    None => result = None,
                    Some(true) => {}
                }
            }
            result
        }
        Filter::Or(children) => {
            let mut result = Some(false);
            for child in children {
                match evaluate(child, record, threads, text) {
                    Some(true) => return Some(true),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
        // RFC 8620 §5.5: NOT matches when none of the conditions match.
        Filter::Not(children) => {
            let mut result = Some(true);
            for child in children {
                match evaluate(child, record, threads, text) {
                    Some(true) => return Some(false),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
    }
}

fn evaluate_condition(
    condition: &Condition,
    record: &EmailRecord,
    threads: &ThreadKeywords,
    text: TextEvidence<'_>,
) -> Option<bool> {
    Some(match condition {
        Condition::InMailbox(mailbox_id) => record.mailbox_ids.contains(mailbox_id),
        // RFC 8621 §4.4.1: in some Mailbox that is not one of these.
        Condition::InMailboxOtherThan(excluded) => record
            .mailbox_ids
            .iter()
            .any(|mailbox_id| !excluded.contains(mailbox_id)),
        Condition::Before(seconds) => record.received_at < *seconds,
        Condition::After(seconds) => record.received_at >= *seconds,
        Condition::MinSize(size) => record.size >= *size,
        Condition::MaxSize(size) => record.size < *size,
        Condition::AllInThreadHaveKeyword(keyword) => threads.all_have(record.thread_id, keyword),
        Condition::SomeInThreadHaveKeyword(keyword) => threads.some_have(record.thread_id, keyword),
        Condition::NoneInThreadHaveKeyword(keyword) => {
            !threads.some_have(record.thread_id, keyword)
        }
        Condition::HasKeyword(keyword) => record.has_keyword(keyword),
        Condition::NotKeyword(keyword) => !record.has_keyword(keyword),
        Condition::HasAttachment(wanted) => record.has_attachment == *wanted,
        Condition::Text(condition) => text.matches(condition)?,
    })
}

/// Whether any condition of the tree needs the thread keyword sets.
pub fn uses_thread_keywords(filter: &Filter) -> bool {
    match filter {
        Filter::And(children) | Filter::Or(children) | Filter::Not(children) => {
            children.iter().any(uses_thread_keywords)
        }
        Filter::Condition(condition) => matches!(
            condition,
            Condition::AllInThreadHaveKeyword(_)
                | Condition::SomeInThreadHaveKeyword(_)
                | Condition::NoneInThreadHaveKeyword(_)
        ),
    }
}

/// Every distinct text condition of the tree (what the index is asked).
pub fn text_conditions(filter: &Filter, into: &mut Vec<TextMatch>) {
    match filter {
        Filter::And(children) | Filter::Or(children) | Filter::Not(children) => {
            for child in children {
                text_conditions(child, into);
            }
        }
        Filter::Condition(Condition::Text(condition)) => {
            if !into.contains(condition) {
                into.push(condition.clone());
            }
        }
        Filter::Condition(_) => {}
    }
}

/// The words that matching Emails show, for SearchSnippet highlighting: those of the text
/// conditions not under a NOT, split by where they may be found (subject, body).
pub fn highlight_words(filter: &Filter, subject: &mut HashSet<String>, body: &mut HashSet<String>) {
    match filter {
        Filter::And(children) | Filter::Or(children) => {
            for child in children {
                highlight_words(child, subject, body);
            }
        }
        Filter::Not(_) => {}
        Filter::Condition(Condition::Text(TextMatch::Words { target, words })) => {
            if matches!(target, Target::Any | Target::Subject) {
                subject.extend(words.iter().cloned());
            }
            if matches!(target, Target::Any | Target::Body) {
                body.extend(words.iter().cloned());
            }
        }
        Filter::Condition(_) => {}
    }
}
