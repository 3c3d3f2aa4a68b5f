//! The layout of the store and how a file is brought up to it: the schema
//! version lives in `PRAGMA user_version`, each migration step runs in its own
//! transaction, and a file newer than this build is refused
//! ([`StoreError::TooNew`]). Also the connection settings a writer opens with
//! (WAL, `synchronous=NORMAL`, a busy timeout).

use super::{sql_error, Store, StoreError};
use std::time::Duration;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const MIGRATIONS: &[&str] = &[
    // 1: the first layout.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        input TEXT NOT NULL,
        options TEXT NOT NULL,
        pid INTEGER NOT NULL,
        rows INTEGER NOT NULL DEFAULT 0,
        pass INTEGER NOT NULL DEFAULT 0,
        fail INTEGER NOT NULL DEFAULT 0,
        unknown INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        complete INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE results (
        address TEXT PRIMARY KEY,
        domain TEXT NOT NULL,
        verdict TEXT NOT NULL,
        class TEXT NOT NULL,
        reason TEXT NOT NULL,
        flags TEXT NOT NULL,
        exim TEXT,
        postfix TEXT,
        evidence TEXT,
        mx_hosts TEXT NOT NULL,
        decided_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        run_id INTEGER NOT NULL
    );
    CREATE INDEX results_expiry ON results(expires_at);
    CREATE TABLE domains (
        domain TEXT NOT NULL,
        fact TEXT NOT NULL,
        value TEXT NOT NULL,
        decided_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (domain, fact)
    );
    CREATE TABLE history (
        run_id INTEGER NOT NULL,
        address TEXT NOT NULL,
        verdict TEXT NOT NULL,
        class TEXT NOT NULL,
        reason TEXT NOT NULL,
        cached INTEGER NOT NULL,
        decided_at INTEGER NOT NULL,
        PRIMARY KEY (address, run_id)
    ) WITHOUT ROWID;
    CREATE TABLE senders (
        address TEXT PRIMARY KEY,
        verdict TEXT NOT NULL,
        class TEXT NOT NULL,
        fail_since INTEGER,
        run_id INTEGER NOT NULL
    ) WITHOUT ROWID;",
];

impl Store {
    pub(super) fn setup(&mut self) -> Result<(), StoreError> {
        self.sql(self.conn.busy_timeout(Duration::from_secs(5)))?;
        let mode: String = self.sql(
            self.conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)),
        )?;
        debug_assert_eq!(mode.to_lowercase(), "wal");
        self.sql(self.conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
        ))?;
        let version: i64 = self.sql(
            self.conn
                .pragma_query_value(None, "user_version", |r| r.get(0)),
        )?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let err = sql_error(&self.path);
            let tx = self.conn.transaction().map_err(&err)?;
            tx.execute_batch(step)
                .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .and_then(|_| tx.commit())
                .map_err(&err)?;
        }
        Ok(())
    }
}
