//! EmailSubmission/query's filter and sort (RFC 8621 §7.3), evaluated over the account's
//! submission records (read in one range; an account keeps few, since they are records of
//! recent sending).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::IDENTITY_ID_PREFIX;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::Comparator;
use crate::jmap::generic::filter_tree::FilterTree;
use crate::jmap::mail::email::fields::{EMAIL_ID_PREFIX, THREAD_ID_PREFIX};
use crate::jmap::types::{Id, UtcDate};
use crate::mail::submission::{self, SubmissionRecord, UndoStatus};
use crate::store::{StoreResult, Transaction};

/// One FilterCondition (RFC 8621 §7.3). Every member given must match.
#[derive(Debug, Default)]
struct Condition {
    identity_ids: Option<Vec<u64>>,
    email_ids: Option<Vec<u64>>,
    thread_ids: Option<Vec<u64>>,
    undo_status: Option<UndoStatus>,
    /// sendAt < before (unix seconds).
    before: Option<i64>,
    /// sendAt >= after.
    after: Option<i64>,
    /// A condition that can match nothing (e.g. an unknown undoStatus value).
    matches_nothing: bool,
}

type Filter = FilterTree<Condition>;

#[derive(Debug, Clone, Copy)]
enum SortKey {
    EmailId,
    ThreadId,
    SentAt,
}

pub async fn query(
    tx: &mut dyn Transaction,
    account_id: u32,
    filter: Option<&Value>,
    sort: &[Comparator],
) -> StoreResult<Result<Vec<u64>, MethodError>> {
    let filter = match filter.map(parse_filter).transpose() {
        Ok(filter) => filter,
        Err(error) => return Ok(Err(error)),
    };
    let sort = match parse_sort(sort) {
        Ok(sort) => sort,
        Err(error) => return Ok(Err(error)),
    };
    let mut found: Vec<(u64, SubmissionRecord)> = submission::load_all(tx, account_id)
        .await?
        .into_iter()
        .filter(|(_, record)| filter.as_ref().is_none_or(|f| matches(f, record)))
        .collect();
    found.sort_by(|(left_id, left), (right_id, right)| {
        sort.iter()
            .map(|(key, ascending)| {
                let order = match key {
                    SortKey::EmailId => left.email_id.cmp(&right.email_id),
                    SortKey::ThreadId => left.thread_id.cmp(&right.thread_id),
                    SortKey::SentAt => left.send_at.cmp(&right.send_at),
                };
                if *ascending { order } else { order.reverse() }
            })
            .find(|order| *order != Ordering::Equal)
            // A stable total order: creation order breaks ties.
            .unwrap_or_else(|| left_id.cmp(right_id))
    });
    Ok(Ok(found.into_iter().map(|(id, _)| id).collect()))
}

fn parse_sort(sort: &[Comparator]) -> Result<Vec<(SortKey, bool)>, MethodError> {
    sort.iter()
        .map(|comparator| {
            let key = match comparator.property.as_str() {
                "emailId" => SortKey::EmailId,
                "threadId" => SortKey::ThreadId,
                // RFC 8621 §7.3 names the sendAt sort "sentAt".
                "sentAt" | "sendAt" => SortKey::SentAt,
                other => {
                    return Err(MethodError::with_description(
                        MethodErrorType::UnsupportedSort,
                        format!("EmailSubmission/query cannot sort by {other:?}"),
                    ));
                }
            };
            Ok((key, comparator.is_ascending))
        })
        .collect()
}

fn parse_filter(filter: &Value) -> Result<Filter, MethodError> {
    FilterTree::parse(filter, &parse_condition)
}

fn parse_condition(members: &Map<String, Value>) -> Result<Condition, MethodError> {
    let mut condition = Condition::default();
    for (property, value) in members {
        match property.as_str() {
            "identityIds" => {
                condition.identity_ids = Some(id_list(property, value, IDENTITY_ID_PREFIX)?)
            }
            "emailIds" => condition.email_ids = Some(id_list(property, value, EMAIL_ID_PREFIX)?),
            "threadIds" => condition.thread_ids = Some(id_list(property, value, THREAD_ID_PREFIX)?),
            "undoStatus" => {
                let Value::String(status) = value else {
                    return Err(wrong_type(property, "a String"));
                };
                match UndoStatus::from_name(status) {
                    Some(status) => condition.undo_status = Some(status),
                    None => condition.matches_nothing = true,
                }
            }
            "before" | "after" => {
                let seconds = value
                    .as_str()
                    .and_then(|text| UtcDate::parse(text).ok())
                    .map(UtcDate::unix_seconds)
                    .ok_or_else(|| wrong_type(property, "a UTCDate"))?;
                if property == "before" {
                    condition.before = Some(seconds);
                } else {
                    condition.after = Some(seconds);
                }
            }
            // RFC 8620 §5.5: a condition the server does not know is unsupportedFilter.
            _ => {
                return Err(MethodError::with_description(
                    MethodErrorType::UnsupportedFilter,
                    format!("EmailSubmission/query cannot filter on {property:?}"),
                ));
            }
        }
    }
    Ok(condition)
}

fn wrong_type(property: &str, expected: &str) -> MethodError {
    MethodError::invalid_arguments(format!("filter {property:?} must be {expected}"))
}

/// An `Id[]`; ids that cannot be ours (another prefix) match nothing, so they are dropped.
fn id_list(property: &str, value: &Value, prefix: char) -> Result<Vec<u64>, MethodError> {
    let Value::Array(items) = value else {
        return Err(wrong_type(property, "an Id[]"));
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .and_then(|text| Id::parse(text).ok())
                .map(|id| id.to_number(prefix))
                .ok_or_else(|| wrong_type(property, "an Id[]"))
        })
        .filter_map(Result::transpose)
        .collect()
}

fn matches(filter: &Filter, record: &SubmissionRecord) -> bool {
    filter.matches(&|condition| condition_matches(condition, record))
}

fn condition_matches(condition: &Condition, record: &SubmissionRecord) -> bool {
    let in_list =
        |list: &Option<Vec<u64>>, value: u64| list.as_ref().is_none_or(|ids| ids.contains(&value));
    !condition.matches_nothing
        && in_list(&condition.identity_ids, record.identity_id)
        && in_list(&condition.email_ids, record.email_id)
        && in_list(&condition.thread_ids, record.thread_id)
        && condition
            .undo_status
            .is_none_or(|status| status == record.undo_status)
        && condition
            .before
            .is_none_or(|before| record.send_at < before)
        && condition.after.is_none_or(|after| record.send_at >= after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::submission::{Envelope, EnvelopeAddress};
    use serde_json::json;

    fn record(email_id: u64, thread_id: u64, send_at: i64, undo: UndoStatus) -> SubmissionRecord {
        SubmissionRecord {
            identity_id: 1,
            email_id,
            thread_id,
            envelope: Envelope {
                mail_from: EnvelopeAddress::plain("a@example.test"),
                rcpt_to: vec![EnvelopeAddress::plain("b@example.org")],
            },
            send_at,
            undo_status: undo,
            delivery_status: Vec::new(),
            dsn_blobs: Vec::new(),
            mdn_blobs: Vec::new(),
            outbound_id: None,
        }
    }

    #[test]
    fn conditions_and_operators_match_as_rfc_8621_section_7_3_says() {
        let pending = record(5, 9, 1_000, UndoStatus::Pending);
        let at = |seconds| UtcDate::from_unix(seconds, 0).unwrap().to_string();
        let check = |filter: Value| matches(&parse_filter(&filter).expect("valid"), &pending);
        assert!(check(json!({"emailIds": ["e5", "e6"]})));
        assert!(!check(json!({"emailIds": ["e6", "t5"]})));
        assert!(check(json!({"threadIds": ["t9"], "identityIds": ["i1"]})));
        assert!(check(json!({"undoStatus": "pending"})));
        assert!(!check(json!({"undoStatus": "final"})));
        assert!(!check(json!({"undoStatus": "sent"})));
        assert!(check(json!({"before": at(1_001), "after": at(1_000)})));
        assert!(!check(json!({"before": at(1_000)})));
        assert!(check(
            json!({"operator": "NOT", "conditions": [{"undoStatus": "canceled"}]})
        ));
        assert!(check(
            json!({"operator": "OR", "conditions": [{"emailIds": []}, {"threadIds": ["t9"]}]})
        ));
        assert!(parse_filter(&json!({"subject": "x"})).is_err());
        assert!(parse_filter(&json!({"before": "yesterday"})).is_err());
    }
}
