//! Matching a server's JSON answer against an expected pattern that leaves room for the values
//! a server chooses itself (ids, states, sizes).
//!
//! Pattern language (also described in `conformance/cases/README.md`):
//! - `"$any"` matches any value; `"$absent"` (as an object member) requires the key to be missing.
//! - `"$string"`, `"$number"`, `"$uint"`, `"$bool"`, `"$object"`, `"$array"`, `"$null"` match by
//!   JSON type; `"$id"` matches an RFC 8620 §1.2 `Id` (1–255 chars of the URL-safe base64
//!   alphabet).
//! - `"${name}"` (variables substituted before matching, see [`substitute`]) match exactly.
//! - An object matches when every expected member matches; extra members are allowed unless the
//!   pattern has `"$exact": true`.
//! - An array matches when it has the same length and every element matches.
//! - Anything else must be equal.

use std::collections::BTreeMap;

use serde_json::Value;

/// Variables available to fixtures as `${name}`, filled from the session resource.
pub type Variables = BTreeMap<String, Value>;

/// Replaces `${name}` inside every string of `template`. A string that is exactly one
/// placeholder takes the variable's JSON value (so numbers stay numbers); placeholders inside a
/// longer string are replaced by the variable's text.
pub fn substitute(template: &Value, variables: &Variables) -> Result<Value, String> {
    match template {
        Value::String(text) => substitute_string(text, variables),
        Value::Array(items) => items
            .iter()
            .map(|item| substitute(item, variables))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(members) => {
            let mut substituted = serde_json::Map::with_capacity(members.len());
            for (key, value) in members {
                let key = match substitute_string(key, variables)? {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                substituted.insert(key, substitute(value, variables)?);
            }
            Ok(Value::Object(substituted))
        }
        other => Ok(other.clone()),
    }
}

fn substitute_string(text: &str, variables: &Variables) -> Result<Value, String> {
    if !text.contains("${") {
        return Ok(Value::String(text.to_owned()));
    }
    if let Some(name) = text
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        && !name.contains("${")
    {
        return variables
            .get(name)
            .cloned()
            .ok_or_else(|| format!("fixture uses unknown variable ${{{name}}}"));
    }
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        output.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated placeholder in {text:?}"));
        };
        let name = &after[..end];
        let value = variables
            .get(name)
            .ok_or_else(|| format!("fixture uses unknown variable ${{{name}}}"))?;
        match value {
            Value::String(inner) => output.push_str(inner),
            other => output.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    output.push_str(rest);
    Ok(Value::String(output))
}

/// Checks `actual` against `pattern`; on mismatch returns the JSON Pointer of the first
/// difference and what was expected there.
pub fn matches(pattern: &Value, actual: &Value) -> Result<(), String> {
    match_at("", pattern, actual)
}

fn match_at(path: &str, pattern: &Value, actual: &Value) -> Result<(), String> {
    let location = if path.is_empty() { "/" } else { path };
    let mismatch = |expected: &str| {
        Err(format!(
            "at {location}: expected {expected}, got {}",
            abbreviate(actual)
        ))
    };
    match pattern {
        Value::String(keyword) if keyword.starts_with('$') && keyword.len() > 1 => {
            match keyword.as_str() {
                "$any" => Ok(()),
                "$string" if actual.is_string() => Ok(()),
                "$number" if actual.is_number() => Ok(()),
                "$uint" if actual.as_u64().is_some() => Ok(()),
                "$bool" if actual.is_boolean() => Ok(()),
                "$object" if actual.is_object() => Ok(()),
                "$array" if actual.is_array() => Ok(()),
                "$null" if actual.is_null() => Ok(()),
                "$id" if actual.as_str().is_some_and(is_jmap_id) => Ok(()),
                "$string" | "$number" | "$uint" | "$bool" | "$object" | "$array" | "$null"
                | "$id" => mismatch(&keyword[1..]),
                "$absent" => mismatch("the member to be absent"),
                unknown => Err(format!("at {location}: unknown pattern keyword {unknown}")),
            }
        }
        Value::Object(expected_members) => {
            let Some(actual_members) = actual.as_object() else {
                return mismatch("an object");
            };
            let exact = expected_members.get("$exact") == Some(&Value::Bool(true));
            for (key, expected_value) in expected_members {
                if key == "$exact" {
                    continue;
                }
                let child_path = format!("{path}/{}", escape_pointer_token(key));
                match actual_members.get(key) {
                    None if expected_value == "$absent" => {}
                    None => {
                        return Err(format!("at {child_path}: member missing"));
                    }
                    Some(actual_value) if expected_value == "$absent" => {
                        return Err(format!(
                            "at {child_path}: member should be absent, got {}",
                            abbreviate(actual_value)
                        ));
                    }
                    Some(actual_value) => match_at(&child_path, expected_value, actual_value)?,
                }
            }
            if exact
                && let Some(extra) = actual_members
                    .keys()
                    .find(|key| !expected_members.contains_key(*key))
            {
                return Err(format!("at {location}: unexpected member {extra:?}"));
            }
            Ok(())
        }
        Value::Array(expected_items) => {
            let Some(actual_items) = actual.as_array() else {
                return mismatch("an array");
            };
            if expected_items.len() != actual_items.len() {
                return mismatch(&format!("an array of {} items", expected_items.len()));
            }
            for (index, (expected_item, actual_item)) in
                expected_items.iter().zip(actual_items).enumerate()
            {
                match_at(&format!("{path}/{index}"), expected_item, actual_item)?;
            }
            Ok(())
        }
        exact_value if exact_value == actual => Ok(()),
        exact_value => mismatch(&abbreviate(exact_value)),
    }
}

/// RFC 8620 §1.2: an `Id` is 1–255 octets of `A-Za-z0-9`, `-` and `_`.
pub fn is_jmap_id(text: &str) -> bool {
    (1..=255).contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A short rendering of a value for failure messages.
pub fn abbreviate(value: &Value) -> String {
    const LIMIT: usize = 300;
    let rendered = value.to_string();
    if rendered.len() <= LIMIT {
        return rendered;
    }
    let mut cut = LIMIT;
    while !rendered.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &rendered[..cut])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wildcards_and_subset_objects() {
        let pattern = json!({"blobId": "$id", "size": "$uint", "type": "text/plain"});
        let actual = json!({"blobId": "Gabc_1", "size": 3, "type": "text/plain", "extra": 1});
        assert_eq!(matches(&pattern, &actual), Ok(()));
        let wrong_size = json!({"blobId": "Gabc", "size": -1, "type": "text/plain"});
        assert!(
            matches(&pattern, &wrong_size)
                .unwrap_err()
                .contains("/size")
        );
    }

    #[test]
    fn exact_objects_reject_extra_members() {
        let pattern = json!({"$exact": true, "a": 1});
        assert_eq!(matches(&pattern, &json!({"a": 1})), Ok(()));
        assert!(matches(&pattern, &json!({"a": 1, "b": 2})).is_err());
    }

    #[test]
    fn absent_members_and_arrays() {
        let pattern = json!({"createdIds": "$absent", "list": [1, "$any"]});
        assert_eq!(matches(&pattern, &json!({"list": [1, {}]})), Ok(()));
        assert!(matches(&pattern, &json!({"list": [1, {}], "createdIds": {}})).is_err());
        assert!(matches(&pattern, &json!({"list": [1]})).is_err());
    }

    #[test]
    fn ids_follow_rfc_8620_syntax() {
        assert!(is_jmap_id("a-Z_9"));
        assert!(!is_jmap_id(""));
        assert!(!is_jmap_id("has space"));
        assert!(!is_jmap_id(&"x".repeat(256)));
    }

    #[test]
    fn substitution_keeps_types_and_interpolates() {
        let mut variables = Variables::new();
        variables.insert("n".into(), json!(5));
        variables.insert("acct".into(), json!("A1"));
        let template = json!({"limit": "${n}", "path": "/x/${acct}/y", "${acct}": true});
        let substituted = substitute(&template, &variables).unwrap();
        assert_eq!(
            substituted,
            json!({"limit": 5, "path": "/x/A1/y", "A1": true})
        );
        assert!(substitute(&json!("${missing}"), &variables).is_err());
    }
}
