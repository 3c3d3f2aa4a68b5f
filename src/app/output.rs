//! Standard output for the text report, robust to a closed pipe.

use std::io::{self, Write};

/// Standard output that outlives its reader: once the pipe is closed
/// (`sendercheck … | head`) further text is discarded, so the run still
/// completes, writes its report files and exits with the gate's status.
pub struct StdoutOrSink {
    closed: bool,
}

impl Write for StdoutOrSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match io::stdout().lock().write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match io::stdout().lock().flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

impl StdoutOrSink {
    pub fn new() -> StdoutOrSink {
        StdoutOrSink { closed: false }
    }
}
