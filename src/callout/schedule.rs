//! Who works on what, when: the groups cut into tasks (parallel slices of a
//! big provider's senders), the longest first on a pool of `--concurrency`
//! workers; MX addresses in Exim's order; and, once every task has run, one
//! re-probe after the greylisting wait for the senders that got only 4xx.

use super::task::run_task;
use super::{CalloutOptions, CalloutResult, Engine, Hooks};
use crate::address::Mailbox;
use crate::dns::MxHost;
use crate::evidence::SenderEvidence;
use crate::plan::Group;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One unit of work: a slice of one group.
pub(super) struct Task<'g> {
    pub(super) group: &'g Group,
    /// (domain, sender ids) in this task.
    pub(super) domains: Vec<(&'g str, Vec<usize>)>,
    /// Run the per-domain control probes in this task.
    pub(super) controls: bool,
}

/// Senders of one task to re-probe after the greylisting wait.
struct Retry {
    /// Not before this instant.
    ready: Instant,
    /// Index of the task they came from.
    task: usize,
    ids: Vec<usize>,
}

/// Cut groups into tasks: up to `per_host_connections` slices per group, so a
/// big provider's senders are worked on by parallel sessions.
pub(super) fn split_tasks<'g>(groups: &'g [Group], opts: &CalloutOptions) -> Vec<Task<'g>> {
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

/// Hosts in Exim's order: preference ascending, equal preferences shuffled.
pub(super) fn try_order(hosts: &[MxHost], rng: &mut impl Rng) -> Vec<(MxHost, IpAddr)> {
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

/// What every task of a run shares.
struct Run<'r> {
    engine: &'r Engine<'r>,
    tasks: &'r [Task<'r>],
    mailboxes: &'r [Mailbox],
    tokens: &'r [String],
    hooks: Hooks<'r>,
    results: Mutex<HashMap<usize, CalloutResult>>,
}

/// Run every task on the worker pool, then the greylist re-probes; the
/// results by sender id.
pub(super) fn run_tasks(
    engine: &Engine<'_>,
    tasks: &[Task<'_>],
    mailboxes: &[Mailbox],
    tokens: &[String],
    hooks: Hooks<'_>,
) -> HashMap<usize, CalloutResult> {
    let run = Run {
        engine,
        tasks,
        mailboxes,
        tokens,
        hooks,
        results: Mutex::new(HashMap::new()),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(engine.opts.concurrency.max(1))
        .thread_name(|i| format!("sendercheck-callout-{i}"))
        .build()
        .expect("thread pool");
    let retries = run.first_pass(&pool);
    if !retries.is_empty() {
        run.reprobe_pass(&pool, &retries);
    }
    run.results.into_inner().expect("results lock")
}

impl Run<'_> {
    /// Every task once; returns who to re-probe after greylisting, soonest
    /// first.
    fn first_pass(&self, pool: &rayon::ThreadPool) -> Vec<Retry> {
        let opts = self.engine.opts;
        let stop = self.hooks.stop;
        let retries: Mutex<Vec<Retry>> = Mutex::new(Vec::new());
        pool.scope(|scope| {
            for (t, task) in self.tasks.iter().enumerate() {
                let retries = &retries;
                scope.spawn(move |_| {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let mut again = Vec::new();
                    run_task(
                        self.engine,
                        task,
                        self.mailboxes,
                        self.tokens,
                        false,
                        &mut |batch| {
                            (self.hooks.on_decided)(&batch);
                            again.extend(
                                batch
                                    .iter()
                                    .filter(|(_, r)| needs_reprobe(&r.evidence))
                                    .map(|(id, _)| *id),
                            );
                            self.results.lock().expect("results lock").extend(batch);
                        },
                    );
                    if !again.is_empty() && !opts.greylist_wait.is_zero() {
                        retries.lock().expect("retry lock").push(Retry {
                            ready: Instant::now() + opts.greylist_wait,
                            task: t,
                            ids: again,
                        });
                    }
                });
            }
        });
        let mut retries = retries.into_inner().expect("retry lock");
        retries.sort_by_key(|r| r.ready);
        retries
    }

    /// Greylisting: re-probe once, after the wait, whoever got only 4xx.
    /// The new result replaces the old one, keeping its domain controls and
    /// prefixing its transcript.
    fn reprobe_pass(&self, pool: &rayon::ThreadPool, retries: &[Retry]) {
        let stop = self.hooks.stop;
        pool.scope(|scope| {
            for retry in retries {
                let task = &self.tasks[retry.task];
                scope.spawn(move |_| {
                    // Wait for the greylisting delay, but not past a stop.
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let now = Instant::now();
                        if retry.ready <= now {
                            break;
                        }
                        std::thread::sleep((retry.ready - now).min(Duration::from_millis(100)));
                    }
                    let sub = narrowed(task, &retry.ids);
                    run_task(
                        self.engine,
                        &sub,
                        self.mailboxes,
                        self.tokens,
                        true,
                        &mut |mut out| {
                            let mut all = self.results.lock().expect("results lock");
                            for (id, r) in out.iter_mut() {
                                if let Some(old) = all.get(id) {
                                    r.evidence.domain = old.evidence.domain.clone();
                                    let mut t = old.transcript.clone();
                                    t.push("* re-probing after the greylisting wait".to_string());
                                    t.append(&mut r.transcript);
                                    r.transcript = t;
                                }
                            }
                            (self.hooks.on_decided)(&out);
                            all.extend(out);
                        },
                    );
                });
            }
        });
    }
}

/// `task` cut down to the senders `ids`, without controls.
fn narrowed<'g>(task: &Task<'g>, ids: &[usize]) -> Task<'g> {
    let wanted: HashSet<usize> = ids.iter().copied().collect();
    Task {
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
    }
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
