//! `Foo/set` (RFC 8620 §5.3): creates, then updates, then destroys, in one commit; each item
//! that fails is a SetError in `notCreated`/`notUpdated`/`notDestroyed`, the rest commits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::patch::apply_patch;
use super::{ObjectType, WriteScope, check_if_in_state};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::types::{AccountId, Id, IdOrReference, State};
use crate::mail::sharing::{Viewer, object_visible, view_in};
use crate::store::commit::{Changes, commit_account};
use crate::store::{StoreResult, Transaction};

/// The validated arguments, shared by every attempt of the commit closure (which may run
/// more than once, so it must not consume them).
struct SetInput {
    account_id: u32,
    /// The grantee writing to a shared account (RFC 9670); `None` for the owner.
    viewer: Option<Viewer>,
    if_in_state: Option<String>,
    creates: Vec<(Id, Value)>,
    updates: Vec<(String, Value)>,
    destroys: Vec<String>,
    known_created_ids: HashMap<Id, Id>,
}

/// The arguments every /set takes (RFC 8620 §5.3), read and checked against maxObjectsInSet.
pub struct SetArguments {
    pub account: AccountId,
    pub if_in_state: Option<String>,
    pub create: Map<String, Value>,
    pub update: Map<String, Value>,
    pub destroy: Vec<String>,
}

impl SetArguments {
    pub fn take(
        mut arguments: Arguments,
        context: &CallContext<'_>,
    ) -> Result<SetArguments, MethodError> {
        let account = arguments.take_account("accountId", context)?;
        let if_in_state = arguments.take_string("ifInState")?;
        let create = arguments.take_object("create")?.unwrap_or_default();
        let update = arguments.take_object("update")?.unwrap_or_default();
        let destroy = arguments.take_string_list("destroy")?.unwrap_or_default();
        arguments.finish()?;
        // RFC 8620 §5.3: more operations than maxObjectsInSet is requestTooLarge.
        let max_objects = context.engine.limits.max_objects_in_set;
        let total = (create.len() + update.len() + destroy.len()) as u64;
        if total > max_objects {
            return Err(MethodError::with_description(
                MethodErrorType::RequestTooLarge,
                format!("{total} operations, more than maxObjectsInSet ({max_objects})"),
            ));
        }
        Ok(SetArguments {
            account,
            if_in_state,
            create,
            update,
            destroy,
        })
    }
}

/// What one /set did, item by item; turned into the response by [`SetOutcome::respond`].
#[derive(Default)]
pub struct SetOutcome {
    pub old_state: u64,
    pub created: Map<String, Value>,
    pub not_created: Map<String, Value>,
    pub updated: Map<String, Value>,
    pub not_updated: Map<String, Value>,
    pub destroyed: Vec<Value>,
    pub not_destroyed: Map<String, Value>,
    pub new_created_ids: Vec<(Id, Id)>,
}

impl SetOutcome {
    /// The /set response (RFC 8620 §5.3); records the new creation ids for later calls.
    /// `new_version` is the commit's version when it changed the type, else the state stays.
    pub fn respond(
        self,
        context: &mut CallContext<'_>,
        account: AccountId,
        new_version: Option<u64>,
    ) -> Value {
        let new_state = new_version.unwrap_or(self.old_state);
        for (creation_id, id) in self.new_created_ids {
            context.record_created(creation_id, id);
        }
        let or_null = super::null_if_empty;
        json!({
            "accountId": account,
            "oldState": State::new(self.old_state),
            "newState": State::new(new_state),
            "created": or_null(self.created),
            "updated": or_null(self.updated),
            "destroyed": if self.destroyed.is_empty() { Value::Null } else { Value::Array(self.destroyed) },
            "notCreated": or_null(self.not_created),
            "notUpdated": or_null(self.not_updated),
            "notDestroyed": or_null(self.not_destroyed),
        })
    }
}

pub async fn set<T: ObjectType>(
    context: &mut CallContext<'_>,
    arguments: Arguments,
) -> MethodResult {
    let SetArguments {
        account,
        if_in_state,
        create,
        update,
        destroy,
    } = SetArguments::take(arguments, context)?;
    let creates = create
        .into_iter()
        .map(|(creation_id, object)| {
            Id::parse(&creation_id)
                .map(|creation_id| (creation_id, object))
                .map_err(|error| MethodError::invalid_arguments(format!("creation id: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let creates = referenced_first(creates);
    let mut updates: Vec<(String, Value)> = update.into_iter().collect();
    T::order_updates(&mut updates);
    let input = Arc::new(SetInput {
        account_id: account.number(),
        viewer: (!context.owns(account)).then(|| context.viewer.clone()),
        if_in_state,
        creates,
        updates,
        destroys: destroy,
        known_created_ids: context.created_ids.clone(),
    });

    let committed = commit_account(&context.engine.store, account.number(), |tx, changes| {
        let input = Arc::clone(&input);
        Box::pin(async move { apply::<T>(tx, changes, &input).await })
    })
    .await?;
    let outcome = committed.value?;
    let new_version = committed
        .changed
        .contains(&T::DATA_TYPE)
        .then_some(committed.version);
    Ok(outcome.respond(context, account, new_version))
}

async fn apply<T: ObjectType>(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    input: &SetInput,
) -> StoreResult<Result<SetOutcome, MethodError>> {
    let account_id = input.account_id;
    let expected = input.if_in_state.as_deref();
    let old_state = match check_if_in_state(tx, account_id, T::DATA_TYPE, expected).await? {
        Ok(state) => state,
        Err(error) => return Ok(Err(error)),
    };
    let mut outcome = SetOutcome {
        old_state,
        ..SetOutcome::default()
    };
    let mut created_ids = input.known_created_ids.clone();

    for (creation_id, object) in &input.creates {
        let result = match check_new_object::<T>(object) {
            Err(error) => Err(error),
            Ok(object) => {
                let scope = WriteScope {
                    account_id,
                    created_ids: &created_ids,
                    viewer: input.viewer.as_ref(),
                };
                T::create(tx, changes, &scope, object).await?
            }
        };
        match result {
            Ok(created) => {
                let id = Id::from_number(T::ID_PREFIX, created.id);
                let mut reported = created.server_set;
                reported.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
                outcome
                    .created
                    .insert(creation_id.as_str().to_owned(), Value::Object(reported));
                created_ids.insert(creation_id.clone(), id.clone());
                outcome.new_created_ids.push((creation_id.clone(), id));
            }
            Err(error) => {
                outcome
                    .not_created
                    .insert(creation_id.as_str().to_owned(), error.to_json());
            }
        }
    }

    let destroy_targets: HashSet<u64> = input
        .destroys
        .iter()
        .filter_map(|text| resolve::<T>(text, &created_ids))
        .collect();
    for (text, patch) in &input.updates {
        let result = match resolve::<T>(text, &created_ids) {
            None => Err(SetError::not_found()),
            // RFC 8620 §5.3: an object both updated and destroyed is not updated.
            Some(id) if destroy_targets.contains(&id) => {
                Err(SetError::new(SetErrorType::WillDestroy))
            }
            Some(id) => {
                let scope = WriteScope {
                    account_id,
                    created_ids: &created_ids,
                    viewer: input.viewer.as_ref(),
                };
                update_one::<T>(tx, changes, &scope, id, patch).await?
            }
        };
        match result {
            Ok(server_changed) => {
                let value = server_changed.map_or(Value::Null, Value::Object);
                outcome.updated.insert(text.clone(), value);
            }
            Err(error) => {
                outcome.not_updated.insert(text.clone(), error.to_json());
            }
        }
    }

    let mut seen = HashSet::with_capacity(input.destroys.len());
    for text in &input.destroys {
        if !seen.insert(text.as_str()) {
            continue;
        }
        let resolved = resolve::<T>(text, &created_ids);
        let result = match resolved {
            None => Err(SetError::not_found()),
            Some(id)
                if !visible_to(tx, account_id, input.viewer.as_ref(), T::DATA_TYPE, id).await? =>
            {
                Err(SetError::not_found())
            }
            Some(id) => {
                let scope = WriteScope {
                    account_id,
                    created_ids: &created_ids,
                    viewer: input.viewer.as_ref(),
                };
                T::destroy(tx, changes, &scope, id).await?
            }
        };
        match (result, resolved) {
            // RFC 8620 §5.3: `destroyed` lists ids, also for a `#creationId` the client gave.
            (Ok(()), Some(id)) => outcome.destroyed.push(Value::String(
                Id::from_number(T::ID_PREFIX, id).into_string(),
            )),
            (Ok(()), None) => outcome.destroyed.push(Value::String(text.clone())),
            (Err(error), _) => {
                outcome.not_destroyed.insert(text.clone(), error.to_json());
            }
        }
    }
    Ok(Ok(outcome))
}

/// RFC 8620 §5.3: the server MUST order the creates of one call so that a create happens
/// before another create references its creation id. A reference is a `#creationId` string in
/// a property value or a map key (e.g. a child Mailbox's `parentId`, an Email's `mailboxIds`).
/// Without references (and for reference cycles) the order is unchanged.
fn referenced_first(creates: Vec<(Id, Value)>) -> Vec<(Id, Value)> {
    fn note(text: &str, ids: &HashSet<&str>, found: &mut HashSet<String>) {
        if let Some(creation_id) = text.strip_prefix('#')
            && ids.contains(creation_id)
        {
            found.insert(creation_id.to_owned());
        }
    }
    fn references(value: &Value, ids: &HashSet<&str>, found: &mut HashSet<String>) {
        match value {
            Value::String(text) => note(text, ids, found),
            Value::Array(items) => items.iter().for_each(|item| references(item, ids, found)),
            Value::Object(members) => {
                for (key, member) in members {
                    note(key, ids, found);
                    references(member, ids, found);
                }
            }
            _ => {}
        }
    }
    let ids: HashSet<&str> = creates.iter().map(|(id, _)| id.as_str()).collect();
    let needs: Vec<HashSet<String>> = creates
        .iter()
        .map(|(id, object)| {
            let mut found = HashSet::new();
            references(object, &ids, &mut found);
            found.remove(id.as_str());
            found
        })
        .collect();
    if needs.iter().all(HashSet::is_empty) {
        return creates;
    }
    let mut pending: Vec<Option<(Id, Value)>> = creates.into_iter().map(Some).collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut ordered = Vec::with_capacity(pending.len());
    loop {
        let ready = (0..pending.len()).find(|&index| {
            pending[index].is_some() && needs[index].iter().all(|id| done.contains(id))
        });
        let Some(index) = ready.or_else(|| pending.iter().position(Option::is_some)) else {
            break;
        };
        if let Some((id, object)) = pending[index].take() {
            done.insert(id.as_str().to_owned());
            ordered.push((id, object));
        }
    }
    ordered
}

/// An id or `#creationId` of this type, as a store id; `None` names nothing.
fn resolve<T: ObjectType>(text: &str, created_ids: &HashMap<Id, Id>) -> Option<u64> {
    let id = match IdOrReference::parse(text).ok()? {
        IdOrReference::Id(id) => id,
        IdOrReference::Reference(creation_id) => created_ids.get(&creation_id)?.clone(),
    };
    id.to_number(T::ID_PREFIX)
}

/// RFC 8620 §5.3: a create must be an object of known, client-settable properties.
fn check_new_object<T: ObjectType>(object: &Value) -> Result<Map<String, Value>, SetError> {
    let Value::Object(members) = object else {
        return Err(SetError::with_description(
            SetErrorType::InvalidProperties,
            "the object to create is not a JSON object",
        ));
    };
    let invalid: Vec<&str> = members
        .keys()
        .map(String::as_str)
        .filter(|property| !is_client_settable::<T>(property))
        .collect();
    if !invalid.is_empty() {
        return Err(SetError::invalid_properties(
            invalid,
            "unknown or server-set properties",
        ));
    }
    Ok(members.clone())
}

/// Whether the object exists for the writer: always for the owner (the type answers
/// notFound itself), for a grantee when the grants show it (RFC 9670).
async fn visible_to(
    tx: &mut dyn Transaction,
    account_id: u32,
    viewer: Option<&Viewer>,
    data_type: crate::store::commit::DataType,
    id: u64,
) -> StoreResult<bool> {
    let Some(viewer) = viewer else {
        return Ok(true);
    };
    match view_in(tx, account_id, viewer).await? {
        Some(view) => object_visible(tx, account_id, &view, data_type, id).await,
        None => Ok(true),
    }
}

fn is_client_settable<T: ObjectType>(property: &str) -> bool {
    property != "id"
        && T::PROPERTIES.contains(&property)
        && !T::SERVER_SET_PROPERTIES.contains(&property)
}

async fn update_one<T: ObjectType>(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    scope: &WriteScope<'_>,
    id: u64,
    patch: &Value,
) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
    let account_id = scope.account_id;
    let Value::Object(patch) = patch else {
        return Ok(Err(SetError::invalid_patch(
            "a PatchObject must be a JSON object",
        )));
    };
    let Some(mut current) = T::load(tx, account_id, id).await? else {
        return Ok(Err(SetError::not_found()));
    };
    // RFC 9670: a grantee patches what they see of the object.
    if let Some(viewer) = scope.viewer
        && let Some(view) = view_in(tx, account_id, viewer).await?
    {
        if !object_visible(tx, account_id, &view, T::DATA_TYPE, id).await? {
            return Ok(Err(SetError::not_found()));
        }
        current = T::shared_object(&view, id, current);
    }
    let mut patched = current.clone();
    let own_id = Value::String(Id::from_number(T::ID_PREFIX, id).into_string());
    patched.insert("id".to_owned(), own_id.clone());
    let touched = match apply_patch(&mut patched, patch, T::default_value) {
        Ok(touched) => touched,
        Err(error) => return Ok(Err(error)),
    };
    // RFC 8620 §5.3: unknown properties, and server-set ones changed to another value, are
    // invalidProperties.
    let invalid: Vec<&str> = touched
        .iter()
        .map(String::as_str)
        .filter(|property| {
            if is_client_settable::<T>(property) {
                return false;
            }
            let now = patched.get(*property);
            let before = if *property == "id" {
                Some(&own_id)
            } else {
                current.get(*property)
            };
            !T::PROPERTIES.contains(property) || now != before
        })
        .collect();
    if !invalid.is_empty() {
        return Ok(Err(SetError::invalid_properties(
            invalid,
            "unknown or server-set properties",
        )));
    }
    patched.remove("id");
    T::update(tx, changes, scope, id, current, patched).await
}
