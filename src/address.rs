//! RFC 5321 mailbox syntax, normalisation and de-duplication keys.
//!
//! A cell from the sender list becomes a [`Mailbox`] only if a receiving MTA
//! could take it verbatim in `MAIL FROM:<…>` / `RCPT TO:<…>`. Every rejection
//! carries a one-line reason that says what is wrong, where, and how to fix it.
//!
//! # Grammar (RFC 5321 §4.1.2, RFC 6531 §3.3)
//!
//! * Local part: a dot-string (RFC 5322 `atext` atoms joined by single dots) or
//!   a quoted string (`qtextSMTP`, and `\` + printable ASCII). Non-ASCII UTF-8
//!   is allowed in both and flagged [`Flag::NeedsSmtputf8`]. Kept exactly as
//!   written: local parts may be case-sensitive (§2.4), and `"abc"` is not
//!   rewritten to `abc`.
//! * Domain: LDH labels (letters, digits, inner hyphens) of 1–63 octets,
//!   lower-cased. Unicode domains go through UTS #46 to A-labels
//!   ([`Flag::IdnConverted`]); ASCII `xn--` labels must be valid Punycode.
//! * Address literal: `[192.0.2.1]`, `[IPv6:…]` (both checked with `std::net`;
//!   IPv6 is stored in RFC 5952 form so it de-duplicates), or a
//!   General-address-literal `[tag:content]` kept as written. All are
//!   [`Domain::Literal`] and flagged [`Flag::AddressLiteral`].
//! * Limits (§4.5.3.1): local part 64 octets, label 63, domain 255, and the
//!   whole `local@domain` 254 (a 256-octet path with its `<` `>`). Lengths are
//!   measured on the wire form (UTF-8 local part, A-label domain).
//!
//! # Decisions
//!
//! * Control characters (C0 including tab, DEL, C1) are refused anywhere in
//!   the raw cell, before trimming and even inside quotes: `a@b.com\r\n` is
//!   rejected, not trimmed. A `Mailbox` therefore cannot hold one and is safe
//!   to write into an SMTP command. Invisible characters (zero-width space,
//!   bidi controls, BOM, soft hyphen) and non-ASCII spaces inside the address
//!   are refused too: they are copy-paste debris that would make two
//!   different addresses look identical in a report.
//! * Surrounding whitespace (Unicode spaces such as NBSP included) is trimmed:
//!   [`Flag::TrimmedWhitespace`].
//! * `Name <addr>` and `"Last, First" <addr>`: the address is taken,
//!   [`Flag::DisplayNameStripped`]. The name is discarded, so it is read
//!   loosely, but an unquoted `@` in it is refused: then it is unclear which
//!   of two addresses is the sender.
//! * A bare `<addr>` is accepted with no flag: the brackets are SMTP path
//!   syntax and nothing of meaning is removed. `<>` (the null sender) is
//!   refused: there is no mailbox to verify.
//! * Single-label domains (`user@localhost`) are refused ("has no dot"): the
//!   syntax allows them, but they name no internet mail domain and receivers
//!   refuse them (Postfix `reject_non_fqdn_sender`). An all-digit top-level
//!   label is refused too (`user@192.0.2.1` must be written `[192.0.2.1]`).
//! * A trailing root dot (`example.com.`) is refused, not normalised away: it
//!   is not RFC 5321 syntax, and an audit of the silently-fixed address would
//!   report a pass for the sender actually configured.
//! * `mailto:` prefixes, source routes (`@a,@b:x@y`), several addresses in one
//!   cell, and several unquoted `@` are refused with a reason that says how to
//!   fix the cell.
//!
//! Plain ASCII addresses take a byte-scanning fast path: no regexes, and the
//! only allocations are the two strings of the result.

use crate::verdict::Flag;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// RFC 5321 §4.5.3.1.1: longest local part, in octets.
pub const MAX_LOCAL: usize = 64;
/// RFC 5321 §4.5.3.1.2: longest domain, in octets.
pub const MAX_DOMAIN: usize = 255;
/// RFC 1035 §2.3.4: longest DNS label, in octets.
pub const MAX_LABEL: usize = 63;
/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets including `<` and `>`.
pub const MAX_ADDRESS: usize = 254;

/// The domain part of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// A domain name, lower-cased, in A-label (ASCII) form.
    Name(String),
    /// An address literal, brackets included (`[192.0.2.1]`). IPv6 literals
    /// are in RFC 5952 form (`[IPv6:2001:db8::1]`); others as written.
    Literal(String),
}

impl Domain {
    pub fn as_str(&self) -> &str {
        match self {
            Domain::Name(s) | Domain::Literal(s) => s,
        }
    }

    /// The domain name, or `None` for an address literal (no MX to look up).
    pub fn name(&self) -> Option<&str> {
        match self {
            Domain::Name(s) => Some(s),
            Domain::Literal(_) => None,
        }
    }

    /// The IP of an `[IPv4]` or `[IPv6:…]` literal; `None` for names and for
    /// general address literals, which name no IP.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        let inner = self.as_literal_inner()?;
        match strip_ipv6_tag(inner) {
            Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            None => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        }
    }

    fn as_literal_inner(&self) -> Option<&str> {
        match self {
            Domain::Literal(s) => Some(&s[1..s.len() - 1]),
            Domain::Name(_) => None,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A syntactically valid RFC 5321 mailbox. It cannot hold CR, LF, NUL or any
/// other control character, so it is safe to place in an SMTP command.
///
/// The only ways to build one are [`parse_cell`], [`parse_mailbox`] (also
/// `str::parse`) and [`Mailbox::with_local`], which all validate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox {
    local: String,
    domain: Domain,
}

impl Mailbox {
    pub fn local(&self) -> &str {
        &self.local
    }
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
    /// `local@domain`, the normalised form used as the de-duplication key.
    pub fn normalized(&self) -> String {
        let d = self.domain.as_str();
        let mut s = String::with_capacity(self.local.len() + 1 + d.len());
        s.push_str(&self.local);
        s.push('@');
        s.push_str(d);
        s
    }
    /// The domain name to look up, or `None` for an address literal.
    pub fn domain_name(&self) -> Option<&str> {
        self.domain.name()
    }
    pub fn is_address_literal(&self) -> bool {
        matches!(self.domain, Domain::Literal(_))
    }
    /// The IP of an IPv4/IPv6 address literal (see [`Domain::literal_ip`]).
    pub fn literal_ip(&self) -> Option<IpAddr> {
        self.domain.literal_ip()
    }
    /// True when the local part is not ASCII: the receiver must offer SMTPUTF8.
    pub fn needs_smtputf8(&self) -> bool {
        !self.local.is_ascii()
    }
    /// Another mailbox at the same domain (e.g. `postmaster`, or a random
    /// local part for a catch-all probe), validated like any other.
    pub fn with_local(&self, local: &str) -> Result<Mailbox, AddressError> {
        check_controls(local)?;
        if !local.is_ascii() {
            check_invisible(local)?;
        }
        if local.is_empty() {
            return Err(syntax("local part is empty".to_string()));
        }
        check_local(local)?;
        check_lengths(local, self.domain.as_str())?;
        Ok(Mailbox {
            local: local.to_string(),
            domain: self.domain.clone(),
        })
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl FromStr for Mailbox {
    type Err = AddressError;
    /// Strict: a bare `local@domain`, no whitespace, brackets or names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_mailbox(s)
    }
}

/// A parsed cell: the mailbox and what was done to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCell {
    pub mailbox: Mailbox,
    /// In the order the steps ran; each flag at most once.
    pub flags: Vec<Flag>,
}

/// Why a cell is not a mailbox. `Display` is one human line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty cell: there is no address to check")]
    Empty,
    /// A control character; `position` is the 1-based character index in
    /// the cell. Kept apart so reports can single out injection attempts.
    #[error("contains {} at character {position}: rejected so it can never inject an SMTP command", describe_control(*.ch))]
    ControlCharacter { ch: char, position: usize },
    #[error("{0}")]
    Syntax(String),
}

fn syntax(msg: String) -> AddressError {
    AddressError::Syntax(msg)
}

/// The ASCII form of a normalised address that Exim sends to a server that
/// does not offer SMTPUTF8 (its default `utf8_downconvert`): a non-ASCII
/// local part becomes `xn--` plus its Punycode, as written (no case
/// folding); the domain is already an A-label. `None` when the address is
/// ASCII already (or cannot be converted).
pub fn downconverted(address: &str) -> Option<String> {
    if address.is_ascii() {
        return None;
    }
    let (local, domain) = address.rsplit_once('@')?;
    let local = if local.is_ascii() {
        local.to_string()
    } else {
        format!("xn--{}", idna::punycode::encode_str(local)?)
    };
    let text = format!("{local}@{domain}");
    text.is_ascii().then_some(text)
}

/// Parse one CSV cell into a mailbox (see the module doc for what a cell may
/// hold around the address).
pub fn parse_cell(cell: &str) -> Result<ParsedCell, AddressError> {
    check_controls(cell)?;
    let mut flags = Vec::new();
    let trimmed = cell.trim();
    if trimmed.is_empty() {
        return Err(AddressError::Empty);
    }
    if trimmed.len() != cell.len() {
        flags.push(Flag::TrimmedWhitespace);
    }
    let addr = extract_address(trimmed, &mut flags)?;
    let mailbox = parse_addr_spec(addr, &mut flags)?;
    Ok(ParsedCell { mailbox, flags })
}

/// Parse a bare `local@domain` strictly: no trimming, brackets or names.
/// For addresses that come from configuration rather than a sender list.
pub fn parse_mailbox(s: &str) -> Result<Mailbox, AddressError> {
    check_controls(s)?;
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    parse_addr_spec(s, &mut Vec::new())
}

// ---------------------------------------------------------------------------
// Safety: control and invisible characters.

/// Refuse C0 (tab included), DEL and C1 anywhere. C1 is U+0080–U+009F, which
/// UTF-8 encodes as 0xC2 0x80–0x9F; no other sequence starts with 0xC2 there.
fn check_controls(s: &str) -> Result<(), AddressError> {
    let b = s.as_bytes();
    // Branch-free pre-scan (vectorises); 0xC2 also starts harmless Latin-1
    // letters, so a hit only means "look closer".
    let suspect = b.iter().fold(false, |acc, &c| {
        acc | (c < 0x20) | (c == 0x7f) | (c == 0xc2)
    });
    if !suspect {
        return Ok(());
    }
    for i in 0..b.len() {
        let c = b[i];
        let bad = c < 0x20 || c == 0x7f || (c == 0xc2 && matches!(b.get(i + 1), Some(0x80..=0x9f)));
        if bad {
            let ch = s[i..].chars().next().unwrap_or('\0');
            let position = s[..i].chars().count() + 1;
            return Err(AddressError::ControlCharacter { ch, position });
        }
    }
    Ok(())
}

fn describe_control(ch: char) -> String {
    match ch {
        '\r' => "a line break (CR, \\r)".into(),
        '\n' => "a line break (LF, \\n)".into(),
        '\0' => "a NUL byte (\\0)".into(),
        '\t' => "a tab (\\t)".into(),
        '\u{7f}' => "a DEL character (\\x7f)".into(),
        c if (c as u32) < 0x20 => format!("a control character (\\x{:02x})", c as u32),
        c => format!("a control character (U+{:04X})", c as u32),
    }
}

/// Characters that render as nothing or as a plain space.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    ) || (!c.is_ascii() && c.is_whitespace())
}

fn check_invisible(s: &str) -> Result<(), AddressError> {
    match s.chars().find(|&c| is_invisible(c)) {
        None => Ok(()),
        Some(c) => Err(syntax(format!(
            "contains an invisible or non-ASCII space character (U+{:04X}); retype the address",
            c as u32
        ))),
    }
}

// ---------------------------------------------------------------------------
// The cell around the address.

/// Find the first byte in `s` (outside a quoted string) for which `pred` holds.
/// `Err(())` when a quote is left open. Backslash escapes only inside quotes.
fn find_unquoted(s: &[u8], pred: impl Fn(u8) -> bool) -> Result<Option<usize>, ()> {
    let mut in_quote = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if in_quote {
            match c {
                b'\\' => i += 1,
                b'"' => in_quote = false,
                _ => {}
            }
        } else if c == b'"' {
            in_quote = true;
        } else if pred(c) {
            return Ok(Some(i));
        }
        i += 1;
    }
    if in_quote {
        Err(())
    } else {
        Ok(None)
    }
}

/// Strip `Name <…>` / `<…>` and refuse what cannot be one envelope-sender.
fn extract_address<'a>(cell: &'a str, flags: &mut Vec<Flag>) -> Result<&'a str, AddressError> {
    check_mailto(cell)?;
    let bytes = cell.as_bytes();
    if !bytes
        .iter()
        .fold(false, |acc, &b| acc | (b == b'<') | (b == b'>'))
    {
        return Ok(cell);
    }
    let open = match find_unquoted(bytes, |b| b == b'<' || b == b'>') {
        Err(()) => return Err(unclosed_quote(cell)),
        Ok(None) => return Ok(cell), // brackets only inside quotes
        Ok(Some(i)) if bytes[i] == b'>' => {
            return Err(syntax(format!(
                "has '>' with no opening '<' ({}); write the address alone, or as Name <address>",
                Shown(cell)
            )))
        }
        Ok(Some(i)) => i,
    };
    let rest = &cell[open + 1..];
    let close = match find_unquoted(rest.as_bytes(), |b| b == b'>') {
        Ok(Some(i)) => i,
        Ok(None) | Err(()) => {
            return Err(syntax(format!(
                "has '<' with no closing '>' ({}); write the address alone, or as Name <address>",
                Shown(cell)
            )))
        }
    };
    let after = rest[close + 1..].trim();
    if !after.is_empty() {
        return Err(if after.contains('@') {
            two_addresses(cell)
        } else {
            syntax(format!(
                "unexpected text after '>' ({}); remove it",
                Shown(after)
            ))
        });
    }
    let name = cell[..open].trim();
    if !name.is_empty() {
        // Quote state from the scan above: `open` was found outside quotes.
        if let Ok(Some(_)) = find_unquoted(name.as_bytes(), |b| b == b'@') {
            let sep = find_unquoted(name.as_bytes(), |b| b == b',' || b == b';');
            return Err(if let Ok(Some(_)) = sep {
                two_addresses(cell)
            } else {
                syntax(format!(
                    "the name before '<' contains '@' ({}); keep only one address, or quote the name",
                    Shown(name)
                ))
            });
        }
        flags.push(Flag::DisplayNameStripped);
    }
    let inner = &rest[..close];
    let addr = inner.trim();
    if addr.is_empty() {
        return Err(syntax(
            "empty path \"<>\" (the null sender): there is no mailbox to verify; list the real envelope-sender"
                .to_string(),
        ));
    }
    if addr.len() != inner.len() && !flags.contains(&Flag::TrimmedWhitespace) {
        flags.push(Flag::TrimmedWhitespace);
    }
    check_mailto(addr)?;
    Ok(addr)
}

fn check_mailto(s: &str) -> Result<(), AddressError> {
    let b = s.as_bytes();
    if b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"mailto:") {
        return Err(syntax(format!(
            "starts with \"mailto:\" ({}); remove it and keep only the address",
            Shown(s)
        )));
    }
    Ok(())
}

fn two_addresses(cell: &str) -> AddressError {
    syntax(format!(
        "two addresses in one cell ({}); put one sender per row",
        Shown(cell)
    ))
}

fn unclosed_quote(s: &str) -> AddressError {
    syntax(format!(
        "has an opening '\"' with no closing '\"' ({})",
        Shown(s)
    ))
}

// ---------------------------------------------------------------------------
// local@domain

fn parse_addr_spec(addr: &str, flags: &mut Vec<Flag>) -> Result<Mailbox, AddressError> {
    let ascii = addr.is_ascii();
    if !ascii {
        check_invisible(addr)?;
    }
    let b = addr.as_bytes();
    if b[0] == b'@' && addr.contains(':') {
        return Err(syntax(format!(
            "starts with a source route ({}); these are obsolete, write only local@domain",
            Shown(addr)
        )));
    }
    let at = match find_unquoted(b, |c| c == b'@') {
        Err(()) => return Err(unclosed_quote(addr)),
        Ok(None) => {
            return Err(syntax(format!(
                "no '@' ({}); write the full address as local@domain",
                Shown(addr)
            )))
        }
        Ok(Some(i)) => i,
    };
    if let Ok(Some(_)) = find_unquoted(&b[at + 1..], |c| c == b'@') {
        let sep = find_unquoted(b, |c| matches!(c, b',' | b';' | b' '));
        return Err(if let Ok(Some(_)) = sep {
            two_addresses(addr)
        } else {
            syntax(format!(
                "more than one '@' outside quotes ({}); quote the local part if it really contains '@'",
                Shown(addr)
            ))
        });
    }
    let (local, domain) = (&addr[..at], &addr[at + 1..]);
    if local.is_empty() {
        return Err(syntax(format!(
            "nothing before '@' ({}): the local part is empty",
            Shown(addr)
        )));
    }
    if domain.is_empty() {
        return Err(syntax(format!(
            "nothing after '@' ({}): the domain is empty",
            Shown(addr)
        )));
    }
    check_local(local)?;
    check_local_len(local)?;
    if !ascii && !local.is_ascii() {
        flags.push(Flag::NeedsSmtputf8);
    }
    let domain = parse_domain(domain, flags)?;
    check_lengths(local, domain.as_str())?;
    Ok(Mailbox {
        local: local.to_string(),
        domain,
    })
}

fn check_local_len(local: &str) -> Result<(), AddressError> {
    if local.len() > MAX_LOCAL {
        return Err(syntax(format!(
            "local part is {} octets; RFC 5321 allows {MAX_LOCAL}",
            local.len()
        )));
    }
    Ok(())
}

fn check_lengths(local: &str, domain: &str) -> Result<(), AddressError> {
    check_local_len(local)?;
    let total = local.len() + 1 + domain.len();
    if total > MAX_ADDRESS {
        return Err(syntax(format!(
            "address is {total} octets; RFC 5321 allows {MAX_ADDRESS} (a 256-octet path with its < >)"
        )));
    }
    Ok(())
}

/// RFC 5322 `atext`; non-ASCII bytes are UTF-8 atext under RFC 6531.
fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c) || c >= 0x80
}

/// Validate a non-empty local part as dot-string or quoted-string.
fn check_local(local: &str) -> Result<(), AddressError> {
    let b = local.as_bytes();
    if b[0] == b'"' {
        return check_quoted_local(local);
    }
    let mut prev_dot = false;
    for (i, &c) in b.iter().enumerate() {
        if c == b'.' {
            if i == 0 {
                return Err(syntax(format!(
                    "local part starts with a dot ({})",
                    Shown(local)
                )));
            }
            if prev_dot {
                return Err(syntax(format!(
                    "local part has consecutive dots ({})",
                    Shown(local)
                )));
            }
            prev_dot = true;
        } else if is_atext(c) {
            prev_dot = false;
        } else if c == b'"' {
            return Err(syntax(format!(
                "local part has a '\"' inside it ({}); quotes must enclose the whole local part",
                Shown(local)
            )));
        } else {
            return Err(syntax(format!(
                "local part contains {} ({}), which is only allowed inside a quoted local part",
                name_char(c),
                Shown(local)
            )));
        }
    }
    if prev_dot {
        return Err(syntax(format!(
            "local part ends with a dot ({})",
            Shown(local)
        )));
    }
    Ok(())
}

/// `"…"` with qtextSMTP (printable ASCII but `"` and `\`, or UTF-8) and
/// quoted-pairSMTP (`\` + printable ASCII). Controls were refused earlier.
fn check_quoted_local(local: &str) -> Result<(), AddressError> {
    let b = local.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => match b.get(i + 1) {
                Some(32..=126) => i += 2,
                _ => {
                    return Err(syntax(format!(
                        "a '\\' in the quoted local part ({}) must be followed by a printable ASCII character",
                        Shown(local)
                    )))
                }
            },
            b'"' => {
                if i + 1 != b.len() {
                    return Err(syntax(format!(
                        "local part has text after its closing quote ({}); quotes must enclose the whole local part",
                        Shown(local)
                    )));
                }
                return Ok(());
            }
            _ => i += 1,
        }
    }
    Err(unclosed_quote(local))
}

fn parse_domain(domain: &str, flags: &mut Vec<Flag>) -> Result<Domain, AddressError> {
    if domain.as_bytes()[0] == b'[' {
        let lit = parse_literal(domain)?;
        flags.push(Flag::AddressLiteral);
        return Ok(lit);
    }
    if domain.is_ascii() {
        check_domain_name(domain)?;
        let lower = domain.to_ascii_lowercase();
        if has_a_label(&lower) {
            check_a_labels(&lower)?;
        }
        return Ok(Domain::Name(lower));
    }
    // Refuse bad ASCII before IDNA so the reason names the character.
    if let Some(&c) = domain
        .as_bytes()
        .iter()
        .find(|&&c| c < 0x80 && !(c.is_ascii_alphanumeric() || c == b'-' || c == b'.'))
    {
        return Err(bad_domain_char(c, domain));
    }
    let ascii = idna::uts46::Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            idna::uts46::AsciiDenyList::STD3,
            idna::uts46::Hyphens::Allow,
            idna::uts46::DnsLength::Ignore,
        )
        .map_err(|_| {
            syntax(format!(
                "domain {} is not a valid internationalised domain name (UTS #46 refuses it)",
                Shown(domain)
            ))
        })?;
    check_domain_name(&ascii)?;
    flags.push(Flag::IdnConverted);
    Ok(Domain::Name(ascii.into_owned()))
}

fn bad_domain_char(c: u8, domain: &str) -> AddressError {
    syntax(format!(
        "domain contains {} ({}); only letters, digits, hyphens and dots are allowed",
        name_char(c),
        Shown(domain)
    ))
}

/// LDH labels, dots only between labels, at least two labels, a non-numeric
/// top-level label, and the length limits. `domain` is ASCII.
fn check_domain_name(domain: &str) -> Result<(), AddressError> {
    let b = domain.as_bytes();
    let mut start = 0;
    let mut labels = 0;
    for i in 0..=b.len() {
        let c = if i < b.len() { b[i] } else { b'.' };
        if c != b'.' {
            if !(c.is_ascii_alphanumeric() || c == b'-') {
                return Err(bad_domain_char(c, domain));
            }
            continue;
        }
        let label = &domain[start..i];
        if label.is_empty() {
            let msg = if i == 0 {
                "domain starts with a dot"
            } else if i == b.len() {
                return Err(syntax(format!(
                    "domain ends with a dot ({}); write it without the final dot",
                    Shown(domain)
                )));
            } else {
                "domain has consecutive dots"
            };
            return Err(syntax(format!("{msg} ({})", Shown(domain))));
        }
        if label.len() > MAX_LABEL {
            return Err(syntax(format!(
                "domain label is {} octets ({}); DNS allows {MAX_LABEL}",
                label.len(),
                Shown(label)
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            let end = if label.starts_with('-') {
                "starts"
            } else {
                "ends"
            };
            return Err(syntax(format!(
                "domain label {} {end} with a hyphen",
                Shown(label)
            )));
        }
        labels += 1;
        start = i + 1;
    }
    if labels == 1 {
        return Err(syntax(format!(
            "domain {} has no dot; a sender domain must be fully qualified (e.g. example.com)",
            Shown(domain)
        )));
    }
    let tld = &domain[domain.rfind('.').map_or(0, |p| p + 1)..];
    if tld.bytes().all(|c| c.is_ascii_digit()) {
        return Err(if domain.parse::<Ipv4Addr>().is_ok() {
            syntax(format!(
                "domain {} is an IP address; write it as an address literal [{domain}]",
                Shown(domain)
            ))
        } else {
            syntax(format!(
                "domain {} has an all-digit top-level label; no such top-level domain exists",
                Shown(domain)
            ))
        });
    }
    if domain.len() > MAX_DOMAIN {
        return Err(syntax(format!(
            "domain is {} octets; RFC 5321 allows {MAX_DOMAIN}",
            domain.len()
        )));
    }
    Ok(())
}

fn has_a_label(lower: &str) -> bool {
    lower.split('.').any(|l| l.starts_with("xn--"))
}

/// An ASCII `xn--` label must decode as Punycode to a valid U-label; UTS #46
/// checks that when the name is run through it.
fn check_a_labels(lower: &str) -> Result<(), AddressError> {
    let out = idna::uts46::Uts46::new().to_ascii(
        lower.as_bytes(),
        idna::uts46::AsciiDenyList::STD3,
        idna::uts46::Hyphens::Allow,
        idna::uts46::DnsLength::Ignore,
    );
    match out {
        Ok(s) if s == lower => Ok(()),
        _ => Err(syntax(format!(
            "domain {} has an 'xn--' label that is not valid Punycode (IDNA A-label)",
            Shown(lower)
        ))),
    }
}

fn strip_ipv6_tag(inner: &str) -> Option<&str> {
    let b = inner.as_bytes();
    if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"IPv6:") {
        Some(&inner[5..])
    } else {
        None
    }
}

/// `[IPv4]`, `[IPv6:…]` or `[tag:content]` (RFC 5321 §4.1.3).
fn parse_literal(domain: &str) -> Result<Domain, AddressError> {
    if !domain.ends_with(']') || domain.len() < 2 {
        return Err(syntax(format!(
            "address literal {} has no closing ']' at the end",
            Shown(domain)
        )));
    }
    let inner = &domain[1..domain.len() - 1];
    if inner.is_empty() {
        return Err(syntax("address literal \"[]\" is empty".to_string()));
    }
    if let Some(v6) = strip_ipv6_tag(inner) {
        return match v6.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(Domain::Literal(format!("[IPv6:{ip}]"))),
            Err(_) => Err(syntax(format!(
                "address literal {} is not a valid IPv6 address",
                Shown(domain)
            ))),
        };
    }
    if inner.parse::<Ipv6Addr>().is_ok() {
        // Syntactically a general literal with tag "2001", but clearly meant
        // as IPv6; RFC 5321 requires the tag.
        return Err(syntax(format!(
            "address literal {} lacks the IPv6 tag; write it as [IPv6:{inner}]",
            Shown(domain)
        )));
    }
    if let Some(colon) = inner.find(':') {
        let (tag, content) = (&inner[..colon], &inner[colon + 1..]);
        let tag_ok = !tag.is_empty()
            && tag.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !tag.ends_with('-');
        // dcontent: printable ASCII except '[', '\' and ']' (and space).
        let content_ok =
            !content.is_empty() && content.bytes().all(|c| matches!(c, 33..=90 | 94..=126));
        if tag_ok && content_ok {
            return Ok(Domain::Literal(domain.to_string()));
        }
        return Err(syntax(format!(
            "address literal {} is not valid: expected [IPv4], [IPv6:address] or [tag:content]",
            Shown(domain)
        )));
    }
    match inner.parse::<Ipv4Addr>() {
        Ok(_) => Ok(Domain::Literal(domain.to_string())),
        Err(_) => Err(syntax(format!(
            "address literal {} is not a valid IPv4 address",
            Shown(domain)
        ))),
    }
}

// ---------------------------------------------------------------------------
// Messages

/// Name an ASCII character for a message.
fn name_char(c: u8) -> String {
    match c {
        b' ' => "a space".to_string(),
        b'\'' => "\"'\"".to_string(),
        c if c.is_ascii_graphic() => format!("'{}'", c as char),
        c => format!("byte 0x{c:02x}"),
    }
}

/// Part of the input, quoted for a one-line message: long text is cut, and
/// anything that could break the line or hide (controls, invisible
/// characters) is escaped. `"` and `\` are escaped so the quoting is exact.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 48;
        f.write_str("\"")?;
        for (n, c) in self.0.chars().enumerate() {
            if n == MAX {
                f.write_str("…")?;
                break;
            }
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() || is_invisible(c) || c == '\u{2028}' || c == '\u{2029}' => {
                    write!(f, "\\u{{{:04x}}}", c as u32)?
                }
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse_cell(s).unwrap_err().to_string()
    }

    /// Observed from real Exim 4.96: `jörg@valid.test` is asked as
    /// `RCPT TO:<xn--jrg-sna@valid.test>` of an MX without SMTPUTF8.
    #[test]
    fn downconversion_is_exims() {
        assert_eq!(
            downconverted("j\u{f6}rg@valid.test").as_deref(),
            Some("xn--jrg-sna@valid.test")
        );
        assert_eq!(downconverted("news@valid.test"), None);
        // Case is kept, as Exim keeps it.
        let upper = downconverted("J\u{f6}rg@x.test").unwrap();
        assert!(upper.starts_with("xn--J"), "{upper}");
    }

    #[test]
    fn find_unquoted_skips_quoted_and_escaped() {
        assert_eq!(find_unquoted(br#""a@b"@c"#, |c| c == b'@'), Ok(Some(5)));
        assert_eq!(find_unquoted(br#""a\"@b"@c"#, |c| c == b'@'), Ok(Some(7)));
        assert_eq!(find_unquoted(br#""a\"@c"#, |c| c == b'@'), Err(()));
        assert_eq!(find_unquoted(b"abc", |c| c == b'@'), Ok(None));
    }

    #[test]
    fn control_position_counts_characters_not_bytes() {
        match parse_cell("ü\u{0}@x.com") {
            Err(AddressError::ControlCharacter {
                ch: '\0',
                position: 2,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn c1_controls_are_refused_but_other_two_byte_chars_are_not() {
        assert!(matches!(
            parse_cell("a\u{85}b@x.com"),
            Err(AddressError::ControlCharacter { ch: '\u{85}', .. })
        ));
        assert!(err("a\u{9f}@x.com").contains("U+009F"));
        // U+00A0..U+00BF share the 0xC2 lead byte and are not controls.
        assert!(parse_cell("a\u{e9}\u{a9}@x.com").is_ok());
    }

    #[test]
    fn shown_escapes_and_truncates() {
        assert_eq!(Shown("a\"b\\c").to_string(), r#""a\"b\\c""#);
        assert_eq!(Shown("a\u{2028}b").to_string(), r#""a\u{2028}b""#);
        let long = "x".repeat(100);
        let s = Shown(&long).to_string();
        assert_eq!(s.chars().count(), 48 + 3);
        assert!(s.ends_with("…\""));
    }

    #[test]
    fn with_local_validates_and_keeps_domain() {
        let m = parse_mailbox("news@Example.COM").unwrap();
        let p = m.with_local("postmaster").unwrap();
        assert_eq!(p.normalized(), "postmaster@example.com");
        assert!(m.with_local("a\r\nRSET").is_err());
        assert!(m.with_local("a..b").is_err());
        assert!(m.with_local("").is_err());
        assert!(m.with_local(&"a".repeat(65)).is_err());
    }

    #[test]
    fn literal_ip_is_extracted() {
        let m: Mailbox = "a@[192.0.2.1]".parse().unwrap();
        assert_eq!(m.literal_ip(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(m.domain_name(), None);
        let m: Mailbox = "a@[ipv6:2001:DB8:0:0::1]".parse().unwrap();
        assert_eq!(m.domain().as_str(), "[IPv6:2001:db8::1]");
        assert_eq!(m.literal_ip(), Some("2001:db8::1".parse().unwrap()));
        let m: Mailbox = "a@[x-tag:stuff]".parse().unwrap();
        assert!(m.is_address_literal());
        assert_eq!(m.literal_ip(), None);
    }

    #[test]
    fn bad_punycode_a_label_is_refused() {
        assert!(err("a@xn--zz-.example").contains("hyphen"));
        assert!(err("a@xn--a.example").contains("Punycode"));
        assert!(parse_cell("a@XN--BCHER-KVA.example").is_ok());
    }

    #[test]
    fn strict_parse_refuses_cell_decorations() {
        assert!(parse_mailbox(" a@x.com").is_err());
        assert!(parse_mailbox("<a@x.com>").is_err());
        assert!(parse_mailbox("").is_err());
        assert_eq!(
            parse_mailbox("a@x.com").unwrap().to_string(),
            "a@x.com".to_string()
        );
    }

    #[test]
    fn idn_fullwidth_dot_and_case_map() {
        let p = parse_cell("u@BÜCHER\u{3002}example").unwrap();
        assert_eq!(p.mailbox.normalized(), "u@xn--bcher-kva.example");
        assert_eq!(p.flags, vec![Flag::IdnConverted]);
    }
}
