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
