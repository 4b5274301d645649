//! Checks the dispatch table, the session and the errors we emit against our machine-readable
//! RFC tables in `jmap-spec/`, and runs the known-answer fixtures of `jmap-spec/fixtures/`.

use std::collections::HashSet;

use serde_json::Value;

use super::dispatch::METHODS;
use super::error::{MethodErrorType, RequestErrorType, SetErrorType};
use super::test_support::{alice, engine, matches};

const CAPABILITIES: &str = include_str!("../../jmap-spec/capabilities.json");
const METHODS_SPEC: &str = include_str!("../../jmap-spec/methods.json");
const ERRORS: &str = include_str!("../../jmap-spec/errors.json");
const OBJECTS: &str = include_str!("../../jmap-spec/objects.json");

/// Methods of an advertised capability that a later issue implements (push). Each must NOT
/// be dispatchable yet: once one is, this test fails until it is removed from here.
const DEFERRED_METHODS: &[&str] = &[];

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("jmap-spec JSON parses")
}

fn spec_methods() -> Vec<(String, String)> {
    parse(METHODS_SPEC)["methods"]
        .as_array()
        .expect("methods array")
        .iter()
        .map(|method| {
            (
                method["name"].as_str().expect("name").to_owned(),
                method["capability"]
                    .as_str()
                    .expect("capability")
                    .to_owned(),
            )
        })
        .collect()
}

fn advertised_capabilities() -> Vec<String> {
    let test = engine();
    let session = crate::jmap::test_support::session_blocking(&test.engine, &alice());
    session["capabilities"]
        .as_object()
        .expect("capabilities object")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn every_dispatched_method_is_in_the_spec_with_its_capability() {
    let spec = spec_methods();
    for entry in METHODS {
        let found = spec.iter().find(|(name, _)| name == entry.name);
        let Some((_, capability)) = found else {
            panic!(
                "{} is dispatched but not in jmap-spec/methods.json",
                entry.name
            );
        };
        assert_eq!(capability, entry.capability, "capability of {}", entry.name);
    }
}

#[test]
fn every_advertised_capability_is_in_the_spec() {
    let spec = parse(CAPABILITIES);
    let known: HashSet<&str> = spec["capabilities"]
        .as_array()
        .expect("capabilities array")
        .iter()
        .map(|capability| capability["uri"].as_str().expect("uri"))
        .collect();
    let advertised = advertised_capabilities();
    assert!(!advertised.is_empty());
    for capability in advertised {
        assert!(
            known.contains(capability.as_str()),
            "{capability} not in the spec"
        );
    }
}

#[test]
fn every_method_of_an_advertised_capability_is_dispatchable() {
    let advertised = advertised_capabilities();
    let dispatchable: HashSet<&str> = METHODS.iter().map(|entry| entry.name).collect();
    for (name, capability) in spec_methods() {
        if !advertised.contains(&capability) {
            continue;
        }
        if DEFERRED_METHODS.contains(&name.as_str()) {
            assert!(
                !dispatchable.contains(name.as_str()),
                "{name} is implemented now: remove it from DEFERRED_METHODS"
            );
            continue;
        }
        assert!(
            dispatchable.contains(name.as_str()),
            "{name} ({capability}) is advertised but not in the dispatch table"
        );
    }
}

#[test]
fn core_limits_in_the_session_match_the_spec() {
    let spec = parse(CAPABILITIES);
    let core = spec["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .find(|capability| capability["uri"] == "urn:ietf:params:jmap:core")
        .expect("core in spec");
    let mut spec_limits: Vec<&str> = core["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .map(|limit| limit["name"].as_str().expect("limit name"))
        .collect();
    spec_limits.sort_unstable();
    let test = engine();
    let session = crate::jmap::test_support::session_blocking(&test.engine, &alice());
    let mut advertised: Vec<&str> = session["capabilities"]["urn:ietf:params:jmap:core"]
        .as_object()
        .expect("core capability object")
        .keys()
        .map(String::as_str)
        .collect();
    advertised.sort_unstable();
    assert_eq!(advertised, spec_limits);
}

#[test]
fn session_and_account_have_every_spec_property() {
    let objects = parse(OBJECTS);
    let property_names = |object_name: &str| -> Vec<String> {
        objects["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|object| object["name"] == object_name)
            .expect("object in spec")["properties"]
            .as_array()
            .expect("properties")
            .iter()
            .map(|property| property["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let test = engine();
    let session = crate::jmap::test_support::session_blocking(&test.engine, &alice());
    for property in property_names("Session") {
        assert!(session.get(&property).is_some(), "session lacks {property}");
    }
    let account = &session["accounts"]["a1"];
    for property in property_names("Account") {
        assert!(account.get(&property).is_some(), "account lacks {property}");
    }
}

#[test]
fn every_error_type_we_emit_is_in_the_spec() {
    let spec = parse(ERRORS);
    let names = |level: &str| -> HashSet<String> {
        spec[level]
            .as_array()
            .expect("level array")
            .iter()
            .map(|error| error["type"].as_str().expect("type").to_owned())
            .collect()
    };
    let request_level = names("requestLevel");
    for kind in RequestErrorType::ALL {
        assert!(request_level.contains(kind.urn()), "{}", kind.urn());
    }
    let method_level = names("methodLevel");
    for kind in MethodErrorType::ALL {
        assert!(method_level.contains(kind.name()), "{}", kind.name());
    }
    let set_level = names("setLevel");
    for kind in SetErrorType::ALL {
        assert!(set_level.contains(kind.name()), "{}", kind.name());
    }
}

const FIXTURES: &[(&str, &str)] = &[
    (
        "blob-copy-isolation",
        include_str!("../../jmap-spec/fixtures/blob-copy-isolation.json"),
    ),
    (
        "core-echo",
        include_str!("../../jmap-spec/fixtures/core-echo.json"),
    ),
    (
        "created-ids",
        include_str!("../../jmap-spec/fixtures/created-ids.json"),
    ),
    (
        "problem-limit",
        include_str!("../../jmap-spec/fixtures/problem-limit.json"),
    ),
    (
        "problem-not-json",
        include_str!("../../jmap-spec/fixtures/problem-not-json.json"),
    ),
    (
        "problem-not-request",
        include_str!("../../jmap-spec/fixtures/problem-not-request.json"),
    ),
    (
        "problem-unknown-capability",
        include_str!("../../jmap-spec/fixtures/problem-unknown-capability.json"),
    ),
    (
        "result-reference",
        include_str!("../../jmap-spec/fixtures/result-reference.json"),
    ),
    (
        "result-reference-errors",
        include_str!("../../jmap-spec/fixtures/result-reference-errors.json"),
    ),
    (
        "unknown-method",
        include_str!("../../jmap-spec/fixtures/unknown-method.json"),
    ),
];

#[tokio::test]
async fn known_answer_fixtures() {
    let test = engine();
    for (name, text) in FIXTURES {
        let fixture = parse(text);
        let body = match fixture.get("requestRaw") {
            Some(raw) => raw
                .as_str()
                .expect("requestRaw is a string")
                .as_bytes()
                .to_vec(),
            None => serde_json::to_vec(&fixture["request"]).expect("serialize request"),
        };
        let outcome = test.engine.handle_api(&alice(), &body).await;
        match (fixture.get("response"), fixture.get("problem"), outcome) {
            (Some(expected), None, Ok(actual)) => {
                assert!(matches(expected, &actual), "{name}: got {actual:#}");
            }
            (None, Some(expected), Err(problem)) => {
                let actual = problem.to_json();
                assert!(matches(expected, &actual), "{name}: got {actual:#}");
            }
            (_, _, outcome) => panic!("{name}: unexpected outcome {outcome:?}"),
        }
    }
}
