//! [`Store::take_then`]: the take a step begins with and the ops it ends with. Every
//! backend keeps the take single-use; SQLite also commits the two together, so ops that
//! fail leave the taken entry where it was.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use consent_gate_store::{Kind, Op, OpResult, Store, StoreError, Then};
use tokio::sync::Barrier;

use super::{LATER, NOW, RACERS, key};

/// A grant written by whoever took the code, as the token endpoint's step does.
fn grant_for(racer: usize, seen: Arc<Mutex<Vec<Option<Vec<u8>>>>>) -> Then {
    Box::new(move |taken| {
        let won = taken.is_some();
        seen.lock().unwrap().push(taken);
        match won {
            true => vec![Op::Put {
                kind: Kind::Grant,
                key: key(&format!("take-then-grant-{racer}")),
                value: format!("grant of racer {racer}").into_bytes(),
                expires_at: LATER,
            }],
            false => Vec::new(),
        }
    })
}

/// A2/A7/A8: N concurrent `take_then`s of one code; exactly one closure sees it and
/// exactly one grant is written, by that closure; every closure runs once.
pub async fn take_then_is_single_use(store: Arc<dyn Store>) {
    for round in 0..3 {
        let code = key(&format!("take-then-code-{round}"));
        store
            .put(Kind::Code, code, b"the code".to_vec(), LATER, NOW)
            .await
            .unwrap();
        for racer in 0..RACERS {
            let grant = key(&format!("take-then-grant-{racer}"));
            store.delete(Kind::Grant, grant, NOW).await.unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let start = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|racer| {
                let (store, start, then) =
                    (store.clone(), start.clone(), grant_for(racer, seen.clone()));
                tokio::spawn(async move {
                    start.wait().await;
                    store.take_then(Kind::Code, code, NOW, then).await.unwrap()
                })
            })
            .collect();
        let mut wrote = 0;
        for racer in racers {
            wrote += racer.await.unwrap().len();
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), RACERS, "every closure ran once");
        let winners: Vec<_> = seen.into_iter().flatten().collect();
        assert_eq!(
            winners,
            vec![b"the code".to_vec()],
            "exactly one took the code"
        );
        assert_eq!(wrote, 1, "only the winner's ops ran");
        let mut grants = 0;
        for racer in 0..RACERS {
            let grant = key(&format!("take-then-grant-{racer}"));
            grants += usize::from(store.get(Kind::Grant, grant, NOW).await.unwrap().is_some());
        }
        assert_eq!(grants, 1, "one grant");
        assert_eq!(store.get(Kind::Code, code, NOW).await.unwrap(), None);
    }
}

/// The closure gets `None` for an absent or expired entry, and its ops still run (a
/// replayed code's step deletes the grant, R43); their results come back in order.
pub async fn take_then_of_nothing_still_applies(store: Arc<dyn Store>) {
    let (code, grant) = (key("take-then-absent"), key("take-then-revoked"));
    store
        .put(Kind::Grant, grant, b"grant".to_vec(), LATER, NOW)
        .await
        .unwrap();
    store
        .put(Kind::Code, code, b"stale".to_vec(), NOW.plus(1), NOW)
        .await
        .unwrap();
    let later = NOW.plus(1); // the code expired at this second
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let then: Then = Box::new(move |taken| {
        assert_eq!(taken, None, "an expired entry is not handed over");
        counted.fetch_add(1, Ordering::SeqCst);
        vec![
            Op::Delete {
                kind: Kind::Grant,
                key: grant,
            },
            Op::Get {
                kind: Kind::Grant,
                key: grant,
            },
        ]
    });
    let results = store
        .take_then(Kind::Code, code, later, then)
        .await
        .unwrap();
    assert_eq!(results, vec![OpResult::Delete, OpResult::Get(None)]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(store.get(Kind::Grant, grant, later).await.unwrap(), None);
}

/// Ops that cannot run (here a write already expired) fail the call and write nothing;
/// in SQLite the take is rolled back with them, so the entry is still there to retry.
pub async fn take_then_refused_ops_write_nothing(store: Arc<dyn Store>) {
    let (pending, txn) = (key("take-then-pending"), key("take-then-txn"));
    store
        .put(Kind::Consent, pending, b"page".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let then: Then = Box::new(move |taken| {
        assert_eq!(taken.as_deref(), Some(&b"page"[..]));
        vec![
            Op::Put {
                kind: Kind::Transaction,
                key: txn,
                value: b"txn".to_vec(),
                expires_at: LATER,
            },
            Op::Put {
                kind: Kind::Transaction,
                key: key("take-then-dead"),
                value: b"dead on arrival".to_vec(),
                expires_at: NOW,
            },
        ]
    });
    let refused = store.take_then(Kind::Consent, pending, NOW, then).await;
    assert!(
        matches!(refused, Err(StoreError::AlreadyExpired { .. })),
        "{refused:?}"
    );
    assert_eq!(store.get(Kind::Transaction, txn, NOW).await.unwrap(), None);
    let left = store.get(Kind::Consent, pending, NOW).await.unwrap();
    if store.backend() == "sqlite" {
        assert_eq!(left.as_deref(), Some(&b"page"[..]), "the take rolled back");
    }
}
