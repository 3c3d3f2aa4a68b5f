//! One MX address: as many SMTP sessions as it takes to ask it about every
//! pending job, each session going connect → greeting → hello → transactions
//! (`MAIL FROM`, a pipelined batch of `RCPT TO`, `RSET` between them) →
//! `QUIT`, and every reply attached to the jobs it answers, with the
//! transcript lines that show it. Whether to connect again (421, "too many
//! recipients") is decided here too; how hard a host may be pushed is
//! `politeness`'s business.

use super::job::{Job, JobKind, Sender};
use super::Engine;
use crate::dns::MxHost;
use crate::evidence::{Attempt, AttemptEnd, ReplyFacts};
use crate::record::Stage;
use crate::smtp::{Reply, ReplyLimits, Session, SessionConfig, SessionError, SmtpPath};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;

/// How one session ended.
enum SessionEnd {
    /// Every job it was given has its attempt here, or none ever will.
    Finished,
    /// The server cut the session short; the jobs without an attempt here
    /// want another session.
    Reconnect,
}

/// How a transaction ends its session early.
enum Leave {
    /// The server refused MAIL: say QUIT; the session is finished.
    Quit,
    /// Drop the connection without QUIT.
    Drop(SessionEnd),
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

/// A reply's lines as the transcript shows them.
fn reply_lines(reply: &Reply) -> impl Iterator<Item = String> {
    reply.wire_lines().into_iter().map(|l| format!("< {l}"))
}

/// The transcript lines of a job's RCPT: the command as sent, after a note
/// when the address went out downconverted.
fn rcpt_lines(job: &Job) -> Vec<String> {
    let mut lines = Vec::with_capacity(2);
    if job.downconverted() {
        lines.push(format!(
            "* no SMTPUTF8 offered: asking for <{}> as Exim does (local part downconverted)",
            job.rcpt.as_str()
        ));
    }
    lines.push(format!("> RCPT TO:<{}>", job.sent_rcpt().as_str()));
    lines
}

/// One session's peer, and the transcript lines (connect, greeting, hello)
/// that every job it answers starts with.
struct Visit<'v> {
    host: &'v MxHost,
    ip: IpAddr,
    header: Vec<String>,
}

impl Visit<'_> {
    fn attempt(&self, stage: Stage, end: AttemptEnd) -> Attempt {
        Attempt {
            host: self.host.name.clone(),
            ip: self.ip,
            stage,
            end,
        }
    }

    /// Give `job` the session's header, then `lines`, and record `end` at `stage`.
    fn settle(
        &self,
        job: &mut Job,
        lines: impl IntoIterator<Item = String>,
        stage: Stage,
        end: AttemptEnd,
    ) {
        job.transcript.extend(self.header.iter().cloned());
        job.transcript.extend(lines);
        job.record(self.attempt(stage, end));
    }
}

impl Engine<'_> {
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
    pub(super) fn run_address(
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
        let polite = &self.politeness;
        let mut reconnects = 0;
        // Every session either records an answer for at least one job or
        // asks to reconnect (bounded), so this ends; the cap is a backstop.
        let mut sessions_left = jobs.len() + 4;
        loop {
            let pending: Vec<usize> = (0..jobs.len())
                .filter(|i| !jobs[*i].done && !jobs[*i].tried_at(host, ip))
                .collect();
            if pending.is_empty() || sessions_left == 0 {
                return true;
            }
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            sessions_left -= 1;
            polite.wait_backoff(&host.name);
            let _slot = polite.slot(&host.name);
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
                .any(|&i| jobs[i].done || jobs[i].tried_at(host, ip));
            match outcome {
                SessionEnd::Finished => return true,
                SessionEnd::Reconnect if progressed || reconnects < 3 => {
                    if progressed {
                        reconnects = 0;
                        polite.forgive(&host.name);
                    } else {
                        reconnects += 1;
                    }
                    polite.slow_down(&host.name);
                }
                SessionEnd::Reconnect => {
                    // Give up on this address for whoever is left.
                    for i in pending {
                        if !jobs[i].done && !jobs[i].tried_at(host, ip) {
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

    /// One SMTP session asking about the `pending` jobs, as many
    /// transactions as `--rcpt-per-transaction` makes of them.
    fn session(
        &self,
        host: &MxHost,
        addr: SocketAddr,
        mail_from: &SmtpPath,
        jobs: &mut [Job],
        pending: &[usize],
    ) -> SessionEnd {
        let mut visit = Visit {
            host,
            ip: addr.ip(),
            header: vec![format!(
                "* connecting to {} [{}] port {}",
                host.name,
                addr.ip(),
                addr.port()
            )],
        };
        let mut session = match self.open(&mut visit, addr, jobs, pending) {
            ControlFlow::Continue(session) => session,
            ControlFlow::Break(end) => return end,
        };
        let mut queue: VecDeque<usize> = pending.iter().copied().collect();
        let mut first_txn = true;
        while !queue.is_empty() {
            if !first_txn {
                match session.rset() {
                    Ok(r) if r.is_positive() => {}
                    _ => return SessionEnd::Reconnect,
                }
            }
            first_txn = false;
            match self.transaction(&mut session, &visit, mail_from, jobs, &mut queue) {
                ControlFlow::Continue(()) => {}
                ControlFlow::Break(Leave::Quit) => {
                    session.quit();
                    return SessionEnd::Finished;
                }
                ControlFlow::Break(Leave::Drop(end)) => return end,
            }
        }
        session.quit();
        SessionEnd::Finished
    }

    /// Connect, read the greeting, say EHLO (HELO fallback). Each step's
    /// lines go into the visit's header; a step that fails answers every
    /// pending job with its attempt, and ends the session.
    fn open(
        &self,
        visit: &mut Visit<'_>,
        addr: SocketAddr,
        jobs: &mut [Job],
        pending: &[usize],
    ) -> ControlFlow<SessionEnd, Session> {
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
                    let end = AttemptEnd::Failed(why.clone());
                    visit.settle(&mut jobs[i], [format!("* {why}")], stage, end);
                }
                return ControlFlow::Break(SessionEnd::Finished);
            }
        };
        let greeting = session.greeting().clone();
        visit.header.extend(reply_lines(&greeting));
        if !greeting.is_positive() {
            for &i in pending {
                let end = AttemptEnd::Reply(facts(&greeting));
                visit.settle(&mut jobs[i], [], Stage::Greeting, end);
            }
            if greeting.code == 421 {
                self.politeness.slow_down(&visit.host.name);
            }
            session.quit();
            return ControlFlow::Break(SessionEnd::Finished);
        }
        match session.hello() {
            Ok(reply) if reply.is_positive() => {
                visit
                    .header
                    .push(format!("> EHLO {}", self.opts.helo.as_str()));
                visit.header.extend(reply_lines(&reply));
                ControlFlow::Continue(session)
            }
            Ok(reply) => {
                visit
                    .header
                    .push(format!("> HELO {}", self.opts.helo.as_str()));
                visit.header.extend(reply_lines(&reply));
                for &i in pending {
                    let end = AttemptEnd::Reply(facts(&reply));
                    visit.settle(&mut jobs[i], [], Stage::Helo, end);
                }
                session.quit();
                ControlFlow::Break(SessionEnd::Finished)
            }
            Err(e) => {
                let why = session_failure(&e);
                for &i in pending {
                    let end = AttemptEnd::Failed(why.clone());
                    visit.settle(&mut jobs[i], [format!("* {why}")], Stage::Helo, end);
                }
                ControlFlow::Break(SessionEnd::Finished)
            }
        }
    }

    /// One transaction: MAIL FROM, then the RCPTs of the next batch off
    /// `queue`. Those refused as "too many recipients" go back to the front
    /// of the queue for the next transaction.
    fn transaction(
        &self,
        session: &mut Session,
        visit: &Visit<'_>,
        mail_from: &SmtpPath,
        jobs: &mut [Job],
        queue: &mut VecDeque<usize>,
    ) -> ControlFlow<Leave> {
        let per_txn = self.opts.rcpt_per_transaction.max(1);
        let batch: Vec<usize> = queue.drain(..per_txn.min(queue.len())).collect();
        self.transactions.fetch_add(1, Ordering::Relaxed);
        // RFC 6531 §3.4: UTF-8 goes on the wire only to a server that offers
        // SMTPUTF8; to any other, Exim downconverts the local part.
        let smtputf8 = session.supports("SMTPUTF8");
        let paths: Vec<SmtpPath> = batch.iter().map(|&i| jobs[i].wire_rcpt(smtputf8)).collect();
        let mail_lines = self.mail(session, visit, mail_from, jobs, &batch, queue)?;
        for _ in &paths {
            self.politeness.rate(&visit.host.name);
        }
        self.rcpt_commands
            .fetch_add(paths.len() as u64, Ordering::Relaxed);
        let (replies, broken) = match session.rcpt_batch(&paths) {
            Ok(replies) => (replies, None),
            Err(SessionError::Partial { replies, source }) => (replies, Some(*source)),
            Err(e) => (Vec::new(), Some(e)),
        };
        let (requeue, reconnect) =
            self.attach_replies(visit, jobs, &batch, &mail_lines, &replies, broken.as_ref());
        if reconnect {
            return ControlFlow::Break(Leave::Drop(SessionEnd::Reconnect));
        }
        if broken.is_some() {
            return ControlFlow::Break(Leave::Drop(if requeue.is_empty() {
                SessionEnd::Finished
            } else {
                SessionEnd::Reconnect
            }));
        }
        // A fresh transaction for those refused as "too many".
        for i in requeue.into_iter().rev() {
            queue.push_front(i);
        }
        if batch.len() == 1 && queue.front() == batch.first() {
            // Even one recipient is "too many": give up on this host.
            let i = queue.pop_front().expect("checked");
            jobs[i].record(visit.attempt(
                Stage::RcptTo,
                AttemptEnd::Failed(
                    "the server refused even one recipient per transaction (452)".into(),
                ),
            ));
        }
        ControlFlow::Continue(())
    }

    /// `MAIL FROM` (with SMTPUTF8 when the batch needs it): it concerns the
    /// session, not a recipient, so a refusal or failure answers for the
    /// batch and everyone still queued. Accepted, it gives the lines each
    /// sender's transcript shows for it.
    fn mail(
        &self,
        session: &mut Session,
        visit: &Visit<'_>,
        mail_from: &SmtpPath,
        jobs: &mut [Job],
        batch: &[usize],
        queue: &VecDeque<usize>,
    ) -> ControlFlow<Leave, Vec<String>> {
        // The parameter only where it is needed: a batch that sends a UTF-8
        // address (to a server that offers SMTPUTF8; see `Job::wire_rcpt`).
        let smtputf8 = batch.iter().any(|&i| jobs[i].sent_rcpt().needs_smtputf8());
        let (mail_line, sent) = if smtputf8 {
            let line = format!("> MAIL FROM:<{}> SMTPUTF8", mail_from.as_str());
            (line, session.mail_from_smtputf8(mail_from))
        } else {
            let line = format!("> MAIL FROM:<{}>", mail_from.as_str());
            (line, session.mail_from(mail_from))
        };
        let mail = match sent {
            Ok(r) => r,
            Err(e) => {
                let why = session_failure(&e);
                for &i in batch.iter().chain(queue.iter()) {
                    let lines = [mail_line.clone(), format!("* {why}")];
                    let end = AttemptEnd::Failed(why.clone());
                    visit.settle(&mut jobs[i], lines, Stage::MailFrom, end);
                }
                return ControlFlow::Break(Leave::Drop(SessionEnd::Finished));
            }
        };
        if mail.code == 421 {
            return ControlFlow::Break(Leave::Drop(SessionEnd::Reconnect));
        }
        if !mail.is_positive() {
            for &i in batch.iter().chain(queue.iter()) {
                let lines = std::iter::once(mail_line.clone()).chain(reply_lines(&mail));
                let end = AttemptEnd::Reply(facts(&mail));
                visit.settle(&mut jobs[i], lines, Stage::MailFrom, end);
            }
            return ControlFlow::Break(Leave::Quit);
        }
        ControlFlow::Continue(
            std::iter::once(mail_line)
                .chain(reply_lines(&mail))
                .collect(),
        )
    }

    /// Attach each RCPT's reply to its job, or, past the replies the server
    /// gave, the failure that cut the batch short. Returns the jobs to ask
    /// again ("too many recipients", or after a 421) and whether the server
    /// asked us to reconnect (421).
    fn attach_replies(
        &self,
        visit: &Visit<'_>,
        jobs: &mut [Job],
        batch: &[usize],
        mail_lines: &[String],
        replies: &[Reply],
        broken: Option<&SessionError>,
    ) -> (Vec<usize>, bool) {
        let mut requeue = Vec::new();
        let mut reconnect = false;
        for (k, &i) in batch.iter().enumerate() {
            let Some(reply) = replies.get(k) else {
                if reconnect {
                    requeue.push(i);
                    continue;
                }
                let why = broken
                    .map(session_failure)
                    .unwrap_or_else(|| "no reply to RCPT".to_string());
                let lines = mail_lines
                    .iter()
                    .cloned()
                    .chain(rcpt_lines(&jobs[i]))
                    .chain([format!("* {why}")]);
                let end = AttemptEnd::Failed(why);
                visit.settle(&mut jobs[i], lines, Stage::RcptTo, end);
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
                    let lines = mail_lines
                        .iter()
                        .cloned()
                        .chain(rcpt_lines(&jobs[i]))
                        .chain(reply_lines(reply));
                    let end = AttemptEnd::Reply(facts(reply));
                    visit.settle(&mut jobs[i], lines, Stage::RcptTo, end);
                    if let JobKind::Address(_) = jobs[i].kind {
                        self.finished.fetch_add(1, Ordering::Relaxed);
                    }
                    self.politeness
                        .note_rcpt_reply(&visit.host.name, reply.is_transient());
                }
            }
        }
        (requeue, reconnect)
    }
}
