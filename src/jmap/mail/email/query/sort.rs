//! Email/query sorts (RFC 8621 §4.4.2): every property of `emailQuerySortOptions`, with the
//! keyword ones taking a `keyword` member in the Comparator.

use std::cmp::Ordering;

use serde_json::Value;

use super::filter::ThreadKeywords;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::mail::email::fields::is_valid_keyword;
use crate::mail::store::EmailRecord;

/// RFC 8621 §1.3 `emailQuerySortOptions`, advertised in the session.
pub const SORT_OPTIONS: &[&str] = &[
    "receivedAt",
    "size",
    "from",
    "to",
    "subject",
    "sentAt",
    "hasKeyword",
    "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    ReceivedAt,
    Size,
    From,
    To,
    Subject,
    SentAt,
    HasKeyword(String),
    AllInThreadHaveKeyword(String),
    SomeInThreadHaveKeyword(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailComparator {
    pub key: SortKey,
    pub is_ascending: bool,
}

impl EmailComparator {
    pub fn uses_thread_keywords(&self) -> bool {
        matches!(
            self.key,
            SortKey::AllInThreadHaveKeyword(_) | SortKey::SomeInThreadHaveKeyword(_)
        )
    }
}

/// Parses `sort` (RFC 8620 §5.5 Comparator[]).
pub fn parse_sort(value: Option<Value>) -> Result<Vec<EmailComparator>, MethodError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(MethodError::invalid_arguments(
            "\"sort\" must be a Comparator[]",
        ));
    };
    items.into_iter().map(parse_comparator).collect()
}

fn parse_comparator(item: Value) -> Result<EmailComparator, MethodError> {
    let Value::Object(mut members) = item else {
        return Err(MethodError::invalid_arguments(
            "a Comparator must be an object",
        ));
    };
    let Some(Value::String(property)) = members.remove("property") else {
        return Err(MethodError::invalid_arguments(
            "a Comparator needs a String \"property\"",
        ));
    };
    let is_ascending = match members.remove("isAscending") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(flag)) => flag,
        Some(_) => {
            return Err(MethodError::invalid_arguments(
                "\"isAscending\" must be a Boolean",
            ));
        }
    };
    match members.remove("collation") {
        None | Some(Value::Null) => {}
        // RFC 8620 §5.5: a collation the server does not support is unsupportedSort.
        Some(Value::String(collation)) if COLLATIONS.contains(&collation.as_str()) => {}
        Some(_) => {
            return Err(MethodError::with_description(
                MethodErrorType::UnsupportedSort,
                "unsupported collation",
            ));
        }
    }
    let keyword = match members.remove("keyword") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if is_valid_keyword(&text) => Some(text.to_lowercase()),
        Some(_) => {
            return Err(MethodError::invalid_arguments(
                "\"keyword\" must be a keyword",
            ));
        }
    };
    crate::jmap::generic::strip_query_arguments(&mut members)?;
    if let Some(unknown) = members.keys().next() {
        return Err(MethodError::invalid_arguments(format!(
            "unknown Comparator member {unknown:?}"
        )));
    }
    let needs_keyword = |key: fn(String) -> SortKey| {
        keyword.clone().map(key).ok_or_else(|| {
            MethodError::invalid_arguments(format!("sorting by {property:?} needs \"keyword\""))
        })
    };
    let key = match property.as_str() {
        "receivedAt" => SortKey::ReceivedAt,
        "size" => SortKey::Size,
        "from" => SortKey::From,
        "to" => SortKey::To,
        "subject" => SortKey::Subject,
        "sentAt" => SortKey::SentAt,
        "hasKeyword" => needs_keyword(SortKey::HasKeyword)?,
        "allInThreadHaveKeyword" => needs_keyword(SortKey::AllInThreadHaveKeyword)?,
        "someInThreadHaveKeyword" => needs_keyword(SortKey::SomeInThreadHaveKeyword)?,
        _ => {
            return Err(MethodError::with_description(
                MethodErrorType::UnsupportedSort,
                format!("cannot sort by {property:?}"),
            ));
        }
    };
    Ok(EmailComparator { key, is_ascending })
}

/// The collations text sorts accept; all compare the lower-cased keys the record keeps.
const COLLATIONS: &[&str] = &["i;unicode-casemap", "i;ascii-casemap", "i;octet"];

/// Compares two Emails by the comparators, then by id so the order is total and stable
/// across calls (RFC 8620 §5.5 leaves ties to the server; /queryChanges needs them fixed).
pub fn compare(
    comparators: &[EmailComparator],
    threads: &ThreadKeywords,
    (left_id, left): (u64, &EmailRecord),
    (right_id, right): (u64, &EmailRecord),
) -> Ordering {
    for comparator in comparators {
        let ordering = match &comparator.key {
            SortKey::ReceivedAt => left.received_at.cmp(&right.received_at),
            SortKey::Size => left.size.cmp(&right.size),
            SortKey::From => left.from_sort.cmp(&right.from_sort),
            SortKey::To => left.to_sort.cmp(&right.to_sort),
            SortKey::Subject => left.base_subject.cmp(&right.base_subject),
            SortKey::SentAt => left.sent_at.cmp(&right.sent_at),
            SortKey::HasKeyword(keyword) => {
                left.has_keyword(keyword).cmp(&right.has_keyword(keyword))
            }
            SortKey::AllInThreadHaveKeyword(keyword) => threads
                .all
                .get(&left.thread_id)
                .is_some_and(|k| k.contains(keyword))
                .cmp(
                    &threads
                        .all
                        .get(&right.thread_id)
                        .is_some_and(|k| k.contains(keyword)),
                ),
            SortKey::SomeInThreadHaveKeyword(keyword) => threads
                .some
                .get(&left.thread_id)
                .is_some_and(|k| k.contains(keyword))
                .cmp(
                    &threads
                        .some
                        .get(&right.thread_id)
                        .is_some_and(|k| k.contains(keyword)),
                ),
        };
        let ordering = if comparator.is_ascending {
            ordering
        } else {
            ordering.reverse()
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    // Ties follow the direction of the first comparator, so that the index order of the
    // mailbox lists (received_at, id) matches the general path exactly.
    let ascending = comparators.first().is_none_or(|first| first.is_ascending);
    if ascending {
        left_id.cmp(&right_id)
    } else {
        right_id.cmp(&left_id)
    }
}
