//! `SieveScript/validate` (RFC 9661 §2.5): whether the script in a blob compiles, without
//! storing anything; `error` is `invalidSieve` with the compiler's line and column.

use serde_json::{Value, json};

use super::{SieveScript, check_script};
use crate::jmap::blob::resolve_blob_id;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, SetError, SetErrorType};
use crate::jmap::generic::ObjectType;
use crate::store::BoxFuture;
use crate::store::blob::{BlobErrorKind, BlobHash};

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(validate(context, arguments))
}

async fn validate(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let _ = SieveScript::DATA_TYPE;
    let account = arguments.take_account("accountId", context)?;
    let text = arguments
        .take_string("blobId")?
        .ok_or_else(|| MethodError::invalid_arguments("\"blobId\" is required"))?;
    arguments.finish()?;
    let Some(blob) = resolve_blob_id(context, &text) else {
        return Ok(answer(
            account,
            Some(SetError::new(SetErrorType::BlobNotFound)),
        ));
    };
    // The account must be able to read it (an upload of its own, a blob it links).
    match context
        .engine
        .blobs
        .info(account.number(), &BlobHash(*blob.digest()))
        .await
    {
        Ok(_) => {}
        Err(error) if error.kind == BlobErrorKind::NotFound => {
            return Ok(answer(
                account,
                Some(SetError::new(SetErrorType::BlobNotFound)),
            ));
        }
        Err(error) => {
            return Err(MethodError::with_description(
                crate::jmap::error::MethodErrorType::ServerFail,
                error.message,
            ));
        }
    }
    let checked = context
        .engine
        .store
        .read(move |tx| Box::pin(async move { check_script(tx, &blob).await }))
        .await
        .map_err(|error| MethodError::from_store(&error))?;
    Ok(answer(account, checked.err()))
}

fn answer(account: crate::jmap::types::AccountId, error: Option<SetError>) -> Value {
    json!({
        "accountId": account,
        "error": error.map_or(Value::Null, |error| error.to_json()),
    })
}
