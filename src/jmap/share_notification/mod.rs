//! ShareNotification (RFC 9670 §3): what changed in the caller's rights to someone else's
//! data. Created only by the server — queued in the commit that changed the rights
//! (`mail::sharing::notices`) and moved into the grantee's own account by [`deliver`], which
//! every method here runs first (and Mailbox/set right after a grant changed) — and
//! destroyed by the user with /set. At most [`MAX_NOTIFICATIONS`] are kept per user; a new one
//! beyond that removes the oldest (RFC 9670 §3.1).

pub mod changes;
pub mod get;
pub mod query;
pub mod query_changes;
pub mod set;

use serde_json::{Map, Value};

use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::generic::filter_tree::FilterTree;
use crate::jmap::generic::{Comparator, Created, ObjectType, WriteScope, storage};
use crate::jmap::types::UtcDate;
use crate::mail::sharing::notices;
use crate::store::commit::{Changes, DataType, allocate_id, commit_account};
use crate::store::{Store, StoreResult, Transaction};

pub const ID_PREFIX: char = 'n';

/// How many ShareNotifications one user keeps.
pub const MAX_NOTIFICATIONS: usize = 1_000;

/// How many queued notices one delivering commit moves (FoundationDB's transaction limits).
const DELIVER_BATCH: usize = 64;

pub struct ShareNotification;

/// Moves the queued notices of `account_id` into its account, in its own commits.
pub async fn deliver(store: &Store, account_id: u32) -> StoreResult<usize> {
    let mut delivered = 0;
    loop {
        let pending = store
            .read(move |tx| {
                Box::pin(async move { notices::pending_for(tx, account_id, DELIVER_BATCH).await })
            })
            .await?;
        if pending.is_empty() {
            return Ok(delivered);
        }
        let batch = std::sync::Arc::new(pending);
        let committed = commit_account(store, account_id, |tx, changes| {
            let batch = std::sync::Arc::clone(&batch);
            Box::pin(async move {
                let mut moved = 0;
                for (key, notice) in batch.iter() {
                    // Another delivery may have moved it meanwhile.
                    if tx.get(key).await?.is_none() {
                        continue;
                    }
                    let Value::Object(object) = notice else {
                        tx.clear(key)?;
                        continue;
                    };
                    let id = allocate_id(tx, account_id, DataType::ShareNotification).await?;
                    storage::save(tx, account_id, DataType::ShareNotification, id, object)?;
                    changes.created(DataType::ShareNotification, id);
                    tx.clear(key)?;
                    moved += 1;
                }
                let ids = storage::list_ids(tx, account_id, DataType::ShareNotification).await?;
                for oldest in ids.iter().take(ids.len().saturating_sub(MAX_NOTIFICATIONS)) {
                    storage::remove(tx, account_id, DataType::ShareNotification, *oldest)?;
                    changes.destroyed(DataType::ShareNotification, *oldest);
                }
                Ok(moved)
            })
        })
        .await?;
        delivered += committed.value;
        if batch.len() < DELIVER_BATCH {
            return Ok(delivered);
        }
    }
}

/// Delivers the notices queued for whoever has some (after a grant changed), best effort: a
/// notice left queued is delivered when its grantee next asks.
pub async fn deliver_pending(store: &Store) {
    let grantees = store
        .read(|tx| Box::pin(async move { notices::grantees_pending(tx, 256).await }))
        .await;
    for grantee in grantees.unwrap_or_default() {
        if let Err(error) = deliver(store, grantee).await {
            tracing::debug!(grantee, %error, "share notices left queued");
        }
    }
}

/// Runs [`deliver`] for the request's `accountId` when it is the caller's own, then returns
/// the arguments for the method.
pub async fn delivered_first(
    context: &CallContext<'_>,
    arguments: Arguments,
) -> Result<Arguments, MethodError> {
    let members = arguments.into_inner();
    if let Some(account) = context.own_account_argument(&members) {
        deliver(&context.engine.store, account.number()).await?;
    }
    Ok(Arguments::new(members))
}

/// One RFC 9670 §3.5.1 FilterCondition.
#[derive(Debug, Clone, PartialEq)]
struct Condition {
    after: Option<String>,
    before: Option<String>,
    object_type: Option<String>,
    object_account_id: Option<String>,
}

fn condition(members: &Map<String, Value>) -> Result<Condition, MethodError> {
    let mut parsed = Condition {
        after: None,
        before: None,
        object_type: None,
        object_account_id: None,
    };
    for (name, value) in members {
        let text = value.as_str().map(str::to_owned);
        let date = || {
            text.as_deref()
                .and_then(|text| UtcDate::parse(text).ok())
                .map(|date| date.to_string())
                .ok_or_else(|| {
                    MethodError::invalid_arguments(format!("{name:?} must be a UTCDate"))
                })
        };
        match name.as_str() {
            "after" => parsed.after = Some(date()?),
            "before" => parsed.before = Some(date()?),
            "objectType" => parsed.object_type = text,
            "objectAccountId" => parsed.object_account_id = text,
            other => {
                return Err(MethodError::with_description(
                    MethodErrorType::UnsupportedFilter,
                    format!("unknown ShareNotification filter condition {other:?}"),
                ));
            }
        }
    }
    Ok(parsed)
}

fn holds(condition: &Condition, object: &Map<String, Value>) -> bool {
    let field = |name: &str| object.get(name).and_then(Value::as_str).unwrap_or_default();
    // UTCDates in one format compare as text.
    condition
        .after
        .as_deref()
        .is_none_or(|after| field("created") >= after)
        && condition
            .before
            .as_deref()
            .is_none_or(|before| field("created") < before)
        && condition
            .object_type
            .as_deref()
            .is_none_or(|wanted| field("objectType") == wanted)
        && condition
            .object_account_id
            .as_deref()
            .is_none_or(|wanted| field("objectAccountId") == wanted)
}

impl ObjectType for ShareNotification {
    const DATA_TYPE: DataType = DataType::ShareNotification;
    const ID_PREFIX: char = ID_PREFIX;
    const PROPERTIES: &'static [&'static str] = &[
        "id",
        "created",
        "changedBy",
        "objectType",
        "objectAccountId",
        "objectId",
        "name",
        "oldRights",
        "newRights",
    ];
    const SERVER_SET_PROPERTIES: &'static [&'static str] = &[
        "created",
        "changedBy",
        "objectType",
        "objectAccountId",
        "objectId",
        "name",
        "oldRights",
        "newRights",
    ];

    async fn list_ids(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Vec<u64>> {
        storage::list_ids(tx, account_id, DataType::ShareNotification).await
    }

    async fn load(
        tx: &mut dyn Transaction,
        account_id: u32,
        id: u64,
    ) -> StoreResult<Option<Map<String, Value>>> {
        storage::load(tx, account_id, DataType::ShareNotification, id).await
    }

    /// RFC 9670 §3.4: only the server creates them.
    async fn create<'a>(
        _tx: &'a mut dyn Transaction,
        _changes: &'a mut Changes,
        _scope: &'a WriteScope<'a>,
        _object: Map<String, Value>,
    ) -> StoreResult<Result<Created, SetError>> {
        Ok(Err(SetError::with_description(
            SetErrorType::Forbidden,
            "ShareNotifications are created by the server",
        )))
    }

    /// RFC 9670 §3.4: they cannot change.
    async fn update<'a>(
        _tx: &'a mut dyn Transaction,
        _changes: &'a mut Changes,
        _scope: &'a WriteScope<'a>,
        _id: u64,
        _current: Map<String, Value>,
        _patched: Map<String, Value>,
    ) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
        Ok(Err(SetError::with_description(
            SetErrorType::Forbidden,
            "ShareNotifications cannot be changed, only dismissed",
        )))
    }

    async fn destroy<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
    ) -> StoreResult<Result<(), SetError>> {
        let account_id = scope.account_id;
        if storage::load(tx, account_id, DataType::ShareNotification, id)
            .await?
            .is_none()
        {
            return Ok(Err(SetError::not_found()));
        }
        storage::remove(tx, account_id, DataType::ShareNotification, id)?;
        changes.destroyed(DataType::ShareNotification, id);
        Ok(Ok(()))
    }

    async fn query<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        filter: Option<&'a Value>,
        sort: &'a [Comparator],
    ) -> StoreResult<Result<Vec<u64>, MethodError>> {
        let filter = match filter
            .map(|filter| FilterTree::parse(filter, &condition))
            .transpose()
        {
            Ok(filter) => filter,
            Err(error) => return Ok(Err(error)),
        };
        if let Some(unknown) = sort
            .iter()
            .find(|comparator| comparator.property != "created")
        {
            return Ok(Err(MethodError::with_description(
                MethodErrorType::UnsupportedSort,
                format!(
                    "ShareNotifications sort by created, not {:?}",
                    unknown.property
                ),
            )));
        }
        let mut objects = Vec::new();
        for id in storage::list_ids(tx, account_id, DataType::ShareNotification).await? {
            if let Some(object) =
                storage::load(tx, account_id, DataType::ShareNotification, id).await?
            {
                let keep = filter
                    .as_ref()
                    .is_none_or(|filter| filter.matches(&|condition| holds(condition, &object)));
                if keep {
                    objects.push((id, object));
                }
            }
        }
        let created = |object: &Map<String, Value>| {
            object
                .get("created")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let descending = sort
            .first()
            .is_some_and(|comparator| !comparator.is_ascending);
        objects.sort_by(|(a_id, a), (b_id, b)| {
            let ordering = created(a).cmp(&created(b)).then(a_id.cmp(b_id));
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
        Ok(Ok(objects.into_iter().map(|(id, _)| id).collect()))
    }
}
