//! Text report (stub).
use super::Body;
use crate::record::{ReportContext, SenderRecord};
use std::io::{self, Write};
pub(crate) struct TextReport;
impl TextReport {
    pub(crate) fn new(_ctx: &ReportContext, _verbose: bool) -> TextReport {
        TextReport
    }
}
impl Body for TextReport {
    fn row(&mut self, _out: &mut dyn Write, _r: &SenderRecord) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}
