//! `Blob/copy` (RFC 8620 §6.3): gives `accountId` its own reference to blobs that
//! `fromAccountId` may read. Blobs are content-addressed, so a copied blob keeps its id; the
//! copy is an upload reference of the target account (it expires unless something links it,
//! as an upload does).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::MethodResult;
use crate::jmap::error::{MethodError, MethodErrorType, SetError, SetErrorType};
use crate::jmap::types::{AccountId, BlobId};
use crate::store::BoxFuture;
use crate::store::blob::{BlobErrorKind, BlobHash};
use crate::store::{StoreError, StoreErrorKind};

pub fn handle<'a>(
    context: &'a mut CallContext<'_>,
    arguments: Arguments,
) -> BoxFuture<'a, MethodResult> {
    Box::pin(copy(context, arguments))
}

async fn copy(context: &mut CallContext<'_>, mut arguments: Arguments) -> MethodResult {
    let to_account = arguments.take_account("accountId", context)?;
    // RFC 8620 §6.3: an unusable fromAccountId is fromAccountNotFound (and, as for
    // accountNotFound, says nothing about whether the account exists).
    let from_account = match arguments.take_required("fromAccountId")? {
        Value::String(text) => AccountId::parse(&text)
            .ok()
            .and_then(|account| context.authorize(account).ok())
            .ok_or_else(|| MethodError::new(MethodErrorType::FromAccountNotFound))?,
        _ => {
            return Err(MethodError::invalid_arguments(
                "\"fromAccountId\" must be a String",
            ));
        }
    };
    let Some(blob_ids) = arguments.take_string_list("blobIds")? else {
        return Err(MethodError::invalid_arguments("\"blobIds\" is required"));
    };
    arguments.finish()?;
    let max_objects = context.engine.limits.max_objects_in_set;
    if blob_ids.len() as u64 > max_objects {
        return Err(MethodError::with_description(
            MethodErrorType::RequestTooLarge,
            format!("more than maxObjectsInSet ({max_objects}) blobs"),
        ));
    }

    let mut copied = Map::new();
    let mut not_copied = Map::new();
    let mut seen = HashSet::with_capacity(blob_ids.len());
    for text in blob_ids {
        if !seen.insert(text.clone()) {
            continue;
        }
        let Ok(blob_id) = BlobId::parse(&text) else {
            not_copied.insert(text, blob_not_found().to_json());
            continue;
        };
        let hash = BlobHash(*blob_id.digest());
        match context
            .engine
            .blobs
            .copy(from_account.number(), to_account.number(), &hash)
            .await
        {
            Ok(info) => {
                // Content-addressed, so the id is unchanged; a part id (RFC 8621 §4.1.4)
                // names a range of the copied message blob and now reads in the target too.
                debug_assert_eq!(info.id.0, *blob_id.digest());
                let copied_id = blob_id.to_string();
                copied.insert(text, Value::String(copied_id));
            }
            // RFC 8621 §10.6.3 registers `blobNotFound` for a blob id that does not exist:
            // the precise error (clients and conformance suites expect it), not `notFound`.
            Err(error) if error.kind == BlobErrorKind::NotFound => {
                not_copied.insert(text, blob_not_found().to_json());
            }
            Err(error) => {
                let kind = error.store_kind.unwrap_or(StoreErrorKind::Io);
                return Err(MethodError::from_store(&StoreError::new(
                    kind,
                    error.message,
                )));
            }
        }
    }
    let or_null = |map: Map<String, Value>| {
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        }
    };
    Ok(json!({
        "fromAccountId": from_account,
        "accountId": to_account,
        "copied": or_null(copied),
        "notCopied": or_null(not_copied),
    }))
}

fn blob_not_found() -> SetError {
    SetError::with_description(
        SetErrorType::BlobNotFound,
        "no such blob in the from account",
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use crate::jmap::test_support::{alice, bob, engine};
    use crate::jmap::types::BlobId;

    #[tokio::test]
    async fn copies_readable_blobs_and_hides_the_rest() {
        let test = engine();
        let blobs = test.engine.blobs();
        let mine = blobs
            .put(1, Bytes::from_static(b"alice's attachment"))
            .await
            .expect("upload");
        let theirs = blobs
            .put(2, Bytes::from_static(b"bob's secret"))
            .await
            .expect("upload");
        let mine_id = BlobId::from_digest(mine.id.0).to_string();
        let theirs_id = BlobId::from_digest(theirs.id.0).to_string();
        let request = json!({
            "using": ["urn:ietf:params:jmap:core"],
            "methodCalls": [
                ["Blob/copy", {"fromAccountId": "a1", "accountId": "a1",
                    "blobIds": [mine_id, theirs_id, "Gnope", mine_id]}, "1"],
                ["Blob/copy", {"fromAccountId": "a2", "accountId": "a1", "blobIds": [theirs_id]}, "2"],
                ["Blob/copy", {"fromAccountId": "a1", "accountId": "a2", "blobIds": [mine_id]}, "3"],
                ["Blob/copy", {"fromAccountId": "a1", "accountId": "a1"}, "4"]
            ]
        });
        let body = serde_json::to_vec(&request).expect("serialize");
        let response = test
            .engine
            .handle_api(&alice(), &body)
            .await
            .expect("response");
        let responses = &response["methodResponses"];
        let copy = &responses[0][1];
        assert_eq!(copy["copied"], json!({ mine_id.as_str(): mine_id }));
        assert_eq!(
            copy["notCopied"][&theirs_id]["type"], "blobNotFound",
            "bob's blob is invisible"
        );
        assert_eq!(copy["notCopied"]["Gnope"]["type"], "blobNotFound");
        assert_eq!(responses[1][0], "error");
        assert_eq!(responses[1][1]["type"], "fromAccountNotFound");
        assert_eq!(responses[2][1]["type"], "accountNotFound");
        assert_eq!(responses[3][1]["type"], "invalidArguments");

        // Bob may copy his own blob, and only his.
        let body = serde_json::to_vec(&json!({
            "using": ["urn:ietf:params:jmap:core"],
            "methodCalls": [["Blob/copy", {"fromAccountId": "a2", "accountId": "a2",
                "blobIds": [theirs_id, mine_id]}, "b"]]
        }))
        .expect("serialize");
        let response = test
            .engine
            .handle_api(&bob(), &body)
            .await
            .expect("response");
        let copy = &response["methodResponses"][0][1];
        assert_eq!(copy["copied"][&theirs_id], theirs_id);
        assert_eq!(copy["notCopied"][&mine_id]["type"], "blobNotFound");
    }
}
