//! The Response object (RFC 8620 §3.4) as the engine produces it: every method response is
//! serialized when its method returns, so a request holds one copy of the JSON it answers
//! (not a `serde_json::Value` tree, which costs several times the JSON's size), and the body
//! is sent as those pieces without joining them ([`ApiResponse::into_chunks`]).

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::budget::Reservation;
use super::reference::MethodResponse;

/// A method's answer whose member `member` (a /get's `list`) was serialized item by item while
/// the method ran (see [`super::context::CallContext::raw_list`]).
pub struct Spliced<'a> {
    pub object: &'a Map<String, Value>,
    pub member: &'a str,
    pub items: &'a [Box<RawValue>],
}

impl Serialize for Spliced<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.object.len()))?;
        for (key, value) in self.object {
            if key == self.member {
                map.serialize_entry(key, self.items)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        if !self.object.contains_key(self.member) {
            map.serialize_entry(self.member, self.items)?;
        }
        map.end()
    }
}

/// A Response object, serialized piece by piece, with the budget bytes it holds.
pub struct ApiResponse {
    pub(super) method_responses: Vec<MethodResponse>,
    pub(super) created_ids: Option<Map<String, Value>>,
    pub(super) session_state: String,
    pub(super) reservation: Reservation,
}

impl ApiResponse {
    /// Answers with the session state of the Session the client holds: on a cluster, that of
    /// the node the client asked, which forwarded the request here (`http::forward`).
    pub fn with_session_state(mut self, session_state: String) -> ApiResponse {
        self.session_state = session_state;
        self
    }

    /// The JSON bytes the response will take.
    pub fn len(&self) -> usize {
        self.frame(&[])
            .iter()
            .map(|chunk| chunk.len())
            .sum::<usize>()
            + self
                .method_responses
                .iter()
                .map(|response| response.arguments.get().len())
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The response as JSON text in pieces (to be sent in order), with `extra` members first
    /// (RFC 8887 §4.3.3: the WebSocket Response's `@type` and `requestId`), and the budget
    /// reservation to give back as the pieces are sent.
    pub fn into_chunks(self, extra: &[(&str, Value)]) -> (Vec<Bytes>, Reservation) {
        let mut frame = self.frame(extra).into_iter();
        let mut chunks = Vec::with_capacity(self.method_responses.len() * 2 + 1);
        // The frame has one piece before each response's arguments, then the tail.
        for response in self.method_responses {
            if let Some(piece) = frame.next() {
                chunks.push(Bytes::from(piece));
            }
            let text: Box<str> = response.arguments.into();
            chunks.push(Bytes::from(String::from(text)));
        }
        chunks.extend(frame.map(Bytes::from));
        (chunks, self.reservation)
    }

    /// The whole response as one string (WebSocket frames are one text message).
    pub fn into_string(self, extra: &[(&str, Value)]) -> String {
        let (chunks, _reservation) = self.into_chunks(extra);
        let mut text = String::with_capacity(chunks.iter().map(Bytes::len).sum());
        for chunk in chunks {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    }

    /// The response as a `Value` (tests, and callers that want to inspect it).
    pub fn into_value(self) -> Value {
        serde_json::from_str(&self.into_string(&[])).unwrap_or(Value::Null)
    }

    /// The JSON around the method responses' arguments: the head up to the first arguments,
    /// one piece between consecutive arguments, and the tail.
    fn frame(&self, extra: &[(&str, Value)]) -> Vec<String> {
        let quote = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
        let mut pieces = Vec::with_capacity(self.method_responses.len() + 1);
        let mut current = String::from("{");
        for (name, value) in extra {
            current.push_str(&quote(name));
            current.push(':');
            current.push_str(&value.to_string());
            current.push(',');
        }
        current.push_str("\"methodResponses\":[");
        for (index, response) in self.method_responses.iter().enumerate() {
            if index > 0 {
                current.push(',');
                current.push_str(&quote(&self.method_responses[index - 1].call_id));
                current.push_str("],");
            }
            current.push('[');
            current.push_str(&quote(&response.name));
            current.push(',');
            pieces.push(std::mem::take(&mut current));
        }
        if let Some(last) = self.method_responses.last() {
            current.push(',');
            current.push_str(&quote(&last.call_id));
            current.push(']');
        }
        current.push(']');
        if let Some(created) = &self.created_ids {
            current.push_str(",\"createdIds\":");
            current.push_str(&serde_json::to_string(created).unwrap_or_else(|_| "{}".into()));
        }
        current.push_str(",\"sessionState\":");
        current.push_str(&quote(&self.session_state));
        current.push('}');
        pieces.push(current);
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jmap::budget::ResponseBudget;
    use serde_json::json;

    fn response(responses: &[(&str, Value, &str)], created: Option<Value>) -> ApiResponse {
        ApiResponse {
            method_responses: responses
                .iter()
                .filter_map(|(name, arguments, call_id)| {
                    MethodResponse::new((*name).to_owned(), arguments, (*call_id).to_owned())
                })
                .collect(),
            created_ids: created.and_then(|value| value.as_object().cloned()),
            session_state: "s\"1".to_owned(),
            reservation: Reservation::new(ResponseBudget::new(0)),
        }
    }

    #[test]
    fn pieces_join_into_the_response_object() {
        let cases = [
            response(&[], None),
            response(&[("Core/echo", json!({"a": 1}), "c1")], None),
            response(
                &[
                    ("Core/echo", json!({"a": 1}), "c1"),
                    ("error", json!({"type": "x"}), "c\"2"),
                    ("Core/echo", json!({}), "c3"),
                ],
                Some(json!({"k": "m1"})),
            ),
        ];
        for case in cases {
            let expected = json!({
                "methodResponses": case.method_responses.iter().map(MethodResponse::to_json)
                    .collect::<Vec<_>>(),
                "sessionState": "s\"1",
            });
            let created = case.created_ids.clone();
            let length = case.len();
            let text = case.into_string(&[("@type", json!("Response"))]);
            let mut value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["@type"], "Response");
            assert_eq!(text.len(), length + r#""@type":"Response","#.len());
            let object = value.as_object_mut().unwrap();
            object.remove("@type");
            assert_eq!(
                object.remove("createdIds").map(|v| v.as_object().cloned()),
                created.map(Some)
            );
            assert_eq!(value, expected);
        }
    }

    #[test]
    fn spliced_list_serializes_in_place() {
        let object = json!({"accountId": "a", "list": [], "notFound": []});
        let items: Vec<Box<RawValue>> = vec![
            serde_json::value::to_raw_value(&json!({"id": "e1"})).unwrap(),
            serde_json::value::to_raw_value(&json!({"id": "e2"})).unwrap(),
        ];
        let spliced = Spliced {
            object: object.as_object().unwrap(),
            member: "list",
            items: &items,
        };
        let text = serde_json::to_string(&spliced).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"accountId": "a", "list": [{"id": "e1"}, {"id": "e2"}], "notFound": []})
        );
    }
}
