//! The store contract every backend implements: kinds, keys, caller-supplied time, the
//! batch operations and their results, the one error type, and the `Store` trait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A store key: the 32 bytes of a `consent_gate::StoreKey` (`*store_key.as_bytes()`), a
/// SHA-256 hash of a record's secret handle, never the handle itself.
pub type Key = [u8; 32];

/// The largest value any backend accepts, in bytes. A record is a few KiB at most; the
/// limit keeps one bad write from filling a Redis node or a SQLite page cache.
pub const MAX_VALUE_BYTES: usize = 8 << 20;

/// Seconds since the Unix epoch, always supplied by the caller: the store reads no clock
/// (the host passes the same `now` it passes to the core, so expiry agrees with the core).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The latest accepted expiry, 9999-12-31T23:59:59Z: it fits SQLite's signed
    /// integers, Redis's millisecond TTLs and Lua's doubles exactly.
    pub const MAX: UnixTime = UnixTime(253_402_300_799);

    /// A time of `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        UnixTime(secs)
    }

    /// The seconds since the epoch.
    pub const fn secs(self) -> u64 {
        self.0
    }

    /// This time plus `secs` seconds, saturating at [`UnixTime::MAX`].
    pub fn plus(self, secs: u64) -> Self {
        UnixTime(self.0.saturating_add(secs).min(Self::MAX.0))
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A namespace. The same key under two kinds names two unrelated entries.
///
/// The six named kinds are the core's records. `Other` is for a host's own records (a
/// demo upstream's codes, rate-limit buckets): its label is the namespace, so it must be
/// 1 to 32 characters of `a-z`, `0-9`, `_`, `-` and must not be one of the six labels
/// (an operation with a bad label fails with [`StoreError::InvalidKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Client registrations.
    Client,
    /// Pending consents (the consent page, until the user decides).
    Consent,
    /// Upstream transactions (from the approval to the callback).
    Transaction,
    /// Authorization codes.
    Code,
    /// Grants (what an access token stands for).
    Grant,
    /// Refresh tokens.
    Refresh,
    /// A host-defined namespace, named by its label.
    Other(&'static str),
}

impl Kind {
    /// The six kinds of the core's records.
    pub const CORE: [Kind; 6] = [
        Kind::Client,
        Kind::Consent,
        Kind::Transaction,
        Kind::Code,
        Kind::Grant,
        Kind::Refresh,
    ];

    /// The namespace label, as stored (SQLite's `kind` column, Redis's key segment).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Client => "client",
            Kind::Consent => "consent",
            Kind::Transaction => "transaction",
            Kind::Code => "code",
            Kind::Grant => "grant",
            Kind::Refresh => "refresh",
            Kind::Other(label) => label,
        }
    }

    /// Checks an `Other` label (the named kinds are always valid).
    pub fn validate(self) -> Result<(), StoreError> {
        let Kind::Other(label) = self else {
            return Ok(());
        };
        let well_formed = (1..=32).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        // A label equal to a named kind's would alias its namespace under another name.
        let reserved = Kind::CORE.iter().any(|k| k.label() == label);
        if well_formed && !reserved {
            Ok(())
        } else {
            Err(StoreError::InvalidKind(label))
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The most live entries each kind may hold in a durable backend (SQLite, Redis), so that
/// a flood of newcomers keeps disk and memory bounded without pushing anyone out (R64):
/// a write that would add a new entry to a full kind fails with
/// [`StoreError::QuotaExceeded`] (its whole batch with it), while replacing, taking and
/// deleting existing entries always works. Expired entries do not count. The memory
/// backend has its own [`MemoryLimits`](crate::MemoryLimits).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quotas(pub(crate) Vec<(Kind, u64)>);

impl Quotas {
    /// No quota on any kind.
    pub fn none() -> Self {
        Quotas(Vec::new())
    }

    /// At most `max_entries` live entries of `kind` (replacing an earlier limit).
    pub fn limit(mut self, kind: Kind, max_entries: u64) -> Self {
        self.0.retain(|(k, _)| *k != kind);
        self.0.push((kind, max_entries));
        self
    }

    /// The limit of `kind`, if it has one.
    pub fn of(&self, kind: Kind) -> Option<u64> {
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n)
    }
}

/// One operation of a batch ([`Store::apply`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Store or replace until `expires_at`.
    Put {
        /// The namespace.
        kind: Kind,
        /// The entry's key.
        key: Key,
        /// The record's encoded bytes.
        value: Vec<u8>,
        /// The first second at which the entry is gone.
        expires_at: UnixTime,
    },
    /// Store only if no live entry exists (an expired one counts as absent).
    PutIfAbsent {
        /// The namespace.
        kind: Kind,
        /// The entry's key.
        key: Key,
        /// The record's encoded bytes.
        value: Vec<u8>,
        /// The first second at which the entry is gone.
        expires_at: UnixTime,
    },
    /// Atomic get-and-delete: of concurrent takers exactly one gets the value.
    Take {
        /// The namespace.
        kind: Kind,
        /// The entry's key.
        key: Key,
    },
    /// Read without removing.
    Get {
        /// The namespace.
        kind: Kind,
        /// The entry's key.
        key: Key,
    },
    /// Remove, live or not.
    Delete {
        /// The namespace.
        kind: Kind,
        /// The entry's key.
        key: Key,
    },
}

impl Op {
    /// The operation's namespace.
    pub fn kind(&self) -> Kind {
        match self {
            Op::Put { kind, .. }
            | Op::PutIfAbsent { kind, .. }
            | Op::Take { kind, .. }
            | Op::Get { kind, .. }
            | Op::Delete { kind, .. } => *kind,
        }
    }

    /// The operation's key.
    pub fn key(&self) -> &Key {
        match self {
            Op::Put { key, .. }
            | Op::PutIfAbsent { key, .. }
            | Op::Take { key, .. }
            | Op::Get { key, .. }
            | Op::Delete { key, .. } => key,
        }
    }

    /// Refuses what no backend may execute, before anything is executed: a bad kind label,
    /// a value over [`MAX_VALUE_BYTES`], an expiry not after `now` (a write that would be
    /// dead on arrival is a caller's bug or a clock jump, and Redis cannot express a TTL
    /// of zero) or after [`UnixTime::MAX`].
    pub fn validate(&self, now: UnixTime) -> Result<(), StoreError> {
        self.kind().validate()?;
        if let Op::Put {
            value, expires_at, ..
        }
        | Op::PutIfAbsent {
            value, expires_at, ..
        } = self
        {
            validate_write(self.kind(), value.len(), *expires_at, now)?;
        }
        Ok(())
    }
}

/// The checks of [`Op::validate`] for one write, without building the op.
pub(crate) fn validate_write(
    kind: Kind,
    size: usize,
    expires_at: UnixTime,
    now: UnixTime,
) -> Result<(), StoreError> {
    kind.validate()?;
    if size > MAX_VALUE_BYTES {
        return Err(StoreError::TooLarge {
            kind,
            size,
            limit: MAX_VALUE_BYTES,
        });
    }
    if expires_at <= now {
        return Err(StoreError::AlreadyExpired { expires_at, now });
    }
    if expires_at > UnixTime::MAX {
        return Err(StoreError::ExpiryOutOfRange(expires_at));
    }
    Ok(())
}

/// The result of one [`Op`], at the same index as the op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// The put was written.
    Put,
    /// Whether the put-if-absent wrote (false: a live entry was there).
    PutIfAbsent(bool),
    /// The taken value, if a live entry was there (it is gone now either way).
    Take(Option<Vec<u8>>),
    /// The value, if a live entry is there.
    Get(Option<Vec<u8>>),
    /// The entry is gone.
    Delete,
}

/// A backend failure. Every backend reports its failures as values; none panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An `Other` kind label that is malformed or names a core kind.
    #[error("invalid kind label {0:?}: 1-32 of a-z 0-9 _ -, not a core kind's label")]
    InvalidKind(&'static str),
    /// A write whose expiry is not after `now`.
    #[error("refused a write that expires at {expires_at}, not after now ({now})")]
    AlreadyExpired {
        /// The requested expiry.
        expires_at: UnixTime,
        /// The caller's time.
        now: UnixTime,
    },
    /// An expiry past [`UnixTime::MAX`].
    #[error("expiry {0} is past 9999-12-31")]
    ExpiryOutOfRange(UnixTime),
    /// A value larger than the backend or the kind allows.
    #[error("a {kind} value of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The namespace.
        kind: Kind,
        /// The value's size.
        size: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// A kind is full and its limits say to refuse newcomers rather than evict.
    #[error("the {0} quota is reached")]
    QuotaExceeded(Kind),
    /// A stored entry this crate did not write in this shape.
    #[error("corrupt entry in the {0} namespace")]
    Corrupt(Kind),
    /// The database was written by a newer version of this crate.
    #[error("schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The backend's worker is gone (the store was closed, or its thread died).
    #[error("the store is closed")]
    Closed,
    /// A backend answered something that does not fit the contract.
    #[error("unexpected backend reply: {0}")]
    Protocol(String),
    /// SQLite failed.
    #[cfg(feature = "sqlite")]
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Redis failed: unreachable, timed out, out of memory, or refused a command.
    #[cfg(feature = "redis")]
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The file system failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The future every [`Store`] method returns: boxed, so that `Arc<dyn Store>` works.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What [`Store::take_then`] runs on the taken value: the operations to apply with the
/// take. It runs once at most, possibly on a backend's own thread (SQLite runs it inside
/// the transaction of the take), so it must be quick and must not block.
pub type Then = Box<dyn FnOnce(Option<Vec<u8>>) -> Vec<Op> + Send>;

/// An async key-value store executing the core's operations (docs/design.md's store
/// contract). Values are opaque bytes; `now` is always the caller's.
///
/// Only [`apply`](Store::apply) and [`sweep`](Store::sweep) must be implemented; the
/// single operations default to a one-op batch, and backends override them where a
/// native command is cheaper.
pub trait Store: Send + Sync {
    /// A short name of the backend, for logs.
    fn backend(&self) -> &'static str;

    /// Runs `ops` in order, each seeing the effects of the ones before it, atomically:
    /// on `Ok` all took effect, on `Err` none did (a put-if-absent that finds a live entry
    /// is a result, `PutIfAbsent(false)`, not an error). Every op is validated first.
    fn apply(&self, ops: Vec<Op>, now: UnixTime) -> StoreFuture<'_, Vec<OpResult>>;

    /// Removes entries expired at `now` (reads already ignore them; this reclaims the
    /// space) and says how many. Redis expires by itself and answers 0.
    fn sweep(&self, now: UnixTime) -> StoreFuture<'_, u64>;

    /// Stores or replaces `value` under `(kind, key)` until `expires_at`.
    fn put(
        &self,
        kind: Kind,
        key: Key,
        value: Vec<u8>,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'_, ()> {
        let op = Op::Put {
            kind,
            key,
            value,
            expires_at,
        };
        Box::pin(async move { single(self.apply(vec![op], now).await?).map(drop) })
    }

    /// Stores `value` only if no live entry exists; true if it did.
    fn put_if_absent(
        &self,
        kind: Kind,
        key: Key,
        value: Vec<u8>,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'_, bool> {
        let op = Op::PutIfAbsent {
            kind,
            key,
            value,
            expires_at,
        };
        Box::pin(async move {
            match single(self.apply(vec![op], now).await?)? {
                OpResult::PutIfAbsent(written) => Ok(written),
                other => Err(mismatch(&other)),
            }
        })
    }

    /// Atomically gets and deletes: of N concurrent takers exactly one gets the value.
    fn take(&self, kind: Kind, key: Key, now: UnixTime) -> StoreFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            match single(self.apply(vec![Op::Take { kind, key }], now).await?)? {
                OpResult::Take(value) => Ok(value),
                other => Err(mismatch(&other)),
            }
        })
    }

    /// Reads a live entry without removing it.
    fn get(&self, kind: Kind, key: Key, now: UnixTime) -> StoreFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            match single(self.apply(vec![Op::Get { kind, key }], now).await?)? {
                OpResult::Get(value) => Ok(value),
                other => Err(mismatch(&other)),
            }
        })
    }

    /// Takes the live entry under `(kind, key)` and applies the ops `then` computes from
    /// it (the step a taken record feeds), and gives their results. Atomic against every
    /// other taker either way; where the backend can, the take and the ops also commit
    /// together (SQLite: one transaction, one `fsync` instead of two in the flow's
    /// critical path), and a failure of the ops then leaves the entry in place. By
    /// default the take is committed first and the ops after it, as two calls would.
    fn take_then(
        &self,
        kind: Kind,
        key: Key,
        now: UnixTime,
        then: Then,
    ) -> StoreFuture<'_, Vec<OpResult>> {
        Box::pin(async move {
            let ops = then(self.take(kind, key, now).await?);
            match ops.is_empty() {
                true => Ok(Vec::new()),
                false => self.apply(ops, now).await,
            }
        })
    }

    /// Removes an entry, live or not.
    fn delete(&self, kind: Kind, key: Key, now: UnixTime) -> StoreFuture<'_, ()> {
        Box::pin(
            async move { single(self.apply(vec![Op::Delete { kind, key }], now).await?).map(drop) },
        )
    }
}

fn single(results: Vec<OpResult>) -> Result<OpResult, StoreError> {
    let count = results.len();
    let mut results = results.into_iter();
    match (results.next(), count) {
        (Some(result), 1) => Ok(result),
        _ => Err(StoreError::Protocol(format!("one op gave {count} results"))),
    }
}

fn mismatch(result: &OpResult) -> StoreError {
    StoreError::Protocol(format!("result {result:?} does not match its op"))
}
