//! The callout engine: for every MX group, SMTP sessions that ask what a
//! receiver's sender callout asks (`MAIL FROM:<>`, `RCPT TO:<sender>`), with as
//! few connections as possible, rate-limited per MX host, never DATA.
//!
//! Work is cut into tasks (a slice of one group's senders); a rayon pool of
//! `--concurrency` threads runs them, longest group first. Each task walks the
//! group's MX addresses in Exim's order and keeps trying the next address for
//! every sender that has no definitive answer yet.
//!
//! This file holds the public API and the run's shared state; the parts live
//! in their own files:
//!
//! - `schedule`: tasks, their order, the worker pool, the greylist re-probe;
//! - `task`: one task's senders and controls, and the probe-sender retry;
//! - `session`: one MX address, one SMTP session at a time;
//! - `politeness`: what one MX host is spared (slots, rate, back-off);
//! - `job`: one RCPT to ask and what it has learned.

mod job;
mod politeness;
mod schedule;
mod session;
mod task;

use crate::address::Mailbox;
use crate::evidence::DomainProbes;
use crate::evidence::SenderEvidence;
use crate::plan::Group;
use crate::record::Stage;
use crate::smtp::{HeloName, SmtpPath};
use politeness::Politeness;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

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

/// What the callout stage hands back.
pub struct CalloutOutput {
    pub results: HashMap<usize, CalloutResult>,
    pub stats: CalloutStats,
}

/// Shared state of one run's callouts.
struct Engine<'a> {
    opts: &'a CalloutOptions,
    /// What each MX host is spared: session slots, RCPT rate, back-off.
    politeness: Politeness,
    connections: AtomicU64,
    transactions: AtomicU64,
    rcpt_commands: AtomicU64,
    sessions_by_host: Mutex<BTreeMap<String, u64>>,
    finished: AtomicU64,
    progress: Progress<'a>,
    /// Checked before each new session.
    stop: &'a AtomicBool,
}

impl<'a> Engine<'a> {
    fn new(opts: &'a CalloutOptions, hooks: &Hooks<'a>) -> Engine<'a> {
        Engine {
            opts,
            politeness: Politeness::new(opts),
            connections: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            rcpt_commands: AtomicU64::new(0),
            sessions_by_host: Mutex::new(BTreeMap::new()),
            finished: AtomicU64::new(0),
            progress: hooks.progress,
            stop: hooks.stop,
        }
    }

    fn into_stats(self) -> CalloutStats {
        CalloutStats {
            connections: self.connections.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            rcpt_commands: self.rcpt_commands.load(Ordering::Relaxed),
            sessions_by_host: self.sessions_by_host.into_inner().expect("stats lock"),
        }
    }
}

/// Probe every sender of the in-shard groups.
pub fn run(
    groups: &[Group],
    mailboxes: &[Mailbox],
    opts: &CalloutOptions,
    prober_tokens: Vec<String>,
    hooks: Hooks<'_>,
) -> CalloutOutput {
    let engine = Engine::new(opts, &hooks);
    let tasks = schedule::split_tasks(groups, opts);
    let results = schedule::run_tasks(&engine, &tasks, mailboxes, &prober_tokens, hooks);
    let stats = engine.into_stats();
    let mut results = results;
    flag_blocked_egress(groups, &mut results);
    CalloutOutput { results, stats }
}

/// Rows 8/9: if not one MX of any domain took a connection, suspect our
/// own outbound port 25 rather than every domain in the list.
fn flag_blocked_egress(groups: &[Group], results: &mut HashMap<usize, CalloutResult>) {
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
}
