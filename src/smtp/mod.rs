//! Blocking SMTP client for sender callouts (DESIGN.md stage 5).
//!
//! Three layers, each testable alone: [`reply`] parses bytes into replies with
//! no I/O, [`command`] builds only the commands a callout may send, and
//! [`session`] drives one TCP connection with bounded time and memory.

pub mod command;
pub mod reply;
pub mod session;

pub use command::{Command, CommandError, HeloName, SmtpPath};
pub use reply::{EnhancedCode, Reply, ReplyError, ReplyLimits, ReplyParser};
pub use session::{Session, SessionConfig, SessionError, TranscriptLine};
