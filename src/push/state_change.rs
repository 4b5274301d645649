//! What a listener sends: the StateChange object (RFC 8620 §7.1), which types a listener
//! wants, and the `pushState` token (RFC 8887 §4.3.5) that lets a client resume.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::hub::AccountStates;
use crate::jmap::types::{AccountId, State};
use crate::store::commit::DataType;

/// The types a listener asked for (`dataTypes` of WebSocketPushEnable, `types` of
/// EventSource and PushSubscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFilter {
    /// `None`: every type.
    types: Option<Vec<DataType>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data type {0:?}")]
pub struct UnknownType(pub String);

impl PushFilter {
    pub fn all() -> PushFilter {
        PushFilter { types: None }
    }

    /// From type names; an unknown name is an error (the caller answers it as the protocol
    /// asks).
    pub fn from_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<PushFilter, UnknownType> {
        let mut types = Vec::new();
        for name in names {
            let data_type = DataType::from_jmap_name(name)
                .filter(|data_type| is_pushed(*data_type))
                .ok_or_else(|| UnknownType(name.to_owned()))?;
            if !types.contains(&data_type) {
                types.push(data_type);
            }
        }
        Ok(PushFilter { types: Some(types) })
    }

    /// From type names, ignoring names this server does not know (they never change).
    pub fn known_names<'a>(names: impl IntoIterator<Item = &'a str>) -> PushFilter {
        let mut types = Vec::new();
        for data_type in names.into_iter().filter_map(DataType::from_jmap_name) {
            if is_pushed(data_type) && !types.contains(&data_type) {
                types.push(data_type);
            }
        }
        PushFilter { types: Some(types) }
    }

    pub fn wants(&self, data_type: DataType) -> bool {
        is_pushed(data_type)
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.contains(&data_type))
    }

    /// The type names, `None` for every type (what PushSubscription stores as `types`).
    pub fn names(&self) -> Option<Vec<&'static str>> {
        self.types.as_ref().map(|types| {
            types
                .iter()
                .map(|data_type| data_type.jmap_name())
                .collect()
        })
    }
}

/// PushSubscription changes are not pushed: RFC 8620 §7.2 gives them no state.
fn is_pushed(data_type: DataType) -> bool {
    data_type != DataType::PushSubscription
}

/// The states a client knows, per type: what a `pushState` encodes. Opaque to clients; here
/// `<type code>.<state>` pairs in hex, joined by `-` (e.g. `1.5-3.7`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushState {
    known: BTreeMap<DataType, u64>,
}

impl PushState {
    /// What a client with `filter` knows once it has seen `states`.
    pub fn from_states(states: &AccountStates, filter: &PushFilter) -> PushState {
        PushState {
            known: states
                .states
                .iter()
                .filter(|(data_type, _)| filter.wants(*data_type))
                .copied()
                .collect(),
        }
    }

    /// `None` for a token this server did not produce: callers treat the client as knowing
    /// nothing, so it is told every state at once.
    pub fn parse(text: &str) -> Option<PushState> {
        let mut known = BTreeMap::new();
        if text.is_empty() {
            return Some(PushState { known });
        }
        for pair in text.split('-') {
            let (code, version) = pair.split_once('.')?;
            let code = u8::from_str_radix(code, 16).ok()?;
            let version = u64::from_str_radix(version, 16).ok()?;
            known.insert(DataType::from_u8(code)?, version);
        }
        Some(PushState { known })
    }

    /// The wanted types whose state in `states` differs from what this token knows, with
    /// their new states; empty when the client is up to date.
    pub fn changed(&self, states: &AccountStates, filter: &PushFilter) -> Vec<(DataType, u64)> {
        let mut changed: Vec<(DataType, u64)> = states
            .states
            .iter()
            .filter(|(data_type, version)| {
                filter.wants(*data_type) && self.known.get(data_type) != Some(version)
            })
            .copied()
            .collect();
        // A type the client knew but that has no state any more (the account was purged and
        // recreated) changed too: its state is 0 again.
        for &data_type in self.known.keys() {
            if filter.wants(data_type) && states.state_of(data_type).is_none() {
                changed.push((data_type, 0));
            }
        }
        changed
    }
}

impl std::fmt::Display for PushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (data_type, version)) in self.known.iter().enumerate() {
            if index > 0 {
                f.write_str("-")?;
            }
            write!(f, "{:x}.{version:x}", *data_type as u8)?;
        }
        Ok(())
    }
}

/// The StateChange object (RFC 8620 §7.1) for one account: `changed` maps the account id to
/// `{type name: state string}`, the same strings /get returns as `state`.
pub fn state_change(account_id: u32, changed: &[(DataType, u64)]) -> Map<String, Value> {
    let mut type_states = Map::with_capacity(changed.len());
    for (data_type, version) in changed {
        type_states.insert(
            data_type.jmap_name().to_owned(),
            Value::String(State::new(*version).to_string()),
        );
    }
    let mut accounts = Map::with_capacity(1);
    accounts.insert(
        AccountId::new(account_id).to_string(),
        Value::Object(type_states),
    );
    let mut object = Map::with_capacity(3);
    object.insert("@type".to_owned(), json!("StateChange"));
    object.insert("changed".to_owned(), Value::Object(accounts));
    object
}

/// The RFC 8887 StateChange text: the StateChange object plus the `pushState` token a
/// reconnecting client hands back (RFC 8887 §4.3.5.1).
pub fn websocket_state_change(
    account_id: u32,
    changed: &[(DataType, u64)],
    push_state: &PushState,
) -> String {
    let mut object = state_change(account_id, changed);
    object.insert(
        "pushState".to_owned(),
        Value::String(push_state.to_string()),
    );
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(version: u64, states: &[(DataType, u64)]) -> AccountStates {
        AccountStates {
            account_id: 1,
            version,
            states: states.to_vec(),
            shared: None,
        }
    }

    #[test]
    fn push_state_round_trips_and_reports_what_changed() {
        let all = PushFilter::all();
        let before = states(5, &[(DataType::Mailbox, 2), (DataType::Email, 5)]);
        let token = PushState::from_states(&before, &all);
        let text = token.to_string();
        assert_eq!(text, "1.2-3.5");
        assert_eq!(PushState::parse(&text), Some(token.clone()));
        assert!(token.changed(&before, &all).is_empty());
        let after = states(
            7,
            &[
                (DataType::Mailbox, 2),
                (DataType::Thread, 6),
                (DataType::Email, 7),
            ],
        );
        assert_eq!(
            token.changed(&after, &all),
            vec![(DataType::Thread, 6), (DataType::Email, 7)]
        );
        let only_mailbox = PushFilter::from_names(["Mailbox"]).expect("filter");
        assert!(token.changed(&after, &only_mailbox).is_empty());
        for garbage in ["x", "1.", "zz.1", "1.2-", "ff.1"] {
            assert_eq!(PushState::parse(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn filters_refuse_unknown_types_and_never_push_push_subscriptions() {
        assert_eq!(
            PushFilter::from_names(["Email", "Nope"]),
            Err(UnknownType("Nope".to_owned()))
        );
        assert!(PushFilter::from_names(["PushSubscription"]).is_err());
        assert!(!PushFilter::all().wants(DataType::PushSubscription));
        let change = state_change(1, &[(DataType::Email, 3)]);
        assert_eq!(
            Value::Object(change),
            json!({"@type": "StateChange", "changed": {"a1": {"Email": State::new(3).to_string()}}})
        );
    }
}
