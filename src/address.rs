//! RFC 5321 mailbox syntax, normalisation and de-duplication keys.
//!
//! STUB: the full grammar lands with the address corpus; the API is fixed.

use crate::verdict::Flag;

/// The domain part of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A domain name, lower-cased, in A-label (ASCII) form.
    Name(String),
    /// An address literal as written, brackets included (`[192.0.2.1]`).
    Literal(String),
}

impl Domain {
    pub fn as_str(&self) -> &str {
        match self {
            Domain::Name(s) | Domain::Literal(s) => s,
        }
    }
}

/// A syntactically valid RFC 5321 mailbox. It cannot hold CR, LF, NUL or any
/// other control character, so it is safe to place in an SMTP command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
        format!("{}@{}", self.local, self.domain.as_str())
    }
}

/// A parsed cell: the mailbox and what was done to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCell {
    pub mailbox: Mailbox,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty address cell")]
    Empty,
    #[error("{0}")]
    Syntax(String),
}

/// Parse one CSV cell into a mailbox.
pub fn parse_cell(cell: &str) -> Result<ParsedCell, AddressError> {
    let mut flags = Vec::new();
    let trimmed = cell.trim();
    if trimmed.len() != cell.len() {
        flags.push(Flag::TrimmedWhitespace);
    }
    if trimmed.is_empty() {
        return Err(AddressError::Empty);
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(AddressError::Syntax("contains a control character".into()));
    }
    let (local, domain) = trimmed
        .rsplit_once('@')
        .ok_or_else(|| AddressError::Syntax("no '@'".into()))?;
    if local.is_empty() || domain.is_empty() {
        return Err(AddressError::Syntax("empty local part or domain".into()));
    }
    Ok(ParsedCell {
        mailbox: Mailbox {
            local: local.to_string(),
            domain: Domain::Name(domain.to_ascii_lowercase()),
        },
        flags,
    })
}
