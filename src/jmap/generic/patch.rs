//! PatchObject application (RFC 8620 §5.3): each key is a JSON Pointer (RFC 6901) with the
//! leading `/` implied; its value replaces what the pointer names, or removes it when null.

use serde_json::{Map, Value};

use crate::jmap::error::SetError;
use crate::jmap::reference::parse_pointer;

/// Applies `patch` to `object`. `default_value(property)` gives what a top-level property
/// becomes when patched to null (`None` removes it). Returns the top-level properties the
/// patch touched, for the type's validation.
pub fn apply_patch(
    object: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    default_value: impl Fn(&str) -> Option<Value>,
) -> Result<Vec<String>, SetError> {
    let mut parsed: Vec<(Vec<String>, &Value)> = Vec::with_capacity(patch.len());
    for (pointer, value) in patch {
        let tokens = parse_pointer(&format!("/{pointer}"))
            .ok_or_else(|| SetError::invalid_patch(format!("{pointer:?} is not a JSON Pointer")))?;
        parsed.push((tokens, value));
    }
    // RFC 8620 §5.3: no pointer may be a prefix of another in the same patch. In sorted
    // order every extension of a pointer directly follows it, so adjacent pairs suffice
    // (and a huge patch costs n log n, not n²).
    let mut sorted: Vec<&Vec<String>> = parsed.iter().map(|(tokens, _)| tokens).collect();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        let (shorter, longer) = (pair[0], pair[1]);
        if longer.starts_with(shorter) {
            return Err(SetError::invalid_patch(format!(
                "{:?} and {:?} overlap",
                shorter.join("/"),
                longer.join("/")
            )));
        }
    }
    let mut touched = Vec::with_capacity(parsed.len());
    for (tokens, value) in parsed {
        let Some((last, parents)) = tokens.split_last() else {
            return Err(SetError::invalid_patch("an empty pointer"));
        };
        if parents.is_empty() {
            match value {
                Value::Null => match default_value(last) {
                    Some(default) => {
                        object.insert(last.clone(), default);
                    }
                    None => {
                        object.remove(last);
                    }
                },
                _ => {
                    object.insert(last.clone(), value.clone());
                }
            }
        } else {
            let container = walk_to_parent(object, parents)?;
            if value.is_null() {
                container.remove(last);
            } else {
                container.insert(last.clone(), value.clone());
            }
        }
        if !touched.contains(&tokens[0]) {
            touched.push(tokens[0].clone());
        }
    }
    Ok(touched)
}

/// RFC 8620 §5.3: every part but the last must already exist, and a pointer must not reach
/// into an array (arrays are replaced whole).
fn walk_to_parent<'o>(
    object: &'o mut Map<String, Value>,
    parents: &[String],
) -> Result<&'o mut Map<String, Value>, SetError> {
    let mut current = object;
    for token in parents {
        current = match current.get_mut(token.as_str()) {
            Some(Value::Object(inner)) => inner,
            Some(Value::Array(_)) => {
                return Err(SetError::invalid_patch(format!(
                    "{token:?} is an array: replace it whole"
                )));
            }
            _ => {
                return Err(SetError::invalid_patch(format!(
                    "{token:?} does not name an object"
                )));
            }
        };
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jmap::error::SetErrorType;
    use serde_json::json;

    fn patched(object: Value, patch: Value) -> Result<Value, SetErrorType> {
        let (Value::Object(mut object), Value::Object(patch)) = (object, patch) else {
            unreachable!()
        };
        apply_patch(&mut object, &patch, |_| Some(Value::Null))
            .map(|_| Value::Object(object))
            .map_err(|error| error.kind)
    }

    #[test]
    fn applies_rfc_patches() {
        let object = json!({"name": "a", "keywords": {"$seen": true, "x": true}, "list": [1]});
        assert_eq!(
            patched(
                object.clone(),
                json!({"name": "b", "keywords/$flagged": true, "keywords/x": null, "list": [2]})
            ),
            Ok(json!({"name": "b", "keywords": {"$seen": true, "$flagged": true}, "list": [2]}))
        );
        assert_eq!(
            patched(object.clone(), json!({"name": null})),
            Ok(json!({"name": null, "keywords": {"$seen": true, "x": true}, "list": [1]}))
        );
        assert_eq!(
            patched(json!({"a": {"b~c/d": 1}}), json!({"a/b~0c~1d": 2})),
            Ok(json!({"a": {"b~c/d": 2}}))
        );
    }

    #[test]
    fn refuses_invalid_patches() {
        let object = json!({"keywords": {"x": true}, "list": [1], "name": "n"});
        let invalid = Err(SetErrorType::InvalidPatch);
        assert_eq!(patched(object.clone(), json!({"missing/x": true})), invalid);
        assert_eq!(patched(object.clone(), json!({"list/0": 2})), invalid);
        assert_eq!(patched(object.clone(), json!({"name/x": 2})), invalid);
        assert_eq!(
            patched(object.clone(), json!({"keywords": {}, "keywords/y": true})),
            invalid
        );
        assert_eq!(
            patched(object.clone(), json!({"keywords/~2": true})),
            invalid
        );
    }
}
