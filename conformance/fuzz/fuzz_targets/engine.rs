//! Fuzzes the whole engine (parsing, result references, dispatch, Core/echo, Blob/copy) on a
//! real embedded store: every input gives a response or an RFC problem, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tern::auth::Principal;
use tern::jmap::{CoreLimits, Engine, SessionUrls};
use tern::store::Store;
use tern::store::embedded::EmbeddedBackend;

struct Harness {
    runtime: tokio::runtime::Runtime,
    engine: Engine,
    _data_dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let backend = EmbeddedBackend::open(data_dir.path()).expect("store");
        let engine = Engine::new(
            Store::new(Arc::new(backend)),
            CoreLimits::default(),
            SessionUrls::from_base_url("http://127.0.0.1:8080"),
        );
        Harness {
            runtime,
            engine,
            _data_dir: data_dir,
        }
    })
}

fuzz_target!(|body: &[u8]| {
    let harness = harness();
    let principal = Principal {
        account_id: 1,
        email: "fuzz@example.test".to_owned(),
    };
    let outcome = harness
        .runtime
        .block_on(harness.engine.handle_api(&principal, body));
    if let Ok(response) = outcome {
        assert!(response["methodResponses"].is_array());
    }
});
