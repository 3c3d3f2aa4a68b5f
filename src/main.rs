//! The binary: parse arguments, run the command, choose the exit status.
//! Everything about the terminal lives in `app`; the pipeline in the library.

mod app;

use clap::Parser;
use sendercheck::audit;
use sendercheck::cli::Cli;
use sendercheck::report::ReportError;
use std::process::ExitCode;

/// Exit statuses (documented in `--help` and the README).
pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_GATE: u8 = 1;
pub(crate) const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match app::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if let Some(ReportError::BrokenPipe) = err.downcast_ref::<ReportError>() {
                return ExitCode::from(EXIT_OK);
            }
            if let Some(audit::AuditError::Report(ReportError::BrokenPipe)) =
                err.downcast_ref::<audit::AuditError>()
            {
                return ExitCode::from(EXIT_OK);
            }
            eprintln!("sendercheck: error: {}", one_line(&err));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The error and its causes on one line. Many of our errors already quote
/// their cause in their own message (`cannot read X: No such file…`), so a
/// cause already said is not repeated.
fn one_line(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !msg.contains(&cause) {
            msg.push_str(": ");
            msg.push_str(&cause);
        }
    }
    msg.replace(['\r', '\n'], " ")
}
