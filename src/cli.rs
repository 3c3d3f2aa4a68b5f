//! Command-line arguments (clap derive) and the optional TOML configuration
//! file merged under them. Only the binary uses this module's results to
//! decide exit codes; everything here is plain parsing.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

const AFTER_HELP: &str = "\
EXIT STATUS:
  0  no sender fails (with --fail-on unknown: no sender fails or is unknown)
  1  at least one sender fails the gate
  2  usage, input or environment error (unreadable input, missing address column,
     bad configuration, state store in use by another run); no verdict was reached;
     or the run was interrupted (SIGINT/SIGTERM): sessions in flight finish, the
     reports of what is known are written with \"complete\": false (senders not
     checked are skipped, reason \"interrupted\"), and the next run with the same
     --state resumes where it stopped

Verdicts: receivable (pass); unreceivable, null-sender-rejected, null-mx, no-domain,
no-mail-host, invalid-address (fail); tempfail, unreachable, probe-blocked,
dns-error, skipped (unknown).";

/// Audit newsletter envelope-senders the way receiving mail servers verify them.
///
/// Receivers such as Exim on cPanel hosts verify a message's envelope sender with
/// a callout: they ask the sender domain's MX `MAIL FROM:<>` / `RCPT TO:<sender>`.
/// sendercheck asks the same questions (never DATA) for every sender of a CSV list,
/// says which would fail and why, and writes the fix.
#[derive(Debug, Parser)]
#[command(name = "sendercheck", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit every sender of a CSV file (or `-` for standard input).
    #[command(after_help = AFTER_HELP)]
    Audit(AuditArgs),
    /// Check a few addresses given on the command line and show the SMTP dialogue.
    #[command(after_help = AFTER_HELP)]
    Check(CheckArgs),
    /// Run a full audit of samples/senders.csv against a built-in mail world on
    /// loopback (no network needed); reports go to reports/demo/.
    Demo(DemoArgs),
    /// List past runs recorded in the state store, or (--sender) one sender's
    /// verdicts over time.
    #[command(
        after_help = "EXIT STATUS:\n  0  history shown\n  2  no state store, or it cannot be read"
    )]
    History(HistoryArgs),
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The state store. Default: sendercheck.db in the output directory.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Output directory whose sendercheck.db to read. Default: reports/
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Show this sender's verdicts over time instead of the runs.
    #[arg(long, value_name = "ADDRESS")]
    pub sender: Option<String>,

    /// Most recent runs to list.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,

    /// Configuration file (TOML), for its `state` and `output` keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// CSV file with one sender per row; `-` reads standard input.
    pub input: PathBuf,

    /// Address column: a header name or a 1-based number. Default: the first
    /// header named email, sender, envelope_sender, from, return_path or address.
    #[arg(long, value_name = "NAME|INDEX")]
    pub column: Option<String>,

    /// The file has no header row (the address is column 1 unless --column N).
    #[arg(long)]
    pub no_header: bool,

    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Addresses to check; reports number them 1, 2, … in the order given
    /// (the LINE column).
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,

    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// World description (DNS zone and scripted SMTP servers).
    #[arg(long, default_value = "samples/world.toml")]
    pub world: PathBuf,
    /// Sender list to audit against the world.
    #[arg(long, default_value = "samples/senders.csv")]
    pub senders: PathBuf,
    /// Report directory.
    #[arg(short, long, default_value = "reports/demo")]
    pub output: PathBuf,
    /// Failing senders fail the demo's exit status like a real run.
    #[arg(long, value_enum, default_value_t = FailOn::Fail)]
    pub fail_on: FailOn,
    /// Less output (no progress bars).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopAfterArg {
    /// After address syntax checks (no network at all).
    Syntax,
    /// After DNS routing and planning (no SMTP).
    Dns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    /// Exit 1 when a sender fails.
    Fail,
    /// Exit 1 when a sender fails or its result is unknown.
    Unknown,
    /// Always exit 0 once the run completes.
    Never,
}

/// Options shared by `audit` and `check`. Every one can also be set in the
/// configuration file (same name, underscores for dashes); the command line wins.
#[derive(Debug, Args, Default)]
pub struct CommonArgs {
    /// Configuration file (TOML). Default: ./sendercheck.toml when present.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Stop after a stage: `syntax` (no network) or `dns` (no SMTP).
    #[arg(long, value_enum, value_name = "STAGE")]
    pub stop_after: Option<StopAfterArg>,

    /// Same as --stop-after dns: show the MX groups that would be probed.
    #[arg(long)]
    pub dry_run: bool,

    /// Report files to write, comma-separated: json, csv, md, html, junit
    /// (text always goes to standard output).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub format: Vec<String>,

    /// Directory for report files and fixes. Default: reports/
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// When the exit status is 1: on failing senders (default), also on
    /// unknown results, or never.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,

    /// DNS server to ask instead of the system's (repeatable), IP or IP:PORT.
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Vec<String>,

    /// Per-query DNS timeout (e.g. 5s, 500ms). Default: 5s.
    #[arg(long, value_name = "DURATION")]
    pub dns_timeout: Option<String>,

    /// Tries per DNS query. Default: 2.
    #[arg(long, value_name = "N")]
    pub dns_attempts: Option<usize>,

    /// DNS lookups in flight at once. Default: 64.
    #[arg(long, value_name = "N")]
    pub dns_concurrency: Option<usize>,

    /// Allow MX hosts on private and loopback addresses (refused by default so
    /// a sender list cannot turn the tool into an internal port scanner).
    #[arg(long)]
    pub allow_private_mx: bool,

    /// Probe only the MX groups of shard K of N (stable across runs and machines).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,

    /// SMTP port of the MX hosts. Default: 25.
    #[arg(long, value_name = "PORT")]
    pub smtp_port: Option<u16>,

    /// Non-null MAIL FROM used when an MX refuses MAIL FROM:<>, to tell a
    /// refused null sender from a refused mailbox. Use an address you own.
    #[arg(long, value_name = "ADDRESS")]
    pub probe_sender: Option<String>,

    /// Name sent in EHLO/HELO. Default: this machine's host name. Use a
    /// fully qualified name whose PTR matches your IP, or receivers may refuse you.
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,

    /// SMTP sessions running at once (worker threads). Default: 32.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// RCPT commands per second per MX host. Default: 5.
    #[arg(long, value_name = "RATE")]
    pub per_host_rate: Option<f64>,

    /// Simultaneous sessions per MX host. Default: 2.
    #[arg(long, value_name = "N")]
    pub per_host_connections: Option<usize>,

    /// RCPT commands per SMTP transaction (RSET between). Default: 10.
    #[arg(long, value_name = "N")]
    pub rcpt_per_transaction: Option<usize>,

    /// Limit on each whole server reply, like Exim's callout timeout. Default: 30s.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// TCP connect timeout. Default: 30s.
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<String>,

    /// Limit on one whole SMTP session. Default: 300s.
    #[arg(long, value_name = "DURATION")]
    pub session_timeout: Option<String>,

    /// Wait before re-probing senders that got only temporary (4xx) answers,
    /// e.g. greylisting; 0 disables the re-probe. Default: 300s.
    #[arg(long, value_name = "DURATION")]
    pub greylist_wait: Option<String>,

    /// Do not probe a random local part per domain (catch-all detection).
    #[arg(long)]
    pub no_random_probe: bool,

    /// Do not probe postmaster@domain (RFC 5321 §4.5.1).
    #[arg(long)]
    pub no_postmaster_probe: bool,

    /// Report these domains as skipped (repeatable).
    #[arg(long, value_name = "DOMAIN")]
    pub exclude_domain: Vec<String>,

    /// Report these addresses as skipped (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub exclude_address: Vec<String>,

    /// State store (SQLite): callout cache, run history, resume after an
    /// interruption. Default: sendercheck.db in the output directory (for
    /// `check`: none unless given).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// No state store: no cache, no history, no "changes since the last run".
    #[arg(long, conflicts_with = "state")]
    pub no_state: bool,

    /// Ignore cached results and probe every sender again (results are
    /// still stored).
    #[arg(long)]
    pub refresh: bool,

    /// How long an accepted sender stays cached. Default: 24h (Exim's).
    #[arg(long, value_name = "DURATION")]
    pub cache_pass_ttl: Option<String>,

    /// How long a refused sender stays cached. Default: 2h (Exim's).
    #[arg(long, value_name = "DURATION")]
    pub cache_fail_ttl: Option<String>,

    /// How long a domain whose MX refuses MAIL FROM:<> stays cached (for
    /// every sender of the domain). Default: 3h (Exim's).
    #[arg(long, value_name = "DURATION")]
    pub cache_null_sender_ttl: Option<String>,

    /// How long a domain's route (its MX hosts and their addresses) and the
    /// results decided by DNS alone (null MX, no such domain, no mail host)
    /// stay cached. Default: 1h.
    #[arg(long, value_name = "DURATION")]
    pub cache_route_ttl: Option<String>,

    /// No progress bars or notes on standard error.
    #[arg(short, long)]
    pub quiet: bool,

    /// More detail: -v lists passing senders too, -vv logs each SMTP session.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The configuration file: a key for every option of [`CommonArgs`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub column: Option<String>,
    pub no_header: Option<bool>,
    pub stop_after: Option<StopAfterArg>,
    pub format: Option<Vec<String>>,
    pub output: Option<PathBuf>,
    pub fail_on: Option<FailOn>,
    pub nameserver: Option<Vec<String>>,
    pub dns_timeout: Option<String>,
    pub dns_attempts: Option<usize>,
    pub dns_concurrency: Option<usize>,
    pub allow_private_mx: Option<bool>,
    pub shard: Option<String>,
    pub smtp_port: Option<u16>,
    pub probe_sender: Option<String>,
    pub helo: Option<String>,
    pub concurrency: Option<usize>,
    pub per_host_rate: Option<f64>,
    pub per_host_connections: Option<usize>,
    pub rcpt_per_transaction: Option<usize>,
    pub timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub session_timeout: Option<String>,
    pub greylist_wait: Option<String>,
    pub random_probe: Option<bool>,
    pub postmaster_probe: Option<bool>,
    pub exclude_domain: Option<Vec<String>>,
    pub exclude_address: Option<Vec<String>>,
    pub quiet: Option<bool>,
    pub state: Option<PathBuf>,
    pub no_state: Option<bool>,
    pub cache_pass_ttl: Option<String>,
    pub cache_fail_ttl: Option<String>,
    pub cache_null_sender_ttl: Option<String>,
    pub cache_route_ttl: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl ConfigFile {
    /// Load `--config FILE`, else `./sendercheck.toml` when it exists.
    pub fn load(explicit: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from("sendercheck.toml");
                if !p.exists() {
                    return Ok(ConfigFile::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.message().replace('\n', " "),
        })
    }
}

/// Parse `30`, `30s`, `500ms`, `5m`, `1h` into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (use e.g. 30s, 500ms, 5m)"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => {
            return Err(format!(
                "'{s}': unknown unit '{other}' (use ms, s, m, h or d)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{s}' is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn unknown_config_keys_are_named() {
        let err = toml::from_str::<ConfigFile>("per_host_rat = 3").unwrap_err();
        assert!(err.message().contains("per_host_rat"), "{}", err.message());
    }
}

#[cfg(test)]
mod sample_config {
    use super::*;

    /// The documented example must stay in step with the keys we accept.
    #[test]
    fn sample_configuration_parses() {
        let text = include_str!("../samples/sendercheck.toml");
        let c: ConfigFile = toml::from_str(text).expect("samples/sendercheck.toml parses");
        assert_eq!(c.per_host_rate, Some(5.0));
        assert_eq!(c.cache_route_ttl.as_deref(), Some("1h"));
        assert_eq!(c.fail_on, Some(FailOn::Fail));
    }
}
