//! The binary's side of the tool: terminal, signals, settings, subcommands.

pub mod commands;
pub mod output;
pub mod progress;
pub mod settings;
