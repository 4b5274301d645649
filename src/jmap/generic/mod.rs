//! The standard methods of RFC 8620 §5 — /get, /changes, /set, /query, /queryChanges — written
//! once. An object type plugs in by implementing [`ObjectType`] (storage, validation, query
//! evaluation); its method files are one-liners such as
//! `Box::pin(generic::get::get::<Mailbox>(context, arguments))`.
//!
//! Invariants:
//! - every read of one method runs in one store snapshot, so `state` matches `list`;
//! - every /set runs in one `commit_account`, so its change-log entry and new state are
//!   written with the data, and nothing is answered before that commit returned;
//! - object ids are `Id::from_number(T::ID_PREFIX, store_id)`, states `State(version)`.

pub mod changes;
pub mod filter_tree;
pub mod get;
pub mod patch;
pub mod query;
pub mod query_changes;
pub mod set;
/// The JSON document store moved below `mail` (`store::docs`); the name stays for the
/// object types that use it.
pub use crate::store::docs as storage;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;

use serde_json::{Map, Value};

use super::context::Arguments;
use super::error::{MethodError, MethodErrorType, SetError};
use super::types::{Id, UnsignedInt};
use crate::mail::sharing::{SharedView, Viewer};
use crate::store::commit::{Changes, DataType};
use crate::store::{StoreResult, Transaction};

/// One sort criterion (RFC 8620 §5.5 `Comparator`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparator {
    pub property: String,
    pub is_ascending: bool,
    /// One of the advertised `collationAlgorithms` (checked), or `None` for the default.
    pub collation: Option<String>,
}

/// What a type's `create` returns: the new store id and the properties the server set or
/// changed, which the response reports (RFC 8620 §5.3 `created`).
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub id: u64,
    pub server_set: Map<String, Value>,
}

/// The shared inputs of a write: the account and the creation ids known so far (for
/// `#creationId` references inside property values, RFC 8620 §5.3).
pub struct WriteScope<'a> {
    pub account_id: u32,
    pub created_ids: &'a HashMap<Id, Id>,
    /// The grantee writing to a shared account (RFC 9670), whose rights the type checks;
    /// `None` for the account's owner.
    pub viewer: Option<&'a Viewer>,
}

impl WriteScope<'_> {
    /// Resolves an id-valued property that may be a `#creationId` reference.
    pub fn resolve_id(&self, text: &str) -> Option<Id> {
        match text.strip_prefix('#') {
            Some(creation_id) => Id::parse(creation_id)
                .ok()
                .and_then(|creation_id| self.created_ids.get(&creation_id).cloned()),
            None => Id::parse(text).ok(),
        }
    }
}

/// A JMAP object type served by the generic methods. Futures must be `Send` (they run on the
/// multi-threaded runtime); implement the methods with `async move` blocks.
pub trait ObjectType: Send + Sync + 'static {
    /// The change-log type; its state is the `state` of /get and the `queryState` of /query.
    const DATA_TYPE: DataType;
    /// The letter that starts every id of this type (see `types.rs`).
    const ID_PREFIX: char;
    /// Every property, `id` included.
    const PROPERTIES: &'static [&'static str];
    /// Properties only the server sets (RFC 8620 §5.3: a client setting them is
    /// `invalidProperties`). `id` is always server-set.
    const SERVER_SET_PROPERTIES: &'static [&'static str];

    /// Properties returned when /get's `properties` is null.
    fn default_properties() -> &'static [&'static str] {
        Self::PROPERTIES
    }

    /// Reorders the updates of one /set before they run (stable; the default keeps the
    /// client's order). A type whose rules span objects uses it so that an update freeing a
    /// value runs before one taking it (a Mailbox role moving from one Mailbox to another).
    fn order_updates(_updates: &mut [(String, Value)]) {}

    /// The value a top-level property takes when a patch sets it to null (RFC 8620 §5.3);
    /// `None` removes it.
    fn default_value(_property: &str) -> Option<Value> {
        Some(Value::Null)
    }

    /// The object as a grantee with `view` sees it (rights, redactions).
    fn shared_object(
        _view: &SharedView,
        _id: u64,
        object: Map<String, Value>,
    ) -> Map<String, Value> {
        object
    }

    /// Every id of the account (for /get with `ids: null`).
    fn list_ids<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
    ) -> impl Future<Output = StoreResult<Vec<u64>>> + Send + 'a;

    /// The object with all its properties (without `id`), or `None`.
    fn load<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        id: u64,
    ) -> impl Future<Output = StoreResult<Option<Map<String, Value>>>> + Send + 'a;

    /// Validates and stores a new object, recording it in `changes`.
    fn create<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        object: Map<String, Value>,
    ) -> impl Future<Output = StoreResult<Result<Created, SetError>>> + Send + 'a;

    /// Validates and stores `patched` (the current object with the client's patch applied),
    /// recording the change. Returns the properties the server changed besides the patch.
    fn update<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
        current: Map<String, Value>,
        patched: Map<String, Value>,
    ) -> impl Future<Output = StoreResult<Result<Option<Map<String, Value>>, SetError>>> + Send + 'a;

    /// Removes the object, recording the change.
    fn destroy<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
    ) -> impl Future<Output = StoreResult<Result<(), SetError>>> + Send + 'a;

    /// The ids matching `filter`, sorted by `sort` (RFC 8620 §5.5). An unknown filter
    /// condition is `unsupportedFilter`, an unsortable property `unsupportedSort`.
    fn query<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        filter: Option<&'a Value>,
        sort: &'a [Comparator],
    ) -> impl Future<Output = StoreResult<Result<Vec<u64>, MethodError>>> + Send + 'a;
}

/// Takes the `filter` and `sort` arguments that /query and /queryChanges share
/// (RFC 8620 §5.5, §5.6).
pub fn take_filter_and_sort(
    arguments: &mut Arguments,
    collations: &[String],
) -> Result<(Option<Value>, Vec<Comparator>), MethodError> {
    let filter = parse_filter(arguments.take("filter"))?;
    let sort = parse_sort(arguments.take("sort"), collations)?;
    Ok((filter, sort))
}

/// RFC 8620 §5.3: the maps of a /set response are null when empty.
pub fn null_if_empty(map: Map<String, Value>) -> Value {
    if map.is_empty() {
        Value::Null
    } else {
        Value::Object(map)
    }
}

/// RFC 8620 §5.3: `ifInState` that is not the current state of `data_type` is stateMismatch.
/// Answers the current state, read in the write's own transaction.
pub async fn check_if_in_state(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
    expected: Option<&str>,
) -> StoreResult<Result<u64, MethodError>> {
    let current = crate::store::commit::read_state(tx, account_id, data_type).await?;
    if let Some(expected) = expected
        && super::types::State::parse(expected) != Some(super::types::State::new(current))
    {
        return Ok(Err(MethodError::with_description(
            MethodErrorType::StateMismatch,
            format!("the state is {}", super::types::State::new(current)),
        )));
    }
    Ok(Ok(current))
}

/// Takes `maxChanges` of /changes and /queryChanges, which must be positive when given
/// (RFC 8620 §5.2, §5.6).
pub fn take_max_changes(arguments: &mut Arguments) -> Result<Option<UnsignedInt>, MethodError> {
    let requested = arguments.take_unsigned("maxChanges")?;
    if requested.is_some_and(|max| max.get() == 0) {
        return Err(MethodError::invalid_arguments(
            "\"maxChanges\" must be greater than 0",
        ));
    }
    Ok(requested)
}

/// Members some clients put in every Comparator although they are arguments of `/query`
/// (RFC 8620 §5.5), with the value that means "not given": jmapc sends `"anchorOffset": 0,
/// "calculateTotal": false, "position": 0` in each one. At that value they change nothing, so
/// they are ignored (RFC 8620 §5.5 lets a Comparator carry additional properties); any other
/// value would be a request the server cannot honour in a comparator and stays an error.
const QUERY_ARGUMENTS_IN_COMPARATORS: &[&str] = &[
    "anchor",
    "anchorOffset",
    "calculateTotal",
    "limit",
    "position",
];

/// Removes the query arguments a lenient client left in a Comparator (see
/// [`QUERY_ARGUMENTS_IN_COMPARATORS`]); `invalidArguments` if one has a value that would mean
/// something.
pub fn strip_query_arguments(members: &mut Map<String, Value>) -> Result<(), MethodError> {
    for name in QUERY_ARGUMENTS_IN_COMPARATORS {
        let Some(value) = members.remove(*name) else {
            continue;
        };
        let neutral = match *name {
            "anchorOffset" | "position" => value.as_i64() == Some(0),
            "calculateTotal" => value == Value::Bool(false),
            _ => value.is_null(),
        };
        if !neutral {
            return Err(MethodError::invalid_arguments(format!(
                "{name:?} is an argument of the query, not of a Comparator (RFC 8620 §5.5)"
            )));
        }
    }
    Ok(())
}

/// Parses a `sort` argument (RFC 8620 §5.5): a list of Comparator objects.
pub fn parse_sort(
    value: Option<Value>,
    collations: &[String],
) -> Result<Vec<Comparator>, MethodError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(MethodError::invalid_arguments(
            "\"sort\" must be a Comparator[]",
        ));
    };
    items
        .into_iter()
        .map(|item| {
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
            let collation = match members.remove("collation") {
                None | Some(Value::Null) => None,
                Some(Value::String(collation)) if collations.contains(&collation) => {
                    Some(collation)
                }
                // RFC 8620 §5.5: a collation the server does not support is unsupportedSort.
                Some(Value::String(collation)) => {
                    return Err(MethodError::with_description(
                        MethodErrorType::UnsupportedSort,
                        format!("collation {collation:?} is not supported"),
                    ));
                }
                Some(_) => {
                    return Err(MethodError::invalid_arguments(
                        "\"collation\" must be a String",
                    ));
                }
            };
            strip_query_arguments(&mut members)?;
            if let Some(unknown) = members.keys().next() {
                return Err(MethodError::invalid_arguments(format!(
                    "unknown Comparator member {unknown:?}"
                )));
            }
            Ok(Comparator {
                property,
                is_ascending,
                collation,
            })
        })
        .collect()
}

/// Parses a `filter` argument: `null`, a FilterOperator or a FilterCondition (RFC 8620 §5.5).
/// Operators are checked here; conditions are the type's business.
pub fn parse_filter(value: Option<Value>) -> Result<Option<Value>, MethodError> {
    let Some(filter) = value else {
        return Ok(None);
    };
    check_filter(&filter, 0)?;
    Ok(Some(filter))
}

fn check_filter(filter: &Value, depth: usize) -> Result<(), MethodError> {
    // Deep enough for any real client; bounds the recursion of evaluators.
    const MAX_FILTER_DEPTH: usize = 32;
    if depth > MAX_FILTER_DEPTH {
        return Err(MethodError::with_description(
            MethodErrorType::UnsupportedFilter,
            "filter nested too deeply",
        ));
    }
    let Value::Object(members) = filter else {
        return Err(MethodError::invalid_arguments("a filter must be an object"));
    };
    let Some(operator) = members.get("operator") else {
        return Ok(());
    };
    if !matches!(operator.as_str(), Some("AND" | "OR" | "NOT")) {
        return Err(MethodError::with_description(
            MethodErrorType::UnsupportedFilter,
            "\"operator\" must be AND, OR or NOT",
        ));
    }
    let Some(Value::Array(conditions)) = members.get("conditions") else {
        return Err(MethodError::invalid_arguments(
            "a FilterOperator needs \"conditions\" (an array)",
        ));
    };
    conditions
        .iter()
        .try_for_each(|condition| check_filter(condition, depth + 1))
}

/// Formats store ids of `T` as JMAP ids.
pub fn ids_to_json<T: ObjectType>(ids: &[u64]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| Value::String(Id::from_number(T::ID_PREFIX, *id).into_string()))
            .collect(),
    )
}
