//! CSV input: find the address column, stream rows, keep the other columns.
//!
//! Rows are streamed and never collected: a run reads the file twice (once to
//! learn the distinct addresses, once to write each row's result), so memory
//! grows with the distinct-address set only. Standard input is spooled to a
//! temporary file first so it can be read twice as well.

use crate::record::set_text;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Header names recognised as the address column, case-insensitively.
pub const ADDRESS_HEADERS: [&str; 6] = [
    "email",
    "sender",
    "envelope_sender",
    "from",
    "return_path",
    "address",
];

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{name}: cannot read: {source}")]
    Unreadable { name: String, source: io::Error },
    #[error("{name}: line 1: the file is empty (expected a header row naming the address column, or rows with --no-header)")]
    Empty { name: String },
    #[error("{name}: line {line}: {message}")]
    Column {
        name: String,
        line: u64,
        message: String,
    },
    #[error("{name}: line {line}: {source}")]
    Csv {
        name: String,
        line: u64,
        source: csv::Error,
    },
}

/// How to pick the address column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnChoice {
    /// Look for one of [`ADDRESS_HEADERS`].
    Auto,
    /// A header name (case-insensitive).
    Name(String),
    /// A 1-based column number.
    Index(usize),
}

impl ColumnChoice {
    /// `--column` takes a name or a 1-based number.
    pub fn parse(s: &str) -> ColumnChoice {
        match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => ColumnChoice::Index(n),
            _ => ColumnChoice::Name(s.trim().to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InputOptions {
    pub column: ColumnChoice,
    pub has_header: bool,
    pub delimiter: u8,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            column: ColumnChoice::Auto,
            has_header: true,
            delimiter: b',',
        }
    }
}

/// A CSV source that can be read more than once.
#[derive(Debug)]
pub struct Source {
    /// The name used in messages (`-` becomes `<stdin>`).
    pub name: String,
    path: PathBuf,
    /// Keeps a spooled stdin alive for the run.
    _spool: Option<tempfile::TempPath>,
}

impl Source {
    /// Open a path, or spool standard input when `path` is `-`.
    pub fn open(path: &Path) -> Result<Source, InputError> {
        if path == Path::new("-") {
            return Source::from_reader("<stdin>", io::stdin().lock());
        }
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| InputError::Unreadable {
            name: name.clone(),
            source,
        })?;
        if meta.is_dir() {
            return Err(InputError::Unreadable {
                name,
                source: io::Error::other("is a directory"),
            });
        }
        Ok(Source {
            name,
            path: path.to_path_buf(),
            _spool: None,
        })
    }

    /// Spool a reader (stdin, or a test's bytes) to a temporary file.
    pub fn from_reader(name: &str, mut reader: impl Read) -> Result<Source, InputError> {
        let unreadable = |source| InputError::Unreadable {
            name: name.to_string(),
            source,
        };
        let mut spool = tempfile::NamedTempFile::new().map_err(unreadable)?;
        io::copy(&mut reader, spool.as_file_mut()).map_err(unreadable)?;
        let spool = spool.into_temp_path();
        Ok(Source {
            name: name.to_string(),
            path: spool.to_path_buf(),
            _spool: Some(spool),
        })
    }

    /// Start a pass over the rows.
    pub fn rows(&self, opts: &InputOptions, with_extra: bool) -> Result<Rows, InputError> {
        let file = File::open(&self.path).map_err(|source| InputError::Unreadable {
            name: self.name.clone(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(opts.delimiter)
            .buffer_capacity(1 << 16)
            .from_reader(BufReader::with_capacity(1 << 16, file));
        let mut first = csv::ByteRecord::new();
        let got = reader
            .read_byte_record(&mut first)
            .map_err(|source| InputError::Csv {
                name: self.name.clone(),
                line: source.position().map_or(1, |p| p.line()),
                source,
            })?;
        if !got {
            return Err(InputError::Empty {
                name: self.name.clone(),
            });
        }
        let mut lines = LineCounter::open(&self.path).map_err(|source| InputError::Unreadable {
            name: self.name.clone(),
            source,
        })?;
        // Blank lines before the first row (header or data) are skipped too.
        lines.line_at(first.position().map_or(0, |p| p.byte()));
        let (blank_from, first_line) = lines.skip_blank();
        let layout = Layout::new(&self.name, &first, opts, first_line)?;
        let pending = if opts.has_header {
            None
        } else {
            Some((first, first_line))
        };
        let end = reader.position().byte();
        let after_first = lines.line_at(end);
        Ok(Rows {
            lines,
            name: self.name.clone(),
            reader,
            layout,
            pending,
            with_extra,
            record: csv::ByteRecord::new(),
            next_expected_line: after_first,
            blank_lines: (blank_from..first_line).collect(),
            end,
        })
    }
}

/// The column layout learned from the first row.
#[derive(Debug, Clone)]
pub struct Layout {
    /// 0-based index of the address column.
    pub address: usize,
    /// The address column's header (or `columnN`).
    pub address_name: String,
    /// Names of all columns, header or `columnN`.
    pub names: Vec<String>,
}

impl Layout {
    fn new(
        name: &str,
        first: &csv::ByteRecord,
        opts: &InputOptions,
        line: u64,
    ) -> Result<Layout, InputError> {
        let width = first.len();
        let names: Vec<String> = if opts.has_header {
            first
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let h = String::from_utf8_lossy(h);
                    let h = h.trim_start_matches('\u{feff}').trim();
                    if h.is_empty() {
                        format!("column{}", i + 1)
                    } else {
                        h.to_string()
                    }
                })
                .collect()
        } else {
            (1..=width).map(|i| format!("column{i}")).collect()
        };
        let names = unique_names(names);
        let err = |message: String| InputError::Column {
            name: name.to_string(),
            line,
            message,
        };
        let address = match &opts.column {
            ColumnChoice::Index(n) => {
                if *n > width {
                    return Err(err(format!(
                        "--column {n} is out of range: the first row has {width} column(s)"
                    )));
                }
                n - 1
            }
            ColumnChoice::Name(wanted) if opts.has_header => names
                .iter()
                .position(|h| h.eq_ignore_ascii_case(wanted))
                .ok_or_else(|| {
                    err(format!(
                        "no column named '{wanted}' (header has: {}); pick one with --column NAME or a 1-based number",
                        names.join(", ")
                    ))
                })?,
            ColumnChoice::Name(wanted) => {
                return Err(err(format!(
                    "--column '{wanted}' names a header, but --no-header says there is none; give a 1-based column number"
                )))
            }
            ColumnChoice::Auto if opts.has_header => ADDRESS_HEADERS
                .iter()
                .find_map(|want| names.iter().position(|h| h.eq_ignore_ascii_case(want)))
                .ok_or_else(|| {
                    err(format!(
                        "no address column: looked for a header named {} (header has: {}); pick one with --column NAME|NUMBER, or use --no-header",
                        ADDRESS_HEADERS.join(", "),
                        names.join(", ")
                    ))
                })?,
            ColumnChoice::Auto => 0,
        };
        Ok(Layout {
            address,
            address_name: names[address].clone(),
            names,
        })
    }
}

/// Why a row's address cell could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellProblem {
    /// The row is shorter than the address column.
    Missing {
        fields: usize,
        column: String,
        index: usize,
    },
    /// The cell is not valid UTF-8.
    InvalidUtf8 { valid_up_to: usize },
}

impl std::fmt::Display for CellProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CellProblem::Missing { fields, column, index } => write!(
                f,
                "row has {fields} field(s); the address column '{column}' is field {}",
                index + 1
            ),
            CellProblem::InvalidUtf8 { valid_up_to } => write!(
                f,
                "the address cell is not valid UTF-8 (bad byte at offset {valid_up_to}); save the file as UTF-8"
            ),
        }
    }
}

/// One data row. [`Rows::read_into`] refills one in place, keeping its
/// buffers, so a pass over a million rows is not a million allocations.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based line where the row starts.
    pub line: u64,
    /// The address cell, or why it cannot be read.
    pub cell: Result<String, CellProblem>,
    /// The raw cell text (lossy), for reports, even when `cell` is an error.
    pub raw: String,
    /// The other columns (`with_extra` only), as `(header, value)`.
    pub extra: Vec<(String, String)>,
}

impl Default for Row {
    fn default() -> Self {
        Row {
            line: 0,
            cell: Ok(String::new()),
            raw: String::new(),
            extra: Vec::new(),
        }
    }
}

/// A pass over the data rows.
pub struct Rows {
    lines: LineCounter,
    name: String,
    reader: csv::Reader<BufReader<File>>,
    layout: Layout,
    pending: Option<(csv::ByteRecord, u64)>,
    with_extra: bool,
    record: csv::ByteRecord,
    next_expected_line: u64,
    blank_lines: Vec<u64>,
    /// Byte offset just past the last record read (trailing blank lines follow it).
    end: u64,
}

impl Rows {
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Blank lines skipped so far (the CSV reader ignores them); reported as notes.
    pub fn take_blank_lines(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.blank_lines)
    }

    fn fill_row(&self, record: &csv::ByteRecord, line: u64, first: bool, row: &mut Row) {
        let idx = self.layout.address;
        row.line = line;
        row.raw.clear();
        match record.get(idx) {
            None => {
                row.cell = Err(CellProblem::Missing {
                    fields: record.len(),
                    column: self.layout.address_name.clone(),
                    index: idx,
                })
            }
            Some(bytes) => {
                let bytes = if first { strip_bom(bytes) } else { bytes };
                match std::str::from_utf8(bytes) {
                    Ok(s) => {
                        match &mut row.cell {
                            Ok(cell) => set_text(cell, s),
                            Err(_) => row.cell = Ok(s.to_string()),
                        }
                        row.raw.push_str(s);
                    }
                    Err(e) => {
                        row.cell = Err(CellProblem::InvalidUtf8 {
                            valid_up_to: e.valid_up_to(),
                        });
                        row.raw.push_str(&String::from_utf8_lossy(bytes));
                    }
                }
            }
        }
        let mut n = 0;
        if self.with_extra {
            for (i, v) in record.iter().enumerate().filter(|(i, _)| *i != idx) {
                if n == row.extra.len() {
                    row.extra.push(Default::default());
                }
                let (key, value) = &mut row.extra[n];
                match self.layout.names.get(i) {
                    Some(name) => set_text(key, name),
                    None => *key = format!("column{}", i + 1),
                }
                set_text(value, &String::from_utf8_lossy(v));
                n += 1;
            }
        }
        row.extra.truncate(n);
    }

    /// Reads the next row into `row`, reusing its buffers; `Ok(false)` at
    /// the end of the input.
    pub fn read_into(&mut self, row: &mut Row) -> Result<bool, InputError> {
        if let Some((first, line)) = self.pending.take() {
            self.fill_row(&first, line, true, row);
            return Ok(true);
        }
        let mut record = std::mem::take(&mut self.record);
        let result = match self.reader.read_byte_record(&mut record) {
            Ok(false) => {
                // Blank lines after the last row (once).
                if self.end != u64::MAX {
                    self.lines.line_at(self.end);
                    let (first, line) = self.lines.skip_blank();
                    self.blank_lines.extend(first..line);
                    self.end = u64::MAX;
                }
                Ok(false)
            }
            Ok(true) => {
                self.end = self.reader.position().byte();
                // The reported start includes blank lines the reader skipped.
                let start = record.position().map_or(0, |p| p.byte());
                self.lines.line_at(start);
                let (first, line) = self.lines.skip_blank();
                self.blank_lines.extend(first..line);
                self.next_expected_line = line;
                self.fill_row(&record, line, false, row);
                Ok(true)
            }
            Err(source) => {
                let line = source
                    .position()
                    .map_or(self.next_expected_line, |p| self.lines.line_at(p.byte()));
                Err(InputError::Csv {
                    name: self.name.clone(),
                    line,
                    source,
                })
            }
        };
        self.record = record;
        result
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

impl Iterator for Rows {
    type Item = Result<Row, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut row = Row::default();
        match self.read_into(&mut row) {
            Ok(true) => Some(Ok(row)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Maps byte offsets to 1-based line numbers by counting `\n` in a second,
/// forward-only read of the file. The CSV reader's own line counter does not
/// count the blank lines it skips, and users need the line their editor shows.
struct LineCounter {
    reader: BufReader<File>,
    offset: u64,
    line: u64,
    /// The last byte consumed, to tell a CRLF's LF from a blank line.
    last: u8,
}

impl LineCounter {
    fn open(path: &Path) -> io::Result<LineCounter> {
        Ok(LineCounter {
            reader: BufReader::with_capacity(1 << 16, File::open(path)?),
            offset: 0,
            line: 1,
            last: b'\n',
        })
    }

    /// Step over CR/LF bytes at the current offset. Returns the line the
    /// skip really started on (after the tail of the previous row's CRLF) and
    /// the line reached: the lines between are blank.
    fn skip_blank(&mut self) -> (u64, u64) {
        use std::io::BufRead;
        let mut first = None;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) if !b.is_empty() => b,
                _ => return (first.unwrap_or(self.line), self.line),
            };
            let mut n = 0;
            while n < buf.len() && (buf[n] == b'\n' || buf[n] == b'\r') {
                if buf[n] == b'\n' {
                    self.line += 1;
                }
                if first.is_none() && !(buf[n] == b'\n' && self.last == b'\r') {
                    first = Some(self.line - u64::from(buf[n] == b'\n'));
                }
                self.last = buf[n];
                n += 1;
            }
            self.offset += n as u64;
            let whole = n == buf.len();
            self.reader.consume(n);
            if !whole {
                return (first.unwrap_or(self.line), self.line);
            }
        }
    }

    /// Line of byte `target`; offsets must not go backwards.
    fn line_at(&mut self, target: u64) -> u64 {
        use std::io::BufRead;
        while self.offset < target {
            let buf = match self.reader.fill_buf() {
                Ok(b) if !b.is_empty() => b,
                _ => break,
            };
            let take = buf.len().min((target - self.offset) as usize);
            if take > 0 {
                self.last = buf[take - 1];
            }
            self.line += buf[..take].iter().filter(|&&b| b == b'\n').count() as u64;
            self.offset += take as u64;
            self.reader.consume(take);
        }
        self.line
    }
}

/// Make header names unique (`owner`, `owner_2`, …) so passed-through
/// columns never collide as keys in the reports.
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .map(|name| {
            let mut candidate = name.clone();
            let mut n = 2;
            while !seen.insert(candidate.to_lowercase()) {
                candidate = format!("{name}_{n}");
                n += 1;
            }
            candidate
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reused row must read exactly like a fresh one: ragged widths,
    /// missing and non-UTF-8 cells leave nothing behind for the next row.
    #[test]
    fn read_into_a_reused_row_matches_fresh_rows() {
        let csv = b"name,email,team\na,x@example.com,t1,spill\nb\nc,\xff@example.com,t3\nd,y@example.com,t4\n";
        let source = Source::from_reader("t.csv", &csv[..]).unwrap();
        let opts = InputOptions::default();
        let fresh: Vec<Row> = source
            .rows(&opts, true)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut rows = source.rows(&opts, true).unwrap();
        let mut row = Row::default();
        let mut reused = Vec::new();
        while rows.read_into(&mut row).unwrap() {
            reused.push(format!("{row:?}"));
        }
        let fresh: Vec<String> = fresh.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(reused, fresh);
        assert_eq!(fresh.len(), 4);
        assert!(fresh[0].contains("column4"), "{}", fresh[0]);
    }
}
