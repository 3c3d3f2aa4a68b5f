//! Small helpers shared by the report formats.

use crate::fix;
use crate::record::SenderRecord;
use crate::verdict::Decision;
use std::borrow::Cow;

/// The address a reader recognises: the normalised mailbox, or the raw cell
/// when it did not parse.
pub fn display_address(record: &SenderRecord) -> &str {
    record.address.as_deref().unwrap_or(&record.input)
}

/// The deciding server reply, lines joined with ` | ` (one cell, one line).
pub fn deciding_reply(record: &SenderRecord) -> Option<String> {
    let ev = record.evidence.as_ref()?;
    if ev.reply.is_empty() {
        return None;
    }
    Some(ev.reply.join(" | "))
}

/// The first line of the deciding reply: the one that carries the code.
pub fn first_reply_line(record: &SenderRecord) -> Option<&str> {
    record
        .evidence
        .as_ref()
        .and_then(|ev| ev.reply.first())
        .map(String::as_str)
}

/// The fix to print: the one set upstream, else the one [`fix::one_line`]
/// derives, so every format shows the same advice.
pub fn effective_fix(record: &SenderRecord) -> Option<String> {
    record.fix.clone().or_else(|| fix::one_line(record))
}

/// "fails at Exim-style callouts, passes at Postfix-style probes" when the
/// two receiver models disagree (DESIGN.md: report both where they differ).
pub fn receiver_note(record: &SenderRecord) -> Option<String> {
    let (exim, postfix) = (record.exim?, record.postfix?);
    if exim == postfix {
        return None;
    }
    let word = |d: Decision| match d {
        Decision::Pass => "passes",
        Decision::Fail => "fails",
        Decision::Defer => "defers",
    };
    Some(format!(
        "{} at Exim-style callouts, {} at Postfix-style probes",
        word(exim),
        word(postfix)
    ))
}

/// Makes server- or input-supplied text safe for a terminal: control
/// characters (C0, DEL, C1) and Unicode bidi overrides are shown as escapes,
/// so a hostile reply cannot move the cursor, recolour the screen or reorder
/// what the reader sees.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if needs_escape(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{n:04x}}}"));
                }
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// Cuts `s` to at most `width` characters, marking the cut with `…`.
pub fn truncate(s: &str, width: usize) -> Cow<'_, str> {
    if s.chars().count() <= width {
        return Cow::Borrowed(s);
    }
    let keep = width.saturating_sub(1);
    let mut out: String = s.chars().take(keep).collect();
    out.push('…');
    Cow::Owned(out)
}

/// Second-level labels under which registrations sit one level deeper
/// (`example.co.uk`). Not the Public Suffix List: close enough to group MX
/// hosts by provider in a chart, and without a data file to keep current.
const SECOND_LEVELS: [&str; 10] = [
    "co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "gob",
];

/// The provider an MX host belongs to, for grouping: its registrable-ish
/// suffix (`aspmx.l.google.com` → `google.com`, `mx1.ex.co.uk` → `ex.co.uk`).
pub fn mx_provider(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    if n <= 2 {
        return host;
    }
    let take = if labels[n - 1].len() == 2 && SECOND_LEVELS.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    labels[n - take..].join(".")
}

/// Splits a normalised mailbox at its last `@` (a quoted local part may hold
/// another `@`).
pub fn split_address(address: &str) -> Option<(&str, &str)> {
    let at = address.rfind('@')?;
    Some((&address[..at], &address[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers() {
        assert_eq!(mx_provider("aspmx.l.google.com."), "google.com");
        assert_eq!(mx_provider("mx1.example.co.uk"), "example.co.uk");
        assert_eq!(mx_provider("localhost"), "localhost");
    }

    #[test]
    fn escapes_controls() {
        assert_eq!(terminal_safe("a\x1b[31mb\r"), "a\\x1b[31mb\\r");
        assert_eq!(terminal_safe("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
