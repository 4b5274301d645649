//! VacationResponse (RFC 8621 §8): one object per account, id `singleton`, stored as a JSON
//! document (`DataType::VacationResponse`, store id 0). Absent until first set: reading
//! it then gives the defaults (disabled, no dates, no texts). Delivery (the SMTP issues)
//! reads it with [`load`] and replies while [`VacationResponse::is_active_at`].

pub mod get;
pub mod set;

use serde_json::{Map, Value};

use crate::jmap::error::SetError;
use crate::jmap::generic::storage;
use crate::jmap::types::UtcDate;
use crate::store::commit::DataType;
use crate::store::{StoreResult, Transaction};

/// The only id a VacationResponse has (RFC 8621 §8).
pub const SINGLETON_ID: &str = "singleton";
/// The store id of the singleton's document.
const STORE_ID: u64 = 0;

/// Every property, `id` included (RFC 8621 §8).
pub const PROPERTIES: &[&str] = &[
    "id",
    "isEnabled",
    "fromDate",
    "toDate",
    "subject",
    "textBody",
    "htmlBody",
];

/// The checked VacationResponse, for delivery code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VacationResponse {
    pub is_enabled: bool,
    pub from_date: Option<UtcDate>,
    pub to_date: Option<UtcDate>,
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
}

impl VacationResponse {
    /// RFC 8621 §8: replies are sent when enabled and `now` is within [fromDate, toDate)
    /// (each bound only when set).
    pub fn is_active_at(&self, now: UtcDate) -> bool {
        self.is_enabled
            && self.from_date.is_none_or(|from| from <= now)
            && self.to_date.is_none_or(|to| now < to)
    }

    fn from_json(object: &Map<String, Value>) -> VacationResponse {
        let text = |property: &str| {
            object
                .get(property)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let date = |property: &str| {
            object
                .get(property)
                .and_then(Value::as_str)
                .and_then(|text| UtcDate::parse(text).ok())
        };
        VacationResponse {
            is_enabled: object.get("isEnabled") == Some(&Value::Bool(true)),
            from_date: date("fromDate"),
            to_date: date("toDate"),
            subject: text("subject"),
            text_body: text("textBody"),
            html_body: text("htmlBody"),
        }
    }
}

/// The account's VacationResponse (the defaults when never set).
pub async fn load(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<VacationResponse> {
    Ok(VacationResponse::from_json(
        &load_json(tx, account_id).await?,
    ))
}

/// The stored document without `id`, defaults filled in.
async fn load_json(tx: &mut dyn Transaction, account_id: u32) -> StoreResult<Map<String, Value>> {
    let mut object = default_object();
    if let Some(stored) =
        storage::load(tx, account_id, DataType::VacationResponse, STORE_ID).await?
    {
        for (property, value) in stored {
            if PROPERTIES.contains(&property.as_str()) && property != "id" {
                object.insert(property, value);
            }
        }
    }
    Ok(object)
}

fn save_json(
    tx: &mut dyn Transaction,
    account_id: u32,
    object: &Map<String, Value>,
) -> StoreResult<()> {
    storage::save(tx, account_id, DataType::VacationResponse, STORE_ID, object)
}

fn default_object() -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("isEnabled".to_owned(), Value::Bool(false));
    for property in ["fromDate", "toDate", "subject", "textBody", "htmlBody"] {
        object.insert(property.to_owned(), Value::Null);
    }
    object
}

/// What a top-level property becomes when a patch sets it to null.
fn default_value(property: &str) -> Option<Value> {
    match property {
        "isEnabled" => Some(Value::Bool(false)),
        _ => Some(Value::Null),
    }
}

/// Longest subject and bodies we keep: far beyond any real auto-reply.
const MAX_SUBJECT_BYTES: usize = 1_000;
const MAX_BODY_BYTES: usize = 256_000;

/// Checks every property of a patched VacationResponse (RFC 8621 §8): the names of the
/// invalid ones, if any.
fn check(object: &Map<String, Value>) -> Result<(), SetError> {
    let mut invalid: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|property| !PROPERTIES.contains(property))
        .collect();
    if !matches!(object.get("isEnabled"), Some(Value::Bool(_))) {
        invalid.push("isEnabled");
    }
    for property in ["fromDate", "toDate"] {
        match object.get(property) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if UtcDate::parse(text).is_ok() => {}
            Some(_) => invalid.push(property),
        }
    }
    for (property, limit) in [
        ("subject", MAX_SUBJECT_BYTES),
        ("textBody", MAX_BODY_BYTES),
        ("htmlBody", MAX_BODY_BYTES),
    ] {
        match object.get(property) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if text.len() <= limit => {}
            Some(_) => invalid.push(property),
        }
    }
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(SetError::invalid_properties(
            invalid,
            "invalid VacationResponse properties",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> UtcDate {
        UtcDate::parse(text).expect("date")
    }

    #[test]
    fn active_only_when_enabled_and_within_the_dates() {
        let mut vacation = VacationResponse {
            is_enabled: true,
            ..VacationResponse::default()
        };
        assert!(vacation.is_active_at(date("2030-01-01T00:00:00Z")));
        vacation.from_date = Some(date("2030-01-01T00:00:00Z"));
        vacation.to_date = Some(date("2030-01-08T00:00:00Z"));
        assert!(!vacation.is_active_at(date("2029-12-31T23:59:59Z")));
        assert!(vacation.is_active_at(date("2030-01-01T00:00:00Z")));
        assert!(!vacation.is_active_at(date("2030-01-08T00:00:00Z")));
        vacation.is_enabled = false;
        assert!(!vacation.is_active_at(date("2030-01-02T00:00:00Z")));
    }

    #[test]
    fn properties_are_checked() {
        let mut object = default_object();
        assert!(check(&object).is_ok());
        object.insert("fromDate".into(), Value::from("2030-01-01T00:00:00+01:00"));
        object.insert("isEnabled".into(), Value::Null);
        object.insert("subject".into(), Value::from(3));
        object.insert("color".into(), Value::from("red"));
        let mut properties = check(&object).expect_err("invalid").properties;
        properties.sort();
        assert_eq!(properties, ["color", "fromDate", "isEnabled", "subject"]);
    }
}
