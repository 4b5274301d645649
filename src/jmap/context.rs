//! What a method handler gets: the engine's shared state, the principal it runs for, the
//! request's creation ids, and typed readers for its arguments (which turn a wrong type into
//! `invalidArguments` instead of a panic).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::EngineShared;
use super::error::{MethodError, MethodErrorType};
use super::types::{AccountId, Id, IdOrReference, Int, UnsignedInt};
use crate::auth::Principal;
use crate::mail::sharing::Viewer;

/// The per-call view of one request.
pub struct CallContext<'r> {
    pub engine: &'r EngineShared,
    pub principal: &'r Principal,
    /// RFC 8620 §3.3/§5.3: creation id → server id, for every object created so far in the
    /// request (plus the client's `createdIds`).
    pub created_ids: HashMap<Id, Id>,
    /// Extra responses a method emits after its own (RFC 8620 §5.4: the implicit /set of
    /// `onSuccessDestroyOriginal`).
    /// `(method name, arguments)`; the engine gives them the running call's id.
    pub implicit_responses: Vec<(String, Value)>,
    /// The request's account of the JSON it answers (`budget.rs`): a method building a large
    /// answer charges as it goes, so it stops early instead of growing the heap.
    pub meter: super::budget::ResponseMeter,
    /// A method that serialized its `list` item by item (Email/get) leaves the items here and
    /// answers `list` empty; the engine writes them in place (`response::Spliced`).
    pub raw_list: Option<Vec<Box<serde_json::value::RawValue>>>,
    /// The request's `using` (RFC 8620 §3.3), for methods whose answer depends on it
    /// (RFC 9425 §4.1: Quota types of unused capabilities are hidden).
    pub using: &'r [String],
    /// Who is asking, with their groups: grants to any of these ids apply (`mail::sharing`).
    pub viewer: Viewer,
    /// The accounts that share Mailboxes with the caller, read when the request started.
    pub shared_accounts: Vec<u32>,
    /// Which shared accounts the running method may name (`MethodEntry`).
    pub call_on_shared_accounts: crate::jmap::dispatch::SharedAccess,
}

impl CallContext<'_> {
    /// Resolves `#creationId` to the id created earlier in the request. `None` when the
    /// creation id is unknown: callers answer `notFound` (RFC 8620 §5.3).
    pub fn resolve_id(&self, text: &str) -> Result<Option<Id>, MethodError> {
        match IdOrReference::parse(text) {
            Ok(IdOrReference::Id(id)) => Ok(Some(id)),
            Ok(IdOrReference::Reference(creation_id)) => {
                Ok(self.created_ids.get(&creation_id).cloned())
            }
            Err(error) => Err(MethodError::invalid_arguments(error.to_string())),
        }
    }

    /// Checks that the principal may use `account` (RFC 8620 §3.6.2 `accountNotFound`; the
    /// same answer whether the account is someone else's or does not exist). An account shared
    /// with the caller (RFC 9670) is usable by the methods of the data a grant covers, and
    /// `accountNotSupportedByMethod` for the others; what of it the caller sees is decided
    /// per Mailbox inside each method (`mail::sharing::SharedView`).
    pub fn authorize(&self, account: AccountId) -> Result<AccountId, MethodError> {
        if self.principal.may_access(account.number()) {
            return Ok(account);
        }
        if self.shared_accounts.contains(&account.number()) {
            use crate::jmap::dispatch::SharedAccess;
            let allowed = match self.call_on_shared_accounts {
                SharedAccess::None => false,
                SharedAccess::Granted => true,
                SharedAccess::GroupMembers => self.viewer.groups.contains(&account.number()),
            };
            if allowed {
                return Ok(account);
            }
            return Err(MethodError::new(
                MethodErrorType::AccountNotSupportedByMethod,
            ));
        }
        Err(MethodError::account_not_found())
    }

    /// The `accountId` of raw arguments when it names the caller's own account: for the steps
    /// that run before a method reads its arguments (a missing, malformed or foreign id is left
    /// for the method to refuse).
    pub fn own_account_argument(&self, members: &Map<String, Value>) -> Option<AccountId> {
        members
            .get("accountId")
            .and_then(Value::as_str)
            .and_then(|text| AccountId::parse(text).ok())
            .filter(|account| self.owns(*account))
    }

    /// Whether `account` is the caller's own (full rights) rather than shared with them.
    pub fn owns(&self, account: AccountId) -> bool {
        self.principal.may_access(account.number())
    }

    pub fn record_created(&mut self, creation_id: Id, id: Id) {
        self.created_ids.insert(creation_id, id);
    }
}

/// A method's arguments, consumed by name. `finish` refuses any argument left unread, so a
/// misspelt argument is `invalidArguments` rather than silently ignored.
#[derive(Debug, Default)]
pub struct Arguments {
    members: Map<String, Value>,
}

fn wrong_type(name: &str, expected: &str) -> MethodError {
    MethodError::invalid_arguments(format!("{name:?} must be {expected}"))
}

impl Arguments {
    pub fn new(members: Map<String, Value>) -> Arguments {
        Arguments { members }
    }

    pub fn into_inner(self) -> Map<String, Value> {
        self.members
    }

    /// The raw value; `null` counts as absent (RFC 8620 uses `null` for "default").
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.members.remove(name).filter(|value| !value.is_null())
    }

    pub fn take_required(&mut self, name: &str) -> Result<Value, MethodError> {
        self.take(name)
            .ok_or_else(|| MethodError::invalid_arguments(format!("{name:?} is required")))
    }

    /// `accountId` (or another account argument), parsed and authorized.
    pub fn take_account(
        &mut self,
        name: &str,
        context: &CallContext<'_>,
    ) -> Result<AccountId, MethodError> {
        let Value::String(text) = self.take_required(name)? else {
            return Err(wrong_type(name, "a String"));
        };
        // An unparseable id names no account of ours: the same answer as a foreign one.
        let account = AccountId::parse(&text).map_err(|_| MethodError::account_not_found())?;
        context.authorize(account)
    }

    pub fn take_string(&mut self, name: &str) -> Result<Option<String>, MethodError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(wrong_type(name, "a String")),
        }
    }

    pub fn take_bool(&mut self, name: &str, default: bool) -> Result<bool, MethodError> {
        match self.take(name) {
            None => Ok(default),
            Some(Value::Bool(flag)) => Ok(flag),
            Some(_) => Err(wrong_type(name, "a Boolean")),
        }
    }

    pub fn take_unsigned(&mut self, name: &str) -> Result<Option<UnsignedInt>, MethodError> {
        match self.take(name) {
            None => Ok(None),
            Some(value) => UnsignedInt::from_json(&value)
                .map(Some)
                .ok_or_else(|| wrong_type(name, "an UnsignedInt")),
        }
    }

    pub fn take_int(&mut self, name: &str) -> Result<Option<Int>, MethodError> {
        match self.take(name) {
            None => Ok(None),
            Some(value) => Int::from_json(&value)
                .map(Some)
                .ok_or_else(|| wrong_type(name, "an Int")),
        }
    }

    /// A list of strings (ids, possibly `#creationId` references), or `None` for null/absent.
    pub fn take_string_list(&mut self, name: &str) -> Result<Option<Vec<String>>, MethodError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(wrong_type(name, "a String[]"));
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err(wrong_type(name, "a String[]")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub fn take_object(&mut self, name: &str) -> Result<Option<Map<String, Value>>, MethodError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(members)) => Ok(Some(members)),
            Some(_) => Err(wrong_type(name, "an Object")),
        }
    }

    /// Refuses arguments nobody read.
    pub fn finish(self) -> Result<(), MethodError> {
        match self.members.keys().next() {
            None => Ok(()),
            Some(name) => Err(MethodError::with_description(
                MethodErrorType::InvalidArguments,
                format!("unknown argument {name:?}"),
            )),
        }
    }
}
