//! `report.csv`: one row per input row, the input's own columns passed
//! through at the end, so the file can be sorted and filtered in a
//! spreadsheet next to the original list.
//!
//! Cells come from the input and from remote servers, and spreadsheets run
//! formulas: every cell that starts with `=`, `+`, `-`, `@`, tab or CR gets a
//! leading `'` (OWASP "CSV Injection").

use super::util::{deciding_reply, display_address, effective_fix};
use super::Body;
use crate::record::SenderRecord;
use std::borrow::Cow;
use std::io::{self, Write};

const COLUMNS: [&str; 12] = [
    "line", "address", "domain", "verdict", "class", "reason", "flags", "exim", "postfix",
    "mx_host", "reply", "fix",
];

pub(crate) struct CsvReport {
    /// Passed-through column names, fixed by the first row (every row of one
    /// input has the same columns).
    extra_names: Option<Vec<String>>,
    cells: Vec<String>,
    line: String,
}

impl CsvReport {
    pub(crate) fn new() -> CsvReport {
        CsvReport {
            extra_names: None,
            cells: Vec::with_capacity(16),
            line: String::with_capacity(1024),
        }
    }

    fn emit(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.line.clear();
        for (i, cell) in self.cells.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            push_field(&mut self.line, &neutralise(cell));
        }
        self.line.push_str("\r\n");
        out.write_all(self.line.as_bytes())
    }

    fn header(&mut self, out: &mut dyn Write, extra: &[(String, String)]) -> io::Result<()> {
        let names: Vec<String> = extra.iter().map(|(k, _)| k.clone()).collect();
        self.cells.clear();
        self.cells.extend(COLUMNS.iter().map(|c| c.to_string()));
        self.cells.extend(names.iter().cloned());
        self.extra_names = Some(names);
        self.emit(out)
    }
}

/// Appends one RFC 4180 field: quoted (with `"` doubled) when it holds a
/// separator, quote, line break, or edge white space a reader might trim.
fn push_field(line: &mut String, cell: &str) {
    let quote = cell.contains([',', '"', '\r', '\n'])
        || cell.starts_with(char::is_whitespace)
        || cell.ends_with(char::is_whitespace);
    if !quote {
        line.push_str(cell);
        return;
    }
    line.push('"');
    for c in cell.chars() {
        if c == '"' {
            line.push('"');
        }
        line.push(c);
    }
    line.push('"');
}

/// Prefixes a cell a spreadsheet would read as a formula with `'`.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

fn code<T>(v: Option<T>, f: impl Fn(T) -> &'static str) -> String {
    v.map(f).unwrap_or_default().to_string()
}

impl Body for CsvReport {
    fn row(&mut self, out: &mut dyn Write, r: &SenderRecord) -> io::Result<()> {
        if self.extra_names.is_none() {
            self.header(out, &r.extra)?;
        }
        self.cells.clear();
        self.cells.push(r.line.to_string());
        self.cells.push(display_address(r).to_string());
        self.cells.push(r.domain.clone().unwrap_or_default());
        self.cells.push(r.verdict.code().to_string());
        self.cells.push(r.class.code().to_string());
        self.cells.push(r.reason.clone());
        self.cells.push(
            r.flags
                .iter()
                .map(|f| f.code())
                .collect::<Vec<_>>()
                .join(";"),
        );
        self.cells.push(code(r.exim, |d| d.code()));
        self.cells.push(code(r.postfix, |d| d.code()));
        self.cells.push(
            r.evidence
                .as_ref()
                .map(|e| e.mx_host.clone())
                .unwrap_or_default(),
        );
        self.cells.push(deciding_reply(r).unwrap_or_default());
        self.cells.push(effective_fix(r).unwrap_or_default());
        let names = self.extra_names.take().unwrap_or_default();
        for (i, name) in names.iter().enumerate() {
            // Same position in the common case; look up by name otherwise.
            let value = match r.extra.get(i) {
                Some((k, v)) if k == name => v.as_str(),
                _ => r
                    .extra
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or(""),
            };
            self.cells.push(value.to_string());
        }
        self.extra_names = Some(names);
        self.emit(out)
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.extra_names.is_none() {
            self.header(out, &[])?;
        }
        Ok(())
    }
}
