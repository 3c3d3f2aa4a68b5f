//! `report.json`: the `sendercheck/1` document (schema/report.schema.json).
//!
//! The header (meta, summary, stats, groups) is known before the first row,
//! so the document is written front to back: `"results":[` is opened once and
//! each row is serialised into one reused buffer, then written to the file in
//! one piece, one row per line. Nothing is held per row, so a million rows
//! cost no more memory than one.

use super::Body;
use crate::fix::one_line;
use crate::record::{Evidence, ReportContext, SenderRecord, Summary};
use crate::verdict::{Class, Decision, Flag, Verdict};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
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
        serde_json::to_writer(&mut self.row, &RowOut::new(record)).map_err(io::Error::other)?;
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

/// One entry of `results`: the record's fields, with `fix` filled in by
/// [`one_line`] when unset upstream, so JSON agrees with every other format.
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
