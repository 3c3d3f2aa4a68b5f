//! Verdicts: what a receiving server's sender verification would decide.
//!
//! The vocabulary (verdict codes, classes, flags) is stable: it appears in every
//! report format and in the `sendercheck/1` JSON schema, so renaming a variant
//! is a breaking change.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The three classes a CI gate and a reader care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Pass,
    Fail,
    Unknown,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Pass, Class::Fail, Class::Unknown];

    pub fn code(self) -> &'static str {
        match self {
            Class::Pass => "pass",
            Class::Fail => "fail",
            Class::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One verdict per sender; see DESIGN.md "Verdicts".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Receivable,
    Unreceivable,
    NullSenderRejected,
    NullMx,
    NoDomain,
    NoMailHost,
    InvalidAddress,
    Tempfail,
    Unreachable,
    ProbeBlocked,
    DnsError,
    Skipped,
}

impl Verdict {
    pub const ALL: [Verdict; 12] = [
        Verdict::Receivable,
        Verdict::Unreceivable,
        Verdict::NullSenderRejected,
        Verdict::NullMx,
        Verdict::NoDomain,
        Verdict::NoMailHost,
        Verdict::InvalidAddress,
        Verdict::Tempfail,
        Verdict::Unreachable,
        Verdict::ProbeBlocked,
        Verdict::DnsError,
        Verdict::Skipped,
    ];

    pub fn class(self) -> Class {
        match self {
            Verdict::Receivable => Class::Pass,
            Verdict::Unreceivable
            | Verdict::NullSenderRejected
            | Verdict::NullMx
            | Verdict::NoDomain
            | Verdict::NoMailHost
            | Verdict::InvalidAddress => Class::Fail,
            Verdict::Tempfail
            | Verdict::Unreachable
            | Verdict::ProbeBlocked
            | Verdict::DnsError
            | Verdict::Skipped => Class::Unknown,
        }
    }

    /// The stable kebab-case code used in every report.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Receivable => "receivable",
            Verdict::Unreceivable => "unreceivable",
            Verdict::NullSenderRejected => "null-sender-rejected",
            Verdict::NullMx => "null-mx",
            Verdict::NoDomain => "no-domain",
            Verdict::NoMailHost => "no-mail-host",
            Verdict::InvalidAddress => "invalid-address",
            Verdict::Tempfail => "tempfail",
            Verdict::Unreachable => "unreachable",
            Verdict::ProbeBlocked => "probe-blocked",
            Verdict::DnsError => "dns-error",
            Verdict::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Qualifiers on a verdict. Flags never change the class; they explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// Surrounding whitespace was removed from the cell.
    TrimmedWhitespace,
    /// A display name (`Name <addr>`) was removed from the cell.
    DisplayNameStripped,
    /// The domain is an address literal (`[192.0.2.1]`): there is no MX to ask.
    AddressLiteral,
    /// The local part is not ASCII: delivery needs SMTPUTF8 (RFC 6531).
    NeedsSmtputf8,
    /// The domain was written in Unicode and converted to its A-label.
    IdnConverted,
    /// The same address appears on an earlier line.
    Duplicate,
    /// No MX: the domain's A/AAAA host is used (RFC 5321 §5.1).
    ImplicitMx,
    /// A null MX is published beside real MX records (RFC 7505 §3 forbids it).
    NullMxMixed,
    /// An MX target is a CNAME (RFC 2181 §10.3 forbids it).
    MxCname,
    /// Some MX targets were unusable (unresolvable, literal, private).
    SomeMxUnusable,
    /// A random local part was accepted: the domain accepts every address.
    CatchAll,
    /// `postmaster@domain` was refused (RFC 5321 §4.5.1 requires it).
    NoPostmaster,
    /// The first answers were 4xx; a later re-probe was accepted.
    Greylisted,
    /// The result comes from the persistent cache.
    Cached,
    /// The address needs SMTPUTF8 and the MX does not offer it: receivers
    /// ask it about a downconverted address (Exim) or give up (Postfix).
    Smtputf8NotOffered,
}

impl Flag {
    pub fn code(self) -> &'static str {
        match self {
            Flag::TrimmedWhitespace => "trimmed-whitespace",
            Flag::DisplayNameStripped => "display-name-stripped",
            Flag::AddressLiteral => "address-literal",
            Flag::NeedsSmtputf8 => "needs-smtputf8",
            Flag::IdnConverted => "idn-converted",
            Flag::Duplicate => "duplicate",
            Flag::ImplicitMx => "implicit-mx",
            Flag::NullMxMixed => "null-mx-mixed",
            Flag::MxCname => "mx-cname",
            Flag::SomeMxUnusable => "some-mx-unusable",
            Flag::CatchAll => "catch-all",
            Flag::NoPostmaster => "no-postmaster",
            Flag::Greylisted => "greylisted",
            Flag::Cached => "cached",
            Flag::Smtputf8NotOffered => "smtputf8-not-offered",
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What one model of receiver would do with mail from this sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Pass,
    Fail,
    Defer,
}

impl Decision {
    pub fn code(self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Fail => "fail",
            Decision::Defer => "defer",
        }
    }
}

// ---------------------------------------------------------------------------
// The decision table: evidence → verdict. Pure; one branch per row of
// research/callout-semantics.md §7 (row numbers in comments).
// ---------------------------------------------------------------------------

use crate::evidence::{Attempt, ReplyFacts, SenderEvidence};
use crate::record::Stage;
use crate::smtp::EnhancedCode;

/// A decided verdict with its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub verdict: Verdict,
    pub reason: String,
    pub flags: Vec<Flag>,
    pub exim: Option<Decision>,
    pub postfix: Option<Decision>,
    /// The attempt whose reply decided, for the report's evidence.
    pub deciding: Option<Attempt>,
}

/// Words that show a refusal is about the prober (its IP, name, reputation),
/// not about the sender address. Free text may only move a verdict towards
/// unknown, never towards fail.
const PROBER_SIGNALS: &[&str] = &[
    // Plain "blocked" also covers "blocked using": a refusal that says it
    // blocked someone may be about us, so it can only move towards unknown
    // (rows 10, 14, 20), even beside user-unknown words.
    "blocked",
    "blocklist",
    "block list",
    "blacklist",
    "black list",
    "denylist",
    "spamhaus",
    "barracuda",
    "spamcop",
    "sorbs",
    "client host",
    "your ip",
    "your host",
    "your address",
    "reverse dns",
    "reverse lookup",
    "rdns",
    "ptr record",
    "no ptr",
    "helo command rejected",
    "helo name",
    "open resolver",
    "rate limit",
    "ratelimit",
    "too many bad recipients",
    "too many connections",
    "reputation",
    "s3140",
    "s3150",
    "dynamic ip",
    "residential",
    "pbl",
    "dnsbl",
    // Blocklist wording ("your IP is listed on …"); never a bare "listed":
    // Domino's unknown user is "User not listed in public Name & Address Book".
    "is listed",
    "are listed",
    "been listed",
    "listed on",
    "listed at",
    "listed by",
    // sendercheck does not STARTTLS; a server that insists refuses the
    // probe, not the sender (Exim's callouts do use TLS when offered).
    "starttls",
    "tls required",
    "requires tls",
    "tls is required",
    "encryption required",
];

fn about_prober(reply: &ReplyFacts, tokens: &[String]) -> bool {
    let text = reply.lower_text();
    PROBER_SIGNALS.iter().any(|s| text.contains(s))
        || tokens
            .iter()
            .filter(|t| !t.is_empty())
            .any(|t| text.contains(&t.to_lowercase()))
}

/// The enhanced status code (RFC 3463): the parsed field, or else read from
/// the first wire line (`550 5.1.1 ...`) by the SMTP reply parser's own rule,
/// for evidence built without it.
fn enhanced(reply: &ReplyFacts) -> Option<(u8, u16, u16)> {
    if reply.enhanced.is_some() {
        return reply.enhanced;
    }
    let text = reply.lines.first()?.get(4..)?;
    EnhancedCode::of_reply(reply.code, text).map(|e| (e.class, e.subject, e.detail))
}

/// Row 19: the MX does not serve the domain. Only explicit relay refusals
/// count: Postfix's "User unknown in relay recipient table" is row 18.
fn relay_denied(reply: &ReplyFacts) -> bool {
    let text = reply.lower_text();
    matches!(enhanced(reply), Some((_, 1, 2)))
        || [
            "relay access denied",
            "relaying denied",
            "relay not permitted",
            "relaying not permitted",
            "not permitted to relay",
            "relay denied",
            "unable to relay",
            "we do not relay",
            "relaying disallowed",
            "relay not allowed",
            "not allowed to relay",
            "relay prohibited",
            "no relaying",
        ]
        .iter()
        .any(|s| text.contains(s))
}

/// Row 23: "too many recipients" (452, or 552 which RFC 5321 §4.5.3.1.10
/// says to treat as temporary) is an artefact of batching several RCPTs in
/// one transaction; a real callout sends one RCPT and never sees it. It
/// decides nothing for either receiver model: re-probe in a new transaction.
fn batching_artefact(att: &Attempt) -> bool {
    att.stage == Stage::RcptTo
        && att.reply().is_some_and(|r| {
            matches!(r.code, 452 | 552)
                && (matches!(enhanced(r), Some((_, 5, 3)))
                    || r.lower_text().contains("too many recipients"))
        })
}

/// Exim's stopping rule (1.3, 1.5), minus row 23 artefacts.
fn exim_decides(att: &Attempt) -> bool {
    att.decides_for_exim() && !batching_artefact(att)
}

/// Postfix's stopping rule (2.3: 5xx banners skipped), minus row 23 artefacts.
fn postfix_decides(att: &Attempt) -> bool {
    att.decides_for_postfix() && !batching_artefact(att)
}

/// A refusal at RCPT that concerns the (null) sender rather than the mailbox:
/// Postfix with `smtpd_delay_reject` reports MAIL restrictions at RCPT.
fn about_null_sender(reply: &ReplyFacts) -> bool {
    let text = reply.lower_text();
    matches!(enhanced(reply), Some((_, 1, 7 | 8)))
        || text.contains("sender address rejected")
        || text.contains("null sender")
        || text.contains("<>")
        || text.contains("bounce")
}

fn user_unknown(reply: &ReplyFacts) -> bool {
    let text = reply.lower_text();
    // Row 18's signals, enhanced code read from the text too.
    matches!(
        enhanced(reply),
        Some((5, 1, 0 | 1 | 3 | 6)) | Some((5, 2, 1))
    ) || [
        "user unknown",
        "unknown user",
        "no such user",
        "does not exist",
        "unrouteable address",
        "mailbox unavailable",
        "recipient not found",
        "no mailbox",
        "mailbox not found",
        // Microsoft 365 Directory-Based Edge Blocking: 5.4.1 "Access denied"
        // for a mailbox that does not exist (research 3.6, row 18).
        "as(201806281)",
    ]
    .iter()
    .any(|s| text.contains(s))
}

/// Reply text without the addresses in it, to compare two refusals.
fn shape(reply: &ReplyFacts) -> String {
    reply
        .lower_text()
        .split_whitespace()
        .filter(|w| !w.contains('@'))
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_line(reply: &ReplyFacts) -> String {
    reply.lines.join(" ")
}

/// Walk attempts as a receiver model does: the first deciding one wins.
fn model_decision(
    attempts: &[Attempt],
    decides: fn(&Attempt) -> bool,
) -> (Decision, Option<&Attempt>) {
    match attempts.iter().find(|a| decides(a)) {
        Some(a) => {
            let positive = a.reply().is_some_and(|r| r.is_positive());
            (
                if positive {
                    Decision::Pass
                } else {
                    Decision::Fail
                },
                Some(a),
            )
        }
        None => (Decision::Defer, None),
    }
}

/// What a stock Postfix `reject_unverified_sender` would decide. It probes
/// with `double-bounce@`, so a refusal of the null sender does not matter:
/// use the non-null tries where we have them.
fn postfix_decision(ev: &SenderEvidence, null_refused: bool) -> Option<Decision> {
    let attempts = match (&ev.probe_sender, null_refused) {
        (Some(tries), _) => tries,
        (None, true) => return None,
        (None, false) => &ev.null_sender,
    };
    Some(model_decision(attempts, postfix_decides).0)
}

/// Decide one sender from what its callout observed.
pub fn decide(ev: &SenderEvidence) -> Decided {
    let mut d = decide_by_table(ev);
    if ev.smtputf8_downconverted {
        // Not in the §7 table: a UTF-8 address at an MX without SMTPUTF8.
        // Exim asks for the downconverted address and judges that answer;
        // Postfix's probe (smtputf8_autodetect_classes includes verify)
        // bounces: "SMTPUTF8 is required, but was not offered".
        d.flags.push(Flag::Smtputf8NotOffered);
        d.postfix = Some(Decision::Fail);
        d.reason.push_str(
            "; the MX does not offer SMTPUTF8, so the address was asked as Exim asks it, local part downconverted to xn--… (Postfix's probe would bounce: SMTPUTF8 required but not offered)",
        );
    }
    d
}

/// The §7 decision table proper.
fn decide_by_table(ev: &SenderEvidence) -> Decided {
    let (exim, exim_deciding) = model_decision(&ev.null_sender, exim_decides);
    let mut flags = Vec::new();
    let out = |verdict: Verdict,
               reason: String,
               postfix: Option<Decision>,
               deciding: Option<&Attempt>,
               flags: Vec<Flag>| Decided {
        verdict,
        reason,
        flags,
        exim: Some(exim),
        postfix,
        deciding: deciding.cloned(),
    };

    let Some(att) = exim_deciding else {
        // No MX gave a definitive answer: rows 8, 9, 12, 15, 22, 24.
        let last = ev.null_sender.last();
        let postfix = postfix_decision(ev, false);
        let all_connect_failures =
            !ev.null_sender.is_empty() && ev.null_sender.iter().all(|a| a.stage == Stage::Connect);
        if ev.null_sender.is_empty() {
            return out(
                Verdict::Unreachable,
                "no MX address could be tried".to_string(),
                postfix,
                None,
                flags,
            );
        }
        if all_connect_failures {
            if ev.egress_blocked {
                return out(
                    Verdict::ProbeBlocked,
                    "no MX host of any domain accepted a connection: outbound port 25 looks blocked where sendercheck runs".to_string(),
                    postfix,
                    last,
                    flags,
                );
            }
            let tried: Vec<String> = ev.null_sender.iter().map(Attempt::describe).collect();
            return out(
                Verdict::Unreachable,
                format!(
                    "no MX host accepted a connection ({}); Exim would defer",
                    tried.join("; ")
                ),
                postfix,
                last,
                flags,
            );
        }
        let what = last.map(Attempt::describe).unwrap_or_default();
        // Row 23: too many recipients in one transaction is not a verdict.
        if let Some(a) = ev.null_sender.iter().find(|a| batching_artefact(a)) {
            return out(
                Verdict::Tempfail,
                format!(
                    "{} refused the RCPT as one too many in the transaction; it says nothing about the address and must be re-probed in a fresh transaction: {}",
                    a.host,
                    a.describe()
                ),
                postfix,
                Some(a),
                flags,
            );
        }
        let retried = if ev.reprobed_after_tempfail {
            " (also after waiting and re-probing)"
        } else {
            ""
        };
        return out(
            Verdict::Tempfail,
            format!("only temporary answers from every MX{retried}: {what}; Exim would defer"),
            postfix,
            last,
            flags,
        );
    };

    let reply = att.reply().expect("deciding attempts carry a reply");
    let said = first_line(reply);
    match att.stage {
        // Rows 10 and 11: 5xx greeting or HELO.
        Stage::Greeting | Stage::Helo => {
            let postfix = postfix_decision(ev, false);
            if about_prober(reply, &ev.prober_tokens) {
                out(
                    Verdict::ProbeBlocked,
                    format!("{} refused our connection for reasons about the prober, not the sender: {said}", att.host),
                    postfix,
                    Some(att),
                    flags,
                )
            } else {
                out(
                    Verdict::Unreceivable,
                    format!("{} refuses SMTP at {}: {said}", att.host, att.stage.code()),
                    postfix,
                    Some(att),
                    flags,
                )
            }
        }
        // Rows 13 and 14: MAIL FROM:<> refused.
        Stage::MailFrom => {
            if about_prober(reply, &ev.prober_tokens) {
                let postfix = postfix_decision(ev, true);
                return out(
                    Verdict::ProbeBlocked,
                    format!(
                        "{} refused MAIL FROM:<> with a reason about the prober: {said}",
                        att.host
                    ),
                    postfix,
                    Some(att),
                    flags,
                );
            }
            null_sender_refused(ev, att, &said, &mut flags, exim)
        }
        Stage::RcptTo if reply.is_positive() => {
            // Rows 16, 17, 25.
            flags.extend(domain_flags(ev));
            if ev.reprobed_after_tempfail {
                flags.push(Flag::Greylisted);
            }
            let mut reason = format!("{} accepted RCPT TO with the null sender: {said}", att.host);
            if flags.contains(&Flag::CatchAll) {
                reason.push_str(
                    " (the domain accepts any local part, so the mailbox itself was not verified)",
                );
            }
            if flags.contains(&Flag::NoPostmaster) {
                reason.push_str("; postmaster@ is refused (RFC 5321 §4.5.1 requires it)");
            }
            let postfix = postfix_decision(ev, false);
            out(Verdict::Receivable, reason, postfix, Some(att), flags)
        }
        Stage::RcptTo => {
            // Rows 18–21: RCPT refused with 5xx.
            if about_prober(reply, &ev.prober_tokens) {
                let postfix = postfix_decision(ev, false);
                return out(
                    Verdict::ProbeBlocked,
                    format!(
                        "{} refused RCPT for reasons about the prober: {said}",
                        att.host
                    ),
                    postfix,
                    Some(att),
                    flags,
                );
            }
            // Row 13 at RCPT (Postfix `smtpd_delay_reject` reports MAIL
            // restrictions here), and row 21's control: the same RCPT with a
            // non-null MAIL FROM was accepted, so the refusal is about `<>`.
            let non_null_accepted = ev.probe_sender.as_ref().is_some_and(|tries| {
                tries.iter().find(|a| postfix_decides(a)).is_some_and(|a| {
                    a.stage == Stage::RcptTo && a.reply().is_some_and(|r| r.is_positive())
                })
            });
            if non_null_accepted || (about_null_sender(reply) && !user_unknown(reply)) {
                return null_sender_refused(ev, att, &said, &mut flags, exim);
            }
            let postfix = postfix_decision(ev, false);
            if relay_denied(reply) {
                return out(
                    Verdict::Unreceivable,
                    format!(
                        "{} does not accept mail for this domain (relay denied): {said}",
                        att.host
                    ),
                    postfix,
                    Some(att),
                    flags,
                );
            }
            // Row 20: the postmaster control refused the same way → about us.
            if !user_unknown(reply) {
                if let Some(pm) = &ev.domain.postmaster {
                    if pm.is_permanent() && pm.code == reply.code && shape(pm) == shape(reply) {
                        return out(
                            Verdict::ProbeBlocked,
                            format!(
                                "{} refuses postmaster@ with the same answer, so the refusal is not about this sender: {said}",
                                att.host
                            ),
                            postfix,
                            Some(att),
                            flags,
                        );
                    }
                }
            }
            flags.extend(
                domain_flags(ev)
                    .into_iter()
                    .filter(|f| *f == Flag::NoPostmaster),
            );
            out(
                Verdict::Unreceivable,
                format!("{} refused the address: {said}", att.host),
                postfix,
                Some(att),
                flags,
            )
        }
        Stage::Connect => unreachable!("a connect stage never decides"),
    }
}

/// Rows 13/14 (and a null sender refused at RCPT): decide with the probe
/// sender's tries when we have them.
fn null_sender_refused(
    ev: &SenderEvidence,
    att: &Attempt,
    said: &str,
    flags: &mut Vec<Flag>,
    exim: Decision,
) -> Decided {
    let postfix = postfix_decision(ev, true);
    let null_reply = att.reply().expect("deciding attempts carry a reply");
    let base = format!(
        "{} refuses the null sender MAIL FROM:<> that Exim sender callouts use (RFC 5321 §4.5.5 requires accepting it): {said}",
        att.host
    );
    let Some(tries) = &ev.probe_sender else {
        let reason = if ev.probe_sender_configured {
            format!("{base}; the probe-sender retry gave no answer, so the mailbox itself was not checked")
        } else {
            format!("{base}; the mailbox itself was not checked (set --probe-sender to check it)")
        };
        return Decided {
            verdict: Verdict::NullSenderRejected,
            reason,
            flags: flags.clone(),
            exim: Some(exim),
            postfix,
            deciding: Some(att.clone()),
        };
    };
    let deciding = tries.iter().find(|a| postfix_decides(a));
    let verdict_and_note = match deciding {
        Some(a) if a.stage == Stage::RcptTo => {
            let r = a.reply().expect("deciding attempts carry a reply");
            let mailbox = if r.is_positive() {
                "accepted"
            } else {
                "refused"
            };
            (
                Verdict::NullSenderRejected,
                format!(
                    "{base}; with a non-null sender the mailbox was {mailbox}: {}",
                    first_line(r)
                ),
            )
        }
        Some(a) => {
            let r = a.reply().expect("deciding attempts carry a reply");
            // Row 14, and §4 step 4: the non-null sender refused with
            // reputation text, or refused exactly as `<>` was, shows the
            // refusal is not specific to the null sender.
            let alike = r.code == null_reply.code && shape(r) == shape(null_reply);
            if alike {
                (
                    Verdict::ProbeBlocked,
                    format!(
                        "{} refused our non-null probe sender exactly as it refused MAIL FROM:<>, so the refusal is not about the null sender (most likely about the prober): {}",
                        a.host,
                        first_line(r)
                    ),
                )
            } else if about_prober(r, &ev.prober_tokens) {
                (
                    Verdict::ProbeBlocked,
                    format!(
                        "{} refused both the null sender and our probe sender, for reasons about the prober: {}",
                        a.host,
                        first_line(r)
                    ),
                )
            } else {
                (
                    Verdict::NullSenderRejected,
                    format!(
                        "{base}; the probe sender was refused too: {}",
                        first_line(r)
                    ),
                )
            }
        }
        None => (
            Verdict::NullSenderRejected,
            format!("{base}; the probe-sender retry got only temporary answers"),
        ),
    };
    if verdict_and_note.0 == Verdict::NullSenderRejected {
        if let Some(r) = deciding.and_then(|a| a.reply()) {
            if r.is_positive() {
                flags.extend(
                    domain_flags(ev)
                        .into_iter()
                        .filter(|f| *f == Flag::CatchAll),
                );
            }
        }
    }
    Decided {
        verdict: verdict_and_note.0,
        reason: verdict_and_note.1,
        flags: flags.clone(),
        exim: Some(exim),
        postfix,
        deciding: Some(att.clone()),
    }
}

fn domain_flags(ev: &SenderEvidence) -> Vec<Flag> {
    let mut flags = Vec::new();
    if ev.domain.random.as_ref().is_some_and(|r| r.is_positive()) {
        flags.push(Flag::CatchAll);
    }
    if ev
        .domain
        .postmaster
        .as_ref()
        .is_some_and(|r| r.is_permanent())
    {
        flags.push(Flag::NoPostmaster);
    }
    flags
}
