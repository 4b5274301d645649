//! `VacationResponse/set` (RFC 8621 §8.2): only updates of the singleton; creating or
//! destroying it is a `singleton` SetError. One commit, as every /set.

use std::sync::Arc;

use serde_json::Value;

use super::{SINGLETON_ID, check, default_value, load_json, save_json};
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, SetError, SetErrorType};
use crate::jmap::generic::check_if_in_state;
use crate::jmap::generic::patch::apply_patch;
use crate::jmap::generic::set::{SetArguments, SetOutcome};
use crate::store::commit::{Changes, DataType, commit_account};
use crate::store::{BoxFuture, StoreResult, Transaction};

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(set(context, arguments))
}

struct SetInput {
    account_id: u32,
    if_in_state: Option<String>,
    creation_ids: Vec<String>,
    updates: Vec<(String, Value)>,
    destroys: Vec<String>,
}

async fn set(context: &mut CallContext<'_>, arguments: Arguments) -> MethodResult {
    let SetArguments {
        account,
        if_in_state,
        create,
        update,
        destroy,
    } = SetArguments::take(arguments, context)?;
    let input = Arc::new(SetInput {
        account_id: account.number(),
        if_in_state,
        creation_ids: create.into_iter().map(|(id, _)| id).collect(),
        updates: update.into_iter().collect(),
        destroys: destroy,
    });
    let committed = commit_account(&context.engine.store, account.number(), |tx, changes| {
        let input = Arc::clone(&input);
        Box::pin(async move { apply(tx, changes, &input).await })
    })
    .await?;
    let outcome = committed.value?;
    let new_version = committed
        .changed
        .contains(&DataType::VacationResponse)
        .then_some(committed.version);
    Ok(outcome.respond(context, account, new_version))
}

fn singleton_error(what: &str) -> Value {
    SetError::with_description(
        SetErrorType::Singleton,
        format!("the VacationResponse is a singleton: it cannot be {what}"),
    )
    .to_json()
}

async fn apply(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    input: &SetInput,
) -> StoreResult<Result<SetOutcome, MethodError>> {
    let account_id = input.account_id;
    let expected = input.if_in_state.as_deref();
    let old_state =
        match check_if_in_state(tx, account_id, DataType::VacationResponse, expected).await? {
            Ok(state) => state,
            Err(error) => return Ok(Err(error)),
        };
    let mut outcome = SetOutcome {
        old_state,
        ..SetOutcome::default()
    };
    // RFC 8621 §8.2: the singleton cannot be created or destroyed.
    for creation_id in &input.creation_ids {
        outcome
            .not_created
            .insert(creation_id.clone(), singleton_error("created"));
    }
    for id in &input.destroys {
        let error = if id == SINGLETON_ID {
            singleton_error("destroyed")
        } else {
            SetError::not_found().to_json()
        };
        outcome.not_destroyed.insert(id.clone(), error);
    }
    for (id, patch) in &input.updates {
        if id != SINGLETON_ID {
            outcome
                .not_updated
                .insert(id.clone(), SetError::not_found().to_json());
            continue;
        }
        match update(tx, changes, account_id, patch).await? {
            Ok(()) => {
                outcome.updated.insert(id.clone(), Value::Null);
            }
            Err(error) => {
                outcome.not_updated.insert(id.clone(), error.to_json());
            }
        }
    }
    Ok(Ok(outcome))
}

async fn update(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    patch: &Value,
) -> StoreResult<Result<(), SetError>> {
    let Value::Object(patch) = patch else {
        return Ok(Err(SetError::invalid_patch(
            "a PatchObject must be a JSON object",
        )));
    };
    let current = load_json(tx, account_id).await?;
    let mut patched = current.clone();
    patched.insert("id".to_owned(), Value::from(SINGLETON_ID));
    let touched = match apply_patch(&mut patched, patch, default_value) {
        Ok(touched) => touched,
        Err(error) => return Ok(Err(error)),
    };
    // RFC 8620 §5.3: the id is server-set; setting it to another value is invalid.
    if touched.iter().any(|property| property == "id")
        && patched.get("id") != Some(&Value::from(SINGLETON_ID))
    {
        return Ok(Err(SetError::invalid_properties(
            ["id"],
            "id is set by the server",
        )));
    }
    patched.remove("id");
    if let Err(error) = check(&patched) {
        return Ok(Err(error));
    }
    if patched != current {
        save_json(tx, account_id, &patched)?;
        // Marks the type changed (no per-id log for a singleton), so its state moves.
        changes.touched(DataType::VacationResponse);
    }
    Ok(Ok(()))
}
