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
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
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

/// RCPT commands a group is expected to need: its senders plus, per domain,
/// the control probes that are switched on.
fn group_work(group: &Group, opts: &CalloutOptions) -> usize {
    let controls = usize::from(opts.random_probe) + usize::from(opts.postmaster_probe);
    group.sender_count() + controls * group.domains.len()
}

/// Parallel sessions (slices) for each group. Every group gets one; workers
/// left over once every group has one go, one at a time, to the group with
/// the most RCPTs per session, up to `--per-host-connections` each and never
/// more than a transaction's worth of senders per slice. The total never
/// exceeds the worker pool when there are fewer groups than workers, so all
/// sessions run at once: a second wave would double the run's length.
fn slices_per_group(groups: &[&Group], opts: &CalloutOptions) -> Vec<usize> {
    let work: Vec<usize> = groups.iter().map(|g| group_work(g, opts)).collect();
    let cap: Vec<usize> = groups
        .iter()
        .map(|g| {
            let by_senders = g.sender_count().div_ceil(opts.rcpt_per_transaction.max(1));
            opts.per_host_connections.max(1).min(by_senders).max(1)
        })
        .collect();
    let mut slices = vec![1; groups.len()];
    let mut spare = opts.concurrency.max(1).saturating_sub(groups.len());
    // Max-heap on RCPTs per session (scaled to keep fractions), ties to the
    // earlier group.
    let load = |i: usize, n: usize| (work[i] as u128 * 1_000_000) / n as u128;
    let mut heap: BinaryHeap<(u128, Reverse<usize>)> = (0..groups.len())
        .filter(|&i| cap[i] > 1)
        .map(|i| (load(i, 1), Reverse(i)))
        .collect();
    while spare > 0 {
        let Some((_, Reverse(i))) = heap.pop() else {
            break;
        };
        slices[i] += 1;
        spare -= 1;
        if slices[i] < cap[i] {
            heap.push((load(i, slices[i]), Reverse(i)));
        }
    }
    slices
}

/// Cut groups into tasks: up to `per_host_connections` slices per group
/// ([`slices_per_group`]), so a big provider's senders are worked on by
/// parallel sessions.
pub(super) fn split_tasks<'g>(groups: &'g [Group], opts: &CalloutOptions) -> Vec<Task<'g>> {
    let mut tasks = Vec::new();
    let in_shard: Vec<&Group> = groups.iter().filter(|g| g.in_shard).collect();
    let per_group = slices_per_group(&in_shard, opts);
    for (group, slices) in in_shard.into_iter().zip(per_group) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::DomainWork;
    use crate::smtp::HeloName;

    fn opts(concurrency: usize, per_host_connections: usize) -> CalloutOptions {
        CalloutOptions {
            port: 25,
            helo: HeloName::new("probe.example.org").unwrap(),
            probe_sender: None,
            connect_timeout: Duration::from_secs(1),
            reply_timeout: Duration::from_secs(1),
            session_deadline: Duration::from_secs(10),
            concurrency,
            per_host_rate: 5.0,
            per_host_connections,
            rcpt_per_transaction: 10,
            greylist_wait: Duration::ZERO,
            random_probe: true,
            postmaster_probe: true,
            known_controls: HashMap::new(),
        }
    }

    /// Group `n` with `senders` senders over `domains` domains.
    fn group(n: usize, domains: usize, senders: usize) -> Group {
        let mut work: Vec<DomainWork> = (0..domains)
            .map(|d| DomainWork {
                domain: format!("d{d}.g{n}.test"),
                senders: Vec::new(),
            })
            .collect();
        for s in 0..senders {
            work[s % domains].senders.push(n * 100_000 + s);
        }
        Group {
            key: format!("mx.g{n}.test"),
            hosts: Vec::new(),
            domains: work,
            in_shard: true,
        }
    }

    fn slices(groups: &[Group], o: &CalloutOptions) -> Vec<usize> {
        let refs: Vec<&Group> = groups.iter().collect();
        slices_per_group(&refs, o)
    }

    #[test]
    fn spare_workers_go_to_the_busiest_groups() {
        // 50 groups, the first ten twice as busy: 64 workers leave 14 spare.
        let groups: Vec<Group> = (0..50)
            .map(|n| group(n, 40, if n < 10 { 800 } else { 400 }))
            .collect();
        let got = slices(&groups, &opts(64, 2));
        assert_eq!(got.iter().sum::<usize>(), 64);
        assert!(got[..10].iter().all(|&s| s == 2), "{got:?}");
        assert_eq!(got[10..].iter().filter(|&&s| s == 2).count(), 4, "{got:?}");
        assert!(got.iter().all(|&s| (1..=2).contains(&s)));
    }

    #[test]
    fn fewer_workers_than_groups_means_one_session_each() {
        let groups: Vec<Group> = (0..50).map(|n| group(n, 4, 100)).collect();
        assert!(slices(&groups, &opts(32, 4)).iter().all(|&s| s == 1));
    }

    #[test]
    fn plenty_of_workers_fill_every_cap_but_never_past_the_senders() {
        // A group of 15 senders has work for two transactions: two slices.
        let groups = vec![group(0, 3, 500), group(1, 3, 15), group(2, 1, 1)];
        assert_eq!(slices(&groups, &opts(100, 4)), [4, 2, 1]);
    }

    #[test]
    fn tasks_cover_every_sender_once() {
        let groups: Vec<Group> = (0..5).map(|n| group(n, 7, 95 + n)).collect();
        let tasks = split_tasks(&groups, &opts(8, 3));
        let mut ids: Vec<usize> = tasks
            .iter()
            .flat_map(|t| t.domains.iter().flat_map(|(_, ids)| ids.iter().copied()))
            .collect();
        ids.sort_unstable();
        let mut want: Vec<usize> = groups
            .iter()
            .flat_map(|g| g.domains.iter().flat_map(|d| d.senders.iter().copied()))
            .collect();
        want.sort_unstable();
        assert_eq!(ids, want);
        assert_eq!(tasks.len(), 8);
    }
}
