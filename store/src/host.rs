//! The host's side of the core's steps: one executor of a [`Step`]'s operations against
//! any [`Store`], typed reads and takes of the core's records, and a store opened from a
//! command-line value. Every host (the hyper example, `consent-gate-axum`) uses these, so
//! the store rules (docs/design.md#store-contract) are written once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use consent_gate::{ClientRecord, Record, Reply, Step, StoreKey};

use crate::contract::{Kind, Op, Quotas, Store, StoreError, UnixTime};

/// The core gives registrations no expiry; a store must. A client whose registration is
/// gone registers again.
pub const CLIENT_LIFETIME: u64 = 90 * 24 * 3600;

/// Decoded registrations kept in memory by [`Executor::client`]: how many, and for how
/// many seconds each.
const CLIENT_CACHE: (usize, u64) = (4096, 60);

impl From<consent_gate::Kind> for Kind {
    /// The core's namespaces in this crate's terms.
    fn from(kind: consent_gate::Kind) -> Kind {
        use consent_gate::Kind as Core;
        match kind {
            Core::Client => Kind::Client,
            Core::Pending => Kind::Consent,
            Core::Transaction => Kind::Transaction,
            Core::Code => Kind::Code,
            Core::Grant => Kind::Grant,
            Core::Refresh => Kind::Refresh,
            other => Kind::Other(other.name()),
        }
    }
}

impl From<consent_gate::UnixTime> for UnixTime {
    /// The same second the core was given.
    fn from(t: consent_gate::UnixTime) -> UnixTime {
        UnixTime::from_secs(t.0)
    }
}

/// Decoded registrations by key, each with the second it was read from the store or
/// written to it.
type ClientCache = HashMap<[u8; 32], (Arc<ClientRecord>, u64)>;

/// Executes the core's [`Step`]s against a store and reads the records the next step
/// needs. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn Store>,
    clients: Arc<Mutex<ClientCache>>,
}

impl Executor {
    /// An executor over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let clients = Arc::default();
        Executor { store, clients }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A step's store operations in one atomic batch, then its reply.
    ///
    /// A registration it writes goes into the client cache once the batch is stored (the
    /// next request of a new client is its `/authorize`, which would otherwise read it
    /// back from the store at once), and one it deletes leaves the cache.
    pub async fn apply(
        &self,
        step: Step,
        now: consent_gate::UnixTime,
    ) -> Result<Reply, StoreError> {
        let clients = written_clients(&step.ops, now);
        let ops = store_ops(step.ops, now);
        if !ops.is_empty() {
            self.store.apply(ops, now.into()).await?;
        }
        if !clients.is_empty() {
            let mut cache = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, client) in clients {
                match client {
                    Some(client) => cache_client(&mut cache, key, Arc::new(client), now.0),
                    None => drop(cache.remove(&key)),
                }
            }
        }
        Ok(step.reply)
    }

    /// Takes the record under `key` and applies the step `then` makes of it, in one
    /// transaction where the store can ([`Store::take_then`]); gives the step's reply and
    /// what else `then` returned. `then` may run on the store's own thread: it gets the
    /// caller's tracing span, and must only compute (a core step does).
    pub async fn take_then<R, T, F>(
        &self,
        key: &StoreKey,
        now: consent_gate::UnixTime,
        then: F,
    ) -> Result<(Reply, T), StoreError>
    where
        R: Record,
        T: Send + 'static,
        F: FnOnce(Option<R>) -> (Step, T) + Send + 'static,
    {
        let out = Arc::new(Mutex::new(None));
        let (sink, span) = (out.clone(), tracing::Span::current());
        let then: crate::Then = Box::new(move |taken| {
            let _in_request = span.enter();
            let (step, extra) = then(taken.and_then(|bytes| R::decode(&bytes)));
            *sink.lock().unwrap_or_else(PoisonError::into_inner) = Some((step.reply, extra));
            store_ops(step.ops, now)
        });
        let kind = R::KIND.into();
        self.store
            .take_then(kind, *key.as_bytes(), now.into(), then)
            .await?;
        let made = out.lock().unwrap_or_else(PoisonError::into_inner).take();
        made.ok_or_else(|| StoreError::Protocol("take_then did not run its step".into()))
    }

    /// The live record under `key`; one that does not decode counts as absent (the step
    /// that uses it checks its MAC anyway, A16).
    pub async fn get<R: Record>(
        &self,
        key: &StoreKey,
        now: consent_gate::UnixTime,
    ) -> Result<Option<R>, StoreError> {
        let found = self.store.get(R::KIND.into(), *key.as_bytes(), now.into());
        Ok(found.await?.and_then(|bytes| R::decode(&bytes)))
    }

    /// The live record under `key`, removed in the same atomic step: single use.
    pub async fn take<R: Record>(
        &self,
        key: &StoreKey,
        now: consent_gate::UnixTime,
    ) -> Result<Option<R>, StoreError> {
        let found = self.store.take(R::KIND.into(), *key.as_bytes(), now.into());
        Ok(found.await?.and_then(|bytes| R::decode(&bytes)))
    }

    /// A registration, decoded at most once a minute: `/authorize`, `/token` and `/revoke`
    /// read one on every request, and decoding it (its redirect URIs parsed again) cost a
    /// tenth of a server's time under load (benches/RESULTS.md). Registrations never
    /// change once written (each has a fresh id), so a cached one is the stored one, and
    /// the core checks its MAC on every use (A16); one deleted by another replica may be
    /// served for up to a minute (one deleted through [`apply`](Self::apply) leaves the
    /// cache at once). Steps that must see the live registration (the callback, R38) use
    /// [`get`](Self::get). Full, the cache starts over.
    pub async fn client(
        &self,
        key: &StoreKey,
        now: consent_gate::UnixTime,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        let ((_, lifetime), id) = (CLIENT_CACHE, *key.as_bytes());
        let cache = || self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = cache().get(&id).cloned();
        if let Some((client, _)) = cached.filter(|(_, read)| now.0 < read + lifetime) {
            return Ok(Some(client));
        }
        let Some(client) = self.get::<ClientRecord>(key, now).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        cache_client(&mut cache(), id, client.clone(), now.0);
        Ok(Some(client))
    }
}

/// Puts `client`, read or written at `now`, into the cache; full, the cache starts over.
fn cache_client(cache: &mut ClientCache, key: [u8; 32], client: Arc<ClientRecord>, now: u64) {
    if cache.len() >= CLIENT_CACHE.0 {
        cache.clear();
    }
    cache.insert(key, (client, now));
}

/// The registrations a step writes (decoded) or deletes (`None`). A put-if-absent may
/// keep what is there, so it is not one; nor is a put already expired, which
/// [`store_ops`] does not store.
fn written_clients(
    ops: &[consent_gate::Op],
    now: consent_gate::UnixTime,
) -> Vec<([u8; 32], Option<ClientRecord>)> {
    use consent_gate::{Kind::Client, Op as Core};
    let mut clients = Vec::new();
    for op in ops {
        match op {
            Core::Put {
                kind: Client,
                expires_at: Some(at),
                ..
            } if *at <= now => {}
            Core::Put {
                kind: Client,
                key,
                value,
                ..
            } => clients.push((*key.as_bytes(), ClientRecord::decode(value))),
            Core::Delete { kind: Client, key } => clients.push((*key.as_bytes(), None)),
            _ => {}
        }
    }
    clients
}

/// The core's operations as the store's. A record with no expiry (a registration) is
/// kept for [`CLIENT_LIFETIME`]; one already expired needs no storing (the store would
/// refuse it).
fn store_ops(core: Vec<consent_gate::Op>, now: consent_gate::UnixTime) -> Vec<Op> {
    let until = |at: Option<consent_gate::UnixTime>| -> UnixTime {
        at.unwrap_or(now.plus(CLIENT_LIFETIME)).into()
    };
    let live = |at| until(at) > now.into();
    let mut ops = Vec::with_capacity(core.len());
    for op in core {
        let (kind, key) = (op.kind().into(), *op.key().as_bytes());
        ops.push(match op {
            consent_gate::Op::Delete { .. } => Op::Delete { kind, key },
            consent_gate::Op::Put {
                value, expires_at, ..
            } if live(expires_at) => Op::Put {
                kind,
                key,
                value,
                expires_at: until(expires_at),
            },
            consent_gate::Op::PutIfAbsent {
                value, expires_at, ..
            } if live(expires_at) => Op::PutIfAbsent {
                kind,
                key,
                value,
                expires_at: until(expires_at),
            },
            _ => continue,
        });
    }
    ops
}

impl Quotas {
    /// Room for one server's users (R64): 100,000 registrations; 50,000 each of consent
    /// pages, upstream transactions and codes in flight (they live minutes, so a
    /// rate-limited address fills only its share); 200,000 grants and 400,000 refresh
    /// tokens. Anyone already stored keeps working when a kind is full.
    pub fn for_one_server() -> Self {
        let room = [
            (Kind::Client, 100_000),
            (Kind::Consent, 50_000),
            (Kind::Transaction, 50_000),
            (Kind::Code, 50_000),
            (Kind::Grant, 200_000),
            (Kind::Refresh, 400_000),
        ];
        room.into_iter()
            .fold(Quotas::none(), |q, (kind, n)| q.limit(kind, n))
    }
}

/// The store a command line names (`--store`): `memory`, `sqlite:PATH` (its directory
/// created if missing) or `redis://HOST:PORT`, each with `quotas` (in memory: each kind
/// with a quota refuses newcomers at it, within 512 MiB). A backend this build has no
/// feature for is an error, as is anything else.
pub async fn open(spec: &str, quotas: &Quotas) -> Result<Arc<dyn Store>, String> {
    let failed = |e: &dyn std::fmt::Display| format!("--store {spec}: {e}");
    let _in_builds_without_backends = quotas;
    if spec == "memory" {
        #[cfg(feature = "memory")]
        return Ok(Arc::new(quotas.0.iter().fold(
            crate::MemoryStore::new(),
            |memory, &(kind, n)| {
                let max_entries = usize::try_from(n).unwrap_or(usize::MAX);
                let on_full = crate::OnFull::Refuse;
                let limits = crate::MemoryLimits {
                    max_entries,
                    max_bytes: 512 << 20,
                    on_full,
                };
                memory.limit(kind, limits)
            },
        )));
    } else if let Some(path) = spec.strip_prefix("sqlite:") {
        #[cfg(feature = "sqlite")]
        {
            let dir = std::path::Path::new(path).parent();
            let dir = dir.filter(|d| !d.as_os_str().is_empty());
            dir.map_or(Ok(()), std::fs::create_dir_all)
                .map_err(|e| failed(&e))?;
            let quotas = quotas.clone();
            let options = crate::SqliteOptions {
                quotas,
                ..Default::default()
            };
            let sqlite = crate::SqliteStore::open(path, options).await;
            return Ok(Arc::new(sqlite.map_err(|e| failed(&e))?));
        }
        #[cfg(not(feature = "sqlite"))]
        let _ = path;
    } else if spec.starts_with("redis://") {
        #[cfg(feature = "redis")]
        {
            let quotas = quotas.clone();
            let options = crate::RedisOptions {
                quotas,
                ..Default::default()
            };
            let redis = crate::RedisStore::connect(spec, options).await;
            return Ok(Arc::new(redis.map_err(|e| failed(&e))?));
        }
    } else {
        return Err(failed(
            &"unknown store (memory, sqlite:PATH or redis://HOST:PORT)",
        ));
    }
    #[allow(unreachable_code)]
    Err(failed(&"this build has no such backend (a crate feature)"))
}

#[cfg(test)]
mod tests {
    use consent_gate::{Op as CoreOp, StoreKey, UnixTime as CoreTime};

    use super::*;

    fn key(n: u8) -> StoreKey {
        StoreKey::client(&n.to_string())
    }

    fn nothing() -> Reply {
        let (headers, body) = (Vec::new(), Vec::new());
        Reply {
            status: 204,
            headers,
            body,
        }
    }

    #[tokio::test]
    async fn a_step_runs_as_one_batch_and_skips_what_is_already_expired() {
        let exec = Executor::new(Arc::new(crate::MemoryStore::new()));
        let now = CoreTime(1_000);
        let put = |n, at: Option<u64>| CoreOp::Put {
            kind: consent_gate::Kind::Grant,
            key: key(n),
            value: vec![n],
            expires_at: at.map(CoreTime),
        };
        let run = async |ops| {
            exec.apply(
                Step {
                    ops,
                    reply: nothing(),
                },
                now,
            )
            .await
            .unwrap()
        };
        let reply = run(vec![put(1, Some(1_100)), put(2, Some(1_000)), put(3, None)]).await;
        assert_eq!(reply.status, 204);
        let store = exec.store();
        let at = |n, t: CoreTime| store.get(Kind::Grant, *key(n).as_bytes(), t.into());
        assert_eq!(at(1, now).await.unwrap(), Some(vec![1]));
        assert_eq!(
            at(2, now).await.unwrap(),
            None,
            "already expired: not stored"
        );
        // A registration has no expiry of its own: kept for CLIENT_LIFETIME, no longer.
        assert_eq!(at(3, now).await.unwrap(), Some(vec![3]));
        let later = CoreTime(1_000 + CLIENT_LIFETIME);
        assert_eq!(at(3, later).await.unwrap(), None);
        let _deleted = run(vec![CoreOp::delete(consent_gate::Kind::Grant, key(1))]).await;
        assert_eq!(at(1, now).await.unwrap(), None);
    }

    /// A memory store that counts its reads.
    struct CountingStore(crate::MemoryStore, std::sync::atomic::AtomicUsize);

    impl Store for CountingStore {
        fn backend(&self) -> &'static str {
            "counting"
        }
        fn apply(
            &self,
            ops: Vec<Op>,
            now: UnixTime,
        ) -> crate::StoreFuture<'_, Vec<crate::OpResult>> {
            self.0.apply(ops, now)
        }
        fn sweep(&self, now: UnixTime) -> crate::StoreFuture<'_, u64> {
            self.0.sweep(now)
        }
        fn get(
            &self,
            kind: Kind,
            key: crate::Key,
            now: UnixTime,
        ) -> crate::StoreFuture<'_, Option<Vec<u8>>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.get(kind, key, now)
        }
    }

    #[tokio::test]
    async fn a_registration_written_is_cached_and_one_deleted_is_not() {
        use consent_gate_spec::kit::{GateSetup, Host};
        let mut host = Host::with(GateSetup::default());
        let _acme = host.register_public("Acme Agent", "http://127.0.0.1:9/cb");
        let _other = host.register_public("Other Agent", "http://127.0.0.1:9/cb");
        let mut clients = host.store.all::<ClientRecord>();
        let (record, other) = (clients.pop().expect("two"), clients.pop().expect("two"));
        let store = Arc::new(CountingStore(crate::MemoryStore::new(), Default::default()));
        let exec = Executor::new(store.clone());
        let (id, now) = (record.key(), CoreTime(1_000));
        let reads = || store.1.load(std::sync::atomic::Ordering::Relaxed);
        let step = |op| Step {
            ops: vec![op],
            reply: nothing(),
        };

        let _put = exec.apply(step(CoreOp::put(&record)), now).await.unwrap();
        let _put = exec.apply(step(CoreOp::put(&other)), now).await.unwrap();
        for client in [&record, &other] {
            let cached = exec.client(&client.key(), now).await.unwrap();
            assert_eq!(cached.expect("cached").client_id(), client.client_id());
        }
        assert_eq!(reads(), 0, "both served from the cache, not read back");

        let delete = CoreOp::delete(consent_gate::Kind::Client, id);
        let _deleted = exec.apply(step(delete), now).await.unwrap();
        assert!(exec.client(&id, now).await.unwrap().is_none(), "deleted");
        assert_eq!(reads(), 1, "read from the store once deleted");

        // Nor one already expired (not stored at all).
        let expired = CoreOp::Put {
            kind: consent_gate::Kind::Client,
            key: id,
            value: consent_gate::Record::encode(&record),
            expires_at: Some(now),
        };
        let _skipped = exec.apply(step(expired), now).await.unwrap();
        assert!(exec.client(&id, now).await.unwrap().is_none(), "expired");

        // A registration the store refuses is not cached either.
        let full = Quotas::none().limit(Kind::Client, 0);
        let exec = Executor::new(open("memory", &full).await.unwrap());
        let refused = exec.apply(step(CoreOp::put(&record)), now).await;
        assert!(matches!(refused, Err(StoreError::QuotaExceeded(_))));
        assert!(exec.client(&id, now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn open_names_each_backend_and_refuses_the_rest() {
        let quotas = Quotas::for_one_server();
        assert_eq!(open("memory", &quotas).await.unwrap().backend(), "memory");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.sqlite3");
        let spec = format!("sqlite:{}", path.display());
        #[cfg(feature = "sqlite")]
        assert_eq!(open(&spec, &quotas).await.unwrap().backend(), "sqlite");
        #[cfg(not(feature = "sqlite"))]
        assert!(open(&spec, &quotas).await.is_err());
        for bad in ["", "sqlite", "postgres://x", "Memory", "file:/tmp/x"] {
            assert!(open(bad, &quotas).await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_memory_store_from_open_refuses_newcomers_at_the_quota() {
        let quotas = Quotas::none().limit(Kind::Client, 2);
        let store = open("memory", &quotas).await.unwrap();
        let now = UnixTime::from_secs(10);
        let until = UnixTime::from_secs(100);
        for n in 0..2 {
            store
                .put(Kind::Client, [n; 32], vec![n], until, now)
                .await
                .unwrap();
        }
        let third = store.put(Kind::Client, [9; 32], vec![9], until, now).await;
        assert!(matches!(third, Err(StoreError::QuotaExceeded(_))));
        assert_eq!(
            store.get(Kind::Client, [0; 32], now).await.unwrap(),
            Some(vec![0])
        );
    }

    /// `open` hands the quotas to every backend it opens (R64).
    #[tokio::test]
    async fn every_store_from_open_has_the_quotas() {
        let dir = tempfile::tempdir().unwrap();
        let mut specs = vec![format!("sqlite:{}", dir.path().join("q.sqlite3").display())];
        if let Ok(url) = std::env::var("REDIS_URL") {
            specs.push(url);
        }
        let (now, until) = (UnixTime::from_secs(10), UnixTime::from_secs(100));
        // A kind of this process's own: reruns against one Redis start from nothing.
        let label = format!("quota-{}", std::process::id());
        let kind = Kind::Other(Box::leak(label.into_boxed_str()));
        for spec in specs {
            let store = open(&spec, &Quotas::none().limit(kind, 1)).await.unwrap();
            store.put(kind, [1; 32], vec![1], until, now).await.unwrap();
            let second = store.put(kind, [2; 32], vec![2], until, now).await;
            assert!(
                matches!(second, Err(StoreError::QuotaExceeded(_))),
                "{spec}: {second:?}"
            );
            store.delete(kind, [1; 32], now).await.unwrap();
        }
    }
}
