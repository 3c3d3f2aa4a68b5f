//! The pipeline wired stage to stage: input → address → dns → plan →
//! callout → verdict → reports.
//!
//! The input is read twice: pass one learns the distinct addresses (memory
//! grows with those only), the stages decide one outcome per distinct address,
//! and pass two streams one result per input row to every report.

use crate::address::{self, Domain, Mailbox};
use crate::cache::{
    self, CachedResult, Clock, RunCounts, RunResult, StateOptions, Store, StoreError, SystemClock,
};
use crate::callout::{self, CalloutOptions, CalloutResult};
use crate::dns::{DnsOptions, DnsSetupError, Resolver, Route, RouteOutcome};
use crate::evidence::{DomainProbes, SenderEvidence};
use crate::input::{InputError, InputOptions, Source};
use crate::plan::{self, Group, Shard};
use crate::record::{
    rfc3339, Evidence, GroupLine, ReportContext, RunMeta, SenderRecord, Stats, Summary,
};
use crate::report::{ReportError, ReportWriter};
use crate::verdict::{decide, Class, Decision, Flag, Verdict};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where the run stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAfter {
    Syntax,
    Dns,
}

impl StopAfter {
    pub fn code(self) -> &'static str {
        match self {
            StopAfter::Syntax => "syntax",
            StopAfter::Dns => "dns",
        }
    }
}

/// Everything a run needs besides the input and the report sinks.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub input: InputOptions,
    pub stop_after: Option<StopAfter>,
    pub dns: DnsOptions,
    pub callout: CalloutOptions,
    pub shard: Option<Shard>,
    /// Domains (A-labels, lower case) reported as `skipped`.
    pub exclude_domains: HashSet<String>,
    /// Addresses (normalised) reported as `skipped`.
    pub exclude_addresses: HashSet<String>,
    /// The persistent store (cache, run history, resume); `None`: stateless.
    pub state: Option<StateOptions>,
    /// Set (e.g. by a signal handler) to stop starting new work: the run
    /// ends early, reports what it knows and is marked incomplete.
    pub stop: Option<Arc<AtomicBool>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Dns(#[from] DnsSetupError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hooks the binary uses to show progress; the library never prints.
pub trait Observer: Sync {
    fn stage(&self, _name: &str, _total: u64) {}
    fn progress(&self, _done: u64, _current: &str) {}
    /// A non-fatal note about the input (blank lines, a bad row).
    fn note(&self, _message: &str) {}
}

/// Observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// What the caller learns at the end.
#[derive(Debug, Clone)]
pub struct AuditOutcome {
    pub context: ReportContext,
    /// The run was stopped through [`AuditOptions::stop`] before it finished.
    pub interrupted: bool,
}

/// The decided outcome of one distinct address (shared by its rows).
#[derive(Debug, Clone)]
struct Outcome {
    verdict: Verdict,
    reason: String,
    flags: Vec<Flag>,
    mx_hosts: Vec<String>,
    exim: Option<Decision>,
    postfix: Option<Decision>,
    evidence: Option<Evidence>,
    transcript: Vec<String>,
    /// When a cached result was decided (seconds since the epoch).
    cached_at: Option<i64>,
}

impl Outcome {
    fn simple(verdict: Verdict, reason: impl Into<String>) -> Outcome {
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
    fn cached(c: &CachedResult, now: i64) -> Outcome {
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
    fn to_cache(&self, address: &str, domain: &str, at: i64) -> CachedResult {
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

/// `row_ids` entry of a row without a valid address.
const NO_ID: u32 = u32::MAX;

/// The distinct addresses of the input, with how many rows each has.
#[derive(Default)]
struct AddressBook {
    /// Normalised address → id. foldhash: a million lookups per pass, and
    /// SipHash showed in profiles; the keys come from the operator's own file.
    ids: HashMap<String, usize, foldhash::fast::RandomState>,
    mailboxes: Vec<Mailbox>,
    rows: Vec<u32>,
}

impl AddressBook {
    fn intern(&mut self, mailbox: Mailbox) -> usize {
        let key = mailbox.normalized();
        if let Some(&id) = self.ids.get(&key) {
            self.rows[id] += 1;
            return id;
        }
        let id = self.mailboxes.len();
        self.ids.insert(key, id);
        self.mailboxes.push(mailbox);
        self.rows.push(1);
        id
    }
}

/// What a run's options were, for the run history.
fn options_summary(opts: &AuditOptions) -> String {
    serde_json::json!({
        "stop_after": opts.stop_after.map(|s| s.code()),
        "shard": opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
        "refresh": opts.state.as_ref().is_some_and(|s| s.refresh),
        "probe_sender": opts.callout.probe_sender.as_ref().map(|p| p.as_str().to_string()),
        "random_probe": opts.callout.random_probe,
        "postmaster_probe": opts.callout.postmaster_probe,
        "per_host_rate": opts.callout.per_host_rate,
    })
    .to_string()
}

/// Opens the report writers once the summary is known.
pub type OpenReports<'a> =
    dyn FnMut(&ReportContext) -> Result<Vec<Box<dyn ReportWriter>>, ReportError> + 'a;

/// Run the whole pipeline. `open_reports` is called once the context (summary
/// and stats) is known and returns the writers that receive the rows.
pub fn audit(
    source: &Source,
    opts: &AuditOptions,
    observer: &dyn Observer,
    open_reports: &mut OpenReports<'_>,
) -> Result<AuditOutcome, AuditError> {
    let started = Instant::now();
    let clock: Box<dyn Clock> = match &opts.state {
        Some(st) => st.clock(),
        None => Box::new(SystemClock),
    };
    let now = || clock.now();
    let started_epoch = now();
    let started_at = rfc3339(started_epoch);
    let stop_flag = opts.stop.clone().unwrap_or_default();
    let stopped = || stop_flag.load(Ordering::SeqCst);
    // Take the store (and its run lock) before anything else: a second run
    // on the same store fails here, before it reads a row.
    let (store, run_id) = match &opts.state {
        Some(st) => {
            let mut store = Store::open(&st.path)?;
            let run_id = store.begin_run(started_epoch, &source.name, &options_summary(opts))?;
            (Some(Mutex::new(store)), run_id)
        }
        None => (None, 0),
    };
    let ttls = opts.state.as_ref().map(|s| s.ttls).unwrap_or_default();
    let store_failed = std::sync::Once::new();
    let save = |items: &[CachedResult]| {
        let Some(store) = &store else { return };
        if items.is_empty() {
            return;
        }
        let r = store
            .lock()
            .expect("store lock")
            .save_results(run_id, &ttls, items);
        if let Err(e) = r {
            store_failed.call_once(|| {
                observer.note(&format!("results not cached: {e}"));
            });
        }
    };
    let mut stats = Stats::default();
    let mut summary = Summary::default();

    // Pass one: learn the distinct addresses.
    observer.stage("reading", 0);
    let mut book = AddressBook::default();
    let mut rows = source.rows(&opts.input, false)?;
    // The id of each row's address (NO_ID when invalid), so pass two, which
    // reads the same rows in the same order, needs no second lookup.
    let mut row_ids: Vec<u32> = Vec::new();
    for row in rows.by_ref() {
        let row = row?;
        stats.rows += 1;
        let parsed = match &row.cell {
            Ok(cell) => address::parse_cell(cell).ok(),
            Err(_) => None,
        };
        match parsed {
            Some(p) => {
                let id = book.intern(p.mailbox);
                row_ids.push(u32::try_from(id).unwrap_or(NO_ID));
            }
            None => {
                row_ids.push(NO_ID);
                summary.add(Verdict::InvalidAddress, 1)
            }
        }
    }
    let blank = rows.take_blank_lines();
    stats.blank_lines = blank.len() as u64;
    if !blank.is_empty() {
        let shown: Vec<String> = blank.iter().take(10).map(|l| l.to_string()).collect();
        observer.note(&format!(
            "{}: skipped {} blank line(s) (line {}{})",
            source.name,
            blank.len(),
            shown.join(", "),
            if blank.len() > 10 { ", …" } else { "" }
        ));
    }
    stats.distinct_addresses = book.mailboxes.len() as u64;

    // Decide one outcome per distinct address.
    let n = book.mailboxes.len();
    let mut outcomes: Vec<Option<Arc<Outcome>>> = vec![None; n];
    let mut by_domain: HashMap<String, Vec<usize>> = HashMap::new();
    let literal = Arc::new(Outcome {
        flags: vec![Flag::AddressLiteral],
        exim: Some(Decision::Fail),
        postfix: Some(Decision::Fail),
        ..Outcome::simple(
            Verdict::NoMailHost,
            "the domain is an address literal: there is no MX to ask, and receivers with a stock configuration cannot route it (Exim: \"Unrouteable address\"); send from a domain name",
        )
    });
    let excluded_addr = Arc::new(Outcome::simple(
        Verdict::Skipped,
        "excluded by --exclude-address",
    ));
    let excluded_domain = Arc::new(Outcome::simple(
        Verdict::Skipped,
        "excluded by --exclude-domain",
    ));
    for (id, mb) in book.mailboxes.iter().enumerate() {
        if opts
            .exclude_addresses
            .contains(&mb.normalized().to_lowercase())
        {
            outcomes[id] = Some(excluded_addr.clone());
            continue;
        }
        match mb.domain() {
            Domain::Literal(_) => outcomes[id] = Some(literal.clone()),
            Domain::Name(d) if opts.exclude_domains.contains(d) => {
                outcomes[id] = Some(excluded_domain.clone())
            }
            Domain::Name(d) => by_domain.entry(d.clone()).or_default().push(id),
        }
    }
    // Fresh cached results: those senders cost no DNS query and no session.
    let use_cache = opts
        .state
        .as_ref()
        .is_some_and(|st| !st.refresh && opts.stop_after != Some(StopAfter::Syntax));
    // Per-domain facts still fresh: routes (no DNS query) and control
    // answers (no control RCPT).
    let mut cached_routes: HashMap<String, (i64, Route)> = HashMap::new();
    let mut known_controls: HashMap<String, DomainProbes> = HashMap::new();
    if let (Some(store), true) = (&store, use_cache) {
        let t = now();
        let (fresh, refused) = {
            let s = store.lock().expect("store lock");
            cached_routes = s.fresh_routes(t, opts.dns.allow_private)?;
            known_controls = s.fresh_controls(t)?;
            (s.fresh_results(t)?, s.null_sender_refusals(t)?)
        };
        by_domain.retain(|domain, ids| {
            ids.retain(|&id| {
                if let Some(c) = fresh.get(&book.mailboxes[id].normalized()) {
                    outcomes[id] = Some(Arc::new(Outcome::cached(c, t)));
                    return false;
                }
                if let Some((at, said)) = refused.get(domain) {
                    // Exim's domain record `reject_mfnull`: later callouts
                    // for the domain fail without connecting.
                    outcomes[id] = Some(Arc::new(Outcome {
                        flags: vec![Flag::Cached],
                        exim: Some(Decision::Fail),
                        transcript: vec![format!(
                            "* the domain's MX refused MAIL FROM:<> at {}: result reused, no connection",
                            rfc3339(*at)
                        )],
                        cached_at: Some(*at),
                        ..Outcome::simple(
                            Verdict::NullSenderRejected,
                            format!(
                                "an earlier callout {} ago found that the domain's MX refuses the null sender MAIL FROM:<> ({said}); Exim reuses that for the whole domain and fails the callout without connecting (cached result)",
                                cache::age(t - at)
                            ),
                        )
                    }));
                    return false;
                }
                true
            });
            !ids.is_empty()
        });
    }
    stats.distinct_domains = by_domain.len() as u64;
    let mut groups: Vec<Group> = Vec::new();
    let interrupted_outcome = Arc::new(Outcome::simple(
        Verdict::Skipped,
        "interrupted: the run was stopped before this sender was checked",
    ));

    if opts.stop_after == Some(StopAfter::Syntax) {
        let skipped = Arc::new(Outcome::simple(
            Verdict::Skipped,
            "not checked (--stop-after syntax)",
        ));
        for ids in by_domain.values() {
            for &id in ids {
                outcomes[id] = Some(skipped.clone());
            }
        }
    } else if stopped() {
        for ids in by_domain.values() {
            for &id in ids {
                outcomes[id] = Some(interrupted_outcome.clone());
            }
        }
    } else if !by_domain.is_empty() {
        observer.stage("dns", by_domain.len() as u64);
        let mut domains: Vec<String> = by_domain.keys().cloned().collect();
        domains.sort();
        cached_routes.retain(|d, _| by_domain.contains_key(d));
        // Only domains without a fresh cached route are asked.
        let to_resolve: Vec<String> = domains
            .iter()
            .filter(|d| !cached_routes.contains_key(*d))
            .cloned()
            .collect();
        let mut routes: HashMap<String, Route> = HashMap::new();
        if !to_resolve.is_empty() {
            let resolver = Resolver::new(opts.dns.clone())?;
            routes = resolver.routes(&to_resolve);
            stats.dns_queries = resolver.query_counts();
            if let Some(store) = &store {
                let learned: Vec<(&str, &Route)> =
                    routes.iter().map(|(d, r)| (d.as_str(), r)).collect();
                let r = store.lock().expect("store lock").save_routes(
                    ttls.route,
                    opts.dns.allow_private,
                    now(),
                    &learned,
                );
                if let Err(e) = r {
                    store_failed.call_once(|| {
                        observer.note(&format!("results not cached: {e}"));
                    });
                }
            }
        }
        for (d, (_, route)) in &cached_routes {
            routes.insert(d.clone(), route.clone());
        }
        let mut routed = Vec::new();
        let mut route_of: HashMap<String, Route> = HashMap::new();
        let mut dns_decided = Vec::new();
        let t = now();
        for domain in &domains {
            let route = routes.get(domain).cloned().expect("every domain is routed");
            let ids = &by_domain[domain];
            if let Some(decided) = route_outcome(&route) {
                if store.is_some() {
                    for &id in ids {
                        dns_decided.push(decided.to_cache(
                            &book.mailboxes[id].normalized(),
                            domain,
                            t,
                        ));
                    }
                }
                let shared = Arc::new(decided);
                for &id in ids {
                    outcomes[id] = Some(shared.clone());
                }
            } else {
                routed.push((domain.clone(), route.hosts().to_vec(), ids.clone()));
            }
            route_of.insert(domain.clone(), route);
        }
        save(&dns_decided);
        groups = plan::build(routed, opts.shard);
        stats.mx_groups = groups.len() as u64;
        let not_in_shard = Arc::new(Outcome::simple(
            Verdict::Skipped,
            "not in this shard (--shard)",
        ));
        let not_probed = Arc::new(Outcome::simple(
            Verdict::Skipped,
            "not probed (--stop-after dns)",
        ));
        for g in &groups {
            for d in &g.domains {
                let mut shared = if !g.in_shard {
                    not_in_shard.clone()
                } else {
                    not_probed.clone()
                };
                if let Some(route) = route_of.get(&d.domain) {
                    // Still show the route for skipped senders.
                    let mut o = (*shared).clone();
                    o.mx_hosts = route.mx_names.clone();
                    o.flags = route.flags.clone();
                    // Row 5: a null MX beside real MX records is decided by
                    // DNS alone for Postfix, so a DNS-only run reports it too.
                    if g.in_shard
                        && opts.stop_after == Some(StopAfter::Dns)
                        && matches!(
                            route.outcome,
                            RouteOutcome::Hosts {
                                null_mx_mixed: true,
                                ..
                            }
                        )
                    {
                        o.verdict = Verdict::NullMx;
                        o.reason = "the domain publishes a null MX (MX 0 .) beside real MX records, which RFC 7505 §3 forbids: Postfix treats it as accepting no mail; Exim would use the real MX hosts (not probed: --stop-after dns)".to_string();
                        o.postfix = Some(Decision::Fail);
                    }
                    shared = Arc::new(o);
                }
                for &id in &d.senders {
                    outcomes[id] = Some(shared.clone());
                }
            }
        }
        if opts.stop_after != Some(StopAfter::Dns) {
            let total: u64 = groups
                .iter()
                .filter(|g| g.in_shard)
                .map(|g| g.sender_count() as u64)
                .sum();
            observer.stage("callouts", total);
            let tokens = prober_tokens(&opts.callout);
            let progress = |done: u64, host: &str| observer.progress(done, host);
            known_controls.retain(|d, _| route_of.contains_key(d));
            let mut callout_opts = opts.callout.clone();
            callout_opts.known_controls = known_controls.clone();
            // Control answers already written in this run (domain, random?).
            let controls_saved: Mutex<HashSet<(String, bool)>> = Mutex::new(HashSet::new());
            // Results are committed to the store as each session decides
            // them: a run killed now loses only the sessions in flight.
            let on_decided = |batch: &[(usize, CalloutResult)]| {
                let Some(store) = &store else {
                    return;
                };
                let t = now();
                let mut controls: Vec<(String, DomainProbes)> = Vec::new();
                let items: Vec<CachedResult> = batch
                    .iter()
                    .filter_map(|(id, r)| {
                        let Domain::Name(domain) = book.mailboxes[*id].domain() else {
                            return None;
                        };
                        let route = route_of.get(domain)?;
                        // Control answers learned now (not the known ones).
                        let known = known_controls.get(domain);
                        let mut saved = controls_saved.lock().expect("controls lock");
                        let mut fresh = DomainProbes::default();
                        if known.is_none_or(|k| k.random.is_none())
                            && r.evidence.domain.random.is_some()
                            && saved.insert((domain.clone(), true))
                        {
                            fresh.random = r.evidence.domain.random.clone();
                        }
                        if known.is_none_or(|k| k.postmaster.is_none())
                            && r.evidence.domain.postmaster.is_some()
                            && saved.insert((domain.clone(), false))
                        {
                            fresh.postmaster = r.evidence.domain.postmaster.clone();
                        }
                        if fresh != DomainProbes::default() {
                            controls.push((domain.clone(), fresh));
                        }
                        let o = callout_outcome(route, r.evidence.clone(), Vec::new());
                        Some(o.to_cache(&book.mailboxes[*id].normalized(), domain, t))
                    })
                    .collect();
                save(&items);
                if !controls.is_empty() {
                    let r = store
                        .lock()
                        .expect("store lock")
                        .save_controls(&ttls, t, &controls);
                    if let Err(e) = r {
                        store_failed.call_once(|| {
                            observer.note(&format!("results not cached: {e}"));
                        });
                    }
                }
            };
            let hooks = callout::Hooks {
                progress: &progress,
                on_decided: &on_decided,
                stop: &stop_flag,
            };
            let out = callout::run(&groups, &book.mailboxes, &callout_opts, tokens, hooks);
            stats.connections = out.stats.connections;
            stats.transactions = out.stats.transactions;
            stats.rcpt_commands = out.stats.rcpt_commands;
            stats.smtp_sessions_by_host = out.stats.sessions_by_host;
            let decided: HashSet<usize> = out.results.keys().copied().collect();
            for (id, result) in out.results {
                let domain = match book.mailboxes[id].domain() {
                    Domain::Name(d) => d.clone(),
                    Domain::Literal(_) => continue,
                };
                let route = &route_of[&domain];
                let mut transcript = Vec::new();
                if let Some((at, _)) = cached_routes.get(&domain) {
                    transcript.push(format!(
                        "* MX route from the state store, learned {} ago: no DNS query",
                        cache::age(now() - at)
                    ));
                }
                if let Some(k) = known_controls.get(&domain) {
                    let mut which = Vec::new();
                    if k.random.is_some() && opts.callout.random_probe {
                        which.push("catch-all");
                    }
                    if k.postmaster.is_some() && opts.callout.postmaster_probe {
                        which.push("postmaster@");
                    }
                    if !which.is_empty() {
                        transcript.push(format!(
                            "* {} control answer from the state store: not asked again",
                            which.join(" and ")
                        ));
                    }
                }
                transcript.extend(result.transcript);
                outcomes[id] = Some(Arc::new(callout_outcome(
                    route,
                    result.evidence,
                    transcript,
                )));
            }
            if stopped() {
                // Senders whose task never started.
                for g in groups.iter().filter(|g| g.in_shard) {
                    for d in &g.domains {
                        for &id in &d.senders {
                            if !decided.contains(&id) {
                                outcomes[id] = Some(interrupted_outcome.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    let interrupted = stopped();

    for (id, o) in outcomes.iter().enumerate() {
        let verdict = o.as_ref().map_or(Verdict::Skipped, |o| o.verdict);
        summary.add(verdict, u64::from(book.rows[id]));
    }
    let complete = opts.stop_after.is_none() && !interrupted;
    let finished_epoch = now();
    let changes = match store {
        Some(store) => {
            let mut store = store.into_inner().expect("store lock");
            let mut results = Vec::with_capacity(n);
            let mut cached = 0;
            for (id, o) in outcomes.iter().enumerate() {
                let Some(o) = o else { continue };
                cached += u64::from(o.cached_at.is_some());
                results.push(RunResult {
                    address: book.mailboxes[id].normalized(),
                    verdict: o.verdict,
                    reason: o.reason.clone(),
                    cached: o.cached_at.is_some(),
                    decided_at: o.cached_at.unwrap_or(finished_epoch),
                });
            }
            let counts = RunCounts {
                rows: stats.rows,
                pass: summary.class_count(Class::Pass),
                fail: summary.class_count(Class::Fail),
                unknown: summary.class_count(Class::Unknown),
                cached,
            };
            store.finish_run(run_id, finished_epoch, counts, complete, &results)?
        }
        None => None,
    };
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let context = ReportContext {
        meta: RunMeta {
            tool: "sendercheck".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            input: source.name.clone(),
            started_at,
            finished_at: rfc3339(finished_epoch),
            complete,
            stop_after: opts.stop_after.map(|s| s.code().to_string()),
        },
        summary,
        stats,
        groups: groups
            .iter()
            .map(|g| GroupLine {
                mx_hosts: g.hosts.iter().map(|h| h.name.clone()).collect(),
                domains: g.domains.iter().map(|d| d.domain.clone()).collect(),
                senders: g.sender_count() as u64,
                in_shard: g.in_shard,
            })
            .collect(),
        changes,
    };

    // Pass two: one result per row, streamed to every report.
    let mut writers = open_reports(&context)?;
    let mut seen = vec![false; n];
    let unknown = Arc::new(Outcome::simple(Verdict::Skipped, "not decided"));
    for (index, row) in source.rows(&opts.input, true)?.enumerate() {
        let row = row?;
        let record = match &row.cell {
            Err(problem) => {
                let mut r = SenderRecord::new(
                    row.line,
                    row.raw.clone(),
                    Verdict::InvalidAddress,
                    problem.to_string(),
                );
                r.extra = row.extra;
                r
            }
            Ok(cell) => match address::parse_cell(cell) {
                Err(e) => {
                    let mut r = SenderRecord::new(
                        row.line,
                        cell.clone(),
                        Verdict::InvalidAddress,
                        e.to_string(),
                    );
                    r.extra = row.extra;
                    r
                }
                Ok(parsed) => {
                    let key = parsed.mailbox.normalized();
                    let id = match row_ids.get(index) {
                        Some(&id) if id != NO_ID => id as usize,
                        _ => book.ids[&key],
                    };
                    let o = outcomes[id].as_ref().unwrap_or(&unknown);
                    let mut r =
                        SenderRecord::new(row.line, cell.clone(), o.verdict, o.reason.clone());
                    r.domain = Some(parsed.mailbox.domain().as_str().to_string());
                    r.address = Some(key);
                    r.flags = parsed.flags;
                    for f in &o.flags {
                        if !r.flags.contains(f) {
                            r.flags.push(*f);
                        }
                    }
                    if seen[id] {
                        r.flags.push(Flag::Duplicate);
                    }
                    seen[id] = true;
                    r.mx_hosts = o.mx_hosts.clone();
                    r.exim = o.exim;
                    r.postfix = o.postfix;
                    r.evidence = o.evidence.clone();
                    r.transcript = o.transcript.clone();
                    r.extra = row.extra;
                    r
                }
            },
        };
        for w in writers.iter_mut() {
            w.row(&record)?;
        }
    }
    for w in writers {
        w.finish()?;
    }
    Ok(AuditOutcome {
        context,
        interrupted,
    })
}

/// Strings that identify the prober in a refusal: its HELO name.
fn prober_tokens(opts: &CalloutOptions) -> Vec<String> {
    vec![opts.helo.as_str().to_string()]
}

/// Rows 1–7 of the table: verdicts DNS decides on its own. `None` means the
/// route has hosts to call.
fn route_outcome(route: &Route) -> Option<Outcome> {
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

fn callout_outcome(route: &Route, evidence: SenderEvidence, transcript: Vec<String>) -> Outcome {
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
