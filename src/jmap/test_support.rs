//! Test helpers: an engine over a real embedded store in a temporary directory.

use std::sync::Arc;

use super::dispatch::MethodEntry;
use super::{CoreLimits, Engine, SessionUrls};
use crate::auth::Principal;
use crate::store::Store;
use crate::store::embedded::EmbeddedBackend;

pub const BASE_URL: &str = "http://127.0.0.1:8080";

pub struct TestEngine {
    pub engine: Engine,
    /// Keeps the store's directory alive as long as the engine.
    pub _data_dir: tempfile::TempDir,
}

pub fn open_store() -> (Store, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let backend = EmbeddedBackend::open(data_dir.path()).expect("open embedded store");
    (Store::new(Arc::new(backend)), data_dir)
}

pub fn engine_with(table: &[MethodEntry], limits: CoreLimits) -> TestEngine {
    let (store, data_dir) = open_store();
    let engine = Engine::with_methods(store, limits, SessionUrls::from_base_url(BASE_URL), table);
    TestEngine {
        engine,
        _data_dir: data_dir,
    }
}

pub fn engine() -> TestEngine {
    engine_with(super::dispatch::METHODS, CoreLimits::default())
}

pub fn alice() -> Principal {
    Principal {
        account_id: 1,
        email: "alice@example.test".to_owned(),
    }
}

pub fn bob() -> Principal {
    Principal {
        account_id: 2,
        email: "bob@example.test".to_owned(),
    }
}

/// Structural equality where the expected string `"$any"` matches any value.
pub fn matches(expected: &serde_json::Value, actual: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (expected, actual) {
        (Value::String(marker), _) if marker == "$any" => true,
        (Value::Object(want), Value::Object(got)) => {
            want.len() == got.len()
                && want
                    .iter()
                    .all(|(key, value)| got.get(key).is_some_and(|other| matches(value, other)))
        }
        (Value::Array(want), Value::Array(got)) => {
            want.len() == got.len() && want.iter().zip(got).all(|(w, g)| matches(w, g))
        }
        _ => expected == actual,
    }
}

/// The session of `principal`, from a synchronous test.
pub fn session_blocking(engine: &Engine, principal: &Principal) -> serde_json::Value {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(engine.session(principal))
        .expect("session")
}
