//! The per-address callout cache (table `results`): one decided result per
//! address, fresh for a time that depends on its outcome ([`Ttls`]); unknown
//! results are never cached. A refused null sender is also written as a
//! domain fact here, in the same transaction. [`age`] says how old a cached
//! result is, for reports.

use super::{code, from_code, sql_error, Store, StoreError, Ttls};
use crate::record::Evidence;
use crate::verdict::{Class, Decision, Flag, Verdict};
use rusqlite::params;
use std::collections::HashMap;
use std::time::Duration;

/// One cached per-address result.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResult {
    pub address: String,
    pub domain: String,
    pub verdict: Verdict,
    pub reason: String,
    pub flags: Vec<Flag>,
    pub exim: Option<Decision>,
    pub postfix: Option<Decision>,
    pub evidence: Option<Evidence>,
    pub mx_hosts: Vec<String>,
    /// When the result was decided (seconds since the epoch).
    pub decided_at: i64,
}

impl Store {
    /// Every cached result still fresh at `now`, by address.
    pub fn fresh_results(&self, now: i64) -> Result<HashMap<String, CachedResult>, StoreError> {
        let mut out = HashMap::new();
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT address, domain, verdict, reason, flags, exim, postfix, evidence, mx_hosts, decided_at
             FROM results WHERE expires_at > ?1",
        ))?;
        let rows = self.sql(stmt.query_map([now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, i64>(9)?,
            ))
        }))?;
        for row in rows {
            let (address, domain, verdict, reason, flags, exim, postfix, evidence, mx, at) =
                self.sql(row)?;
            // A row this build cannot read is simply not a cache hit.
            let Some(verdict) = from_code::<Verdict>(&verdict) else {
                continue;
            };
            let flags: Vec<String> = serde_json::from_str(&flags).unwrap_or_default();
            out.insert(
                address.clone(),
                CachedResult {
                    address,
                    domain,
                    verdict,
                    reason,
                    flags: flags.iter().filter_map(|f| from_code(f)).collect(),
                    exim: exim.as_deref().and_then(from_code),
                    postfix: postfix.as_deref().and_then(from_code),
                    evidence: evidence.and_then(|e| serde_json::from_str(&e).ok()),
                    mx_hosts: serde_json::from_str(&mx).unwrap_or_default(),
                    decided_at: at,
                },
            );
        }
        Ok(out)
    }

    /// Cache decided results (one transaction). Unknowns are not cached;
    /// a refused null sender is also remembered for its whole domain.
    pub fn save_results(
        &mut self,
        run_id: i64,
        ttls: &Ttls,
        results: &[CachedResult],
    ) -> Result<(), StoreError> {
        let err = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO results
                 (address, domain, verdict, class, reason, flags, exim, postfix, evidence, mx_hosts, decided_at, expires_at, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(&err)?;
            let mut drop_stale = tx
                .prepare_cached("DELETE FROM results WHERE address = ?1")
                .map_err(&err)?;
            let mut domain_fact = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO domains (domain, fact, value, decided_at, expires_at)
                 VALUES (?1, 'null-sender-refused', ?2, ?3, ?4)",
                )
                .map_err(&err)?;
            for r in results {
                let Some(ttl) = ttl_for(ttls, r) else {
                    // An unknown replaces nothing fresh, but an expired entry
                    // must not linger as if it were news.
                    drop_stale.execute([&r.address]).map_err(&err)?;
                    continue;
                };
                let flags: Vec<String> = r.flags.iter().map(code).collect();
                put.execute(params![
                    r.address,
                    r.domain,
                    code(&r.verdict),
                    code(&r.verdict.class()),
                    r.reason,
                    serde_json::to_string(&flags).unwrap_or_default(),
                    r.exim.as_ref().map(code),
                    r.postfix.as_ref().map(code),
                    r.evidence
                        .as_ref()
                        .and_then(|e| serde_json::to_string(e).ok()),
                    serde_json::to_string(&r.mx_hosts).unwrap_or_default(),
                    r.decided_at,
                    r.decided_at.saturating_add(ttl.as_secs() as i64),
                    run_id,
                ])
                .map_err(&err)?;
                if r.verdict == Verdict::NullSenderRejected {
                    let said = r
                        .evidence
                        .as_ref()
                        .map(|e| format!("{} said: {}", e.mx_host, e.reply.join(" / ")))
                        .unwrap_or_default();
                    domain_fact
                        .execute(params![
                            r.domain,
                            said,
                            r.decided_at,
                            r.decided_at
                                .saturating_add(ttls.null_sender.as_secs() as i64)
                        ])
                        .map_err(&err)?;
                }
            }
        }
        tx.commit().map_err(&err)
    }
}

/// How long a result stays fresh; `None`: not cached.
fn ttl_for(ttls: &Ttls, r: &CachedResult) -> Option<Duration> {
    match r.verdict {
        Verdict::NullSenderRejected => Some(ttls.null_sender),
        Verdict::NullMx | Verdict::NoDomain | Verdict::NoMailHost => Some(ttls.route),
        Verdict::InvalidAddress => None,
        v => match v.class() {
            Class::Pass => Some(ttls.pass),
            Class::Fail => Some(ttls.fail),
            Class::Unknown => None,
        },
    }
    .filter(|d| !d.is_zero())
}

/// "3h 12m", "45s": how old a cached result is.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(addr: &str, verdict: Verdict, at: i64) -> CachedResult {
        CachedResult {
            address: addr.to_string(),
            domain: addr.rsplit('@').next().unwrap().to_string(),
            verdict,
            reason: "r".into(),
            flags: vec![Flag::CatchAll],
            exim: Some(Decision::Pass),
            postfix: None,
            evidence: None,
            mx_hosts: vec!["mx.example".into()],
            decided_at: at,
        }
    }

    #[test]
    fn ttls_by_outcome_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = Store::open(&path).unwrap();
        let run = s.begin_run(1000, "in.csv", "{}").unwrap();
        let ttls = Ttls::default();
        s.save_results(
            run,
            &ttls,
            &[
                result("a@x.test", Verdict::Receivable, 1000),
                result("b@x.test", Verdict::Unreceivable, 1000),
                result("c@y.test", Verdict::NullSenderRejected, 1000),
                result("d@x.test", Verdict::Tempfail, 1000),
            ],
        )
        .unwrap();
        let fresh = s.fresh_results(1000 + 3600).unwrap();
        assert_eq!(fresh.len(), 3, "unknowns are never cached");
        assert_eq!(
            fresh["a@x.test"],
            result("a@x.test", Verdict::Receivable, 1000)
        );
        let later = s.fresh_results(1000 + 2 * 3600 + 1).unwrap();
        assert!(later.contains_key("a@x.test") && !later.contains_key("b@x.test"));
        assert!(later.contains_key("c@y.test"));
        assert!(s.fresh_results(1000 + 24 * 3600).unwrap().is_empty());
        assert!(s
            .null_sender_refusals(1000 + 3 * 3600 - 1)
            .unwrap()
            .contains_key("y.test"));
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(3 * 3600 + 12 * 60), "3h 12m");
        assert_eq!(age(2 * 86_400 + 3600), "2d 1h");
    }
}
