//! Principals (RFC 9670 §2): the directory's accounts (individuals) and groups, read-only.
//! They live in every user's own account (`urn:ietf:params:jmap:principals`; the session names
//! it `accountIdForPrincipal`); a Principal's id is the id of its account, so `shareWith` keys
//! and `principalId`s are the same strings as account ids.
//!
//! State is the directory's principal version (`auth::directory::principals`), changes come
//! from its log; `accounts` lists the accounts of the principal the caller may use (their own,
//! those shared with them, their groups').

pub mod changes;
pub mod get;
pub mod query;
pub mod query_changes;

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::auth::directory::principals::PrincipalInfo;
use crate::jmap::context::Arguments;
use crate::jmap::context::CallContext;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::generic::filter_tree::FilterTree;
use crate::jmap::generic::{Comparator, take_filter_and_sort};
use crate::jmap::types::AccountId;

/// Every Principal property (RFC 9670 §2).
pub const PROPERTIES: &[&str] = &[
    "id",
    "type",
    "name",
    "description",
    "email",
    "timeZone",
    "capabilities",
    "accounts",
];

pub fn principal_id(id: u32) -> String {
    AccountId::new(id).to_string()
}

/// Parses a Principal id; `None` for anything that is not one.
pub fn parse_principal_id(text: &str) -> Option<u32> {
    AccountId::parse(text).ok().map(AccountId::number)
}

/// The Principal as `context`'s user sees it.
pub fn to_json(principal: &PrincipalInfo, context: &CallContext<'_>) -> Map<String, Value> {
    let mut object = Map::with_capacity(PROPERTIES.len());
    object.insert("id".into(), json!(principal_id(principal.id)));
    object.insert(
        "type".into(),
        json!(if principal.is_group {
            "group"
        } else {
            "individual"
        }),
    );
    object.insert("name".into(), json!(principal.name));
    object.insert("description".into(), Value::Null);
    object.insert("email".into(), json!(principal.email));
    object.insert("timeZone".into(), Value::Null);
    object.insert("capabilities".into(), json!({}));
    // The principal's account, when the caller may use it.
    let usable = context.principal.account_id == principal.id
        || context.shared_accounts.contains(&principal.id);
    object.insert(
        "accounts".into(),
        if usable {
            json!({principal_id(principal.id): {"name": principal.email}})
        } else {
            Value::Null
        },
    );
    object
}

/// One RFC 9670 §2.5 FilterCondition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    AccountIds(Vec<u32>),
    Email(String),
    Name(String),
    Text(String),
    Type(String),
    TimeZone(String),
}

fn condition(members: &Map<String, Value>) -> Result<Vec<Condition>, MethodError> {
    let mut all = Vec::new();
    for (name, value) in members {
        let text = || {
            value.as_str().map(str::to_lowercase).ok_or_else(|| {
                MethodError::invalid_arguments(format!("filter {name:?} must be a String"))
            })
        };
        all.push(match name.as_str() {
            "accountIds" => Condition::AccountIds(
                value
                    .as_array()
                    .ok_or_else(|| MethodError::invalid_arguments("accountIds must be a String[]"))?
                    .iter()
                    .map(|id| id.as_str().and_then(parse_principal_id).unwrap_or(0))
                    .collect(),
            ),
            "email" => Condition::Email(text()?),
            "name" => Condition::Name(text()?),
            "text" => Condition::Text(text()?),
            "type" => Condition::Type(text()?),
            "timeZone" => Condition::TimeZone(text()?),
            other => {
                return Err(MethodError::with_description(
                    MethodErrorType::UnsupportedFilter,
                    format!("unknown Principal filter condition {other:?}"),
                ));
            }
        });
    }
    Ok(all)
}

fn condition_holds(condition: &Condition, principal: &PrincipalInfo) -> bool {
    let kind = if principal.is_group {
        "group"
    } else {
        "individual"
    };
    match condition {
        Condition::AccountIds(ids) => ids.contains(&principal.id),
        Condition::Email(text) => principal.email.to_lowercase().contains(text),
        Condition::Name(text) => principal.name.to_lowercase().contains(text),
        Condition::Text(text) => {
            principal.email.to_lowercase().contains(text)
                || principal.name.to_lowercase().contains(text)
        }
        Condition::Type(wanted) => wanted == kind,
        // No Principal has a time zone here.
        Condition::TimeZone(_) => false,
    }
}

/// A parsed Principal/query filter and sort.
pub struct PrincipalQuery {
    filter: Option<FilterTree<Vec<Condition>>>,
    sort: Vec<Comparator>,
}

impl PrincipalQuery {
    pub fn take(arguments: &mut Arguments, context: &CallContext<'_>) -> Result<Self, MethodError> {
        let collations = &context.engine.limits.collation_algorithms;
        let (filter, sort) = take_filter_and_sort(arguments, collations)?;
        let filter = filter
            .map(|filter| FilterTree::parse(&filter, &condition))
            .transpose()?;
        if let Some(unknown) = sort
            .iter()
            .find(|comparator| !matches!(comparator.property.as_str(), "name" | "email" | "type"))
        {
            return Err(MethodError::with_description(
                MethodErrorType::UnsupportedSort,
                format!(
                    "Principals sort by name, email or type, not {:?}",
                    unknown.property
                ),
            ));
        }
        Ok(PrincipalQuery { filter, sort })
    }

    /// The ids of the matching principals, sorted (ties by id).
    pub fn run(&self, principals: &[PrincipalInfo]) -> Vec<u32> {
        let mut matching: Vec<&PrincipalInfo> = principals
            .iter()
            .filter(|principal| {
                self.filter.as_ref().is_none_or(|filter| {
                    filter.matches(&|conditions: &Vec<Condition>| {
                        conditions
                            .iter()
                            .all(|condition| condition_holds(condition, principal))
                    })
                })
            })
            .collect();
        matching.sort_by(|a, b| {
            for comparator in &self.sort {
                let ordering = match comparator.property.as_str() {
                    "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
                    "email" => a.email.cmp(&b.email),
                    _ => a.is_group.cmp(&b.is_group),
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
            a.id.cmp(&b.id)
        });
        matching.iter().map(|principal| principal.id).collect()
    }
}

/// Principals live in the caller's own account (RFC 9670 §3): any other is not one of ours.
pub fn own_account(
    arguments: &mut Arguments,
    context: &CallContext<'_>,
) -> Result<AccountId, MethodError> {
    let account = arguments.take_account("accountId", context)?;
    if !context.owns(account) {
        return Err(MethodError::new(
            MethodErrorType::AccountNotSupportedByMethod,
        ));
    }
    Ok(account)
}
