//! The session resource (RFC 8620 §2): capabilities with their limits, the principal's
//! accounts, and absolute URLs. Its `state` is a digest of everything else in it, so it
//! changes exactly when the session object would (the API response's `sessionState` is the
//! same value, RFC 8620 §3.4).

use std::fmt::Write;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::EngineShared;
use super::dispatch::{
    CAPABILITY_BLOB, CAPABILITY_CORE, CAPABILITY_MAIL, CAPABILITY_MDN, CAPABILITY_PRINCIPALS,
    CAPABILITY_PRINCIPALS_OWNER, CAPABILITY_QUOTA, CAPABILITY_SIEVE, CAPABILITY_SUBMISSION,
    CAPABILITY_VACATION_RESPONSE,
};

/// JMAP over WebSocket (RFC 8887 §3).
pub const CAPABILITY_WEBSOCKET: &str = "urn:ietf:params:jmap:websocket";

/// Web Push VAPID (draft-ietf-jmap-webpush-vapid): the server's application server key.
pub const CAPABILITY_WEBPUSH_VAPID: &str = "urn:ietf:params:jmap:webpush-vapid";
use super::types::AccountId;
use crate::auth::Principal;
use crate::auth::directory::account_email_in;
use crate::mail::mailbox;
use crate::mail::sharing::{Rights, SharedAccount, SharedView, Viewer};
use crate::store::StoreResult;

/// Absolute URLs advertised in the session, built from the server's public base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUrls {
    pub api_url: String,
    pub download_url: String,
    pub upload_url: String,
    pub event_source_url: String,
    /// RFC 8887 §3: the WebSocket endpoint (`ws://` or `wss://`).
    pub websocket_url: String,
    /// Web Push: the VAPID key the session advertises and the PushSubscription limits.
    pub web_push: crate::push::config::WebPushSettings,
}

impl SessionUrls {
    /// `base_url` is e.g. `http://127.0.0.1:8080` (a trailing `/` is ignored). The URI
    /// templates use RFC 8620 §2's variable names.
    pub fn from_base_url(base_url: &str) -> SessionUrls {
        let base = base_url.trim_end_matches('/');
        SessionUrls {
            api_url: format!("{base}/jmap/api"),
            download_url: format!(
                "{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?type={{type}}"
            ),
            upload_url: format!("{base}/jmap/upload/{{accountId}}/"),
            event_source_url: format!(
                "{base}/jmap/eventsource?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"
            ),
            websocket_url: format!(
                "{}/jmap/ws",
                base.replacen("https://", "wss://", 1)
                    .replacen("http://", "ws://", 1)
            ),
            web_push: crate::push::config::WebPushSettings::default(),
        }
    }
}

/// Capabilities whose methods act on an account; they appear in `accountCapabilities` and
/// `primaryAccounts`. Core is listed too because uploads, downloads and `Blob/copy` are
/// per-account (and clients pick their default account from `primaryAccounts`).
fn account_capability_value(shared: &EngineShared, capability: &str) -> Option<Value> {
    match capability {
        CAPABILITY_CORE => Some(Value::Object(Map::new())),
        // RFC 8621 §1.3.1: the account's mail limits.
        CAPABILITY_MAIL => Some(json!({
            "maxMailboxesPerEmail": crate::jmap::mail::email::fields::MAX_MAILBOXES_PER_EMAIL,
            "maxMailboxDepth": crate::mail::mailbox::MAX_MAILBOX_DEPTH,
            "maxSizeMailboxName": crate::mail::mailbox::MAX_SIZE_MAILBOX_NAME,
            "maxSizeAttachmentsPerEmail": crate::mail::build::MAX_SIZE_ATTACHMENTS_PER_EMAIL,
            "emailQuerySortOptions": crate::jmap::mail::email::query::sort::SORT_OPTIONS,
            "mayCreateTopLevelMailbox": true,
        })),
        // RFC 8621 §1.3.2: FUTURERELEASE holds and the SMTP extensions an envelope may use.
        CAPABILITY_SUBMISSION => Some(json!({
            "maxDelayedSend": crate::jmap::mail::email_submission::MAX_DELAYED_SEND_SECONDS,
            "submissionExtensions": crate::jmap::mail::email_submission::submission_extensions(),
        })),
        // RFC 9404 §3: the limits of Blob/upload and what Blob/get and Blob/lookup support.
        CAPABILITY_BLOB => Some(crate::jmap::blob::account_capability(
            shared.limits.max_size_upload,
        )),
        // RFC 9661 §2: the script limits and the extensions.
        CAPABILITY_SIEVE => Some(crate::jmap::sieve::account_capability()),
        // RFC 8621 §1.3.3, RFC 9007 §4 and RFC 9425 §2.1: empty objects.
        CAPABILITY_VACATION_RESPONSE | CAPABILITY_MDN | CAPABILITY_QUOTA => {
            Some(Value::Object(Map::new()))
        }
        _ => None,
    }
}

fn server_capability_value(shared: &EngineShared, capability: &str) -> Value {
    match capability {
        CAPABILITY_CORE => serde_json::to_value(&shared.limits).unwrap_or_default(),
        _ => Value::Object(Map::new()),
    }
}

/// How a shared account appears in the grantee's session (RFC 8620 §1.6.2, RFC 9670).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAccountEntry {
    pub account_id: u32,
    /// The owner's address.
    pub name: String,
    /// No grant lets the grantee change anything.
    pub is_read_only: bool,
    /// A Mailbox grants `maySubmit`: the account offers submission with the owner's
    /// Identities.
    pub may_submit: bool,
    /// The account is one of the caller's groups: they see all of it, its Quotas too
    /// (`SharedAccess::GroupMembers`).
    pub is_member: bool,
}

/// Reads the owner's name and the grantee's rights of each shared account (one snapshot).
pub async fn describe_shared(
    shared: &EngineShared,
    viewer: &Viewer,
    accounts: &[SharedAccount],
) -> StoreResult<Vec<SharedAccountEntry>> {
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let viewer = viewer.clone();
    let accounts = accounts.to_vec();
    shared
        .store
        .read(move |tx| {
            let viewer = viewer.clone();
            let accounts = accounts.clone();
            Box::pin(async move {
                let mut entries = Vec::with_capacity(accounts.len());
                for account in accounts {
                    let Some(name) = account_email_in(tx, account.account_id)
                        .await
                        .map_err(|error| crate::store::StoreError::io(error.to_string()))?
                    else {
                        continue;
                    };
                    let mailboxes = mailbox::load_all(tx, account.account_id).await?;
                    let view = SharedView::of_account(account.account_id, &mailboxes, &viewer);
                    // RFC 9670 §1.3: only accounts the user subscribed to something in.
                    if !view.any_subscribed() {
                        continue;
                    }
                    let writes = Rights::ALL.without(Rights::READ_ITEMS);
                    let is_read_only = mailboxes
                        .keys()
                        .all(|mailbox_id| view.rights(*mailbox_id).bits() & writes.bits() == 0);
                    entries.push(SharedAccountEntry {
                        account_id: account.account_id,
                        name,
                        is_read_only,
                        may_submit: view.may_submit_somewhere(),
                        is_member: viewer.groups.contains(&account.account_id),
                    });
                }
                Ok(entries)
            })
        })
        .await
}

fn session_without_state(
    shared: &EngineShared,
    principal: &Principal,
    shared_accounts: &[SharedAccountEntry],
) -> Map<String, Value> {
    let account_id = AccountId::new(principal.account_id).to_string();
    let mut capabilities = Map::new();
    let mut account_capabilities = Map::new();
    let mut primary_accounts = Map::new();
    for capability in &shared.capabilities {
        capabilities.insert(
            (*capability).to_owned(),
            server_capability_value(shared, capability),
        );
        if let Some(value) = account_capability_value(shared, capability) {
            account_capabilities.insert((*capability).to_owned(), value);
            primary_accounts.insert((*capability).to_owned(), Value::from(account_id.as_str()));
        }
    }
    // RFC 8887 §3: a server capability without methods, so not in the dispatch table.
    capabilities.insert(
        CAPABILITY_WEBSOCKET.to_owned(),
        json!({"url": shared.urls.websocket_url, "supportsPush": true}),
    );
    // draft-ietf-jmap-webpush-vapid: the key browsers subscribe with (RFC 8292 §3.2).
    if let Some(key) = &shared.urls.web_push.vapid_public_key {
        capabilities.insert(
            CAPABILITY_WEBPUSH_VAPID.to_owned(),
            json!({"applicationServerKey": key}),
        );
    }
    // RFC 9670 §3: the user's Principals live in their own account, which they own.
    if shared.capabilities.contains(&CAPABILITY_PRINCIPALS) {
        account_capabilities.insert(
            CAPABILITY_PRINCIPALS.to_owned(),
            json!({"currentUserPrincipalId": account_id}),
        );
        account_capabilities.insert(
            CAPABILITY_PRINCIPALS_OWNER.to_owned(),
            json!({"accountIdForPrincipal": account_id, "principalId": account_id}),
        );
        primary_accounts.insert(
            CAPABILITY_PRINCIPALS.to_owned(),
            Value::from(account_id.as_str()),
        );
    }
    let mut accounts = Map::new();
    accounts.insert(
        account_id.clone(),
        json!({
            "name": principal.email,
            "isPersonal": true,
            "isReadOnly": false,
            "accountCapabilities": account_capabilities,
        }),
    );
    for entry in shared_accounts {
        // A grant covers mail data only (`MethodEntry::on_shared_accounts`); RFC 8621 §1.3.1:
        // a grantee creates Mailboxes only under ones granting mayCreateChild.
        let mut mail = account_capability_value(shared, CAPABILITY_MAIL).unwrap_or_default();
        mail["mayCreateTopLevelMailbox"] = Value::Bool(false);
        let mut account = json!({
            "name": entry.name,
            "isPersonal": false,
            "isReadOnly": entry.is_read_only,
            "accountCapabilities": {
                CAPABILITY_CORE: {},
                CAPABILITY_MAIL: mail,
                CAPABILITY_PRINCIPALS_OWNER: {
                    "accountIdForPrincipal": account_id,
                    "principalId": AccountId::new(entry.account_id).to_string(),
                },
            },
        });
        // RFC 8621 §2 maySubmit: sending with the owner's Identities.
        if entry.may_submit
            && let Some(submission) = account_capability_value(shared, CAPABILITY_SUBMISSION)
        {
            account["accountCapabilities"][CAPABILITY_SUBMISSION] = submission;
        }
        // RFC 9425: a group's members see the team account's Quotas (and are limited by them).
        if entry.is_member && shared.capabilities.contains(&CAPABILITY_QUOTA) {
            account["accountCapabilities"][CAPABILITY_QUOTA] = json!({});
        }
        accounts.insert(AccountId::new(entry.account_id).to_string(), account);
    }
    let urls = &shared.urls;
    let mut session = Map::new();
    session.insert("capabilities".to_owned(), Value::Object(capabilities));
    session.insert("accounts".to_owned(), Value::Object(accounts));
    session.insert(
        "primaryAccounts".to_owned(),
        Value::Object(primary_accounts),
    );
    session.insert("username".to_owned(), Value::from(principal.email.as_str()));
    session.insert("apiUrl".to_owned(), Value::from(urls.api_url.as_str()));
    session.insert(
        "downloadUrl".to_owned(),
        Value::from(urls.download_url.as_str()),
    );
    session.insert(
        "uploadUrl".to_owned(),
        Value::from(urls.upload_url.as_str()),
    );
    session.insert(
        "eventSourceUrl".to_owned(),
        Value::from(urls.event_source_url.as_str()),
    );
    session
}

/// The part of the session-state digest shared by every principal: capabilities, limits and
/// URLs, hashed once at start-up.
pub fn shared_digest(capabilities: &[&str], limits_and_urls: &str) -> Sha256 {
    let mut hasher = Sha256::new();
    for capability in capabilities {
        hasher.update(capability.as_bytes());
        hasher.update([0]);
    }
    hasher.update(limits_and_urls.as_bytes());
    hasher
}

/// A digest of the session's content: it changes exactly when the session would. Computed
/// from the inputs rather than the JSON, and from a pre-hashed shared part, so that every
/// API response can afford it.
pub fn session_state(
    shared: &EngineShared,
    principal: &Principal,
    shared_accounts: &[SharedAccount],
) -> String {
    let mut hasher = shared.session_digest.clone();
    hasher.update(principal.account_id.to_be_bytes());
    hasher.update(principal.email.as_bytes());
    // A grant change moves the sharing version of the account that made it.
    for account in shared_accounts {
        hasher.update(account.account_id.to_be_bytes());
        hasher.update(account.sharing_version.to_be_bytes());
    }
    let digest = hasher.finalize();
    let mut state = String::with_capacity(17);
    state.push('S');
    for byte in &digest[..8] {
        // Writing to a String cannot fail.
        let _ = write!(state, "{byte:02x}");
    }
    state
}

pub fn session_object(
    shared: &EngineShared,
    principal: &Principal,
    shared_accounts: &[SharedAccount],
    entries: &[SharedAccountEntry],
) -> Value {
    let mut session = session_without_state(shared, principal, entries);
    session.insert(
        "state".to_owned(),
        Value::String(session_state(shared, principal, shared_accounts)),
    );
    Value::Object(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jmap::test_support::{alice, bob, engine, engine_with};
    use crate::jmap::{CoreLimits, dispatch};

    #[test]
    fn session_lists_the_account_capabilities_and_absolute_urls() {
        let test = engine();
        let session = crate::jmap::test_support::session_blocking(&test.engine, &alice());
        assert_eq!(session["username"], "alice@example.test");
        assert_eq!(session["apiUrl"], "http://127.0.0.1:8080/jmap/api");
        assert_eq!(
            session["downloadUrl"],
            "http://127.0.0.1:8080/jmap/download/{accountId}/{blobId}/{name}?type={type}"
        );
        assert_eq!(
            session["uploadUrl"],
            "http://127.0.0.1:8080/jmap/upload/{accountId}/"
        );
        assert_eq!(
            session["eventSourceUrl"],
            "http://127.0.0.1:8080/jmap/eventsource?types={types}&closeafter={closeafter}&ping={ping}"
        );
        assert_eq!(
            session["capabilities"][CAPABILITY_WEBSOCKET],
            json!({"url": "ws://127.0.0.1:8080/jmap/ws", "supportsPush": true})
        );
        let core = &session["capabilities"][CAPABILITY_CORE];
        assert_eq!(core["maxCallsInRequest"], 64);
        assert_eq!(core["maxSizeUpload"], 50_000_000);
        assert_eq!(session["primaryAccounts"][CAPABILITY_CORE], "a1");
        let account = &session["accounts"]["a1"];
        assert_eq!(account["name"], "alice@example.test");
        assert_eq!(account["isPersonal"], true);
        assert_eq!(account["isReadOnly"], false);
        assert!(account["accountCapabilities"][CAPABILITY_CORE].is_object());
        assert_eq!(session["accounts"].as_object().map(|a| a.len()), Some(1));
    }

    #[tokio::test]
    async fn session_state_follows_the_session_content() {
        let test = engine();
        let alice_state = test.engine.session(&alice()).await.unwrap()["state"].clone();
        assert_eq!(
            test.engine.session(&alice()).await.unwrap()["state"],
            alice_state,
            "stable"
        );
        assert_ne!(
            test.engine.session(&bob()).await.unwrap()["state"],
            alice_state
        );
        let renamed = Principal {
            email: "alice@other.test".to_owned(),
            ..alice()
        };
        assert_ne!(
            test.engine.session(&renamed).await.unwrap()["state"],
            alice_state
        );
        let other_limits = engine_with(
            dispatch::METHODS,
            CoreLimits {
                max_calls_in_request: 5,
                ..CoreLimits::default()
            },
        );
        assert_ne!(
            other_limits.engine.session(&alice()).await.unwrap()["state"],
            alice_state
        );
        // RFC 8620 §3.4: the API response carries the same state.
        let response = test
            .engine
            .handle_api(&alice(), br#"{"using":[],"methodCalls":[]}"#)
            .await
            .expect("response");
        assert_eq!(response["sessionState"], alice_state);
    }
}
