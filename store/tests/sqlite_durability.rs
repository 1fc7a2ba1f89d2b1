//! SQLite durability (R62): the data is there after a reopen, after `kill -9` in the
//! middle of a write load (every write the store answered is on disk, intact), and the
//! schema is versioned and migrated.
#![cfg(feature = "sqlite")]

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use consent_gate_store::{
    Kind, SCHEMA_VERSION, SqliteOptions, SqliteStore, Store, StoreError, UnixTime, migrate,
};

const NOW: UnixTime = UnixTime::from_secs(1_900_000_000);
const LATER: UnixTime = UnixTime::from_secs(1_900_003_600);

/// Set by the kill test for the child process it starts: the database to write to.
const CHILD_DB: &str = "CG_STORE_CRASH_CHILD_DB";
/// Writers in the child, so that the kill lands with commits in flight.
const CHILD_WRITERS: u64 = 4;
/// Committed writes the parent waits for before it kills the child.
const KILL_AFTER: usize = 1_500;

fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

fn key(writer: u64, n: u64) -> [u8; 32] {
    let mut key = [0xa5u8; 32];
    key[..8].copy_from_slice(&writer.to_be_bytes());
    key[8..16].copy_from_slice(&n.to_be_bytes());
    key
}

/// The value written under `key`: its length and bytes follow from the key, so the
/// parent can tell an intact entry from a torn one.
fn value_for(key: &[u8; 32]) -> Vec<u8> {
    let len = 64 + usize::from(key[15]) * 37;
    (0..len).map(|i| key[i % 32] ^ (i as u8)).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    for (i, slot) in key.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    store
        .put(Kind::Client, key(0, 1), b"client".to_vec(), LATER, NOW)
        .await
        .unwrap();
    store
        .put(Kind::Grant, key(0, 2), value_for(&key(0, 2)), LATER, NOW)
        .await
        .unwrap();
    store
        .put(Kind::Code, key(0, 3), b"taken".to_vec(), LATER, NOW)
        .await
        .unwrap();
    assert!(
        store
            .take(Kind::Code, key(0, 3), NOW)
            .await
            .unwrap()
            .is_some()
    );
    store.close().await.unwrap();

    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .get(Kind::Client, key(0, 1), NOW)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"client"[..])
    );
    assert_eq!(
        store.get(Kind::Grant, key(0, 2), NOW).await.unwrap(),
        Some(value_for(&key(0, 2)))
    );
    assert_eq!(
        store.get(Kind::Code, key(0, 3), NOW).await.unwrap(),
        None,
        "a take stays taken"
    );
    assert_eq!(store.path(), path);
    // A second handle on the same file (another process, say) sees the same data.
    let other = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    assert!(
        other
            .get(Kind::Client, key(0, 1), NOW)
            .await
            .unwrap()
            .is_some()
    );
}

#[test]
fn the_schema_is_versioned_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    assert_eq!(
        migrate(&mut conn).unwrap(),
        0,
        "a new file starts at version 0"
    );
    assert_eq!(
        migrate(&mut conn).unwrap(),
        SCHEMA_VERSION,
        "and is at the current version after"
    );
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let refused = migrate(&mut conn);
    assert!(
        matches!(refused, Err(StoreError::SchemaTooNew { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_file_from_a_newer_build_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let refused = SqliteStore::open(&path, SqliteOptions::default()).await;
    assert!(
        matches!(refused, Err(StoreError::SchemaTooNew { found: 99, .. })),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("store.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let started = Instant::now();
    let writers: Vec<_> = (0..16u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    store
                        .put(Kind::Grant, key(w, n), value_for(&key(w, n)), LATER, NOW)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    say(&format!(
        "sqlite: 800 durable puts from 16 tasks in {:?}",
        started.elapsed()
    ));
    for w in 0..16 {
        for n in 0..50 {
            assert_eq!(
                store.get(Kind::Grant, key(w, n), NOW).await.unwrap(),
                Some(value_for(&key(w, n)))
            );
        }
    }
}

/// Jobs that fail and jobs that succeed, submitted together so that they share
/// commits: each failing job is undone alone (its take is back, its first write gone),
/// and every other job of its group lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_undone_alone_in_a_shared_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("store.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    for n in 0..64 {
        store
            .put(Kind::Consent, key(7, n), vec![7], LATER, NOW)
            .await
            .unwrap();
    }
    let jobs: Vec<_> = (0..64u64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                if n % 2 == 0 {
                    // A take, one write, then a write that is refused: all undone.
                    let then: consent_gate_store::Then = Box::new(move |taken| {
                        assert_eq!(taken, Some(vec![7]));
                        vec![
                            consent_gate_store::Op::Put {
                                kind: Kind::Transaction,
                                key: key(8, n),
                                value: vec![8],
                                expires_at: LATER,
                            },
                            consent_gate_store::Op::Put {
                                kind: Kind::Transaction,
                                key: key(9, n),
                                value: vec![9],
                                expires_at: NOW,
                            },
                        ]
                    });
                    let refused = store.take_then(Kind::Consent, key(7, n), NOW, then).await;
                    assert!(refused.is_err(), "{refused:?}");
                } else {
                    let then: consent_gate_store::Then = Box::new(move |taken| {
                        assert_eq!(taken, Some(vec![7]));
                        vec![consent_gate_store::Op::Put {
                            kind: Kind::Transaction,
                            key: key(8, n),
                            value: vec![8],
                            expires_at: LATER,
                        }]
                    });
                    store
                        .take_then(Kind::Consent, key(7, n), NOW, then)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for job in jobs {
        job.await.unwrap();
    }
    for n in 0..64 {
        let (pending, written) = (
            store.get(Kind::Consent, key(7, n), NOW).await.unwrap(),
            store.get(Kind::Transaction, key(8, n), NOW).await.unwrap(),
        );
        if n % 2 == 0 {
            assert_eq!((pending, written), (Some(vec![7]), None), "job {n} undone");
        } else {
            assert_eq!((pending, written), (None, Some(vec![8])), "job {n} landed");
        }
    }
}

/// A new file gets the backend's page size; a file made with SQLite's default keeps its
/// own (the setting cannot change an existing file, and need not).
#[tokio::test]
async fn new_files_get_small_pages_and_old_files_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let page_size = |path: &std::path::Path| -> u32 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap()
    };
    let new = dir.path().join("new.db");
    SqliteStore::open(&new, SqliteOptions::default())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    assert_eq!(page_size(&new), 2048);

    let old = dir.path().join("old.db");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch("CREATE TABLE before (x); PRAGMA user_version = 0;")
        .unwrap();
    let store = SqliteStore::open(&old, SqliteOptions::default())
        .await
        .unwrap();
    store
        .put(Kind::Grant, key(1, 1), vec![1], LATER, NOW)
        .await
        .unwrap();
    store.close().await.unwrap();
    assert_eq!(page_size(&old), 4096);
}

/// The child side of the kill test: does nothing unless the parent set [`CHILD_DB`].
/// Then it writes until killed (or for 60 s at most), printing each key after its
/// `put` returned, i.e. after its commit.
#[test]
fn crash_child_writes_until_killed() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(
            SqliteStore::open(&path, SqliteOptions::default())
                .await
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let writers: Vec<_> = (0..CHILD_WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0.. {
                        if Instant::now() > deadline {
                            break;
                        }
                        let k = key(w, n);
                        store
                            .put(Kind::Grant, k, value_for(&k), LATER, NOW)
                            .await
                            .unwrap();
                        // One write of the whole line: a pipe write under 4 KiB is atomic.
                        let line = format!("committed {}\n", hex(&k));
                        std::io::stdout().lock().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            let _ = writer.await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_committed_is_lost_to_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_writes_until_killed",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, reported) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap_or(0) > 0 {
            // A line cut by the kill has no newline: its write was not finished.
            if let Some(k) = line
                .strip_prefix("committed ")
                .filter(|l| l.ends_with('\n'))
                .and_then(unhex)
            {
                let _ = lines.send(k);
            }
            line.clear();
        }
    });

    let started = Instant::now();
    let mut committed = Vec::new();
    while committed.len() < KILL_AFTER {
        match reported.recv_timeout(Duration::from_secs(60)) {
            Ok(k) => committed.push(k),
            Err(error) => panic!(
                "the child reported {} commits, then {error:?}",
                committed.len()
            ),
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no checkpoint, no close
    let status = child.wait().unwrap();
    reader.join().unwrap();
    committed.extend(reported.try_iter());
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    assert_eq!(signal, Some(9), "the child died of SIGKILL: {status:?}");

    let conn = rusqlite::Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM entries", [], |row| row.get(0))
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    for k in &committed {
        let found = store.get(Kind::Grant, *k, NOW).await.unwrap();
        assert_eq!(
            found.as_ref(),
            Some(&value_for(k)),
            "committed key {} lost or torn",
            hex(k)
        );
    }
    say(&format!(
        "sqlite kill -9: child killed by signal {signal:?} after {:?}; {} writes reported committed, \
         all {} found intact after reopen ({rows} rows in the file, integrity_check ok)",
        started.elapsed(),
        committed.len(),
        committed.len(),
    ));
    assert!(rows as usize >= committed.len());
}

/// A file written at schema version 1 (before the per-kind counts) is migrated with its
/// entries counted: a quota applies to what the file already held (R64).
#[tokio::test]
async fn a_version_1_file_migrates_with_its_entries_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        // Version 1's schema, as released.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE entries (
                kind TEXT NOT NULL,
                key BLOB NOT NULL,
                value BLOB NOT NULL,
                expires_at INTEGER NOT NULL,
                PRIMARY KEY (kind, key)
            );
            CREATE INDEX entries_by_expiry ON entries (expires_at);
            PRAGMA user_version = 1;",
        )
        .unwrap();
        for n in 0..2u64 {
            conn.execute(
                "INSERT INTO entries VALUES ('client', ?1, x'00', ?2)",
                rusqlite::params![&key(9, n)[..], LATER.secs() as i64],
            )
            .unwrap();
        }
    }
    let options = SqliteOptions {
        quotas: consent_gate_store::Quotas::none().limit(Kind::Client, 3),
        ..Default::default()
    };
    let store = SqliteStore::open(&path, options).await.unwrap();
    assert!(
        store
            .get(Kind::Client, key(9, 0), NOW)
            .await
            .unwrap()
            .is_some()
    );
    store
        .put(Kind::Client, key(9, 2), vec![1], LATER, NOW)
        .await
        .unwrap();
    let refused = store
        .put(Kind::Client, key(9, 3), vec![1], LATER, NOW)
        .await;
    assert!(
        matches!(refused, Err(StoreError::QuotaExceeded(Kind::Client))),
        "{refused:?}"
    );
    store.close().await.unwrap();
}
