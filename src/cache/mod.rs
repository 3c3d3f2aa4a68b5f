//! The persistent store (`--state FILE`, SQLite): a callout cache modelled on
//! Exim's hints database, the history of runs, and what each run decided.
//!
//! * **Cache.** One row per address with the decided result and an expiry:
//!   passes 24 h, failures 2 h, a refused null sender 3 h for the whole
//!   domain, DNS-decided failures 1 h (the route TTL); unknown results are
//!   never cached (Exim caches neither deferrals nor I/O errors).
//! * **Domain facts.** Per domain: its route (MX hosts and addresses, JSON)
//!   for the route TTL, so expired senders of a domain routed recently cost
//!   no DNS query; the control answers (random local part → catch-all,
//!   `postmaster@`) for the pass TTL when accepted and the fail TTL when
//!   refused; and a refused null sender for its TTL.
//! * **Runs.** Every run gets a row when it starts and is closed when it ends,
//!   with its counts and whether it completed. An interrupted run's decided
//!   results are ordinary cache rows, so the next run resumes from them.
//! * **Sender states.** The last definitive verdict of each address and since
//!   when it fails: the source of "changes since the last run".
//!
//! The file is in WAL mode, every write is one transaction, and the schema
//! version is kept in `PRAGMA user_version` and migrated on open. One run at
//! a time: a run holds an exclusive lock on `FILE.lock` (released by the
//! kernel even on `kill -9`); a second run fails at once with [`StoreError::Busy`].
//!
//! Layout: this file holds the options, the errors and [`Store`] itself
//! (opening, the read-only view); `schema` the tables and their migrations,
//! `lock` the run lock, `results` the per-address cache, `facts` the
//! per-domain facts, and `history` the runs and the changes between them.
//! Each adds its own `impl Store` block.

mod facts;
mod history;
mod lock;
mod results;
mod schema;

pub use history::{RunCounts, RunResult, RunRow, SenderHistoryRow};
pub use results::{age, CachedResult};
pub use schema::SCHEMA_VERSION;

use lock::take_lock;
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long results stay fresh, by outcome (defaults: Exim's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// Accepted RCPT (Exim `callout_positive_expire`, 24 h).
    pub pass: Duration,
    /// Refused RCPT (Exim `callout_negative_expire`, 2 h).
    pub fail: Duration,
    /// `MAIL FROM:<>` refused: kept for the whole domain (Exim
    /// `callout_domain_negative_expire`, 3 h).
    pub null_sender: Duration,
    /// Routes, and results decided by DNS alone (null MX, NXDOMAIN, no mail
    /// host), 1 h.
    pub route: Duration,
}

impl Default for Ttls {
    fn default() -> Ttls {
        Ttls {
            pass: Duration::from_secs(24 * 3600),
            fail: Duration::from_secs(2 * 3600),
            null_sender: Duration::from_secs(3 * 3600),
            route: Duration::from_secs(3600),
        }
    }
}

/// A source of "now", in seconds since the Unix epoch. Tests fix it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// Everything a run needs to use a store.
#[derive(Debug, Clone)]
pub struct StateOptions {
    pub path: PathBuf,
    pub ttls: Ttls,
    /// Ignore cached results (they are still written).
    pub refresh: bool,
    /// Fixed "now" (seconds since the epoch); the system clock when `None`.
    pub now: Option<i64>,
}

impl StateOptions {
    pub fn clock(&self) -> Box<dyn Clock> {
        match self.now {
            Some(t) => Box::new(FixedClock(t)),
            None => Box::new(SystemClock),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state store {path} is in use by another sendercheck run{}; wait for it to finish, or use another --state file", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy { path: PathBuf, pid: Option<u32> },
    #[error("cannot open the state store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state store {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state store {path} has schema version {found}, newer than this sendercheck understands ({SCHEMA_VERSION}); upgrade sendercheck or use another --state file")]
    TooNew { path: PathBuf, found: i64 },
    #[error("no state store at {0} (no run has used it yet)")]
    Missing(PathBuf),
}

/// An open store. A writable store holds the run lock until dropped.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    _lock: Option<File>,
}

/// An enum as it is stored in a TEXT column: its serde name.
fn code<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The enum a TEXT column names; `None` for a name this build does not know.
fn from_code<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

impl Store {
    /// Open (creating it and its directory) for a run: take the run lock,
    /// then migrate the schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let lock = take_lock(path)?;
        let conn = Connection::open(path).map_err(sql_error(path))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
        };
        store.setup()?;
        Ok(store)
    }

    /// Open an existing store for reading (`history`); no lock, so it works
    /// while a run is writing.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_error(path))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            _lock: None,
        };
        store.sql(store.conn.busy_timeout(Duration::from_secs(5)))?;
        let version: i64 = store.sql(
            store
                .conn
                .pragma_query_value(None, "user_version", |r| r.get(0)),
        )?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
            });
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T, StoreError> {
        r.map_err(sql_error(&self.path))
    }

    /// `PRAGMA integrity_check` ("ok" when sound).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.sql(
            self.conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0)),
        )
    }
}

/// Maps a SQLite error to `StoreError::Sql` naming the store's file. A free
/// function, so it can borrow the path while a transaction borrows the
/// connection.
fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sql {
        path: path.to_path_buf(),
        source,
    }
}
