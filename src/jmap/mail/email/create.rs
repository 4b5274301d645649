//! The message of an Email/set create (RFC 8621 §4.6): checks the content properties, reads
//! the blobs the parts name (with the account's access), and writes the RFC 5322 message.
//! Email/set (`set.rs`) validates mailboxIds/keywords/receivedAt and stores the result.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::types::BlobId;
use crate::mail::build::{
    BuildError, MAX_SIZE_ATTACHMENTS_PER_EMAIL, plan_message, render_message,
};
use crate::mail::parsed::blob::read_blob;
use crate::store::blob::{BlobErrorKind, BlobStore};

/// Builds the message an Email/set create describes. Errors are the SetErrors of RFC 8621
/// §4.6: `invalidProperties` naming the properties, `blobNotFound` with `notFound` listing
/// the blob ids, `tooLarge` past `maxSizeAttachmentsPerEmail`.
pub async fn build_message(
    blobs: &BlobStore,
    account_id: u32,
    object: &Map<String, Value>,
) -> Result<Vec<u8>, SetError> {
    let plan = plan_message(object).map_err(to_set_error)?;
    let uses = plan.blob_uses();
    let mut contents: HashMap<String, Vec<u8>> = HashMap::new();
    let mut not_found = Vec::new();
    let mut too_large = false;
    let mut budget = MAX_SIZE_ATTACHMENTS_PER_EMAIL;
    for text in plan.blob_ids() {
        let Ok(blob_id) = BlobId::parse(text) else {
            not_found.push(text.to_owned());
            continue;
        };
        if too_large {
            // Only existence still matters; do not read more content.
            if read_blob(blobs, account_id, &blob_id, 0)
                .await
                .is_err_and(|error| error.kind == BlobErrorKind::NotFound)
            {
                not_found.push(text.to_owned());
            }
            continue;
        }
        match read_blob(blobs, account_id, &blob_id, budget).await {
            Ok(content) => {
                let used =
                    (content.len() as u64).saturating_mul(uses.get(text).copied().unwrap_or(1));
                match budget.checked_sub(used) {
                    Some(left) => budget = left,
                    None => too_large = true,
                }
                contents.insert(text.to_owned(), content);
            }
            Err(error) if error.kind == BlobErrorKind::TooLarge => too_large = true,
            Err(error) => {
                if error.kind == BlobErrorKind::Store {
                    tracing::error!(account_id, blob = text, message = %error.message,
                        "reading an attachment blob failed");
                }
                not_found.push(text.to_owned());
            }
        }
    }
    if !not_found.is_empty() {
        return Err(to_set_error(BuildError::BlobNotFound(not_found)));
    }
    if too_large {
        return Err(to_set_error(BuildError::TooLarge(format!(
            "the attachments exceed maxSizeAttachmentsPerEmail ({MAX_SIZE_ATTACHMENTS_PER_EMAIL} octets)"
        ))));
    }
    render_message(plan, &contents).map_err(to_set_error)
}

fn to_set_error(error: BuildError) -> SetError {
    match error {
        BuildError::InvalidProperties {
            properties,
            description,
        } => SetError::invalid_properties(properties, description),
        // RFC 8621 §4.6: blobNotFound carries the missing ids in `notFound`.
        BuildError::BlobNotFound(ids) => {
            let mut extra = Map::new();
            extra.insert(
                "notFound".to_owned(),
                Value::Array(ids.into_iter().map(Value::String).collect()),
            );
            SetError {
                extra: Some(extra),
                ..SetError::with_description(
                    SetErrorType::BlobNotFound,
                    "blobs referenced by body parts do not exist",
                )
            }
        }
        BuildError::TooLarge(description) => {
            SetError::with_description(SetErrorType::TooLarge, description)
        }
    }
}
