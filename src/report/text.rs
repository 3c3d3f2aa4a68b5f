//! The terminal report: summary, a table of the senders that need attention,
//! and a stats footer.
//!
//! Rows stream straight to the output, so the table uses fixed column widths
//! (long cells are cut with `…`) instead of measuring every row first. Every
//! string that came from the input file or a server goes through
//! [`terminal_safe`]: a reply must not be able to drive the reader's terminal.

use super::util::{
    deciding_reply, display_address, effective_fix, receiver_note, terminal_safe, truncate,
};
use super::Body;
use crate::record::{ReportContext, SenderRecord};
use crate::verdict::{Class, Verdict};
use std::io::{self, Write};

const W_LINE: usize = 6;
const W_ADDRESS: usize = 30;
const W_VERDICT: usize = 20;
const W_REPLY: usize = 56;
/// Domains shown per plan group before "…".
const PLAN_DOMAINS: usize = 3;

pub(crate) struct TextReport {
    /// Header and summary, rendered up front and written with the first row.
    header: Option<String>,
    footer: String,
    verbose: bool,
    table_started: bool,
    listed: u64,
    skipped_hidden: u64,
}

impl TextReport {
    pub(crate) fn new(ctx: &ReportContext, verbose: bool) -> TextReport {
        TextReport {
            header: Some(header(ctx)),
            footer: footer(ctx),
            verbose,
            table_started: false,
            listed: 0,
            skipped_hidden: 0,
        }
    }

    fn start(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(h) = self.header.take() {
            out.write_all(h.as_bytes())?;
        }
        Ok(())
    }
}

fn header(ctx: &ReportContext) -> String {
    let m = &ctx.meta;
    let s = &ctx.summary;
    let mut h = format!(
        "{} {} · {} · {} sender(s) · {}\n",
        m.tool,
        m.version,
        terminal_safe(&m.input),
        s.total,
        m.started_at
    );
    if !m.complete {
        match &m.stop_after {
            Some(stage) => h.push_str(&format!("(stopped after {stage})\n")),
            None => h.push_str("(incomplete run: interrupted)\n"),
        }
    }
    h.push_str(&format!(
        "\nSummary: {} pass · {} fail · {} unknown\n",
        s.class_count(Class::Pass),
        s.class_count(Class::Fail),
        s.class_count(Class::Unknown)
    ));
    for v in Verdict::ALL {
        let n = s.count(v);
        if n > 0 {
            h.push_str(&format!(
                "  {:<8} {:<22} {n:>8}\n",
                v.class().code(),
                v.code()
            ));
        }
    }
    if let Some(ch) = &ctx.changes {
        h.push_str(&changes(ch));
    }
    if ctx.meta.stop_after.as_deref() == Some("dns") {
        h.push_str(&plan(ctx));
    }
    h
}

/// Entries shown per list of the changes section.
const CHANGES_SHOWN: usize = 20;

/// "Changes since the last run".
fn changes(ch: &crate::record::Changes) -> String {
    let mut c = format!(
        "\nChanges since {}: {} newly failing · {} newly fixed · {} still failing\n",
        ch.previous_run.describe(),
        ch.newly_failing.len(),
        ch.newly_fixed.len(),
        ch.still_failing.len()
    );
    for (title, list) in ch.lists() {
        for e in list.iter().take(CHANGES_SHOWN) {
            let was = e
                .previous
                .map_or("new".to_string(), |v| v.code().to_string());
            c.push_str(&format!(
                "  {:<14} {:<40} {} (was {was}){}\n",
                title,
                terminal_safe(&e.address),
                e.verdict.code(),
                e.since
                    .as_deref()
                    .filter(|_| title == "still failing")
                    .map(|s| format!(", failing since {s}"))
                    .unwrap_or_default()
            ));
        }
        if list.len() > CHANGES_SHOWN {
            c.push_str(&format!(
                "  {:<14} … and {} more (report.json has them all)\n",
                title,
                list.len() - CHANGES_SHOWN
            ));
        }
    }
    c
}

/// The plan groups `--stop-after dns` shows in place of probe results.
fn plan(ctx: &ReportContext) -> String {
    let mut p = format!("\nPlan: {} MX group(s)\n", ctx.groups.len());
    p.push_str(&format!(
        "  {:<44} {:>8} {:>8}  DOMAINS\n",
        "MX HOSTS", "#DOMAINS", "#SENDERS"
    ));
    for g in &ctx.groups {
        let hosts = terminal_safe(&g.mx_hosts.join(", ")).into_owned();
        let mut domains: Vec<String> = g
            .domains
            .iter()
            .take(PLAN_DOMAINS)
            .map(|d| terminal_safe(d).into_owned())
            .collect();
        if g.domains.len() > PLAN_DOMAINS {
            domains.push("…".into());
        }
        p.push_str(&format!(
            "  {:<44} {:>8} {:>8}  {}{}\n",
            truncate(&hosts, 44),
            g.domains.len(),
            g.senders,
            domains.join(", "),
            if g.in_shard { "" } else { " (other shard)" }
        ));
    }
    p
}

fn footer(ctx: &ReportContext) -> String {
    let st = &ctx.stats;
    let dns_total: u64 = st.dns_queries.values().sum();
    let by_type: Vec<String> = st
        .dns_queries
        .iter()
        .map(|(t, n)| format!("{} {n}", terminal_safe(t)))
        .collect();
    let dns = if by_type.is_empty() {
        dns_total.to_string()
    } else {
        format!("{dns_total} ({})", by_type.join(", "))
    };
    format!(
        "\n{} rows · {} distinct addresses · {} domains · DNS queries {} · {} connections · {}\n",
        st.rows,
        st.distinct_addresses,
        st.distinct_domains,
        dns,
        st.connections,
        duration(st.duration_ms)
    )
}

fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

impl Body for TextReport {
    fn row(&mut self, out: &mut dyn Write, r: &SenderRecord) -> io::Result<()> {
        self.start(out)?;
        let listed = match r.class {
            Class::Pass => self.verbose,
            // Shard or configuration exclusions would drown the table (half
            // of every row in a 2-way shard); they are counted above.
            _ if r.verdict == Verdict::Skipped && !self.verbose => {
                self.skipped_hidden += 1;
                false
            }
            _ => true,
        };
        if !listed {
            return Ok(());
        }
        if !self.table_started {
            self.table_started = true;
            let title = if self.verbose {
                "\nAll senders\n"
            } else {
                "\nFailing and unknown senders\n"
            };
            writeln!(
                out,
                "{title}{:>W_LINE$}  {:<W_ADDRESS$}  {:<W_VERDICT$}  SERVER REPLY / REASON",
                "LINE", "ADDRESS", "VERDICT"
            )?;
        }
        self.listed += 1;
        let address = terminal_safe(display_address(r)).into_owned();
        // The first reply line carries the code; the rest is usually prose.
        let said = match r.evidence.as_ref().and_then(|e| e.reply.first()) {
            Some(first) => first.clone(),
            None => deciding_reply(r).unwrap_or_else(|| r.reason.clone()),
        };
        let said = terminal_safe(&said).into_owned();
        writeln!(
            out,
            "{:>W_LINE$}  {:<W_ADDRESS$}  {:<W_VERDICT$}  {}",
            r.line,
            truncate(&address, W_ADDRESS),
            r.verdict.code(),
            truncate(&said, W_REPLY)
        )?;
        if let Some(fix) = effective_fix(r) {
            writeln!(out, "{:>W_LINE$}  fix: {}", "", terminal_safe(&fix))?;
        }
        if let Some(note) = receiver_note(r) {
            writeln!(out, "{:>W_LINE$}  note: {note}", "")?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.start(out)?;
        if !self.table_started {
            out.write_all(b"\nNo failing or unknown senders.\n")?;
        }
        if self.skipped_hidden > 0 {
            writeln!(
                out,
                "({} skipped sender(s) not listed; --verbose lists them)",
                self.skipped_hidden
            )?;
        }
        out.write_all(self.footer.as_bytes())
    }
}
