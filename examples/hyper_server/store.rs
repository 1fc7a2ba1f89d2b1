//! Where the server keeps consent-gate's records: a small [`Store`] trait with an atomic
//! `take`, and a bounded in-memory implementation.
//!
//! The trait speaks bytes under 32-byte keys, so a shared or persistent store (Redis
//! `SET … EXAT` / `GETDEL`, SQL `DELETE … RETURNING`) can replace [`MemoryStore`] without
//! touching the handlers. The records are plain serde data with a MAC (DESIGN §2): a store
//! entry edited by anyone without the server key is refused by the core, not trusted.
//! A MAC is not secrecy: a persistent store must encrypt `Kind::Grant` values at rest,
//! since a grant holds the user's upstream (GitHub) token.
//!
//! Bounded memory: every kind has a count cap and a byte cap. When a kind is full, the
//! entry that expires first goes: an expired one if there is any, otherwise the oldest
//! (entries of one kind share a lifetime, so the first to expire is the oldest). A flood
//! of `/register` or `/authorize` therefore costs the flooder its own oldest entries and
//! then other people's oldest pending pages, never the server's memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use consent_gate::{
    ClientRecord, CodeRecord, GrantRecord, PendingConsent, RefreshRecord, StoreKey,
    TransactionRecord, UnixTime,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A store key: the bytes of a [`StoreKey`] (a hash of a secret handle, never the handle).
pub type Key = [u8; 32];

/// The kinds of record, each in its own namespace with its own caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Client,
    Consent,
    Transaction,
    Code,
    Grant,
    Refresh,
    Session,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Client,
        Kind::Consent,
        Kind::Transaction,
        Kind::Code,
        Kind::Grant,
        Kind::Refresh,
        Kind::Session,
    ];

    /// (most entries, most bytes). A client record is at most ~22 KB (10 redirect URIs of
    /// 2000 bytes); the rest are well under 4 KB each.
    fn caps(self) -> (usize, usize) {
        const MIB: usize = 1024 * 1024;
        match self {
            Kind::Client => (10_000, 32 * MIB),
            Kind::Consent => (10_000, 32 * MIB),
            Kind::Transaction => (10_000, 32 * MIB),
            Kind::Code => (10_000, 32 * MIB),
            Kind::Grant => (100_000, 128 * MIB),
            Kind::Refresh => (200_000, 128 * MIB),
            Kind::Session => (100_000, 16 * MIB),
        }
    }
}

/// Storage for records. Every method is atomic with respect to the others; `take` is
/// get-and-delete in one step, which is what makes consent handles, upstream `state` and
/// authorization codes single-use even under concurrent requests (R36, R43, A7, A8).
/// Expired entries are never returned.
pub trait Store: Send + Sync {
    /// Stores `value` under `(kind, key)` until `expires_at`, replacing any previous value.
    fn put(&self, kind: Kind, key: Key, value: Vec<u8>, expires_at: UnixTime, now: UnixTime);
    /// The value, if present and unexpired.
    fn get(&self, kind: Kind, key: &Key, now: UnixTime) -> Option<Vec<u8>>;
    /// Removes and returns the value, if present and unexpired.
    fn take(&self, kind: Kind, key: &Key, now: UnixTime) -> Option<Vec<u8>>;
    /// Removes the value, if any.
    fn delete(&self, kind: Kind, key: &Key);
}

/// A consent-gate record: which namespace it lives in, its key and its expiry.
pub trait Record: Serialize + DeserializeOwned {
    const KIND: Kind;
    fn store_key(&self) -> StoreKey;
    fn expires(&self, now: UnixTime) -> UnixTime;
}

/// How long a dynamically registered client is kept (the core gives registrations no
/// expiry; a bounded store must). Clients re-register when theirs is gone.
const CLIENT_LIFETIME: u64 = 90 * 24 * 3600;

impl Record for ClientRecord {
    const KIND: Kind = Kind::Client;
    fn store_key(&self) -> StoreKey {
        self.key()
    }
    fn expires(&self, now: UnixTime) -> UnixTime {
        now.plus(CLIENT_LIFETIME)
    }
}

macro_rules! record {
    ($ty:ty, $kind:expr, |$r:ident| $key:expr) => {
        impl Record for $ty {
            const KIND: Kind = $kind;
            fn store_key(&self) -> StoreKey {
                let $r = self;
                $key
            }
            fn expires(&self, _now: UnixTime) -> UnixTime {
                self.expires_at()
            }
        }
    };
}

record!(PendingConsent, Kind::Consent, |r| *r.key());
record!(TransactionRecord, Kind::Transaction, |r| *r.key());
record!(CodeRecord, Kind::Code, |r| *r.key());
record!(GrantRecord, Kind::Grant, |r| r.key());
record!(RefreshRecord, Kind::Refresh, |r| *r.key());

/// Typed access on top of the byte-level trait.
impl dyn Store {
    pub fn put_record<R: Record>(&self, record: &R, now: UnixTime) {
        // Serializing plain data (strings, byte arrays, integers) cannot fail.
        let bytes = serde_json::to_vec(record).expect("records serialize");
        let key = *record.store_key().as_bytes();
        self.put(R::KIND, key, bytes, record.expires(now), now);
    }

    pub fn get_record<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Option<R> {
        decode(self.get(R::KIND, key.as_bytes(), now)?)
    }

    pub fn take_record<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Option<R> {
        decode(self.take(R::KIND, key.as_bytes(), now)?)
    }
}

fn decode<R: DeserializeOwned>(bytes: Vec<u8>) -> Option<R> {
    // An entry that does not even parse is treated as absent; one that parses but was
    // edited is caught by the record's MAC in the core.
    serde_json::from_slice(&bytes).ok()
}

struct Entry {
    value: Vec<u8>,
    expires_at: UnixTime,
    seq: u64,
}

/// One namespace: the entries, an index by expiry (to drop what has expired) and one by
/// insertion order (to make room when full), each finding its next entry in O(log n).
///
/// Room is made by age, not by nearest expiry: redeemed codes are kept (as replay
/// markers) longer than live codes live, so "nearest expiry first" would evict live codes
/// under load, and anyone running flows could make everyone's codes vanish.
#[derive(Default)]
struct Shelf {
    entries: HashMap<Key, Entry>,
    by_expiry: BTreeMap<(UnixTime, u64), Key>,
    by_age: BTreeMap<u64, Key>,
    bytes: usize,
}

impl Shelf {
    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.by_expiry.remove(&(e.expires_at, e.seq));
        self.by_age.remove(&e.seq);
        self.bytes -= e.value.len();
        Some(e)
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.by_age.first_key_value() {
            let key = *key;
            self.remove(&key);
        }
    }

    fn purge_expired(&mut self, now: UnixTime) {
        while let Some((&(exp, _), key)) = self.by_expiry.first_key_value() {
            if exp > now {
                break;
            }
            let key = *key;
            self.remove(&key);
        }
    }
}

/// The in-memory [`Store`]: one mutex over all namespaces (every operation is a few
/// hash-map steps, far below the cost of the request around it).
pub struct MemoryStore {
    shelves: Mutex<HashMap<Kind, Shelf>>,
    seq: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        let shelves = Kind::ALL.iter().map(|k| (*k, Shelf::default())).collect();
        Self {
            shelves: Mutex::new(shelves),
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn with<T>(&self, kind: Kind, f: impl FnOnce(&mut Shelf) -> T) -> T {
        // A panic while holding the lock cannot leave a shelf half-updated in a way that
        // matters more than losing the server: keep serving.
        let mut shelves = self.shelves.lock().unwrap_or_else(|p| p.into_inner());
        f(shelves.entry(kind).or_default())
    }
}

impl Store for MemoryStore {
    fn put(&self, kind: Kind, key: Key, value: Vec<u8>, expires_at: UnixTime, now: UnixTime) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (max_entries, max_bytes) = kind.caps();
        self.with(kind, |shelf| {
            shelf.remove(&key);
            if value.len() > max_bytes || expires_at <= now {
                return;
            }
            shelf.purge_expired(now);
            while shelf.entries.len() >= max_entries || shelf.bytes + value.len() > max_bytes {
                shelf.evict_oldest();
            }
            shelf.bytes += value.len();
            shelf.by_expiry.insert((expires_at, seq), key);
            shelf.by_age.insert(seq, key);
            shelf.entries.insert(
                key,
                Entry {
                    value,
                    expires_at,
                    seq,
                },
            );
        });
    }

    fn get(&self, kind: Kind, key: &Key, now: UnixTime) -> Option<Vec<u8>> {
        self.with(kind, |shelf| {
            let e = shelf.entries.get(key)?;
            (now < e.expires_at).then(|| e.value.clone())
        })
    }

    fn take(&self, kind: Kind, key: &Key, now: UnixTime) -> Option<Vec<u8>> {
        self.with(kind, |shelf| {
            let e = shelf.remove(key)?;
            (now < e.expires_at).then_some(e.value)
        })
    }

    fn delete(&self, kind: Kind, key: &Key) {
        self.with(kind, |shelf| {
            shelf.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    //! Run with `cargo test --example hyper_server`.
    use super::*;

    const T: UnixTime = UnixTime(1_000);

    fn k(n: u8) -> Key {
        [n; 32]
    }

    #[test]
    fn take_is_single_use_even_when_raced() {
        let store = std::sync::Arc::new(MemoryStore::new());
        store.put(Kind::Code, k(1), b"code".to_vec(), T.plus(60), T);
        let winners: usize = (0..8)
            .map(|_| {
                let s = store.clone();
                std::thread::spawn(move || s.take(Kind::Code, &k(1), T).is_some())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(winners, 1, "exactly one concurrent take may win (A8)");
        assert_eq!(store.get(Kind::Code, &k(1), T), None);
    }

    #[test]
    fn expired_entries_are_never_returned() {
        let store = MemoryStore::new();
        store.put(Kind::Transaction, k(1), b"t".to_vec(), T.plus(10), T);
        assert!(store.get(Kind::Transaction, &k(1), T.plus(9)).is_some());
        assert_eq!(store.get(Kind::Transaction, &k(1), T.plus(10)), None);
        assert_eq!(store.take(Kind::Transaction, &k(1), T.plus(10)), None);
    }

    #[test]
    fn kinds_are_separate_namespaces() {
        let store = MemoryStore::new();
        store.put(Kind::Code, k(1), b"c".to_vec(), T.plus(10), T);
        assert_eq!(store.take(Kind::Refresh, &k(1), T), None);
        assert!(store.take(Kind::Code, &k(1), T).is_some());
    }

    #[test]
    fn a_flood_evicts_expired_first_then_oldest_and_stays_bounded() {
        let store = MemoryStore::new();
        let (cap, _) = Kind::Consent.caps();
        // One entry that expires early, then a flood with a later expiry.
        store.put(Kind::Consent, k(0), b"early".to_vec(), T.plus(5), T);
        let key = |i: usize| -> Key {
            let mut b = [0xffu8; 32];
            b[..8].copy_from_slice(&(i as u64).to_be_bytes());
            b
        };
        for i in 0..cap + 10 {
            store.put(Kind::Consent, key(i), b"x".to_vec(), T.plus(600), T.plus(6));
        }
        let len = store.with(Kind::Consent, |s| (s.entries.len(), s.by_expiry.len()));
        assert_eq!(len, (cap, cap), "bounded, and the index agrees");
        assert_eq!(store.get(Kind::Consent, &k(0), T.plus(6)), None);
        // The oldest of the flood went first; the newest are there.
        assert_eq!(store.get(Kind::Consent, &key(0), T.plus(6)), None);
        assert!(store.get(Kind::Consent, &key(cap + 9), T.plus(6)).is_some());
    }

    #[test]
    fn a_full_shelf_evicts_the_oldest_not_the_soonest_to_expire() {
        // Redeemed-code markers live 600 s, live codes 60 s: a full shelf must not make
        // room by dropping a live code (found by the flows load test).
        let store = MemoryStore::new();
        let (cap, _) = Kind::Code.caps();
        let key = |i: usize| -> Key {
            let mut b = [0xeeu8; 32];
            b[..8].copy_from_slice(&(i as u64).to_be_bytes());
            b
        };
        for i in 0..cap - 1 {
            store.put(Kind::Code, key(i), b"redeemed".to_vec(), T.plus(600), T);
        }
        store.put(Kind::Code, k(7), b"live".to_vec(), T.plus(60), T);
        store.put(Kind::Code, key(cap), b"redeemed".to_vec(), T.plus(600), T);
        assert!(
            store.take(Kind::Code, &k(7), T).is_some(),
            "the live code survives"
        );
        assert_eq!(store.get(Kind::Code, &key(0), T), None, "the oldest went");
    }

    #[test]
    fn byte_cap_holds() {
        let store = MemoryStore::new();
        let (_, max_bytes) = Kind::Session.caps();
        let big = vec![0u8; max_bytes / 3];
        for i in 0..5 {
            store.put(Kind::Session, k(i), big.clone(), T.plus(60), T);
        }
        let bytes = store.with(Kind::Session, |s| s.bytes);
        assert!(bytes <= max_bytes, "{bytes} > {max_bytes}");
        assert!(store.get(Kind::Session, &k(4), T).is_some());
        assert_eq!(store.get(Kind::Session, &k(0), T), None);
    }

    #[test]
    fn replacing_a_key_keeps_the_accounting_right() {
        let store = MemoryStore::new();
        store.put(Kind::Grant, k(1), vec![0; 10], T.plus(60), T);
        store.put(Kind::Grant, k(1), vec![0; 20], T.plus(90), T);
        let (n, idx, bytes) = store.with(Kind::Grant, |s| {
            (s.entries.len(), s.by_expiry.len(), s.bytes)
        });
        assert_eq!((n, idx, bytes), (1, 1, 20));
        store.delete(Kind::Grant, &k(1));
        assert_eq!(store.with(Kind::Grant, |s| s.bytes), 0);
    }
}
