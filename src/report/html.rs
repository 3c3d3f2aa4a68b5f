//! `report.html`: one self-contained page (inline CSS and JS, no external
//! resources, so it can be mailed or attached to a ticket and opened
//! offline).
//!
//! The charts come before the table but the provider chart needs every row,
//! so rendered table rows go to a spool file and are copied in at the end;
//! memory stays flat. Passing senders are capped (they are the boring
//! majority); failing and unknown ones are all listed up to a large cap.
//!
//! Every byte from the input or a server is HTML-escaped, attributes
//! included. The filter script reads the table from the DOM; no data is
//! embedded in script, so there is no JSON-in-`<script>` escaping to get
//! wrong. Without JavaScript the filter box stays hidden and every row shows.

use super::util::{deciding_reply, display_address, effective_fix, mx_provider, receiver_note};
use super::{Body, ReportError, Spool};
use crate::record::{ReportContext, SenderRecord};
use crate::verdict::{Class, Verdict};
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

/// Passing rows listed in the table; the rest are only counted.
const PASS_CAP: u64 = 5_000;
/// Failing and unknown rows listed; beyond this the page stops being usable.
const ATTENTION_CAP: u64 = 100_000;
/// Distinct providers tracked for the chart; later ones count as "other".
const PROVIDER_CAP: usize = 100_000;
const TOP_PROVIDERS: usize = 10;

pub(crate) struct HtmlReport {
    head: String,
    spool: Spool,
    providers: HashMap<String, u64>,
    other_providers: u64,
    pass_listed: u64,
    pass_hidden: u64,
    attention_listed: u64,
    attention_hidden: u64,
}

/// Escapes text for HTML content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}\
h1{font-size:1.5em;margin-bottom:.2em}.meta{color:#666;margin-top:0}\
.cards{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}\
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1.2em;min-width:8em}\
.card b{display:block;font-size:1.8em}\
.card.pass,td.pass{color:#1a7f37}.card.fail,td.fail{color:#cf222e}.card.unknown,td.unknown{color:#9a6700}\
.charts{display:flex;gap:2em;flex-wrap:wrap}.chart{flex:1;min-width:320px}\
.bar{display:flex;align-items:center;margin:2px 0}.bar span.l{flex:0 0 12em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}\
.bar span.t{flex:1;display:flex;align-items:center;min-width:0}.bar span.b{display:block;height:1em;border-radius:2px;margin-right:.5em;min-width:2px}\
.bar span.b.pass{background:#2da44e}.bar span.b.fail{background:#cf222e}.bar span.b.unknown{background:#d4a72c}.bar span.b.mx{background:#57606a}\
table{border-collapse:collapse;width:100%;margin-top:1em}th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}\
td.reply{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-word;min-width:22em}\
td.fix{font-size:13px;min-width:14em}tr.fail td:first-child{border-left:3px solid #cf222e}tr.unknown td:first-child{border-left:3px solid #d4a72c}\
#filters{margin-top:1.5em}#filters input[type=search]{width:20em;padding:3px}.note{color:#666}";

const SCRIPT: &str = "(function(){var f=document.getElementById('filters');if(!f)return;f.hidden=false;\
var q=document.getElementById('q');var boxes=f.querySelectorAll('input[type=checkbox]');\
var rows=document.querySelectorAll('#senders tbody tr');\
function apply(){var t=q.value.toLowerCase();var on={};\
for(var i=0;i<boxes.length;i++){on[boxes[i].value]=boxes[i].checked;}\
for(var j=0;j<rows.length;j++){var r=rows[j];\
r.hidden=!(on[r.getAttribute('data-class')]&&(!t||r.textContent.toLowerCase().indexOf(t)>=0));}}\
q.addEventListener('input',apply);for(var k=0;k<boxes.length;k++){boxes[k].addEventListener('change',apply);}apply();})();";

impl HtmlReport {
    pub(crate) fn new(ctx: &ReportContext, dir: &Path) -> Result<HtmlReport, ReportError> {
        let m = &ctx.meta;
        let s = &ctx.summary;
        let mut head = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>sendercheck report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>Sender verification report</h1>\n<p class=\"meta\">{} {} · input <code>{}</code> · {} → {}{}</p>\n",
            esc(&m.input),
            esc(&m.tool),
            esc(&m.version),
            esc(&m.input),
            esc(&m.started_at),
            esc(&m.finished_at),
            if m.complete {
                String::new()
            } else {
                match &m.stop_after {
                    Some(stage) => format!(" · <strong>stopped after {}</strong>", esc(stage)),
                    None => " · <strong>incomplete run</strong>".to_string(),
                }
            }
        );
        if let Some(ch) = &ctx.changes {
            head.push_str(&changes(ch));
        }
        head.push_str("<div class=\"cards\">\n");
        head.push_str(&format!(
            "<div class=\"card\"><b>{}</b>senders</div>\n",
            s.total
        ));
        for c in Class::ALL {
            head.push_str(&format!(
                "<div class=\"card {c}\"><b>{}</b>{c}</div>\n",
                s.class_count(c)
            ));
        }
        head.push_str("</div>\n<div class=\"charts\">\n<div class=\"chart\">\n<h2>Verdicts</h2>\n");
        let max = Verdict::ALL.iter().map(|v| s.count(*v)).max().unwrap_or(0);
        for v in Verdict::ALL {
            let n = s.count(v);
            if n > 0 {
                head.push_str(&bar(v.code(), n, max, v.class().code()));
            }
        }
        if s.total == 0 {
            head.push_str("<p class=\"note\">No senders.</p>\n");
        }
        head.push_str("</div>\n");
        Ok(HtmlReport {
            head,
            spool: Spool::new(dir)?,
            providers: HashMap::new(),
            other_providers: 0,
            pass_listed: 0,
            pass_hidden: 0,
            attention_listed: 0,
            attention_hidden: 0,
        })
    }

    fn count_provider(&mut self, r: &SenderRecord) {
        // A null MX (".") names no host and so no provider.
        let Some(host) = r
            .mx_hosts
            .iter()
            .find(|h| !h.trim_end_matches('.').is_empty())
        else {
            return;
        };
        let p = mx_provider(host);
        if let Some(n) = self.providers.get_mut(&p) {
            *n += 1;
        } else if self.providers.len() < PROVIDER_CAP {
            self.providers.insert(p, 1);
        } else {
            self.other_providers += 1;
        }
    }
}

/// Entries shown per list of the changes section.
const CHANGES_SHOWN: usize = 200;

/// "Changes since the last run": what a nightly reader looks for first.
fn changes(ch: &crate::record::Changes) -> String {
    let mut c = format!(
        "<section class=\"changes\">\n<h2>Changes since the last run</h2>\n<p>Compared with {}: <strong>{} newly failing</strong> · {} newly fixed · {} still failing</p>\n",
        esc(&ch.previous_run.describe()),
        ch.newly_failing.len(),
        ch.newly_fixed.len(),
        ch.still_failing.len()
    );
    if !ch.is_empty() {
        c.push_str("<table>\n<thead><tr><th>change</th><th>sender</th><th>verdict</th><th>was</th><th>failing since</th></tr></thead>\n<tbody>\n");
        for (title, list) in ch.lists() {
            for e in list.iter().take(CHANGES_SHOWN) {
                c.push_str(&format!(
                    "<tr><td>{title}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    esc(&e.address),
                    e.verdict.code(),
                    e.previous.map_or("new", |v| v.code()),
                    e.since.as_deref().map(esc).unwrap_or_default()
                ));
            }
            if list.len() > CHANGES_SHOWN {
                c.push_str(&format!(
                    "<tr><td>{title}</td><td colspan=\"4\">… and {} more (see report.json)</td></tr>\n",
                    list.len() - CHANGES_SHOWN
                ));
            }
        }
        c.push_str("</tbody>\n</table>\n");
    }
    c.push_str("</section>\n");
    c
}

/// One horizontal CSS bar: label, bar scaled to `max`, count.
fn bar(label: &str, n: u64, max: u64, class: &str) -> String {
    let pct = (n * 100).checked_div(max).unwrap_or(0);
    format!(
        "<div class=\"bar\"><span class=\"l\" title=\"{l}\">{l}</span><span class=\"t\"><span class=\"b {class}\" style=\"width:{pct}%\"></span>{n}</span></div>\n",
        l = esc(label)
    )
}

impl Body for HtmlReport {
    fn row(&mut self, _out: &mut dyn Write, r: &SenderRecord) -> io::Result<()> {
        self.count_provider(r);
        if r.class == Class::Pass {
            if self.pass_listed >= PASS_CAP {
                self.pass_hidden += 1;
                return Ok(());
            }
            self.pass_listed += 1;
        } else {
            if self.attention_listed >= ATTENTION_CAP {
                self.attention_hidden += 1;
                return Ok(());
            }
            self.attention_listed += 1;
        }
        let out = self.spool.writer();
        let mut reply = String::new();
        if let Some(ev) = &r.evidence {
            reply.push_str(&format!(
                "{} [{}] {}: ",
                esc(&ev.mx_host),
                esc(&ev.ip),
                ev.stage.code()
            ));
        }
        // One reply line per visual line (the cell is pre-wrap).
        match &r.evidence {
            Some(ev) => reply.push_str(&esc(&ev.reply.join("\n"))),
            None => reply.push_str(&esc(&deciding_reply(r).unwrap_or_default())),
        }
        let mut fix = effective_fix(r).map(|f| esc(&f)).unwrap_or_default();
        if let Some(note) = receiver_note(r) {
            fix.push_str(&format!("<br><em>{}</em>", esc(&note)));
        }
        let flags: Vec<&str> = r.flags.iter().map(|f| f.code()).collect();
        writeln!(
            out,
            "<tr class=\"{c}\" data-class=\"{c}\"><td>{}</td><td>{}</td><td class=\"{c}\" title=\"{}\">{}</td><td>{}{}</td><td class=\"reply\">{reply}</td><td class=\"fix\">{fix}</td></tr>",
            r.line,
            esc(display_address(r)),
            esc(&r.reason),
            r.verdict.code(),
            esc(&r.reason),
            if flags.is_empty() {
                String::new()
            } else {
                format!("<br><small>{}</small>", flags.join(", "))
            },
            c = r.class.code(),
        )
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(self.head.as_bytes())?;
        out.write_all(b"<div class=\"chart\">\n<h2>Senders by MX provider</h2>\n")?;
        let mut top: Vec<(&String, &u64)> = self.providers.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let rest: u64 = top
            .iter()
            .skip(TOP_PROVIDERS)
            .map(|(_, n)| **n)
            .sum::<u64>()
            + self.other_providers;
        top.truncate(TOP_PROVIDERS);
        let max = top.first().map(|(_, n)| **n).unwrap_or(0).max(rest);
        for (p, n) in &top {
            out.write_all(bar(p, **n, max, "mx").as_bytes())?;
        }
        if rest > 0 {
            out.write_all(bar("(other)", rest, max, "mx").as_bytes())?;
        }
        if top.is_empty() {
            out.write_all(b"<p class=\"note\">No MX hosts were looked up.</p>\n")?;
        }
        out.write_all(b"</div>\n</div>\n")?;
        out.write_all(
            b"<div id=\"filters\" hidden><input type=\"search\" id=\"q\" placeholder=\"Filter senders, replies, fixes\" aria-label=\"Filter\"> \
<label><input type=\"checkbox\" value=\"fail\" checked> fail</label> \
<label><input type=\"checkbox\" value=\"unknown\" checked> unknown</label> \
<label><input type=\"checkbox\" value=\"pass\" checked> pass</label></div>\n\
<table id=\"senders\">\n<thead><tr><th>Line</th><th>Sender</th><th>Verdict</th><th>Reason</th><th>Server reply</th><th>Fix</th></tr></thead>\n<tbody>\n",
        )?;
        self.spool.copy_to(out)?;
        out.write_all(b"</tbody>\n</table>\n")?;
        if self.pass_hidden > 0 {
            writeln!(
                out,
                "<p class=\"note\">{} more passing senders are not listed (the table shows the first {PASS_CAP}); report.csv has every row.</p>",
                self.pass_hidden
            )?;
        }
        if self.attention_hidden > 0 {
            writeln!(
                out,
                "<p class=\"note\">{} more failing or unknown senders are not listed; report.csv has every row.</p>",
                self.attention_hidden
            )?;
        }
        writeln!(out, "<script>{SCRIPT}</script>\n</body>\n</html>")
    }
}
