//! The rules of Mailbox/set (RFC 8621 §2, §2.5) for the properties a client sets: each
//! property's own rules, then the rules that involve the other Mailboxes (parent exists, no
//! loop, depth, sibling names, role uniqueness). Every invalid property is named in one
//! `invalidProperties` error; a name taken by a sibling, when nothing else is wrong, is
//! `alreadyExists` with the sibling's id (RFC 8620 §5.4's error for a duplicate the server
//! forbids, the way clients recognise it and the JMAP conformance suites expect it).

use icu_normalizer::ComposingNormalizerBorrowed;
use serde_json::{Map, Value};

use super::{ID_PREFIX, mailbox_id_json};
use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::generic::WriteScope;
use crate::mail::mailbox::tree::{self, Mailboxes};
use crate::mail::mailbox::{
    MAX_MAILBOX_DEPTH, MAX_SIZE_MAILBOX_NAME, MAY_CREATE_TOP_LEVEL_MAILBOX, Mailbox, is_valid_role,
};

/// RFC 8621 §2 `sortOrder`: 0 ≤ sortOrder < 2^31.
const SORT_ORDER_LIMIT: u64 = 1 << 31;

/// Invalid properties found so far, each with why.
#[derive(Default)]
struct Problems {
    properties: Vec<&'static str>,
    reasons: Vec<String>,
    /// The sibling whose name the Mailbox would share.
    sibling_with_name: Option<u64>,
}

impl Problems {
    fn add(&mut self, property: &'static str, reason: impl Into<String>) {
        if !self.properties.contains(&property) {
            self.properties.push(property);
            self.reasons.push(reason.into());
        }
    }

    fn into_result(self) -> Result<(), SetError> {
        if self.properties.is_empty() {
            return Ok(());
        }
        if let (Some(sibling), ["name"]) = (self.sibling_with_name, self.properties.as_slice()) {
            let mut error = SetError::with_description(
                SetErrorType::AlreadyExists,
                "a sibling Mailbox has this name (RFC 8621 §2)",
            );
            error.existing_id =
                Some(crate::jmap::types::Id::from_number(ID_PREFIX, sibling).into_string());
            return Err(error);
        }
        Err(SetError::invalid_properties(
            self.properties,
            self.reasons.join("; "),
        ))
    }
}

/// RFC 8621 §2 `name`: a Net-Unicode string of at least one character, at most
/// maxSizeMailboxName octets. Control characters are refused (RFC 5198 allows none but
/// CRLF, which has no place in a name).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".to_owned());
    }
    if name.len() > MAX_SIZE_MAILBOX_NAME {
        return Err(format!(
            "name is longer than maxSizeMailboxName ({MAX_SIZE_MAILBOX_NAME} octets)"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("name contains control characters".to_owned());
    }
    if name.trim().is_empty() {
        return Err("name must not be only white space".to_owned());
    }
    Ok(())
}

/// Reads the client-settable properties of `object` over `base` (the defaults for a create,
/// the stored Mailbox for an update). Returns the Mailbox and what the server changed of the
/// client's values (a `#creationId` parent resolved to its id).
fn read_properties(
    object: &Map<String, Value>,
    scope: &WriteScope<'_>,
    base: Mailbox,
    problems: &mut Problems,
) -> (Mailbox, Map<String, Value>) {
    let mut mailbox = base;
    let mut reported = Map::new();
    match object.get("name") {
        None => {}
        Some(Value::String(name)) => {
            // RFC 8621 §2: names are Net-Unicode (RFC 5198), so stored in NFC; two spellings
            // of one name are then the same name for the sibling rule.
            let normalized = ComposingNormalizerBorrowed::new_nfc().normalize(name);
            match check_name(&normalized) {
                Ok(()) => {
                    if normalized != name.as_str() {
                        reported.insert("name".to_owned(), Value::from(normalized.as_ref()));
                    }
                    mailbox.name = normalized.into_owned();
                }
                Err(reason) => problems.add("name", reason),
            }
        }
        Some(_) => problems.add("name", "name must be a String"),
    }
    match object.get("parentId") {
        None => {}
        Some(Value::Null) => mailbox.parent_id = None,
        Some(Value::String(text)) => {
            match scope
                .resolve_id(text)
                .and_then(|id| id.to_number(ID_PREFIX))
            {
                Some(parent_id) => {
                    mailbox.parent_id = Some(parent_id);
                    if text.starts_with('#') {
                        reported.insert("parentId".to_owned(), mailbox_id_json(parent_id));
                    }
                }
                None => problems.add("parentId", format!("no Mailbox {text:?}")),
            }
        }
        Some(_) => problems.add("parentId", "parentId must be an Id or null"),
    }
    match object.get("role") {
        None => {}
        Some(Value::Null) => mailbox.role = None,
        Some(Value::String(role)) if is_valid_role(role) => mailbox.role = Some(role.clone()),
        // RFC 8621 §2: a role is a lower-case IANA Mailbox attribute name.
        Some(Value::String(role)) => problems.add("role", format!("unknown role {role:?}")),
        Some(_) => problems.add("role", "role must be a String or null"),
    }
    match object.get("sortOrder") {
        None => {}
        Some(value) => match value.as_u64().filter(|order| *order < SORT_ORDER_LIMIT) {
            Some(order) => mailbox.sort_order = u32::try_from(order).unwrap_or(u32::MAX),
            None => problems.add("sortOrder", "sortOrder must be an integer in 0..2^31"),
        },
    }
    match object.get("isSubscribed") {
        None => {}
        Some(Value::Bool(flag)) => mailbox.is_subscribed = *flag,
        Some(_) => problems.add("isSubscribed", "isSubscribed must be a Boolean"),
    }
    if let Some(value) = object.get("shareWith") {
        match super::sharing::parse_share_with(value) {
            Ok(grants) => mailbox.share_with = grants,
            Err(reason) => problems.add("shareWith", reason),
        }
    }
    (mailbox, reported)
}

/// The rules that involve other Mailboxes, for `mailbox` (stored as `own_id` when it exists).
/// `previous` is the stored version: rules about unchanged properties are not re-checked.
fn check_relations(
    mailbox: &Mailbox,
    own_id: Option<u64>,
    previous: Option<&Mailbox>,
    all: &Mailboxes,
    problems: &mut Problems,
) {
    let parent_changed = previous.is_none_or(|previous| previous.parent_id != mailbox.parent_id);
    let name_changed = previous.is_none_or(|previous| previous.name != mailbox.name);
    let role_changed = previous.is_none_or(|previous| previous.role != mailbox.role);
    if parent_changed && let Some(parent_id) = mailbox.parent_id {
        if !all.contains_key(&parent_id) {
            problems.add("parentId", "the parent Mailbox does not exist");
        } else if own_id.is_some_and(|id| tree::would_create_cycle(all, id, parent_id)) {
            // RFC 8621 §2: Mailboxes form a forest; there MUST NOT be a loop.
            problems.add(
                "parentId",
                "a Mailbox cannot be inside itself or its descendants",
            );
        } else {
            let height = own_id.map_or(1, |id| tree::subtree_height(all, id));
            if tree::depth_under(all, Some(parent_id)) + height - 1 > MAX_MAILBOX_DEPTH {
                problems.add(
                    "parentId",
                    format!("deeper than maxMailboxDepth ({MAX_MAILBOX_DEPTH})"),
                );
            }
        }
    }
    // RFC 8621 §2: no two siblings share a name.
    if (parent_changed || name_changed)
        && let Some((sibling, _)) = all.iter().find(|(id, other)| {
            Some(**id) != own_id
                && other.parent_id == mailbox.parent_id
                && other.name == mailbox.name
        })
    {
        problems.add("name", "a sibling Mailbox has this name");
        problems.sibling_with_name = Some(*sibling);
    }
    // RFC 8621 §2: no two Mailboxes of an account share a role.
    if role_changed
        && let Some(role) = &mailbox.role
        && all
            .iter()
            .any(|(id, other)| Some(*id) != own_id && other.role.as_ref() == Some(role))
    {
        problems.add("role", format!("another Mailbox has the role {role:?}"));
    }
}

/// A new Mailbox from a create object (RFC 8620 §5.3 create, RFC 8621 §2.5).
pub fn for_create(
    object: &Map<String, Value>,
    scope: &WriteScope<'_>,
    all: &Mailboxes,
) -> Result<(Mailbox, Map<String, Value>), SetError> {
    let mut problems = Problems::default();
    if !object.contains_key("name") {
        problems.add("name", "name is required");
    }
    let defaults = Mailbox {
        name: String::new(),
        parent_id: None,
        role: None,
        sort_order: 0,
        // RFC 8621 §2: true by default for Mailboxes the user creates themself.
        is_subscribed: true,
        share_with: Default::default(),
        unsubscribed: Default::default(),
    };
    let (mailbox, reported) = read_properties(object, scope, defaults, &mut problems);
    check_relations(&mailbox, None, None, all, &mut problems);
    problems.into_result()?;
    // RFC 8621 §1.3.1 mayCreateTopLevelMailbox, §2 mayCreateChild of the parent.
    if mailbox.parent_id.is_none() && !MAY_CREATE_TOP_LEVEL_MAILBOX {
        return Err(SetError::with_description(
            SetErrorType::Forbidden,
            "this account may not create top-level Mailboxes",
        ));
    }
    let parent_rights = mailbox
        .parent_id
        .and_then(|parent_id| all.get(&parent_id))
        .map(super::my_rights);
    if parent_rights.is_some_and(|rights| rights["mayCreateChild"] != Value::Bool(true)) {
        return Err(SetError::with_description(
            SetErrorType::Forbidden,
            "the parent Mailbox does not allow children",
        ));
    }
    Ok((mailbox, reported))
}

/// The Mailbox `id` after a patch (`patched` is the whole object with the patch applied).
pub fn for_update(
    patched: &Map<String, Value>,
    scope: &WriteScope<'_>,
    all: &Mailboxes,
    id: u64,
) -> Result<(Mailbox, Map<String, Value>), SetError> {
    let Some(current) = all.get(&id) else {
        return Err(SetError::not_found());
    };
    let mut problems = Problems::default();
    let (mailbox, reported) = read_properties(patched, scope, current.clone(), &mut problems);
    check_relations(&mailbox, Some(id), Some(current), all, &mut problems);
    problems.into_result()?;
    let rights = super::my_rights(current);
    if mailbox.name != current.name && rights["mayRename"] != Value::Bool(true) {
        return Err(SetError::with_description(
            SetErrorType::Forbidden,
            "this Mailbox may not be renamed",
        ));
    }
    // Mail delivery needs an inbox: the Mailbox that has the role keeps it.
    if current.role.as_deref() == Some("inbox") && mailbox.role.as_deref() != Some("inbox") {
        return Err(SetError::with_description(
            SetErrorType::Forbidden,
            "the inbox keeps its role",
        ));
    }
    Ok((mailbox, reported))
}
