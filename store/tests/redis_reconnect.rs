//! The Redis server restarts under a running store, which keeps working: its connection
//! manager reconnects, and the Lua script is loaded again into the fresh server.
//!
//! Needs `REDIS_URL` and `CG_REDIS_RESTART`, a shell command that stops the server and
//! starts it again on the same port (`.ci/store` provides both). Alone in its test
//! binary, so no other test sees the restart.
#![cfg(feature = "redis")]

mod suite;

use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_gate_store::{Kind, RedisOptions, RedisStore, Store};
use suite::{LATER, NOW, key, redis_url, say};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_working_after_the_server_restarts() {
    let Some(url) = redis_url() else { return };
    let Ok(restart) = std::env::var("CG_REDIS_RESTART") else {
        say("skipped: CG_REDIS_RESTART not set (bash .ci/store sets it)");
        return;
    };
    let options = RedisOptions {
        prefix: format!("cg-restart-{}", std::process::id()),
        ..Default::default()
    };
    let store: Arc<dyn Store> = Arc::new(RedisStore::connect(&url, options).await.unwrap());
    let before = key("before restart");
    assert!(
        store
            .put_if_absent(Kind::Client, before, b"client".to_vec(), LATER, NOW)
            .await
            .unwrap()
    );

    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(restart)
            .status()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "CG_REDIS_RESTART failed: {status:?}");

    // The first calls may fail while the manager reconnects; they must fail as errors,
    // and the store must recover on its own within seconds.
    let started = Instant::now();
    let mut failures = Vec::new();
    let after = key("after restart");
    loop {
        match store
            .put_if_absent(Kind::Code, after, b"code".to_vec(), LATER, NOW)
            .await
        {
            Ok(written) => {
                assert!(written, "the fresh server had no such key");
                break;
            }
            Err(error) => failures.push(error.to_string()),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no recovery in 20 s: {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = started.elapsed();
    assert_eq!(
        store.take(Kind::Code, after, NOW).await.unwrap().as_deref(),
        Some(&b"code"[..])
    );
    assert_eq!(
        store.take(Kind::Code, after, NOW).await.unwrap(),
        None,
        "single use after the restart"
    );
    let lost = store
        .get(Kind::Client, before, NOW)
        .await
        .unwrap()
        .is_none();
    say(&format!(
        "redis restart: recovered after {recovered:?} with {} failed call(s) {:?}; \
         pre-restart entry {} (the test server runs without persistence)",
        failures.len(),
        failures.first(),
        if lost { "gone" } else { "kept" },
    ));
}
