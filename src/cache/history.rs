//! Runs and what they decided (tables `runs`, `history` and `senders`): a
//! run's row from [`Store::begin_run`] to [`Store::finish_run`], every
//! address's result in every run, the last definitive state of each sender,
//! and from these the changes since the previous run. Read back by
//! `sendercheck history`.

use super::{code, from_code, sql_error, Store, StoreError};
use crate::record::{Change, Changes, PreviousRun};
use crate::verdict::{Class, Verdict};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

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

impl Store {
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
        let err = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut hist = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO history (run_id, address, verdict, class, reason, cached, decided_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(&err)?;
            let mut state = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO senders (address, verdict, class, fail_since, run_id)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&err)?;
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
                .map_err(&err)?;
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
                        .map_err(&err)?;
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
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
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
