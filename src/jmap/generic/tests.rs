//! The generic machinery exercised through the engine with a test-only object type, `Note`,
//! stored in a real embedded store.

use serde_json::{Map, Value, json};

use super::storage;
use super::{Comparator, Created, ObjectType, WriteScope};
use crate::jmap::CoreLimits;
use crate::jmap::context::{Arguments, CallContext};
use crate::jmap::dispatch::{METHODS, MethodEntry, MethodResult};
use crate::jmap::error::{MethodError, MethodErrorType, SetError};
use crate::jmap::test_support::{TestEngine, alice, engine_with};
use crate::store::commit::{Changes, DataType, allocate_id};
use crate::store::{BoxFuture, StoreResult, Transaction};

const CAPABILITY_TEST: &str = "urn:tern:test";

/// `Note { id, title: String (required), pinned: Boolean, parentId: Id|null, size: server-set }`.
struct Note;

fn check_note(
    object: &Map<String, Value>,
    scope: &WriteScope<'_>,
) -> Result<Map<String, Value>, SetError> {
    let mut invalid = Vec::new();
    if !object.get("title").is_some_and(Value::is_string) {
        invalid.push("title");
    }
    if !object.get("pinned").is_none_or(Value::is_boolean) {
        invalid.push("pinned");
    }
    let mut stored = object.clone();
    match object.get("parentId") {
        None | Some(Value::Null) => {}
        Some(Value::String(parent)) => match scope.resolve_id(parent) {
            Some(id) => {
                stored.insert("parentId".to_owned(), Value::String(id.into_string()));
            }
            None => invalid.push("parentId"),
        },
        Some(_) => invalid.push("parentId"),
    }
    if !invalid.is_empty() {
        return Err(SetError::invalid_properties(invalid, "bad note"));
    }
    stored.entry("pinned").or_insert(Value::Bool(false));
    stored.entry("parentId").or_insert(Value::Null);
    let size = stored["title"].as_str().map_or(0, str::len);
    stored.insert("size".to_owned(), Value::from(size));
    Ok(stored)
}

impl ObjectType for Note {
    const DATA_TYPE: DataType = DataType::Test;
    const ID_PREFIX: char = 'n';
    const PROPERTIES: &'static [&'static str] = &["id", "title", "pinned", "parentId", "size"];
    const SERVER_SET_PROPERTIES: &'static [&'static str] = &["size"];

    fn default_value(property: &str) -> Option<Value> {
        match property {
            "pinned" => Some(Value::Bool(false)),
            _ => Some(Value::Null),
        }
    }

    fn list_ids<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
    ) -> impl Future<Output = StoreResult<Vec<u64>>> + Send + 'a {
        storage::list_ids(tx, account_id, DataType::Test)
    }

    fn load<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        id: u64,
    ) -> impl Future<Output = StoreResult<Option<Map<String, Value>>>> + Send + 'a {
        storage::load(tx, account_id, DataType::Test, id)
    }

    async fn create<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        object: Map<String, Value>,
    ) -> StoreResult<Result<Created, SetError>> {
        let stored = match check_note(&object, scope) {
            Ok(stored) => stored,
            Err(error) => return Ok(Err(error)),
        };
        let id = allocate_id(tx, scope.account_id, DataType::Test).await?;
        storage::save(tx, scope.account_id, DataType::Test, id, &stored)?;
        changes.created(DataType::Test, id);
        let mut server_set = Map::new();
        server_set.insert("size".to_owned(), stored["size"].clone());
        Ok(Ok(Created { id, server_set }))
    }

    async fn update<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
        current: Map<String, Value>,
        mut patched: Map<String, Value>,
    ) -> StoreResult<Result<Option<Map<String, Value>>, SetError>> {
        patched.remove("size");
        let stored = match check_note(&patched, scope) {
            Ok(stored) => stored,
            Err(error) => return Ok(Err(error)),
        };
        storage::save(tx, scope.account_id, DataType::Test, id, &stored)?;
        changes.updated(DataType::Test, id);
        let size_changed = current.get("size") != stored.get("size");
        Ok(Ok(size_changed.then(|| {
            let mut server_set = Map::new();
            server_set.insert("size".to_owned(), stored["size"].clone());
            server_set
        })))
    }

    async fn destroy<'a>(
        tx: &'a mut dyn Transaction,
        changes: &'a mut Changes,
        scope: &'a WriteScope<'a>,
        id: u64,
    ) -> StoreResult<Result<(), SetError>> {
        if storage::load(tx, scope.account_id, DataType::Test, id)
            .await?
            .is_none()
        {
            return Ok(Err(SetError::not_found()));
        }
        storage::remove(tx, scope.account_id, DataType::Test, id)?;
        changes.destroyed(DataType::Test, id);
        Ok(Ok(()))
    }

    async fn query<'a>(
        tx: &'a mut dyn Transaction,
        account_id: u32,
        filter: Option<&'a Value>,
        sort: &'a [Comparator],
    ) -> StoreResult<Result<Vec<u64>, MethodError>> {
        let mut notes = Vec::new();
        for id in storage::list_ids(tx, account_id, DataType::Test).await? {
            if let Some(note) = storage::load(tx, account_id, DataType::Test, id).await? {
                notes.push((id, note));
            }
        }
        let mut matching = Vec::new();
        for (id, note) in notes {
            match filter.map_or(Ok(true), |filter| note_matches(&note, filter)) {
                Ok(true) => matching.push((id, note)),
                Ok(false) => {}
                Err(error) => return Ok(Err(error)),
            }
        }
        for comparator in sort.iter() {
            if !matches!(comparator.property.as_str(), "title" | "size") {
                return Ok(Err(MethodError::new(MethodErrorType::UnsupportedSort)));
            }
        }
        matching.sort_by(|(id_a, a), (id_b, b)| {
            for comparator in sort {
                let key = comparator.property.as_str();
                let ordering = match key {
                    "size" => a[key].as_u64().cmp(&b[key].as_u64()),
                    _ => a[key].as_str().cmp(&b[key].as_str()),
                };
                let ordering = if comparator.is_ascending {
                    ordering
                } else {
                    ordering.reverse()
                };
                if ordering.is_ne() {
                    return ordering;
                }
            }
            id_a.cmp(id_b)
        });
        Ok(Ok(matching.into_iter().map(|(id, _)| id).collect()))
    }
}

fn note_matches(note: &Map<String, Value>, filter: &Value) -> Result<bool, MethodError> {
    if let Some(operator) = filter.get("operator").and_then(Value::as_str) {
        let conditions = filter["conditions"].as_array().cloned().unwrap_or_default();
        let results = conditions
            .iter()
            .map(|condition| note_matches(note, condition))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(match operator {
            "AND" => results.iter().all(|r| *r),
            "OR" => results.iter().any(|r| *r),
            _ => !results.iter().any(|r| *r),
        });
    }
    let mut matched = true;
    for (name, value) in filter.as_object().into_iter().flatten() {
        matched &= match (name.as_str(), value) {
            ("titleContains", Value::String(text)) => note["title"]
                .as_str()
                .is_some_and(|title| title.contains(text.as_str())),
            ("pinned", Value::Bool(flag)) => note["pinned"] == *flag,
            _ => return Err(MethodError::new(MethodErrorType::UnsupportedFilter)),
        };
    }
    Ok(matched)
}

fn note_get<'a>(c: &'a mut CallContext<'_>, a: Arguments) -> BoxFuture<'a, MethodResult> {
    Box::pin(super::get::get::<Note>(c, a))
}
fn note_changes<'a>(c: &'a mut CallContext<'_>, a: Arguments) -> BoxFuture<'a, MethodResult> {
    Box::pin(super::changes::changes::<Note>(c, a))
}
fn note_set<'a>(c: &'a mut CallContext<'_>, a: Arguments) -> BoxFuture<'a, MethodResult> {
    Box::pin(super::set::set::<Note>(c, a))
}
fn note_query<'a>(c: &'a mut CallContext<'_>, a: Arguments) -> BoxFuture<'a, MethodResult> {
    Box::pin(super::query::query::<Note>(c, a))
}
fn note_query_changes<'a>(c: &'a mut CallContext<'_>, a: Arguments) -> BoxFuture<'a, MethodResult> {
    Box::pin(super::query_changes::query_changes::<Note>(c, a))
}

fn test_engine(limits: CoreLimits) -> TestEngine {
    let mut table: Vec<MethodEntry> = METHODS.to_vec();
    let note_methods: [(&'static str, crate::jmap::dispatch::Handler); 5] = [
        ("Note/get", note_get),
        ("Note/changes", note_changes),
        ("Note/set", note_set),
        ("Note/query", note_query),
        ("Note/queryChanges", note_query_changes),
    ];
    for (name, handler) in note_methods {
        table.push(MethodEntry {
            name,
            capability: CAPABILITY_TEST,
            handler,
            on_shared_accounts: crate::jmap::dispatch::SharedAccess::None,
        });
    }
    engine_with(&table, limits)
}

/// Runs `calls` and returns the method responses.
async fn call(test: &TestEngine, calls: Value) -> Vec<Value> {
    call_with(
        test,
        json!({"using": [CAPABILITY_TEST], "methodCalls": calls}),
    )
    .await["methodResponses"]
        .as_array()
        .expect("methodResponses")
        .clone()
}

async fn call_with(test: &TestEngine, request: Value) -> Value {
    let body = serde_json::to_vec(&request).expect("serialize");
    test.engine
        .handle_api(&alice(), &body)
        .await
        .expect("no request-level error")
}

fn error_type(response: &Value) -> &str {
    assert_eq!(response[0], "error", "expected an error, got {response}");
    response[1]["type"].as_str().expect("type")
}

#[tokio::test]
async fn set_get_changes_round_trip() {
    let test = test_engine(CoreLimits::default());
    let responses = call(
        &test,
        json!([
            ["Note/set", {"accountId": "a1", "create": {
                "k1": {"title": "first"},
                "k2": {"title": "second", "pinned": true, "parentId": "#k1"},
                "bad": {"title": 7},
                "server": {"title": "x", "size": 3},
                "unknown": {"title": "x", "colour": "red"}
            }}, "s1"],
            ["Note/get", {"accountId": "a1", "ids": ["#k1", "#k2", "n99", "#nope", "not valid"]}, "g1"],
            ["Note/changes", {"accountId": "a1", "sinceState": "s0"}, "c1"]
        ]),
    )
    .await;
    let set = &responses[0][1];
    assert_eq!(set["oldState"], "s0");
    assert_eq!(set["newState"], "s1");
    let k1 = set["created"]["k1"]["id"]
        .as_str()
        .expect("k1 created")
        .to_owned();
    let k2 = set["created"]["k2"]["id"]
        .as_str()
        .expect("k2 created")
        .to_owned();
    assert_eq!(
        set["created"]["k1"]["size"], 5,
        "server-set properties are reported"
    );
    assert_eq!(set["notCreated"]["bad"]["type"], "invalidProperties");
    assert_eq!(set["notCreated"]["bad"]["properties"], json!(["title"]));
    assert_eq!(set["notCreated"]["server"]["properties"], json!(["size"]));
    assert_eq!(
        set["notCreated"]["unknown"]["properties"],
        json!(["colour"])
    );

    let get = &responses[1][1];
    assert_eq!(get["state"], "s1");
    let list = get["list"].as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], k1);
    assert_eq!(
        list[1]["parentId"], k1,
        "#k1 inside a property resolved to the new id"
    );
    assert_eq!(list[1]["pinned"], true);
    assert_eq!(get["notFound"], json!(["n99", "#nope", "not valid"]));

    let changes = &responses[2][1];
    assert_eq!(changes["created"], json!([k1, k2]));
    assert_eq!(changes["newState"], "s1");
    assert_eq!(changes["hasMoreChanges"], false);

    let responses = call(
        &test,
        json!([
            ["Note/set", {"accountId": "a1", "ifInState": "s1", "update": {
                k1.clone(): {"title": "renamed", "pinned": true},
                k2.clone(): {"title": "gone"},
                "n77": {"title": "x"}
            }, "destroy": [k2.clone(), "n78"]}, "s2"],
            ["Note/get", {"accountId": "a1", "ids": null, "properties": ["title"]}, "g2"],
            ["Note/changes", {"accountId": "a1", "sinceState": "s1"}, "c2"],
            ["Note/set", {"accountId": "a1", "ifInState": "s1", "destroy": [k1.clone()]}, "s3"]
        ]),
    )
    .await;
    let set = &responses[0][1];
    assert_eq!(set["updated"][&k1], json!({"size": 7}));
    assert_eq!(set["notUpdated"][&k2]["type"], "willDestroy");
    assert_eq!(set["notUpdated"]["n77"]["type"], "notFound");
    assert_eq!(set["destroyed"], json!([k2]));
    assert_eq!(set["notDestroyed"]["n78"]["type"], "notFound");
    assert_eq!(
        responses[1][1]["list"],
        json!([{"id": k1, "title": "renamed"}])
    );
    let changes = &responses[2][1];
    assert_eq!(changes["updated"], json!([k1]));
    assert_eq!(changes["destroyed"], json!([k2]));
    assert_eq!(error_type(&responses[3]), "stateMismatch");
}

#[tokio::test]
async fn patches_follow_rfc_rules() {
    let test = test_engine(CoreLimits::default());
    let responses = call(
        &test,
        json!([["Note/set", {"accountId": "a1", "create": {"k": {"title": "t", "pinned": true}}}, "s"]]),
    )
    .await;
    let id = responses[0][1]["created"]["k"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let responses = call(
        &test,
        json!([
            ["Note/set", {"accountId": "a1", "update": {id.clone(): {"pinned": null}}}, "a"],
            ["Note/set", {"accountId": "a1", "update": {id.clone(): {"title/x": "y"}}}, "b"],
            ["Note/set", {"accountId": "a1", "update": {id.clone(): {"size": 99}}}, "c"],
            ["Note/set", {"accountId": "a1", "update": {id.clone(): {"size": 1, "id": id.clone()}}}, "d"],
            ["Note/set", {"accountId": "a1", "update": {id.clone(): {"id": "n12345"}}}, "e"],
            ["Note/set", {"accountId": "a1", "update": {id.clone(): []}}, "f"],
            ["Note/get", {"accountId": "a1", "ids": [id.clone()]}, "g"]
        ]),
    )
    .await;
    assert_eq!(
        responses[0][1]["updated"][&id],
        Value::Null,
        "null resets to the default"
    );
    assert_eq!(responses[1][1]["notUpdated"][&id]["type"], "invalidPatch");
    assert_eq!(
        responses[2][1]["notUpdated"][&id]["type"],
        "invalidProperties"
    );
    assert!(
        responses[3][1]["updated"].get(&id).is_some(),
        "server-set at its current value is fine"
    );
    assert_eq!(
        responses[4][1]["notUpdated"][&id]["properties"],
        json!(["id"])
    );
    assert_eq!(responses[5][1]["notUpdated"][&id]["type"], "invalidPatch");
    assert_eq!(responses[6][1]["list"][0]["pinned"], false);
}

#[tokio::test]
async fn creation_ids_flow_across_calls_and_the_request() {
    let test = test_engine(CoreLimits::default());
    let response = call_with(
        &test,
        json!({"using": [CAPABILITY_TEST], "createdIds": {"old": "n500"}, "methodCalls": [
            ["Note/set", {"accountId": "a1", "create": {"p": {"title": "parent"}}}, "1"],
            ["Note/set", {"accountId": "a1", "create": {"c": {"title": "child", "parentId": "#p"}},
                          "update": {"#p": {"pinned": true}}}, "2"],
            ["Note/get", {"accountId": "a1", "ids": ["#c", "#old"], "properties": ["parentId", "pinned"]}, "3"]
        ]}),
    )
    .await;
    let responses = response["methodResponses"].as_array().expect("responses");
    let parent = responses[0][1]["created"]["p"]["id"].clone();
    assert!(
        responses[1][1]["updated"].get("#p").is_some(),
        "updated is keyed as requested"
    );
    let child = &responses[2][1]["list"][0];
    assert_eq!(child["parentId"], parent);
    assert_eq!(
        responses[2][1]["notFound"],
        json!(["#old"]),
        "n500 does not exist"
    );
    let created = &response["createdIds"];
    assert_eq!(created["p"], parent);
    assert_eq!(created["old"], "n500");
    assert!(created["c"].is_string());
}

#[tokio::test]
async fn result_references_feed_query_into_get() {
    let test = test_engine(CoreLimits::default());
    call(
        &test,
        json!([["Note/set", {"accountId": "a1", "create": {
            "a": {"title": "alpha", "pinned": true}, "b": {"title": "beta"}, "c": {"title": "gamma", "pinned": true}
        }}, "0"]]),
    )
    .await;
    let responses = call(
        &test,
        json!([
            ["Note/query", {"accountId": "a1", "filter": {"pinned": true}, "sort": [{"property": "title", "isAscending": false}]}, "q"],
            ["Note/get", {"accountId": "a1", "#ids": {"resultOf": "q", "name": "Note/query", "path": "/ids"}, "properties": ["title"]}, "g"]
        ]),
    )
    .await;
    let titles: Vec<&str> = responses[1][1]["list"]
        .as_array()
        .expect("list")
        .iter()
        .map(|note| note["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles, ["gamma", "alpha"]);
}

#[tokio::test]
async fn query_windows_and_errors() {
    let test = test_engine(CoreLimits::default());
    let mut create = Map::new();
    for index in 0..6 {
        create.insert(
            format!("k{index}"),
            json!({"title": format!("note {index}")}),
        );
    }
    let responses = call(
        &test,
        json!([["Note/set", {"accountId": "a1", "create": create}, "0"]]),
    )
    .await;
    let id = |index: usize| responses[0][1]["created"][format!("k{index}")]["id"].clone();
    let all: Vec<Value> = (0..6).map(id).collect();
    let sort = json!([{"property": "title"}]);
    let page = call(
        &test,
        json!([
            ["Note/query", {"accountId": "a1", "sort": sort, "position": 2, "limit": 2, "calculateTotal": true}, "a"],
            ["Note/query", {"accountId": "a1", "sort": sort, "position": -2}, "b"],
            ["Note/query", {"accountId": "a1", "sort": sort, "anchor": all[3], "anchorOffset": -1, "limit": 2}, "c"],
            ["Note/query", {"accountId": "a1", "sort": sort, "anchor": all[0], "anchorOffset": -5}, "d"],
            ["Note/query", {"accountId": "a1", "anchor": "n999"}, "e"],
            ["Note/query", {"accountId": "a1", "filter": {"colour": "red"}}, "f"],
            ["Note/query", {"accountId": "a1", "sort": [{"property": "pinned"}]}, "g"],
            ["Note/query", {"accountId": "a1", "sort": [{"property": "title", "collation": "i;klingon"}]}, "h"],
            ["Note/query", {"accountId": "a1", "position": 60}, "i"],
            ["Note/query", {"accountId": "a1", "filter": {"operator": "XOR", "conditions": []}}, "j"],
            ["Note/query", {"accountId": "a1", "limit": -1}, "k"],
            ["Note/query", {"accountId": "a1", "filter": {"operator": "NOT", "conditions": [{"titleContains": "note 1"}]}, "limit": 1}, "l"]
        ]),
    )
    .await;
    assert_eq!(page[0][1]["ids"], json!([all[2], all[3]]));
    assert_eq!(page[0][1]["total"], 6);
    assert_eq!(page[0][1]["position"], 2);
    assert_eq!(page[0][1]["queryState"], "s1");
    assert_eq!(page[1][1]["ids"], json!([all[4], all[5]]));
    assert_eq!(page[1][1]["position"], 4);
    assert_eq!(page[2][1]["ids"], json!([all[2], all[3]]));
    assert_eq!(
        page[3][1]["position"], 0,
        "an offset before the start clamps to 0"
    );
    assert_eq!(error_type(&page[4]), "anchorNotFound");
    assert_eq!(error_type(&page[5]), "unsupportedFilter");
    assert_eq!(error_type(&page[6]), "unsupportedSort");
    assert_eq!(error_type(&page[7]), "unsupportedSort");
    assert_eq!(page[8][1]["ids"], json!([]));
    assert_eq!(error_type(&page[9]), "unsupportedFilter");
    assert_eq!(error_type(&page[10]), "invalidArguments");
    assert_eq!(page[11][1]["ids"], json!([all[0]]));
    assert!(page[11][1].get("total").is_none());
}

#[tokio::test]
async fn query_changes_and_changes_limits() {
    let test = test_engine(CoreLimits::default());
    let responses = call(
        &test,
        json!([["Note/set", {"accountId": "a1", "create": {"a": {"title": "b"}, "b": {"title": "d"}}}, "0"]]),
    )
    .await;
    let a = responses[0][1]["created"]["a"]["id"]
        .as_str()
        .expect("a")
        .to_owned();
    let b = responses[0][1]["created"]["b"]["id"]
        .as_str()
        .expect("b")
        .to_owned();
    let sort = json!([{"property": "title"}]);
    // s1: [a "b", b "d"]. Then create c "a" (sorts first), rename b to "c", destroy a.
    call(
        &test,
        json!([["Note/set", {"accountId": "a1", "create": {"c": {"title": "a"}},
            "update": {b.clone(): {"title": "c"}}, "destroy": [a.clone()]}, "1"]]),
    )
    .await;
    let responses = call(
        &test,
        json!([
            ["Note/queryChanges", {"accountId": "a1", "sort": sort, "sinceQueryState": "s1", "calculateTotal": true}, "q"],
            ["Note/query", {"accountId": "a1", "sort": sort}, "now"],
            ["Note/queryChanges", {"accountId": "a1", "sort": sort, "sinceQueryState": "s1", "maxChanges": 2}, "few"],
            ["Note/queryChanges", {"accountId": "a1", "sinceQueryState": "bogus"}, "bad"],
            ["Note/changes", {"accountId": "a1", "sinceState": "s0", "maxChanges": 1}, "c1"],
            ["Note/changes", {"accountId": "a1", "sinceState": "s1", "maxChanges": 3}, "c2"],
            ["Note/changes", {"accountId": "a1", "sinceState": "s9"}, "c3"],
            ["Note/changes", {"accountId": "a1", "sinceState": "s0", "maxChanges": 0}, "c4"]
        ]),
    )
    .await;
    let query_changes = &responses[0][1];
    let now = responses[1][1]["ids"].as_array().expect("ids").clone();
    assert_eq!(query_changes["oldQueryState"], "s1");
    assert_eq!(query_changes["newQueryState"], "s2");
    assert_eq!(query_changes["total"], 2);
    let removed = query_changes["removed"].as_array().expect("removed");
    assert!(removed.contains(&json!(a)) && removed.contains(&json!(b)));
    // Applying the changes to the old results [a, b] gives the new results exactly.
    let mut results: Vec<Value> = vec![json!(a), json!(b)];
    results.retain(|id| !removed.contains(id));
    for added in query_changes["added"].as_array().expect("added") {
        let index = added["index"].as_u64().expect("index") as usize;
        results.insert(index, added["id"].clone());
    }
    assert_eq!(results, now);
    assert_eq!(error_type(&responses[2]), "tooManyChanges");
    assert_eq!(error_type(&responses[3]), "cannotCalculateChanges");
    // s0 → s1 is one commit of two ids: maxChanges 1 cuts inside it, at an intermediate state.
    assert_eq!(responses[4][1]["created"].as_array().map(Vec::len), Some(1));
    assert_eq!(responses[4][1]["hasMoreChanges"], true);
    assert_eq!(responses[4][1]["newState"], "s0.1");
    assert_eq!(responses[5][1]["newState"], "s2");
    assert_eq!(error_type(&responses[6]), "cannotCalculateChanges");
    assert_eq!(error_type(&responses[7]), "invalidArguments");
}

#[tokio::test]
async fn has_more_changes_pages_through_the_log() {
    let test = test_engine(CoreLimits::default());
    for index in 0..3 {
        call(
            &test,
            json!([["Note/set", {"accountId": "a1", "create": {"k": {"title": format!("{index}")}}}, "0"]]),
        )
        .await;
    }
    let responses = call(
        &test,
        json!([["Note/changes", {"accountId": "a1", "sinceState": "s0", "maxChanges": 2}, "c"]]),
    )
    .await;
    let page = &responses[0][1];
    assert_eq!(page["hasMoreChanges"], true);
    assert_eq!(page["newState"], "s2");
    assert_eq!(page["created"].as_array().expect("created").len(), 2);
}

#[tokio::test]
async fn limits_and_account_isolation() {
    let limits = CoreLimits {
        max_objects_in_get: 2,
        max_objects_in_set: 2,
        ..CoreLimits::default()
    };
    let test = test_engine(limits);
    let responses = call(
        &test,
        json!([
            ["Note/set", {"accountId": "a1", "create": {"a": {"title": "1"}, "b": {"title": "2"}, "c": {"title": "3"}}}, "1"],
            ["Note/set", {"accountId": "a1", "create": {"a": {"title": "1"}, "b": {"title": "2"}}}, "2"],
            ["Note/set", {"accountId": "a1", "create": {"c": {"title": "3"}}}, "3"],
            ["Note/get", {"accountId": "a1", "ids": ["n1", "n2", "n3"]}, "4"],
            ["Note/get", {"accountId": "a1"}, "5"],
            ["Note/get", {"accountId": "a2"}, "6"],
            ["Note/get", {"accountId": "x y"}, "7"],
            ["Note/get", {}, "8"],
            ["Note/set", {"accountId": "a2", "create": {"a": {"title": "1"}}}, "9"],
            ["Note/get", {"accountId": "a1", "ids": ["n1"], "properties": ["colour"]}, "10"],
            ["Note/get", {"accountId": "a1", "ids": ["n1"], "extra": 1}, "11"]
        ]),
    )
    .await;
    assert_eq!(error_type(&responses[0]), "requestTooLarge");
    assert_eq!(error_type(&responses[3]), "requestTooLarge");
    assert_eq!(
        error_type(&responses[4]),
        "requestTooLarge",
        "ids null over maxObjectsInGet"
    );
    assert_eq!(error_type(&responses[5]), "accountNotFound");
    assert_eq!(error_type(&responses[6]), "accountNotFound");
    assert_eq!(error_type(&responses[7]), "invalidArguments");
    assert_eq!(error_type(&responses[8]), "accountNotFound");
    assert_eq!(error_type(&responses[9]), "invalidArguments");
    assert_eq!(error_type(&responses[10]), "invalidArguments");
}

#[tokio::test]
async fn an_intermediate_state_resumes_inside_a_large_commit() {
    let test = test_engine(CoreLimits::default());
    call(
        &test,
        json!([["Note/set", {"accountId": "a1", "create": {
            "k1": {"title": "1"}, "k2": {"title": "2"}, "k3": {"title": "3"}
        }}, "0"]]),
    )
    .await;
    let mut since = "s0".to_owned();
    let mut created = Vec::new();
    for _ in 0..3 {
        let responses = call(
            &test,
            json!([["Note/changes", {"accountId": "a1", "sinceState": since, "maxChanges": 1}, "c"]]),
        )
        .await;
        let page = &responses[0][1];
        assert_eq!(page["created"].as_array().map(Vec::len), Some(1), "{page}");
        created.push(page["created"][0].clone());
        since = page["newState"].as_str().expect("newState").to_owned();
    }
    assert_eq!(since, "s1", "the last page ends on the commit's own state");
    created.sort_by_key(|id| id.to_string());
    created.dedup();
    assert_eq!(created.len(), 3, "every id exactly once");
    let responses = call(
        &test,
        json!([["Note/changes", {"accountId": "a1", "sinceState": "s0.3"}, "c"]]),
    )
    .await;
    assert_eq!(error_type(&responses[0]), "cannotCalculateChanges");
}
