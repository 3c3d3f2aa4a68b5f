//! The pipeline wired stage to stage: input → address → dns → plan →
//! callout → verdict → reports.
//!
//! The input is read twice: pass one learns the distinct addresses (memory
//! grows with those only), the stages decide one outcome per distinct address,
//! and pass two streams one result per input row to every report.

use crate::address::{self, Domain, Mailbox};
use crate::cache::{
    self, CachedResult, Clock, RunCounts, RunResult, StateOptions, Store, StoreError, SystemClock,
    Ttls,
};
use crate::callout::{self, CalloutOptions, CalloutResult};
use crate::dns::{DnsOptions, DnsSetupError, MxHost, Resolver, Route, RouteOutcome};
use crate::evidence::DomainProbes;
use crate::input::{InputError, InputOptions, Row, Source};
use crate::outcome::{callout_outcome, route_outcome, Outcome};
use crate::plan::{self, Group, Shard};
use crate::record::{
    rfc3339, Changes, GroupLine, ReportContext, RunMeta, SenderRecord, Stats, Summary,
};
use crate::report::{ReportError, ReportWriter};
use crate::verdict::{Class, Decision, Flag, Verdict};
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
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

/// What pass one learned about a row, packed in the `u32` each row costs:
/// its address id and two facts pass two would otherwise work out again
/// (with a parse, and a lookup per row in a table as large as the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowNote(u32);

impl RowNote {
    /// An earlier row has the same normalised address.
    const DUPLICATE: u32 = 1 << 31;
    /// The cell is exactly its normalised address and parsing it raised no
    /// flag: the report row takes address and domain from the cell.
    const VERBATIM: u32 = 1 << 30;
    const ID: u32 = Self::VERBATIM - 1;
    /// No id: the cell is invalid (or its id does not fit), and pass two
    /// parses it again.
    const NONE: RowNote = RowNote(Self::ID);

    fn new(id: usize, duplicate: bool, verbatim: bool) -> RowNote {
        match u32::try_from(id) {
            Ok(id) if id < Self::ID => RowNote(
                id | if duplicate { Self::DUPLICATE } else { 0 }
                    | if verbatim { Self::VERBATIM } else { 0 },
            ),
            _ => RowNote::NONE,
        }
    }

    fn id(self) -> Option<usize> {
        let id = self.0 & Self::ID;
        (id != Self::ID).then_some(id as usize)
    }

    fn duplicate(self) -> bool {
        self.0 & Self::DUPLICATE != 0
    }

    fn verbatim(self) -> bool {
        self.0 & Self::VERBATIM != 0
    }
}

/// Per distinct address: its id, its row count, and whether a cell spelled
/// exactly like its normalised address parses to it with no flag (`None`: no
/// such cell parsed yet). Kept in the map beside the key, so counting a row
/// touches no other memory.
#[derive(Debug, Clone, Copy)]
struct Tally {
    id: usize,
    rows: u32,
    key_verbatim: Option<bool>,
}

/// Longest key [`Key`] stores inline: with its length and the variant's
/// tag, the key is 40 bytes, no larger than a `String` and its heap block.
const INLINE_KEY: usize = 38;

/// A normalised address as the book's map key. A key that fits is stored in
/// the table's own slot, so looking up a row's cell reads one place instead
/// of two (the slot, then the string on the heap): on a large input each is
/// a cache miss, and pass one makes one lookup per row.
#[derive(Debug, Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(s: &str) -> Key {
        let b = s.as_bytes();
        if b.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(b.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

/// Equality and hash are the bytes', as `Borrow<[u8]>` requires.
impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The distinct addresses of the input, with how many rows each has.
#[derive(Default)]
struct AddressBook {
    /// Normalised address → id and row count. foldhash: a million lookups
    /// per pass, and SipHash showed in profiles; the keys come from the
    /// operator's own file.
    ids: HashMap<Key, Tally, foldhash::fast::RandomState>,
    mailboxes: Vec<Mailbox>,
}

impl AddressBook {
    /// Counts a row whose cell is `cell`; `None` when it is not an address.
    ///
    /// Most cells are written exactly as their normalised address, so the
    /// cell itself is looked up first: a cell already known to parse to its
    /// key unchanged is counted with no parse and no key to build.
    fn add_row(&mut self, cell: &str) -> Option<RowNote> {
        if let Some(tally) = self.ids.get_mut(cell.as_bytes()) {
            if tally.key_verbatim == Some(true) {
                tally.rows += 1;
                return Some(RowNote::new(tally.id, tally.rows > 1, true));
            }
        }
        let parsed = address::parse_cell(cell).ok()?;
        let key = parsed.mailbox.normalized();
        let verbatim = parsed.flags.is_empty() && key == cell;
        let spelled_as_key = key == cell;
        let tally = match self.ids.get_mut(key.as_bytes()) {
            Some(tally) => tally,
            None => {
                let tally = Tally {
                    id: self.mailboxes.len(),
                    rows: 0,
                    key_verbatim: None,
                };
                self.mailboxes.push(parsed.mailbox);
                self.ids.entry(Key::new(&key)).or_insert(tally)
            }
        };
        if spelled_as_key {
            tally.key_verbatim = Some(verbatim);
        }
        tally.rows += 1;
        Some(RowNote::new(tally.id, tally.rows > 1, verbatim))
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
    let mut run = Run::start(source, opts, observer)?;
    run.read_addresses()?;
    let mut pending = run.triage();
    let mut known = run.apply_cache(&mut pending)?;
    run.stats.distinct_domains = pending.len() as u64;
    if opts.stop_after == Some(StopAfter::Syntax) {
        let skipped = Outcome::simple(Verdict::Skipped, "not checked (--stop-after syntax)");
        run.settle(&pending, skipped);
    } else if run.stopped() {
        run.settle(&pending, interrupted_outcome());
    } else if !pending.is_empty() {
        let (route_of, to_call) = run.route(&pending, &mut known.routes)?;
        run.plan(to_call, &route_of);
        if opts.stop_after != Some(StopAfter::Dns) {
            run.probe(&route_of, known);
        }
    }
    let interrupted = run.stopped();
    run.summarise();
    let complete = opts.stop_after.is_none() && !interrupted;
    let finished_epoch = run.now();
    let changes = run.finish_run(finished_epoch, complete)?;
    let context = run.context(finished_epoch, complete, changes);
    run.write_reports(&context, open_reports)?;
    Ok(AuditOutcome {
        context,
        interrupted,
    })
}

/// Senders still to check, by domain (A-label).
type Pending = HashMap<String, Vec<usize>>;

/// Domains with hosts to call: (domain, MX hosts, sender ids), for the plan.
type ToCall = Vec<(String, Vec<MxHost>, Vec<usize>)>;

/// Per-domain facts from the store that are still fresh.
#[derive(Default)]
struct Known {
    /// Routes (no DNS query), with when they were learned.
    routes: HashMap<String, (i64, Route)>,
    /// Control answers (no control RCPT).
    controls: HashMap<String, DomainProbes>,
}

/// The outcome of senders a stopped run never got to.
fn interrupted_outcome() -> Outcome {
    Outcome::simple(
        Verdict::Skipped,
        "interrupted: the run was stopped before this sender was checked",
    )
}

/// The run's handle on the persistent store (`store` is `None` when the run
/// is stateless). Writes during the run are best effort: the first failure is
/// noted once, and the run goes on.
struct StateStore<'a> {
    store: Option<Mutex<Store>>,
    run_id: i64,
    ttls: Ttls,
    failed: Once,
    observer: &'a dyn Observer,
}

impl StateStore<'_> {
    /// Notes the first failed write of the run.
    fn check(&self, r: Result<(), StoreError>) {
        if let Err(e) = r {
            self.failed.call_once(|| {
                self.observer.note(&format!("results not cached: {e}"));
            });
        }
    }

    fn save_results(&self, items: &[CachedResult]) {
        let Some(store) = &self.store else { return };
        if items.is_empty() {
            return;
        }
        let r = store
            .lock()
            .expect("store lock")
            .save_results(self.run_id, &self.ttls, items);
        self.check(r);
    }
}

/// Commits callout results (and newly learned control answers) to the store
/// as each session decides them: a run killed now loses only the sessions in
/// flight.
struct SessionSaver<'r> {
    state: &'r StateStore<'r>,
    clock: &'r dyn Clock,
    mailboxes: &'r [Mailbox],
    route_of: &'r HashMap<String, Route>,
    known_controls: &'r HashMap<String, DomainProbes>,
    /// Control answers already written in this run (domain, random?).
    controls_saved: Mutex<HashSet<(String, bool)>>,
}

impl SessionSaver<'_> {
    fn on_decided(&self, batch: &[(usize, CalloutResult)]) {
        let Some(store) = &self.state.store else {
            return;
        };
        let t = self.clock.now();
        let mut controls: Vec<(String, DomainProbes)> = Vec::new();
        let items: Vec<CachedResult> = batch
            .iter()
            .filter_map(|(id, r)| {
                let Domain::Name(domain) = self.mailboxes[*id].domain() else {
                    return None;
                };
                let route = self.route_of.get(domain)?;
                // Control answers learned now (not the known ones).
                let known = self.known_controls.get(domain);
                let mut saved = self.controls_saved.lock().expect("controls lock");
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
                Some(o.to_cache(&self.mailboxes[*id].normalized(), domain, t))
            })
            .collect();
        self.state.save_results(&items);
        if !controls.is_empty() {
            let r = store
                .lock()
                .expect("store lock")
                .save_controls(&self.state.ttls, t, &controls);
            self.state.check(r);
        }
    }
}

/// One run of the pipeline: what the stages share. Each method is one stage,
/// called in order by [`audit`].
struct Run<'a> {
    source: &'a Source,
    opts: &'a AuditOptions,
    observer: &'a dyn Observer,
    clock: Box<dyn Clock>,
    started: Instant,
    started_epoch: i64,
    stop_flag: Arc<AtomicBool>,
    state: StateStore<'a>,
    stats: Stats,
    summary: Summary,
    book: AddressBook,
    /// What pass one learned about each row, so pass two, which reads the
    /// same rows in the same order, needs no lookup (and mostly no parse).
    row_notes: Vec<RowNote>,
    /// One decided outcome per distinct address (by id in `book`).
    outcomes: Vec<Option<Arc<Outcome>>>,
    groups: Vec<Group>,
}

impl<'a> Run<'a> {
    /// Takes the store (and its run lock) before anything else: a second run
    /// on the same store fails here, before it reads a row.
    fn start(
        source: &'a Source,
        opts: &'a AuditOptions,
        observer: &'a dyn Observer,
    ) -> Result<Run<'a>, AuditError> {
        let started = Instant::now();
        let clock: Box<dyn Clock> = match &opts.state {
            Some(st) => st.clock(),
            None => Box::new(SystemClock),
        };
        let started_epoch = clock.now();
        let stop_flag = opts.stop.clone().unwrap_or_default();
        let (store, run_id) = match &opts.state {
            Some(st) => {
                let mut store = Store::open(&st.path)?;
                let run_id =
                    store.begin_run(started_epoch, &source.name, &options_summary(opts))?;
                (Some(Mutex::new(store)), run_id)
            }
            None => (None, 0),
        };
        let state = StateStore {
            store,
            run_id,
            ttls: opts.state.as_ref().map(|s| s.ttls).unwrap_or_default(),
            failed: Once::new(),
            observer,
        };
        Ok(Run {
            source,
            opts,
            observer,
            clock,
            started,
            started_epoch,
            stop_flag,
            state,
            stats: Stats::default(),
            summary: Summary::default(),
            book: AddressBook::default(),
            row_notes: Vec::new(),
            outcomes: Vec::new(),
            groups: Vec::new(),
        })
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn stopped(&self) -> bool {
        self.stop_flag.load(Ordering::SeqCst)
    }

    /// Pass one: learns the distinct addresses, so memory grows with those
    /// only; invalid rows are counted here and reported in pass two.
    fn read_addresses(&mut self) -> Result<(), AuditError> {
        self.observer.stage("reading", 0);
        let mut rows = self.source.rows(&self.opts.input, false)?;
        let mut row = Row::default();
        while rows.read_into(&mut row)? {
            self.stats.rows += 1;
            let note = match &row.cell {
                Ok(cell) => self.book.add_row(cell),
                Err(_) => None,
            };
            if note.is_none() {
                self.summary.add(Verdict::InvalidAddress, 1);
            }
            self.row_notes.push(note.unwrap_or(RowNote::NONE));
        }
        let blank = rows.take_blank_lines();
        self.stats.blank_lines = blank.len() as u64;
        if !blank.is_empty() {
            let shown: Vec<String> = blank.iter().take(10).map(|l| l.to_string()).collect();
            self.observer.note(&format!(
                "{}: skipped {} blank line(s) (line {}{})",
                self.source.name,
                blank.len(),
                shown.join(", "),
                if blank.len() > 10 { ", …" } else { "" }
            ));
        }
        self.stats.distinct_addresses = self.book.mailboxes.len() as u64;
        Ok(())
    }

    /// Decides what needs no lookup at all (exclusions, address literals)
    /// and groups the other senders by domain.
    fn triage(&mut self) -> Pending {
        let opts = self.opts;
        self.outcomes = vec![None; self.book.mailboxes.len()];
        let mut pending = Pending::new();
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
        for (id, mb) in self.book.mailboxes.iter().enumerate() {
            if !opts.exclude_addresses.is_empty()
                && opts
                    .exclude_addresses
                    .contains(&mb.normalized().to_lowercase())
            {
                self.outcomes[id] = Some(excluded_addr.clone());
                continue;
            }
            match mb.domain() {
                Domain::Literal(_) => self.outcomes[id] = Some(literal.clone()),
                Domain::Name(d) if opts.exclude_domains.contains(d) => {
                    self.outcomes[id] = Some(excluded_domain.clone())
                }
                // Most domains have several senders: no key to build for those.
                Domain::Name(d) => match pending.get_mut(d) {
                    Some(ids) => ids.push(id),
                    None => {
                        pending.insert(d.clone(), vec![id]);
                    }
                },
            }
        }
        pending
    }

    /// Fresh cached results cost no DNS query and no session: those senders
    /// leave `pending`. Also returns the per-domain facts still fresh.
    fn apply_cache(&mut self, pending: &mut Pending) -> Result<Known, AuditError> {
        let opts = self.opts;
        let use_cache = opts
            .state
            .as_ref()
            .is_some_and(|st| !st.refresh && opts.stop_after != Some(StopAfter::Syntax));
        let mut known = Known::default();
        let (Some(store), true) = (&self.state.store, use_cache) else {
            return Ok(known);
        };
        let t = self.clock.now();
        let (fresh, refused) = {
            let s = store.lock().expect("store lock");
            known.routes = s.fresh_routes(t, opts.dns.allow_private)?;
            known.controls = s.fresh_controls(t)?;
            (s.fresh_results(t)?, s.null_sender_refusals(t)?)
        };
        let (book, outcomes) = (&self.book, &mut self.outcomes);
        pending.retain(|domain, ids| {
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
        Ok(known)
    }

    /// Gives every pending sender the same outcome (the run stops here).
    fn settle(&mut self, pending: &Pending, outcome: Outcome) {
        let shared = Arc::new(outcome);
        for ids in pending.values() {
            for &id in ids {
                self.outcomes[id] = Some(shared.clone());
            }
        }
    }

    /// DNS: routes every pending domain (from the store when fresh) and
    /// decides the senders whose route alone settles them (rows 1–7).
    /// Returns each domain's route and the domains with hosts to call.
    fn route(
        &mut self,
        pending: &Pending,
        cached_routes: &mut HashMap<String, (i64, Route)>,
    ) -> Result<(HashMap<String, Route>, ToCall), AuditError> {
        self.observer.stage("dns", pending.len() as u64);
        let mut domains: Vec<String> = pending.keys().cloned().collect();
        domains.sort();
        cached_routes.retain(|d, _| pending.contains_key(d));
        let mut routes = self.resolve(&domains, cached_routes)?;
        for (d, (_, route)) in cached_routes.iter() {
            routes.insert(d.clone(), route.clone());
        }
        let mut to_call = Vec::new();
        let mut route_of: HashMap<String, Route> = HashMap::new();
        let mut dns_decided = Vec::new();
        let t = self.now();
        for domain in &domains {
            let route = routes.get(domain).cloned().expect("every domain is routed");
            let ids = &pending[domain];
            if let Some(decided) = route_outcome(&route) {
                if self.state.store.is_some() {
                    for &id in ids {
                        let address = self.book.mailboxes[id].normalized();
                        dns_decided.push(decided.to_cache(&address, domain, t));
                    }
                }
                let shared = Arc::new(decided);
                for &id in ids {
                    self.outcomes[id] = Some(shared.clone());
                }
            } else {
                to_call.push((domain.clone(), route.hosts().to_vec(), ids.clone()));
            }
            route_of.insert(domain.clone(), route);
        }
        self.state.save_results(&dns_decided);
        Ok((route_of, to_call))
    }

    /// Asks DNS for the domains without a fresh cached route, and stores
    /// what it learned.
    fn resolve(
        &mut self,
        domains: &[String],
        cached_routes: &HashMap<String, (i64, Route)>,
    ) -> Result<HashMap<String, Route>, AuditError> {
        let to_resolve: Vec<String> = domains
            .iter()
            .filter(|d| !cached_routes.contains_key(*d))
            .cloned()
            .collect();
        if to_resolve.is_empty() {
            return Ok(HashMap::new());
        }
        let opts = self.opts;
        let resolver = Resolver::new(opts.dns.clone())?;
        let routes = resolver.routes(&to_resolve);
        self.stats.dns_queries = resolver.query_counts();
        if let Some(store) = &self.state.store {
            let learned: Vec<(&str, &Route)> =
                routes.iter().map(|(d, r)| (d.as_str(), r)).collect();
            let r = store.lock().expect("store lock").save_routes(
                self.state.ttls.route,
                opts.dns.allow_private,
                self.clock.now(),
                &learned,
            );
            self.state.check(r);
        }
        Ok(routes)
    }

    /// Groups the domains to call by MX set (and shard). Until a callout
    /// decides them, their senders are skipped, still showing their route.
    fn plan(&mut self, to_call: ToCall, route_of: &HashMap<String, Route>) {
        let opts = self.opts;
        self.groups = plan::build(to_call, opts.shard);
        self.stats.mx_groups = self.groups.len() as u64;
        let not_in_shard = Arc::new(Outcome::simple(
            Verdict::Skipped,
            "not in this shard (--shard)",
        ));
        let not_probed = Arc::new(Outcome::simple(
            Verdict::Skipped,
            "not probed (--stop-after dns)",
        ));
        for g in &self.groups {
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
                    self.outcomes[id] = Some(shared.clone());
                }
            }
        }
    }

    /// Callouts: one SMTP conversation per sender of the in-shard groups,
    /// committed to the store as sessions decide them. Senders a stop left
    /// unstarted are reported as interrupted.
    fn probe(&mut self, route_of: &HashMap<String, Route>, mut known: Known) {
        let total: u64 = self
            .groups
            .iter()
            .filter(|g| g.in_shard)
            .map(|g| g.sender_count() as u64)
            .sum();
        self.observer.stage("callouts", total);
        let tokens = prober_tokens(&self.opts.callout);
        let observer = self.observer;
        let progress = |done: u64, host: &str| observer.progress(done, host);
        known.controls.retain(|d, _| route_of.contains_key(d));
        let mut callout_opts = self.opts.callout.clone();
        callout_opts.known_controls = known.controls.clone();
        let saver = SessionSaver {
            state: &self.state,
            clock: &*self.clock,
            mailboxes: &self.book.mailboxes,
            route_of,
            known_controls: &known.controls,
            controls_saved: Mutex::new(HashSet::new()),
        };
        let on_decided = |batch: &[(usize, CalloutResult)]| saver.on_decided(batch);
        let hooks = callout::Hooks {
            progress: &progress,
            on_decided: &on_decided,
            stop: &self.stop_flag,
        };
        let out = callout::run(
            &self.groups,
            &self.book.mailboxes,
            &callout_opts,
            tokens,
            hooks,
        );
        self.stats.connections = out.stats.connections;
        self.stats.transactions = out.stats.transactions;
        self.stats.rcpt_commands = out.stats.rcpt_commands;
        self.stats.smtp_sessions_by_host = out.stats.sessions_by_host;
        let decided: HashSet<usize> = out.results.keys().copied().collect();
        for (id, result) in out.results {
            let domain = match self.book.mailboxes[id].domain() {
                Domain::Name(d) => d.clone(),
                Domain::Literal(_) => continue,
            };
            let mut transcript = self.reuse_notes(&domain, &known);
            transcript.extend(result.transcript);
            let outcome = callout_outcome(&route_of[&domain], result.evidence, transcript);
            self.outcomes[id] = Some(Arc::new(outcome));
        }
        if self.stopped() {
            // Senders whose task never started.
            let interrupted = Arc::new(interrupted_outcome());
            for g in self.groups.iter().filter(|g| g.in_shard) {
                for d in &g.domains {
                    for &id in &d.senders {
                        if !decided.contains(&id) {
                            self.outcomes[id] = Some(interrupted.clone());
                        }
                    }
                }
            }
        }
    }

    /// The transcript lines saying what a callout took from the store.
    fn reuse_notes(&self, domain: &str, known: &Known) -> Vec<String> {
        let mut transcript = Vec::new();
        if let Some((at, _)) = known.routes.get(domain) {
            transcript.push(format!(
                "* MX route from the state store, learned {} ago: no DNS query",
                cache::age(self.now() - at)
            ));
        }
        if let Some(k) = known.controls.get(domain) {
            let mut which = Vec::new();
            if k.random.is_some() && self.opts.callout.random_probe {
                which.push("catch-all");
            }
            if k.postmaster.is_some() && self.opts.callout.postmaster_probe {
                which.push("postmaster@");
            }
            if !which.is_empty() {
                transcript.push(format!(
                    "* {} control answer from the state store: not asked again",
                    which.join(" and ")
                ));
            }
        }
        transcript
    }

    /// Counts every row of a valid address under its outcome's verdict
    /// (invalid rows were counted in pass one).
    fn summarise(&mut self) {
        for tally in self.book.ids.values() {
            let o = &self.outcomes[tally.id];
            let verdict = o.as_ref().map_or(Verdict::Skipped, |o| o.verdict);
            self.summary.add(verdict, u64::from(tally.rows));
        }
    }

    /// Records the run in the store's history (and releases the store);
    /// returns what changed since the previous run, for the reports.
    fn finish_run(
        &mut self,
        finished_epoch: i64,
        complete: bool,
    ) -> Result<Option<Changes>, AuditError> {
        let Some(store) = self.state.store.take() else {
            return Ok(None);
        };
        let mut store = store.into_inner().expect("store lock");
        let mut results = Vec::with_capacity(self.outcomes.len());
        let mut cached = 0;
        for (id, o) in self.outcomes.iter().enumerate() {
            let Some(o) = o else { continue };
            cached += u64::from(o.cached_at.is_some());
            results.push(RunResult {
                address: self.book.mailboxes[id].normalized(),
                verdict: o.verdict,
                reason: o.reason.clone(),
                cached: o.cached_at.is_some(),
                decided_at: o.cached_at.unwrap_or(finished_epoch),
            });
        }
        let counts = RunCounts {
            rows: self.stats.rows,
            pass: self.summary.class_count(Class::Pass),
            fail: self.summary.class_count(Class::Fail),
            unknown: self.summary.class_count(Class::Unknown),
            cached,
        };
        let changes = store.finish_run(
            self.state.run_id,
            finished_epoch,
            counts,
            complete,
            &results,
        )?;
        Ok(changes)
    }

    /// What every report is told besides the rows: run metadata, summary,
    /// stats, MX groups and changes.
    fn context(
        &mut self,
        finished_epoch: i64,
        complete: bool,
        changes: Option<Changes>,
    ) -> ReportContext {
        self.stats.duration_ms = self.started.elapsed().as_millis() as u64;
        ReportContext {
            meta: RunMeta {
                tool: "sendercheck".to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                input: self.source.name.clone(),
                started_at: rfc3339(self.started_epoch),
                finished_at: rfc3339(finished_epoch),
                complete,
                stop_after: self.opts.stop_after.map(|s| s.code().to_string()),
            },
            summary: std::mem::take(&mut self.summary),
            stats: std::mem::take(&mut self.stats),
            groups: self
                .groups
                .iter()
                .map(|g| GroupLine {
                    mx_hosts: g.hosts.iter().map(|h| h.name.clone()).collect(),
                    domains: g.domains.iter().map(|d| d.domain.clone()).collect(),
                    senders: g.sender_count() as u64,
                    in_shard: g.in_shard,
                })
                .collect(),
            changes,
        }
    }

    /// Pass two: reads the input again and streams one result per row, in
    /// input order, to every report.
    fn write_reports(
        &self,
        context: &ReportContext,
        open_reports: &mut OpenReports<'_>,
    ) -> Result<(), AuditError> {
        let mut writers = open_reports(context)?;
        let mut unpacked_seen = HashSet::new();
        let mut rows = self.source.rows(&self.opts.input, true)?;
        let (mut row, mut record) = (
            Row::default(),
            SenderRecord::new(0, "", Verdict::Skipped, ""),
        );
        let mut index = 0;
        while rows.read_into(&mut row)? {
            self.record(index, &row, &mut unpacked_seen, &mut record);
            for w in writers.iter_mut() {
                w.row(&record)?;
            }
            index += 1;
        }
        for w in writers {
            w.finish()?;
        }
        Ok(())
    }

    /// Fills `r` with the report row for input row `index`. Duplicates come
    /// from the row's note; `unpacked_seen` marks the addresses already
    /// reported among rows without an id in their note.
    fn record(
        &self,
        index: usize,
        row: &Row,
        unpacked_seen: &mut HashSet<usize>,
        r: &mut SenderRecord,
    ) {
        let invalid = |r: &mut SenderRecord, cell: &str, reason: &str| {
            r.refill(
                row.line,
                cell,
                None,
                Verdict::InvalidAddress,
                reason,
                &row.extra,
            );
        };
        let cell = match &row.cell {
            Err(problem) => return invalid(r, &row.raw, &problem.to_string()),
            Ok(cell) => cell,
        };
        let note = self.row_notes.get(index).copied().unwrap_or(RowNote::NONE);
        let (parsed, key);
        let (address, domain, parse_flags, id, duplicate) = if note.verbatim() {
            // The domain holds no '@' (the parser refuses a second one
            // outside quotes), so the last '@' ends the local part.
            let at = cell.rfind('@').map_or(0, |at| at + 1);
            let (id, duplicate) = (note.id(), note.duplicate());
            (cell.as_str(), &cell[at..], &[][..], id, duplicate)
        } else {
            parsed = match address::parse_cell(cell) {
                Err(e) => return invalid(r, cell, &e.to_string()),
                Ok(parsed) => parsed,
            };
            key = parsed.mailbox.normalized();
            let (id, duplicate) = match note.id() {
                Some(id) => (Some(id), note.duplicate()),
                None => match self.book.ids.get(key.as_bytes()).map(|t| t.id) {
                    Some(id) => (Some(id), !unpacked_seen.insert(id)),
                    None => (None, false),
                },
            };
            let domain = parsed.mailbox.domain().as_str();
            (key.as_str(), domain, &parsed.flags[..], id, duplicate)
        };
        let unknown;
        let o = match id.and_then(|id| self.outcomes[id].as_deref()) {
            Some(o) => o,
            None => {
                unknown = Outcome::simple(Verdict::Skipped, "not decided");
                &unknown
            }
        };
        let names = Some((address, domain));
        r.refill(row.line, cell, names, o.verdict, &o.reason, &row.extra);
        r.flags.extend_from_slice(parse_flags);
        for f in &o.flags {
            if !r.flags.contains(f) {
                r.flags.push(*f);
            }
        }
        if duplicate {
            r.flags.push(Flag::Duplicate);
        }
        r.mx_hosts.clone_from(&o.mx_hosts);
        r.exim = o.exim;
        r.postfix = o.postfix;
        r.evidence.clone_from(&o.evidence);
        r.transcript.clone_from(&o.transcript);
    }
}

/// Strings that identify the prober in a refusal: its HELO name.
fn prober_tokens(opts: &CalloutOptions) -> Vec<String> {
    vec![opts.helo.as_str().to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_note_round_trips_and_refuses_ids_that_do_not_fit() {
        let n = RowNote::new(12, true, false);
        assert_eq!(
            (n.id(), n.duplicate(), n.verbatim()),
            (Some(12), true, false)
        );
        let n = RowNote::new(0, false, true);
        assert_eq!(
            (n.id(), n.duplicate(), n.verbatim()),
            (Some(0), false, true)
        );
        let last = (RowNote::ID - 1) as usize;
        assert_eq!(RowNote::new(last, true, true).id(), Some(last));
        for id in [RowNote::ID as usize, usize::MAX] {
            let n = RowNote::new(id, true, true);
            assert_eq!(n, RowNote::NONE);
            assert_eq!((n.id(), n.duplicate(), n.verbatim()), (None, false, false));
        }
    }

    #[test]
    fn keys_inline_or_not_are_their_bytes() {
        let short = "a".repeat(INLINE_KEY);
        let long = "a".repeat(INLINE_KEY + 1);
        assert!(matches!(Key::new(&short), Key::Inline { .. }));
        assert!(matches!(Key::new(&long), Key::Heap(_)));
        let mut ids: HashMap<Key, usize> = HashMap::new();
        for (id, s) in ["", "a@b", &short, &long].into_iter().enumerate() {
            assert_eq!(Key::new(s).as_bytes(), s.as_bytes());
            ids.insert(Key::new(s), id);
        }
        assert_eq!(ids.get(long.as_bytes()), Some(&3));
        assert_eq!(ids.get(short.as_bytes()), Some(&2));
        assert_eq!(ids.get(&b"a@b"[..]), Some(&1));
        assert_eq!(ids.get(&b"a@c"[..]), None);
        assert!(std::mem::size_of::<Key>() <= 40);
    }

    #[test]
    fn a_cell_spelled_as_its_key_is_parsed_once() {
        let mut book = AddressBook::default();
        let first = book.add_row("News <a@example.com>").unwrap();
        assert_eq!((first.duplicate(), first.verbatim()), (false, false));
        let tally = |book: &AddressBook| book.ids[&b"a@example.com"[..]];
        assert_eq!(tally(&book).key_verbatim, None);
        let second = book.add_row("a@example.com").unwrap();
        assert_eq!((second.duplicate(), second.verbatim()), (true, true));
        assert_eq!(tally(&book).key_verbatim, Some(true));
        assert_eq!(book.add_row("a@example.com"), Some(second));
        assert_eq!(book.add_row("a@"), None);
        assert_eq!((tally(&book).id, tally(&book).rows), (0, 3));
        assert_eq!(book.mailboxes.len(), 1);
    }
}
