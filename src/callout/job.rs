//! The unit both sessions and tasks work on: one RCPT to ask (a sender of
//! the input or a per-domain control) and what asking it has learned so far,
//! attempt by attempt, transcript line by transcript line.

use crate::dns::MxHost;
use crate::evidence::Attempt;
use crate::smtp::SmtpPath;
use std::net::IpAddr;

/// Which MAIL FROM a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sender {
    /// `MAIL FROM:<>`, what a receiver's callout sends.
    Null,
    /// The configured `--probe-sender`.
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobKind {
    /// A sender of the input (index into the address book).
    Address(usize),
    /// The catch-all control for a domain (index into the task's domains).
    Random(usize),
    /// The postmaster control for a domain.
    Postmaster(usize),
}

#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) kind: JobKind,
    pub(super) rcpt: SmtpPath,
    pub(super) attempts: Vec<Attempt>,
    pub(super) transcript: Vec<String>,
    /// Set once the job has a definitive answer (2xx/5xx at RCPT, 5xx at HELO/MAIL).
    pub(super) done: bool,
    /// The downconverted path ([`SmtpPath::downconverted`]) when the RCPT
    /// was last sent that way, to a server without SMTPUTF8.
    asked_as: Option<SmtpPath>,
}

impl Job {
    pub(super) fn new(kind: JobKind, rcpt: SmtpPath) -> Job {
        Job {
            kind,
            rcpt,
            attempts: Vec::new(),
            transcript: Vec::new(),
            done: false,
            asked_as: None,
        }
    }

    /// The path to send in RCPT: as written, or, to a server that does not
    /// offer SMTPUTF8, downconverted as Exim does. Remembers which.
    pub(super) fn wire_rcpt(&mut self, server_offers_smtputf8: bool) -> SmtpPath {
        self.asked_as = (!server_offers_smtputf8)
            .then(|| self.rcpt.downconverted())
            .flatten();
        self.sent_rcpt().clone()
    }

    /// The path as last sent.
    pub(super) fn sent_rcpt(&self) -> &SmtpPath {
        self.asked_as.as_ref().unwrap_or(&self.rcpt)
    }

    /// Whether the RCPT was last sent downconverted.
    pub(super) fn downconverted(&self) -> bool {
        self.asked_as.is_some()
    }

    pub(super) fn record(&mut self, attempt: Attempt) {
        self.done = attempt.decides_for_postfix();
        self.attempts.push(attempt);
    }

    /// Whether this job already has an attempt at this MX address.
    pub(super) fn tried_at(&self, host: &MxHost, ip: IpAddr) -> bool {
        self.attempts
            .iter()
            .any(|a| a.ip == ip && a.host == host.name)
    }
}
