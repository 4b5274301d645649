//! Mailbox/query's filter and sort (RFC 8621 §2.3), evaluated over the account's Mailboxes
//! (a few dozen; all are read in one range read).

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ID_PREFIX;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::Comparator;
use crate::jmap::generic::filter_tree::FilterTree;
use crate::jmap::types::Id;
use crate::mail::mailbox::Mailbox;
use crate::mail::mailbox::tree::{self, Mailboxes};

/// One validated FilterCondition (RFC 8621 §2.3).
#[derive(Debug, Default)]
struct Condition {
    /// `Some(None)`: top-level Mailboxes only.
    parent_id: Option<Option<u64>>,
    /// Lower-cased: the name contains it, ignoring case.
    name: Option<String>,
    /// `Some(None)`: Mailboxes without a role.
    role: Option<Option<String>>,
    has_any_role: Option<bool>,
    is_subscribed: Option<bool>,
    /// A parentId that names no Mailbox of ours: matches nothing.
    matches_nothing: bool,
}

type Filter = FilterTree<Condition>;

fn invalid(description: impl Into<String>) -> MethodError {
    MethodError::invalid_arguments(description)
}

fn parse_condition(members: &Map<String, Value>) -> Result<Condition, MethodError> {
    let mut condition = Condition::default();
    for (property, value) in members {
        match (property.as_str(), value) {
            ("parentId", Value::Null) => condition.parent_id = Some(None),
            ("parentId", Value::String(text)) => {
                match Id::parse(text).ok().and_then(|id| id.to_number(ID_PREFIX)) {
                    Some(parent_id) => condition.parent_id = Some(Some(parent_id)),
                    None => condition.matches_nothing = true,
                }
            }
            ("name", Value::String(text)) => condition.name = Some(text.to_lowercase()),
            ("role", Value::Null) => condition.role = Some(None),
            ("role", Value::String(role)) => condition.role = Some(Some(role.clone())),
            ("hasAnyRole", Value::Bool(flag)) => condition.has_any_role = Some(*flag),
            ("isSubscribed", Value::Bool(flag)) => condition.is_subscribed = Some(*flag),
            ("parentId" | "name" | "role" | "hasAnyRole" | "isSubscribed", _) => {
                return Err(invalid(format!("filter {property:?} has the wrong type")));
            }
            // RFC 8620 §5.5: a condition the server does not know is unsupportedFilter.
            _ => {
                return Err(MethodError::with_description(
                    MethodErrorType::UnsupportedFilter,
                    format!("Mailbox/query cannot filter on {property:?}"),
                ));
            }
        }
    }
    Ok(condition)
}

/// The generic layer checked operators and nesting; this reads the conditions.
fn parse_filter(filter: &Value) -> Result<Filter, MethodError> {
    FilterTree::parse(filter, &parse_condition)
}

fn condition_matches(condition: &Condition, mailbox: &Mailbox) -> bool {
    !condition.matches_nothing
        && condition
            .parent_id
            .is_none_or(|parent_id| mailbox.parent_id == parent_id)
        && condition
            .name
            .as_ref()
            .is_none_or(|needle| mailbox.name.to_lowercase().contains(needle.as_str()))
        && condition
            .role
            .as_ref()
            .is_none_or(|role| mailbox.role == *role)
        && condition
            .has_any_role
            .is_none_or(|wanted| mailbox.role.is_some() == wanted)
        && condition
            .is_subscribed
            .is_none_or(|wanted| mailbox.is_subscribed == wanted)
}

fn filter_matches(filter: &Filter, mailbox: &Mailbox) -> bool {
    filter.matches(&|condition| condition_matches(condition, mailbox))
}

/// Compares two names under a collation (RFC 8620 §5.5; RFC 4790 names).
fn compare_names(a: &str, b: &str, collation: Option<&str>) -> Ordering {
    match collation {
        Some("i;ascii-casemap") => a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()),
        Some("i;ascii-numeric") => {
            // RFC 4790 §9.1: the leading digits as a number; strings without one sort last.
            let number = |text: &str| -> Option<u128> {
                let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            };
            match (number(a), number(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
        // i;unicode-casemap, the default: case-insensitive.
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

fn check_sort(sort: &[Comparator]) -> Result<(), MethodError> {
    match sort
        .iter()
        .find(|comparator| !matches!(comparator.property.as_str(), "sortOrder" | "name"))
    {
        // RFC 8621 §2.3: sortOrder and name; anything else is unsupportedSort.
        Some(comparator) => Err(MethodError::with_description(
            MethodErrorType::UnsupportedSort,
            format!("Mailbox/query cannot sort by {:?}", comparator.property),
        )),
        None => Ok(()),
    }
}

/// Every Mailbox id sorted by the comparators, ties broken by id so the order is stable.
fn sorted_ids(mailboxes: &Mailboxes, sort: &[Comparator]) -> Vec<u64> {
    let mut ids: Vec<u64> = mailboxes.keys().copied().collect();
    ids.sort_by(|a, b| {
        let (first, second) = (&mailboxes[a], &mailboxes[b]);
        sort.iter()
            .map(|comparator| {
                let ordering = match comparator.property.as_str() {
                    "sortOrder" => first.sort_order.cmp(&second.sort_order),
                    _ => compare_names(&first.name, &second.name, comparator.collation.as_deref()),
                };
                if comparator.is_ascending {
                    ordering
                } else {
                    ordering.reverse()
                }
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or_else(|| a.cmp(b))
    });
    ids
}

/// The ids of the Mailboxes matching `filter`, in `sort` order, with the tree options of
/// RFC 8621 §2.3.
pub fn run(
    mailboxes: &Mailboxes,
    filter: Option<&Value>,
    sort: &[Comparator],
    sort_as_tree: bool,
    filter_as_tree: bool,
) -> Result<Vec<u64>, MethodError> {
    let filter = filter.map(parse_filter).transpose()?;
    check_sort(sort)?;
    let ordered = sorted_ids(mailboxes, sort);
    let mut selected: Vec<u64> = ordered
        .iter()
        .copied()
        .filter(|id| {
            filter
                .as_ref()
                .is_none_or(|filter| filter_matches(filter, &mailboxes[id]))
        })
        .collect();
    if filter_as_tree {
        selected = tree::filter_as_tree(mailboxes, &selected);
    }
    if sort_as_tree {
        let rank: HashMap<u64, usize> = ordered
            .iter()
            .enumerate()
            .map(|(position, id)| (*id, position))
            .collect();
        tree::sort_as_tree(mailboxes, &rank, &mut selected);
    }
    Ok(selected)
}
