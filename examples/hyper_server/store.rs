//! Where the server keeps consent-gate's records: a small [`Store`] trait with an atomic
//! `take`, and a bounded in-memory implementation.
//!
//! Values are [`Stored`]: either a record as the core made it (what [`MemoryStore`]
//! keeps: no encoding, no parsing, a shared pointer handed out on `get`), or its encoded
//! bytes. A shared or persistent store (Redis `SET … EXAT` / `GETDEL`, SQL
//! `DELETE … RETURNING`) replaces [`MemoryStore`] without touching the handlers: its `put`
//! writes [`Stored::encode`] (plain serde JSON) under the 32-byte key, its `get` and
//! `take` hand back [`Stored::Encoded`], and the typed accessors decode that on use.
//! The records are plain serde data with a MAC (docs/design.md#records): a store entry edited by
//! anyone without the server key is refused by the core, not trusted. A MAC is not
//! secrecy: a persistent store must encrypt `Kind::Grant` values at rest, since a grant
//! holds the user's upstream (GitHub) token.
//!
//! Bounded memory: every kind has a count cap and a byte cap (bytes as [`Stored::weight`]
//! counts them: the encoded length, or for a record in memory its size and the bytes of
//! its fields).
//! When a kind is full, expired entries go first, then the oldest. A flood of
//! `/register` or `/authorize` therefore costs the flooder its own oldest entries and then
//! other people's oldest pending pages, never the server's memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use consent_gate::{
    ClientRecord, CodeRecord, GrantRecord, PendingConsent, RefreshRecord, StoreKey,
    TransactionRecord, UnixTime,
};
use hyper::body::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
    const COUNT: usize = 7;

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

    fn index(self) -> usize {
        self as usize
    }
}

/// A stored value: a record as the core made it, or (from a byte store) its encoding.
#[derive(Clone)]
pub enum Stored {
    /// Bytes from a persistent store: [`Stored::encode`] of a record, decoded on use.
    /// ([`MemoryStore`] never makes one; the store tests do, as a byte store would.)
    #[cfg_attr(not(test), allow(dead_code))]
    Encoded(Bytes),
    Client(Arc<ClientRecord>),
    Consent(Arc<PendingConsent>),
    Transaction(Arc<TransactionRecord>),
    Code(Arc<CodeRecord>),
    Grant(Arc<GrantRecord>),
    Refresh(Arc<RefreshRecord>),
    /// An MCP session: the grant whose token opened it.
    Session(StoreKey),
}

/// How a session is encoded for a byte store.
#[derive(Serialize, Deserialize)]
struct SessionDoc {
    grant: StoreKey,
}

impl Stored {
    /// The bytes a persistent store keeps (serde JSON, as the records define it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data (strings, byte arrays, integers) cannot fail.
        let json = match self {
            Stored::Encoded(b) => Ok(b.to_vec()),
            Stored::Client(r) => serde_json::to_vec(&**r),
            Stored::Consent(r) => serde_json::to_vec(&**r),
            Stored::Transaction(r) => serde_json::to_vec(&**r),
            Stored::Code(r) => serde_json::to_vec(&**r),
            Stored::Grant(r) => serde_json::to_vec(&**r),
            Stored::Refresh(r) => serde_json::to_vec(&**r),
            Stored::Session(grant) => serde_json::to_vec(&SessionDoc { grant: *grant }),
        };
        json.expect("records serialize")
    }

    /// What the value counts against its kind's byte cap: the encoded length, or for a
    /// record in memory its size plus the bytes of its fields (strings, byte arrays, 8
    /// per number), close to what it occupies.
    pub fn weight(&self) -> usize {
        fn typed<R: Serialize>(r: &R) -> usize {
            std::mem::size_of::<R>() + weigh::weight(r)
        }
        match self {
            Stored::Encoded(b) => b.len(),
            Stored::Client(r) => typed(&**r),
            Stored::Consent(r) => typed(&**r),
            Stored::Transaction(r) => typed(&**r),
            Stored::Code(r) => typed(&**r),
            Stored::Grant(r) => typed(&**r),
            Stored::Refresh(r) => typed(&**r),
            Stored::Session(_) => 32,
        }
    }

    /// The grant of a stored MCP session.
    pub fn session_grant(self) -> Option<StoreKey> {
        match self {
            Stored::Session(grant) => Some(grant),
            Stored::Encoded(b) => serde_json::from_slice::<SessionDoc>(&b)
                .ok()
                .map(|s| s.grant),
            _ => None,
        }
    }
}

/// Storage for records. Every method is atomic with respect to the others; `take` is
/// get-and-delete in one step, which is what makes consent handles, upstream `state` and
/// authorization codes single-use even under concurrent requests (R36, R43, A7, A8).
/// Expired entries are never returned.
pub trait Store: Send + Sync {
    /// Stores `value` under `(kind, key)` until `expires_at`, replacing any previous value.
    fn put(&self, kind: Kind, key: Key, value: Stored, expires_at: UnixTime, now: UnixTime);
    /// Stores `value` only if no unexpired value is under `(kind, key)`; returns whether it
    /// did. A rotated refresh token's successor is written this way, so a slow concurrent
    /// refresh never overwrites a successor rotated since (R63, A22).
    fn put_if_absent(
        &self,
        kind: Kind,
        key: Key,
        value: Stored,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> bool;
    /// The value, if present and unexpired.
    fn get(&self, kind: Kind, key: &Key, now: UnixTime) -> Option<Stored>;
    /// Removes and returns the value, if present and unexpired.
    fn take(&self, kind: Kind, key: &Key, now: UnixTime) -> Option<Stored>;
    /// Removes the value, if any.
    fn delete(&self, kind: Kind, key: &Key);
}

/// A consent-gate record: which namespace it lives in, its key and its expiry.
pub trait Record: Serialize + DeserializeOwned + Clone {
    const KIND: Kind;
    fn store_key(&self) -> StoreKey;
    fn expires(&self, now: UnixTime) -> UnixTime;
    fn wrap(record: Arc<Self>) -> Stored;
    /// The record in `value`: this kind's variant, or decoded from bytes. An entry that
    /// does not even parse is treated as absent; one that parses but was edited is caught
    /// by the record's MAC in the core.
    fn unwrap(value: Stored) -> Option<Arc<Self>>;
}

/// How long a dynamically registered client is kept (the core gives registrations no
/// expiry; a bounded store must). Clients re-register when theirs is gone.
const CLIENT_LIFETIME: u64 = 90 * 24 * 3600;

macro_rules! record {
    ($ty:ty, $kind:ident, |$r:ident| $key:expr, |$s:ident, $now:ident| $expires:expr) => {
        impl Record for $ty {
            const KIND: Kind = Kind::$kind;
            fn store_key(&self) -> StoreKey {
                let $r = self;
                $key
            }
            fn expires(&self, $now: UnixTime) -> UnixTime {
                let $s = self;
                $expires
            }
            fn wrap(record: Arc<Self>) -> Stored {
                Stored::$kind(record)
            }
            fn unwrap(value: Stored) -> Option<Arc<Self>> {
                match value {
                    Stored::$kind(r) => Some(r),
                    Stored::Encoded(b) => serde_json::from_slice(&b).ok().map(Arc::new),
                    _ => None,
                }
            }
        }
    };
}

record!(ClientRecord, Client, |r| r.key(), |_s, now| now
    .plus(CLIENT_LIFETIME));
record!(PendingConsent, Consent, |r| *r.key(), |s, _now| s
    .expires_at());
record!(TransactionRecord, Transaction, |r| *r.key(), |s, _now| s
    .expires_at());
record!(CodeRecord, Code, |r| *r.key(), |s, _now| s.expires_at());
record!(GrantRecord, Grant, |r| r.key(), |s, _now| s.expires_at());
record!(RefreshRecord, Refresh, |r| *r.key(), |s, _now| s
    .expires_at());

/// Typed access on top of the value-level trait.
impl dyn Store {
    pub fn put_record<R: Record>(&self, record: R, now: UnixTime) {
        let key = *record.store_key().as_bytes();
        let expires = record.expires(now);
        self.put(R::KIND, key, R::wrap(Arc::new(record)), expires, now);
    }

    /// [`Store::put_if_absent`] for a record.
    pub fn put_record_if_absent<R: Record>(&self, record: R, now: UnixTime) -> bool {
        let key = *record.store_key().as_bytes();
        let expires = record.expires(now);
        self.put_if_absent(R::KIND, key, R::wrap(Arc::new(record)), expires, now)
    }

    /// A shared reference to the record (nothing is copied).
    pub fn get_record<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Option<Arc<R>> {
        R::unwrap(self.get(R::KIND, key.as_bytes(), now)?)
    }

    /// The record, removed from the store.
    pub fn take_record<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Option<R> {
        let shared = R::unwrap(self.take(R::KIND, key.as_bytes(), now)?)?;
        // Taken means removed, so this is normally the only reference; a concurrent
        // `get` of the same entry may still hold one, and then the record is copied.
        Some(Arc::try_unwrap(shared).unwrap_or_else(|r| (*r).clone()))
    }
}

/// The in-memory size of a record as its fields add up: a serde serializer that only
/// counts (string and byte lengths, 8 per number), so that a typed record is weighed
/// without being encoded.
mod weigh {
    use serde::ser::{self, Serialize};

    pub fn weight<T: Serialize + ?Sized>(value: &T) -> usize {
        let mut w = Weigher(0);
        // The weigher never fails.
        let _ = value.serialize(&mut w);
        w.0
    }

    struct Weigher(usize);

    #[derive(Debug)]
    pub struct Never;
    impl std::fmt::Display for Never {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("weighing failed")
        }
    }
    impl std::error::Error for Never {}
    impl ser::Error for Never {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Never
        }
    }

    macro_rules! scalars {
        ($($method:ident: $ty:ty => $size:expr),* $(,)?) => {
            $(fn $method(self, _v: $ty) -> Result<(), Never> {
                self.0 += $size;
                Ok(())
            })*
        };
    }

    macro_rules! compound {
        ($($trait:ident :: $method:ident $(($key:ident))?),* $(,)?) => {
            $(impl ser::$trait for &mut Weigher {
                type Ok = ();
                type Error = Never;
                fn $method<T: Serialize + ?Sized>(
                    &mut self,
                    $($key: &'static str,)?
                    value: &T,
                ) -> Result<(), Never> {
                    value.serialize(&mut **self)
                }
                fn end(self) -> Result<(), Never> {
                    Ok(())
                }
            })*
        };
    }

    compound!(
        SerializeSeq::serialize_element,
        SerializeTuple::serialize_element,
        SerializeTupleStruct::serialize_field,
        SerializeTupleVariant::serialize_field,
        SerializeStruct::serialize_field(_key),
        SerializeStructVariant::serialize_field(_key),
    );

    impl ser::SerializeMap for &mut Weigher {
        type Ok = ();
        type Error = Never;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
            key.serialize(&mut **self)
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
            value.serialize(&mut **self)
        }
        fn end(self) -> Result<(), Never> {
            Ok(())
        }
    }

    impl ser::Serializer for &mut Weigher {
        type Ok = ();
        type Error = Never;
        type SerializeSeq = Self;
        type SerializeTuple = Self;
        type SerializeTupleStruct = Self;
        type SerializeTupleVariant = Self;
        type SerializeMap = Self;
        type SerializeStruct = Self;
        type SerializeStructVariant = Self;

        scalars!(
            serialize_bool: bool => 1,
            serialize_i8: i8 => 8,
            serialize_i16: i16 => 8,
            serialize_i32: i32 => 8,
            serialize_i64: i64 => 8,
            serialize_u8: u8 => 1,
            serialize_u16: u16 => 8,
            serialize_u32: u32 => 8,
            serialize_u64: u64 => 8,
            serialize_f32: f32 => 8,
            serialize_f64: f64 => 8,
            serialize_char: char => 4,
        );
        fn serialize_str(self, v: &str) -> Result<(), Never> {
            self.0 += v.len();
            Ok(())
        }
        fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
            self.0 += v.len();
            Ok(())
        }
        fn serialize_none(self) -> Result<(), Never> {
            self.0 += 1;
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
            value.serialize(self)
        }
        fn serialize_unit(self) -> Result<(), Never> {
            Ok(())
        }
        fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Never> {
            Ok(())
        }
        fn serialize_unit_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
        ) -> Result<(), Never> {
            self.0 += 1;
            Ok(())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<(), Never> {
            value.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            value: &T,
        ) -> Result<(), Never> {
            self.0 += 1;
            value.serialize(self)
        }
        fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Never> {
            Ok(self)
        }
        fn serialize_tuple(self, _len: usize) -> Result<Self, Never> {
            Ok(self)
        }
        fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Never> {
            Ok(self)
        }
        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self, Never> {
            self.0 += 1;
            Ok(self)
        }
        fn serialize_map(self, _len: Option<usize>) -> Result<Self, Never> {
            Ok(self)
        }
        fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Never> {
            Ok(self)
        }
        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self, Never> {
            self.0 += 1;
            Ok(self)
        }
    }
}

struct Entry {
    value: Stored,
    weight: usize,
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
    entries: HashMap<Key, Entry, std::hash::BuildHasherDefault<KeyHasher>>,
    by_expiry: BTreeMap<(UnixTime, u64), Key>,
    by_age: BTreeMap<u64, Key>,
    bytes: usize,
}

/// Hashes a [`Key`] by its first eight bytes. Safe without a random seed because every
/// stored key is a SHA-256 output over a handle or id the server drew at random: nobody
/// can choose keys that collide, so there is no hash flooding to defend against.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // The key's bytes (a length prefix may come first through `write_usize`).
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }

    fn write_usize(&mut self, _len: usize) {}
}

impl Shelf {
    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.by_expiry.remove(&(e.expires_at, e.seq));
        self.by_age.remove(&e.seq);
        self.bytes -= e.weight;
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
/// map steps, far below the cost of the request around it). Records stay as the core
/// made them: `get` hands out a shared pointer, `take` the record itself.
pub struct MemoryStore {
    shelves: Mutex<[Shelf; Kind::COUNT]>,
    seq: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            shelves: Mutex::new(Default::default()),
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn with<T>(&self, kind: Kind, f: impl FnOnce(&mut Shelf) -> T) -> T {
        // A panic while holding the lock cannot leave a shelf half-updated in a way that
        // matters more than losing the server: keep serving.
        let mut shelves = self.shelves.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut shelves[kind.index()])
    }
}

impl Store for MemoryStore {
    fn put(&self, kind: Kind, key: Key, value: Stored, expires_at: UnixTime, now: UnixTime) {
        self.write(kind, key, value, expires_at, now, false);
    }

    fn put_if_absent(
        &self,
        kind: Kind,
        key: Key,
        value: Stored,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> bool {
        self.write(kind, key, value, expires_at, now, true)
    }

    fn get(&self, kind: Kind, key: &Key, now: UnixTime) -> Option<Stored> {
        self.with(kind, |shelf| {
            let e = shelf.entries.get(key)?;
            (now < e.expires_at).then(|| e.value.clone())
        })
    }

    fn take(&self, kind: Kind, key: &Key, now: UnixTime) -> Option<Stored> {
        let e = self.with(kind, |shelf| shelf.remove(key))?;
        (now < e.expires_at).then_some(e.value)
    }

    fn delete(&self, kind: Kind, key: &Key) {
        self.with(kind, |shelf| {
            shelf.remove(key);
        });
    }
}

impl MemoryStore {
    /// `put`, or with `only_if_absent` `put_if_absent`, under one lock: the check and the
    /// write are one step.
    fn write(
        &self,
        kind: Kind,
        key: Key,
        value: Stored,
        expires_at: UnixTime,
        now: UnixTime,
        only_if_absent: bool,
    ) -> bool {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (max_entries, max_bytes) = kind.caps();
        let weight = value.weight();
        self.with(kind, |shelf| {
            if only_if_absent && shelf.entries.get(&key).is_some_and(|e| now < e.expires_at) {
                return false;
            }
            shelf.remove(&key);
            if weight > max_bytes || expires_at <= now {
                return false;
            }
            shelf.purge_expired(now);
            while shelf.entries.len() >= max_entries || shelf.bytes + weight > max_bytes {
                shelf.evict_oldest();
            }
            shelf.bytes += weight;
            shelf.by_expiry.insert((expires_at, seq), key);
            shelf.by_age.insert(seq, key);
            shelf.entries.insert(
                key,
                Entry {
                    value,
                    weight,
                    expires_at,
                    seq,
                },
            );
            true
        })
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

    fn v(bytes: &[u8]) -> Stored {
        Stored::Encoded(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn put_if_absent_never_overwrites_a_live_entry_a22() {
        let store = std::sync::Arc::new(MemoryStore::new());
        assert!(store.put_if_absent(Kind::Refresh, k(1), v(b"first"), T.plus(60), T));
        assert!(!store.put_if_absent(Kind::Refresh, k(1), v(b"second"), T.plus(60), T));
        assert!(
            matches!(store.get(Kind::Refresh, &k(1), T), Some(Stored::Encoded(b)) if &b[..] == b"first")
        );
        // An expired entry counts as absent.
        assert!(store.put_if_absent(Kind::Refresh, k(1), v(b"third"), T.plus(200), T.plus(60)));
        // Raced: exactly one writer wins.
        let winners: usize = (0..8u8)
            .map(|i| {
                let s = store.clone();
                std::thread::spawn(move || {
                    s.put_if_absent(Kind::Refresh, k(2), v(&[i]), T.plus(60), T)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(winners, 1);
    }

    #[test]
    fn take_is_single_use_even_when_raced() {
        let store = std::sync::Arc::new(MemoryStore::new());
        store.put(Kind::Code, k(1), v(b"code"), T.plus(60), T);
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
        assert!(store.get(Kind::Code, &k(1), T).is_none());
    }

    #[test]
    fn expired_entries_are_never_returned() {
        let store = MemoryStore::new();
        store.put(Kind::Transaction, k(1), v(b"t"), T.plus(10), T);
        assert!(store.get(Kind::Transaction, &k(1), T.plus(9)).is_some());
        assert!(store.get(Kind::Transaction, &k(1), T.plus(10)).is_none());
        assert!(store.take(Kind::Transaction, &k(1), T.plus(10)).is_none());
    }

    #[test]
    fn kinds_are_separate_namespaces() {
        let store = MemoryStore::new();
        store.put(Kind::Code, k(1), v(b"c"), T.plus(10), T);
        assert!(store.take(Kind::Refresh, &k(1), T).is_none());
        assert!(store.take(Kind::Code, &k(1), T).is_some());
    }

    #[test]
    fn a_flood_evicts_expired_first_then_oldest_and_stays_bounded() {
        let store = MemoryStore::new();
        let (cap, _) = Kind::Consent.caps();
        // One entry that expires early, then a flood with a later expiry.
        store.put(Kind::Consent, k(0), v(b"early"), T.plus(5), T);
        let key = |i: usize| -> Key {
            let mut b = [0xffu8; 32];
            b[..8].copy_from_slice(&(i as u64).to_be_bytes());
            b
        };
        for i in 0..cap + 10 {
            store.put(Kind::Consent, key(i), v(b"x"), T.plus(600), T.plus(6));
        }
        let len = store.with(Kind::Consent, |s| (s.entries.len(), s.by_expiry.len()));
        assert_eq!(len, (cap, cap), "bounded, and the index agrees");
        assert!(store.get(Kind::Consent, &k(0), T.plus(6)).is_none());
        // The oldest of the flood went first; the newest are there.
        assert!(store.get(Kind::Consent, &key(0), T.plus(6)).is_none());
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
            store.put(Kind::Code, key(i), v(b"redeemed"), T.plus(600), T);
        }
        store.put(Kind::Code, k(7), v(b"live"), T.plus(60), T);
        store.put(Kind::Code, key(cap), v(b"redeemed"), T.plus(600), T);
        assert!(
            store.take(Kind::Code, &k(7), T).is_some(),
            "the live code survives"
        );
        assert!(
            store.get(Kind::Code, &key(0), T).is_none(),
            "the oldest went"
        );
    }

    #[test]
    fn byte_cap_holds() {
        let store = MemoryStore::new();
        let (_, max_bytes) = Kind::Session.caps();
        let big = vec![0u8; max_bytes / 3];
        for i in 0..5 {
            store.put(Kind::Session, k(i), v(&big), T.plus(60), T);
        }
        let bytes = store.with(Kind::Session, |s| s.bytes);
        assert!(bytes <= max_bytes, "{bytes} > {max_bytes}");
        assert!(store.get(Kind::Session, &k(4), T).is_some());
        assert!(store.get(Kind::Session, &k(0), T).is_none());
    }

    #[test]
    fn replacing_a_key_keeps_the_accounting_right() {
        let store = MemoryStore::new();
        store.put(Kind::Grant, k(1), v(&[0; 10]), T.plus(60), T);
        store.put(Kind::Grant, k(1), v(&[0; 20]), T.plus(90), T);
        let (n, idx, bytes) = store.with(Kind::Grant, |s| {
            (s.entries.len(), s.by_expiry.len(), s.bytes)
        });
        assert_eq!((n, idx, bytes), (1, 1, 20));
        store.delete(Kind::Grant, &k(1));
        assert_eq!(store.with(Kind::Grant, |s| s.bytes), 0);
    }

    fn client() -> ClientRecord {
        use consent_gate::{ClientSecret, Config, Gate, Keys, ServerKey, UpstreamConfig};
        let base = "http://127.0.0.1:1";
        let upstream = UpstreamConfig::custom(
            "Demo",
            format!("{base}/up/authorize"),
            format!("{base}/up/token"),
            format!("{base}/up/user"),
            "id",
            ClientSecret::new("secret"),
        );
        let keys = Keys::new(ServerKey::new(&[7; 32]).expect("32 bytes"));
        let config = Config::builder(base, format!("{base}/mcp"), upstream, keys)
            .dev_loopback_http(true)
            .build()
            .expect("a valid config");
        let body = br#"{"redirect_uris":["http://127.0.0.1:9/cb"],"client_name":"c"}"#;
        let mut n = 0u8;
        Gate::new(config)
            .register(body, T, &mut |b: &mut [u8]| {
                b.fill_with(|| {
                    n = n.wrapping_add(1);
                    n
                })
            })
            .expect("a valid registration")
            .record
    }

    #[test]
    fn records_stay_typed_in_memory_and_decode_from_bytes() {
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
        let record = client();
        let key = record.key();
        store.put_record(record.clone(), T);
        let got: Arc<ClientRecord> = store.get_record(&key, T).expect("stored");
        assert_eq!(*got, record);
        assert!(matches!(
            store.get(Kind::Client, key.as_bytes(), T),
            Some(Stored::Client(_))
        ));
        // What a persistent store would hand back: the encoding, decoded on use.
        let encoded = Stored::Client(got.clone()).encode();
        let weight = Stored::Client(got).weight();
        assert!(
            weight > std::mem::size_of::<ClientRecord>() && weight < 2 * encoded.len(),
            "{weight} vs {}",
            encoded.len()
        );
        store.put(
            Kind::Client,
            *key.as_bytes(),
            Stored::Encoded(encoded.into()),
            T.plus(60),
            T,
        );
        let taken: ClientRecord = store.take_record(&key, T).expect("decoded");
        assert_eq!(taken, record);
        assert!(store.get_record::<ClientRecord>(&key, T).is_none(), "taken");
        // Bytes that do not parse are absent, not an error.
        store.put(Kind::Client, *key.as_bytes(), v(b"{"), T.plus(60), T);
        assert!(store.get_record::<ClientRecord>(&key, T).is_none());
    }
}
