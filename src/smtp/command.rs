//! Typed SMTP commands that cannot carry an injected line.
//!
//! A callout must never send anything but greeting-phase and envelope commands,
//! and a sender address from a CSV must never smuggle a second command in with a
//! CR or LF. So paths come only from validated mailboxes, the HELO name is
//! checked, and there is no `DATA` variant to build.

use std::fmt;

use crate::address::{self, AddressError, Mailbox};

/// Why a command argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("invalid SMTP path: {0}")]
    Address(#[from] AddressError),
    #[error("invalid HELO name \"{name}\": {reason}")]
    Helo {
        /// The refused name, escaped.
        name: String,
        reason: &'static str,
    },
}

/// A reverse- or forward-path: `<>` or `<local@domain>`.
///
/// Holds the text between the angle brackets. Built only from a
/// [`Mailbox`] (which cannot hold control characters) or as the null path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpPath(String);

impl SmtpPath {
    /// The null reverse-path `<>`, which a callout uses as a bounce would.
    pub fn null() -> SmtpPath {
        SmtpPath(String::new())
    }

    /// The path for a validated mailbox, local part as written.
    pub fn from_mailbox(mailbox: &Mailbox) -> SmtpPath {
        let text = format!("{}@{}", mailbox.local(), mailbox.domain().as_str());
        // Defence in depth: the address module already guarantees this; if that
        // ever regresses, refuse loudly rather than put it on the wire.
        assert!(
            !text.chars().any(char::is_control),
            "mailbox with a control character reached SmtpPath"
        );
        SmtpPath(text)
    }

    /// Parse an operator-supplied address (e.g. `--probe-sender`) with the
    /// same rules as the sender list.
    pub fn parse(s: &str) -> Result<SmtpPath, CommandError> {
        let cell = address::parse_cell(s)?;
        Ok(SmtpPath::from_mailbox(&cell.mailbox))
    }

    pub fn is_null(&self) -> bool {
        self.0.is_empty()
    }

    /// A non-ASCII path may only be sent in a transaction opened with the
    /// SMTPUTF8 parameter, to a server that offers it (RFC 6531 §3.4).
    pub fn needs_smtputf8(&self) -> bool {
        !self.0.is_ascii()
    }

    /// The ASCII form Exim sends to a server that does not offer SMTPUTF8
    /// ([`address::downconverted`]). `None` when nothing needs converting.
    pub fn downconverted(&self) -> Option<SmtpPath> {
        address::downconverted(&self.0).map(SmtpPath)
    }

    /// The text inside the angle brackets (empty for `<>`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SmtpPath {
    /// `<local@domain>` or `<>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

/// The name we give in EHLO/HELO: a domain name or an address literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeloName(String);

impl HeloName {
    /// Accepts an LDH domain name (`mx1.example.org`, labels of 1–63 bytes,
    /// at most 255 bytes) or an address literal (`[192.0.2.1]`,
    /// `[IPv6:2001:db8::1]`). Receivers reject odd HELO names, and a bad one
    /// would make every callout look like a probe-blocked failure.
    pub fn new(name: &str) -> Result<HeloName, CommandError> {
        let refuse = |reason| CommandError::Helo {
            name: name.escape_debug().take(80).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(refuse("empty"));
        }
        if let Some(inner) = name.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| refuse("address literal without ']'"))?;
            let ok = match inner.strip_prefix("IPv6:") {
                Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
                None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
            };
            return if ok {
                Ok(HeloName(name.to_string()))
            } else {
                Err(refuse("not an IPv4 or IPv6 address literal"))
            };
        }
        if name.len() > 255 {
            return Err(refuse("longer than 255 bytes"));
        }
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(refuse("empty label or label longer than 63 bytes"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(refuse("only letters, digits, '-' and '.' are allowed"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(refuse("label starts or ends with '-'"));
            }
        }
        Ok(HeloName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeloName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every command a callout may send. There is deliberately no `DATA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(HeloName),
    Helo(HeloName),
    MailFrom(SmtpPath),
    /// `MAIL FROM:<…> SMTPUTF8`: a transaction carrying a UTF-8 address.
    MailFromSmtputf8(SmtpPath),
    RcptTo(SmtpPath),
    Rset,
    Quit,
}

impl Command {
    /// The command as sent, CRLF included. `MAIL FROM` carries no parameter
    /// but SMTPUTF8, and that only when a recipient needs it (Exim sends no
    /// SIZE for sender verification).
    pub fn to_wire(&self) -> Vec<u8> {
        let line = self.to_string();
        // Defence in depth: the argument types make this impossible.
        assert!(
            !line.chars().any(char::is_control),
            "control character in an SMTP command"
        );
        let mut wire = line.into_bytes();
        wire.extend_from_slice(b"\r\n");
        wire
    }

    /// The verb, for stage names and logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::MailFrom(_) | Command::MailFromSmtputf8(_) => "MAIL",
            Command::RcptTo(_) => "RCPT",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
        }
    }
}

impl fmt::Display for Command {
    /// The command line without CRLF, as it appears in transcripts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Ehlo(h) => write!(f, "EHLO {h}"),
            Command::Helo(h) => write!(f, "HELO {h}"),
            Command::MailFrom(p) => write!(f, "MAIL FROM:{p}"),
            Command::MailFromSmtputf8(p) => write!(f, "MAIL FROM:{p} SMTPUTF8"),
            Command::RcptTo(p) => write!(f, "RCPT TO:{p}"),
            Command::Rset => f.write_str("RSET"),
            Command::Quit => f.write_str("QUIT"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let helo = HeloName::new("probe.example.org").unwrap();
        let rcpt = SmtpPath::parse("news@example.com").unwrap();
        let cases = [
            (Command::Ehlo(helo.clone()), "EHLO probe.example.org"),
            (Command::Helo(helo), "HELO probe.example.org"),
            (Command::MailFrom(SmtpPath::null()), "MAIL FROM:<>"),
            (
                Command::MailFromSmtputf8(SmtpPath::null()),
                "MAIL FROM:<> SMTPUTF8",
            ),
            (Command::RcptTo(rcpt), "RCPT TO:<news@example.com>"),
            (Command::Rset, "RSET"),
            (Command::Quit, "QUIT"),
        ];
        for (cmd, text) in cases {
            assert_eq!(cmd.to_string(), text);
            assert_eq!(cmd.to_wire(), format!("{text}\r\n").into_bytes());
            assert!(text.starts_with(cmd.verb()));
        }
    }

    #[test]
    fn null_path() {
        let p = SmtpPath::null();
        assert!(p.is_null());
        assert_eq!(p.as_str(), "");
        assert_eq!(p.to_string(), "<>");
        assert!(!SmtpPath::parse("a@b.example").unwrap().is_null());
    }

    #[test]
    fn injection_is_refused_at_parse() {
        for bad in [
            "a@b.example\r\nDATA",
            "a@b.example\nRCPT TO:<x@y>",
            "a\r@b.example",
            "a\0@b.example",
            "a@b.example\x7f",
            "",
        ] {
            assert!(SmtpPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn helo_names() {
        for good in [
            "localhost",
            "mx-1.example.org",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
            "a1.b2",
        ] {
            assert_eq!(HeloName::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "bad name",
            "a..b",
            ".a",
            "a.",
            "-a.b",
            "a-.b",
            "a_b.example",
            "x\r\nDATA",
            "[1.2.3]",
            "[192.0.2.1",
            "[IPv6:zz]",
            "[2001:db8::1]",
            "h\u{e9}.example",
        ] {
            assert!(HeloName::new(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(HeloName::new(&long).is_err());
        let err = HeloName::new("x\r\ny").unwrap_err().to_string();
        assert!(!err.contains('\r') && !err.contains('\n'), "{err}");
    }
}
