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
    /// The RCPT was last sent downconverted ([`SmtpPath::downconverted`]),
    /// to a server without SMTPUTF8.
    pub(super) downconverted: bool,
}

impl Job {
    pub(super) fn new(kind: JobKind, rcpt: SmtpPath) -> Job {
        Job {
            kind,
            rcpt,
            attempts: Vec::new(),
            transcript: Vec::new(),
            done: false,
            downconverted: false,
        }
    }

    /// The path to send in RCPT: as written, or, to a server that does not
    /// offer SMTPUTF8, downconverted as Exim does. Remembers which.
    pub(super) fn wire_rcpt(&mut self, server_offers_smtputf8: bool) -> SmtpPath {
        let converted = (!server_offers_smtputf8)
            .then(|| self.rcpt.downconverted())
            .flatten();
        self.downconverted = converted.is_some();
        converted.unwrap_or_else(|| self.rcpt.clone())
    }

    /// The path as last sent.
    pub(super) fn sent_rcpt(&self) -> SmtpPath {
        match self.rcpt.downconverted() {
            Some(p) if self.downconverted => p,
            _ => self.rcpt.clone(),
        }
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
