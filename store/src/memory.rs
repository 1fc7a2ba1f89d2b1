//! The bounded in-process store: tests, development, and single-process deployments that
//! may forget everything on a restart (it is not durable: R62 needs the SQLite backend).
//!
//! Every kind has its own limits (an entry count and a byte total), so a flood of one kind
//! never evicts an entry of another: 10,000 self-approved consent pages cannot evict a
//! client registration. When a kind is full, [`OnFull`] decides: `EvictOldest` removes
//! that kind's expired entries first and only then its oldest live ones; `Refuse` never
//! evicts and fails the newcomer with [`StoreError::QuotaExceeded`], so the existing
//! users keep working (R64).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use crate::contract::{Key, Kind, Op, OpResult, Store, StoreError, StoreFuture, UnixTime};

/// What a full kind does with a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFull {
    /// Evict that kind's expired entries, then its oldest (least recently written) ones.
    EvictOldest,
    /// Evict nothing; the write fails with [`StoreError::QuotaExceeded`].
    Refuse,
}

/// The limits of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// The most entries the kind holds.
    pub max_entries: usize,
    /// The most bytes the kind holds: each entry counts its value plus its 32-byte key.
    pub max_bytes: usize,
    /// What happens when a write would exceed either limit.
    pub on_full: OnFull,
}

impl Default for MemoryLimits {
    /// 10,000 entries and 64 MiB per kind, evicting the oldest: a record is around
    /// 1 KiB, so the count binds first, and seven kinds stay under half a GiB.
    fn default() -> Self {
        MemoryLimits {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            on_full: OnFull::EvictOldest,
        }
    }
}

/// The bounded in-memory backend. One mutex: every batch is atomic and single-use holds.
#[derive(Debug, Default)]
pub struct MemoryStore {
    defaults: MemoryLimits,
    per_kind: HashMap<&'static str, MemoryLimits>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tables: HashMap<&'static str, Table>,
    /// Write order across all kinds; an entry's `seq` is when it was last written.
    next_seq: u64,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    by_age: BTreeMap<u64, Key>,
    /// `(expires_at, seq)`: the first element is the next to expire.
    by_expiry: BTreeSet<(u64, u64)>,
    bytes: usize,
}

#[derive(Clone, Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at: u64,
    seq: u64,
}

impl Entry {
    fn charge(&self) -> usize {
        charge(self.value.len())
    }
}

fn charge(value_len: usize) -> usize {
    value_len + std::mem::size_of::<Key>()
}

/// What a batch changed, to put back if a later op of the batch fails.
type Undo = Vec<(&'static str, Key, Option<Entry>)>;

impl Table {
    fn live(&self, key: &Key, now: u64) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.expires_at > now)
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.by_age.remove(&entry.seq);
        self.by_expiry.remove(&(entry.expires_at, entry.seq));
        self.bytes -= entry.charge();
        Some(entry)
    }

    fn insert(&mut self, key: Key, entry: Entry) {
        self.by_age.insert(entry.seq, key);
        self.by_expiry.insert((entry.expires_at, entry.seq));
        self.bytes += entry.charge();
        self.entries.insert(key, entry);
    }

    /// The entry to evict next: an expired one if any, else the oldest (or none if the
    /// limits say to refuse).
    fn victim(&self, now: u64, on_full: OnFull) -> Option<Key> {
        let &(expires_at, seq) = self.by_expiry.first()?;
        if expires_at <= now {
            return self.by_age.get(&seq).copied();
        }
        match on_full {
            OnFull::EvictOldest => self.by_age.values().next().copied(),
            OnFull::Refuse => None,
        }
    }
}

impl MemoryStore {
    /// A store with [`MemoryLimits::default`] for every kind.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with `limits` for every kind not given its own.
    pub fn with_default_limits(limits: MemoryLimits) -> Self {
        MemoryStore {
            defaults: limits,
            ..Self::default()
        }
    }

    /// Gives `kind` its own limits (e.g. `Refuse` for clients, so that a registration
    /// flood fails the newcomers rather than evicting registered clients).
    pub fn limit(mut self, kind: Kind, limits: MemoryLimits) -> Self {
        self.per_kind.insert(kind.label(), limits);
        self
    }

    /// The limits in force for `kind`.
    pub fn limits(&self, kind: Kind) -> MemoryLimits {
        self.per_kind
            .get(kind.label())
            .copied()
            .unwrap_or(self.defaults)
    }

    /// The number of entries of `kind`, expired ones not yet evicted included.
    pub fn len(&self, kind: Kind) -> usize {
        self.lock()
            .tables
            .get(kind.label())
            .map_or(0, |t| t.entries.len())
    }

    /// Whether `kind` holds no entry at all.
    pub fn is_empty(&self, kind: Kind) -> bool {
        self.len(kind) == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave a half-applied batch (every
        // change is undone on error before the guard drops), so the state is usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn apply_now(&self, ops: Vec<Op>, now: UnixTime) -> Result<Vec<OpResult>, StoreError> {
        for op in &ops {
            op.validate(now)?;
            if let Op::Put { kind, value, .. } | Op::PutIfAbsent { kind, value, .. } = op {
                let limits = self.limits(*kind);
                if charge(value.len()) > limits.max_bytes {
                    let (size, limit) = (value.len(), limits.max_bytes);
                    return Err(StoreError::TooLarge {
                        kind: *kind,
                        size,
                        limit,
                    });
                }
            }
        }
        let mut state = self.lock();
        let mut undo = Undo::new();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match self.run(&mut state, op, now.secs(), &mut undo) {
                Ok(result) => results.push(result),
                Err(error) => {
                    rollback(&mut state, undo);
                    return Err(error);
                }
            }
        }
        Ok(results)
    }

    fn run(
        &self,
        state: &mut State,
        op: Op,
        now: u64,
        undo: &mut Undo,
    ) -> Result<OpResult, StoreError> {
        let kind = op.kind();
        let label = kind.label();
        let seq = state.next_seq;
        let is_put_if_absent = matches!(op, Op::PutIfAbsent { .. });
        let table = state.tables.entry(label).or_default();
        let result = match op {
            Op::Get { key, .. } => OpResult::Get(table.live(&key, now).map(|e| e.value.clone())),
            Op::Take { key, .. } => {
                let taken = table.remove(&key);
                let value = taken
                    .as_ref()
                    .filter(|e| e.expires_at > now)
                    .map(|e| e.value.clone());
                if taken.is_some() {
                    undo.push((label, key, taken));
                }
                OpResult::Take(value)
            }
            Op::Delete { key, .. } => {
                if let Some(old) = table.remove(&key) {
                    undo.push((label, key, Some(old)));
                }
                OpResult::Delete
            }
            Op::PutIfAbsent { key, .. } if table.live(&key, now).is_some() => {
                OpResult::PutIfAbsent(false)
            }
            Op::Put {
                key,
                value,
                expires_at,
                ..
            }
            | Op::PutIfAbsent {
                key,
                value,
                expires_at,
                ..
            } => {
                let old = table.remove(&key);
                undo.push((label, key, old));
                let limits = self.limits(kind);
                let incoming = charge(value.len());
                while table.entries.len() + 1 > limits.max_entries
                    || table.bytes + incoming > limits.max_bytes
                {
                    let Some(victim) = table.victim(now, limits.on_full) else {
                        return Err(StoreError::QuotaExceeded(kind));
                    };
                    let evicted = table.remove(&victim);
                    tracing::debug!(
                        kind = label,
                        live = evicted.as_ref().is_some_and(|e| e.expires_at > now),
                        "memory store evicted an entry"
                    );
                    undo.push((label, victim, evicted));
                }
                table.insert(
                    key,
                    Entry {
                        value,
                        expires_at: expires_at.secs(),
                        seq,
                    },
                );
                state.next_seq += 1;
                if is_put_if_absent {
                    OpResult::PutIfAbsent(true)
                } else {
                    OpResult::Put
                }
            }
        };
        Ok(result)
    }
}

/// Puts every entry a failed batch touched back as it was, newest change first.
fn rollback(state: &mut State, undo: Undo) {
    for (label, key, previous) in undo.into_iter().rev() {
        let table = state.tables.entry(label).or_default();
        table.remove(&key);
        if let Some(entry) = previous {
            table.insert(key, entry);
        }
    }
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn apply(&self, ops: Vec<Op>, now: UnixTime) -> StoreFuture<'_, Vec<OpResult>> {
        let result = self.apply_now(ops, now);
        Box::pin(async move { result })
    }

    fn sweep(&self, now: UnixTime) -> StoreFuture<'_, u64> {
        let mut state = self.lock();
        let mut removed = 0;
        for table in state.tables.values_mut() {
            while let Some(&(expires_at, seq)) = table.by_expiry.first() {
                if expires_at > now.secs() {
                    break;
                }
                let Some(key) = table.by_age.get(&seq).copied() else {
                    break;
                };
                table.remove(&key);
                removed += 1;
            }
        }
        Box::pin(async move { Ok(removed) })
    }
}
