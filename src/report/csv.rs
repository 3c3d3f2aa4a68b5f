//! CSV report (stub).
use super::Body;
use crate::record::SenderRecord;
use std::io::{self, Write};
pub(crate) struct CsvReport;
impl CsvReport {
    pub(crate) fn new() -> CsvReport {
        CsvReport
    }
}
impl Body for CsvReport {
    fn row(&mut self, _out: &mut dyn Write, _r: &SenderRecord) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}
