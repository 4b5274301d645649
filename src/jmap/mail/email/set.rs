//! Email/set (RFC 8621 §4.6). Creates build an RFC 5322 message from the JMAP properties
//! (`create.rs`), store it as a blob, then — with the updates and destroys — commit in one
//! transaction. Only `keywords` and `mailboxIds` can change after creation, whole or by patch
//! path (`keywords/$seen`, `mailboxIds/<id>`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::create::build_message;
use super::fields::{
    EMAIL_ID_PREFIX, keywords_json, mailbox_ids_json, missing_mailbox, no_such_mailbox,
    parse_keywords, parse_mailbox_ids,
};
use super::rights;
use super::store_new::{NewEmail, store_new_email};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, SetError, SetErrorType};
use crate::jmap::generic::check_if_in_state;
use crate::jmap::generic::patch::apply_patch;
use crate::jmap::generic::set::{SetArguments, SetOutcome};
use crate::jmap::types::{Id, IdOrReference, UtcDate};
use crate::mail::mailbox::load_all;
use crate::mail::parsed::parse_message;
use crate::mail::sharing::{SharedView, Viewer};
use crate::mail::store as mail_store;
use crate::store::commit::{Changes, DataType, commit_account};
use crate::store::{BoxFuture, StoreResult, Transaction};

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(set(context, arguments))
}

struct SetInput {
    account_id: u32,
    /// The grantee writing to a shared account (`rights`); `None` for the owner.
    viewer: Option<Viewer>,
    if_in_state: Option<String>,
    /// Creation id → the stored message, or why it cannot be created.
    creates: Vec<(Id, Result<NewEmail, SetError>)>,
    updates: Vec<(String, Value)>,
    destroys: Vec<String>,
    known_created_ids: HashMap<Id, Id>,
}

async fn set(context: &mut CallContext<'_>, arguments: Arguments) -> MethodResult {
    let SetArguments {
        account,
        if_in_state,
        create,
        update,
        destroy,
    } = SetArguments::take(arguments, context)?;
    let account_id = account.number();
    let mut creates = Vec::with_capacity(create.len());
    for (creation_id, object) in create {
        let creation_id = Id::parse(&creation_id)
            .map_err(|error| MethodError::invalid_arguments(format!("creation id: {error}")))?;
        let prepared = prepare_create(context, account_id, object).await;
        creates.push((creation_id, prepared));
    }
    let input = Arc::new(SetInput {
        account_id,
        viewer: (!context.owns(account)).then(|| context.viewer.clone()),
        if_in_state,
        creates,
        updates: update.into_iter().collect(),
        destroys: destroy,
        known_created_ids: context.created_ids.clone(),
    });

    let committed = commit_account(&context.engine.store, account_id, |tx, changes| {
        let input = Arc::clone(&input);
        Box::pin(async move { apply(tx, changes, &input).await })
    })
    .await?;
    let outcome = committed.value?;
    let new_version = committed
        .changed
        .contains(&DataType::Email)
        .then_some(committed.version);
    Ok(outcome.respond(context, account, new_version))
}

/// Everything about a create that needs no transaction: validation, building the message,
/// storing it as a blob, parsing it back (so the stored metadata is what any reader sees).
async fn prepare_create(
    context: &CallContext<'_>,
    account_id: u32,
    object: Value,
) -> Result<NewEmail, SetError> {
    let Value::Object(mut object) = object else {
        return Err(SetError::invalid_properties(
            Vec::<String>::new(),
            "the Email to create is not a JSON object",
        ));
    };
    let mailbox_ids = object.remove("mailboxIds").unwrap_or(Value::Null);
    // Checked now (the ids themselves are resolved in the commit).
    parse_mailbox_ids(Some(&mailbox_ids), &context.created_ids).map(|_| ())?;
    let keywords = parse_keywords(object.remove("keywords").as_ref())?;
    let received_at = match object.remove("receivedAt") {
        None | Some(Value::Null) => UtcDate::now(),
        Some(Value::String(text)) => UtcDate::parse(&text).map_err(|_| {
            SetError::invalid_properties(["receivedAt"], "receivedAt must be a UTCDate")
        })?,
        Some(_) => {
            return Err(SetError::invalid_properties(
                ["receivedAt"],
                "receivedAt must be a UTCDate",
            ));
        }
    };
    let raw = build_message(&context.engine.blobs, account_id, &object).await?;
    let parsed = parse_message(&raw);
    let stored = context
        .engine
        .blobs
        .put(account_id, Bytes::from(raw))
        .await
        .map_err(|error| SetError::with_description(SetErrorType::TooLarge, error.to_string()))?;
    Ok(NewEmail {
        blob: stored.id,
        parsed,
        mailbox_ids,
        keywords,
        received_at: received_at.unix_seconds(),
    })
}

async fn apply(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    input: &SetInput,
) -> StoreResult<Result<SetOutcome, MethodError>> {
    let account_id = input.account_id;
    let if_in_state = input.if_in_state.as_deref();
    let old_state = match check_if_in_state(tx, account_id, DataType::Email, if_in_state).await? {
        Ok(state) => state,
        Err(error) => return Ok(Err(error)),
    };
    let mut outcome = SetOutcome {
        old_state,
        ..SetOutcome::default()
    };
    let mut created_ids = input.known_created_ids.clone();
    let view = match &input.viewer {
        Some(viewer) => Some(SharedView::of_account(
            account_id,
            &load_all(tx, account_id).await?,
            viewer,
        )),
        None => None,
    };
    for (creation_id, prepared) in &input.creates {
        let result = match prepared {
            Err(error) => Err(error.clone()),
            Ok(email) => {
                let viewer = input.viewer.as_ref();
                store_new_email(tx, changes, account_id, email, &created_ids, viewer).await?
            }
        };
        match result {
            Ok((id, created)) => {
                outcome
                    .created
                    .insert(creation_id.as_str().to_owned(), Value::Object(created));
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
        .filter_map(|text| resolve_email(text, &created_ids))
        .collect();
    for (text, patch) in &input.updates {
        let result = match resolve_email(text, &created_ids) {
            None => Err(SetError::not_found()),
            // RFC 8620 §5.3: willDestroy for an existing Email also being destroyed.
            Some(id) if destroy_targets.contains(&id) => {
                match mail_store::load_record(tx, account_id, id).await? {
                    Some(_) => Err(SetError::new(SetErrorType::WillDestroy)),
                    None => Err(SetError::not_found()),
                }
            }
            Some(id) => {
                let target = Target {
                    account_id,
                    email_id: id,
                    view: view.as_ref(),
                };
                update_one(tx, changes, &target, &created_ids, patch).await?
            }
        };
        match result {
            Ok(()) => {
                outcome.updated.insert(text.clone(), Value::Null);
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
        let resolved = resolve_email(text, &created_ids);
        if let (Some(view), Some(id)) = (&view, resolved)
            && let Some(refusal) = destroy_refusal(tx, account_id, view, id).await?
        {
            outcome
                .not_destroyed
                .insert(text.clone(), refusal.to_json());
            continue;
        }
        let destroyed = match resolved {
            None => None,
            Some(id) => mail_store::destroy_email(tx, changes, account_id, id)
                .await?
                .then_some(id),
        };
        // RFC 8620 §5.3: `destroyed` lists ids, also for `#creationId` references.
        if let Some(id) = destroyed {
            let id = Id::from_number(EMAIL_ID_PREFIX, id);
            outcome.destroyed.push(Value::String(id.into_string()));
        } else {
            outcome
                .not_destroyed
                .insert(text.clone(), SetError::not_found().to_json());
        }
    }
    Ok(Ok(outcome))
}

fn resolve_email(text: &str, created_ids: &HashMap<Id, Id>) -> Option<u64> {
    let id = match IdOrReference::parse(text).ok()? {
        IdOrReference::Id(id) => id,
        IdOrReference::Reference(creation_id) => created_ids.get(&creation_id)?.clone(),
    };
    id.to_number(EMAIL_ID_PREFIX)
}

/// Why a grantee may not destroy the Email (notFound when they do not see it).
async fn destroy_refusal(
    tx: &mut dyn Transaction,
    account_id: u32,
    view: &SharedView,
    email_id: u64,
) -> StoreResult<Option<SetError>> {
    let Some(record) = mail_store::load_record(tx, account_id, email_id).await? else {
        return Ok(None);
    };
    if !view.shows_email(&record.mailbox_ids) {
        return Ok(Some(SetError::not_found()));
    }
    Ok(rights::check_destroy(view, &record).err())
}

/// The Email an update is for, and the grantee's view when the account is shared.
struct Target<'a> {
    account_id: u32,
    email_id: u64,
    view: Option<&'a SharedView>,
}

/// Every Email property other than keywords and mailboxIds is immutable (RFC 8621 §4.6).
async fn update_one(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    target: &Target<'_>,
    created_ids: &HashMap<Id, Id>,
    patch: &Value,
) -> StoreResult<Result<(), SetError>> {
    let Target {
        account_id,
        email_id,
        view,
    } = *target;
    let Value::Object(patch) = patch else {
        return Ok(Err(SetError::invalid_patch(
            "a PatchObject must be a JSON object",
        )));
    };
    let Some(record) = mail_store::load_record(tx, account_id, email_id).await? else {
        return Ok(Err(SetError::not_found()));
    };
    if view.is_some_and(|view| !view.shows_email(&record.mailbox_ids)) {
        return Ok(Err(SetError::not_found()));
    }
    let shown_mailboxes = match view {
        Some(view) => rights::visible_mailboxes(view, &record),
        None => record.mailbox_ids.clone(),
    };
    let mut object = Map::with_capacity(2);
    object.insert("keywords".into(), keywords_json(&record.keywords));
    object.insert("mailboxIds".into(), mailbox_ids_json(&shown_mailboxes));
    let default_value = |property: &str| match property {
        "keywords" => Some(Value::Object(Map::new())),
        _ => Some(Value::Null),
    };
    let touched = match apply_patch(&mut object, patch, default_value) {
        Ok(touched) => touched,
        Err(error) => return Ok(Err(error)),
    };
    let immutable: Vec<&str> = touched
        .iter()
        .map(String::as_str)
        .filter(|property| *property != "keywords" && *property != "mailboxIds")
        .collect();
    if !immutable.is_empty() {
        return Ok(Err(SetError::invalid_properties(
            immutable,
            "only keywords and mailboxIds can change",
        )));
    }
    let keywords = match parse_keywords(object.get("keywords")) {
        Ok(keywords) => keywords,
        Err(error) => return Ok(Err(error)),
    };
    let mut mailbox_ids = match parse_mailbox_ids(object.get("mailboxIds"), created_ids) {
        Ok(ids) => ids,
        Err(error) => return Ok(Err(error)),
    };
    if let Some(view) = view {
        if let Some(unseen) = rights::unseen_mailbox(view, &mailbox_ids) {
            return Ok(Err(no_such_mailbox(unseen)));
        }
        mailbox_ids = rights::with_hidden(view, &record, &mailbox_ids);
        if let Err(error) = rights::check_update(view, &record, &mailbox_ids, &keywords) {
            return Ok(Err(error));
        }
    }
    if mailbox_ids != record.mailbox_ids
        && let Some(missing) = missing_mailbox(tx, account_id, &mailbox_ids).await?
    {
        return Ok(Err(no_such_mailbox(missing)));
    }
    mail_store::update_email(tx, changes, account_id, email_id, mailbox_ids, keywords).await?;
    Ok(Ok(()))
}
