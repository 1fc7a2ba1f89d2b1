//! The store contract (docs/design.md, "The store contract"), as generic checks that every
//! backend must pass: `tests/contract.rs` runs each of them against each backend.

#![allow(dead_code)] // each test binary uses a part

use std::io::Write as _;
use std::sync::Arc;

use consent_gate_store::{Key, Kind, MAX_VALUE_BYTES, Op, OpResult, Store, StoreError, UnixTime};
use tokio::sync::Barrier;

mod take_then;
#[allow(unused_imports)] // tests/contract.rs runs them; the other binaries do not
pub use take_then::{
    take_then_is_single_use, take_then_of_nothing_still_applies,
    take_then_refused_ops_write_nothing,
};

/// A fixed caller clock: the store must judge expiry by it, not by its own.
pub const NOW: UnixTime = UnixTime::from_secs(1_900_000_000);
/// An hour after [`NOW`], the expiry of most test entries.
pub const LATER: UnixTime = UnixTime::from_secs(1_900_003_600);
/// How many tasks race in the concurrency checks.
pub const RACERS: usize = 32;

/// Says something in the test output even when libtest captures `println!`
/// (writes to the process's stderr directly): skips and evidence.
pub fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The Redis under test, from `REDIS_URL`; refuses anything but a loopback address
/// (tests never send traffic elsewhere). `None`, said aloud, when it is unset.
pub fn redis_url() -> Option<String> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        say("skipped: REDIS_URL not set (bash .ci/store starts a redis-server and sets it)");
        return None;
    };
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    assert!(
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]"),
        "REDIS_URL must be a loopback address, got {url}"
    );
    Some(url)
}

/// A key unique to this test process and `label`, so tests that share a Redis server
/// (and runs that share one) never see each other's entries.
pub fn key(label: &str) -> Key {
    let mut key = [0u8; 32];
    let pid = std::process::id().to_be_bytes();
    key[..4].copy_from_slice(&pid);
    for (slot, byte) in key[4..].iter_mut().zip(label.bytes().cycle()) {
        *slot = byte;
    }
    key[31] = label.len() as u8;
    key
}

/// put, get, replace, delete; the same key under another kind is another entry.
pub async fn round_trip(store: Arc<dyn Store>) {
    let k = key("round_trip");
    assert_eq!(store.get(Kind::Client, k, NOW).await.unwrap(), None);
    store
        .put(Kind::Client, k, b"first".to_vec(), LATER, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.get(Kind::Client, k, NOW).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        store.get(Kind::Grant, k, NOW).await.unwrap(),
        None,
        "kinds are separate namespaces"
    );
    store
        .put(Kind::Client, k, b"second".to_vec(), LATER, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.get(Kind::Client, k, NOW).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    store
        .put(
            Kind::Other("demo-upstream"),
            k,
            b"other".to_vec(),
            LATER,
            NOW,
        )
        .await
        .unwrap();
    store.delete(Kind::Client, k, NOW).await.unwrap();
    assert_eq!(store.get(Kind::Client, k, NOW).await.unwrap(), None);
    assert_eq!(
        store
            .get(Kind::Other("demo-upstream"), k, NOW)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"other"[..]),
        "a host-defined kind is a namespace of its own"
    );
    store.delete(Kind::Client, k, NOW).await.unwrap(); // deleting nothing is fine
    assert_eq!(store.take(Kind::Client, k, NOW).await.unwrap(), None);
}

/// `now >= expires_at` is absent for get, take and put_if_absent, judged by the caller's
/// clock; a write that is expired on arrival is refused, as are bad kind labels.
pub async fn expiry_is_the_callers(store: Arc<dyn Store>) {
    let k = key("expiry");
    let expires = NOW.plus(10);
    store
        .put(Kind::Code, k, b"code".to_vec(), expires, NOW)
        .await
        .unwrap();
    assert!(
        store
            .get(Kind::Code, k, NOW.plus(9))
            .await
            .unwrap()
            .is_some(),
        "live one second before"
    );
    assert_eq!(
        store.get(Kind::Code, k, expires).await.unwrap(),
        None,
        "absent at expires_at"
    );
    assert_eq!(
        store.take(Kind::Code, k, expires).await.unwrap(),
        None,
        "an expired entry cannot be taken"
    );

    store
        .put(Kind::Code, k, b"code".to_vec(), expires, NOW)
        .await
        .unwrap();
    assert!(
        store
            .put_if_absent(Kind::Code, k, b"new".to_vec(), expires.plus(60), expires)
            .await
            .unwrap(),
        "an expired entry counts as absent"
    );
    assert_eq!(
        store.get(Kind::Code, k, expires).await.unwrap().as_deref(),
        Some(&b"new"[..])
    );

    for expires_at in [NOW, UnixTime::from_secs(NOW.secs() - 1)] {
        let refused = store
            .put(Kind::Code, k, b"dead".to_vec(), expires_at, NOW)
            .await;
        assert!(
            matches!(refused, Err(StoreError::AlreadyExpired { .. })),
            "{refused:?}"
        );
        let refused = store
            .put_if_absent(
                Kind::Code,
                key("expiry-pia"),
                b"dead".to_vec(),
                expires_at,
                NOW,
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::AlreadyExpired { .. })),
            "{refused:?}"
        );
    }
    let too_far = UnixTime::from_secs(UnixTime::MAX.secs() + 1);
    let refused = store
        .put(Kind::Code, k, b"far".to_vec(), too_far, NOW)
        .await;
    assert!(
        matches!(refused, Err(StoreError::ExpiryOutOfRange(_))),
        "{refused:?}"
    );
    for label in ["client", "", "Upper", "has space", "x".repeat(33).leak()] {
        let refused = store.get(Kind::Other(label), k, NOW).await;
        assert!(
            matches!(refused, Err(StoreError::InvalidKind(_))),
            "{label:?}: {refused:?}"
        );
    }
}

/// Writes only if no live entry; a false leaves the existing value alone.
pub async fn put_if_absent_semantics(store: Arc<dyn Store>) {
    let k = key("pia");
    assert!(
        store
            .put_if_absent(Kind::Refresh, k, b"successor".to_vec(), LATER, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_if_absent(Kind::Refresh, k, b"stale".to_vec(), LATER, NOW)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(Kind::Refresh, k, NOW).await.unwrap().as_deref(),
        Some(&b"successor"[..])
    );
    store.delete(Kind::Refresh, k, NOW).await.unwrap();
    assert!(
        store
            .put_if_absent(Kind::Refresh, k, b"again".to_vec(), LATER, NOW)
            .await
            .unwrap()
    );
}

/// A22: N concurrent refreshes write "their" successor put-if-absent: exactly one wins,
/// and the stored value is the winner's.
pub async fn put_if_absent_race(store: Arc<dyn Store>) {
    let k = key("pia-race");
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let won = store
                    .put_if_absent(
                        Kind::Refresh,
                        k,
                        format!("racer {i}").into_bytes(),
                        LATER,
                        NOW,
                    )
                    .await;
                (i, won.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (i, won) = racer.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one put_if_absent wins: {winners:?}"
    );
    let stored = store.get(Kind::Refresh, k, NOW).await.unwrap().unwrap();
    assert_eq!(stored, format!("racer {}", winners[0]).into_bytes());
}

/// A2/A7/A8: N concurrent takers of one code, exactly one gets it; then it is gone.
pub async fn take_is_single_use(store: Arc<dyn Store>) {
    for round in 0..3 {
        let k = key(&format!("take-race-{round}"));
        store
            .put(Kind::Code, k, b"the code".to_vec(), LATER, NOW)
            .await
            .unwrap();
        let start = Arc::new(Barrier::new(RACERS));
        let takers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    store.take(Kind::Code, k, NOW).await.unwrap()
                })
            })
            .collect();
        let mut got = Vec::new();
        for taker in takers {
            got.extend(taker.await.unwrap());
        }
        assert_eq!(got, vec![b"the code".to_vec()], "exactly one taker wins");
        assert_eq!(store.get(Kind::Code, k, NOW).await.unwrap(), None);
    }
}

/// 1 MiB values round-trip intact; one byte over the limit is refused.
pub async fn large_values(store: Arc<dyn Store>) {
    let k = key("large");
    let value: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    store
        .put(Kind::Grant, k, value.clone(), LATER, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.get(Kind::Grant, k, NOW).await.unwrap().as_ref(),
        Some(&value)
    );
    assert_eq!(
        store.take(Kind::Grant, k, NOW).await.unwrap().as_ref(),
        Some(&value)
    );
    let refused = store
        .put(Kind::Grant, k, vec![0; MAX_VALUE_BYTES + 1], LATER, NOW)
        .await;
    assert!(
        matches!(refused, Err(StoreError::TooLarge { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store.put(Kind::Grant, k, Vec::new(), LATER, NOW).await.ok(),
        Some(()),
        "empty values too"
    );
    assert_eq!(
        store.get(Kind::Grant, k, NOW).await.unwrap(),
        Some(Vec::new())
    );
}

/// A batch runs in order (each op sees the ones before) and is all or nothing.
pub async fn apply_is_ordered_and_atomic(store: Arc<dyn Store>) {
    let (a, b, c) = (key("apply-a"), key("apply-b"), key("apply-c"));
    store
        .put(Kind::Code, c, b"code".to_vec(), LATER, NOW)
        .await
        .unwrap();
    store
        .put(Kind::Refresh, b, b"live".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let results = store
        .apply(
            vec![
                Op::Take {
                    kind: Kind::Code,
                    key: c,
                },
                Op::Put {
                    kind: Kind::Grant,
                    key: a,
                    value: b"grant".to_vec(),
                    expires_at: LATER,
                },
                Op::Get {
                    kind: Kind::Grant,
                    key: a,
                },
                Op::PutIfAbsent {
                    kind: Kind::Refresh,
                    key: b,
                    value: b"lost".to_vec(),
                    expires_at: LATER,
                },
                Op::Delete {
                    kind: Kind::Refresh,
                    key: b,
                },
                Op::PutIfAbsent {
                    kind: Kind::Refresh,
                    key: b,
                    value: b"won".to_vec(),
                    expires_at: LATER,
                },
                Op::Take {
                    kind: Kind::Code,
                    key: c,
                },
            ],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![
            OpResult::Take(Some(b"code".to_vec())),
            OpResult::Put,
            OpResult::Get(Some(b"grant".to_vec())),
            OpResult::PutIfAbsent(false),
            OpResult::Delete,
            OpResult::PutIfAbsent(true),
            OpResult::Take(None),
        ]
    );
    assert_eq!(
        store.get(Kind::Refresh, b, NOW).await.unwrap().as_deref(),
        Some(&b"won"[..])
    );
    assert_eq!(store.apply(Vec::new(), NOW).await.unwrap(), Vec::new());

    // A refused op anywhere in the batch: nothing of it happens, the take included.
    store
        .put(Kind::Code, c, b"code".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let refused = store
        .apply(
            vec![
                Op::Take {
                    kind: Kind::Code,
                    key: c,
                },
                Op::Delete {
                    kind: Kind::Grant,
                    key: a,
                },
                Op::Put {
                    kind: Kind::Grant,
                    key: b,
                    value: b"x".to_vec(),
                    expires_at: NOW,
                },
            ],
            NOW,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::AlreadyExpired { .. })),
        "{refused:?}"
    );
    assert!(
        store.get(Kind::Code, c, NOW).await.unwrap().is_some(),
        "the take was not applied"
    );
    assert!(
        store.get(Kind::Grant, a, NOW).await.unwrap().is_some(),
        "the delete was not applied"
    );
}

/// The token endpoint's step as one batch: take the code, write the grant and the refresh
/// record. Run by N replicas at once: exactly one batch gets the code, and exactly one
/// grant is written.
pub async fn apply_race_redeems_once(store: Arc<dyn Store>) {
    let code = key("apply-race-code");
    store
        .put(Kind::Code, code, b"code".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let ops = vec![
                    Op::Take {
                        kind: Kind::Code,
                        key: code,
                    },
                    Op::PutIfAbsent {
                        kind: Kind::Grant,
                        key: key("apply-race-grant"),
                        value: format!("grant {i}").into_bytes(),
                        expires_at: LATER,
                    },
                ];
                store.apply(ops, NOW).await.unwrap()
            })
        })
        .collect();
    let mut redeemed = 0;
    let mut granted = 0;
    for racer in racers {
        let results = racer.await.unwrap();
        redeemed += usize::from(matches!(results[0], OpResult::Take(Some(_))));
        granted += usize::from(results[1] == OpResult::PutIfAbsent(true));
    }
    assert_eq!((redeemed, granted), (1, 1));
}

/// A sweep reclaims what has expired and nothing live.
pub async fn sweep_removes_only_expired(store: Arc<dyn Store>) {
    let (dead, live) = (key("sweep-dead"), key("sweep-live"));
    store
        .put(Kind::Transaction, dead, b"dead".to_vec(), NOW.plus(5), NOW)
        .await
        .unwrap();
    store
        .put(Kind::Transaction, live, b"live".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let removed = store.sweep(NOW.plus(5)).await.unwrap();
    if store.backend() != "redis" {
        assert!(removed >= 1, "{removed}");
    }
    assert!(
        store
            .get(Kind::Transaction, live, NOW.plus(5))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .get(Kind::Transaction, dead, NOW.plus(5))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get(Kind::Transaction, dead, NOW)
            .await
            .unwrap()
            .is_some(),
        store.backend() == "redis"
    );
}

/// The kind every fixture gives a quota of [`QUOTA`] entries (and no other kind a quota).
pub const QUOTA_KIND: Kind = Kind::Other("quota_test");
/// The quota of [`QUOTA_KIND`].
pub const QUOTA: u64 = 3;

/// A full kind refuses a new entry, and its whole batch with it; replacing, taking and
/// deleting still work, a freed or expired slot takes a newcomer again, and other kinds
/// are untouched (R64: a flood of newcomers cannot push out anyone already there).
pub async fn quota_refuses_newcomers_only(store: Arc<dyn Store>) {
    let q = |i: u8| key(&format!("quota-{i}"));
    fn refused<T>(r: Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::QuotaExceeded(k)) if k == QUOTA_KIND)
    }
    // Entry 0 expires at NOW + 5; 1 and 2 live an hour.
    store
        .put(QUOTA_KIND, q(0), b"0".to_vec(), NOW.plus(5), NOW)
        .await
        .unwrap();
    for i in 1..QUOTA as u8 {
        store
            .put(QUOTA_KIND, q(i), vec![i], LATER, NOW)
            .await
            .unwrap();
    }
    assert!(refused(
        store
            .put(QUOTA_KIND, q(9), b"new".to_vec(), LATER, NOW)
            .await
    ));
    let pia = Op::PutIfAbsent {
        kind: QUOTA_KIND,
        key: q(9),
        value: b"new".to_vec(),
        expires_at: LATER,
    };
    assert!(refused(store.apply(vec![pia.clone()], NOW).await));
    // A refused batch writes nothing, not even its ops on other kinds.
    let other = key("quota-other");
    let batch = vec![
        Op::Put {
            kind: Kind::Grant,
            key: other,
            value: b"g".to_vec(),
            expires_at: LATER,
        },
        pia.clone(),
    ];
    assert!(refused(store.apply(batch, NOW).await));
    assert_eq!(store.get(Kind::Grant, other, NOW).await.unwrap(), None);
    // Other kinds have no quota.
    store
        .put(Kind::Grant, other, b"g".to_vec(), LATER, NOW)
        .await
        .unwrap();
    // Replacing an entry of a full kind adds none.
    store
        .put(QUOTA_KIND, q(1), b"again".to_vec(), LATER, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.get(QUOTA_KIND, q(1), NOW).await.unwrap(),
        Some(b"again".to_vec())
    );
    // A take frees a slot; the newcomer fits, and the next one is refused again.
    assert_eq!(
        store.take(QUOTA_KIND, q(2), NOW).await.unwrap(),
        Some(vec![2])
    );
    assert_eq!(
        store.take(QUOTA_KIND, q(2), NOW).await.unwrap(),
        None,
        "a take of a kind with a quota is single use too"
    );
    store.apply(vec![pia.clone()], NOW).await.unwrap();
    // A put-if-absent on a live entry of a full kind is no newcomer: not refused, no write.
    let again = Op::PutIfAbsent {
        kind: QUOTA_KIND,
        key: q(9),
        value: b"again".to_vec(),
        expires_at: LATER,
    };
    assert_eq!(
        store.apply(vec![again], NOW).await.unwrap(),
        vec![OpResult::PutIfAbsent(false)]
    );
    assert_eq!(
        store.get(QUOTA_KIND, q(9), NOW).await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert!(refused(
        store
            .put(QUOTA_KIND, q(8), b"new".to_vec(), LATER, NOW)
            .await
    ));
    // A delete frees one too.
    store.delete(QUOTA_KIND, q(9), NOW).await.unwrap();
    store
        .put(QUOTA_KIND, q(8), b"new".to_vec(), LATER, NOW)
        .await
        .unwrap();
    // An expired entry does not count, swept or not.
    let at = NOW.plus(5);
    assert!(refused(
        store
            .put(QUOTA_KIND, q(7), b"new".to_vec(), LATER, NOW)
            .await
    ));
    store
        .put(QUOTA_KIND, q(7), b"new".to_vec(), LATER, at)
        .await
        .unwrap();
    assert!(refused(
        store
            .put(QUOTA_KIND, q(6), b"new".to_vec(), LATER, at)
            .await
    ));
    for i in [1, 7, 8] {
        assert!(
            store.get(QUOTA_KIND, q(i), at).await.unwrap().is_some(),
            "{i}"
        );
    }
    // Nor in a batch: once the three have expired, a batch with a newcomer fits.
    let (later, until) = (LATER, LATER.plus(60));
    let batch = vec![
        Op::Put {
            kind: QUOTA_KIND,
            key: q(5),
            value: b"new".to_vec(),
            expires_at: until,
        },
        Op::Put {
            kind: Kind::Grant,
            key: key("quota-batch"),
            value: b"g".to_vec(),
            expires_at: until,
        },
    ];
    assert_eq!(store.apply(batch, later).await.unwrap().len(), 2);
}
