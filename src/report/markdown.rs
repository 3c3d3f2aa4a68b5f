//! Markdown report (stub).
use super::Body;
use crate::record::{ReportContext, SenderRecord};
use std::io::{self, Write};
pub(crate) struct MarkdownReport;
impl MarkdownReport {
    pub(crate) fn new(_ctx: &ReportContext) -> MarkdownReport {
        MarkdownReport
    }
}
impl Body for MarkdownReport {
    fn row(&mut self, _out: &mut dyn Write, _r: &SenderRecord) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}
