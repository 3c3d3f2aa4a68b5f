//! `report.md`: a report sized for a pull-request or ticket comment.
//!
//! Only failing and unknown rows are kept, and only up to a cap (a comment
//! has a size limit and nobody reads ten thousand table rows); the counts
//! stay exact and the note points at report.csv for the rest. All text from
//! the input or servers is escaped so it cannot break the table or inject
//! markup: `|`, backticks, `<`, `&` and the other inline markers.

use super::util::{display_address, effective_fix, first_reply_line, split_address};
use super::Body;
use crate::fix::{valiases_key, Problem};
use crate::record::{ReportContext, SenderRecord};
use crate::verdict::{Class, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

const FAIL_CAP: usize = 200;
const UNKNOWN_CAP: usize = 100;
const FIX_CAP: usize = 50;

struct Row {
    line: u64,
    address: String,
    verdict: Verdict,
    said: String,
    fix: Option<String>,
}

pub(crate) struct MarkdownReport {
    head: String,
    footer: String,
    fails: Vec<Row>,
    fail_count: u64,
    unknowns: Vec<Row>,
    unknown_count: u64,
    /// cPanel valiases lines by domain, for the fixes section.
    valiases: BTreeMap<String, BTreeSet<String>>,
    valiases_lines: usize,
    other_fixes: Vec<String>,
}

impl MarkdownReport {
    pub(crate) fn new(ctx: &ReportContext) -> MarkdownReport {
        let m = &ctx.meta;
        let s = &ctx.summary;
        let mut head = format!(
            "## sendercheck: {} fail, {} unknown, {} pass\n\n",
            s.class_count(Class::Fail),
            s.class_count(Class::Unknown),
            s.class_count(Class::Pass)
        );
        head.push_str(&format!(
            "Input `{}` · {} sender(s) · {} {} · {}{}\n\n",
            code_span(&m.input),
            s.total,
            esc(&m.tool),
            esc(&m.version),
            esc(&m.started_at),
            if m.complete {
                ""
            } else {
                " · **incomplete run**"
            }
        ));
        head.push_str("| class | verdict | senders |\n|---|---|---:|\n");
        for v in Verdict::ALL {
            let n = s.count(v);
            if n > 0 {
                head.push_str(&format!("| {} | `{}` | {n} |\n", v.class(), v.code()));
            }
        }
        if let Some(ch) = &ctx.changes {
            head.push_str(&changes(ch));
        }
        let st = &ctx.stats;
        let footer = format!(
            "\n<sub>{} rows · {} distinct addresses · {} domains · {} connections · {} ms</sub>\n",
            st.rows, st.distinct_addresses, st.distinct_domains, st.connections, st.duration_ms
        );
        MarkdownReport {
            head,
            footer,
            fails: Vec::new(),
            fail_count: 0,
            unknowns: Vec::new(),
            unknown_count: 0,
            valiases: BTreeMap::new(),
            valiases_lines: 0,
            other_fixes: Vec::new(),
        }
    }

    fn collect_fix(&mut self, r: &SenderRecord, fix: &Option<String>) {
        if Problem::of(r) == Some(Problem::UserUnknown) {
            if self.valiases_lines >= FIX_CAP {
                return;
            }
            if let (Some(a), Some((_, d))) = (
                r.address.as_deref(),
                r.address.as_deref().and_then(split_address),
            ) {
                if let Some(key) = valiases_key(a) {
                    if self.valiases.entry(d.to_string()).or_default().insert(key) {
                        self.valiases_lines += 1;
                    }
                }
            }
        } else if let Some(f) = fix {
            if self.other_fixes.len() < FIX_CAP && !self.other_fixes.contains(f) {
                self.other_fixes.push(f.clone());
            }
        }
    }
}

/// Entries shown per list of the changes section.
const CHANGES_SHOWN: usize = 50;

/// "Changes since the last run" as a section with one table.
fn changes(ch: &crate::record::Changes) -> String {
    let mut c = format!(
        "\n### Changes since the last run\n\nCompared with {}: **{} newly failing** · {} newly fixed · {} still failing\n",
        esc(&ch.previous_run.describe()),
        ch.newly_failing.len(),
        ch.newly_fixed.len(),
        ch.still_failing.len()
    );
    if ch.is_empty() {
        return c;
    }
    c.push_str("\n| change | sender | verdict | was | failing since |\n|---|---|---|---|---|\n");
    for (title, list) in ch.lists() {
        for e in list.iter().take(CHANGES_SHOWN) {
            c.push_str(&format!(
                "| {title} | `{}` | `{}` | {} | {} |\n",
                code_span(&e.address),
                e.verdict.code(),
                e.previous
                    .map_or("new".to_string(), |v| format!("`{}`", v.code())),
                e.since.as_deref().map(esc).unwrap_or_default()
            ));
        }
        if list.len() > CHANGES_SHOWN {
            c.push_str(&format!(
                "| {title} | … and {} more (see report.json) | | | |\n",
                list.len() - CHANGES_SHOWN
            ));
        }
    }
    c
}

/// Escapes text for a Markdown table cell or paragraph.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '|' | '`' | '\\' | '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text for inside a code span: a backtick cannot be escaped there, and
/// GitHub still splits table cells on `|`, so both are replaced.
fn code_span(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '`' => '\'',
            '|' => '¦',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

fn table(out: &mut dyn Write, rows: &[Row], with_fix: bool) -> io::Result<()> {
    if with_fix {
        out.write_all(
            b"| line | sender | verdict | server reply / reason | fix |\n|---:|---|---|---|---|\n",
        )?;
    } else {
        out.write_all(
            b"| line | sender | verdict | server reply / reason |\n|---:|---|---|---|\n",
        )?;
    }
    for r in rows {
        write!(
            out,
            "| {} | `{}` | `{}` | {} |",
            r.line,
            code_span(&r.address),
            r.verdict.code(),
            esc(&r.said)
        )?;
        if with_fix {
            write!(out, " {} |", esc(r.fix.as_deref().unwrap_or("")))?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

impl Body for MarkdownReport {
    fn row(&mut self, _out: &mut dyn Write, r: &SenderRecord) -> io::Result<()> {
        let (count, cap) = match r.class {
            Class::Pass => return Ok(()),
            Class::Fail => (&mut self.fail_count, FAIL_CAP),
            Class::Unknown => (&mut self.unknown_count, UNKNOWN_CAP),
        };
        *count += 1;
        let fix = effective_fix(r);
        self.collect_fix(r, &fix);
        let rows = if r.class == Class::Fail {
            &mut self.fails
        } else {
            &mut self.unknowns
        };
        if rows.len() < cap {
            let said: String = first_reply_line(r)
                .unwrap_or(&r.reason)
                .chars()
                .take(200)
                .collect();
            rows.push(Row {
                line: r.line,
                address: display_address(r).to_string(),
                verdict: r.verdict,
                said,
                fix,
            });
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(self.head.as_bytes())?;
        if self.fail_count == 0 {
            out.write_all(b"\nNo sender fails.\n")?;
        } else {
            writeln!(out, "\n### Failing senders ({})\n", self.fail_count)?;
            table(out, &self.fails, true)?;
            if self.fail_count > self.fails.len() as u64 {
                writeln!(
                    out,
                    "\n… and {} more: see report.csv.",
                    self.fail_count - self.fails.len() as u64
                )?;
            }
            out.write_all(b"\n### Fixes\n")?;
            if !self.valiases.is_empty() {
                out.write_all(
                    b"\nAddresses that do not exist: make them accept and discard mail. \
cPanel/Exim, one file per domain (`fixes/` has the complete files, and Postfix, Sendmail and qmail versions):\n",
                )?;
                for (domain, keys) in &self.valiases {
                    writeln!(out, "\n`/etc/valiases/{}`\n\n```", code_span(domain))?;
                    for k in keys {
                        writeln!(out, "{}: :blackhole:", k.replace("```", "'''"))?;
                    }
                    out.write_all(b"```\n")?;
                }
            }
            if !self.other_fixes.is_empty() {
                out.write_all(b"\n")?;
                for f in &self.other_fixes {
                    writeln!(out, "- {}", esc(f))?;
                }
            }
        }
        if self.unknown_count > 0 {
            writeln!(
                out,
                "\n<details><summary>{} sender(s) could not be decided (unknown)</summary>\n",
                self.unknown_count
            )?;
            table(out, &self.unknowns, false)?;
            if self.unknown_count > self.unknowns.len() as u64 {
                writeln!(
                    out,
                    "\n… and {} more: see report.csv.",
                    self.unknown_count - self.unknowns.len() as u64
                )?;
            }
            out.write_all(b"\n</details>\n")?;
        }
        out.write_all(self.footer.as_bytes())
    }
}
