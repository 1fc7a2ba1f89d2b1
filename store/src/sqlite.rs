//! The SQLite backend: the durable default for one box (R62).
//!
//! One file in WAL mode, one table keyed by `(kind, key)`. All SQL runs on one dedicated
//! thread that owns the connection, so the async runtime never blocks on disk. The
//! thread commits *groups*: it takes every job queued while the previous commit was on
//! disk and runs them in one transaction, each inside its own savepoint (a failing job
//! is rolled back alone). A job is answered only after its group's `COMMIT` returned, so
//! an answered write is on disk; concurrency turns many fsyncs into one.
//!
//! Durability: `synchronous=FULL` by default. In WAL mode `NORMAL` already survives a
//! process crash (`kill -9`), but a power loss or kernel panic may roll back the last
//! commits, and a rolled-back `take` would make a used code or `state` usable again (A8)
//! and a revocation undone. Group commit makes FULL affordable; [`Synchronous::Normal`]
//! is there for hosts that accept that trade.
//!
//! Cost: a commit appends every page its group changed to the WAL and syncs it, and on a
//! small box the worker's CPU is the request handlers' CPU. So each job's savepoint
//! journal stays in memory, its savepoint statements are prepared once like the queries,
//! a new file gets 2 KiB pages, and the WAL is checkpointed every 4 000 pages.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::contract::{
    Key, Kind, Op, OpResult, Quotas, Store, StoreError, StoreFuture, Then, UnixTime,
};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Migration `i` takes a database from version `i` to `i + 1`. Append only: a released
/// step is never edited, so every file reaches the same schema.
const MIGRATIONS: &[&str] = &[
    // 1: the entries. A rowid table, not WITHOUT ROWID: values run to MiBs, and SQLite
    // advises rowid tables for rows larger than a twentieth of a page.
    "CREATE TABLE entries (
        kind TEXT NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE INDEX entries_by_expiry ON entries (expires_at);",
    // 2: entries per kind, kept by triggers (so every path counts, sweeps included), for
    // the quotas; and an index to clear one kind's expired entries when it is full.
    "CREATE TABLE counts (kind TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counts (kind, n) SELECT kind, COUNT(*) FROM entries GROUP BY kind;
    CREATE TRIGGER entries_count_insert AFTER INSERT ON entries BEGIN
        INSERT OR IGNORE INTO counts (kind, n) VALUES (NEW.kind, 0);
        UPDATE counts SET n = n + 1 WHERE kind = NEW.kind;
    END;
    CREATE TRIGGER entries_count_delete AFTER DELETE ON entries BEGIN
        UPDATE counts SET n = n - 1 WHERE kind = OLD.kind;
    END;
    CREATE INDEX entries_by_kind_expiry ON entries (kind, expires_at);",
];

/// The page size of a new file (SQLite's default is 4 096).
const PAGE_SIZE: u32 = 2048;

/// How many rows one sweep job deletes, so that a sweep of a large backlog never holds
/// the write lock for long.
const SWEEP_CHUNK: u64 = 5_000;

/// How commits reach the disk (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: nothing answered is lost, even on power loss.
    Full,
    /// fsync at checkpoints: survives a process crash, may lose the last commits on power loss.
    Normal,
}

/// Options of [`SqliteStore::open`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Durability of commits; [`Synchronous::Full`] by default.
    pub synchronous: Synchronous,
    /// How long to wait for another process's write lock before failing.
    pub busy_timeout: Duration,
    /// The most jobs committed together.
    pub max_group: usize,
    /// The most live entries per kind (none by default).
    pub quotas: Quotas,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            max_group: 256,
            quotas: Quotas::none(),
        }
    }
}

enum Work {
    Apply(Vec<Op>, UnixTime),
    /// A take and the ops computed from what it took, in one savepoint; `None` once run.
    TakeThen(Kind, Key, UnixTime, Option<Then>),
    Sweep(UnixTime),
    Close,
}

enum Done {
    Applied(Vec<OpResult>),
    Swept(u64),
    Closed,
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The SQLite backend. Cheap to share behind an `Arc`; dropping the last handle lets the
/// worker finish its queue and close the file ([`close`](SqliteStore::close) waits for it).
#[derive(Debug)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, migrates it to [`SCHEMA_VERSION`] and
    /// starts its worker thread.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, opened) = oneshot::channel();
        let worker_path = path.clone();
        std::thread::Builder::new()
            .name("consent-gate-sqlite".into())
            .spawn(move || match open_connection(&worker_path, &options) {
                Ok(conn) => {
                    let _ = ready.send(Ok(()));
                    run_worker(conn, queue, options.max_group.max(1), &options.quotas);
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                }
            })?;
        opened.await.map_err(|_| StoreError::Closed)??;
        tracing::info!(path = %path.display(), schema = SCHEMA_VERSION, "sqlite store open");
        Ok(SqliteStore { jobs, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes the queued jobs, closes the connection (checkpointing the WAL) and waits
    /// until the file is closed.
    pub async fn close(self) -> Result<(), StoreError> {
        match self.submit(Work::Close).await? {
            Done::Closed => Ok(()),
            _ => Err(StoreError::Protocol("close answered another job".into())),
        }
    }

    async fn submit(&self, work: Work) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { work, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Opens the file with the pragmas this backend relies on, then migrates it.
fn open_connection(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(options.busy_timeout)?;
    // Takes effect on a new file only (before WAL mode is set): every commit appends each
    // page it changed to the WAL and syncs it, and a flow's records are a few hundred
    // bytes at random places, so smaller pages mean fewer bytes written and synced per
    // commit (3-13 % more flows per second than with 4 KiB pages, benches/RESULTS.md).
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Protocol(format!(
            "journal_mode is {mode}, not wal"
        )));
    }
    let synchronous = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // Each job runs in a savepoint, and SQLite copies every page a savepoint changes into
    // a sub-journal; on disk (the default past 64 KiB) that copy cost a temporary file and
    // a write per page, more CPU than the job's own SQL. In memory it is a memcpy.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A checkpoint every 4 000 WAL pages (8 MiB) rather than every 1 000: each one copies
    // the pages into the database file and syncs it, and a page changed many times in
    // between is copied once. A few percent more flows per second here.
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per step, and returns the
/// version found. A file from a newer build is refused, never downgraded.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", version as u32 + 1)?;
        tx.commit()?;
        tracing::info!(to = version + 1, "sqlite store migrated");
    }
    Ok(found)
}

fn run_worker(mut conn: Connection, queue: mpsc::Receiver<Job>, max_group: usize, quotas: &Quotas) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < max_group {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (closers, group): (Vec<Job>, Vec<Job>) = group
            .into_iter()
            .partition(|job| matches!(job.work, Work::Close));
        commit_group(&mut conn, group, quotas);
        if !closers.is_empty() {
            let closed = conn.close().map_err(|(_, error)| StoreError::from(error));
            for job in closers {
                let _ = job
                    .reply
                    .send(closed.as_ref().map(|()| Done::Closed).map_err(shared_error));
            }
            return;
        }
    }
}

/// Runs a group of jobs in one transaction, each in a savepoint, and answers them after
/// the commit (or all with the error if the transaction itself failed).
fn commit_group(conn: &mut Connection, mut group: Vec<Job>, quotas: &Quotas) {
    if group.is_empty() {
        return;
    }
    let mut outcomes = Vec::with_capacity(group.len());
    let committed = (|| -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in &mut group {
            // Cached statements rather than `Transaction::savepoint`, which parses its
            // SQL anew for every job.
            tx.prepare_cached("SAVEPOINT job")?.execute([])?;
            let outcome = run_work(&tx, &mut job.work, quotas);
            if outcome.is_err() {
                tx.prepare_cached("ROLLBACK TO job")?.execute([])?; // this job alone
            }
            tx.prepare_cached("RELEASE job")?.execute([])?;
            outcomes.push(outcome);
        }
        tx.commit()?;
        Ok(())
    })();
    match committed {
        Ok(()) => {
            for (job, outcome) in group.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
        Err(error) => {
            tracing::warn!(%error, jobs = group.len(), "sqlite store transaction failed");
            for job in group {
                let _ = job.reply.send(Err(shared_error(&error)));
            }
        }
    }
}

/// One error, told to every job of a failed group.
fn shared_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        other => StoreError::Protocol(other.to_string()),
    }
}

fn run_work(conn: &Connection, work: &mut Work, quotas: &Quotas) -> Result<Done, StoreError> {
    match work {
        Work::Apply(ops, now) => ops
            .iter()
            .map(|op| run_op(conn, op, *now, quotas))
            .collect::<Result<_, _>>()
            .map(Done::Applied),
        Work::TakeThen(kind, key, now, then) => {
            let then = then
                .take()
                .ok_or_else(|| StoreError::Protocol("take_then ran twice".into()))?;
            let (kind, key, now) = (*kind, *key, *now);
            let taken = match run_op(conn, &Op::Take { kind, key }, now, quotas)? {
                OpResult::Take(taken) => taken,
                other => return Err(StoreError::Protocol(format!("take gave {other:?}"))),
            };
            let ops = then(taken);
            for op in &ops {
                op.validate(now)?;
            }
            ops.iter()
                .map(|op| run_op(conn, op, now, quotas))
                .collect::<Result<_, _>>()
                .map(Done::Applied)
        }
        Work::Sweep(now) => {
            let removed = conn
                .prepare_cached(
                    "DELETE FROM entries WHERE rowid IN
                     (SELECT rowid FROM entries WHERE expires_at <= ?1 LIMIT ?2)",
                )?
                .execute(params![secs(*now), SWEEP_CHUNK as i64])?;
            Ok(Done::Swept(removed as u64))
        }
        Work::Close => Err(StoreError::Protocol("close inside a group".into())),
    }
}

/// Seconds as SQLite's signed integer; [`Op::validate`] bounds every expiry, so this
/// cannot wrap.
fn secs(time: UnixTime) -> i64 {
    time.secs().min(i64::MAX as u64) as i64
}

/// Refuses a write that would add an entry to a kind at its quota. Below the quota this
/// costs one lookup of the kind's count; at it, the kind's expired entries are cleared
/// first, since they do not count.
fn check_quota(
    conn: &Connection,
    kind: Kind,
    key: &[u8],
    now: UnixTime,
    quotas: &Quotas,
) -> Result<(), StoreError> {
    let Some(limit) = quotas.of(kind) else {
        return Ok(());
    };
    let label = kind.label();
    let count = |conn: &Connection| -> Result<u64, StoreError> {
        let n: Option<i64> = conn
            .prepare_cached("SELECT n FROM counts WHERE kind = ?1")?
            .query_row(params![label], |row| row.get(0))
            .optional()?;
        Ok(n.unwrap_or(0).max(0) as u64)
    };
    if count(conn)? < limit {
        return Ok(());
    }
    // Replacing an entry, live or expired, adds none.
    let exists = conn
        .prepare_cached("SELECT 1 FROM entries WHERE kind = ?1 AND key = ?2")?
        .exists(params![label, key])?;
    if exists {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM entries WHERE kind = ?1 AND expires_at <= ?2")?
        .execute(params![label, secs(now)])?;
    if count(conn)? < limit {
        Ok(())
    } else {
        Err(StoreError::QuotaExceeded(kind))
    }
}

fn run_op(
    conn: &Connection,
    op: &Op,
    now: UnixTime,
    quotas: &Quotas,
) -> Result<OpResult, StoreError> {
    let label = op.kind().label();
    if let Op::Put { key, .. } | Op::PutIfAbsent { key, .. } = op {
        check_quota(conn, op.kind(), &key[..], now, quotas)?;
    }
    Ok(match op {
        Op::Put {
            key,
            value,
            expires_at,
            ..
        } => {
            conn.prepare_cached(
                "INSERT INTO entries (kind, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, key) DO UPDATE
                 SET value = excluded.value, expires_at = excluded.expires_at",
            )?
            .execute(params![label, &key[..], value, secs(*expires_at)])?;
            OpResult::Put
        }
        Op::PutIfAbsent {
            key,
            value,
            expires_at,
            ..
        } => {
            // The upsert's WHERE lets an expired entry be replaced and a live one stand.
            let written = conn
                .prepare_cached(
                    "INSERT INTO entries (kind, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, key) DO UPDATE
                     SET value = excluded.value, expires_at = excluded.expires_at
                     WHERE entries.expires_at <= ?5",
                )?
                .execute(params![
                    label,
                    &key[..],
                    value,
                    secs(*expires_at),
                    secs(now)
                ])?;
            OpResult::PutIfAbsent(written == 1)
        }
        Op::Take { key, .. } => {
            let taken: Option<(Vec<u8>, i64)> = conn
                .prepare_cached(
                    "DELETE FROM entries WHERE kind = ?1 AND key = ?2 RETURNING value, expires_at",
                )?
                .query_row(params![label, &key[..]], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            OpResult::Take(
                taken
                    .filter(|(_, expires_at)| *expires_at > secs(now))
                    .map(|(value, _)| value),
            )
        }
        Op::Get { key, .. } => OpResult::Get(
            conn.prepare_cached(
                "SELECT value FROM entries WHERE kind = ?1 AND key = ?2 AND expires_at > ?3",
            )?
            .query_row(params![label, &key[..], secs(now)], |row| row.get(0))
            .optional()?,
        ),
        Op::Delete { key, .. } => {
            conn.prepare_cached("DELETE FROM entries WHERE kind = ?1 AND key = ?2")?
                .execute(params![label, &key[..]])?;
            OpResult::Delete
        }
    })
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn apply(&self, ops: Vec<Op>, now: UnixTime) -> StoreFuture<'_, Vec<OpResult>> {
        Box::pin(async move {
            for op in &ops {
                op.validate(now)?;
            }
            if ops.is_empty() {
                return Ok(Vec::new());
            }
            match self.submit(Work::Apply(ops, now)).await? {
                Done::Applied(results) => Ok(results),
                _ => Err(StoreError::Protocol("apply answered another job".into())),
            }
        })
    }

    /// The take and the ops in one savepoint of one group's transaction: one commit
    /// where two calls would wait for two, and ops that fail leave the entry in place.
    fn take_then(
        &self,
        kind: Kind,
        key: Key,
        now: UnixTime,
        then: Then,
    ) -> StoreFuture<'_, Vec<OpResult>> {
        Box::pin(async move {
            kind.validate()?;
            match self
                .submit(Work::TakeThen(kind, key, now, Some(then)))
                .await?
            {
                Done::Applied(results) => Ok(results),
                _ => Err(StoreError::Protocol(
                    "take_then answered another job".into(),
                )),
            }
        })
    }

    fn sweep(&self, now: UnixTime) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut total = 0;
            loop {
                match self.submit(Work::Sweep(now)).await? {
                    Done::Swept(removed) => {
                        total += removed;
                        if removed < SWEEP_CHUNK {
                            return Ok(total);
                        }
                    }
                    _ => return Err(StoreError::Protocol("sweep answered another job".into())),
                }
            }
        })
    }
}
