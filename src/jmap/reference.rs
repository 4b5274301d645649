//! Result references (RFC 8620 §3.7): an argument named `#name` whose value is
//! `{resultOf, name, path}` is replaced, before the method runs, by the value that `path` (a
//! JSON Pointer, RFC 6901, with JMAP's `*` extension) selects in the arguments of the first
//! earlier response with call id `resultOf`.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::error::MethodError;

/// A response produced earlier in the same request: `[name, arguments, callId]`. The
/// arguments are kept serialized (one copy of the JSON the client gets, issue 13); a result
/// reference reads the part it selects without parsing the rest.
#[derive(Debug, Clone)]
pub struct MethodResponse {
    pub name: String,
    pub arguments: Box<RawValue>,
    pub call_id: String,
}

impl MethodResponse {
    /// Serializes `arguments` (`None` only if a value cannot be serialized, which
    /// `serde_json::Value` always can).
    pub fn new(name: String, arguments: &Value, call_id: String) -> Option<MethodResponse> {
        Some(MethodResponse {
            name,
            arguments: serde_json::value::to_raw_value(arguments).ok()?,
            call_id,
        })
    }

    pub fn to_json(&self) -> Value {
        Value::Array(vec![
            Value::from(self.name.as_str()),
            serde_json::from_str(self.arguments.get()).unwrap_or(Value::Null),
            Value::from(self.call_id.as_str()),
        ])
    }
}

/// Replaces every `#name` argument by the value it references. Errors are method errors:
/// `invalidArguments` when both `name` and `#name` are given, `invalidResultReference` when
/// the reference is malformed or does not resolve (RFC 8620 §3.7).
pub fn resolve_result_references(
    arguments: &mut Map<String, Value>,
    earlier: &[MethodResponse],
) -> Result<(), MethodError> {
    // Fast path: most calls (and every Core/echo) carry no reference at all.
    if !arguments.keys().any(|key| key.starts_with('#')) {
        return Ok(());
    }
    let reference_keys: Vec<String> = arguments
        .keys()
        .filter(|key| key.starts_with('#'))
        .cloned()
        .collect();
    for reference_key in reference_keys {
        let plain_key = &reference_key[1..];
        // RFC 8620 §3.7: an argument both with and without '#' is invalidArguments.
        if arguments.contains_key(plain_key) {
            return Err(MethodError::invalid_arguments(format!(
                "both {plain_key:?} and {reference_key:?} are given"
            )));
        }
        let Some(reference) = arguments.remove(&reference_key) else {
            continue;
        };
        let value = evaluate_reference(&reference, earlier)?;
        arguments.insert(plain_key.to_owned(), value);
    }
    Ok(())
}

fn evaluate_reference(reference: &Value, earlier: &[MethodResponse]) -> Result<Value, MethodError> {
    let field = |name: &str| reference.get(name).and_then(Value::as_str);
    let (Some(result_of), Some(name), Some(path)) =
        (field("resultOf"), field("name"), field("path"))
    else {
        return Err(MethodError::invalid_result_reference(
            "a ResultReference needs string resultOf, name and path",
        ));
    };
    let Some(response) = earlier
        .iter()
        .find(|response| response.call_id == result_of)
    else {
        return Err(MethodError::invalid_result_reference(format!(
            "no earlier response has call id {result_of:?}"
        )));
    };
    if response.name != name {
        return Err(MethodError::invalid_result_reference(format!(
            "the response to {result_of:?} is {:?}, not {name:?}",
            response.name
        )));
    }
    let tokens = parse_pointer(path).ok_or_else(|| {
        MethodError::invalid_result_reference(format!("{path:?} is not a JSON Pointer"))
    })?;
    evaluate_raw_pointer(&response.arguments, &tokens)
        .ok_or_else(|| MethodError::invalid_result_reference(format!("{path:?} selects nothing")))
}

/// RFC 6901 §3–4: `""` is the whole document; otherwise `/`-separated tokens with `~1` → `/`
/// and `~0` → `~`. `None` for a malformed pointer.
pub fn parse_pointer(path: &str) -> Option<Vec<String>> {
    if path.is_empty() {
        return Some(Vec::new());
    }
    let rest = path.strip_prefix('/')?;
    rest.split('/').map(unescape_token).collect()
}

fn unescape_token(token: &str) -> Option<String> {
    if !token.contains('~') {
        return Some(token.to_owned());
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return None,
        }
    }
    Some(out)
}

/// RFC 6901 array index: `0` or digits without a leading zero.
pub fn parse_array_index(token: &str) -> Option<usize> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if !valid {
        return None;
    }
    token.parse().ok()
}

/// Evaluates a parsed pointer. RFC 8620 §3.7: on an array, the token `*` applies the rest of
/// the pointer to every item and returns the results as one array, flattening results that
/// are themselves arrays.
pub fn evaluate_pointer(document: &Value, tokens: &[String]) -> Option<Value> {
    let Some((token, rest)) = tokens.split_first() else {
        return Some(document.clone());
    };
    match document {
        Value::Array(items) if token == "*" => {
            let mut collected = Vec::with_capacity(items.len());
            for item in items {
                match evaluate_pointer(item, rest)? {
                    Value::Array(inner) => collected.extend(inner),
                    other => collected.push(other),
                }
            }
            Some(Value::Array(collected))
        }
        Value::Array(items) => evaluate_pointer(items.get(parse_array_index(token)?)?, rest),
        Value::Object(members) => evaluate_pointer(members.get(token.as_str())?, rest),
        _ => None,
    }
}

/// [`evaluate_pointer`] on serialized JSON: only what the pointer walks through is parsed (and
/// then only into borrowed slices), and only the selected values become `Value`s.
pub fn evaluate_raw_pointer(document: &RawValue, tokens: &[String]) -> Option<Value> {
    let Some((token, rest)) = tokens.split_first() else {
        return serde_json::from_str(document.get()).ok();
    };
    match document.get().trim_start().as_bytes().first()? {
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(document.get()).ok()?;
            if token == "*" {
                let mut collected = Vec::with_capacity(items.len());
                for item in items {
                    match evaluate_raw_pointer(item, rest)? {
                        Value::Array(inner) => collected.extend(inner),
                        other => collected.push(other),
                    }
                }
                Some(Value::Array(collected))
            } else {
                evaluate_raw_pointer(items.get(parse_array_index(token)?)?, rest)
            }
        }
        b'{' => {
            let members: BTreeMap<String, &RawValue> = serde_json::from_str(document.get()).ok()?;
            evaluate_raw_pointer(members.get(token.as_str())?, rest)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jmap::error::MethodErrorType;
    use serde_json::json;

    fn earlier() -> Vec<MethodResponse> {
        vec![
            ("Thing/query", json!({"ids": ["t1", "t2"], "total": 2}), "q"),
            (
                "Thing/get",
                json!({"list": [
                    {"id": "t1", "parts": ["p1", "p2"], "a/b": 1, "m~n": 2},
                    {"id": "t2", "parts": ["p3"]}
                ]}),
                "g",
            ),
            ("Thing/query", json!({"ids": ["later"]}), "q"),
        ]
        .into_iter()
        .filter_map(|(name, arguments, call_id)| {
            MethodResponse::new(name.to_owned(), &arguments, call_id.to_owned())
        })
        .collect()
    }

    fn resolve(arguments: Value) -> Result<Value, MethodError> {
        let Value::Object(mut map) = arguments else {
            unreachable!()
        };
        resolve_result_references(&mut map, &earlier())?;
        Ok(Value::Object(map))
    }

    #[test]
    fn resolves_paths_with_star_and_flattening() {
        let resolved = resolve(json!({
            "accountId": "a1",
            "#ids": {"resultOf": "q", "name": "Thing/query", "path": "/ids"},
            "#parts": {"resultOf": "g", "name": "Thing/get", "path": "/list/*/parts"},
            "#firstId": {"resultOf": "g", "name": "Thing/get", "path": "/list/0/id"},
            "#slash": {"resultOf": "g", "name": "Thing/get", "path": "/list/0/a~1b"},
            "#tilde": {"resultOf": "g", "name": "Thing/get", "path": "/list/0/m~0n"},
            "#whole": {"resultOf": "q", "name": "Thing/query", "path": ""},
        }))
        .unwrap();
        assert_eq!(
            resolved["ids"],
            json!(["t1", "t2"]),
            "the first response with that id"
        );
        assert_eq!(resolved["parts"], json!(["p1", "p2", "p3"]));
        assert_eq!(resolved["firstId"], json!("t1"));
        assert_eq!(resolved["slash"], json!(1));
        assert_eq!(resolved["tilde"], json!(2));
        assert_eq!(resolved["whole"]["total"], json!(2));
        assert!(resolved.get("#ids").is_none());
    }

    #[test]
    fn reports_bad_references() {
        let kind = |arguments| resolve(arguments).unwrap_err().kind;
        let invalid = MethodErrorType::InvalidResultReference;
        let reference = |result_of: &str, name: &str, path: &str| json!({"#ids": {"resultOf": result_of, "name": name, "path": path}});
        assert_eq!(kind(reference("nope", "Thing/query", "/ids")), invalid);
        assert_eq!(kind(reference("q", "Thing/get", "/ids")), invalid);
        assert_eq!(kind(reference("q", "Thing/query", "/missing")), invalid);
        assert_eq!(kind(reference("q", "Thing/query", "ids")), invalid);
        assert_eq!(kind(reference("q", "Thing/query", "/ids/01")), invalid);
        assert_eq!(kind(reference("q", "Thing/query", "/ids/9")), invalid);
        assert_eq!(kind(reference("q", "Thing/query", "/ids/-")), invalid);
        assert_eq!(kind(reference("g", "Thing/get", "/list/0/m~2n")), invalid);
        assert_eq!(kind(reference("q", "Thing/query", "/total/*")), invalid);
        assert_eq!(kind(json!({"#ids": "q"})), invalid);
        assert_eq!(
            kind(
                json!({"ids": [], "#ids": {"resultOf": "q", "name": "Thing/query", "path": "/ids"}})
            ),
            MethodErrorType::InvalidArguments
        );
    }
}
