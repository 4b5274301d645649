//! Email/copy (RFC 8621 §4.7, RFC 8620 §5.4): Emails of one account the user may access become
//! Emails of another. The message blob is shared (content-addressed), so a copy costs its
//! metadata only. With `onSuccessDestroyOriginal`, the originals are destroyed by an implicit
//! Email/set whose response follows this one.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::fields::{EMAIL_ID_PREFIX, parse_keywords, parse_mailbox_ids};
use super::store_new::{NewEmail, store_new_email};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::generic::check_if_in_state;
use crate::jmap::types::{AccountId, Id, State, UtcDate};
use crate::mail::sharing::view_in;
use crate::mail::store as mail_store;
use crate::store::BoxFuture;
use crate::store::commit::{DataType, commit_account, read_state};

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(copy(context, arguments))
}

async fn copy(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let to_account = arguments.take_account("accountId", context)?;
    let from_account = match arguments.take_required("fromAccountId")? {
        Value::String(text) => AccountId::parse(&text)
            .ok()
            .and_then(|account| context.authorize(account).ok())
            .ok_or_else(|| MethodError::new(MethodErrorType::FromAccountNotFound))?,
        _ => {
            return Err(MethodError::invalid_arguments(
                "\"fromAccountId\" must be a String",
            ));
        }
    };
    // RFC 8620 §5.4: the two accounts must differ.
    if from_account == to_account {
        return Err(MethodError::invalid_arguments(
            "\"accountId\" must differ from \"fromAccountId\"",
        ));
    }
    let if_from_in_state = arguments.take_string("ifFromInState")?;
    let if_in_state = arguments.take_string("ifInState")?;
    let Some(create) = arguments.take_object("create")? else {
        return Err(MethodError::invalid_arguments("\"create\" is required"));
    };
    let destroy_original = arguments.take_bool("onSuccessDestroyOriginal", false)?;
    let destroy_from_if_in_state = arguments.take_string("destroyFromIfInState")?;
    arguments.finish()?;
    let max_objects = context.engine.limits.max_objects_in_set;
    if create.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInSet ({max_objects}) copies"),
        ));
    }

    let from_id = from_account.number();
    let to_id = to_account.number();
    // Read the originals in one snapshot of the source account.
    let sources: Vec<(Id, Value, Option<u64>)> = create
        .into_iter()
        .map(|(creation_id, object)| {
            let original = object
                .get("id")
                .and_then(Value::as_str)
                .and_then(|text| Id::parse(text).ok())
                .and_then(|id| id.to_number(EMAIL_ID_PREFIX));
            Id::parse(&creation_id)
                .map(|creation_id| (creation_id, object, original))
                .map_err(|error| MethodError::invalid_arguments(format!("creation id: {error}")))
        })
        .collect::<Result<_, _>>()?;
    let original_ids: Vec<Option<u64>> = sources.iter().map(|(_, _, id)| *id).collect();
    let viewer = context.viewer.clone();
    let (from_state, originals) = context
        .engine
        .store
        .read(|tx| {
            let original_ids = original_ids.clone();
            let viewer = viewer.clone();
            Box::pin(async move {
                let state = read_state(tx, from_id, DataType::Email).await?;
                // RFC 9670: from a shared account, only Emails the caller sees are copied.
                let view = view_in(tx, from_id, &viewer).await?;
                let mut originals = Vec::with_capacity(original_ids.len());
                for id in original_ids {
                    let loaded = match id {
                        Some(id) => match mail_store::load_record(tx, from_id, id).await? {
                            Some(record)
                                if view
                                    .as_ref()
                                    .is_none_or(|view| view.shows_email(&record.mailbox_ids)) =>
                            {
                                mail_store::load_parsed(tx, from_id, id)
                                    .await?
                                    .map(|parsed| (record, parsed))
                            }
                            _ => None,
                        },
                        None => None,
                    };
                    originals.push(loaded);
                }
                Ok((state, originals))
            })
        })
        .await?;
    // RFC 8620 §5.4: ifFromInState mismatch.
    if let Some(expected) = &if_from_in_state
        && State::parse(expected) != Some(State::new(from_state))
    {
        return Err(MethodError::new(MethodErrorType::StateMismatch));
    }

    let mut prepared = Vec::with_capacity(sources.len());
    for ((creation_id, object, original_id), original) in sources.into_iter().zip(originals) {
        let result = match original {
            None => Err(SetError::not_found()),
            Some((record, parsed)) => {
                prepare_copy(context, from_id, to_id, object, record, parsed).await
            }
        };
        prepared.push((creation_id, original_id, result));
    }
    let prepared = Arc::new(prepared);
    let known_created_ids = Arc::new(context.created_ids.clone());
    let to_viewer = Arc::new((!context.owns(to_account)).then(|| context.viewer.clone()));
    let committed = commit_account(&context.engine.store, to_id, |tx, changes| {
        let to_viewer = Arc::clone(&to_viewer);
        let prepared = Arc::clone(&prepared);
        let known_created_ids = Arc::clone(&known_created_ids);
        let if_in_state = if_in_state.clone();
        Box::pin(async move {
            let expected = if_in_state.as_deref();
            let old_state = match check_if_in_state(tx, to_id, DataType::Email, expected).await? {
                Ok(state) => state,
                Err(error) => return Ok(Err(error)),
            };
            let mut created_ids = (*known_created_ids).clone();
            let mut created = Map::new();
            let mut not_created = Map::new();
            let mut copied_originals = Vec::new();
            let mut new_ids = Vec::new();
            for (creation_id, original_id, email) in prepared.iter() {
                let result = match email {
                    Err(error) => Err(error.clone()),
                    Ok(email) => {
                        let viewer = to_viewer.as_ref().as_ref();
                        store_new_email(tx, changes, to_id, email, &created_ids, viewer).await?
                    }
                };
                match result {
                    Ok((id, object)) => {
                        created.insert(creation_id.as_str().to_owned(), Value::Object(object));
                        created_ids.insert(creation_id.clone(), id.clone());
                        new_ids.push((creation_id.clone(), id));
                        copied_originals.extend(*original_id);
                    }
                    Err(error) => {
                        not_created.insert(creation_id.as_str().to_owned(), error.to_json());
                    }
                }
            }
            Ok(Ok((
                old_state,
                created,
                not_created,
                new_ids,
                copied_originals,
            )))
        })
    })
    .await?;
    let (old_state, created, not_created, new_ids, copied_originals) = committed.value?;
    let new_state = if committed.changed.contains(&DataType::Email) {
        committed.version
    } else {
        old_state
    };
    for (creation_id, id) in new_ids {
        context.record_created(creation_id, id);
    }
    let or_null = crate::jmap::generic::null_if_empty;
    let response = json!({
        "fromAccountId": from_account,
        "accountId": to_account,
        "oldState": State::new(old_state),
        "newState": State::new(new_state),
        "created": or_null(created),
        "notCreated": or_null(not_created),
    });
    // RFC 8620 §5.4: the originals that were copied are destroyed by an implicit /set.
    if destroy_original && !copied_originals.is_empty() {
        let destroy: Vec<Value> = copied_originals
            .iter()
            .map(|id| Value::String(Id::from_number(EMAIL_ID_PREFIX, *id).into_string()))
            .collect();
        let mut members = Map::new();
        members.insert("accountId".into(), json!(from_account));
        members.insert("destroy".into(), Value::Array(destroy));
        if let Some(state) = destroy_from_if_in_state {
            members.insert("ifInState".into(), Value::String(state));
        }
        let implicit = super::set::handle(context, Arguments::new(members)).await;
        let (name, arguments) = match implicit {
            Ok(arguments) => ("Email/set".to_owned(), arguments),
            Err(error) => ("error".to_owned(), error.to_json()),
        };
        context.implicit_responses.push((name, arguments));
    }
    Ok(response)
}

/// Validates the overrides (RFC 8621 §4.7: mailboxIds, keywords, receivedAt) and gives the
/// target account its reference to the message blob.
async fn prepare_copy(
    context: &CallContext<'_>,
    from_id: u32,
    to_id: u32,
    object: Value,
    record: mail_store::EmailRecord,
    parsed: crate::mail::parsed::ParsedEmail,
) -> Result<NewEmail, SetError> {
    let Value::Object(mut object) = object else {
        return Err(SetError::invalid_properties(
            Vec::<String>::new(),
            "an Email/copy entry must be an object",
        ));
    };
    object.remove("id");
    let unknown: Vec<String> = object
        .keys()
        .filter(|key| !matches!(key.as_str(), "mailboxIds" | "keywords" | "receivedAt"))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(SetError::invalid_properties(
            unknown,
            "only mailboxIds, keywords and receivedAt can be set on a copy",
        ));
    }
    let mailbox_ids = object.remove("mailboxIds").unwrap_or(Value::Null);
    parse_mailbox_ids(Some(&mailbox_ids), &context.created_ids)?;
    let keywords = match object.remove("keywords") {
        None => record.keywords.clone(),
        Some(value) => parse_keywords(Some(&value))?,
    };
    let received_at = match object.remove("receivedAt") {
        None | Some(Value::Null) => record.received_at,
        Some(Value::String(text)) => UtcDate::parse(&text)
            .map_err(|_| SetError::invalid_properties(["receivedAt"], "not a UTCDate"))?
            .unix_seconds(),
        Some(_) => {
            return Err(SetError::invalid_properties(
                ["receivedAt"],
                "not a UTCDate",
            ));
        }
    };
    context
        .engine
        .blobs
        .copy(from_id, to_id, &record.blob)
        .await
        .map_err(|error| {
            SetError::with_description(SetErrorType::BlobNotFound, error.to_string())
        })?;
    Ok(NewEmail {
        blob: record.blob,
        parsed,
        mailbox_ids,
        keywords,
        received_at,
    })
}
