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

mod facts;
mod lock;
mod results;
mod schema;

pub use results::{age, CachedResult};
pub use schema::SCHEMA_VERSION;

use crate::record::{Change, Changes, PreviousRun};
use crate::verdict::{Class, Verdict};
use lock::take_lock;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
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

/// One address's result in a run, for the history and the sender states.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub address: String,
    pub verdict: Verdict,
    pub reason: String,
    pub cached: bool,
    pub decided_at: i64,
}

/// A row of `sendercheck history`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub input: String,
    pub options: String,
    pub rows: u64,
    pub pass: u64,
    pub fail: u64,
    pub unknown: u64,
    pub cached: u64,
    pub complete: bool,
}

/// A row of `sendercheck history --sender`.
#[derive(Debug, Clone, PartialEq)]
pub struct SenderHistoryRow {
    pub run_id: i64,
    pub run_started_at: i64,
    pub verdict: Verdict,
    pub reason: String,
    pub cached: bool,
    pub decided_at: i64,
}

/// Counts a run is closed with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub rows: u64,
    pub pass: u64,
    pub fail: u64,
    pub unknown: u64,
    pub cached: u64,
}

/// The last definitive state of an address.
#[derive(Debug, Clone, PartialEq)]
struct SenderState {
    verdict: Verdict,
    fail_since: Option<i64>,
}

/// An open store. A writable store holds the run lock until dropped.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    _lock: Option<File>,
}

fn code<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

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
        let conn = Connection::open(path).map_err(|source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        })?;
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
        .map_err(|source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        })?;
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
        r.map_err(|source| StoreError::Sql {
            path: self.path.clone(),
            source,
        })
    }

    /// Record the start of a run; returns its id.
    pub fn begin_run(&mut self, now: i64, input: &str, options: &str) -> Result<i64, StoreError> {
        let r = self.conn.execute(
            "INSERT INTO runs (started_at, input, options, pid) VALUES (?1, ?2, ?3, ?4)",
            params![now, input, options, std::process::id()],
        );
        self.sql(r)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The run before `run_id` (the one "changes" compare against).
    pub fn previous_run(&self, run_id: i64) -> Result<Option<PreviousRun>, StoreError> {
        let r = self
            .conn
            .query_row(
                "SELECT id, started_at, complete FROM runs WHERE id < ?1 AND finished_at IS NOT NULL
                 ORDER BY id DESC LIMIT 1",
                [run_id],
                |r| {
                    Ok(PreviousRun {
                        id: r.get(0)?,
                        started_at: crate::record::rfc3339(r.get(1)?),
                        complete: r.get::<_, i64>(2)? != 0,
                    })
                },
            )
            .optional();
        self.sql(r)
    }

    fn sender_states(&self) -> Result<HashMap<String, SenderState>, StoreError> {
        let mut stmt = self.sql(
            self.conn
                .prepare("SELECT address, verdict, fail_since FROM senders"),
        )?;
        let rows = self.sql(stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        }))?;
        let mut out = HashMap::new();
        for row in rows {
            let (a, v, since) = self.sql(row)?;
            if let Some(verdict) = from_code(&v) {
                out.insert(
                    a,
                    SenderState {
                        verdict,
                        fail_since: since,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Close a run: its per-address results go to the history, the sender
    /// states move on, the run row gets its end, counts and completeness —
    /// all in one transaction. Returns the changes since the previous run
    /// (`None` on the first run of a store).
    pub fn finish_run(
        &mut self,
        run_id: i64,
        now: i64,
        counts: RunCounts,
        complete: bool,
        results: &[RunResult],
    ) -> Result<Option<Changes>, StoreError> {
        let previous = self.previous_run(run_id)?;
        let states = self.sender_states()?;
        let mut changes = previous.map(|previous_run| Changes {
            previous_run,
            ..Changes::default()
        });
        let path = self.path.clone();
        let err = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut hist = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO history (run_id, address, verdict, class, reason, cached, decided_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            let mut state = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO senders (address, verdict, class, fail_since, run_id)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            for r in results {
                let class = r.verdict.class();
                hist.execute(params![
                    run_id,
                    r.address,
                    code(&r.verdict),
                    code(&class),
                    r.reason,
                    r.cached,
                    r.decided_at
                ])
                .map_err(err)?;
                if class == Class::Unknown {
                    continue;
                }
                let before = states.get(&r.address);
                let was_failing = before.is_some_and(|s| s.verdict.class() == Class::Fail);
                let fail_since = match class {
                    Class::Fail if was_failing => before
                        .and_then(|s| s.fail_since)
                        .unwrap_or(r.decided_at)
                        .min(r.decided_at),
                    Class::Fail => r.decided_at,
                    _ => 0,
                };
                let unchanged = before.is_some_and(|s| {
                    s.verdict == r.verdict
                        && s.fail_since == (class == Class::Fail).then_some(fail_since)
                });
                if !unchanged {
                    state
                        .execute(params![
                            r.address,
                            code(&r.verdict),
                            code(&class),
                            (class == Class::Fail).then_some(fail_since),
                            run_id
                        ])
                        .map_err(err)?;
                }
                let Some(ch) = changes.as_mut() else {
                    continue;
                };
                let change = |since: Option<i64>| Change {
                    address: r.address.clone(),
                    verdict: r.verdict,
                    previous: before.map(|s| s.verdict),
                    since: since.map(crate::record::rfc3339),
                };
                match class {
                    Class::Fail if was_failing => ch.still_failing.push(change(Some(fail_since))),
                    Class::Fail => ch.newly_failing.push(change(Some(fail_since))),
                    Class::Pass if was_failing => ch.newly_fixed.push(change(None)),
                    _ => {}
                }
            }
            tx.execute(
                "UPDATE runs SET finished_at = ?2, rows = ?3, pass = ?4, fail = ?5, unknown = ?6,
                 cached = ?7, complete = ?8 WHERE id = ?1",
                params![
                    run_id,
                    now,
                    counts.rows as i64,
                    counts.pass as i64,
                    counts.fail as i64,
                    counts.unknown as i64,
                    counts.cached as i64,
                    complete
                ],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        if let Some(ch) = changes.as_mut() {
            for list in [
                &mut ch.newly_failing,
                &mut ch.newly_fixed,
                &mut ch.still_failing,
            ] {
                list.sort_by(|a, b| a.address.cmp(&b.address));
            }
        }
        Ok(changes)
    }

    /// Runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT id, started_at, finished_at, input, options, rows, pass, fail, unknown, cached, complete
             FROM runs ORDER BY id DESC LIMIT ?1",
        ))?;
        let rows = self.sql(stmt.query_map([limit as i64], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                started_at: r.get(1)?,
                finished_at: r.get(2)?,
                input: r.get(3)?,
                options: r.get(4)?,
                rows: r.get::<_, i64>(5)? as u64,
                pass: r.get::<_, i64>(6)? as u64,
                fail: r.get::<_, i64>(7)? as u64,
                unknown: r.get::<_, i64>(8)? as u64,
                cached: r.get::<_, i64>(9)? as u64,
                complete: r.get::<_, i64>(10)? != 0,
            })
        }))?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// One address's results over time, oldest first (the address compared
    /// without regard to case).
    pub fn sender_history(&self, address: &str) -> Result<Vec<SenderHistoryRow>, StoreError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT h.run_id, r.started_at, h.verdict, h.reason, h.cached, h.decided_at
             FROM history h JOIN runs r ON r.id = h.run_id
             WHERE h.address = ?1 COLLATE NOCASE ORDER BY h.run_id, h.address",
        ))?;
        let rows = self.sql(stmt.query_map([address], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, i64>(5)?,
            ))
        }))?;
        let mut out = Vec::new();
        for row in rows {
            let (run_id, started, verdict, reason, cached, at) = self.sql(row)?;
            if let Some(verdict) = from_code(&verdict) {
                out.push(SenderHistoryRow {
                    run_id,
                    run_started_at: started,
                    verdict,
                    reason,
                    cached,
                    decided_at: at,
                });
            }
        }
        Ok(out)
    }

    /// `PRAGMA integrity_check` ("ok" when sound).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.sql(
            self.conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let rr = |a: &str, v: Verdict, at: i64| RunResult {
            address: a.into(),
            verdict: v,
            reason: String::new(),
            cached: false,
            decided_at: at,
        };
        let r1 = s.begin_run(100, "in", "").unwrap();
        let first = s
            .finish_run(
                r1,
                100,
                RunCounts::default(),
                true,
                &[
                    rr("fixed@x", Verdict::Unreceivable, 100),
                    rr("broken@x", Verdict::Receivable, 100),
                    rr("still@x", Verdict::Unreceivable, 100),
                ],
            )
            .unwrap();
        assert!(first.is_none());
        let r2 = s.begin_run(200, "in", "").unwrap();
        let ch = s
            .finish_run(
                r2,
                200,
                RunCounts::default(),
                true,
                &[
                    rr("fixed@x", Verdict::Receivable, 200),
                    rr("broken@x", Verdict::Unreceivable, 200),
                    rr("still@x", Verdict::Unreceivable, 200),
                ],
            )
            .unwrap()
            .unwrap();
        assert_eq!(ch.previous_run.id, r1);
        assert_eq!(ch.newly_fixed[0].address, "fixed@x");
        assert_eq!(ch.newly_failing[0].address, "broken@x");
        assert_eq!(ch.still_failing[0].address, "still@x");
        assert_eq!(
            ch.still_failing[0].since.as_deref(),
            Some("1970-01-01T00:01:40Z")
        );
        let h = s.sender_history("fixed@x").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].verdict, Verdict::Receivable);
    }
}
