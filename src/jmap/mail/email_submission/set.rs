//! EmailSubmission/set (RFC 8621 §7.5): the generic /set (creates in `create.rs`, the cancel
//! in `update.rs`, destroys forget the record), then the implicit Email/set that
//! `onSuccessUpdateEmail` and `onSuccessDestroyEmail` ask for — typically "move the draft to
//! Sent and clear `$draft`" — whose response follows this one.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::EmailSubmission;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::generic;
use crate::jmap::mail::email::fields::EMAIL_ID_PREFIX;
use crate::jmap::types::{AccountId, Id};
use crate::mail::submission::{self, SUBMISSION_ID_PREFIX};
use crate::store::BoxFuture;

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(set(context, arguments))
}

/// The two extra arguments (RFC 8621 §7.5): keyed by EmailSubmission id, or by `#creationId`
/// for a submission created in this same call.
struct OnSuccess {
    update_email: Map<String, Value>,
    destroy_email: Vec<String>,
}

impl OnSuccess {
    fn is_empty(&self) -> bool {
        self.update_email.is_empty() && self.destroy_email.is_empty()
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.update_email
            .keys()
            .map(String::as_str)
            .chain(self.destroy_email.iter().map(String::as_str))
    }
}

async fn set(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let on_success = OnSuccess {
        update_email: arguments
            .take_object("onSuccessUpdateEmail")?
            .unwrap_or_default(),
        destroy_email: arguments
            .take_string_list("onSuccessDestroyEmail")?
            .unwrap_or_default(),
    };
    for key in on_success.keys() {
        let plain = key.strip_prefix('#').unwrap_or(key);
        Id::parse(plain).map_err(|error| {
            crate::jmap::error::MethodError::invalid_arguments(format!(
                "onSuccess key {key:?}: {error}"
            ))
        })?;
    }
    let members = arguments.into_inner();
    let account = members
        .get("accountId")
        .and_then(Value::as_str)
        .and_then(|text| AccountId::parse(text).ok());
    // The Emails of existing submissions named by onSuccess*, read before a destroy in this
    // call forgets them.
    let existing_ids: Vec<u64> = on_success
        .keys()
        .filter(|key| !key.starts_with('#'))
        .filter_map(|key| Id::parse(key).ok()?.to_number(SUBMISSION_ID_PREFIX))
        .collect();
    let mut email_of = match account {
        Some(account) if !on_success.is_empty() => {
            let account = context.authorize(account)?;
            emails_of(context, account, existing_ids).await?
        }
        _ => HashMap::new(),
    };

    let response = generic::set::set::<EmailSubmission>(context, Arguments::new(members)).await?;
    if on_success.is_empty() {
        return Ok(response);
    }
    let Some(account) = account else {
        return Ok(response);
    };
    // Which keys name a submission this call created, updated or destroyed.
    let mut succeeded: HashMap<String, u64> = HashMap::new();
    let mut created_ids = Vec::new();
    for key in on_success.keys() {
        let id = match key.strip_prefix('#') {
            Some(creation_id) => response["created"][creation_id]["id"]
                .as_str()
                .and_then(|text| Id::parse(text).ok()?.to_number(SUBMISSION_ID_PREFIX)),
            None => {
                let updated = response["updated"].get(key).is_some();
                let destroyed = response["destroyed"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id == key));
                (updated || destroyed)
                    .then(|| Id::parse(key).ok()?.to_number(SUBMISSION_ID_PREFIX))
                    .flatten()
            }
        };
        if let Some(id) = id {
            if key.starts_with('#') {
                created_ids.push(id);
            }
            succeeded.insert(key.to_owned(), id);
        }
    }
    email_of.extend(emails_of(context, account, created_ids).await?);
    let email_for = |key: &str| -> Option<String> {
        let submission_id = succeeded.get(key)?;
        let email_id = email_of.get(submission_id)?;
        Some(Id::from_number(EMAIL_ID_PREFIX, *email_id).into_string())
    };
    let update: Map<String, Value> = on_success
        .update_email
        .iter()
        .filter_map(|(key, patch)| Some((email_for(key)?, patch.clone())))
        .collect();
    let mut destroy: Vec<Value> = Vec::new();
    for email_id in on_success
        .destroy_email
        .iter()
        .filter_map(|key| email_for(key))
    {
        let email_id = Value::String(email_id);
        if !destroy.contains(&email_id) {
            destroy.push(email_id);
        }
    }
    if update.is_empty() && destroy.is_empty() {
        return Ok(response);
    }
    // RFC 8621 §7.5: one implicit Email/set, answered after this response.
    let mut implicit = Map::new();
    implicit.insert("accountId".into(), Value::String(account.to_string()));
    if !update.is_empty() {
        implicit.insert("update".into(), Value::Object(update));
    }
    if !destroy.is_empty() {
        implicit.insert("destroy".into(), Value::Array(destroy));
    }
    let outcome = crate::jmap::mail::email::set::handle(context, Arguments::new(implicit)).await;
    let (name, arguments) = match outcome {
        Ok(arguments) => ("Email/set".to_owned(), arguments),
        Err(error) => ("error".to_owned(), error.to_json()),
    };
    context.implicit_responses.push((name, arguments));
    Ok(response)
}

/// The emailId of each submission that exists.
async fn emails_of(
    context: &CallContext<'_>,
    account: AccountId,
    submission_ids: Vec<u64>,
) -> Result<HashMap<u64, u64>, crate::jmap::error::MethodError> {
    if submission_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let account_id = account.number();
    let found = context
        .engine
        .store
        .read(move |tx| {
            let submission_ids = submission_ids.clone();
            Box::pin(async move {
                let mut found = HashMap::with_capacity(submission_ids.len());
                for id in submission_ids {
                    if let Some(record) = submission::load(tx, account_id, id).await? {
                        found.insert(id, record.email_id);
                    }
                }
                Ok(found)
            })
        })
        .await?;
    Ok(found)
}
