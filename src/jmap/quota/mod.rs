//! Quota (RFC 9425): read-only objects over `mail::quota`, served by the generic /get,
//! /changes, /query and /queryChanges.
//!
//! An account has one Quota per limited resource (`octets`, `count`), scope `account`, types
//! `["Email"]`, and one per limited resource of its domain (scope `domain`: every account of
//! the domain together, `tern domain quota`); a resource without a limit has no Quota object (`hardLimit` is a mandatory
//! UnsignedInt, and inventing a number for "unlimited" would break every client's arithmetic).
//! RFC 9425 §4.1: types whose capability the request does not use are filtered out, and a
//! Quota left without types is not returned: without `urn:ietf:params:jmap:mail` in `using`
//! no Quota is visible ([`visible`]).

pub mod changes;
pub mod get;
pub mod query;
pub mod query_changes;

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::jmap::context::CallContext;
use crate::jmap::dispatch::CAPABILITY_MAIL;
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::generic::filter_tree::FilterTree;
use crate::jmap::generic::{Comparator, Created, ObjectType, WriteScope};
use crate::mail::quota::{self, Limits, Resource, Scope, Usage};
use crate::store::commit::{Changes, DataType};
use crate::store::{StoreResult, Transaction};

pub struct Quota;

pub const ID_PREFIX: char = 'q';

/// Whether the request may see Quota objects at all (RFC 9425 §4.1: every Quota here counts
/// Emails, a type of the mail capability).
pub fn visible(context: &CallContext<'_>) -> bool {
    context
        .using
        .iter()
        .any(|capability| capability == CAPABILITY_MAIL)
}

fn name(scope: &Scope, resource: Resource) -> String {
    match (scope, resource) {
        (Scope::Account, Resource::Octets) => "Mail storage".to_owned(),
        (Scope::Account, Resource::Count) => "Mail messages".to_owned(),
        (Scope::Domain(domain), Resource::Octets) => format!("Mail storage of {domain}"),
        (Scope::Domain(domain), Resource::Count) => format!("Mail messages of {domain}"),
    }
}

fn description(scope: &Scope, resource: Resource) -> String {
    match (scope, resource) {
        (Scope::Account, Resource::Octets) => {
            "The total size of the account's Emails, in octets".to_owned()
        }
        (Scope::Account, Resource::Count) => "The number of the account's Emails".to_owned(),
        (Scope::Domain(domain), Resource::Octets) => {
            format!("The total size of the Emails of every account in {domain}, in octets")
        }
        (Scope::Domain(domain), Resource::Count) => {
            format!("The number of Emails of every account in {domain}")
        }
    }
}

/// The Quota object of `resource` in `scope` (without `id`), or `None` when it has no limit.
fn object(
    scope: &Scope,
    resource: Resource,
    limits: &Limits,
    usage: &Usage,
) -> Option<Map<String, Value>> {
    let hard = limits.hard(resource)?;
    let mut object = Map::with_capacity(9);
    object.insert("resourceType".into(), json!(resource.resource_type()));
    object.insert("used".into(), json!(usage.of(resource)));
    object.insert("hardLimit".into(), json!(hard));
    let scope_name = match scope {
        Scope::Account => "account",
        Scope::Domain(_) => "domain",
    };
    object.insert("scope".into(), json!(scope_name));
    object.insert("name".into(), json!(name(scope, resource)));
    object.insert("types".into(), json!(["Email"]));
    object.insert("warnLimit".into(), json!(limits.warn(resource)));
    object.insert("softLimit".into(), Value::Null);
    object.insert("description".into(), json!(description(scope, resource)));
    Some(object)
}

/// Every Quota object of the account with its store id: its own limits', then its domain's.
async fn all_objects(
    tx: &mut dyn Transaction,
    account_id: u32,
) -> StoreResult<Vec<(u64, Map<String, Value>)>> {
    let limits = quota::limits(tx, account_id).await?;
    let mut found = Vec::with_capacity(4);
    if !limits.is_unlimited() {
        let usage = quota::usage(tx, account_id).await?;
        found.extend(Resource::ALL.into_iter().filter_map(|resource| {
            Some((
                resource.quota_id(),
                object(&Scope::Account, resource, &limits, &usage)?,
            ))
        }));
    }
    if let Some((domain, limits)) = quota::domain_limits(tx, account_id).await? {
        let usage = quota::domain::usage(tx, &domain).await?;
        let scope = Scope::Domain(domain);
        found.extend(Resource::ALL.into_iter().filter_map(|resource| {
            Some((
                resource.domain_quota_id(),
                object(&scope, resource, &limits, &usage)?,
            ))
        }));
    }
    Ok(found)
}

fn read_only() -> SetError {
    SetError::with_description(
        SetErrorType::Forbidden,
        "Quota objects are read-only (RFC 9425); `tern account quota` sets limits",
    )
}

impl ObjectType for Quota {
    const DATA_TYPE: DataType = DataType::Quota;
    const ID_PREFIX: char = ID_PREFIX;
    const PROPERTIES: &'static [&'static str] = &[
        "id",
        "resourceType",
        "used",
        "hardLimit",
        "scope",
        "name",
        "types",
        "warnLimit",
        "softLimit",
        "description",
    ];
    const SERVER_SET_PROPERTIES: &'static [&'static str] = Self::PROPERTIES;

    async fn list_ids(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Vec<u64>> {
        let objects = all_objects(tx, account_id).await?;
        Ok(objects.into_iter().map(|(id, _)| id).collect())
    }

    async fn load(
        tx: &mut dyn Transaction,
        account_id: u32,
        id: u64,
    ) -> StoreResult<Option<Map<String, Value>>> {
        if Resource::from_quota_id(id)
            .or_else(|| Resource::from_domain_quota_id(id))
            .is_none()
        {
            return Ok(None);
        }
        let objects = all_objects(tx, account_id).await?;
        Ok(objects
            .into_iter()
            .find_map(|(found, object)| (found == id).then_some(object)))
    }

    async fn create<'a>(
        _tx: &'a mut dyn Transaction,
        _changes: &'a mut Changes,
        _scope: &'a WriteScope<'a>,
        _object: Map<String, Value>,
    ) -> StoreResult<Result<Created, SetError>> {
        Ok(Err(read_only()))
    }

    async fn update<'a>(
        _tx: &'a mut dyn Transaction,
        _changes: &'a mut Changes,
        _scope: &'a WriteScope<'a>,
        _id: u64,
        _current: Map<String, Value>,
        _patched: Map<String, Value>,
    ) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
        Ok(Err(read_only()))
    }

    async fn destroy<'a>(
        _tx: &'a mut dyn Transaction,
        _changes: &'a mut Changes,
        _scope: &'a WriteScope<'a>,
        _id: u64,
    ) -> StoreResult<Result<(), SetError>> {
        Ok(Err(read_only()))
    }

    async fn query<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        filter: Option<&'a Value>,
        sort: &'a [Comparator],
    ) -> StoreResult<Result<Vec<u64>, MethodError>> {
        let filter = match filter
            .map(|filter| FilterTree::parse(filter, &parse_condition))
            .transpose()
        {
            Ok(filter) => filter,
            Err(error) => return Ok(Err(error)),
        };
        let sort = match parse_sort(sort) {
            Ok(sort) => sort,
            Err(error) => return Ok(Err(error)),
        };
        let mut found: Vec<(u64, Map<String, Value>)> = all_objects(tx, account_id)
            .await?
            .into_iter()
            .filter(|(_, object)| {
                filter.as_ref().is_none_or(|filter| {
                    filter.matches(&|condition| condition_matches(condition, object))
                })
            })
            .collect();
        found.sort_by(|(left_id, left), (right_id, right)| {
            sort.iter()
                .map(|(key, ascending)| {
                    let order = match key {
                        SortKey::Name => text(left, "name").cmp(text(right, "name")),
                        SortKey::Used => number(left, "used").cmp(&number(right, "used")),
                    };
                    if *ascending { order } else { order.reverse() }
                })
                .find(|order| *order != Ordering::Equal)
                .unwrap_or_else(|| left_id.cmp(right_id))
        });
        Ok(Ok(found.into_iter().map(|(id, _)| id).collect()))
    }
}

fn text<'o>(object: &'o Map<String, Value>, property: &str) -> &'o str {
    object.get(property).and_then(Value::as_str).unwrap_or("")
}

fn number(object: &Map<String, Value>, property: &str) -> u64 {
    object.get(property).and_then(Value::as_u64).unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
enum SortKey {
    Name,
    Used,
}

/// RFC 9425 §4.4: `name` and `used` must be supported for sorting.
fn parse_sort(sort: &[Comparator]) -> Result<Vec<(SortKey, bool)>, MethodError> {
    sort.iter()
        .map(|comparator| {
            let key = match comparator.property.as_str() {
                "name" => SortKey::Name,
                "used" => SortKey::Used,
                other => {
                    return Err(MethodError::with_description(
                        MethodErrorType::UnsupportedSort,
                        format!("Quota/query cannot sort by {other:?}"),
                    ));
                }
            };
            Ok((key, comparator.is_ascending))
        })
        .collect()
}

/// One FilterCondition (RFC 9425 §4.4); every member given must match.
#[derive(Debug, Default)]
struct Condition {
    /// `name` contains it.
    name: Option<String>,
    /// `scope` equals it.
    scope: Option<String>,
    /// `resourceType` equals it.
    resource_type: Option<String>,
    /// `types` contains it.
    data_type: Option<String>,
}

fn parse_condition(members: &Map<String, Value>) -> Result<Condition, MethodError> {
    let mut condition = Condition::default();
    for (property, value) in members {
        let slot = match property.as_str() {
            "name" => &mut condition.name,
            "scope" => &mut condition.scope,
            "resourceType" => &mut condition.resource_type,
            "type" => &mut condition.data_type,
            other => {
                return Err(MethodError::with_description(
                    MethodErrorType::UnsupportedFilter,
                    format!("Quota/query has no filter {other:?}"),
                ));
            }
        };
        let Value::String(text) = value else {
            return Err(MethodError::with_description(
                MethodErrorType::InvalidArguments,
                format!("the filter {property:?} must be a String"),
            ));
        };
        *slot = Some(text.clone());
    }
    Ok(condition)
}

fn condition_matches(condition: &Condition, object: &Map<String, Value>) -> bool {
    let contains_folded =
        |haystack: &str, needle: &str| haystack.to_lowercase().contains(&needle.to_lowercase());
    condition
        .name
        .as_deref()
        .is_none_or(|name| contains_folded(text(object, "name"), name))
        && condition
            .scope
            .as_deref()
            .is_none_or(|scope| text(object, "scope") == scope)
        && condition
            .resource_type
            .as_deref()
            .is_none_or(|kind| text(object, "resourceType") == kind)
        && condition.data_type.as_deref().is_none_or(|wanted| {
            object
                .get("types")
                .and_then(Value::as_array)
                .is_some_and(|types| types.iter().any(|t| t.as_str() == Some(wanted)))
        })
}
