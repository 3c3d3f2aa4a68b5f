//! Verdict → remediation: the one-line fix every report prints, and the fix
//! files (`fixes/`) an operator can apply.
//!
//! The fixes follow the receiving side's logic (research/callout-semantics.md
//! §7): an address that does not exist is fixed by making it accept and
//! discard mail (cPanel `:blackhole:`), but an MX that does not serve the
//! domain (relay denied) is fixed in DNS or in the server's domain list — an
//! alias on a server that is not the domain's mail host changes nothing.

use crate::record::{SenderRecord, Stage};
use crate::verdict::{Flag, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error("cannot write fix files under {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FixError + '_ {
    move |source| FixError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What is wrong with a failing sender, in terms of what has to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Problem {
    /// RCPT refused: the address does not exist on its MX. Fix: an alias
    /// that accepts and discards.
    UserUnknown,
    /// RCPT refused because the MX does not consider itself responsible for
    /// the domain (relay denied, X.1.2). Fix: MX records / domain list.
    RelayDenied,
    /// RCPT refused by policy (5.7.x, not relay): the server rejects mail to
    /// this address from the null sender. Fix: allow it.
    PolicyRejected,
    /// The MX refused the session itself (5xx greeting or HELO).
    ServerRefusesSmtp,
    /// The address needs SMTPUTF8, its MX does not offer it, and refuses the
    /// downconverted form Exim asks for. Fix: an ASCII envelope sender, or
    /// SMTPUTF8 on the MX.
    Smtputf8NotOffered,
    NullSenderRejected,
    NullMx,
    NoDomain,
    NoMailHost,
    InvalidAddress,
}

impl Problem {
    /// Classifies a record; `None` for passes and unknowns (nothing certain
    /// to fix).
    pub fn of(record: &SenderRecord) -> Option<Problem> {
        Some(match record.verdict {
            Verdict::Unreceivable => classify_refusal(record),
            Verdict::NullSenderRejected => Problem::NullSenderRejected,
            Verdict::NullMx => Problem::NullMx,
            Verdict::NoDomain => Problem::NoDomain,
            Verdict::NoMailHost => Problem::NoMailHost,
            Verdict::InvalidAddress => Problem::InvalidAddress,
            _ => return None,
        })
    }

    /// A short label for headings.
    pub fn label(self) -> &'static str {
        match self {
            Problem::UserUnknown => "address does not exist",
            Problem::RelayDenied => "MX does not serve the domain (relay denied)",
            Problem::PolicyRejected => "MX refuses the address by policy",
            Problem::ServerRefusesSmtp => "MX refuses SMTP sessions",
            Problem::Smtputf8NotOffered => "address needs SMTPUTF8, MX does not offer it",
            Problem::NullSenderRejected => "null sender MAIL FROM:<> refused",
            Problem::NullMx => "null MX (domain accepts no mail)",
            Problem::NoDomain => "domain does not exist",
            Problem::NoMailHost => "no usable mail host",
            Problem::InvalidAddress => "not a valid address",
        }
    }
}

/// Why an `unreceivable` RCPT refusal happened, from the reason and reply
/// text. Only picks *which fix*; the verdict itself was decided upstream.
/// Runs once per failing row of a possibly huge run, so it scans the text
/// in place instead of building lower-cased copies.
fn classify_refusal(record: &SenderRecord) -> Problem {
    if record.flags.contains(&Flag::Smtputf8NotOffered) {
        return Problem::Smtputf8NotOffered;
    }
    let ev = record.evidence.as_ref();
    if let Some(ev) = ev {
        if matches!(ev.stage, Stage::Greeting | Stage::Helo | Stage::Connect) {
            return Problem::ServerRefusesSmtp;
        }
    }
    let texts = || {
        std::iter::once(record.reason.as_str()).chain(
            ev.into_iter()
                .flat_map(|e| e.reply.iter().map(String::as_str)),
        )
    };
    let codes = || texts().flat_map(enhanced_codes);
    if texts().any(|t| contains_ignore_ascii_case(t, "relay"))
        || codes().any(|c| c.ends_with(".1.2"))
    {
        return Problem::RelayDenied;
    }
    let user_unknown_code = codes().any(|c| {
        [".1.1", ".1.0", ".1.3", ".1.6", ".2.1"]
            .iter()
            .any(|s| c.ends_with(s))
    });
    if !user_unknown_code && codes().any(|c| c.split('.').nth(1) == Some("7")) {
        return Problem::PolicyRejected;
    }
    Problem::UserUnknown
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// RFC 3463 enhanced status codes (`5.1.1`) found in `text`.
fn enhanced_codes(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| {
            let mut parts = w.split('.');
            let class_ok = matches!(parts.next(), Some("2" | "4" | "5"));
            let rest: [Option<&str>; 3] = [parts.next(), parts.next(), parts.next()];
            class_ok
                && rest[2].is_none()
                && rest[..2].iter().all(|p| {
                    p.is_some_and(|p| {
                        !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())
                    })
                })
        })
}

fn mx_of(record: &SenderRecord) -> String {
    record
        .evidence
        .as_ref()
        .map(|e| e.mx_host.clone())
        .or_else(|| record.mx_hosts.first().cloned())
        .unwrap_or_else(|| "mail server".to_string())
}

/// The per-row fix, one line, for failing verdicts; `None` otherwise.
pub fn one_line(record: &SenderRecord) -> Option<String> {
    let problem = Problem::of(record)?;
    let domain = record.domain.as_deref().unwrap_or("the domain");
    let address = record.address.as_deref().unwrap_or(&record.input);
    Some(match problem {
        Problem::UserUnknown => format!(
            "add `{}: :blackhole:` to /etc/valiases/{domain} (cPanel) — the address accepts mail and discards it",
            valiases_key(address).unwrap_or_else(|| address.to_string())
        ),
        Problem::RelayDenied => format!(
            "the MX {} does not accept mail for {domain}: fix the domain's MX records or the server's domain list",
            mx_of(record)
        ),
        Problem::PolicyRejected => format!(
            "the MX {} refuses mail to {address} from the null sender by policy: exempt the address from that rule",
            mx_of(record)
        ),
        Problem::ServerRefusesSmtp => format!(
            "the MX {} refuses SMTP sessions: fix the mail server or point {domain}'s MX records at one that accepts mail",
            mx_of(record)
        ),
        Problem::Smtputf8NotOffered => format!(
            "the MX {} does not offer SMTPUTF8, so Exim receivers ask it about <{}> and Postfix receivers give up: send from an ASCII address, or enable SMTPUTF8 on the MX (Postfix: smtputf8_enable = yes; Exim: smtputf8_advertise_hosts = *)",
            mx_of(record),
            crate::address::downconverted(address).unwrap_or_else(|| address.to_string())
        ),
        Problem::NullSenderRejected => format!(
            "the MX {} must accept MAIL FROM:<> (RFC 5321 §4.5.5): Exim callouts reject every sender of {domain} until it does",
            mx_of(record)
        ),
        Problem::NullMx => format!(
            "{domain} publishes a null MX (accepts no mail): publish a real MX or send from a domain that receives mail"
        ),
        Problem::NoDomain => format!(
            "{domain} does not exist (NXDOMAIN): send from a domain that receives mail, or register it and publish an MX"
        ),
        Problem::NoMailHost => format!(
            "{domain} has no usable mail host: publish a real MX or send from a domain that receives mail"
        ),
        Problem::InvalidAddress => format!(
            "fix the address cell on line {} of the input ({})",
            record.line, record.reason
        ),
    })
}

/// The key of an Exim `lsearch` line (what cPanel's `/etc/valiases/<domain>`
/// is read with) for `address`. The lookup key is `$local_part@$domain`, with
/// the local part *unquoted*; keys holding white space, `:` or `"`, or
/// starting with `#` (a comment line), are written in double quotes with
/// backslash escapes (Exim `lookups/lsearch.c`: an unquoted key ends at `:`
/// or white space, a quoted one is read with `string_interpret_escape`, and
/// keys compare case-insensitively). `None` if the address cannot be
/// expressed safely.
pub fn valiases_key(address: &str) -> Option<String> {
    let (local, domain) = split(address)?;
    let local = unquote_local(local)?;
    let key = format!("{local}@{domain}");
    if key.chars().any(|c| c.is_control()) {
        return None;
    }
    let needs_quotes = key.starts_with('#')
        || key
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ':' | '"' | '\\'));
    if !needs_quotes {
        return Some(key);
    }
    let mut quoted = String::from("\"");
    for c in key.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Some(quoted)
}

fn split(address: &str) -> Option<(&str, &str)> {
    let at = address.rfind('@')?;
    Some((&address[..at], &address[at + 1..]))
}

/// The local part as the MTA sees it after parsing: RFC 5321 quoted-string
/// quotes and backslashes removed.
fn unquote_local(local: &str) -> Option<String> {
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return Some(local.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A local part usable as a plain (unquoted) key in Postfix/Sendmail tables
/// and as a qmail file name: dot-atom, ASCII, no `/`, no leading `#`.
fn plain_local(local: &str) -> bool {
    !local.is_empty()
        && !local.starts_with('"')
        && !local.starts_with('#')
        && local.is_ascii()
        && !local.contains('/')
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-=?^_`{|}~.".contains(c))
}

/// A domain is used as a file name under `fixes/`: refuse anything that
/// could leave the directory or hide, even though domains arrive validated.
pub fn safe_domain_file_name(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 255
        && !domain.starts_with('.')
        && !domain.contains("..")
        && !domain.contains('/')
        && !domain.contains('\\')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

/// The qmail `.qmail-<ext>` file name for a local part: qmail lower-cases the
/// extension and a `.` in it must be written `:` (dot-qmail(5)).
pub fn qmail_file_name(local: &str) -> Option<String> {
    if !plain_local(local) {
        return None;
    }
    Some(format!(
        ".qmail-{}",
        local.to_ascii_lowercase().replace('.', ":")
    ))
}

/// Everything collected about one failing domain.
#[derive(Debug, Default)]
struct DomainFixes {
    /// Local parts refused as unknown users.
    unknown_users: BTreeSet<String>,
    /// Per problem other than unknown users: addresses (capped) and the MX
    /// plus first reply line seen.
    other: BTreeMap<Problem, ProblemNote>,
}

#[derive(Debug, Default)]
struct ProblemNote {
    count: u64,
    addresses: BTreeSet<String>,
    mx: Option<String>,
    reply: Option<String>,
}

/// Addresses listed per domain and problem in FIXES.md; the count is exact.
const NOTE_ADDRESS_CAP: usize = 20;
const INVALID_LINE_CAP: usize = 50;

/// Collects failing records while rows stream by (memory grows with the
/// failing addresses only) and writes the fix files under `DIR/fixes/`.
#[derive(Debug)]
pub struct FixWriter {
    dir: PathBuf,
    domains: BTreeMap<String, DomainFixes>,
    invalid_lines: Vec<(u64, String)>,
    invalid_count: u64,
}

impl FixWriter {
    pub fn new(dir: &Path) -> FixWriter {
        FixWriter {
            dir: dir.to_path_buf(),
            domains: BTreeMap::new(),
            invalid_lines: Vec::new(),
            invalid_count: 0,
        }
    }

    /// Looks at one row; passes and unknowns are ignored.
    pub fn record(&mut self, record: &SenderRecord) {
        let Some(problem) = Problem::of(record) else {
            return;
        };
        if problem == Problem::InvalidAddress {
            self.invalid_count += 1;
            if self.invalid_lines.len() < INVALID_LINE_CAP {
                self.invalid_lines
                    .push((record.line, record.reason.clone()));
            }
            return;
        }
        let domain = match (&record.domain, &record.address) {
            (Some(d), _) => d.clone(),
            (None, Some(a)) => match split(a) {
                Some((_, d)) => d.to_string(),
                None => return,
            },
            (None, None) => return,
        };
        let entry = self.domains.entry(domain).or_default();
        let address = record
            .address
            .clone()
            .unwrap_or_else(|| record.input.clone());
        if problem == Problem::UserUnknown {
            if let Some((local, _)) = split(&address) {
                entry.unknown_users.insert(local.to_string());
            }
            return;
        }
        let note = entry.other.entry(problem).or_default();
        note.count += 1;
        if note.addresses.len() < NOTE_ADDRESS_CAP {
            note.addresses.insert(address);
        }
        if note.mx.is_none() {
            note.mx = record
                .evidence
                .as_ref()
                .map(|e| e.mx_host.clone())
                .or_else(|| record.mx_hosts.first().cloned());
            note.reply = record
                .evidence
                .as_ref()
                .and_then(|e| e.reply.first().cloned());
        }
    }

    /// Writes the fix tree into a fresh directory and swaps it in place of
    /// `DIR/fixes`, so files of domains fixed since the last run disappear
    /// and a failed write leaves the previous tree untouched.
    pub fn finish(self) -> Result<Vec<PathBuf>, FixError> {
        let final_dir = self.dir.join("fixes");
        let staging = tempfile::Builder::new()
            .prefix(".fixes.")
            .tempdir_in(&self.dir)
            .map_err(io_err(&self.dir))?;
        let mut written = self.write_tree(staging.path())?;
        let old = if final_dir.exists() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let old = self
                .dir
                .join(format!(".fixes.old.{}.{nanos}", std::process::id()));
            fs::rename(&final_dir, &old).map_err(io_err(&final_dir))?;
            Some(old)
        } else {
            None
        };
        let staging = staging.keep();
        if let Err(e) = fs::rename(&staging, &final_dir) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &final_dir);
            }
            let _ = fs::remove_dir_all(&staging);
            return Err(io_err(&final_dir)(e));
        }
        if let Some(old) = old {
            let _ = fs::remove_dir_all(old);
        }
        for p in &mut written {
            *p = final_dir.join(p.strip_prefix(&staging).unwrap_or(p));
        }
        Ok(written)
    }

    fn write_tree(&self, root: &Path) -> Result<Vec<PathBuf>, FixError> {
        let mut written = Vec::new();
        let mut postfix = String::from(
            "# Postfix virtual alias map: each sender address below is refused as an\n\
             # unknown user by its MX. Mapping it to a discarding local alias makes it\n\
             # accept mail (so sender verification passes) without anyone reading it.\n\
             # 1. add `devnull: /dev/null` to /etc/aliases and run `newaliases`\n\
             # 2. append these lines to the file named by virtual_alias_maps\n\
             #    (e.g. /etc/postfix/virtual) and run `postmap /etc/postfix/virtual`\n",
        );
        let mut sendmail = String::from(
            "# Sendmail virtusertable: map each unknown sender address to the local\n\
             # alias `devnull`; add `devnull: /dev/null` to /etc/mail/aliases, run\n\
             # `newaliases`, append these lines to /etc/mail/virtusertable and run\n\
             # `makemap hash /etc/mail/virtusertable < /etc/mail/virtusertable`.\n",
        );
        let mut any_alias = false;
        for (domain, fixes) in &self.domains {
            if fixes.unknown_users.is_empty() || !safe_domain_file_name(domain) {
                continue;
            }
            let mut valiases = String::new();
            for local in &fixes.unknown_users {
                let address = format!("{local}@{domain}");
                if let Some(key) = valiases_key(&address) {
                    valiases.push_str(&key);
                    valiases.push_str(": :blackhole:\n");
                }
                if plain_local(local) {
                    any_alias = true;
                    postfix.push_str(&format!("{address}  devnull@localhost\n"));
                    sendmail.push_str(&format!("{address}\tdevnull\n"));
                    if let Some(name) = qmail_file_name(local) {
                        let dir = root.join("qmail").join(domain);
                        written.push(write_file(&dir, &name, "#\n")?);
                    }
                }
            }
            if !valiases.is_empty() {
                written.push(write_file(&root.join("valiases"), domain, &valiases)?);
            }
        }
        if any_alias {
            written.push(write_file(root, "postfix-virtual", &postfix)?);
            written.push(write_file(root, "sendmail-virtusertable", &sendmail)?);
        }
        written.push(write_file(root, "FIXES.md", &self.fixes_md())?);
        Ok(written)
    }

    fn fixes_md(&self) -> String {
        let mut md = String::from("# Fixes for failing senders\n\n");
        if self.domains.is_empty() && self.invalid_count == 0 {
            md.push_str("No sender fails: nothing to fix.\n");
            return md;
        }
        md.push_str(
            "Receivers that verify senders (Exim `verify = sender/callout`, common on cPanel \
             hosts) connect to the sender domain's MX and ask whether the sender address \
             accepts mail from the null sender `<>`. Each section below says what to change \
             so that they would.\n",
        );
        for (domain, fixes) in &self.domains {
            md.push_str(&format!("\n## {}\n", md_text(domain)));
            if !fixes.unknown_users.is_empty() {
                md.push_str(&format!(
                    "\n### {} address(es) do not exist\n\n\
                     The domain's mail server refuses these addresses as unknown users, so \
                     bounces to them fail and callouts reject mail from them. Make each one \
                     exist but discard what it receives:\n\n\
                     - cPanel / Exim: add the lines of `valiases/{d}` to `/etc/valiases/{d}`.\n\
                     - Postfix: see `postfix-virtual`; Sendmail: `sendmail-virtusertable`; \
                     qmail: copy `qmail/{d}/.qmail-*` (each holds `#`, which discards).\n\
                     - Hosted mail (Google Workspace, Microsoft 365, …): create the mailbox or \
                     an alias, with a rule that deletes messages on arrival.\n\n",
                    fixes.unknown_users.len(),
                    d = md_text(domain),
                ));
                if !safe_domain_file_name(domain) {
                    md.push_str(
                        "(No files were written for this domain: its name is not safe as a file name.)\n\n",
                    );
                }
                for local in fixes.unknown_users.iter().take(NOTE_ADDRESS_CAP) {
                    md.push_str(&format!("- `{}@{}`\n", md_code(local), md_code(domain)));
                    if !plain_local(local) {
                        md.push_str("  (unusual local part: only the valiases line was written; add the others by hand)\n");
                    }
                }
                if fixes.unknown_users.len() > NOTE_ADDRESS_CAP {
                    md.push_str(&format!(
                        "- … and {} more (all are in the alias files)\n",
                        fixes.unknown_users.len() - NOTE_ADDRESS_CAP
                    ));
                }
            }
            for (problem, note) in &fixes.other {
                md.push_str(&format!(
                    "\n### {} ({} sender(s))\n\n{}\n",
                    md_text(problem.label()),
                    note.count,
                    explain(*problem, domain, note.mx.as_deref())
                ));
                if let Some(reply) = &note.reply {
                    md.push_str(&format!(
                        "\nThe server said: `{}`\n",
                        md_code(&reply.chars().take(300).collect::<String>())
                    ));
                }
                md.push('\n');
                for a in &note.addresses {
                    md.push_str(&format!("- `{}`\n", md_code(a)));
                }
                if note.count > note.addresses.len() as u64 {
                    md.push_str(&format!(
                        "- … and {} more\n",
                        note.count - note.addresses.len() as u64
                    ));
                }
            }
        }
        if self.invalid_count > 0 {
            md.push_str(&format!(
                "\n## Invalid addresses ({})\n\nThese cells are not RFC 5321 mailboxes; \
                 correct them in the input file:\n\n",
                self.invalid_count
            ));
            for (line, reason) in &self.invalid_lines {
                md.push_str(&format!("- line {line}: {}\n", md_text(reason)));
            }
            if self.invalid_count > self.invalid_lines.len() as u64 {
                md.push_str(&format!(
                    "- … and {} more\n",
                    self.invalid_count - self.invalid_lines.len() as u64
                ));
            }
        }
        md
    }
}

/// The plain-words explanation of a domain-level problem.
fn explain(problem: Problem, domain: &str, mx: Option<&str>) -> String {
    let d = md_text(domain);
    let mx = md_text(mx.unwrap_or("the MX"));
    match problem {
        Problem::RelayDenied => format!(
            "{mx} answers for {d} but says it does not handle mail for it (\"relay denied\"). \
             Either {d}'s MX records point at the wrong server, or that server is missing {d} \
             from its list of local/virtual domains. Fix the DNS or the server; no alias \
             helps, because the server never looks the address up."
        ),
        Problem::PolicyRejected => format!(
            "{mx} refuses these addresses from the null sender `<>` by a policy rule. \
             Exempt them (or `<>`) from that rule so bounces and callouts are accepted."
        ),
        Problem::ServerRefusesSmtp => format!(
            "{mx} rejects the SMTP session at the greeting or HELO, so nothing can be \
             delivered to {d}. Fix the server, or point {d}'s MX records at one that accepts mail."
        ),
        Problem::Smtputf8NotOffered => format!(
            "These addresses have a non-ASCII local part, which may only be sent to a server \
             that offers SMTPUTF8 (RFC 6531). {mx} does not: Exim receivers ask it about a \
             downconverted form (`xn--…`) instead, which it refuses, and Postfix receivers \
             give up. Send from ASCII addresses, or enable SMTPUTF8 on {mx}."
        ),
        Problem::NullSenderRejected => format!(
            "{mx} refuses `MAIL FROM:<>`, the null sender that bounces and sender callouts \
             use. RFC 5321 §4.5.5 and §6.1 require accepting it (RFC 1123 §5.2.9 too). \
             Exim callouts reject every sender of {d} while this lasts; Postfix-style probes \
             pass. Remove the rule that refuses the null sender."
        ),
        Problem::NullMx => format!(
            "{d} publishes a null MX (`MX 0 .`, RFC 7505): it declares it accepts no mail, so \
             every receiver rejects senders from it. Publish a real MX, or send from a \
             domain that receives mail."
        ),
        Problem::NoDomain => format!(
            "{d} does not exist in DNS (NXDOMAIN). Send from a domain that exists and \
             receives mail, or register {d} and publish an MX record."
        ),
        Problem::NoMailHost => format!(
            "{d} has no usable mail host: no MX and no A/AAAA record, or every MX target is \
             unresolvable or unusable. Publish an MX record pointing at a server that \
             accepts mail, or send from a domain that receives mail."
        ),
        Problem::UserUnknown | Problem::InvalidAddress => String::new(),
    }
}

/// Text from domains, addresses or servers placed in Markdown prose.
fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text placed inside a Markdown code span: backticks cannot be escaped
/// there, so they are replaced; control characters become spaces.
fn md_code(s: &str) -> String {
    s.chars()
        .map(|c| if c == '`' || c.is_control() { '\'' } else { c })
        .collect()
}

/// Writes one file of the staging tree. No per-file rename is needed: the
/// whole tree is swapped in at once, and qmail alone can mean a file per
/// address.
fn write_file(dir: &Path, name: &str, contents: &str) -> Result<PathBuf, FixError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(name);
    fs::write(&path, contents).map_err(io_err(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            valiases_key("news@example.com").unwrap(),
            "news@example.com"
        );
        assert_eq!(
            valiases_key("\"a b\"@example.com").unwrap(),
            "\"a b@example.com\""
        );
        assert_eq!(
            valiases_key("#x@example.com").unwrap(),
            "\"#x@example.com\""
        );
        assert_eq!(
            qmail_file_name("News.Letter").unwrap(),
            ".qmail-news:letter"
        );
        assert_eq!(qmail_file_name("a/b"), None);
        assert!(!safe_domain_file_name("../etc"));
        assert!(!safe_domain_file_name(".hidden"));
        assert!(safe_domain_file_name("example.com"));
    }

    #[test]
    fn codes() {
        let codes = |t| enhanced_codes(t).collect::<Vec<_>>();
        assert_eq!(codes("550 5.1.1 <a@b>: no."), vec!["5.1.1"]);
        assert_eq!(codes("ends 5.7.1."), vec!["5.7.1"]);
        assert!(codes("version 1.2.3.4 or 5.1.2.3").is_empty());
    }
}
