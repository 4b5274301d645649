//! Sieve scripts over JMAP (RFC 9661, `urn:ietf:params:jmap:sieve`): SieveScript/get, /set,
//! /query and SieveScript/validate on the generic machinery. A script's content is a blob the
//! account holds a link on (it never expires while the script exists); at most one script is
//! active, and the delivery actor runs it (`mail::sieve`, `smtp::delivery`).
//!
//! Stored document: `{"name", "blobId", "isActive"}` (`DataType::SieveScript`). Every create
//! and blob change compiles the script first: a script that does not compile is never stored
//! (`invalidSieve`, with the compiler's line and column).

pub mod get;
pub mod query;
pub mod set;
pub mod validate;

use serde_json::{Map, Value, json};

use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::generic::{Comparator, Created, ObjectType, WriteScope, storage};
use crate::jmap::types::BlobId;
use crate::mail::sieve;
use crate::store::blob::{self, BlobHash, WholeBlob, read_whole_in};
use crate::store::commit::{Changes, DataType, allocate_id};
use crate::store::{StoreResult, Transaction};

pub struct SieveScript;

/// RFC 9661 §2 limits, advertised in the account capability.
pub const MAX_SIZE_SCRIPT_NAME: usize = 512;
pub const MAX_NUMBER_SCRIPTS: usize = 20;

/// The account capability value (RFC 9661 §2).
pub fn account_capability() -> Value {
    json!({
        "implementation": concat!("Tern ", env!("CARGO_PKG_VERSION")),
        "maxSizeScriptName": MAX_SIZE_SCRIPT_NAME,
        "maxSizeScript": sieve::MAX_SCRIPT_SIZE,
        "maxNumberScripts": MAX_NUMBER_SCRIPTS,
        "maxNumberRedirects": sieve::MAX_REDIRECTS,
        "sieveExtensions": sieve::EXTENSIONS,
        "notificationMethods": null,
        "externalLists": null,
    })
}

pub fn invalid_sieve(description: impl Into<String>) -> SetError {
    SetError::with_description(SetErrorType::InvalidSieve, description)
}

/// Compiles the script in blob `blob_id` (read in `tx`): `Err` is the SetError to answer.
pub async fn check_script(
    tx: &mut dyn Transaction,
    blob_id: &BlobId,
) -> StoreResult<Result<(), SetError>> {
    if blob_id.is_part() {
        return Ok(Err(invalid_sieve("a script is a whole blob, not a part")));
    }
    let hash = BlobHash(*blob_id.digest());
    let content = match read_whole_in(tx, &hash, sieve::MAX_SCRIPT_SIZE as u64).await? {
        WholeBlob::Content(content) => content,
        WholeBlob::Missing => return Ok(Err(SetError::new(SetErrorType::BlobNotFound))),
        WholeBlob::TooLarge(_) | WholeBlob::Large => {
            return Ok(Err(SetError::with_description(
                SetErrorType::TooLarge,
                format!(
                    "a script is at most maxSizeScript ({}) octets",
                    sieve::MAX_SCRIPT_SIZE
                ),
            )));
        }
    };
    Ok(sieve::validate(&content).map(|_| ()).map_err(invalid_sieve))
}

/// Sets which script is active (`None`: none), recording the changes (RFC 9661 §2.2).
/// Answers whether the script to activate exists, and the scripts whose `isActive` changed.
pub async fn activate(
    tx: &mut dyn Transaction,
    changes: &mut Changes,
    account_id: u32,
    active: Option<u64>,
) -> StoreResult<(bool, Vec<u64>)> {
    let mut found = active.is_none();
    let mut changed = Vec::new();
    for id in storage::list_ids(tx, account_id, DataType::SieveScript).await? {
        let Some(doc) = storage::load(tx, account_id, DataType::SieveScript, id).await? else {
            continue;
        };
        found |= Some(id) == active;
        if doc.get("isActive") != Some(&Value::Bool(Some(id) == active)) {
            changed.push((id, doc));
        }
    }
    if !found {
        // Nothing is written: the account's scripts stay as they were.
        return Ok((false, Vec::new()));
    }
    let mut ids = Vec::with_capacity(changed.len());
    for (id, mut doc) in changed {
        doc.insert("isActive".into(), Value::Bool(Some(id) == active));
        storage::save(tx, account_id, DataType::SieveScript, id, &doc)?;
        changes.updated(DataType::SieveScript, id);
        ids.push(id);
    }
    Ok((true, ids))
}

fn name_of(object: &Map<String, Value>) -> Result<Option<String>, SetError> {
    match object.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name))
            if !name.is_empty()
                && name.len() <= MAX_SIZE_SCRIPT_NAME
                && !name.chars().any(char::is_control) =>
        {
            Ok(Some(name.clone()))
        }
        Some(_) => Err(SetError::invalid_properties(
            ["name"],
            format!("a name is 1 to {MAX_SIZE_SCRIPT_NAME} octets of text"),
        )),
    }
}

fn blob_of(scope: &WriteScope<'_>, object: &Map<String, Value>) -> Result<BlobId, SetError> {
    let text = object
        .get("blobId")
        .and_then(Value::as_str)
        .ok_or_else(|| SetError::invalid_properties(["blobId"], "blobId is required"))?;
    let resolved = match text.strip_prefix('#') {
        Some(_) => scope.resolve_id(text).map(|id| id.as_str().to_owned()),
        None => Some(text.to_owned()),
    };
    resolved
        .and_then(|text| BlobId::parse(&text).ok())
        .ok_or_else(|| SetError::new(SetErrorType::BlobNotFound))
}

/// Another script of the account already has `name` (RFC 9661 §2.2: names are unique).
async fn name_taken(
    tx: &mut dyn Transaction,
    account_id: u32,
    name: &str,
    except: Option<u64>,
) -> StoreResult<Option<u64>> {
    for id in storage::list_ids(tx, account_id, DataType::SieveScript).await? {
        if Some(id) == except {
            continue;
        }
        if let Some(doc) = storage::load(tx, account_id, DataType::SieveScript, id).await?
            && doc.get("name").and_then(Value::as_str) == Some(name)
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

fn already_exists(id: u64) -> SetError {
    let mut error =
        SetError::with_description(SetErrorType::AlreadyExists, "another script has this name");
    error.existing_id =
        Some(crate::jmap::types::Id::from_number(SieveScript::ID_PREFIX, id).into_string());
    error
}

impl ObjectType for SieveScript {
    const DATA_TYPE: DataType = DataType::SieveScript;
    const ID_PREFIX: char = 'S';
    const PROPERTIES: &'static [&'static str] = &["id", "name", "blobId", "isActive"];
    const SERVER_SET_PROPERTIES: &'static [&'static str] = &["isActive"];

    fn list_ids<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
    ) -> impl Future<Output = StoreResult<Vec<u64>>> + Send + 'a {
        storage::list_ids(tx, account_id, DataType::SieveScript)
    }

    fn load<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        id: u64,
    ) -> impl Future<Output = StoreResult<Option<Map<String, Value>>>> + Send + 'a {
        storage::load(tx, account_id, DataType::SieveScript, id)
    }

    async fn create<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        object: Map<String, Value>,
    ) -> StoreResult<Result<Created, SetError>> {
        let account_id = scope.account_id;
        if let Some(unknown) = object
            .keys()
            .find(|name| !["name", "blobId"].contains(&name.as_str()))
        {
            return Ok(Err(SetError::invalid_properties(
                [unknown.clone()],
                "not a SieveScript property",
            )));
        }
        if storage::list_ids(tx, account_id, DataType::SieveScript)
            .await?
            .len()
            >= MAX_NUMBER_SCRIPTS
        {
            return Ok(Err(SetError::with_description(
                SetErrorType::OverQuota,
                format!("at most maxNumberScripts ({MAX_NUMBER_SCRIPTS}) scripts"),
            )));
        }
        let name = match name_of(&object) {
            Ok(name) => name,
            Err(error) => return Ok(Err(error)),
        };
        let blob_id = match blob_of(scope, &object) {
            Ok(blob_id) => blob_id,
            Err(error) => return Ok(Err(error)),
        };
        let id = allocate_id(tx, account_id, DataType::SieveScript).await?;
        // RFC 9661 §2: a script without a name is named by the server.
        let name = name.unwrap_or_else(|| format!("script-{id}"));
        if let Some(existing) = name_taken(tx, account_id, &name, None).await? {
            return Ok(Err(already_exists(existing)));
        }
        if let Err(error) = check_script(tx, &blob_id).await? {
            return Ok(Err(error));
        }
        // The account keeps the script's blob (an upload would expire).
        if blob::link(tx, account_id, &BlobHash(*blob_id.digest()))
            .await
            .is_err()
        {
            return Ok(Err(SetError::new(SetErrorType::BlobNotFound)));
        }
        let doc: Map<String, Value> = [
            ("name".to_owned(), Value::String(name.clone())),
            ("blobId".to_owned(), Value::String(blob_id.to_string())),
            ("isActive".to_owned(), Value::Bool(false)),
        ]
        .into_iter()
        .collect();
        storage::save(tx, account_id, DataType::SieveScript, id, &doc)?;
        changes.created(DataType::SieveScript, id);
        let server_set = [
            ("name".to_owned(), Value::String(name)),
            ("blobId".to_owned(), Value::String(blob_id.to_string())),
            ("isActive".to_owned(), Value::Bool(false)),
        ]
        .into_iter()
        .collect();
        Ok(Ok(Created { id, server_set }))
    }

    async fn update<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
        current: Map<String, Value>,
        patched: Map<String, Value>,
    ) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
        let account_id = scope.account_id;
        if patched.get("isActive") != current.get("isActive") {
            return Ok(Err(SetError::invalid_properties(
                ["isActive"],
                "isActive changes with onSuccessActivateScript",
            )));
        }
        let mut doc = current.clone();
        match name_of(&patched) {
            Ok(Some(name)) => {
                if let Some(existing) = name_taken(tx, account_id, &name, Some(id)).await? {
                    return Ok(Err(already_exists(existing)));
                }
                doc.insert("name".into(), Value::String(name));
            }
            Ok(None) => {}
            Err(error) => return Ok(Err(error)),
        }
        if patched.get("blobId") != current.get("blobId") {
            let blob_id = match blob_of(scope, &patched) {
                Ok(blob_id) => blob_id,
                Err(error) => return Ok(Err(error)),
            };
            if let Err(error) = check_script(tx, &blob_id).await? {
                return Ok(Err(error));
            }
            if blob::link(tx, account_id, &BlobHash(*blob_id.digest()))
                .await
                .is_err()
            {
                return Ok(Err(SetError::new(SetErrorType::BlobNotFound)));
            }
            if let Some(old) = current
                .get("blobId")
                .and_then(Value::as_str)
                .and_then(|text| BlobId::parse(text).ok())
            {
                let _ = blob::unlink(tx, account_id, &BlobHash(*old.digest())).await;
            }
            doc.insert("blobId".into(), Value::String(blob_id.to_string()));
        }
        if doc != current {
            storage::save(tx, account_id, DataType::SieveScript, id, &doc)?;
            changes.updated(DataType::SieveScript, id);
        }
        Ok(Ok(None))
    }

    async fn destroy<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
    ) -> StoreResult<Result<(), SetError>> {
        let account_id = scope.account_id;
        let Some(current) = storage::load(tx, account_id, DataType::SieveScript, id).await? else {
            return Ok(Err(SetError::not_found()));
        };
        // RFC 9661 §2.2: the active script cannot be destroyed.
        if current.get("isActive") == Some(&Value::Bool(true)) {
            return Ok(Err(SetError::with_description(
                SetErrorType::SieveIsActive,
                "deactivate the script first",
            )));
        }
        if let Some(old) = current
            .get("blobId")
            .and_then(Value::as_str)
            .and_then(|text| BlobId::parse(text).ok())
        {
            let _ = blob::unlink(tx, account_id, &BlobHash(*old.digest())).await;
        }
        storage::remove(tx, account_id, DataType::SieveScript, id)?;
        changes.destroyed(DataType::SieveScript, id);
        Ok(Ok(()))
    }

    /// RFC 9661 §2.4: filters `name` (contains) and `isActive`; sorts `name`, `isActive`.
    async fn query<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        filter: Option<&'a Value>,
        sort: &'a [Comparator],
    ) -> StoreResult<Result<Vec<u64>, MethodError>> {
        let (name, active) = match filter {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(members)) => {
                if let Some(unknown) = members
                    .keys()
                    .find(|key| !["name", "isActive"].contains(&key.as_str()))
                {
                    return Ok(Err(MethodError::with_description(
                        MethodErrorType::UnsupportedFilter,
                        format!("SieveScript/query has no filter {unknown:?}"),
                    )));
                }
                (
                    members
                        .get("name")
                        .and_then(Value::as_str)
                        .map(str::to_lowercase),
                    members.get("isActive").and_then(Value::as_bool),
                )
            }
            Some(_) => {
                return Ok(Err(MethodError::invalid_arguments(
                    "the filter is an object",
                )));
            }
        };
        for comparator in sort {
            if !["name", "isActive"].contains(&comparator.property.as_str()) {
                return Ok(Err(MethodError::with_description(
                    MethodErrorType::UnsupportedSort,
                    format!("SieveScript/query cannot sort by {:?}", comparator.property),
                )));
            }
        }
        let mut found = Vec::new();
        for id in storage::list_ids(tx, account_id, DataType::SieveScript).await? {
            let Some(doc) = storage::load(tx, account_id, DataType::SieveScript, id).await? else {
                continue;
            };
            let doc_name = doc
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let doc_active = doc
                .get("isActive")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if name
                .as_ref()
                .is_some_and(|wanted| !doc_name.to_lowercase().contains(wanted))
            {
                continue;
            }
            if active.is_some_and(|wanted| wanted != doc_active) {
                continue;
            }
            found.push((id, doc_name, doc_active));
        }
        found.sort_by(|left, right| {
            sort.iter()
                .map(|comparator| {
                    let order = match comparator.property.as_str() {
                        "name" => left.1.cmp(&right.1),
                        _ => left.2.cmp(&right.2),
                    };
                    if comparator.is_ascending {
                        order
                    } else {
                        order.reverse()
                    }
                })
                .find(|order| order.is_ne())
                .unwrap_or_else(|| left.0.cmp(&right.0))
        });
        Ok(Ok(found.into_iter().map(|(id, _, _)| id).collect()))
    }
}
