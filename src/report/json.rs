//! `report.json`: the `sendercheck/1` document (schema/report.schema.json).
//!
//! The header (meta, summary, stats, groups) is known before the first row,
//! so the document is written front to back: `"results":[` is opened once and
//! each row is serialised into one reused buffer, then written to the file in
//! one piece, one row per line. Nothing is held per row, so a million rows
//! cost no more memory than one.

use super::Body;
use crate::fix::one_line;
use crate::record::{ReportContext, SenderRecord, Summary};
use crate::verdict::{Class, Decision, Verdict};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::io::{self, Write};

/// The `schema` value; bump on any incompatible change to the layout.
pub const SCHEMA_ID: &str = "sendercheck/1";

pub(crate) struct JsonReport {
    header: Option<Vec<u8>>,
    rows: u64,
    /// One row's bytes. serde_json writes a row as dozens of small pieces;
    /// gathered here they cost one `write_all` through the `dyn Write`
    /// instead of one each.
    row: Vec<u8>,
}

impl JsonReport {
    pub(crate) fn new(ctx: &ReportContext) -> JsonReport {
        let header = Header {
            schema: SCHEMA_ID,
            meta: &ctx.meta,
            summary: SummaryOut(&ctx.summary),
            stats: &ctx.stats,
            groups: &ctx.groups,
            changes: ctx.changes.as_ref(),
        };
        let mut bytes = serde_json::to_vec(&header).expect("report header serialises");
        // Reopen the object to append the streamed results array.
        bytes.pop();
        bytes.extend_from_slice(b",\"results\":[");
        JsonReport {
            header: Some(bytes),
            rows: 0,
            row: Vec::new(),
        }
    }

    fn start(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(h) = self.header.take() {
            out.write_all(&h)?;
        }
        Ok(())
    }
}

impl Body for JsonReport {
    fn row(&mut self, out: &mut dyn Write, record: &SenderRecord) -> io::Result<()> {
        self.start(out)?;
        self.row.clear();
        self.row
            .extend_from_slice(if self.rows == 0 { b"\n" } else { b",\n" });
        self.rows += 1;
        write_row(&mut self.row, record)?;
        out.write_all(&self.row)
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.start(out)?;
        out.write_all(if self.rows == 0 { b"]}\n" } else { b"\n]}\n" })
    }
}

#[derive(Serialize)]
struct Header<'a> {
    schema: &'static str,
    meta: &'a crate::record::RunMeta,
    summary: SummaryOut<'a>,
    stats: &'a crate::record::Stats,
    groups: &'a [crate::record::GroupLine],
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<&'a crate::record::Changes>,
}

/// The summary with every class and every verdict present (zeros included)
/// in vocabulary order, so consumers never need a default.
struct SummaryOut<'a>(&'a Summary);

impl Serialize for SummaryOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("total", &self.0.total)?;
        m.serialize_entry("by_class", &ByClass(self.0))?;
        m.serialize_entry("by_verdict", &ByVerdict(self.0))?;
        m.end()
    }
}

struct ByClass<'a>(&'a Summary);

impl Serialize for ByClass<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(Class::ALL.len()))?;
        for c in Class::ALL {
            m.serialize_entry(c.code(), &self.0.class_count(c))?;
        }
        m.end()
    }
}

struct ByVerdict<'a>(&'a Summary);

impl Serialize for ByVerdict<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(Verdict::ALL.len()))?;
        for v in Verdict::ALL {
            m.serialize_entry(v.code(), &self.0.count(v))?;
        }
        m.end()
    }
}

/// Writes one entry of `results`: the record's fields, with `fix` filled in
/// by [`one_line`] when unset upstream, so JSON agrees with every other
/// format. Written by hand, field by field, because serde's per-field calls
/// and byte-at-a-time escaping cost more than all else on a million rows; the
/// bytes are exactly what serde_json makes of `tests::RowOut`, which the tests
/// hold it to.
fn write_row(buf: &mut Vec<u8>, r: &SenderRecord) -> io::Result<()> {
    write!(buf, "{{\"line\":{}", r.line)?;
    buf.extend_from_slice(b",\"input\":");
    string(buf, &r.input)?;
    buf.extend_from_slice(b",\"address\":");
    option(buf, r.address.as_deref())?;
    buf.extend_from_slice(b",\"domain\":");
    option(buf, r.domain.as_deref())?;
    buf.extend_from_slice(b",\"verdict\":");
    string(buf, r.verdict.code())?;
    buf.extend_from_slice(b",\"class\":");
    string(buf, r.class.code())?;
    buf.extend_from_slice(b",\"reason\":");
    string(buf, &r.reason)?;
    buf.extend_from_slice(b",\"flags\":");
    array(buf, r.flags.iter().map(|f| f.code()))?;
    buf.extend_from_slice(b",\"extra\":{");
    for (i, (k, v)) in r.extra.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        string(buf, k)?;
        buf.push(b':');
        string(buf, v)?;
    }
    buf.extend_from_slice(b"},\"mx_hosts\":");
    array(buf, r.mx_hosts.iter().map(String::as_str))?;
    buf.extend_from_slice(b",\"exim\":");
    option(buf, r.exim.map(Decision::code))?;
    buf.extend_from_slice(b",\"postfix\":");
    option(buf, r.postfix.map(Decision::code))?;
    buf.extend_from_slice(b",\"evidence\":");
    serde_json::to_writer(&mut *buf, &r.evidence).map_err(io::Error::other)?;
    buf.extend_from_slice(b",\"transcript\":");
    array(buf, r.transcript.iter().map(String::as_str))?;
    buf.extend_from_slice(b",\"fix\":");
    match &r.fix {
        Some(f) => string(buf, f)?,
        None => option(buf, one_line(r).as_deref())?,
    }
    buf.push(b'}');
    Ok(())
}

/// A JSON string. Most need no escape, and a whole-string check (which
/// vectorises) lets those be copied; any other goes through serde_json.
fn string(buf: &mut Vec<u8>, s: &str) -> io::Result<()> {
    // What serde_json escapes: '"', '\\' and C0 controls, nothing else.
    let escape = s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if escape {
        return serde_json::to_writer(&mut *buf, s).map_err(io::Error::other);
    }
    buf.reserve(s.len() + 2);
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
    Ok(())
}

fn option(buf: &mut Vec<u8>, s: Option<&str>) -> io::Result<()> {
    match s {
        Some(s) => string(buf, s),
        None => {
            buf.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn array<'s>(buf: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) -> io::Result<()> {
    buf.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        string(buf, s)?;
    }
    buf.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Evidence, Stage};
    use crate::verdict::Flag;
    use std::borrow::Cow;

    /// One entry of `results` as serde sees it: the layout [`write_row`] writes
    /// by hand, kept as the reference the tests compare it with.
    #[derive(Serialize)]
    struct RowOut<'a> {
        line: u64,
        input: &'a str,
        address: Option<&'a str>,
        domain: Option<&'a str>,
        verdict: Verdict,
        class: Class,
        reason: &'a str,
        flags: &'a [Flag],
        extra: Extra<'a>,
        mx_hosts: &'a [String],
        exim: Option<Decision>,
        postfix: Option<Decision>,
        evidence: Option<&'a Evidence>,
        transcript: &'a [String],
        fix: Option<Cow<'a, str>>,
    }

    impl<'a> RowOut<'a> {
        fn new(r: &'a SenderRecord) -> RowOut<'a> {
            RowOut {
                line: r.line,
                input: &r.input,
                address: r.address.as_deref(),
                domain: r.domain.as_deref(),
                verdict: r.verdict,
                class: r.class,
                reason: &r.reason,
                flags: &r.flags,
                extra: Extra(&r.extra),
                mx_hosts: &r.mx_hosts,
                exim: r.exim,
                postfix: r.postfix,
                evidence: r.evidence.as_ref(),
                transcript: &r.transcript,
                fix: match &r.fix {
                    Some(f) => Some(Cow::Borrowed(f.as_str())),
                    None => one_line(r).map(Cow::Owned),
                },
            }
        }
    }

    /// Passed-through columns as an object in input order.
    struct Extra<'a>(&'a [(String, String)]);

    impl Serialize for Extra<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }

    /// Every verdict, flag and decision, text that needs escaping and text
    /// that does not: the hand-written row is serde's, byte for byte.
    #[test]
    fn write_row_matches_serde() {
        let flags = [
            Flag::TrimmedWhitespace,
            Flag::DisplayNameStripped,
            Flag::AddressLiteral,
            Flag::NeedsSmtputf8,
            Flag::IdnConverted,
            Flag::Duplicate,
            Flag::ImplicitMx,
            Flag::NullMxMixed,
            Flag::MxCname,
            Flag::SomeMxUnusable,
            Flag::CatchAll,
            Flag::NoPostmaster,
            Flag::Greylisted,
            Flag::Cached,
            Flag::Smtputf8NotOffered,
        ];
        let decisions = [
            None,
            Some(Decision::Pass),
            Some(Decision::Fail),
            Some(Decision::Defer),
        ];
        let texts = [
            "",
            "a@example.com",
            "j\u{f6}rg <\"q\\uote\"@example.com>",
            "tab\there\r\n\u{1}\u{1f}\u{7f} \u{202e}/",
            "\u{feff}caf\u{e9}",
        ];
        let mut rows = Vec::new();
        for (i, verdict) in Verdict::ALL.into_iter().enumerate() {
            let text = texts[i % texts.len()];
            let mut r =
                SenderRecord::new(i as u64 + 2, text, verdict, texts[(i + 1) % texts.len()]);
            if i % 2 == 0 {
                r.address = Some(text.to_string());
                r.domain = Some("example.com".to_string());
            }
            r.flags = flags[..i.min(flags.len())].to_vec();
            r.extra = texts
                .iter()
                .map(|t| (t.to_string(), format!("v{t}")))
                .take(i % 4)
                .collect();
            r.mx_hosts = texts[..i % 3].iter().map(|t| t.to_string()).collect();
            r.exim = decisions[i % 4];
            r.postfix = decisions[(i + 1) % 4];
            if i % 3 == 0 {
                r.evidence = Some(Evidence {
                    mx_host: "mx.example.com".to_string(),
                    ip: "192.0.2.1".to_string(),
                    stage: Stage::RcptTo,
                    reply: vec![
                        texts[i % texts.len()].to_string(),
                        "550 5.1.1 no".to_string(),
                    ],
                });
            }
            r.transcript = texts[..i % 5].iter().map(|t| t.to_string()).collect();
            if i % 5 == 1 {
                r.fix = Some(texts[2].to_string());
            }
            rows.push(r);
        }
        let mut all_flags = SenderRecord::new(u64::MAX, "x", Verdict::Skipped, "");
        all_flags.flags = flags.to_vec();
        rows.push(all_flags);
        for r in &rows {
            let mut mine = Vec::new();
            write_row(&mut mine, r).unwrap();
            let serde = serde_json::to_vec(&RowOut::new(r)).unwrap();
            assert_eq!(
                String::from_utf8(mine).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }
}
