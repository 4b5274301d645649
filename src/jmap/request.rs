//! The Request object (RFC 8620 §3.3), parsed and validated at the boundary. Anything that is
//! not JSON is `notJSON`; JSON of the wrong shape is `notRequest`; too many calls is `limit`
//! naming `maxCallsInRequest` (§3.6.1). Malformed input yields a `ProblemDetails`, never a
//! panic: serde_json bounds nesting depth, and nothing here indexes unchecked.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::error::ProblemDetails;
use super::types::Id;

/// One method call: `[name, arguments, methodCallId]` (RFC 8620 §3.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub name: String,
    pub arguments: Map<String, Value>,
    pub call_id: String,
}

/// A validated Request object.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Capability URIs the client uses; checked against the server's by the engine.
    pub using: Vec<String>,
    pub method_calls: Vec<Invocation>,
    /// RFC 8620 §3.3: creation id → id map; when present, the response returns it updated.
    pub created_ids: Option<HashMap<Id, Id>>,
}

impl Request {
    /// Parses a request body. `max_calls_in_request` is RFC 8620 §2's `maxCallsInRequest`.
    pub fn parse(body: &[u8], max_calls_in_request: usize) -> Result<Request, ProblemDetails> {
        let IJson(document) = serde_json::from_slice(body).map_err(|error| {
            ProblemDetails::not_json(format!("the body is not I-JSON: {error}"))
        })?;
        Request::from_json(document, max_calls_in_request)
    }

    pub fn from_json(
        document: Value,
        max_calls_in_request: usize,
    ) -> Result<Request, ProblemDetails> {
        let Value::Object(mut object) = document else {
            return Err(ProblemDetails::not_request(
                "the request is not a JSON object",
            ));
        };
        let using = match object.remove("using") {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(capability) => Ok(capability),
                    _ => Err(ProblemDetails::not_request("\"using\" holds a non-string")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(ProblemDetails::not_request("\"using\" is not an array")),
            None => return Err(ProblemDetails::not_request("\"using\" is missing")),
        };
        let calls = match object.remove("methodCalls") {
            Some(Value::Array(calls)) => calls,
            Some(_) => {
                return Err(ProblemDetails::not_request(
                    "\"methodCalls\" is not an array",
                ));
            }
            None => return Err(ProblemDetails::not_request("\"methodCalls\" is missing")),
        };
        // RFC 8620 §2: maxCallsInRequest; refused as a whole before anything runs.
        if calls.len() > max_calls_in_request {
            return Err(ProblemDetails::limit(
                "maxCallsInRequest",
                format!(
                    "{} method calls, the limit is {max_calls_in_request}",
                    calls.len()
                ),
            ));
        }
        let method_calls = calls
            .into_iter()
            .enumerate()
            .map(|(index, call)| parse_invocation(index, call))
            .collect::<Result<Vec<_>, _>>()?;
        let created_ids = match object.remove("createdIds") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(parse_created_ids(map)?),
            Some(_) => {
                return Err(ProblemDetails::not_request(
                    "\"createdIds\" is not an object",
                ));
            }
        };
        Ok(Request {
            using,
            method_calls,
            created_ids,
        })
    }
}

/// A JSON value that is also I-JSON (RFC 7493), as RFC 8620 §3.6.1 asks of a request: on top
/// of serde_json's checks (UTF-8, no lone surrogates, bounded nesting), an object must not
/// repeat a member name, which serde_json alone would silently accept (keeping the last).
struct IJson(Value);

impl<'de> serde::Deserialize<'de> for IJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IJson, D::Error> {
        deserializer.deserialize_any(IJsonVisitor).map(IJson)
    }
}

struct IJsonVisitor;

impl<'de> serde::de::Visitor<'de> for IJsonVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an I-JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(sequence.size_hint().unwrap_or(0).min(64));
        while let Some(IJson(item)) = sequence.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(name) = members.next_key::<String>()? {
            match object.entry(name) {
                serde_json::map::Entry::Occupied(entry) => {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate member name {:?}",
                        entry.key()
                    )));
                }
                serde_json::map::Entry::Vacant(entry) => {
                    let IJson(value) = members.next_value()?;
                    entry.insert(value);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

fn parse_invocation(index: usize, call: Value) -> Result<Invocation, ProblemDetails> {
    let malformed = || {
        ProblemDetails::not_request(format!(
            "methodCalls[{index}] is not [name: String, arguments: Object, callId: String]"
        ))
    };
    let Value::Array(parts) = call else {
        return Err(malformed());
    };
    let Ok::<[Value; 3], _>([name, arguments, call_id]) = parts.try_into() else {
        return Err(malformed());
    };
    match (name, arguments, call_id) {
        (Value::String(name), Value::Object(arguments), Value::String(call_id)) => Ok(Invocation {
            name,
            arguments,
            call_id,
        }),
        _ => Err(malformed()),
    }
}

fn parse_created_ids(map: Map<String, Value>) -> Result<HashMap<Id, Id>, ProblemDetails> {
    let mut created_ids = HashMap::with_capacity(map.len());
    for (creation_id, id) in map {
        let creation_id = Id::parse(&creation_id)
            .map_err(|error| ProblemDetails::not_request(format!("createdIds key: {error}")))?;
        let Value::String(id) = id else {
            return Err(ProblemDetails::not_request(
                "createdIds value is not a string",
            ));
        };
        let id = Id::parse(&id)
            .map_err(|error| ProblemDetails::not_request(format!("createdIds value: {error}")))?;
        created_ids.insert(creation_id, id);
    }
    Ok(created_ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jmap::error::RequestErrorType;

    fn kind_of(body: &str) -> String {
        Request::parse(body.as_bytes(), 4).unwrap_err().kind
    }

    #[test]
    fn parses_a_request() {
        let request = Request::parse(
            br#"{"using":["urn:ietf:params:jmap:core"],
                 "methodCalls":[["Core/echo",{"hello":true},"c1"]],
                 "createdIds":{"k1":"m5"}}"#,
            4,
        )
        .unwrap();
        assert_eq!(request.using, ["urn:ietf:params:jmap:core"]);
        assert_eq!(request.method_calls[0].name, "Core/echo");
        assert_eq!(request.method_calls[0].call_id, "c1");
        assert_eq!(request.method_calls[0].arguments["hello"], true);
        let created = request.created_ids.unwrap();
        assert_eq!(created[&Id::parse("k1").unwrap()].as_str(), "m5");
    }

    #[test]
    fn rejects_bad_shapes_with_the_right_type() {
        let not_json = RequestErrorType::NotJson.urn();
        let not_request = RequestErrorType::NotRequest.urn();
        assert_eq!(kind_of("{"), not_json);
        assert_eq!(kind_of("\u{feff}{}"), not_json);
        assert_eq!(kind_of(""), not_json);
        assert_eq!(
            kind_of(r#"{"using":[],"methodCalls":[],"using":["x"]}"#),
            not_json,
            "I-JSON forbids duplicate member names"
        );
        assert_eq!(
            kind_of(r#"{"using":[],"methodCalls":[["Core/echo",{"a":1,"a":2},"c"]]}"#),
            not_json
        );
        assert_eq!(
            kind_of(r#"{"using":["\ud800"],"methodCalls":[]}"#),
            not_json
        );
        let invalid_utf8 = Request::parse(b"{\"using\":[\"\xff\"],\"methodCalls\":[]}", 4);
        assert_eq!(invalid_utf8.unwrap_err().kind, not_json);
        assert_eq!(kind_of("[]"), not_request);
        assert_eq!(kind_of(r#"{"methodCalls":[]}"#), not_request);
        assert_eq!(kind_of(r#"{"using":[1],"methodCalls":[]}"#), not_request);
        assert_eq!(kind_of(r#"{"using":[],"methodCalls":{}}"#), not_request);
        assert_eq!(
            kind_of(r#"{"using":[],"methodCalls":[["a",{}]]}"#),
            not_request
        );
        assert_eq!(
            kind_of(r#"{"using":[],"methodCalls":[["a",[],"c"]]}"#),
            not_request
        );
        assert_eq!(
            kind_of(r#"{"using":[],"methodCalls":[["a",{},1]]}"#),
            not_request
        );
        assert_eq!(
            kind_of(r#"{"using":[],"methodCalls":[],"createdIds":{"a b":"x"}}"#),
            not_request
        );
        let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            kind_of(&nested),
            not_json,
            "deep nesting is refused, not a stack overflow"
        );
    }

    #[test]
    fn enforces_max_calls_in_request() {
        let call = r#"["Core/echo",{},"c"]"#;
        let body = format!(r#"{{"using":[],"methodCalls":[{}]}}"#, [call; 5].join(","));
        let problem = Request::parse(body.as_bytes(), 4).unwrap_err();
        assert_eq!(problem.kind, RequestErrorType::Limit.urn());
        assert_eq!(problem.limit.as_deref(), Some("maxCallsInRequest"));
        assert_eq!(problem.status, 400);
        assert!(Request::parse(body.as_bytes(), 5).is_ok());
    }
}
