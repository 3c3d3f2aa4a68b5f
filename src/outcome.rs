//! The decided outcome of one distinct address, and how each stage makes
//! one: from the state store, from DNS alone (rows 1–7 of the table), or
//! from a callout's evidence through the verdict table.

use crate::cache::{self, CachedResult};
use crate::dns::{Route, RouteOutcome};
use crate::evidence::SenderEvidence;
use crate::record::{rfc3339, Evidence};
use crate::verdict::{decide, Decision, Flag, Verdict};

/// The decided outcome of one distinct address (shared by its rows).
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
    pub(crate) flags: Vec<Flag>,
    pub(crate) mx_hosts: Vec<String>,
    pub(crate) exim: Option<Decision>,
    pub(crate) postfix: Option<Decision>,
    pub(crate) evidence: Option<Evidence>,
    pub(crate) transcript: Vec<String>,
    /// When a cached result was decided (seconds since the epoch).
    pub(crate) cached_at: Option<i64>,
}

impl Outcome {
    pub(crate) fn simple(verdict: Verdict, reason: impl Into<String>) -> Outcome {
        Outcome {
            verdict,
            reason: reason.into(),
            flags: Vec::new(),
            mx_hosts: Vec::new(),
            exim: None,
            postfix: None,
            evidence: None,
            transcript: Vec::new(),
            cached_at: None,
        }
    }

    /// A result from the store, reported with flag `cached` and its age.
    pub(crate) fn cached(c: &CachedResult, now: i64) -> Outcome {
        let mut flags = c.flags.clone();
        if !flags.contains(&Flag::Cached) {
            flags.push(Flag::Cached);
        }
        Outcome {
            verdict: c.verdict,
            reason: format!(
                "{} (cached result, decided {} ago)",
                c.reason,
                cache::age(now - c.decided_at)
            ),
            flags,
            mx_hosts: c.mx_hosts.clone(),
            exim: c.exim,
            postfix: c.postfix,
            evidence: c.evidence.clone(),
            transcript: vec![format!(
                "* result from the state store, decided at {}: no DNS query, no connection",
                rfc3339(c.decided_at)
            )],
            cached_at: Some(c.decided_at),
        }
    }

    /// The cache row for this outcome.
    pub(crate) fn to_cache(&self, address: &str, domain: &str, at: i64) -> CachedResult {
        CachedResult {
            address: address.to_string(),
            domain: domain.to_string(),
            verdict: self.verdict,
            reason: self.reason.clone(),
            flags: self.flags.clone(),
            exim: self.exim,
            postfix: self.postfix,
            evidence: self.evidence.clone(),
            mx_hosts: self.mx_hosts.clone(),
            decided_at: at,
        }
    }
}

/// Rows 1–7 of the table: verdicts DNS decides on its own. `None` means the
/// route has hosts to call.
pub(crate) fn route_outcome(route: &Route) -> Option<Outcome> {
    let fail = |verdict: Verdict, reason: String| Outcome {
        flags: route.flags.clone(),
        mx_hosts: route.mx_names.clone(),
        exim: Some(Decision::Fail),
        postfix: Some(Decision::Fail),
        ..Outcome::simple(verdict, reason)
    };
    match &route.outcome {
        RouteOutcome::Hosts { .. } => None,
        RouteOutcome::NullMx => Some(fail(
            Verdict::NullMx,
            "the domain publishes a null MX (MX 0 .): it declares that it accepts no mail (RFC 7505)".to_string(),
        )),
        RouteOutcome::NoDomain => Some(fail(
            Verdict::NoDomain,
            "the domain does not exist (NXDOMAIN)".to_string(),
        )),
        RouteOutcome::NoMailHost { reason } => Some(fail(Verdict::NoMailHost, reason.clone())),
        RouteOutcome::DnsError { reason } => Some(Outcome {
            flags: route.flags.clone(),
            mx_hosts: route.mx_names.clone(),
            exim: Some(Decision::Defer),
            postfix: Some(Decision::Defer),
            ..Outcome::simple(Verdict::DnsError, format!("{reason}; receivers would defer"))
        }),
        // Rows 6: a receiver on the internet cannot use a private or loopback
        // MX (Exim's stock routers ignore them), so it fails; and the tool
        // does not connect there unless told to.
        RouteOutcome::PrivateOnly { reason } => Some(fail(
            Verdict::NoMailHost,
            format!(
                "no usable MX host: {reason}; receivers on the internet cannot deliver to private or loopback addresses (pass --allow-private-mx to probe internal hosts anyway)"
            ),
        )),
    }
}

pub(crate) fn callout_outcome(
    route: &Route,
    evidence: SenderEvidence,
    transcript: Vec<String>,
) -> Outcome {
    let decided = decide(&evidence);
    let mut flags = route.flags.clone();
    for f in decided.flags {
        if !flags.contains(&f) {
            flags.push(f);
        }
    }
    let evidence = decided.deciding.as_ref().map(|a| Evidence {
        mx_host: a.host.clone(),
        ip: a.ip.to_string(),
        stage: a.stage,
        reply: match &a.end {
            crate::evidence::AttemptEnd::Reply(r) => r.lines.clone(),
            crate::evidence::AttemptEnd::Failed(why) => vec![why.clone()],
        },
    });
    let mut outcome = Outcome {
        verdict: decided.verdict,
        reason: decided.reason,
        flags,
        mx_hosts: route.mx_names.clone(),
        exim: decided.exim,
        postfix: decided.postfix,
        evidence,
        transcript,
        cached_at: None,
    };
    if let RouteOutcome::Hosts {
        null_mx_mixed: true,
        ..
    } = route.outcome
    {
        // Row 5: Postfix treats the whole MX set as null; Exim uses the real
        // hosts, so its answer is what the callout just saw.
        let exim = match outcome.exim {
            Some(Decision::Pass) => "Exim ignores the null MX and would pass it",
            Some(Decision::Fail) => "Exim ignores the null MX and would still fail it",
            _ => "Exim ignores the null MX and would defer",
        };
        outcome.reason = format!(
            "the domain publishes a null MX (MX 0 .) beside real MX records, which RFC 7505 §3 forbids: Postfix treats it as accepting no mail; {exim} ({})",
            outcome.reason
        );
        outcome.verdict = Verdict::NullMx;
        outcome.postfix = Some(Decision::Fail);
    }
    outcome
}
