//! THE dispatch table: every JMAP method Tern implements, with the capability that must be in
//! `using` for it and the one file that implements it. The session advertises exactly the
//! capabilities listed here; tests check this table against `jmap-spec/methods.json`.

use serde_json::Value;

use super::context::{Arguments, CallContext};
use super::error::MethodError;
use crate::store::BoxFuture;

pub const CAPABILITY_CORE: &str = "urn:ietf:params:jmap:core";
/// RFC 8621 §1.3.1: JMAP Mail.
pub const CAPABILITY_MAIL: &str = "urn:ietf:params:jmap:mail";
/// RFC 8621 §1.3.2: sending mail (Identity, EmailSubmission).
pub const CAPABILITY_SUBMISSION: &str = "urn:ietf:params:jmap:submission";
/// RFC 8621 §1.3.3: the vacation auto-reply.
pub const CAPABILITY_VACATION_RESPONSE: &str = "urn:ietf:params:jmap:vacationresponse";
/// RFC 9425 §2: quotas.
pub const CAPABILITY_QUOTA: &str = "urn:ietf:params:jmap:quota";
/// RFC 9404: Blob/upload, Blob/get, Blob/lookup.
pub const CAPABILITY_BLOB: &str = "urn:ietf:params:jmap:blob";
/// RFC 9007: MDN/send, MDN/parse.
pub const CAPABILITY_MDN: &str = "urn:ietf:params:jmap:mdn";
/// RFC 9661: SieveScript/get, /set, /query, /validate.
pub const CAPABILITY_SIEVE: &str = "urn:ietf:params:jmap:sieve";
/// RFC 9670 §3: Principals and ShareNotifications.
pub const CAPABILITY_PRINCIPALS: &str = "urn:ietf:params:jmap:principals";
/// RFC 9670 §3.2: an account-only capability naming the account's owner.
pub const CAPABILITY_PRINCIPALS_OWNER: &str = "urn:ietf:params:jmap:principals:owner";

/// What a method returns: its response arguments, or a method error (a response too, never
/// an abort of the request: RFC 8620 §3.6.2).
pub type MethodResult = Result<Value, MethodError>;

/// A method implementation. One file per method; each exposes a `handle` of this type.
pub type Handler =
    for<'a, 'r> fn(&'a mut CallContext<'r>, Arguments) -> BoxFuture<'a, MethodResult>;

/// One row of the table.
#[derive(Clone, Copy)]
pub struct MethodEntry {
    pub name: &'static str,
    pub capability: &'static str,
    pub handler: Handler,
    /// Whether the method may name an account shared with the caller (RFC 9670). Any other
    /// method on a shared account is `accountNotSupportedByMethod` (RFC 8620 §3.6.2).
    pub on_shared_accounts: SharedAccess,
}

/// Which shared accounts a method may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedAccess {
    /// Only the caller's own account.
    None,
    /// Any shared account: the mail data a grant covers (what of it the caller sees is
    /// decided per Mailbox inside the method).
    Granted,
    /// The accounts of the caller's groups, whose members see all of it: whole-account data
    /// such as its Quotas (a grantee of a few Mailboxes must not learn the size of the rest).
    GroupMembers,
}

impl std::fmt::Debug for MethodEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodEntry")
            .field("name", &self.name)
            .field("capability", &self.capability)
            .finish()
    }
}

/// Every method. Keep sorted by name.
pub const METHODS: &[MethodEntry] = &[
    MethodEntry {
        name: "Blob/copy",
        capability: CAPABILITY_CORE,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::blob::copy::handle,
    },
    MethodEntry {
        name: "Blob/get",
        capability: CAPABILITY_BLOB,
        on_shared_accounts: SharedAccess::None,
        handler: super::blob::get::handle,
    },
    MethodEntry {
        name: "Blob/lookup",
        capability: CAPABILITY_BLOB,
        on_shared_accounts: SharedAccess::None,
        handler: super::blob::lookup::handle,
    },
    MethodEntry {
        name: "Blob/upload",
        capability: CAPABILITY_BLOB,
        on_shared_accounts: SharedAccess::None,
        handler: super::blob::upload::handle,
    },
    MethodEntry {
        name: "Core/echo",
        capability: CAPABILITY_CORE,
        on_shared_accounts: SharedAccess::None,
        handler: super::core::echo::handle,
    },
    MethodEntry {
        name: "Email/changes",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email::changes::handle,
    },
    MethodEntry {
        name: "Email/copy",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email::copy::handle,
    },
    MethodEntry {
        name: "Email/get",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email::get::handle,
    },
    MethodEntry {
        name: "Email/import",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email::import::handle,
    },
    MethodEntry {
        name: "Email/parse",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::None,
        handler: super::mail::email::parse::handle,
    },
    MethodEntry {
        name: "Email/query",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email::query::handle,
    },
    MethodEntry {
        name: "Email/queryChanges",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email::query_changes::handle,
    },
    MethodEntry {
        name: "Email/set",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email::set::handle,
    },
    MethodEntry {
        name: "Quota/changes",
        capability: CAPABILITY_QUOTA,
        on_shared_accounts: SharedAccess::GroupMembers,
        handler: super::quota::changes::handle,
    },
    MethodEntry {
        name: "Quota/get",
        capability: CAPABILITY_QUOTA,
        on_shared_accounts: SharedAccess::GroupMembers,
        handler: super::quota::get::handle,
    },
    MethodEntry {
        name: "Quota/query",
        capability: CAPABILITY_QUOTA,
        on_shared_accounts: SharedAccess::GroupMembers,
        handler: super::quota::query::handle,
    },
    MethodEntry {
        name: "Quota/queryChanges",
        capability: CAPABILITY_QUOTA,
        on_shared_accounts: SharedAccess::GroupMembers,
        handler: super::quota::query_changes::handle,
    },
    MethodEntry {
        name: "SearchSnippet/get",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::search_snippet::get::handle,
    },
    MethodEntry {
        name: "EmailSubmission/changes",
        capability: CAPABILITY_SUBMISSION,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email_submission::changes::handle,
    },
    MethodEntry {
        name: "EmailSubmission/get",
        capability: CAPABILITY_SUBMISSION,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email_submission::get::handle,
    },
    MethodEntry {
        name: "EmailSubmission/query",
        capability: CAPABILITY_SUBMISSION,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email_submission::query::handle,
    },
    MethodEntry {
        name: "EmailSubmission/queryChanges",
        capability: CAPABILITY_SUBMISSION,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email_submission::query_changes::handle,
    },
    MethodEntry {
        name: "EmailSubmission/set",
        capability: CAPABILITY_SUBMISSION,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::email_submission::set::handle,
    },
    MethodEntry {
        name: "Identity/changes",
        capability: CAPABILITY_SUBMISSION,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::identity::changes::handle,
    },
    MethodEntry {
        name: "Identity/get",
        capability: CAPABILITY_SUBMISSION,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::identity::get::handle,
    },
    MethodEntry {
        name: "Identity/set",
        capability: CAPABILITY_SUBMISSION,
        on_shared_accounts: SharedAccess::None,
        handler: super::mail::identity::set::handle,
    },
    MethodEntry {
        name: "Mailbox/changes",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::mailbox::changes::handle,
    },
    MethodEntry {
        name: "Mailbox/get",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::mailbox::get::handle,
    },
    MethodEntry {
        name: "Mailbox/query",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::mailbox::query::handle,
    },
    MethodEntry {
        name: "Mailbox/queryChanges",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::mailbox::query_changes::handle,
    },
    MethodEntry {
        name: "Mailbox/set",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::mailbox::set::handle,
    },
    MethodEntry {
        name: "MDN/parse",
        capability: CAPABILITY_MDN,
        on_shared_accounts: SharedAccess::None,
        handler: super::mdn::parse::handle,
    },
    MethodEntry {
        name: "MDN/send",
        capability: CAPABILITY_MDN,
        on_shared_accounts: SharedAccess::None,
        handler: super::mdn::send::handle,
    },
    MethodEntry {
        name: "Principal/changes",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::principal::changes::handle,
    },
    MethodEntry {
        name: "Principal/get",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::principal::get::handle,
    },
    MethodEntry {
        name: "Principal/query",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::principal::query::handle,
    },
    MethodEntry {
        name: "Principal/queryChanges",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::principal::query_changes::handle,
    },
    MethodEntry {
        name: "PushSubscription/get",
        capability: CAPABILITY_CORE,
        on_shared_accounts: SharedAccess::None,
        handler: super::push_subscription::get::handle,
    },
    MethodEntry {
        name: "PushSubscription/set",
        capability: CAPABILITY_CORE,
        on_shared_accounts: SharedAccess::None,
        handler: super::push_subscription::set::handle,
    },
    MethodEntry {
        name: "ShareNotification/changes",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::share_notification::changes::handle,
    },
    MethodEntry {
        name: "ShareNotification/get",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::share_notification::get::handle,
    },
    MethodEntry {
        name: "ShareNotification/query",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::share_notification::query::handle,
    },
    MethodEntry {
        name: "ShareNotification/queryChanges",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::share_notification::query_changes::handle,
    },
    MethodEntry {
        name: "ShareNotification/set",
        capability: CAPABILITY_PRINCIPALS,
        on_shared_accounts: SharedAccess::None,
        handler: super::share_notification::set::handle,
    },
    MethodEntry {
        name: "SieveScript/get",
        capability: CAPABILITY_SIEVE,
        on_shared_accounts: SharedAccess::None,
        handler: super::sieve::get::handle,
    },
    MethodEntry {
        name: "SieveScript/query",
        capability: CAPABILITY_SIEVE,
        on_shared_accounts: SharedAccess::None,
        handler: super::sieve::query::handle,
    },
    MethodEntry {
        name: "SieveScript/set",
        capability: CAPABILITY_SIEVE,
        on_shared_accounts: SharedAccess::None,
        handler: super::sieve::set::handle,
    },
    MethodEntry {
        name: "SieveScript/validate",
        capability: CAPABILITY_SIEVE,
        on_shared_accounts: SharedAccess::None,
        handler: super::sieve::validate::handle,
    },
    MethodEntry {
        name: "Thread/changes",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::thread::changes::handle,
    },
    MethodEntry {
        name: "Thread/get",
        capability: CAPABILITY_MAIL,
        on_shared_accounts: SharedAccess::Granted,
        handler: super::mail::thread::get::handle,
    },
    MethodEntry {
        name: "VacationResponse/get",
        capability: CAPABILITY_VACATION_RESPONSE,
        on_shared_accounts: SharedAccess::None,
        handler: super::mail::vacation::get::handle,
    },
    MethodEntry {
        name: "VacationResponse/set",
        capability: CAPABILITY_VACATION_RESPONSE,
        on_shared_accounts: SharedAccess::None,
        handler: super::mail::vacation::set::handle,
    },
];
