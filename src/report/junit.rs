//! `junit.xml`: one test case per sender, so CI systems that read JUnit
//! (GitLab, Jenkins, GitHub test reporters) show failing senders as failed
//! tests with the server's reply and the fix.
//!
//! The `<testsuite>` element carries the counts before the test cases. The
//! cases are rendered into a spool file and the counts taken from the rows
//! actually written, not from the up-front summary, so an interrupted run
//! still produces a self-consistent file.

use super::util::{deciding_reply, display_address, effective_fix, receiver_note};
use super::{Body, ReportError, Spool};
use crate::record::{ReportContext, SenderRecord};
use crate::verdict::Class;
use std::io::{self, Write};
use std::path::Path;

pub(crate) struct JunitReport {
    spool: Spool,
    gate_unknown: bool,
    tests: u64,
    failures: u64,
    skipped: u64,
    properties: Vec<(&'static str, String)>,
    timestamp: String,
}

impl JunitReport {
    pub(crate) fn new(
        ctx: &ReportContext,
        dir: &Path,
        gate_unknown: bool,
    ) -> Result<JunitReport, ReportError> {
        let m = &ctx.meta;
        Ok(JunitReport {
            spool: Spool::new(dir)?,
            gate_unknown,
            tests: 0,
            failures: 0,
            skipped: 0,
            properties: vec![
                ("tool", m.tool.clone()),
                ("version", m.version.clone()),
                ("input", m.input.clone()),
                ("complete", m.complete.to_string()),
                ("gate_unknown", gate_unknown.to_string()),
            ],
            timestamp: m.started_at.clone(),
        })
    }
}

/// XML 1.0 forbids most C0 controls and U+FFFE/U+FFFF even as references;
/// they are dropped. Markup characters become entities; in attributes tab,
/// CR and LF become references so attribute normalisation keeps them.
pub fn xml_escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

impl Body for JunitReport {
    fn row(&mut self, _out: &mut dyn Write, r: &SenderRecord) -> io::Result<()> {
        self.tests += 1;
        let out = self.spool.writer();
        let classname = match &r.domain {
            Some(d) => format!("sendercheck.{d}"),
            None => "sendercheck.unparsed".to_string(),
        };
        write!(
            out,
            "    <testcase classname=\"{}\" name=\"line {}: {}\"",
            xml_escape(&classname, true),
            r.line,
            xml_escape(display_address(r), true)
        )?;
        let failed = match r.class {
            Class::Pass => false,
            Class::Fail => true,
            Class::Unknown => self.gate_unknown,
        };
        if r.class == Class::Pass {
            return out.write_all(b"/>\n");
        }
        if !failed {
            self.skipped += 1;
            return writeln!(
                out,
                ">\n      <skipped message=\"{}: {}\"/>\n    </testcase>",
                r.verdict.code(),
                xml_escape(&r.reason, true)
            );
        }
        self.failures += 1;
        let mut body = String::new();
        if let Some(ev) = &r.evidence {
            body.push_str(&format!(
                "{} [{}] at {}:\n",
                ev.mx_host,
                ev.ip,
                ev.stage.code()
            ));
            for line in &ev.reply {
                body.push_str("  ");
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(reply) = deciding_reply(r) {
            body.push_str(&reply);
            body.push('\n');
        }
        if let Some(note) = receiver_note(r) {
            body.push_str(&format!("note: {note}\n"));
        }
        if let Some(fix) = effective_fix(r) {
            body.push_str(&format!("fix: {fix}\n"));
        }
        writeln!(
            out,
            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
            xml_escape(&r.reason, true),
            r.verdict.code(),
            xml_escape(&body, false)
        )
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let counts = format!(
            "tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\"",
            self.tests, self.failures, self.skipped
        );
        writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
        writeln!(out, "<testsuites name=\"sendercheck\" {counts}>")?;
        writeln!(
            out,
            "  <testsuite name=\"sendercheck\" {counts} timestamp=\"{}\">",
            xml_escape(&self.timestamp, true)
        )?;
        out.write_all(b"    <properties>\n")?;
        for (k, v) in &self.properties {
            writeln!(
                out,
                "      <property name=\"{k}\" value=\"{}\"/>",
                xml_escape(v, true)
            )?;
        }
        out.write_all(b"    </properties>\n")?;
        self.spool.copy_to(out)?;
        out.write_all(b"  </testsuite>\n</testsuites>\n")
    }
}
