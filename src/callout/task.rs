//! One task (a slice of one MX group's senders) from start to results: the
//! jobs it asks (its senders, plus the catch-all and postmaster controls of
//! the domains it carries first), the walk over the group's MX addresses
//! with the null sender, the `--probe-sender` retry for those whose null
//! sender was refused, and when each sender's result is final enough to hand
//! out.

use super::job::{Job, JobKind, Sender};
use super::schedule::{try_order, Task};
use super::{CalloutOptions, CalloutResult, Engine};
use crate::address::Mailbox;
use crate::evidence::{Attempt, AttemptEnd, DomainProbes, SenderEvidence};
use crate::record::Stage;
use crate::smtp::SmtpPath;
use rand::Rng;
use std::collections::{HashMap, HashSet};

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
            smtputf8_downconverted: job.downconverted(),
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
/// (see [`Decided`](super::Decided)). When the stop flag cuts the task short,
/// senders without a definitive answer get no result.
pub(super) fn run_task(
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
    let mut seen_domains = HashSet::new();
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
