//! SearchSnippet/get (RFC 8621 §5.1): for each Email, its subject and the relevant section of
//! its body with the words of the filter's text conditions marked (`search::snippet`), or null
//! where nothing matches. The words are found with the index's analyzer, so what is marked is
//! what Email/query matched.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType};
use crate::jmap::mail::email::fields::EMAIL_ID_PREFIX;
use crate::jmap::mail::email::query::filter::{self, highlight_words};
use crate::mail::sharing::{email_visible, view_in};
use crate::mail::store as mail_store;
use crate::search::{document, snippet};
use crate::store::BoxFuture;

pub fn handle<'a, 'r>(
    context: &'a mut CallContext<'r>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(get(context, arguments))
}

async fn get(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let account = arguments.take_account("accountId", context)?;
    // RFC 8621 §5.1: the same filter as Email/query, with its errors.
    let filter = match arguments.take("filter") {
        None | Some(Value::Null) => None,
        Some(value) => Some(filter::parse_filter(&value)?),
    };
    let Some(email_ids) = arguments.take_string_list("emailIds")? else {
        return Err(MethodError::invalid_arguments("\"emailIds\" is required"));
    };
    arguments.finish()?;
    // RFC 8621 §5.1: more than maxObjectsInGet ids is requestTooLarge.
    let max_objects = context.engine.limits.max_objects_in_get;
    if email_ids.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInGet ({max_objects}) emailIds"),
        ));
    }
    let mut subject_words = HashSet::new();
    let mut body_words = HashSet::new();
    if let Some(filter) = &filter {
        highlight_words(filter, &mut subject_words, &mut body_words);
    }

    let account_id = account.number();
    let engine = context.engine;
    let mut list = Vec::with_capacity(email_ids.len());
    let mut not_found = Vec::new();
    let mut seen = HashSet::new();
    for text in email_ids {
        if !seen.insert(text.clone()) {
            continue;
        }
        let number = context
            .resolve_id(&text)?
            .and_then(|id| id.to_number(EMAIL_ID_PREFIX));
        let exists = match number {
            Some(email_id) => {
                let viewer = context.viewer.clone();
                engine
                    .store
                    .read(|tx| {
                        Box::pin(async move {
                            // RFC 9670: a grantee gets no snippet of an Email they cannot see.
                            match view_in(tx, account_id, &viewer).await? {
                                Some(view) => email_visible(tx, account_id, &view, email_id).await,
                                None => Ok(mail_store::load_record(tx, account_id, email_id)
                                    .await?
                                    .is_some()),
                            }
                        })
                    })
                    .await?
            }
            None => false,
        };
        let Some(email_id) = number.filter(|_| exists) else {
            not_found.push(Value::String(text));
            continue;
        };
        let mut snippet_object = Map::with_capacity(3);
        snippet_object.insert("emailId".to_owned(), Value::String(text.clone()));
        let (mut subject, mut preview) = (Value::Null, Value::Null);
        if !subject_words.is_empty() || !body_words.is_empty() {
            match document::load(&engine.store, &engine.blobs, account_id, email_id).await? {
                Some(content) => {
                    if let Some(marked) = snippet::mark_subject(&content.subject, &subject_words) {
                        subject = Value::String(marked);
                    }
                    if let Some(marked) = snippet::preview(&content.body, &body_words) {
                        preview = Value::String(marked);
                    }
                }
                None => {
                    not_found.push(Value::String(text));
                    continue;
                }
            }
        }
        snippet_object.insert("subject".to_owned(), subject);
        snippet_object.insert("preview".to_owned(), preview);
        list.push(Value::Object(snippet_object));
    }
    Ok(json!({
        "accountId": account,
        "list": list,
        "notFound": if not_found.is_empty() { Value::Null } else { Value::Array(not_found) },
    }))
}
