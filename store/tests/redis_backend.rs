//! What only the Redis backend has: its key layout, refusal of entries it did not write
//! (before any write of the batch), and errors rather than hangs or panics when the
//! server is unreachable.
#![cfg(feature = "redis")]

mod suite;

use std::time::{Duration, Instant};

use consent_gate_store::{Kind, Op, Quotas, RedisOptions, RedisStore, Store, StoreError};
use suite::{LATER, NOW, key, redis_url, say};

async fn store(prefix: &str) -> Option<(RedisStore, redis::aio::MultiplexedConnection)> {
    store_with(prefix, Quotas::none()).await
}

/// A store with `quotas`, and a raw connection to its server.
async fn store_with(
    prefix: &str,
    quotas: Quotas,
) -> Option<(RedisStore, redis::aio::MultiplexedConnection)> {
    let url = redis_url()?;
    let options = RedisOptions {
        prefix: format!("{prefix}-{}", std::process::id()),
        quotas,
        ..Default::default()
    };
    let store = RedisStore::connect(&url, options).await.unwrap();
    let raw = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Some((store, raw))
}

#[tokio::test]
async fn keys_are_prefix_kind_and_hex_and_carry_a_ttl() {
    let Some((store, mut raw)) = store("cg-layout").await else {
        return;
    };
    let k = key("layout");
    store
        .put(Kind::Grant, k, b"grant".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let name = store.redis_key(Kind::Grant, &k);
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        name,
        format!("cg-layout-{}:grant:{hex}", std::process::id())
    );
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        (3_590_000..=3_600_000).contains(&ttl_ms),
        "TTL is expires_at - now: {ttl_ms} ms"
    );
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&name)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        &stored[..8],
        &LATER.secs().to_be_bytes(),
        "the expiry leads the value"
    );
    assert_eq!(&stored[8..], b"grant");

    // put_if_absent's TTL too, and another prefix is another deployment.
    assert!(
        store
            .put_if_absent(Kind::Refresh, k, b"r".to_vec(), NOW.plus(60), NOW)
            .await
            .unwrap()
    );
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(store.redis_key(Kind::Refresh, &k))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((59_000..=60_000).contains(&ttl_ms), "{ttl_ms}");
    let (other, _) = self::store("cg-other").await.unwrap();
    assert_eq!(other.get(Kind::Grant, k, NOW).await.unwrap(), None);
}

#[tokio::test]
async fn a_foreign_entry_fails_the_batch_before_any_write() {
    let Some((store, mut raw)) = store("cg-foreign").await else {
        return;
    };
    let (code, foreign) = (key("foreign-code"), key("foreign"));
    store
        .put(Kind::Code, code, b"code".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(store.redis_key(Kind::Grant, &foreign))
        .arg("short")
        .query_async(&mut raw)
        .await
        .unwrap();

    let ops = vec![
        Op::Take {
            kind: Kind::Code,
            key: code,
        },
        Op::Get {
            kind: Kind::Grant,
            key: foreign,
        },
    ];
    let refused = store.apply(ops, NOW).await;
    assert!(matches!(refused, Err(StoreError::Redis(_))), "{refused:?}");
    assert!(
        store.get(Kind::Code, code, NOW).await.unwrap().is_some(),
        "the take did not happen"
    );
    let refused = store.get(Kind::Grant, foreign, NOW).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(Kind::Grant))),
        "{refused:?}"
    );

    // A lone take of a kind with a quota (its own script) refuses it too, and leaves it.
    let quotas = Quotas::none().limit(Kind::Grant, 10);
    let (quoted, _) = store_with("cg-foreign", quotas).await.unwrap();
    let name = store.redis_key(Kind::Grant, &foreign);
    let mut left = async || -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(&name)
            .query_async(&mut raw)
            .await
            .unwrap()
    };
    let refused = quoted.take(Kind::Grant, foreign, NOW).await;
    assert!(matches!(refused, Err(StoreError::Redis(_))), "{refused:?}");
    assert_eq!(
        left().await.as_deref(),
        Some(&b"short"[..]),
        "the take did not happen"
    );
    // So does a lone put or put-if-absent of that kind (their own script too).
    let refused = quoted.put(Kind::Grant, foreign, b"g".to_vec(), LATER, NOW);
    assert!(matches!(refused.await, Err(StoreError::Redis(_))));
    let refused = quoted.put_if_absent(Kind::Grant, foreign, b"g".to_vec(), LATER, NOW);
    assert!(matches!(refused.await, Err(StoreError::Redis(_))));
    assert_eq!(
        left().await.as_deref(),
        Some(&b"short"[..]),
        "nothing was written"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_hang() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let started = Instant::now();
    let options = RedisOptions {
        connection_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let refused = RedisStore::connect("redis://127.0.0.1:1/", options).await;
    assert!(matches!(refused, Err(StoreError::Redis(_))), "{refused:?}");
    say(&format!(
        "redis: unreachable server reported in {:?}",
        started.elapsed()
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A lone take and a lone put of a kind with a quota run their own small scripts (what
/// redis-server spends per flow), not the batch script: after `SCRIPT FLUSH`, those two
/// calls and a batch leave three scripts cached, the backend's three (other tests of this
/// binary may load them meanwhile, but no other).
#[tokio::test]
async fn lone_takes_and_puts_of_a_kind_with_a_quota_have_their_own_scripts() {
    let quotas = Quotas::none().limit(Kind::Code, 10);
    let Some((store, mut raw)) = store_with("cg-scripts", quotas).await else {
        return;
    };
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let code = key("scripts");
    store
        .put(Kind::Code, code, b"code".to_vec(), LATER, NOW)
        .await
        .unwrap();
    let taken = store.take(Kind::Code, code, NOW).await.unwrap();
    assert_eq!(taken.as_deref(), Some(&b"code"[..]));
    let gets = [code, key("other")].map(|key| Op::Get {
        kind: Kind::Code,
        key,
    });
    assert_eq!(store.apply(gets.to_vec(), NOW).await.unwrap().len(), 2);
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut raw)
        .await
        .unwrap();
    let cached = info
        .lines()
        .find_map(|l| l.strip_prefix("number_of_cached_scripts:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .expect("INFO memory has number_of_cached_scripts (Redis 7)");
    assert_eq!(cached, 3, "scripts cached");
}
