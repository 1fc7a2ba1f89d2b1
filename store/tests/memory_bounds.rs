//! The memory backend's bounds (R64): per-kind limits, expired entries evicted before
//! live ones, the oldest live one next, never an entry of another kind, and with
//! `OnFull::Refuse` nothing evicted at all; a batch that hits a limit leaves no trace.
#![cfg(feature = "memory")]

use consent_gate_store::{
    Kind, MemoryLimits, MemoryStore, OnFull, Op, Store, StoreError, UnixTime,
};

const NOW: UnixTime = UnixTime::from_secs(1_900_000_000);
const LATER: UnixTime = UnixTime::from_secs(1_900_003_600);

fn key(n: u32) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&n.to_be_bytes());
    key
}

fn limits(max_entries: usize, max_bytes: usize, on_full: OnFull) -> MemoryLimits {
    MemoryLimits {
        max_entries,
        max_bytes,
        on_full,
    }
}

async fn live(store: &MemoryStore, kind: Kind, n: u32) -> bool {
    store.get(kind, key(n), NOW).await.unwrap().is_some()
}

#[tokio::test]
async fn a_full_kind_evicts_expired_entries_before_the_oldest_live_one() {
    let store = MemoryStore::with_default_limits(limits(3, 1 << 20, OnFull::EvictOldest));
    store
        .put(Kind::Consent, key(1), b"oldest, live".to_vec(), LATER, NOW)
        .await
        .unwrap();
    store
        .put(
            Kind::Consent,
            key(2),
            b"expires soon".to_vec(),
            NOW.plus(5),
            NOW,
        )
        .await
        .unwrap();
    store
        .put(Kind::Consent, key(3), b"live".to_vec(), LATER, NOW)
        .await
        .unwrap();

    // At NOW+5 entry 2 has expired: it goes, the older live entry 1 stays.
    let later_now = NOW.plus(5);
    store
        .put(
            Kind::Consent,
            key(4),
            b"newcomer".to_vec(),
            LATER,
            later_now,
        )
        .await
        .unwrap();
    assert!(
        live(&store, Kind::Consent, 1).await,
        "a live entry is not evicted while an expired one remains"
    );
    assert!(!live(&store, Kind::Consent, 2).await);
    assert_eq!(store.len(Kind::Consent), 3);

    // Nothing expired now: the oldest live entry (1) makes room.
    store
        .put(Kind::Consent, key(5), b"another".to_vec(), LATER, later_now)
        .await
        .unwrap();
    assert!(
        !live(&store, Kind::Consent, 1).await,
        "then the oldest goes"
    );
    for n in [3, 4, 5] {
        assert!(live(&store, Kind::Consent, n).await, "{n}");
    }
}

#[tokio::test]
async fn a_flood_of_one_kind_never_evicts_another_kind() {
    let store = MemoryStore::with_default_limits(limits(100, 1 << 20, OnFull::EvictOldest));
    store
        .put(
            Kind::Client,
            key(0),
            b"registered client".to_vec(),
            LATER,
            NOW,
        )
        .await
        .unwrap();
    store
        .put(Kind::Grant, key(0), b"its grant".to_vec(), LATER, NOW)
        .await
        .unwrap();
    for n in 1..=10_000 {
        store
            .put(Kind::Consent, key(n), vec![b'x'; 64], LATER, NOW)
            .await
            .unwrap();
    }
    assert_eq!(
        store.len(Kind::Consent),
        100,
        "the flooded kind stays bounded"
    );
    assert!(
        live(&store, Kind::Client, 0).await,
        "the client survives a consent flood"
    );
    assert!(
        live(&store, Kind::Grant, 0).await,
        "the grant survives a consent flood"
    );
}

#[tokio::test]
async fn the_byte_limit_binds_like_the_count() {
    // 32-byte key + 100-byte value = 132 bytes an entry; 400 bytes hold three.
    let store = MemoryStore::new().limit(Kind::Grant, limits(1_000, 400, OnFull::EvictOldest));
    for n in 1..=4 {
        store
            .put(Kind::Grant, key(n), vec![0; 100], LATER, NOW)
            .await
            .unwrap();
    }
    assert_eq!(store.len(Kind::Grant), 3);
    assert!(!live(&store, Kind::Grant, 1).await);
    let refused = store
        .put(Kind::Grant, key(9), vec![0; 369], LATER, NOW)
        .await;
    assert!(
        matches!(refused, Err(StoreError::TooLarge { limit: 400, .. })),
        "{refused:?}"
    );
    assert_eq!(
        store.len(Kind::Grant),
        3,
        "a value that can never fit evicts nothing"
    );
}

#[tokio::test]
async fn refuse_never_evicts_and_fails_the_newcomer() {
    let store = MemoryStore::new().limit(Kind::Client, limits(2, 1 << 20, OnFull::Refuse));
    store
        .put(Kind::Client, key(1), b"a".to_vec(), LATER, NOW)
        .await
        .unwrap();
    store
        .put(Kind::Client, key(2), b"b".to_vec(), NOW.plus(5), NOW)
        .await
        .unwrap();
    let refused = store
        .put(Kind::Client, key(3), b"flood".to_vec(), LATER, NOW)
        .await;
    assert!(
        matches!(refused, Err(StoreError::QuotaExceeded(Kind::Client))),
        "{refused:?}"
    );
    assert!(live(&store, Kind::Client, 1).await && live(&store, Kind::Client, 2).await);
    // Replacing an existing entry needs no room.
    store
        .put(Kind::Client, key(1), b"a2".to_vec(), LATER, NOW)
        .await
        .unwrap();
    // Expired entries still make room: they are gone already as far as anyone can see.
    store
        .put(Kind::Client, key(3), b"c".to_vec(), LATER, NOW.plus(5))
        .await
        .unwrap();
    assert_eq!(store.len(Kind::Client), 2);
    assert_eq!(
        store.limits(Kind::Grant),
        MemoryLimits::default(),
        "other kinds keep the defaults"
    );
}

#[tokio::test]
async fn a_batch_that_hits_a_quota_leaves_no_trace() {
    let store = MemoryStore::new()
        .limit(Kind::Client, limits(1, 1 << 20, OnFull::Refuse))
        .limit(Kind::Consent, limits(1, 1 << 20, OnFull::EvictOldest));
    store
        .put(Kind::Client, key(1), b"client".to_vec(), LATER, NOW)
        .await
        .unwrap();
    store
        .put(Kind::Consent, key(1), b"consent".to_vec(), LATER, NOW)
        .await
        .unwrap();
    store
        .put(Kind::Code, key(1), b"code".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let ops = vec![
        Op::Take {
            kind: Kind::Code,
            key: key(1),
        },
        // Evicts consent 1 (EvictOldest), then is undone with the rest.
        Op::Put {
            kind: Kind::Consent,
            key: key(2),
            value: b"evicting".to_vec(),
            expires_at: LATER,
        },
        Op::Put {
            kind: Kind::Client,
            key: key(1),
            value: b"replaced".to_vec(),
            expires_at: LATER,
        },
        Op::Put {
            kind: Kind::Client,
            key: key(2),
            value: b"refused".to_vec(),
            expires_at: LATER,
        },
    ];
    let refused = store.apply(ops, NOW).await;
    assert!(
        matches!(refused, Err(StoreError::QuotaExceeded(Kind::Client))),
        "{refused:?}"
    );
    assert_eq!(
        store.get(Kind::Code, key(1), NOW).await.unwrap().as_deref(),
        Some(&b"code"[..])
    );
    assert_eq!(
        store
            .get(Kind::Consent, key(1), NOW)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"consent"[..])
    );
    assert_eq!(store.get(Kind::Consent, key(2), NOW).await.unwrap(), None);
    assert_eq!(
        store
            .get(Kind::Client, key(1), NOW)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"client"[..])
    );
    assert_eq!(
        (
            store.len(Kind::Client),
            store.len(Kind::Consent),
            store.len(Kind::Code)
        ),
        (1, 1, 1)
    );

    // The restored entries keep their age: consent 1 is still the oldest, and goes first.
    store
        .put(Kind::Consent, key(3), b"next".to_vec(), LATER, NOW)
        .await
        .unwrap();
    assert_eq!(store.get(Kind::Consent, key(1), NOW).await.unwrap(), None);
}

#[tokio::test]
async fn sweep_empties_expired_entries_of_every_kind() {
    let store = MemoryStore::new();
    for (n, kind) in Kind::CORE.into_iter().enumerate() {
        store
            .put(kind, key(n as u32), b"short".to_vec(), NOW.plus(1), NOW)
            .await
            .unwrap();
        store
            .put(kind, key(100 + n as u32), b"long".to_vec(), LATER, NOW)
            .await
            .unwrap();
    }
    assert_eq!(store.sweep(NOW.plus(1)).await.unwrap(), 6);
    assert!(Kind::CORE.into_iter().all(|kind| store.len(kind) == 1));
    assert_eq!(store.sweep(NOW.plus(1)).await.unwrap(), 0);
    assert!(store.is_empty(Kind::Other("unused")));
}
