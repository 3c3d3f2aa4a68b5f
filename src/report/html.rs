//! HTML report (stub).
use super::{Body, ReportError};
use crate::record::{ReportContext, SenderRecord};
use std::io::{self, Write};
use std::path::Path;
pub(crate) struct HtmlReport;
impl HtmlReport {
    pub(crate) fn new(_ctx: &ReportContext, _dir: &Path) -> Result<HtmlReport, ReportError> {
        Ok(HtmlReport)
    }
}
impl Body for HtmlReport {
    fn row(&mut self, _out: &mut dyn Write, _r: &SenderRecord) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}
