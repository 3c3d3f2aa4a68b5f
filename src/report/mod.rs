//! Report formats. Each format formats verdict data only; rows are streamed
//! so a million-row run never holds its results in memory.
//!
//! File reports are written atomically: bytes go to a temporary file in the
//! target directory and are renamed into place by `finish`. A run that dies
//! (or a writer that is dropped) leaves yesterday's report intact rather than
//! half of today's, which matters for cron jobs and CI artefacts that are read
//! by other tools.

use crate::fix::{FixError, FixWriter};
use crate::record::{ReportContext, SenderRecord};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

mod csv;
mod html;
mod json;
mod junit;
mod markdown;
mod text;
pub mod util;

/// Buffer size for report files: large enough that a million JSON rows cost
/// a few thousand `write` calls, not millions.
const BUF_SIZE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The reader of the text report went away (`sendercheck … | head`).
    /// Kept apart from `Io` so the binary can exit quietly instead of
    /// printing an error nobody will read.
    #[error("broken pipe")]
    BrokenPipe,
    #[error(transparent)]
    Fix(#[from] FixError),
}

impl ReportError {
    /// Wraps an I/O error with the path it concerns; a broken pipe becomes
    /// [`ReportError::BrokenPipe`] whatever the path.
    pub(crate) fn io(path: &Path, source: io::Error) -> ReportError {
        if source.kind() == io::ErrorKind::BrokenPipe {
            ReportError::BrokenPipe
        } else {
            ReportError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// A report being written: `row` for every input row in line order, then
/// `finish`, which moves the file into place atomically.
pub trait ReportWriter {
    fn row(&mut self, record: &SenderRecord) -> Result<(), ReportError>;
    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>, ReportError>;
}

/// The file formats `--format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Json,
    Csv,
    Markdown,
    Html,
    Junit,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Json,
        Format::Csv,
        Format::Markdown,
        Format::Html,
        Format::Junit,
    ];

    /// Parses a `--format` value (case-insensitive; `md` and `markdown` both work).
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "txt" => Some(Format::Text),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "md" | "markdown" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            "junit" | "xml" => Some(Format::Junit),
            _ => None,
        }
    }

    /// The canonical `--format` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Junit => "junit",
        }
    }

    /// The file a format is written to inside the report directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Text => "report.txt",
            Format::Json => "report.json",
            Format::Csv => "report.csv",
            Format::Markdown => "report.md",
            Format::Html => "report.html",
            Format::Junit => "junit.xml",
        }
    }
}

/// Choices that change what a report says, not just how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `--fail-on unknown`: unknown senders fail the gate, so JUnit reports
    /// them as failures instead of skipped tests.
    pub gate_unknown: bool,
    /// List passing senders in the text report too.
    pub verbose: bool,
}

/// Opens a file report with default [`Options`].
pub fn open(
    format: Format,
    dir: &Path,
    ctx: &ReportContext,
) -> Result<Box<dyn ReportWriter>, ReportError> {
    open_with(format, dir, ctx, Options::default())
}

/// Opens a file report `dir/<format.file_name()>`; nothing appears at that
/// path until `finish` succeeds.
pub fn open_with(
    format: Format,
    dir: &Path,
    ctx: &ReportContext,
    options: Options,
) -> Result<Box<dyn ReportWriter>, ReportError> {
    let out = AtomicFile::create(dir, format.file_name())?;
    Ok(match format {
        Format::Text => Box::new(FileReport::new(
            out,
            text::TextReport::new(ctx, options.verbose),
        )),
        Format::Json => Box::new(FileReport::new(out, json::JsonReport::new(ctx))),
        Format::Csv => Box::new(FileReport::new(out, csv::CsvReport::new())),
        Format::Markdown => Box::new(FileReport::new(out, markdown::MarkdownReport::new(ctx))),
        Format::Html => Box::new(FileReport::new(out, html::HtmlReport::new(ctx, dir)?)),
        Format::Junit => Box::new(FileReport::new(
            out,
            junit::JunitReport::new(ctx, dir, options.gate_unknown)?,
        )),
    })
}

/// The text report to any writer (normally stdout). Nothing is written before
/// the first row or `finish`, so construction cannot fail.
pub fn text_writer(
    out: Box<dyn io::Write>,
    ctx: &ReportContext,
    verbose: bool,
) -> Box<dyn ReportWriter> {
    Box::new(StreamReport {
        out,
        body: text::TextReport::new(ctx, verbose),
    })
}

/// The fix files under `dir/fixes/`, driven like any other report.
pub fn fix_writer(dir: &Path) -> Box<dyn ReportWriter> {
    Box::new(FixReport(FixWriter::new(dir)))
}

struct FixReport(FixWriter);

impl ReportWriter for FixReport {
    fn row(&mut self, record: &SenderRecord) -> Result<(), ReportError> {
        self.0.record(record);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>, ReportError> {
        Ok(self.0.finish()?)
    }
}

/// How one format turns rows into bytes; the framing (files, stdout,
/// atomic rename, error mapping) is shared.
pub(crate) trait Body {
    fn row(&mut self, out: &mut dyn Write, record: &SenderRecord) -> io::Result<()>;
    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()>;
}

struct FileReport<B: Body> {
    out: AtomicFile,
    body: B,
}

impl<B: Body> FileReport<B> {
    fn new(out: AtomicFile, body: B) -> Self {
        FileReport { out, body }
    }
}

impl<B: Body> ReportWriter for FileReport<B> {
    fn row(&mut self, record: &SenderRecord) -> Result<(), ReportError> {
        let path = self.out.path.clone();
        self.body
            .row(&mut self.out.writer, record)
            .map_err(|e| ReportError::io(&path, e))
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<PathBuf>, ReportError> {
        let path = self.out.path.clone();
        self.body
            .finish(&mut self.out.writer)
            .map_err(|e| ReportError::io(&path, e))?;
        Ok(vec![self.out.persist()?])
    }
}

struct StreamReport<B: Body> {
    out: Box<dyn Write>,
    body: B,
}

impl<B: Body> ReportWriter for StreamReport<B> {
    fn row(&mut self, record: &SenderRecord) -> Result<(), ReportError> {
        self.body
            .row(&mut self.out, record)
            .map_err(|e| ReportError::io(Path::new("<stdout>"), e))
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<PathBuf>, ReportError> {
        self.body
            .finish(&mut self.out)
            .and_then(|()| self.out.flush())
            .map_err(|e| ReportError::io(Path::new("<stdout>"), e))?;
        Ok(Vec::new())
    }
}

/// A file that appears at its final path only when `persist` is called.
/// Dropping it deletes the temporary file (NamedTempFile's Drop).
pub(crate) struct AtomicFile {
    path: PathBuf,
    writer: BufWriter<NamedTempFile>,
}

impl AtomicFile {
    pub(crate) fn create(dir: &Path, name: &str) -> Result<AtomicFile, ReportError> {
        let path = dir.join(name);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| ReportError::io(&path, e))?;
        Ok(AtomicFile {
            path,
            writer: BufWriter::with_capacity(BUF_SIZE, tmp),
        })
    }

    pub(crate) fn persist(self) -> Result<PathBuf, ReportError> {
        let path = self.path;
        let tmp = self
            .writer
            .into_inner()
            .map_err(|e| ReportError::io(&path, e.into_error()))?;
        // Data on disk before the rename, so a crash cannot leave an empty
        // file under the final name.
        tmp.as_file()
            .sync_all()
            .map_err(|e| ReportError::io(&path, e))?;
        tmp.persist(&path)
            .map_err(|e| ReportError::io(&path, e.error))?;
        Ok(path)
    }
}

/// An anonymous scratch file for formats whose layout puts end-of-run
/// figures (charts, counts) before the rows: rows are rendered here first and
/// copied after the header, so memory stays flat however many rows there are.
pub(crate) struct Spool {
    writer: BufWriter<File>,
}

impl Spool {
    pub(crate) fn new(dir: &Path) -> Result<Spool, ReportError> {
        let file = tempfile::tempfile_in(dir).map_err(|e| ReportError::io(dir, e))?;
        Ok(Spool {
            writer: BufWriter::with_capacity(BUF_SIZE, file),
        })
    }

    pub(crate) fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.writer
    }

    /// Copies everything spooled so far to `out`.
    pub(crate) fn copy_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        self.writer.flush()?;
        let file = self.writer.get_mut();
        file.seek(SeekFrom::Start(0))?;
        io::copy(&mut io::BufReader::with_capacity(BUF_SIZE, &*file), out)?;
        Ok(())
    }
}
