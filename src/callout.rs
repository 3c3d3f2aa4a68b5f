//! The callout engine: for every MX group, SMTP sessions that ask what a
//! receiver's sender callout asks (`MAIL FROM:<>`, `RCPT TO:<sender>`), with as
//! few connections as possible, rate-limited per MX host, never DATA.
//!
//! Work is cut into tasks (a slice of one group's senders); a rayon pool of
//! `--concurrency` threads runs them, longest group first. Each task walks the
//! group's MX addresses in Exim's order and keeps trying the next address for
//! every sender that has no definitive answer yet.

use crate::address::Mailbox;
use crate::dns::MxHost;
use crate::evidence::{Attempt, AttemptEnd, DomainProbes, ReplyFacts, SenderEvidence};
use crate::plan::Group;
use crate::record::Stage;
use crate::smtp::{HeloName, Reply, ReplyLimits, Session, SessionConfig, SessionError, SmtpPath};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Callout settings (each has a command-line flag).
#[derive(Debug, Clone)]
pub struct CalloutOptions {
    pub port: u16,
    pub helo: HeloName,
    /// Non-null MAIL FROM used when the null sender is refused.
    pub probe_sender: Option<SmtpPath>,
    pub connect_timeout: Duration,
    /// Bounds the whole reply to one command.
    pub reply_timeout: Duration,
    pub session_deadline: Duration,
    pub concurrency: usize,
    /// RCPT commands per second per MX host.
    pub per_host_rate: f64,
    pub per_host_connections: usize,
    pub rcpt_per_transaction: usize,
    /// Wait before re-probing senders that got only 4xx; zero disables.
    pub greylist_wait: Duration,
    pub random_probe: bool,
    pub postmaster_probe: bool,
    /// Control answers already known per domain (from the state store): those
    /// control RCPTs are not sent again, and the answers go into every
    /// sender's evidence of the domain as if just probed.
    pub known_controls: HashMap<String, DomainProbes>,
}

/// Per-sender result of the callout stage.
#[derive(Debug, Clone, Default)]
pub struct CalloutResult {
    pub evidence: SenderEvidence,
    pub transcript: Vec<String>,
}

/// Counters for the report's `stats`.
#[derive(Debug, Default, Clone)]
pub struct CalloutStats {
    pub connections: u64,
    pub transactions: u64,
    pub rcpt_commands: u64,
    pub sessions_by_host: BTreeMap<String, u64>,
}

/// This many 4xx RCPT answers in a row from one host slow that host down.
const TEMPFAIL_RUN: u32 = 10;

/// Progress callback: called with (senders finished so far, current host).
pub type Progress<'a> = &'a (dyn Fn(u64, &str) + Sync);

/// Called from a worker thread with senders as their results become final:
/// after each SMTP session, those it answered for good (not those going on to
/// the next MX, the `--probe-sender` retry, or whose domain's controls are
/// still open); at the end of a task, the rest; and again for senders
/// re-probed after greylisting. Each sender is reported once per round, so a
/// caller can persist results as they come rather than at the end.
pub type Decided<'a> = &'a (dyn Fn(&[(usize, CalloutResult)]) + Sync);

/// How the caller follows and steers a run.
#[derive(Clone, Copy)]
pub struct Hooks<'a> {
    pub progress: Progress<'a>,
    pub on_decided: Decided<'a>,
    /// Once set, no new task or re-probe starts; sessions in flight finish
    /// (and QUIT). Senders never started have no result.
    pub stop: &'a AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Null,
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    /// A sender of the input (index into the address book).
    Address(usize),
    /// The catch-all control for a domain (index into the task's domains).
    Random(usize),
    /// The postmaster control for a domain.
    Postmaster(usize),
}

#[derive(Debug, Clone)]
struct Job {
    kind: JobKind,
    rcpt: SmtpPath,
    attempts: Vec<Attempt>,
    transcript: Vec<String>,
    /// Set once the job has a definitive answer (2xx/5xx at RCPT, 5xx at HELO/MAIL).
    done: bool,
}

impl Job {
    fn new(kind: JobKind, rcpt: SmtpPath) -> Job {
        Job {
            kind,
            rcpt,
            attempts: Vec::new(),
            transcript: Vec::new(),
            done: false,
        }
    }

    fn record(&mut self, attempt: Attempt) {
        self.done = attempt.decides_for_postfix();
        self.attempts.push(attempt);
    }
}

/// Shared state of one run's callouts.
struct Engine<'a> {
    opts: &'a CalloutOptions,
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    /// Open sessions per MX host (the `--per-host-connections` cap).
    open: Mutex<HashMap<String, usize>>,
    open_changed: Condvar,
    /// Hosts that said 421 or kept deferring: not before this instant.
    backoff: Mutex<HashMap<String, (Instant, u32)>>,
    /// Consecutive 4xx RCPT answers per host.
    tempfail_runs: Mutex<HashMap<String, u32>>,
    connections: AtomicU64,
    transactions: AtomicU64,
    rcpt_commands: AtomicU64,
    sessions_by_host: Mutex<BTreeMap<String, u64>>,
    finished: AtomicU64,
    progress: Progress<'a>,
    /// Checked before each new session.
    stop: &'a AtomicBool,
}

fn facts(reply: &Reply) -> ReplyFacts {
    ReplyFacts {
        code: reply.code,
        enhanced: reply
            .enhanced
            .as_ref()
            .map(|e| (e.class, e.subject, e.detail)),
        lines: reply.wire_lines(),
    }
}

fn session_failure(err: &SessionError) -> String {
    err.to_string()
}

/// Release a per-host session slot when dropped.
struct Slot<'e, 'a> {
    engine: &'e Engine<'a>,
    host: String,
}

impl Drop for Slot<'_, '_> {
    fn drop(&mut self) {
        let mut open = self.engine.open.lock().expect("slot lock");
        if let Some(n) = open.get_mut(&self.host) {
            *n = n.saturating_sub(1);
        }
        self.engine.open_changed.notify_all();
    }
}

impl<'a> Engine<'a> {
    fn slot(&self, host: &str) -> Slot<'_, 'a> {
        let cap = self.opts.per_host_connections.max(1);
        let mut open = self.open.lock().expect("slot lock");
        loop {
            let n = open.entry(host.to_string()).or_insert(0);
            if *n < cap {
                *n += 1;
                break;
            }
            open = self.open_changed.wait(open).expect("slot lock");
        }
        Slot {
            engine: self,
            host: host.to_string(),
        }
    }

    /// Block until the host's rate limit allows one more RCPT.
    fn rate(&self, host: &str) {
        let key = host.to_string();
        while let Err(not_until) = self.limiter.check_key(&key) {
            std::thread::sleep(not_until.wait_time_from(self.clock.now()));
        }
    }

    fn wait_backoff(&self, host: &str) {
        let until = self
            .backoff
            .lock()
            .expect("backoff lock")
            .get(host)
            .map(|b| b.0);
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                std::thread::sleep(until - now);
            }
        }
    }

    /// A 421 or a run of 4xx slows this host down, never the others.
    fn slow_down(&self, host: &str) {
        let mut map = self.backoff.lock().expect("backoff lock");
        let entry = map.entry(host.to_string()).or_insert((Instant::now(), 0));
        entry.1 = (entry.1 + 1).min(6);
        entry.0 = Instant::now() + Duration::from_millis(500 << entry.1);
    }

    /// A run of 4xx RCPT answers means the host is struggling or
    /// throttling us: pause it (only it) before its next session.
    fn note_rcpt_reply(&self, host: &str, transient: bool) {
        let mut runs = self.tempfail_runs.lock().expect("tempfail lock");
        let run = runs.entry(host.to_string()).or_insert(0);
        if transient {
            *run += 1;
            if *run >= TEMPFAIL_RUN {
                *run = 0;
                drop(runs);
                self.slow_down(host);
            }
        } else {
            *run = 0;
        }
    }

    /// Back to the base pause after a session that made progress.
    fn forgive(&self, host: &str) {
        if let Some(entry) = self.backoff.lock().expect("backoff lock").get_mut(host) {
            entry.1 = 0;
        }
    }

    fn session_config(&self) -> SessionConfig {
        SessionConfig {
            connect_timeout: self.opts.connect_timeout,
            reply_timeout: self.opts.reply_timeout,
            session_deadline: self.opts.session_deadline,
            helo: self.opts.helo.clone(),
            limits: ReplyLimits::default(),
        }
    }

    /// Run every pending job through one MX address. Jobs that get a
    /// definitive answer are marked done; the others carry an attempt for
    /// this address and move on to the next one. `after_session` sees the
    /// jobs after each session. Returns false when the stop flag cut it short
    /// (checked before each new session).
    fn run_address(
        &self,
        host: &MxHost,
        ip: IpAddr,
        from: Sender,
        jobs: &mut [Job],
        after_session: &mut dyn FnMut(&[Job]),
    ) -> bool {
        let addr = SocketAddr::new(ip, self.opts.port);
        let mail_from = match from {
            Sender::Null => SmtpPath::null(),
            Sender::Probe => match &self.opts.probe_sender {
                Some(p) => p.clone(),
                None => return true,
            },
        };
        let mut reconnects = 0;
        // Every session either records an answer for at least one job or
        // asks to reconnect (bounded), so this ends; the cap is a backstop.
        let mut sessions_left = jobs.len() + 4;
        loop {
            let pending: Vec<usize> = (0..jobs.len())
                .filter(|i| !jobs[*i].done && !tried_here(&jobs[*i], host, ip))
                .collect();
            if pending.is_empty() || sessions_left == 0 {
                return true;
            }
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            sessions_left -= 1;
            self.wait_backoff(&host.name);
            let _slot = self.slot(&host.name);
            self.connections.fetch_add(1, Ordering::Relaxed);
            *self
                .sessions_by_host
                .lock()
                .expect("stats lock")
                .entry(host.name.clone())
                .or_default() += 1;
            (self.progress)(self.finished.load(Ordering::Relaxed), &host.name);
            let outcome = self.session(host, addr, &mail_from, jobs, &pending);
            after_session(jobs);
            // A session that answered someone before the server closed it (a
            // per-connection command limit) is progress, not a failing host:
            // keep reconnecting at the base pace rather than backing off and
            // giving up after three tries.
            let progressed = pending
                .iter()
                .any(|&i| jobs[i].done || tried_here(&jobs[i], host, ip));
            match outcome {
                SessionEnd::Finished => return true,
                SessionEnd::Reconnect if progressed || reconnects < 3 => {
                    if progressed {
                        reconnects = 0;
                        self.forgive(&host.name);
                    } else {
                        reconnects += 1;
                    }
                    self.slow_down(&host.name);
                }
                SessionEnd::Reconnect => {
                    // Give up on this address for whoever is left.
                    for i in pending {
                        if !jobs[i].done && !tried_here(&jobs[i], host, ip) {
                            jobs[i].record(Attempt {
                                host: host.name.clone(),
                                ip,
                                stage: Stage::RcptTo,
                                end: AttemptEnd::Failed(
                                    "the server kept closing the connection (421) before answering"
                                        .into(),
                                ),
                            });
                        }
                    }
                    return true;
                }
            }
        }
    }

    fn session(
        &self,
        host: &MxHost,
        addr: SocketAddr,
        mail_from: &SmtpPath,
        jobs: &mut [Job],
        pending: &[usize],
    ) -> SessionEnd {
        let ip = addr.ip();
        let attempt = |stage: Stage, end: AttemptEnd| Attempt {
            host: host.name.clone(),
            ip,
            stage,
            end,
        };
        let mut header = vec![format!(
            "* connecting to {} [{}] port {}",
            host.name,
            ip,
            addr.port()
        )];
        let mut session = match Session::connect(addr, &self.session_config()) {
            Ok(s) => s,
            Err(e) => {
                let why = session_failure(&e);
                // A connection that opened but never greeted is a tarpit or an
                // overloaded server, not a dead host.
                let stage = match e.stage() {
                    Some("connect") | None => Stage::Connect,
                    Some(_) => Stage::Greeting,
                };
                for &i in pending {
                    jobs[i].transcript.push(header[0].clone());
                    jobs[i].transcript.push(format!("* {why}"));
                    jobs[i].record(attempt(stage, AttemptEnd::Failed(why.clone())));
                }
                return SessionEnd::Finished;
            }
        };
        let greeting = session.greeting().clone();
        header.extend(greeting.wire_lines().into_iter().map(|l| format!("< {l}")));
        if !greeting.is_positive() {
            for &i in pending {
                jobs[i].transcript.extend(header.iter().cloned());
                jobs[i].record(attempt(
                    Stage::Greeting,
                    AttemptEnd::Reply(facts(&greeting)),
                ));
            }
            if greeting.code == 421 {
                self.slow_down(&host.name);
            }
            session.quit();
            return SessionEnd::Finished;
        }
        let hello = session.hello();
        match hello {
            Ok(reply) if reply.is_positive() => {
                header.push(format!("> EHLO {}", self.opts.helo.as_str()));
                header.extend(reply.wire_lines().into_iter().map(|l| format!("< {l}")));
            }
            Ok(reply) => {
                header.push(format!("> HELO {}", self.opts.helo.as_str()));
                header.extend(reply.wire_lines().into_iter().map(|l| format!("< {l}")));
                for &i in pending {
                    jobs[i].transcript.extend(header.iter().cloned());
                    jobs[i].record(attempt(Stage::Helo, AttemptEnd::Reply(facts(&reply))));
                }
                session.quit();
                return SessionEnd::Finished;
            }
            Err(e) => {
                let why = session_failure(&e);
                for &i in pending {
                    jobs[i].transcript.extend(header.iter().cloned());
                    jobs[i].transcript.push(format!("* {why}"));
                    jobs[i].record(attempt(Stage::Helo, AttemptEnd::Failed(why.clone())));
                }
                return SessionEnd::Finished;
            }
        }

        let per_txn = self.opts.rcpt_per_transaction.max(1);
        let mut queue: std::collections::VecDeque<usize> = pending.iter().copied().collect();
        let mut first_txn = true;
        while !queue.is_empty() {
            if !first_txn {
                match session.rset() {
                    Ok(r) if r.is_positive() => {}
                    _ => return SessionEnd::Reconnect,
                }
            }
            first_txn = false;
            self.transactions.fetch_add(1, Ordering::Relaxed);
            let batch: Vec<usize> = queue.drain(..per_txn.min(queue.len())).collect();
            let mail_line = format!("> MAIL FROM:<{}>", mail_from.as_str());
            let mail = match session.mail_from(mail_from) {
                Ok(r) => r,
                Err(e) => {
                    let why = session_failure(&e);
                    for &i in batch.iter().chain(queue.iter()) {
                        jobs[i].transcript.extend(header.iter().cloned());
                        jobs[i].transcript.push(mail_line.clone());
                        jobs[i].transcript.push(format!("* {why}"));
                        jobs[i].record(attempt(Stage::MailFrom, AttemptEnd::Failed(why.clone())));
                    }
                    return SessionEnd::Finished;
                }
            };
            if mail.code == 421 {
                return SessionEnd::Reconnect;
            }
            if !mail.is_positive() {
                // MAIL concerns the session, not a recipient: it answers for all.
                for &i in batch.iter().chain(queue.iter()) {
                    jobs[i].transcript.extend(header.iter().cloned());
                    jobs[i].transcript.push(mail_line.clone());
                    jobs[i]
                        .transcript
                        .extend(mail.wire_lines().into_iter().map(|l| format!("< {l}")));
                    jobs[i].record(attempt(Stage::MailFrom, AttemptEnd::Reply(facts(&mail))));
                }
                session.quit();
                return SessionEnd::Finished;
            }
            // From here on, each sender's transcript shows MAIL with its reply.
            let mail_lines: Vec<String> = std::iter::once(mail_line)
                .chain(mail.wire_lines().into_iter().map(|l| format!("< {l}")))
                .collect();
            let paths: Vec<SmtpPath> = batch.iter().map(|&i| jobs[i].rcpt.clone()).collect();
            for _ in &paths {
                self.rate(&host.name);
            }
            self.rcpt_commands
                .fetch_add(paths.len() as u64, Ordering::Relaxed);
            let (replies, broken) = match session.rcpt_batch(&paths) {
                Ok(replies) => (replies, None),
                Err(SessionError::Partial { replies, source }) => (replies, Some(*source)),
                Err(e) => (Vec::new(), Some(e)),
            };
            let mut requeue = Vec::new();
            let mut reconnect = false;
            for (k, &i) in batch.iter().enumerate() {
                let Some(reply) = replies.get(k) else {
                    if reconnect {
                        requeue.push(i);
                        continue;
                    }
                    let why = broken
                        .as_ref()
                        .map(session_failure)
                        .unwrap_or_else(|| "no reply to RCPT".to_string());
                    jobs[i].transcript.extend(header.iter().cloned());
                    jobs[i].transcript.extend(mail_lines.iter().cloned());
                    jobs[i]
                        .transcript
                        .push(format!("> RCPT TO:<{}>", jobs[i].rcpt.as_str()));
                    jobs[i].transcript.push(format!("* {why}"));
                    jobs[i].record(attempt(Stage::RcptTo, AttemptEnd::Failed(why)));
                    continue;
                };
                match reply.code {
                    // Too many recipients: not an answer about this one.
                    452 | 552 if reply.text().to_lowercase().contains("recipient") => {
                        requeue.push(i);
                    }
                    421 => {
                        reconnect = true;
                        requeue.push(i);
                    }
                    _ => {
                        jobs[i].transcript.extend(header.iter().cloned());
                        jobs[i].transcript.extend(mail_lines.iter().cloned());
                        jobs[i]
                            .transcript
                            .push(format!("> RCPT TO:<{}>", jobs[i].rcpt.as_str()));
                        jobs[i]
                            .transcript
                            .extend(reply.wire_lines().into_iter().map(|l| format!("< {l}")));
                        jobs[i].record(attempt(Stage::RcptTo, AttemptEnd::Reply(facts(reply))));
                        if let JobKind::Address(_) = jobs[i].kind {
                            self.finished.fetch_add(1, Ordering::Relaxed);
                        }
                        self.note_rcpt_reply(&host.name, reply.is_transient());
                    }
                }
            }
            if reconnect {
                return SessionEnd::Reconnect;
            }
            if broken.is_some() {
                return if requeue.is_empty() {
                    SessionEnd::Finished
                } else {
                    SessionEnd::Reconnect
                };
            }
            // A fresh transaction for those refused as "too many".
            for i in requeue.into_iter().rev() {
                queue.push_front(i);
            }
            if batch.len() == 1 && queue.front() == batch.first() {
                // Even one recipient is "too many": give up on this host.
                let i = queue.pop_front().expect("checked");
                jobs[i].record(attempt(
                    Stage::RcptTo,
                    AttemptEnd::Failed(
                        "the server refused even one recipient per transaction (452)".into(),
                    ),
                ));
            }
        }
        session.quit();
        SessionEnd::Finished
    }
}

enum SessionEnd {
    Finished,
    Reconnect,
}

fn tried_here(job: &Job, host: &MxHost, ip: IpAddr) -> bool {
    job.attempts
        .iter()
        .any(|a| a.ip == ip && a.host == host.name)
}

/// Hosts in Exim's order: preference ascending, equal preferences shuffled.
fn try_order(hosts: &[MxHost], rng: &mut impl Rng) -> Vec<(MxHost, IpAddr)> {
    let mut hosts = hosts.to_vec();
    let mut start = 0;
    while start < hosts.len() {
        let pref = hosts[start].preference;
        let end = hosts[start..]
            .iter()
            .position(|h| h.preference != pref)
            .map_or(hosts.len(), |n| start + n);
        hosts[start..end].shuffle(rng);
        start = end;
    }
    hosts
        .into_iter()
        .flat_map(|h| h.addrs.clone().into_iter().map(move |ip| (h.clone(), ip)))
        .collect()
}

/// One unit of work: a slice of one group.
struct Task<'g> {
    group: &'g Group,
    /// (domain, sender ids) in this task.
    domains: Vec<(&'g str, Vec<usize>)>,
    /// Run the per-domain control probes in this task.
    controls: bool,
}

/// What the callout stage hands back.
pub struct CalloutOutput {
    pub results: HashMap<usize, CalloutResult>,
    pub stats: CalloutStats,
}

/// Probe every sender of the in-shard groups.
pub fn run(
    groups: &[Group],
    mailboxes: &[Mailbox],
    opts: &CalloutOptions,
    prober_tokens: Vec<String>,
    hooks: Hooks<'_>,
) -> CalloutOutput {
    let progress = hooks.progress;
    let stop = hooks.stop;
    // A burst of one transaction's RCPTs lets a pipelined batch go out at
    // once; over any longer window the host still sees `per_host_rate`.
    let burst = NonZeroU32::new(opts.rcpt_per_transaction.clamp(1, u32::MAX as usize) as u32)
        .expect("clamped to at least one");
    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / opts.per_host_rate.max(0.001)))
        .expect("a positive period")
        .allow_burst(burst);
    let engine = Engine {
        opts,
        limiter: RateLimiter::keyed(quota),
        clock: DefaultClock::default(),
        open: Mutex::new(HashMap::new()),
        open_changed: Condvar::new(),
        backoff: Mutex::new(HashMap::new()),
        tempfail_runs: Mutex::new(HashMap::new()),
        connections: AtomicU64::new(0),
        transactions: AtomicU64::new(0),
        rcpt_commands: AtomicU64::new(0),
        sessions_by_host: Mutex::new(BTreeMap::new()),
        finished: AtomicU64::new(0),
        progress,
        stop,
    };
    let tasks = split_tasks(groups, opts);
    let results: Mutex<HashMap<usize, CalloutResult>> = Mutex::new(HashMap::new());
    let retries: Mutex<Vec<(Instant, usize, Vec<usize>)>> = Mutex::new(Vec::new());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.concurrency.max(1))
        .thread_name(|i| format!("sendercheck-callout-{i}"))
        .build()
        .expect("thread pool");
    pool.scope(|scope| {
        for (t, task) in tasks.iter().enumerate() {
            let engine = &engine;
            let results = &results;
            let retries = &retries;
            let tokens = &prober_tokens;
            scope.spawn(move |_| {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let mut again = Vec::new();
                run_task(engine, task, mailboxes, tokens, false, &mut |batch| {
                    (hooks.on_decided)(&batch);
                    again.extend(
                        batch
                            .iter()
                            .filter(|(_, r)| needs_reprobe(&r.evidence))
                            .map(|(id, _)| *id),
                    );
                    results.lock().expect("results lock").extend(batch);
                });
                if !again.is_empty() && !opts.greylist_wait.is_zero() {
                    retries.lock().expect("retry lock").push((
                        Instant::now() + opts.greylist_wait,
                        t,
                        again,
                    ));
                }
            });
        }
    });
    // Greylisting: re-probe once, after the wait, whoever got only 4xx.
    let mut retries = retries.into_inner().expect("retry lock");
    retries.sort_by_key(|r| r.0);
    if !retries.is_empty() {
        pool.scope(|scope| {
            for (ready, t, ids) in &retries {
                let engine = &engine;
                let results = &results;
                let tokens = &prober_tokens;
                let task = &tasks[*t];
                scope.spawn(move |_| {
                    // Wait for the greylisting delay, but not past a stop.
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let now = Instant::now();
                        if *ready <= now {
                            break;
                        }
                        std::thread::sleep((*ready - now).min(Duration::from_millis(100)));
                    }
                    let wanted: std::collections::HashSet<usize> = ids.iter().copied().collect();
                    let sub = Task {
                        group: task.group,
                        domains: task
                            .domains
                            .iter()
                            .map(|(d, s)| {
                                (
                                    *d,
                                    s.iter()
                                        .copied()
                                        .filter(|i| wanted.contains(i))
                                        .collect::<Vec<_>>(),
                                )
                            })
                            .filter(|(_, s)| !s.is_empty())
                            .collect(),
                        controls: false,
                    };
                    run_task(engine, &sub, mailboxes, tokens, true, &mut |mut out| {
                        let mut all = results.lock().expect("results lock");
                        for (id, r) in out.iter_mut() {
                            if let Some(old) = all.get(id) {
                                r.evidence.domain = old.evidence.domain.clone();
                                let mut t = old.transcript.clone();
                                t.push("* re-probing after the greylisting wait".to_string());
                                t.append(&mut r.transcript);
                                r.transcript = t;
                            }
                        }
                        (hooks.on_decided)(&out);
                        all.extend(out);
                    });
                });
            }
        });
    }
    let stats = CalloutStats {
        connections: engine.connections.load(Ordering::Relaxed),
        transactions: engine.transactions.load(Ordering::Relaxed),
        rcpt_commands: engine.rcpt_commands.load(Ordering::Relaxed),
        sessions_by_host: engine.sessions_by_host.into_inner().expect("stats lock"),
    };
    let mut results = results.into_inner().expect("results lock");
    // Rows 8/9: if not one MX of any domain took a connection, suspect our
    // own outbound port 25 rather than every domain in the list.
    let any = !results.is_empty();
    let all_connect_failed = any
        && results.values().all(|r| {
            !r.evidence.null_sender.is_empty()
                && r.evidence
                    .null_sender
                    .iter()
                    .all(|a| a.stage == Stage::Connect)
        });
    if all_connect_failed && groups.iter().filter(|g| g.in_shard).count() >= 3 {
        for r in results.values_mut() {
            r.evidence.egress_blocked = true;
        }
    }
    CalloutOutput { results, stats }
}

/// Only 4xx / failures everywhere, and at least one 4xx reply: a candidate
/// for greylisting.
fn needs_reprobe(ev: &SenderEvidence) -> bool {
    !ev.null_sender.is_empty()
        && !ev.null_sender.iter().any(|a| a.decides_for_exim())
        && ev
            .null_sender
            .iter()
            .any(|a| a.reply().is_some_and(|r| r.is_transient()))
}

/// Cut groups into tasks: up to `per_host_connections` slices per group, so a
/// big provider's senders are worked on by parallel sessions.
fn split_tasks<'g>(groups: &'g [Group], opts: &CalloutOptions) -> Vec<Task<'g>> {
    let mut tasks = Vec::new();
    let in_shard = groups.iter().filter(|g| g.in_shard).count().max(1);
    // Parallel sessions per group: up to --per-host-connections, but never
    // so many that the worker pool cannot run every group at once (a second
    // wave of sessions would double the run's length).
    let per_group = (opts.concurrency.max(1) / in_shard).clamp(1, opts.per_host_connections.max(1));
    for group in groups.iter().filter(|g| g.in_shard) {
        let total = group.sender_count();
        let slices = per_group
            .min(total.div_ceil(opts.rcpt_per_transaction.max(1)))
            .max(1);
        let mut buckets: Vec<Task<'g>> = (0..slices)
            .map(|_| Task {
                group,
                domains: Vec::new(),
                controls: true,
            })
            .collect();
        // Deal senders round-robin. A domain's controls go with its first
        // sender, and each domain starts on the next slice, so the controls
        // spread evenly over the slices too.
        for (k, d) in group.domains.iter().enumerate() {
            let mut per: Vec<Vec<usize>> = vec![Vec::new(); slices];
            for (n, id) in d.senders.iter().enumerate() {
                per[(k + n) % slices].push(*id);
            }
            for (s, ids) in per.into_iter().enumerate() {
                if !ids.is_empty() {
                    buckets[s].domains.push((d.domain.as_str(), ids));
                }
            }
        }
        tasks.extend(buckets.into_iter().filter(|t| !t.domains.is_empty()));
    }
    // Longest first.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.domains.iter().map(|d| d.1.len()).sum::<usize>()));
    tasks
}

fn random_local_part(rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("sendercheck-{tail}")
}

/// What deciding a task's senders needs besides the jobs.
struct TaskContext<'t> {
    opts: &'t CalloutOptions,
    tokens: &'t [String],
    reprobe: bool,
    /// The domain of each job (by job index).
    job_domain: Vec<&'t str>,
    /// Known (cached) control answers per domain, for the probes enabled.
    known: HashMap<&'t str, DomainProbes>,
}

impl TaskContext<'_> {
    /// The control answers of `domain`: those probed in this task, the
    /// known ones for the rest.
    fn controls(&self, jobs: &[Job], domain: &str) -> DomainProbes {
        let mut probes = self.known.get(domain).cloned().unwrap_or_default();
        for (j, job) in jobs.iter().enumerate() {
            if self.job_domain[j] != domain {
                continue;
            }
            let deciding = || {
                job.attempts
                    .iter()
                    .rev()
                    .find(|a| a.stage == Stage::RcptTo)
                    .and_then(|a| a.reply().cloned())
            };
            match job.kind {
                JobKind::Random(_) => probes.random = deciding(),
                JobKind::Postmaster(_) => probes.postmaster = deciding(),
                JobKind::Address(_) => {}
            }
        }
        probes
    }

    /// Whether every control job of `domain` in this task has its answer.
    fn controls_settled(&self, jobs: &[Job], domain: &str) -> bool {
        jobs.iter().enumerate().all(|(j, job)| {
            matches!(job.kind, JobKind::Address(_)) || self.job_domain[j] != domain || job.done
        })
    }

    /// Whether the null sender's refusal sends this job to the probe sender.
    fn needs_probe(&self, job: &Job) -> bool {
        self.opts.probe_sender.is_some() && null_refused(&job.attempts)
    }

    fn result(&self, jobs: &[Job], j: usize, probe: Option<&Job>) -> CalloutResult {
        let job = &jobs[j];
        let mut transcript = job.transcript.clone();
        if let Some(p) = probe {
            transcript.push(format!(
                "* retrying with MAIL FROM:<{}> (--probe-sender)",
                self.opts
                    .probe_sender
                    .as_ref()
                    .map(|s| s.as_str())
                    .unwrap_or("")
            ));
            transcript.extend(p.transcript.iter().cloned());
        }
        let evidence = SenderEvidence {
            null_sender: job.attempts.clone(),
            probe_sender: probe.map(|p| p.attempts.clone()),
            probe_sender_configured: self.opts.probe_sender.is_some(),
            reprobed_after_tempfail: self.reprobe,
            domain: self.controls(jobs, self.job_domain[j]),
            prober_tokens: self.tokens.to_vec(),
            egress_blocked: false,
        };
        CalloutResult {
            evidence,
            transcript,
        }
    }

    /// Results of the address jobs not yet reported. Unless `all`, only
    /// those final already: a definitive answer, no probe-sender retry still
    /// to come, the domain's controls settled. With `all` but `cut` (the stop
    /// flag ended the task early), only those with a definitive answer.
    fn collect(
        &self,
        jobs: &[Job],
        probes: &[Job],
        probe_of: &HashMap<usize, usize>,
        reported: &mut [bool],
        all: bool,
        cut: bool,
    ) -> Vec<(usize, CalloutResult)> {
        let mut out = Vec::new();
        for (j, job) in jobs.iter().enumerate() {
            let JobKind::Address(id) = job.kind else {
                continue;
            };
            if reported[j] {
                continue;
            }
            let probe = probe_of.get(&j).map(|&p| &probes[p]);
            let answered = job.done
                && (!self.needs_probe(job) || probe.is_some_and(|p| p.done || (all && !cut)));
            let ready = if all {
                answered || !cut
            } else {
                answered && self.controls_settled(jobs, self.job_domain[j])
            };
            if ready {
                reported[j] = true;
                out.push((id, self.result(jobs, j, probe)));
            }
        }
        out
    }
}

/// Probe one task's senders; `emit` gets their results as they become final
/// (see [`Decided`]). When the stop flag cuts the task short, senders
/// without a definitive answer get no result.
fn run_task(
    engine: &Engine<'_>,
    task: &Task<'_>,
    mailboxes: &[Mailbox],
    tokens: &[String],
    reprobe: bool,
    emit: &mut dyn FnMut(Vec<(usize, CalloutResult)>),
) {
    let opts = engine.opts;
    let mut rng = rand::rng();
    let order = try_order(&task.group.hosts, &mut rng);
    let known: HashMap<&str, DomainProbes> = task
        .domains
        .iter()
        .filter_map(|(domain, _)| {
            let k = opts.known_controls.get(*domain)?;
            let probes = DomainProbes {
                random: k.random.clone().filter(|_| opts.random_probe),
                postmaster: k.postmaster.clone().filter(|_| opts.postmaster_probe),
            };
            Some((*domain, probes))
        })
        .collect();
    let mut jobs = Vec::new();
    let mut job_domain = Vec::new();
    // A domain's slice in the first task that holds it carries its controls,
    // unless their answers are already known.
    let mut seen_domains = std::collections::HashSet::new();
    for (d, (domain, ids)) in task.domains.iter().enumerate() {
        if task.controls && seen_domains.insert(*domain) && first_slice_of(task, domain) {
            let k = known.get(domain);
            if opts.random_probe && k.is_none_or(|k| k.random.is_none()) {
                if let Ok(p) =
                    SmtpPath::parse(&format!("{}@{}", random_local_part(&mut rng), domain))
                {
                    jobs.push(Job::new(JobKind::Random(d), p));
                    job_domain.push(*domain);
                }
            }
            if opts.postmaster_probe && k.is_none_or(|k| k.postmaster.is_none()) {
                if let Ok(p) = SmtpPath::parse(&format!("postmaster@{domain}")) {
                    jobs.push(Job::new(JobKind::Postmaster(d), p));
                    job_domain.push(*domain);
                }
            }
        }
        for id in ids {
            jobs.push(Job::new(
                JobKind::Address(*id),
                SmtpPath::from_mailbox(&mailboxes[*id]),
            ));
            job_domain.push(*domain);
        }
    }
    let ctx = TaskContext {
        opts,
        tokens,
        reprobe,
        job_domain,
        known,
    };
    let mut reported = vec![false; jobs.len()];
    let mut cut = false;
    let no_probes: HashMap<usize, usize> = HashMap::new();
    for (host, ip) in &order {
        if jobs.iter().all(|j| j.done) {
            break;
        }
        let mut after = |js: &[Job]| {
            let batch = ctx.collect(js, &[], &no_probes, &mut reported, false, false);
            if !batch.is_empty() {
                emit(batch);
            }
        };
        if !engine.run_address(host, *ip, Sender::Null, &mut jobs, &mut after) {
            cut = true;
            break;
        }
    }

    // Null sender refused (at MAIL, or at RCPT about the sender): learn the
    // mailbox's fate with the probe sender, as Postfix would see it.
    let mut list: Vec<Job> = Vec::new();
    let mut probe_of: HashMap<usize, usize> = HashMap::new();
    if opts.probe_sender.is_some() && !cut {
        for (j, job) in jobs.iter().enumerate() {
            if let JobKind::Address(_) = job.kind {
                if ctx.needs_probe(job) {
                    probe_of.insert(j, list.len());
                    list.push(Job::new(job.kind, job.rcpt.clone()));
                }
            }
        }
        for (host, ip) in &order {
            if list.iter().all(|j| j.done) {
                break;
            }
            let mut after = |ps: &[Job]| {
                let batch = ctx.collect(&jobs, ps, &probe_of, &mut reported, false, false);
                if !batch.is_empty() {
                    emit(batch);
                }
            };
            if !engine.run_address(host, *ip, Sender::Probe, &mut list, &mut after) {
                cut = true;
                break;
            }
        }
    }
    let rest = ctx.collect(&jobs, &list, &probe_of, &mut reported, true, cut);
    if !rest.is_empty() {
        emit(rest);
    }
}

/// Whether `task` is the first slice of its group holding `domain` (so each
/// domain's controls run once per run).
fn first_slice_of(task: &Task<'_>, domain: &str) -> bool {
    let first_id = task
        .group
        .domains
        .iter()
        .find(|d| d.domain == domain)
        .and_then(|d| d.senders.first());
    task.domains
        .iter()
        .any(|(d, ids)| *d == domain && first_id.is_some_and(|f| ids.contains(f)))
}

/// The null sender was refused: 5xx at MAIL, or a 5xx at RCPT that names
/// the sender rather than the mailbox.
fn null_refused(attempts: &[Attempt]) -> bool {
    attempts.iter().any(|a| match (&a.end, a.stage) {
        (AttemptEnd::Reply(r), Stage::MailFrom) => r.is_permanent(),
        (AttemptEnd::Reply(r), Stage::RcptTo) => {
            let t = r.lower_text();
            r.is_permanent()
                && (r.enhanced_is(1, 7)
                    || t.contains("sender address rejected")
                    || t.contains("null sender")
                    || t.contains("<>"))
        }
        _ => false,
    })
}
