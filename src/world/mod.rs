//! The offline mail world: an authoritative DNS server and scripted SMTP servers
//! on loopback, so tests and `sendercheck demo` can play every behaviour the
//! auditor must classify without sending a packet off the machine.
//!
//! This module knows nothing of the rest of the crate; it only serves.

pub mod dns;
mod net;
pub mod smtp;

pub use dns::{DnsServer, Transport, Zone};
pub use smtp::{unused_port_free_ip, Greeting, Hostile, NullSender, Script, ServerLog, SmtpServer};
