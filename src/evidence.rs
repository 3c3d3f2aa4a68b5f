//! What the callout stage observed for one sender: the input of the verdict
//! table. Plain data, independent of sockets, so the table is a pure function.

use crate::record::Stage;
use std::net::IpAddr;

/// A server reply reduced to what the verdict table reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplyFacts {
    pub code: u16,
    /// Enhanced status code (RFC 3463) as `class.subject.detail`.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The reply as sent, one string per line (`550-5.1.1 ...`).
    pub lines: Vec<String>,
}

impl ReplyFacts {
    pub fn new(code: u16, lines: Vec<String>) -> ReplyFacts {
        ReplyFacts {
            code,
            enhanced: None,
            lines,
        }
    }

    pub fn first_digit(&self) -> u8 {
        (self.code / 100) as u8
    }

    pub fn is_positive(&self) -> bool {
        self.first_digit() == 2
    }

    pub fn is_transient(&self) -> bool {
        self.first_digit() == 4
    }

    pub fn is_permanent(&self) -> bool {
        self.first_digit() == 5
    }

    /// All lines joined, lower-cased, for keyword tests.
    pub fn lower_text(&self) -> String {
        self.lines.join(" ").to_lowercase()
    }

    /// The subject and detail of the enhanced code, if any.
    pub fn enhanced_is(&self, subject: u16, detail: u16) -> bool {
        matches!(self.enhanced, Some((_, s, d)) if s == subject && d == detail)
    }
}

/// How one try at one MX address ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The server answered at `stage` (the last reply of the attempt).
    Reply(ReplyFacts),
    /// No usable reply: refused, timeout, reset, protocol error.
    Failed(String),
}

/// One MX address tried for one sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub host: String,
    pub ip: IpAddr,
    pub stage: Stage,
    pub end: AttemptEnd,
}

impl Attempt {
    pub fn reply(&self) -> Option<&ReplyFacts> {
        match &self.end {
            AttemptEnd::Reply(r) => Some(r),
            AttemptEnd::Failed(_) => None,
        }
    }

    /// Exim stops at the first 2xx/5xx to RCPT, or 5xx to greeting/HELO/MAIL.
    pub fn decides_for_exim(&self) -> bool {
        match (&self.end, self.stage) {
            (AttemptEnd::Reply(r), Stage::RcptTo) => r.is_positive() || r.is_permanent(),
            (AttemptEnd::Reply(r), Stage::Greeting | Stage::Helo | Stage::MailFrom) => {
                r.is_permanent()
            }
            _ => false,
        }
    }

    /// Postfix skips a 5xx greeting (`smtp_skip_5xx_greeting`) but stops at a
    /// 5xx to HELO or MAIL and at a 2xx/5xx to RCPT.
    pub fn decides_for_postfix(&self) -> bool {
        match (&self.end, self.stage) {
            (AttemptEnd::Reply(r), Stage::RcptTo) => r.is_positive() || r.is_permanent(),
            (AttemptEnd::Reply(r), Stage::Helo | Stage::MailFrom) => r.is_permanent(),
            _ => false,
        }
    }

    /// A short human description: `mx.example.com [192.0.2.1] at RCPT: 550 ...`.
    pub fn describe(&self) -> String {
        let what = match &self.end {
            AttemptEnd::Reply(r) => r.lines.join(" / "),
            AttemptEnd::Failed(why) => why.clone(),
        };
        format!(
            "{} [{}] at {}: {}",
            self.host,
            self.ip,
            self.stage.code(),
            what
        )
    }
}

/// Domain-level control probes, run once per domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainProbes {
    /// A random local part was tried: its RCPT reply.
    pub random: Option<ReplyFacts>,
    /// `postmaster@domain` was tried: its RCPT reply.
    pub postmaster: Option<ReplyFacts>,
}

/// Everything the callout stage learned about one sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderEvidence {
    /// Tries with `MAIL FROM:<>`, in host order, up to the deciding one.
    pub null_sender: Vec<Attempt>,
    /// Tries with `--probe-sender`, when the null sender was refused.
    pub probe_sender: Option<Vec<Attempt>>,
    /// Whether `--probe-sender` was configured at all.
    pub probe_sender_configured: bool,
    /// The first round saw only 4xx; `null_sender` holds the re-probe.
    pub reprobed_after_tempfail: bool,
    pub domain: DomainProbes,
    /// Strings that identify the prober (its HELO name, its addresses); a
    /// refusal naming them is about us, not the sender.
    pub prober_tokens: Vec<String>,
    /// Every MX of every domain in the run refused or timed out the
    /// connection: outbound port 25 is probably blocked here.
    pub egress_blocked: bool,
    /// The address needs SMTPUTF8, the MX that answered last does not offer
    /// it, so the RCPT went out downconverted as Exim sends it.
    pub smtputf8_downconverted: bool,
}
