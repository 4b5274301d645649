//! The two mutable Email properties, `mailboxIds` and `keywords` (RFC 8621 §4.1.1), parsed
//! and validated once for Email/set (create and update), Email/import and Email/copy.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::types::{Id, IdOrReference};
use crate::store::commit::DataType;
use crate::store::{StoreResult, Transaction, chunked, keys};

pub const MAILBOX_ID_PREFIX: char = 'm';
pub const EMAIL_ID_PREFIX: char = 'e';
pub const THREAD_ID_PREFIX: char = 't';

/// RFC 8621 §1.3 `maxMailboxesPerEmail`, advertised in the session.
pub const MAX_MAILBOXES_PER_EMAIL: usize = 1024;
/// RFC 8621 §4.1.1: a keyword is 1–255 characters.
const MAX_KEYWORD_LENGTH: usize = 255;

/// `mailboxIds`: a non-empty `Id[Boolean]` whose values are all `true`; keys may be
/// `#creationId` references to Mailboxes created earlier in the request (RFC 8620 §5.3).
pub fn parse_mailbox_ids(
    value: Option<&Value>,
    created_ids: &HashMap<Id, Id>,
) -> Result<Vec<u64>, SetError> {
    let invalid = |reason: &str| SetError::invalid_properties(["mailboxIds"], reason);
    let Some(Value::Object(members)) = value else {
        return Err(invalid("mailboxIds must be an Id[Boolean]"));
    };
    // RFC 8621 §4.1.1: an Email is in at least one Mailbox.
    if members.is_empty() {
        return Err(invalid("an Email must be in at least one Mailbox"));
    }
    if members.len() > MAX_MAILBOXES_PER_EMAIL {
        return Err(SetError::with_description(
            SetErrorType::TooManyMailboxes,
            format!("more than maxMailboxesPerEmail ({MAX_MAILBOXES_PER_EMAIL})"),
        ));
    }
    let mut ids = Vec::with_capacity(members.len());
    for (key, flag) in members {
        if flag != &Value::Bool(true) {
            return Err(invalid("mailboxIds values must be true"));
        }
        let id = match IdOrReference::parse(key) {
            Ok(IdOrReference::Id(id)) => Some(id),
            Ok(IdOrReference::Reference(creation_id)) => created_ids.get(&creation_id).cloned(),
            Err(_) => None,
        };
        let Some(number) = id.and_then(|id| id.to_number(MAILBOX_ID_PREFIX)) else {
            return Err(invalid(&format!("no Mailbox {key:?}")));
        };
        ids.push(number);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// `keywords`: a `String[Boolean]` of valid keywords, all `true`; stored lower-case.
pub fn parse_keywords(value: Option<&Value>) -> Result<Vec<String>, SetError> {
    let invalid = |reason: String| SetError::invalid_properties(["keywords"], reason);
    let members = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(members)) => members,
        Some(_) => return Err(invalid("keywords must be a String[Boolean]".into())),
    };
    let mut keywords = Vec::with_capacity(members.len());
    for (keyword, flag) in members {
        if flag != &Value::Bool(true) {
            return Err(invalid("keywords values must be true".into()));
        }
        if !is_valid_keyword(keyword) {
            return Err(invalid(format!("{keyword:?} is not a valid keyword")));
        }
        keywords.push(keyword.to_lowercase());
    }
    keywords.sort_unstable();
    keywords.dedup();
    Ok(keywords)
}

/// RFC 8621 §4.1.1 (IMAP `flag-keyword` of RFC 3501): printable ASCII without `( ) { ] % * "
/// \` and space, 1–255 characters.
pub fn is_valid_keyword(keyword: &str) -> bool {
    (1..=MAX_KEYWORD_LENGTH).contains(&keyword.len())
        && keyword.bytes().all(|byte| {
            (0x21..=0x7e).contains(&byte)
                && !matches!(byte, b'(' | b')' | b'{' | b']' | b'%' | b'*' | b'"' | b'\\')
        })
}

pub fn keywords_json(keywords: &[String]) -> Value {
    Value::Object(
        keywords
            .iter()
            .map(|keyword| (keyword.clone(), Value::Bool(true)))
            .collect::<Map<String, Value>>(),
    )
}

pub fn mailbox_ids_json(mailbox_ids: &[u64]) -> Value {
    Value::Object(
        mailbox_ids
            .iter()
            .map(|id| {
                (
                    Id::from_number(MAILBOX_ID_PREFIX, *id).into_string(),
                    Value::Bool(true),
                )
            })
            .collect::<Map<String, Value>>(),
    )
}

/// The first of `mailbox_ids` that does not exist, if any.
pub async fn missing_mailbox(
    tx: &mut dyn Transaction,
    account_id: u32,
    mailbox_ids: &[u64],
) -> StoreResult<Option<u64>> {
    for mailbox_id in mailbox_ids {
        let key = keys::object(account_id, DataType::Mailbox as u8, *mailbox_id);
        if tx.get(&chunked::chunk_key(&key, 0)).await?.is_none() {
            return Ok(Some(*mailbox_id));
        }
    }
    Ok(None)
}

pub fn no_such_mailbox(mailbox_id: u64) -> SetError {
    SetError::invalid_properties(
        ["mailboxIds"],
        format!(
            "no Mailbox {}",
            Id::from_number(MAILBOX_ID_PREFIX, mailbox_id)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keywords_are_validated_and_lower_cased() {
        let parsed = parse_keywords(Some(&json!({"$Seen": true, "Work": true}))).unwrap();
        assert_eq!(parsed, ["$seen", "work"]);
        assert!(parse_keywords(Some(&json!({"a b": true}))).is_err());
        assert!(parse_keywords(Some(&json!({"$seen": false}))).is_err());
        assert!(parse_keywords(Some(&json!({"": true}))).is_err());
        assert!(parse_keywords(Some(&json!(["$seen"]))).is_err());
    }

    #[test]
    fn mailbox_ids_need_one_true_entry() {
        let created = HashMap::new();
        let one = Id::from_number(MAILBOX_ID_PREFIX, 3).into_string();
        assert_eq!(
            parse_mailbox_ids(Some(&json!({ one.clone(): true })), &created).unwrap(),
            [3]
        );
        assert!(parse_mailbox_ids(Some(&json!({})), &created).is_err());
        assert!(parse_mailbox_ids(Some(&json!({ one: false })), &created).is_err());
        assert!(parse_mailbox_ids(Some(&json!({"#unknown": true})), &created).is_err());
        assert!(parse_mailbox_ids(None, &created).is_err());
    }
}
