//! Per-domain facts (table `domains`, one row per domain and fact, each with
//! its own expiry): a domain's route, its control answers (random local part
//! → catch-all, `postmaster@`) and a refused null sender. A domain learned
//! recently costs no DNS query and no control callout. The null-sender fact
//! is written by `save_results` (in `results`), with the result that saw it.

use super::{sql_error, Store, StoreError, Ttls};
use crate::dns::{Route, RouteOutcome};
use crate::evidence::DomainProbes;
use rusqlite::params;
use std::collections::HashMap;
use std::time::Duration;

/// One row of the `domains` table.
struct DomainFact {
    domain: String,
    fact: &'static str,
    /// JSON, or the refusal text for a refused null sender.
    value: String,
    decided_at: i64,
    expires_at: i64,
}

impl DomainFact {
    /// A fact decided at `at` that stays fresh for `ttl`.
    fn new(domain: &str, fact: &'static str, value: String, at: i64, ttl: Duration) -> DomainFact {
        DomainFact {
            domain: domain.to_string(),
            fact,
            value,
            decided_at: at,
            expires_at: at.saturating_add(ttl.as_secs() as i64),
        }
    }
}

impl Store {
    /// `(domain, decided_at, value)` of every fresh row of one domain fact.
    fn fresh_facts(&self, now: i64, fact: &str) -> Result<Vec<(String, i64, String)>, StoreError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT domain, decided_at, value FROM domains WHERE fact = ?1 AND expires_at > ?2",
        ))?;
        let rows = self.sql(stmt.query_map(params![fact, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        }))?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// Write domain facts in one transaction.
    fn put_facts(&mut self, facts: &[DomainFact]) -> Result<(), StoreError> {
        if facts.is_empty() {
            return Ok(());
        }
        let err = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO domains (domain, fact, value, decided_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&err)?;
            for f in facts {
                put.execute(params![
                    f.domain,
                    f.fact,
                    f.value,
                    f.decided_at,
                    f.expires_at
                ])
                .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// Domains whose MX refused `MAIL FROM:<>`, still fresh at `now`, with
    /// when it was seen and the refusal.
    pub fn null_sender_refusals(
        &self,
        now: i64,
    ) -> Result<HashMap<String, (i64, String)>, StoreError> {
        Ok(self
            .fresh_facts(now, "null-sender-refused")?
            .into_iter()
            .map(|(d, at, said)| (d, (at, said)))
            .collect())
    }

    /// Routes (MX hosts and their addresses, or a DNS-decided outcome) still
    /// fresh at `now`, with when they were learned. Routes learned with and
    /// without `--allow-private-mx` are kept apart: the option changes them.
    pub fn fresh_routes(
        &self,
        now: i64,
        allow_private: bool,
    ) -> Result<HashMap<String, (i64, Route)>, StoreError> {
        Ok(self
            .fresh_facts(now, route_fact(allow_private))?
            .into_iter()
            // A row this build cannot read is simply not a cache hit.
            .filter_map(|(d, at, v)| Some((d, (at, serde_json::from_str(&v).ok()?))))
            .collect())
    }

    /// Cache routes for `ttl` (one transaction). DNS errors say nothing
    /// about the domain and are never cached.
    pub fn save_routes(
        &mut self,
        ttl: Duration,
        allow_private: bool,
        at: i64,
        routes: &[(&str, &Route)],
    ) -> Result<(), StoreError> {
        if ttl.is_zero() {
            return Ok(());
        }
        let facts: Vec<_> = routes
            .iter()
            .filter(|(_, r)| !matches!(r.outcome, RouteOutcome::DnsError { .. }))
            .filter_map(|(d, r)| {
                let value = serde_json::to_string(r).ok()?;
                Some(DomainFact::new(
                    d,
                    route_fact(allow_private),
                    value,
                    at,
                    ttl,
                ))
            })
            .collect();
        self.put_facts(&facts)
    }

    /// The domains' control answers (random local part, postmaster@) still
    /// fresh at `now`.
    pub fn fresh_controls(&self, now: i64) -> Result<HashMap<String, DomainProbes>, StoreError> {
        let mut out: HashMap<String, DomainProbes> = HashMap::new();
        for (d, _, v) in self.fresh_facts(now, FACT_CATCH_ALL)? {
            if let Ok(r) = serde_json::from_str(&v) {
                out.entry(d).or_default().random = Some(r);
            }
        }
        for (d, _, v) in self.fresh_facts(now, FACT_POSTMASTER)? {
            if let Ok(r) = serde_json::from_str(&v) {
                out.entry(d).or_default().postmaster = Some(r);
            }
        }
        Ok(out)
    }

    /// Cache control answers: an accepted RCPT for the pass TTL, a refused
    /// one for the fail TTL, a temporary one not at all.
    pub fn save_controls(
        &mut self,
        ttls: &Ttls,
        at: i64,
        controls: &[(String, DomainProbes)],
    ) -> Result<(), StoreError> {
        let mut facts = Vec::new();
        for (domain, probes) in controls {
            for (fact, reply) in [
                (FACT_CATCH_ALL, &probes.random),
                (FACT_POSTMASTER, &probes.postmaster),
            ] {
                let Some(reply) = reply else { continue };
                let ttl = if reply.is_positive() {
                    ttls.pass
                } else if reply.is_permanent() {
                    ttls.fail
                } else {
                    continue;
                };
                if ttl.is_zero() {
                    continue;
                }
                let Ok(value) = serde_json::to_string(reply) else {
                    continue;
                };
                facts.push(DomainFact::new(domain, fact, value, at, ttl));
            }
        }
        self.put_facts(&facts)
    }
}

/// The domain fact holding a route.
fn route_fact(allow_private: bool) -> &'static str {
    if allow_private {
        "route-private"
    } else {
        "route"
    }
}

/// The domain facts holding the control answers.
const FACT_CATCH_ALL: &str = "catch-all";
const FACT_POSTMASTER: &str = "postmaster";
