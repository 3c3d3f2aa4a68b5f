//! sendercheck: audit envelope-senders the way receiving mail servers verify them.
//!
//! The pipeline (see DESIGN.md) runs one way: input → address → dns → plan →
//! callout → verdict → report/fix. Each stage owns its types and hands the next
//! one plain data. The library never prints and never exits.

pub mod address;
pub mod audit;
pub mod cache;
pub mod callout;
pub mod cli;
pub mod dns;
pub mod evidence;
pub mod fix;
pub mod input;
mod outcome;
pub mod plan;
pub mod record;
pub mod report;
pub mod smtp;
pub mod verdict;
pub mod world;
