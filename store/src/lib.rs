//! Async key-value stores that execute consent-gate's store operations.
//!
//! The core (`consent-gate`) is sans-IO: each step says which records to read, take or
//! write, and the host carries that out. This crate is the host's side of that contract
//! (docs/design.md, "The store contract"), independent of the core's record types: a
//! value is a record's encoded bytes, a [`Key`] is the 32 bytes of its `StoreKey` (a
//! hash of the record's secret, never the secret), a [`Kind`] is a namespace, and every
//! call takes the caller's `now` ([`UnixTime`]), the same one the core was given.
//!
//! # The contract
//!
//! | operation | semantics |
//! | --- | --- |
//! | [`put`](Store::put) | store or replace until `expires_at` |
//! | [`put_if_absent`](Store::put_if_absent) | store only if no live entry exists; says whether it did (R63: the successor of a rotated refresh token, A22) |
//! | [`take`](Store::take) | atomic get-and-delete: of N concurrent takers exactly one gets the value |
//! | [`get`](Store::get) | read without removing |
//! | [`delete`](Store::delete) | remove |
//! | [`apply`](Store::apply) | a batch of the above, atomic: all or nothing, each op seeing the ones before |
//! | [`take_then`](Store::take_then) | a take, and the batch computed from what it took; in one transaction where the backend can (SQLite) |
//!
//! An entry is live while `now < expires_at`; an expired entry is never returned and
//! counts as absent for `put_if_absent`. A write whose `expires_at` is not after `now`
//! is refused ([`StoreError::AlreadyExpired`]) before anything runs. Failures are
//! [`StoreError`] values: no backend panics. [`Store::sweep`] reclaims expired entries;
//! a host runs it periodically, e.g. with [`spawn_sweeper`].
//!
//! The trait returns boxed futures, so a host holds `Arc<dyn Store>` and picks the
//! backend at start-up (from a flag or a configuration setting).
//!
//! # Which backend
//!
//! | backend | feature | for |
//! | --- | --- | --- |
//! | [`MemoryStore`] | `memory` (default) | tests and development: bounded per kind, forgets everything on restart |
//! | `SqliteStore` | `sqlite` | one server on one box, the default for deployments: one file, survives restarts and `kill -9` (R62) |
//! | `RedisStore` | `redis` | several replicas sharing state: single use and put-if-absent hold across replicas (R63); Redis 7+ or Valkey |
//!
//! A host compiles only the backends it enables.
//!
//! # Sizing
//!
//! A record is well under 1 KiB to a few KiB (a grant carrying an upstream token is the
//! largest); [`MAX_VALUE_BYTES`] caps any value at 8 MiB.
//!
//! * **Memory**: 10,000 entries and 64 MiB per kind by default ([`MemoryLimits`]); a
//!   flood of one kind evicts only that kind's entries, expired ones first
//!   ([`OnFull::Refuse`] evicts nothing and refuses the newcomer instead, R64).
//! * **SQLite**: each row costs its value plus roughly 100 bytes (kind, 32-byte key,
//!   expiry, two index entries), an estimate to check against your own records; the WAL
//!   is checkpointed every 1,000 pages (about 4 MiB). Writes
//!   are committed in groups, one fsync per group, so throughput grows with concurrency.
//!   Run [`Store::sweep`] every minute or so; reads ignore expired rows regardless.
//! * **Redis**: the value plus 8 bytes of expiry plus the key name (about 80 bytes) and
//!   Redis's own per-key overhead; set `maxmemory` with
//!   `maxmemory-policy noeviction` (an evicting policy would silently drop live grants,
//!   and the store reports an out-of-memory server as an error instead). Keys expire by
//!   TTL; no sweep is needed.
//!
//! # Quotas
//!
//! [`Quotas`] cap the live entries of each kind in SQLite and Redis, as [`MemoryLimits`]
//! with [`OnFull::Refuse`] do in memory: a write that would add an entry to a full kind
//! fails with [`StoreError::QuotaExceeded`], its whole batch with it, while everyone
//! already stored keeps working (replacing, taking and deleting never hit a quota, and
//! expired entries do not count). A host sizes each kind for its users and answers the
//! refused newcomer with a clear error (R64). SQLite keeps a count per kind (schema
//! version 2, by triggers), so a check below the quota costs one indexed lookup; Redis
//! keeps a sorted set of the kind's keys by expiry and sends the kind's writes through
//! its batch script.
//!
//! # Time
//!
//! The store never reads the clock: expiry is judged against the `now` each call is
//! given. Redis additionally gets a TTL of `expires_at - now` so that it reclaims memory
//! on its own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod contract;
mod host;
mod endpoints;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

pub use contract::{
    Key, Kind, MAX_VALUE_BYTES, Op, OpResult, Quotas, Store, StoreError, StoreFuture, Then,
    UnixTime,
};
pub use endpoints::{
    Answer, DocumentSource, Endpoints, FetchedDocument, Fetching, Stepped, short, variant,
};
pub use host::{CLIENT_LIFETIME, Executor, open};
#[cfg(feature = "memory")]
pub use memory::{MemoryLimits, MemoryStore, OnFull};
#[cfg(feature = "redis")]
pub use redis::{RedisOptions, RedisStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous, migrate};

/// Runs [`Store::sweep`] every `every` on the current Tokio runtime, with the time
/// `clock` gives (the host's clock: this crate reads none). A failed sweep is logged and
/// retried at the next tick; abort the returned handle to stop.
pub fn spawn_sweeper<C>(
    store: Arc<dyn Store>,
    every: Duration,
    clock: C,
) -> tokio::task::JoinHandle<()>
where
    C: Fn() -> UnixTime + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match store.sweep(clock()).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(backend = store.backend(), removed, "store sweep"),
                Err(error) => {
                    tracing::warn!(backend = store.backend(), %error, "store sweep failed")
                }
            }
        }
    })
}
