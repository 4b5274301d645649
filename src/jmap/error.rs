//! JMAP errors as values: request-level problem details (RFC 8620 §3.6.1, RFC 7807), method
//! errors (§3.6.2) and /set item errors (§5.3). Every `type` string emitted here is listed in
//! `jmap-spec/errors.json`; a test checks that.

use serde::Serialize;
use serde_json::{Map, Value};

/// The request-level error types of RFC 8620 §3.6.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorType {
    UnknownCapability,
    NotJson,
    NotRequest,
    Limit,
}

impl RequestErrorType {
    pub const ALL: [RequestErrorType; 4] = [
        RequestErrorType::UnknownCapability,
        RequestErrorType::NotJson,
        RequestErrorType::NotRequest,
        RequestErrorType::Limit,
    ];

    pub fn urn(self) -> &'static str {
        match self {
            RequestErrorType::UnknownCapability => "urn:ietf:params:jmap:error:unknownCapability",
            RequestErrorType::NotJson => "urn:ietf:params:jmap:error:notJSON",
            RequestErrorType::NotRequest => "urn:ietf:params:jmap:error:notRequest",
            RequestErrorType::Limit => "urn:ietf:params:jmap:error:limit",
        }
    }
}

/// An RFC 7807 problem details object. HTTP answers it with status `status` and content type
/// `application/problem+json`, the body being `serde_json::to_vec(&problem)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct ProblemDetails {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: u16,
    pub detail: String,
    /// RFC 8620 §3.6.1: for `limit` errors, the name of the limit that was exceeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl ProblemDetails {
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    pub fn new(kind: RequestErrorType, detail: impl Into<String>) -> ProblemDetails {
        ProblemDetails {
            kind: kind.urn().to_owned(),
            status: 400,
            detail: detail.into(),
            limit: None,
        }
    }

    pub fn not_json(detail: impl Into<String>) -> ProblemDetails {
        ProblemDetails::new(RequestErrorType::NotJson, detail)
    }

    pub fn not_request(detail: impl Into<String>) -> ProblemDetails {
        ProblemDetails::new(RequestErrorType::NotRequest, detail)
    }

    pub fn unknown_capability(capability: &str) -> ProblemDetails {
        ProblemDetails::new(
            RequestErrorType::UnknownCapability,
            format!("the server does not support the capability {capability:?}"),
        )
    }

    /// RFC 8620 §3.6.1: a `limit` error names the limit in `limit`. Size and concurrency
    /// limits enforced by HTTP use this too (`maxSizeRequest`, `maxConcurrentRequests`,
    /// `maxSizeUpload`, `maxConcurrentUpload`).
    pub fn limit(limit_name: &str, detail: impl Into<String>) -> ProblemDetails {
        ProblemDetails {
            limit: Some(limit_name.to_owned()),
            ..ProblemDetails::new(RequestErrorType::Limit, detail)
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The store could not be read before any method ran: 503, so the client retries
    /// (RFC 9110 §15.6.4); `about:blank` because no JMAP request error type fits.
    pub fn store_unavailable(error: &crate::store::StoreError) -> ProblemDetails {
        tracing::warn!(%error, "request refused: the store is unavailable");
        ProblemDetails {
            kind: "about:blank".to_owned(),
            status: 503,
            detail: "the store is unavailable; retry".to_owned(),
            limit: None,
        }
    }
}

/// The method-level error types: RFC 8620 §3.6.2 plus the per-method ones of §5 and §6.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodErrorType {
    ServerUnavailable,
    ServerFail,
    ServerPartialFail,
    UnknownMethod,
    InvalidArguments,
    InvalidResultReference,
    Forbidden,
    AccountNotFound,
    AccountNotSupportedByMethod,
    AccountReadOnly,
    RequestTooLarge,
    StateMismatch,
    CannotCalculateChanges,
    AnchorNotFound,
    UnsupportedSort,
    UnsupportedFilter,
    TooManyChanges,
    FromAccountNotFound,
    /// RFC 9404 §4.3: Blob/lookup named a type the server does not know, or whose capability
    /// the request does not use.
    UnknownDataType,
}

impl MethodErrorType {
    pub const ALL: [MethodErrorType; 19] = [
        MethodErrorType::ServerUnavailable,
        MethodErrorType::ServerFail,
        MethodErrorType::ServerPartialFail,
        MethodErrorType::UnknownMethod,
        MethodErrorType::InvalidArguments,
        MethodErrorType::InvalidResultReference,
        MethodErrorType::Forbidden,
        MethodErrorType::AccountNotFound,
        MethodErrorType::AccountNotSupportedByMethod,
        MethodErrorType::AccountReadOnly,
        MethodErrorType::RequestTooLarge,
        MethodErrorType::StateMismatch,
        MethodErrorType::CannotCalculateChanges,
        MethodErrorType::AnchorNotFound,
        MethodErrorType::UnsupportedSort,
        MethodErrorType::UnsupportedFilter,
        MethodErrorType::TooManyChanges,
        MethodErrorType::FromAccountNotFound,
        MethodErrorType::UnknownDataType,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MethodErrorType::ServerUnavailable => "serverUnavailable",
            MethodErrorType::ServerFail => "serverFail",
            MethodErrorType::ServerPartialFail => "serverPartialFail",
            MethodErrorType::UnknownMethod => "unknownMethod",
            MethodErrorType::InvalidArguments => "invalidArguments",
            MethodErrorType::InvalidResultReference => "invalidResultReference",
            MethodErrorType::Forbidden => "forbidden",
            MethodErrorType::AccountNotFound => "accountNotFound",
            MethodErrorType::AccountNotSupportedByMethod => "accountNotSupportedByMethod",
            MethodErrorType::AccountReadOnly => "accountReadOnly",
            MethodErrorType::RequestTooLarge => "requestTooLarge",
            MethodErrorType::StateMismatch => "stateMismatch",
            MethodErrorType::CannotCalculateChanges => "cannotCalculateChanges",
            MethodErrorType::AnchorNotFound => "anchorNotFound",
            MethodErrorType::UnsupportedSort => "unsupportedSort",
            MethodErrorType::UnsupportedFilter => "unsupportedFilter",
            MethodErrorType::TooManyChanges => "tooManyChanges",
            MethodErrorType::FromAccountNotFound => "fromAccountNotFound",
            MethodErrorType::UnknownDataType => "unknownDataType",
        }
    }
}

/// A method error: the response `["error", {"type": …, "description": …}, callId]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", kind.name(), description.as_deref().unwrap_or(""))]
pub struct MethodError {
    pub kind: MethodErrorType,
    pub description: Option<String>,
}

impl MethodError {
    pub fn new(kind: MethodErrorType) -> MethodError {
        MethodError {
            kind,
            description: None,
        }
    }

    pub fn with_description(kind: MethodErrorType, description: impl Into<String>) -> MethodError {
        MethodError {
            kind,
            description: Some(description.into()),
        }
    }

    pub fn invalid_arguments(description: impl Into<String>) -> MethodError {
        MethodError::with_description(MethodErrorType::InvalidArguments, description)
    }

    pub fn invalid_result_reference(description: impl Into<String>) -> MethodError {
        MethodError::with_description(MethodErrorType::InvalidResultReference, description)
    }

    pub fn unknown_method(name: &str) -> MethodError {
        MethodError::with_description(
            MethodErrorType::UnknownMethod,
            format!("unknown method {name:?} (or its capability is not in \"using\")"),
        )
    }

    /// Never says whether the account exists: the same answer for "not yours" and "no such".
    pub fn account_not_found() -> MethodError {
        MethodError::new(MethodErrorType::AccountNotFound)
    }

    /// A store failure: logged with its detail, answered as `serverFail` (or
    /// `serverUnavailable` when retrying later can help) without leaking internals.
    pub fn from_store(error: &crate::store::StoreError) -> MethodError {
        tracing::error!(kind = ?error.kind, message = %error.message, "store error in method");
        if error.kind.is_temporary() {
            return MethodError::new(MethodErrorType::ServerUnavailable);
        }
        MethodError::with_description(MethodErrorType::ServerFail, "internal storage error")
    }

    pub fn to_json(&self) -> Value {
        let mut object = Map::with_capacity(2);
        object.insert("type".to_owned(), Value::from(self.kind.name()));
        if let Some(description) = &self.description {
            object.insert("description".to_owned(), Value::from(description.as_str()));
        }
        Value::Object(object)
    }
}

impl From<crate::store::StoreError> for MethodError {
    fn from(error: crate::store::StoreError) -> MethodError {
        MethodError::from_store(&error)
    }
}

/// The /set item error types of RFC 8620 §5.3 and §5.4, plus RFC 8621 §4.6 `blobNotFound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetErrorType {
    Forbidden,
    OverQuota,
    TooLarge,
    RateLimit,
    NotFound,
    InvalidPatch,
    WillDestroy,
    InvalidProperties,
    Singleton,
    AlreadyExists,
    BlobNotFound,
    /// RFC 8621 §2.5: destroying a Mailbox that still has children.
    MailboxHasChild,
    /// RFC 8621 §2.5: destroying a Mailbox that has Emails without onDestroyRemoveEmails.
    MailboxHasEmail,
    /// RFC 8621 §4.6: more mailboxIds than maxMailboxesPerEmail.
    TooManyMailboxes,
    /// RFC 8621 §4.6: more keywords than the server allows.
    TooManyKeywords,
    /// RFC 8621 §6.3: an Identity's email is not an address the account may send from.
    ForbiddenFrom,
    /// RFC 8621 §7.5: EmailSubmission/set create errors.
    ForbiddenMailFrom,
    ForbiddenToSend,
    InvalidEmail,
    TooManyRecipients,
    NoRecipients,
    InvalidRecipients,
    /// RFC 8621 §7.5: the submission can no longer be canceled.
    CannotUnsend,
    /// RFC 9007 §3.1: the Email already has `$mdnsent`.
    MdnAlreadySent,
    /// RFC 9661 §2.2: the script does not compile.
    InvalidSieve,
    /// RFC 9661 §2.2: the active script cannot be destroyed.
    SieveIsActive,
}

impl SetErrorType {
    pub const ALL: [SetErrorType; 26] = [
        SetErrorType::Forbidden,
        SetErrorType::OverQuota,
        SetErrorType::TooLarge,
        SetErrorType::RateLimit,
        SetErrorType::NotFound,
        SetErrorType::InvalidPatch,
        SetErrorType::WillDestroy,
        SetErrorType::InvalidProperties,
        SetErrorType::Singleton,
        SetErrorType::AlreadyExists,
        SetErrorType::BlobNotFound,
        SetErrorType::MailboxHasChild,
        SetErrorType::MailboxHasEmail,
        SetErrorType::TooManyMailboxes,
        SetErrorType::TooManyKeywords,
        SetErrorType::ForbiddenFrom,
        SetErrorType::ForbiddenMailFrom,
        SetErrorType::ForbiddenToSend,
        SetErrorType::InvalidEmail,
        SetErrorType::TooManyRecipients,
        SetErrorType::NoRecipients,
        SetErrorType::InvalidRecipients,
        SetErrorType::CannotUnsend,
        SetErrorType::MdnAlreadySent,
        SetErrorType::InvalidSieve,
        SetErrorType::SieveIsActive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SetErrorType::Forbidden => "forbidden",
            SetErrorType::OverQuota => "overQuota",
            SetErrorType::TooLarge => "tooLarge",
            SetErrorType::RateLimit => "rateLimit",
            SetErrorType::NotFound => "notFound",
            SetErrorType::InvalidPatch => "invalidPatch",
            SetErrorType::WillDestroy => "willDestroy",
            SetErrorType::InvalidProperties => "invalidProperties",
            SetErrorType::Singleton => "singleton",
            SetErrorType::AlreadyExists => "alreadyExists",
            SetErrorType::BlobNotFound => "blobNotFound",
            SetErrorType::MailboxHasChild => "mailboxHasChild",
            SetErrorType::MailboxHasEmail => "mailboxHasEmail",
            SetErrorType::TooManyMailboxes => "tooManyMailboxes",
            SetErrorType::TooManyKeywords => "tooManyKeywords",
            SetErrorType::ForbiddenFrom => "forbiddenFrom",
            SetErrorType::ForbiddenMailFrom => "forbiddenMailFrom",
            SetErrorType::ForbiddenToSend => "forbiddenToSend",
            SetErrorType::InvalidEmail => "invalidEmail",
            SetErrorType::TooManyRecipients => "tooManyRecipients",
            SetErrorType::NoRecipients => "noRecipients",
            SetErrorType::InvalidRecipients => "invalidRecipients",
            SetErrorType::CannotUnsend => "cannotUnsend",
            SetErrorType::MdnAlreadySent => "mdnAlreadySent",
            SetErrorType::InvalidSieve => "invalidSieve",
            SetErrorType::SieveIsActive => "sieveIsActive",
        }
    }
}

/// A SetError object (RFC 8620 §5.3): the value in `notCreated`/`notUpdated`/`notDestroyed`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", kind.name(), description.as_deref().unwrap_or(""))]
pub struct SetError {
    pub kind: SetErrorType,
    pub description: Option<String>,
    /// `invalidProperties`: the properties that were invalid (RFC 8620 §5.3).
    pub properties: Vec<String>,
    /// `alreadyExists`: the id of the existing object (RFC 8620 §5.4).
    pub existing_id: Option<String>,
    /// Extra members a type-specific error carries (e.g. RFC 8621 `notFound` blob ids).
    pub extra: Option<Map<String, Value>>,
}

impl SetError {
    pub fn new(kind: SetErrorType) -> SetError {
        SetError {
            kind,
            description: None,
            properties: Vec::new(),
            existing_id: None,
            extra: None,
        }
    }

    pub fn with_description(kind: SetErrorType, description: impl Into<String>) -> SetError {
        SetError {
            description: Some(description.into()),
            ..SetError::new(kind)
        }
    }

    pub fn not_found() -> SetError {
        SetError::new(SetErrorType::NotFound)
    }

    pub fn invalid_patch(description: impl Into<String>) -> SetError {
        SetError::with_description(SetErrorType::InvalidPatch, description)
    }

    pub fn invalid_properties(
        properties: impl IntoIterator<Item = impl Into<String>>,
        description: impl Into<String>,
    ) -> SetError {
        SetError {
            properties: properties.into_iter().map(Into::into).collect(),
            ..SetError::with_description(SetErrorType::InvalidProperties, description)
        }
    }

    pub fn to_json(&self) -> Value {
        let mut object = self.extra.clone().unwrap_or_default();
        object.insert("type".to_owned(), Value::from(self.kind.name()));
        if let Some(description) = &self.description {
            object.insert("description".to_owned(), Value::from(description.as_str()));
        }
        if !self.properties.is_empty() {
            let properties = self.properties.iter().map(|p| Value::from(p.as_str()));
            object.insert("properties".to_owned(), Value::Array(properties.collect()));
        }
        if let Some(existing_id) = &self.existing_id {
            object.insert("existingId".to_owned(), Value::from(existing_id.as_str()));
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_details_serialize_as_rfc7807() {
        let problem = ProblemDetails::limit("maxCallsInRequest", "too many calls");
        assert_eq!(
            problem.to_json(),
            serde_json::json!({
                "type": "urn:ietf:params:jmap:error:limit",
                "status": 400,
                "detail": "too many calls",
                "limit": "maxCallsInRequest",
            })
        );
        assert!(
            ProblemDetails::not_json("x")
                .to_json()
                .get("limit")
                .is_none()
        );
    }

    #[test]
    fn set_errors_carry_their_members() {
        let error = SetError::invalid_properties(["name"], "bad name");
        assert_eq!(
            error.to_json(),
            serde_json::json!({"type": "invalidProperties", "description": "bad name",
                "properties": ["name"]})
        );
    }
}
