//! The contract suite (`tests/suite/`) against every backend compiled in: memory always,
//! SQLite with `--features sqlite`, Redis with `--features redis` and `REDIS_URL` set
//! (a loopback `redis://127.0.0.1:PORT/`; `.ci/store` starts one). Without `REDIS_URL`
//! the Redis tests say "skipped: REDIS_URL not set" and pass.
#![cfg_attr(not(feature = "memory"), allow(unused_macros))] // a build with no backend at all

mod suite;

use std::sync::Arc;

use consent_gate_store::{Key, Kind, Op, OpResult, Store, StoreFuture, Then, UnixTime};

/// A store under test, with whatever must outlive it (a temporary directory).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _keep: Option<Box<dyn std::any::Any + Send>>,
}

#[cfg(feature = "memory")]
async fn memory() -> Option<Fixture> {
    Some(Fixture {
        store: Arc::new(consent_gate_store::MemoryStore::new().limit(
            suite::QUOTA_KIND,
            consent_gate_store::MemoryLimits {
                max_entries: suite::QUOTA as usize,
                on_full: consent_gate_store::OnFull::Refuse,
                ..Default::default()
            },
        )),
        _keep: None,
    })
}

#[cfg(feature = "sqlite")]
async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let options = consent_gate_store::SqliteOptions {
        quotas: consent_gate_store::Quotas::none().limit(suite::QUOTA_KIND, suite::QUOTA),
        ..Default::default()
    };
    let store = consent_gate_store::SqliteStore::open(dir.path().join("store.db"), options)
        .await
        .unwrap();
    Some(Fixture {
        store: Arc::new(store),
        _keep: Some(Box::new(dir)),
    })
}

#[cfg(feature = "redis")]
async fn redis() -> Option<Fixture> {
    redis_with_prefix("cg-test").await
}

#[cfg(feature = "redis")]
async fn redis_with_prefix(prefix: &str) -> Option<Fixture> {
    let url = suite::redis_url()?;
    // A prefix per process: reruns against one server never see each other's keys.
    let options = consent_gate_store::RedisOptions {
        prefix: format!("{prefix}-{}", std::process::id()),
        quotas: consent_gate_store::Quotas::none().limit(suite::QUOTA_KIND, suite::QUOTA),
        ..Default::default()
    };
    let store = consent_gate_store::RedisStore::connect(&url, options)
        .await
        .unwrap();
    Some(Fixture {
        store: Arc::new(store),
        _keep: None,
    })
}

/// A backend whose every call is a batch of at least two ops: the call's own, then a read
/// of a key nobody writes. The suite runs again through it, so that every check also
/// holds on each backend's batch path (Redis runs a lone put or take of a kind with a
/// quota through a small script of its own, and every batch through its batch script).
struct AlwaysBatched(Arc<dyn Store>);

impl Store for AlwaysBatched {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }

    fn apply(&self, mut ops: Vec<Op>, now: UnixTime) -> StoreFuture<'_, Vec<OpResult>> {
        Box::pin(async move {
            let lone = ops.len() == 1;
            if lone {
                let key = [0xee; 32];
                ops.push(Op::Get {
                    kind: Kind::Grant,
                    key,
                });
            }
            let mut results = self.0.apply(ops, now).await?;
            if lone {
                results.truncate(1);
            }
            Ok(results)
        })
    }

    fn sweep(&self, now: UnixTime) -> StoreFuture<'_, u64> {
        self.0.sweep(now)
    }

    /// As the backend does it: SQLite's is one transaction, which a take through this
    /// wrapper would not be.
    fn take_then(
        &self,
        kind: Kind,
        key: Key,
        now: UnixTime,
        then: Then,
    ) -> StoreFuture<'_, Vec<OpResult>> {
        self.0.take_then(kind, key, now, then)
    }
}

fn batched(fixture: Option<Fixture>) -> Option<Fixture> {
    fixture.map(|f| Fixture {
        store: Arc::new(AlwaysBatched(f.store)),
        _keep: f._keep,
    })
}

#[cfg(feature = "memory")]
async fn memory_batched() -> Option<Fixture> {
    batched(memory().await)
}

#[cfg(feature = "sqlite")]
async fn sqlite_batched() -> Option<Fixture> {
    batched(sqlite().await)
}

#[cfg(feature = "redis")]
async fn redis_batched() -> Option<Fixture> {
    batched(redis_with_prefix("cg-test-batched").await)
}

/// One `#[tokio::test]` per contract check, in a module per backend.
macro_rules! contract_suite {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    if let Some(fixture) = super::$backend().await {
                        crate::suite::$check(fixture.store.clone()).await;
                    }
                }
            )*
        }
    };
}

macro_rules! every_check {
    ($backend:ident) => {
        contract_suite!($backend:
            round_trip,
            expiry_is_the_callers,
            put_if_absent_semantics,
            put_if_absent_race,
            take_is_single_use,
            take_then_is_single_use,
            take_then_of_nothing_still_applies,
            take_then_refused_ops_write_nothing,
            large_values,
            apply_is_ordered_and_atomic,
            apply_race_redeems_once,
            sweep_removes_only_expired,
            quota_refuses_newcomers_only,
        );
    };
}

#[cfg(feature = "memory")]
every_check!(memory);
#[cfg(feature = "sqlite")]
every_check!(sqlite);
#[cfg(feature = "redis")]
every_check!(redis);
#[cfg(feature = "memory")]
every_check!(memory_batched);
#[cfg(feature = "sqlite")]
every_check!(sqlite_batched);
#[cfg(feature = "redis")]
every_check!(redis_batched);
