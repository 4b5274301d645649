//! Identity (RFC 8621 §6): the From addresses an account may send as, served by the generic
//! /get, /changes and /set on the JSON doc store.
//!
//! Invariants:
//! - every account has a default Identity for its own address ([`ensure_default_identity`],
//!   run when the account is created and again before any Identity method, for accounts
//!   older than Identities); it cannot be destroyed (`mayDelete: false`), so it exists for
//!   the account's whole life;
//! - an Identity's `email` is the account's address, or for an account whose address is
//!   `*@domain`, an address in that domain (RFC 8621 §6: else `forbiddenFrom`); it never
//!   changes after creation.

pub mod changes;
pub mod get;
pub mod set;

use serde_json::{Map, Value};

use crate::auth::directory::account_email_in;
use crate::jmap::context::Arguments;
use crate::jmap::context::CallContext;
use crate::jmap::error::{MethodError, SetError, SetErrorType};
use crate::jmap::generic::{Comparator, Created, ObjectType, WriteScope, storage};
use crate::jmap::types::AccountId;
use crate::store::commit::{Changes, DataType, allocate_id, commit_account};
use crate::store::{Store, StoreResult, Transaction};

pub struct Identity;

/// Longest `name` and signatures we keep: far beyond any real signature, small enough that
/// an Identity stays a small document.
const MAX_NAME_BYTES: usize = 1_000;
const MAX_SIGNATURE_BYTES: usize = 64_000;
/// RFC 5321 §4.5.3.1: the longest usable address.
const MAX_EMAIL_BYTES: usize = 254;

impl ObjectType for Identity {
    const DATA_TYPE: DataType = DataType::Identity;
    const ID_PREFIX: char = 'i';
    const PROPERTIES: &'static [&'static str] = &[
        "id",
        "name",
        "email",
        "replyTo",
        "bcc",
        "textSignature",
        "htmlSignature",
        "mayDelete",
    ];
    const SERVER_SET_PROPERTIES: &'static [&'static str] = &["mayDelete"];

    /// RFC 8621 §6: name and the signatures default to "", replyTo and bcc to null.
    fn default_value(property: &str) -> Option<Value> {
        match property {
            "name" | "textSignature" | "htmlSignature" => Some(Value::String(String::new())),
            _ => Some(Value::Null),
        }
    }

    fn list_ids<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
    ) -> impl Future<Output = StoreResult<Vec<u64>>> + Send + 'a {
        storage::list_ids(tx, account_id, DataType::Identity)
    }

    fn load<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        id: u64,
    ) -> impl Future<Output = StoreResult<Option<Map<String, Value>>>> + Send + 'a {
        storage::load(tx, account_id, DataType::Identity, id)
    }

    async fn create<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        object: Map<String, Value>,
    ) -> StoreResult<Result<Created, SetError>> {
        let mut stored = match check_identity(object) {
            Ok(stored) => stored,
            Err(error) => return Ok(Err(error)),
        };
        let email = stored["email"].as_str().unwrap_or_default().to_owned();
        let account_email = account_email_in(tx, scope.account_id).await?;
        if !account_email.is_some_and(|account| may_send_as(&account, &email)) {
            // RFC 8621 §6.3: an address the user may not send from.
            return Ok(Err(SetError::with_description(
                SetErrorType::ForbiddenFrom,
                format!("this account may not send as {email:?}"),
            )));
        }
        stored.insert("mayDelete".to_owned(), Value::Bool(true));
        let id = allocate_id(tx, scope.account_id, DataType::Identity).await?;
        storage::save(tx, scope.account_id, DataType::Identity, id, &stored)?;
        changes.created(DataType::Identity, id);
        // RFC 8620 §5.3: report what the server set or defaulted.
        let server_set = stored
            .iter()
            .filter(|(property, _)| property.as_str() != "email")
            .map(|(property, value)| (property.clone(), value.clone()))
            .collect();
        Ok(Ok(Created { id, server_set }))
    }

    async fn update<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
        current: Map<String, Value>,
        mut patched: Map<String, Value>,
    ) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
        // RFC 8621 §6: email is immutable.
        if patched.get("email") != current.get("email") {
            return Ok(Err(SetError::invalid_properties(
                ["email"],
                "email cannot be changed",
            )));
        }
        let may_delete = patched.remove("mayDelete").unwrap_or(Value::Bool(true));
        let mut stored = match check_identity(patched) {
            Ok(stored) => stored,
            Err(error) => return Ok(Err(error)),
        };
        stored.insert("mayDelete".to_owned(), may_delete);
        if stored != current {
            storage::save(tx, scope.account_id, DataType::Identity, id, &stored)?;
            changes.updated(DataType::Identity, id);
        }
        Ok(Ok(None))
    }

    async fn destroy<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
    ) -> StoreResult<Result<(), SetError>> {
        let Some(current) = storage::load(tx, scope.account_id, DataType::Identity, id).await?
        else {
            return Ok(Err(SetError::not_found()));
        };
        // RFC 8621 §6: the server refuses to destroy an Identity with mayDelete false.
        if current.get("mayDelete") == Some(&Value::Bool(false)) {
            return Ok(Err(SetError::with_description(
                SetErrorType::Forbidden,
                "the account's default identity cannot be destroyed",
            )));
        }
        storage::remove(tx, scope.account_id, DataType::Identity, id)?;
        changes.destroyed(DataType::Identity, id);
        Ok(Ok(()))
    }

    /// Identity has no /query (RFC 8621 §6); nothing dispatches here.
    async fn query<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        _filter: Option<&'a Value>,
        _sort: &'a [Comparator],
    ) -> StoreResult<Result<Vec<u64>, MethodError>> {
        Ok(Ok(
            storage::list_ids(tx, account_id, DataType::Identity).await?
        ))
    }
}

/// Whether an account whose address is `account` may use `email` as From (RFC 8621 §6:
/// `*@domain` stands for every address of the domain). Compared case-insensitively.
pub fn may_send_as(account: &str, email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    match account.strip_prefix("*@") {
        Some(account_domain) => !local.is_empty() && domain.eq_ignore_ascii_case(account_domain),
        // Logins are stored lowercase; mail systems treat local parts case-insensitively too.
        None => account.eq_ignore_ascii_case(email),
    }
}

/// Checks an Identity's client-settable properties and fills defaults (RFC 8621 §6).
fn check_identity(mut object: Map<String, Value>) -> Result<Map<String, Value>, SetError> {
    let mut invalid = Vec::new();
    for (property, limit) in [
        ("name", MAX_NAME_BYTES),
        ("textSignature", MAX_SIGNATURE_BYTES),
        ("htmlSignature", MAX_SIGNATURE_BYTES),
    ] {
        match object.get(property) {
            None | Some(Value::Null) => {
                object.insert(property.to_owned(), Value::String(String::new()));
            }
            Some(Value::String(text)) if text.len() <= limit => {}
            Some(_) => invalid.push(property),
        }
    }
    match object.get("email") {
        Some(Value::String(email)) if is_address(email) => {}
        _ => invalid.push("email"),
    }
    for property in ["replyTo", "bcc"] {
        match object.get(property) {
            None => {
                object.insert(property.to_owned(), Value::Null);
            }
            Some(value) if is_address_list(value) => {}
            Some(_) => invalid.push(property),
        }
    }
    if invalid.is_empty() {
        Ok(object)
    } else {
        Err(SetError::invalid_properties(
            invalid,
            "invalid Identity properties",
        ))
    }
}

fn is_address(email: &str) -> bool {
    email.len() <= MAX_EMAIL_BYTES
        && email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}

/// `EmailAddress[]|null` (RFC 8621 §4.1.2.3).
fn is_address_list(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().all(|item| {
            let Value::Object(members) = item else {
                return false;
            };
            members.keys().all(|key| key == "name" || key == "email")
                && members
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(is_address)
                && matches!(
                    members.get("name"),
                    None | Some(Value::Null | Value::String(_))
                )
        }),
        _ => false,
    }
}

fn default_identity(email: &str) -> Map<String, Value> {
    let mut identity = Map::new();
    identity.insert("name".to_owned(), Value::String(String::new()));
    identity.insert("email".to_owned(), Value::String(email.to_owned()));
    identity.insert("replyTo".to_owned(), Value::Null);
    identity.insert("bcc".to_owned(), Value::Null);
    identity.insert("textSignature".to_owned(), Value::String(String::new()));
    identity.insert("htmlSignature".to_owned(), Value::String(String::new()));
    identity.insert("mayDelete".to_owned(), Value::Bool(false));
    identity
}

/// Gives the account its default Identity (for its own address) if it has no Identity yet.
/// Idempotent; a read when there is nothing to do.
pub async fn ensure_default_identity(store: &Store, account_id: u32) -> StoreResult<()> {
    let has_identity = store
        .read(move |tx| {
            Box::pin(async move {
                Ok(!storage::list_ids(tx, account_id, DataType::Identity)
                    .await?
                    .is_empty())
            })
        })
        .await?;
    if has_identity {
        return Ok(());
    }
    commit_account(store, account_id, move |tx, changes| {
        Box::pin(async move {
            // Checked again inside the commit: a concurrent first call may have won.
            if !storage::list_ids(tx, account_id, DataType::Identity)
                .await?
                .is_empty()
            {
                return Ok(());
            }
            let Some(email) = account_email_in(tx, account_id).await? else {
                return Ok(());
            };
            let id = allocate_id(tx, account_id, DataType::Identity).await?;
            storage::save(
                tx,
                account_id,
                DataType::Identity,
                id,
                &default_identity(&email),
            )?;
            changes.created(DataType::Identity, id);
            Ok(())
        })
    })
    .await?;
    Ok(())
}

/// Runs [`ensure_default_identity`] for the call's account when it names one the principal
/// may use (anything else is left to the method, which answers the right error).
async fn ensure_for_call(
    context: &CallContext<'_>,
    arguments: Arguments,
) -> Result<Arguments, MethodError> {
    let members = arguments.into_inner();
    let account = members
        .get("accountId")
        .and_then(Value::as_str)
        .and_then(|text| AccountId::parse(text).ok())
        .and_then(|account| context.authorize(account).ok());
    if let Some(account) = account {
        ensure_default_identity(&context.engine.store, account.number()).await?;
    }
    Ok(Arguments::new(members))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_account_has_its_default_identity_before_any_request() {
        let (store, _data_dir) = crate::jmap::test_support::open_store();
        let directory = crate::auth::Directory::new(store.clone());
        let account = directory
            .create_account("carol@example.test", "a long enough password")
            .await
            .expect("account");
        let account_id = account.account_id;
        let identities = store
            .read(move |tx| {
                Box::pin(async move {
                    let ids = storage::list_ids(tx, account_id, DataType::Identity).await?;
                    let mut found = Vec::new();
                    for id in ids {
                        found.extend(storage::load(tx, account_id, DataType::Identity, id).await?);
                    }
                    Ok(found)
                })
            })
            .await
            .expect("read");
        assert_eq!(identities.len(), 1);
        assert_eq!(identities[0]["email"], "carol@example.test");
        assert_eq!(identities[0]["mayDelete"], false);
        // Idempotent: a second call adds nothing.
        ensure_default_identity(&store, account_id)
            .await
            .expect("ensure");
        let count = store
            .read(move |tx| {
                Box::pin(async move {
                    Ok(storage::list_ids(tx, account_id, DataType::Identity)
                        .await?
                        .len())
                })
            })
            .await
            .expect("read");
        assert_eq!(count, 1);
    }

    #[test]
    fn identities_may_only_use_the_accounts_addresses() {
        assert!(may_send_as("alice@example.test", "alice@example.test"));
        assert!(may_send_as("alice@example.test", "alice@EXAMPLE.test"));
        assert!(!may_send_as("alice@example.test", "bob@example.test"));
        assert!(!may_send_as("alice@example.test", "alice@other.test"));
        assert!(may_send_as("*@example.test", "anyone@example.test"));
        assert!(may_send_as("*@example.test", "*@example.test"));
        assert!(!may_send_as("*@example.test", "anyone@example.org"));
        assert!(!may_send_as("*@example.test", "@example.test"));
        assert!(!may_send_as("alice@example.test", "not-an-address"));
    }

    #[test]
    fn identity_properties_are_checked_and_defaulted() {
        let object = |value: Value| match value {
            Value::Object(members) => members,
            _ => unreachable!(),
        };
        let stored =
            check_identity(object(serde_json::json!({"email": "a@b.test"}))).expect("valid");
        assert_eq!(stored["name"], "");
        assert_eq!(stored["replyTo"], Value::Null);
        assert_eq!(stored["textSignature"], "");
        let error = check_identity(object(serde_json::json!({
            "email": "nope", "name": 3, "replyTo": [{"email": "x"}], "bcc": "a@b"
        })))
        .expect_err("invalid");
        let mut properties = error.properties;
        properties.sort();
        assert_eq!(properties, ["bcc", "email", "name", "replyTo"]);
        assert!(
            check_identity(object(serde_json::json!({
                "email": "a@b.test", "replyTo": [{"name": null, "email": "r@b.test"}], "bcc": null
            })))
            .is_ok()
        );
    }
}
