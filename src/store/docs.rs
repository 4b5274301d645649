//! A JSON document store (below `mail`, so that actors read the documents of JMAP types —
//! a VacationResponse, the active SieveScript — without importing `jmap`) for object types whose objects are small maps of properties: each
//! object is its JSON under `keys::object(account, type, id)`, chunked so any size fits the
//! 100 KB value limit. Types with their own layout (Email) use their own storage instead.

use serde_json::{Map, Value};

use crate::store::commit::DataType;
use crate::store::keys::{self, ACCT_OBJECT, account_prefix};
use crate::store::{KeyRange, RangeOptions, StoreError, StoreResult, Transaction, chunked};

pub async fn load(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
    id: u64,
) -> StoreResult<Option<Map<String, Value>>> {
    let key = keys::object(account_id, data_type as u8, id);
    let Some(bytes) = chunked::read(tx, &key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        _ => Err(StoreError::corrupt(format!(
            "{} {id} of account {account_id} is not a JSON object",
            data_type.jmap_name()
        ))),
    }
}

pub fn save(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
    id: u64,
    object: &Map<String, Value>,
) -> StoreResult<()> {
    let bytes = serde_json::to_vec(object).map_err(StoreError::io)?;
    chunked::write(tx, &keys::object(account_id, data_type as u8, id), &bytes)
}

pub fn remove(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
    id: u64,
) -> StoreResult<()> {
    chunked::clear(tx, &keys::object(account_id, data_type as u8, id))
}

/// Every stored id of the type, ascending.
pub async fn list_ids(
    tx: &mut dyn Transaction,
    account_id: u32,
    data_type: DataType,
) -> StoreResult<Vec<u64>> {
    let prefix = account_prefix(account_id)
        .u8(ACCT_OBJECT)
        .u8(data_type as u8)
        .build();
    let pairs = tx
        .get_range(&KeyRange::prefix(&prefix), RangeOptions::default())
        .await?;
    let mut ids = Vec::new();
    for (key, _) in pairs {
        // `prefix, id: u64 BE, chunk: u32 BE`: one id per chunk 0.
        let suffix = &key[prefix.len()..];
        if suffix.len() != 12 || suffix[8..] != [0, 0, 0, 0] {
            continue;
        }
        if let Some(id) = keys::be_u64(suffix) {
            ids.push(id);
        }
    }
    Ok(ids)
}
