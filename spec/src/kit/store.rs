//! The host's store and the one host loop: a generic executor of the core's [`Step`]s
//! (docs/design.md#steps, docs/design.md#store-contract).
//!
//! Records are kept as the bytes the core encoded, under their [`Kind`] and [`StoreKey`],
//! exactly as the example's stores keep them; [`Store::get`] and [`Store::take`] decode them
//! back through [`Record::decode`]. Every host of the kit (the test [`Host`](super::Host),
//! the World, the `hostile` fuzz target) stores what the core returns through
//! [`Store::apply`] only, so no host knows a store rule that the core does not state in its
//! [`Op`]s.
//!
//! Entries keep their expiry but are returned after it: the core checks every lifetime
//! itself (R36, R42), and a store that hid expired records would hide a core that forgot
//! to (the P7 mutations in `spec/README.md` are caught only because it does not).

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use consent_gate::{
    GrantRecord, InstallationRevocation, Kind, Op, Record, Reply, Step, StoreKey, UnixTime,
};

/// What a stored record decodes to, kept beside its bytes once decoded.
type Decoded = Arc<OnceLock<Arc<dyn Any + Send + Sync>>>;

/// One stored record: the core's bytes and the expiry it gave them.
///
/// The bytes are the record; `decoded` only remembers what [`Record::decode`] made of
/// them, shared by every clone of the store, so that a model checker that clones the
/// store once per state decodes each record once rather than once per state and look-up.
#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    expires_at: Option<UnixTime>,
    decoded: Decoded,
}

impl Entry {
    fn new(value: Vec<u8>, expires_at: Option<UnixTime>) -> Self {
        Entry {
            value: value.into(),
            expires_at,
            decoded: Decoded::default(),
        }
    }

    fn decode<R: Record + Clone + Send + Sync + 'static>(&self) -> Option<R> {
        let decoded = self
            .decoded
            .get_or_init(|| Arc::new(R::decode(&self.value)));
        match decoded.downcast_ref::<Option<R>>() {
            Some(record) => record.clone(),
            // Another type under this kind: decode afresh (never cached twice).
            None => R::decode(&self.value),
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value && self.expires_at == other.expires_at
    }
}

impl Eq for Entry {}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
        self.expires_at.hash(state);
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes may hold sealed user data: their length is enough for a trace.
        write!(f, "{} bytes until {:?}", self.value.len(), self.expires_at)
    }
}

/// An in-memory store: one namespace per [`Kind`], atomic *take* (single-threaded, so a
/// get-and-delete is trivially atomic, as a Redis `GETDEL` or a `DELETE … RETURNING` is).
/// Plain data (`Eq`, `Hash`), so a model checker can fingerprint it
/// (docs/conventions.md#plain-data-state).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Store {
    entries: BTreeMap<(Kind, StoreKey), Entry>,
}

impl Store {
    /// The host loop: applies the step's operations in order, then hands back the reply
    /// to send (a code's 303 never leaves before the code is stored, R43).
    pub fn apply(&mut self, step: impl Into<Step>) -> Reply {
        let step = step.into();
        for op in step.ops {
            self.apply_op(op);
        }
        step.reply
    }

    /// One store operation, as [`Store::apply`] runs it.
    pub fn apply_op(&mut self, op: Op) {
        match op {
            Op::Put {
                kind,
                key,
                value,
                expires_at,
            } => {
                self.entries
                    .insert((kind, key), Entry::new(value, expires_at));
            }
            Op::PutIfAbsent {
                kind,
                key,
                value,
                expires_at,
            } => {
                // R63: a successor already stored may have been rotated since.
                self.entries
                    .entry((kind, key))
                    .or_insert_with(|| Entry::new(value, expires_at));
            }
            Op::Delete { kind, key } => {
                self.entries.remove(&(kind, key));
            }
        }
    }

    /// The operations of a step the caller keeps (to look at its shape): applied in order,
    /// exactly as [`Store::apply`] applies them.
    pub fn apply_ops<'a>(&mut self, ops: impl IntoIterator<Item = &'a Op>) {
        for op in ops {
            self.apply_op(op.clone());
        }
    }

    /// Reads a record without removing it (clients, grants, refresh records).
    pub fn get<R: Record + Clone + Send + Sync + 'static>(&self, key: &StoreKey) -> Option<R> {
        self.entries.get(&(R::KIND, *key))?.decode()
    }

    /// The grant under `key` and the revocation mark of its installation (R59), both as a
    /// host reads them for a bearer check or a refresh: the mark only for a grant that
    /// has an installation (a metadata-document client's).
    pub fn grant(&self, key: &StoreKey) -> (Option<GrantRecord>, Option<InstallationRevocation>) {
        let grant = self.get::<GrantRecord>(key);
        let mark = grant
            .as_ref()
            .and_then(GrantRecord::installation_key)
            .and_then(|installation| self.get(&installation));
        (grant, mark)
    }

    /// Reads and removes a record in one step (pending consents, transactions, codes):
    /// of two takers only one gets it (A7, A8).
    pub fn take<R: Record + Clone + Send + Sync + 'static>(&mut self, key: &StoreKey) -> Option<R> {
        self.entries.remove(&(R::KIND, *key))?.decode()
    }

    /// Whether a record of `kind` is under `key`.
    pub fn contains(&self, kind: Kind, key: &StoreKey) -> bool {
        self.entries.contains_key(&(kind, *key))
    }

    /// Stores `record` under its own key, as `Op::put` says: for a test that writes the
    /// store directly, as someone with write access to it would (A16).
    pub fn put<R: Record>(&mut self, record: &R) {
        self.apply_op(Op::put(record));
    }

    /// Stores `record` unless a record is under its key, as `Op::put_if_absent` says.
    pub fn put_if_absent<R: Record>(&mut self, record: &R) {
        self.apply_op(Op::put_if_absent(record));
    }

    /// Removes the record of `kind` under `key`.
    pub fn delete(&mut self, kind: Kind, key: &StoreKey) {
        self.apply_op(Op::delete(kind, *key));
    }

    /// How many records of `kind` are stored.
    pub fn count(&self, kind: Kind) -> usize {
        self.entries.keys().filter(|(k, _)| *k == kind).count()
    }

    /// How many records are stored, of every kind.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every stored record of type `R`, in key order.
    pub fn all<R: Record + Clone + Send + Sync + 'static>(&self) -> Vec<R> {
        self.entries
            .iter()
            .filter(|((kind, _), _)| *kind == R::KIND)
            .filter_map(|(_, e)| e.decode())
            .collect()
    }

    /// Every stored entry's kind and bytes, as someone who dumps the store reads them.
    pub fn raw(&self) -> impl Iterator<Item = (Kind, &[u8])> {
        self.entries.iter().map(|((kind, _), e)| (*kind, &*e.value))
    }

    /// The expiry the core gave the record of `kind` under `key`, if it is stored.
    pub fn expiry(&self, kind: Kind, key: &StoreKey) -> Option<Option<UnixTime>> {
        self.entries.get(&(kind, *key)).map(|e| e.expires_at)
    }
}
