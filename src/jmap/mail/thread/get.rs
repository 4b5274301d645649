//! Thread/get (RFC 8621 §3.1): `emailIds` oldest first by receivedAt.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::mail::email::fields::{EMAIL_ID_PREFIX, THREAD_ID_PREFIX};
use crate::jmap::types::{Id, State};
use crate::mail::sharing::{view_in, visible_thread_emails};
use crate::mail::store as mail_store;
use crate::store::BoxFuture;
use crate::store::commit::{DataType, read_state};

const PROPERTIES: &[&str] = &["id", "emailIds"];

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(get(context, arguments))
}

async fn get(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    let ids = arguments.take_string_list("ids")?;
    let properties = arguments.take_string_list("properties")?;
    arguments.finish()?;
    if let Some(unknown) = properties
        .iter()
        .flatten()
        .find(|property| !PROPERTIES.contains(&property.as_str()))
    {
        return Err(MethodError::invalid_arguments(format!(
            "unknown Thread property {unknown:?}"
        )));
    }
    let with_email_ids = properties
        .as_ref()
        .is_none_or(|list| list.iter().any(|property| property == "emailIds"));
    // Threads are not listable as a whole: RFC 8620 §5.1 lets the server refuse ids: null
    // for a type with many objects, and Thread has as many as Email.
    let Some(ids) = ids else {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            "Thread/get needs explicit ids",
        ));
    };
    let max_objects = context.engine.limits.max_objects_in_get;
    if ids.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInGet ({max_objects}) objects"),
        ));
    }
    let mut seen = HashSet::new();
    let wanted: Vec<(String, Option<u64>)> = ids
        .into_iter()
        .filter(|text| seen.insert(text.clone()))
        .map(|text| {
            let number = Id::parse(&text)
                .ok()
                .and_then(|id| id.to_number(THREAD_ID_PREFIX));
            (text, number)
        })
        .collect();
    let account_id = account.number();
    let viewer = context.viewer.clone();
    let (state, list, not_found) = context
        .engine
        .store
        .read(|tx| {
            let wanted = wanted.clone();
            let viewer = viewer.clone();
            Box::pin(async move {
                let state = read_state(tx, account_id, DataType::Thread).await?;
                let view = view_in(tx, account_id, &viewer).await?;
                let mut list = Vec::new();
                let mut not_found = Vec::new();
                for (text, number) in wanted {
                    // RFC 9670: a grantee's Thread holds only the Emails they see, and a
                    // Thread with none is not found.
                    let email_ids: Option<Vec<u64>> = match (number, &view) {
                        (Some(id), Some(view)) => {
                            Some(visible_thread_emails(tx, account_id, view, id).await?)
                                .filter(|visible| !visible.is_empty())
                        }
                        (Some(id), None) => mail_store::load_thread(tx, account_id, id)
                            .await?
                            .map(|thread| thread.email_ids().collect()),
                        (None, _) => None,
                    };
                    match email_ids {
                        Some(email_ids) => {
                            let mut object = serde_json::Map::new();
                            object.insert("id".into(), Value::String(text));
                            if with_email_ids {
                                let email_ids: Vec<Value> = email_ids
                                    .into_iter()
                                    .map(|id| {
                                        Value::String(
                                            Id::from_number(EMAIL_ID_PREFIX, id).into_string(),
                                        )
                                    })
                                    .collect();
                                object.insert("emailIds".into(), Value::Array(email_ids));
                            }
                            list.push(Value::Object(object));
                        }
                        None => not_found.push(Value::String(text)),
                    }
                }
                Ok((state, list, not_found))
            })
        })
        .await?;
    Ok(json!({
        "accountId": account,
        "state": State::new(state),
        "list": list,
        "notFound": not_found,
    }))
}
