//! The binary: parse arguments, run the pipeline, choose the exit status.

mod progress;

use anyhow::{bail, Context, Result};
use clap::Parser;
use sendercheck::audit::{self, AuditOptions, StopAfter};
use sendercheck::cache::{StateOptions, Store, Ttls};
use sendercheck::callout::CalloutOptions;
use sendercheck::cli::{
    parse_duration, Cli, Command, CommonArgs, ConfigFile, FailOn, StopAfterArg,
};
use sendercheck::dns::DnsOptions;
use sendercheck::input::{ColumnChoice, InputOptions, Source};
use sendercheck::plan::Shard;
use sendercheck::record::ReportContext;
use sendercheck::report::{self, Format, ReportError, ReportWriter};
use sendercheck::smtp::{HeloName, SmtpPath};
use sendercheck::verdict::Class;
use std::collections::HashSet;
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Exit statuses (documented in `--help` and the README).
const EXIT_OK: u8 = 0;
const EXIT_GATE: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
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

/// Standard output that outlives its reader: once the pipe is closed
/// (`sendercheck … | head`) further text is discarded, so the run still
/// completes, writes its report files and exits with the gate's status.
struct StdoutOrSink {
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

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Audit(args) => {
            let config = ConfigFile::load(args.common.config.as_deref())?;
            let mut settings = Settings::resolve(&args.common, &config)?;
            settings.options.input = InputOptions {
                column: args
                    .column
                    .as_deref()
                    .or(config.column.as_deref())
                    .map_or(ColumnChoice::Auto, ColumnChoice::parse),
                has_header: !(args.no_header || config.no_header.unwrap_or(false)),
                delimiter: b',',
            };
            settings.options.state = state_options(&args.common, &config, &settings.output, true)?;
            let source = Source::open(&args.input)?;
            settings.options.stop = Some(stop_on_signals()?);
            execute(&source, &settings, false)
        }
        Command::Check(args) => {
            let config = ConfigFile::load(args.common.config.as_deref())?;
            let mut settings = Settings::resolve(&args.common, &config)?;
            settings.options.state = state_options(&args.common, &config, &settings.output, false)?;
            settings.options.stop = Some(stop_on_signals()?);
            let mut csv = String::from("email\n");
            for a in &args.addresses {
                if a.contains(['\r', '\n', '"']) {
                    bail!("address {a:?} contains a line break or quote; give one plain address per argument");
                }
                csv.push_str(&format!("\"{a}\"\n"));
            }
            let source = Source::from_reader("<command line>", csv.as_bytes())?;
            execute(&source, &settings, true)
        }
        Command::Demo(args) => demo(args),
        Command::History(args) => history(args),
    }
}

/// SIGINT and SIGTERM set the returned flag: the run stops starting new
/// work, finishes the sessions in flight and writes what it knows. A second
/// signal exits at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))
            .context("cannot install a signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .context("cannot install a signal handler")?;
    }
    Ok(flag)
}

/// The state store settings: `--state`, else `sendercheck.db` in the output
/// directory when `default_on`; none with `--no-state`.
fn state_options(
    a: &CommonArgs,
    c: &ConfigFile,
    output: &std::path::Path,
    default_on: bool,
) -> Result<Option<StateOptions>> {
    if a.no_state || (a.state.is_none() && c.no_state.unwrap_or(false)) {
        return Ok(None);
    }
    let path = match (&a.state, &c.state) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) if default_on => p.clone(),
        (None, _) if default_on => output.join("sendercheck.db"),
        _ => return Ok(None),
    };
    let defaults = Ttls::default();
    let ttl =
        |flag: &Option<String>, conf: &Option<String>, default: std::time::Duration, name: &str| {
            match flag.as_deref().or(conf.as_deref()) {
                Some(text) => parse_duration(text).map_err(|e| anyhow::anyhow!("--{name}: {e}")),
                None => Ok(default),
            }
        };
    let ttls = Ttls {
        pass: ttl(
            &a.cache_pass_ttl,
            &c.cache_pass_ttl,
            defaults.pass,
            "cache-pass-ttl",
        )?,
        fail: ttl(
            &a.cache_fail_ttl,
            &c.cache_fail_ttl,
            defaults.fail,
            "cache-fail-ttl",
        )?,
        null_sender: ttl(
            &a.cache_null_sender_ttl,
            &c.cache_null_sender_ttl,
            defaults.null_sender,
            "cache-null-sender-ttl",
        )?,
        route: ttl(
            &a.cache_route_ttl,
            &c.cache_route_ttl,
            defaults.route,
            "cache-route-ttl",
        )?,
    };
    // Tests fix the clock through the environment (seconds since the epoch).
    let now = match std::env::var("SENDERCHECK_NOW") {
        Ok(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            anyhow::anyhow!("SENDERCHECK_NOW={v:?}: expected seconds since the epoch")
        })?),
        Err(_) => None,
    };
    Ok(Some(StateOptions {
        path,
        ttls,
        refresh: a.refresh,
        now,
    }))
}

/// `history`: runs, or one sender over time, from the state store.
fn history(args: sendercheck::cli::HistoryArgs) -> Result<u8> {
    let config = ConfigFile::load(args.config.as_deref())?;
    let path = args
        .state
        .clone()
        .or(config.state.clone())
        .unwrap_or_else(|| {
            args.output
                .clone()
                .or(config.output.clone())
                .unwrap_or_else(|| PathBuf::from("reports"))
                .join("sendercheck.db")
        });
    let store = Store::open_read_only(&path)?;
    let date = |t: i64| sendercheck::record::rfc3339(t);
    let mut out = String::new();
    match &args.sender {
        None => {
            let runs = store.runs(args.limit)?;
            out.push_str(&format!("runs in {} (newest first)\n", path.display()));
            out.push_str(&format!(
                "{:>5}  {:<20}  {:<10}  {:>8}  {:>6}  {:>6}  {:>7}  {:>7}  input\n",
                "run", "started", "status", "rows", "pass", "fail", "unknown", "cached"
            ));
            for r in runs {
                let status = match (r.finished_at, r.complete) {
                    (None, _) => "unfinished",
                    (Some(_), true) => "complete",
                    (Some(_), false) => "incomplete",
                };
                out.push_str(&format!(
                    "{:>5}  {:<20}  {:<10}  {:>8}  {:>6}  {:>6}  {:>7}  {:>7}  {}\n",
                    r.id,
                    date(r.started_at),
                    status,
                    r.rows,
                    r.pass,
                    r.fail,
                    r.unknown,
                    r.cached,
                    r.input
                ));
            }
        }
        Some(sender) => {
            let key = match sendercheck::address::parse_cell(sender) {
                Ok(p) => p.mailbox.normalized(),
                Err(_) => sender.trim().to_string(),
            };
            let rows = store.sender_history(&key)?;
            if rows.is_empty() {
                out.push_str(&format!(
                    "{key}: no run of {} has checked it\n",
                    path.display()
                ));
            } else {
                out.push_str(&format!("{key}: verdicts over time (oldest first)\n"));
                for r in rows {
                    out.push_str(&format!(
                        "run {:>4}  {}  {:<22} {}{}\n",
                        r.run_id,
                        date(r.run_started_at),
                        r.verdict.code(),
                        if r.cached { "[cached] " } else { "" },
                        r.reason
                    ));
                }
            }
        }
    }
    let mut stdout = io::stdout().lock();
    match stdout.write_all(out.as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(EXIT_OK)
}

/// Everything resolved from flags, config file and defaults.
struct Settings {
    options: AuditOptions,
    formats: Vec<Format>,
    output: PathBuf,
    fail_on: FailOn,
    quiet: bool,
    verbose: u8,
}

fn dur(
    flag: &Option<String>,
    conf: &Option<String>,
    default: &str,
    name: &str,
) -> Result<std::time::Duration> {
    let text = flag.as_deref().or(conf.as_deref()).unwrap_or(default);
    parse_duration(text).map_err(|e| anyhow::anyhow!("--{name}: {e}"))
}

/// The machine's fully qualified name: the kernel's host name, or, when that
/// has no dot, the first dotted alias /etc/hosts gives it (as `hostname -f`).
fn default_helo() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name = name.trim().to_string();
    if name.is_empty() {
        return "localhost".to_string();
    }
    if name.contains('.') {
        return name;
    }
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>())
        .filter(|names| names.iter().any(|n| n.eq_ignore_ascii_case(&name)))
        .flat_map(|names| names.into_iter().map(str::to_string).collect::<Vec<_>>())
        .find(|n| {
            n.contains('.')
                && n.to_lowercase()
                    .starts_with(&format!("{}.", name.to_lowercase()))
        })
        .unwrap_or(name)
}

impl Settings {
    fn resolve(a: &CommonArgs, c: &ConfigFile) -> Result<Settings> {
        let stop_after = if a.dry_run {
            Some(StopAfterArg::Dns)
        } else {
            a.stop_after.or(c.stop_after)
        }
        .map(|s| match s {
            StopAfterArg::Syntax => StopAfter::Syntax,
            StopAfterArg::Dns => StopAfter::Dns,
        });
        let mut nameservers = Vec::new();
        let ns_list = if a.nameserver.is_empty() {
            c.nameserver.clone().unwrap_or_default()
        } else {
            a.nameserver.clone()
        };
        for ns in &ns_list {
            let sa = ns
                .parse::<SocketAddr>()
                .or_else(|_| {
                    ns.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| anyhow::anyhow!("--nameserver '{ns}': expected IP or IP:PORT"))?;
            nameservers.push(sa);
        }
        let helo_text = a
            .helo
            .clone()
            .or(c.helo.clone())
            .unwrap_or_else(default_helo);
        let helo = HeloName::new(&helo_text).with_context(|| format!("--helo '{helo_text}'"))?;
        let probe_sender = match a.probe_sender.as_deref().or(c.probe_sender.as_deref()) {
            Some(p) => Some(SmtpPath::parse(p).with_context(|| format!("--probe-sender '{p}'"))?),
            None => None,
        };
        let shard = match a.shard.as_deref().or(c.shard.as_deref()) {
            Some(s) => Some(Shard::parse(s)?),
            None => None,
        };
        let per_host_rate = a.per_host_rate.or(c.per_host_rate).unwrap_or(5.0);
        if !(per_host_rate > 0.0 && per_host_rate.is_finite()) {
            bail!("--per-host-rate must be a positive number of RCPT commands per second");
        }
        let positive = |v: Option<usize>, name: &str, default: usize| -> Result<usize> {
            let v = v.unwrap_or(default);
            if v == 0 {
                bail!("--{name} must be at least 1");
            }
            Ok(v)
        };
        let callout = CalloutOptions {
            port: a.smtp_port.or(c.smtp_port).unwrap_or(25),
            helo,
            probe_sender,
            connect_timeout: dur(
                &a.connect_timeout,
                &c.connect_timeout,
                "30s",
                "connect-timeout",
            )?,
            reply_timeout: dur(&a.timeout, &c.timeout, "30s", "timeout")?,
            session_deadline: dur(
                &a.session_timeout,
                &c.session_timeout,
                "300s",
                "session-timeout",
            )?,
            concurrency: positive(a.concurrency.or(c.concurrency), "concurrency", 32)?,
            per_host_rate,
            per_host_connections: positive(
                a.per_host_connections.or(c.per_host_connections),
                "per-host-connections",
                2,
            )?,
            rcpt_per_transaction: positive(
                a.rcpt_per_transaction.or(c.rcpt_per_transaction),
                "rcpt-per-transaction",
                10,
            )?,
            greylist_wait: dur(&a.greylist_wait, &c.greylist_wait, "300s", "greylist-wait")?,
            random_probe: !a.no_random_probe && c.random_probe.unwrap_or(true),
            postmaster_probe: !a.no_postmaster_probe && c.postmaster_probe.unwrap_or(true),
        };
        let dns = DnsOptions {
            nameservers,
            timeout: dur(&a.dns_timeout, &c.dns_timeout, "5s", "dns-timeout")?,
            attempts: positive(a.dns_attempts.or(c.dns_attempts), "dns-attempts", 2)?,
            concurrency: positive(
                a.dns_concurrency.or(c.dns_concurrency),
                "dns-concurrency",
                64,
            )?,
            allow_private: a.allow_private_mx || c.allow_private_mx.unwrap_or(false),
        };
        let lower_set = |flag: &Vec<String>, conf: &Option<Vec<String>>| -> HashSet<String> {
            flag.iter()
                .chain(conf.iter().flatten())
                .map(|s| s.trim().trim_end_matches('.').to_lowercase())
                .collect()
        };
        let mut exclude_domains = HashSet::new();
        for d in lower_set(&a.exclude_domain, &c.exclude_domain) {
            let ascii = idna::domain_to_ascii(&d)
                .map_err(|_| anyhow::anyhow!("--exclude-domain '{d}' is not a domain name"))?;
            exclude_domains.insert(ascii);
        }
        let exclude_addresses = lower_set(&a.exclude_address, &c.exclude_address);
        let format_names = if a.format.is_empty() {
            c.format.clone().unwrap_or_default()
        } else {
            a.format.clone()
        };
        let mut formats = Vec::new();
        for name in &format_names {
            let f = Format::parse(name).ok_or_else(|| {
                anyhow::anyhow!("--format '{name}': choose from text, json, csv, md, html, junit")
            })?;
            if f != Format::Text && !formats.contains(&f) {
                formats.push(f);
            }
        }
        let output = a.output.clone().or(c.output.clone());
        if output.is_some() && formats.is_empty() && format_names.is_empty() {
            formats.push(Format::Json);
        }
        Ok(Settings {
            options: AuditOptions {
                input: InputOptions::default(),
                stop_after,
                dns,
                callout,
                shard,
                exclude_domains,
                exclude_addresses,
                state: None,
                stop: None,
            },
            formats,
            output: output.unwrap_or_else(|| PathBuf::from("reports")),
            fail_on: a.fail_on.or(c.fail_on).unwrap_or(FailOn::Fail),
            quiet: a.quiet || c.quiet.unwrap_or(false),
            verbose: a.verbose,
        })
    }
}

fn execute(source: &Source, s: &Settings, show_transcripts: bool) -> Result<u8> {
    let helo = s.options.callout.helo.as_str();
    if !s.quiet && s.options.stop_after.is_none() && !helo.contains('.') && !helo.starts_with('[') {
        eprintln!(
            "sendercheck: warning: HELO name '{helo}' is not a fully qualified domain name; many receivers refuse such clients. Set --helo to a name whose PTR matches this host's IP."
        );
    }
    let observer = progress::Bars::new(!s.quiet && io::stderr().is_terminal(), !s.quiet, s.verbose);
    let mut written = Vec::new();
    let formats = s.formats.clone();
    let output = s.output.clone();
    let opts = report::Options {
        gate_unknown: s.fail_on == FailOn::Unknown,
        verbose: s.verbose > 0 || show_transcripts,
    };
    let mut open = |ctx: &ReportContext| -> Result<Vec<Box<dyn ReportWriter>>, ReportError> {
        let mut writers: Vec<Box<dyn ReportWriter>> = Vec::new();
        let stdout: Box<dyn Write> = Box::new(io::BufWriter::new(StdoutOrSink { closed: false }));
        writers.push(report::text_writer(stdout, ctx, opts.verbose));
        if !formats.is_empty() {
            std::fs::create_dir_all(&output).map_err(|source| ReportError::Io {
                path: output.clone(),
                source,
            })?;
            for f in &formats {
                writers.push(report::open_with(*f, &output, ctx, opts)?);
            }
            writers.push(report::fix_writer(&output));
        }
        if show_transcripts {
            writers.push(Box::new(TranscriptWriter(StdoutOrSink { closed: false })));
        }
        Ok(writers)
    };
    let outcome = audit::audit(source, &s.options, &observer, &mut open)?;
    observer.finish();
    if outcome.interrupted {
        eprintln!(
            "sendercheck: interrupted: reports hold what was decided (\"complete\": false){}",
            if s.options.state.is_some() {
                "; run again with the same --state to resume"
            } else {
                ""
            }
        );
    }
    written.extend(s.formats.iter().map(|f| s.output.join(f.file_name())));
    if !s.quiet && !written.is_empty() {
        let list: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "sendercheck: wrote {} and fixes in {}",
            list.join(", "),
            s.output.join("fixes").display()
        );
    }
    if outcome.interrupted {
        return Ok(EXIT_ERROR);
    }
    let summary = &outcome.context.summary;
    let fails = summary.class_count(Class::Fail);
    let unknowns = summary.class_count(Class::Unknown);
    Ok(match s.fail_on {
        FailOn::Never => EXIT_OK,
        FailOn::Fail if fails > 0 => EXIT_GATE,
        FailOn::Unknown if fails + unknowns > 0 => EXIT_GATE,
        _ => EXIT_OK,
    })
}

/// `check`: the SMTP dialogue of each sender, as at a telnet prompt.
struct TranscriptWriter(StdoutOrSink);

impl ReportWriter for TranscriptWriter {
    fn row(&mut self, record: &sendercheck::record::SenderRecord) -> Result<(), ReportError> {
        let name = record.address.as_deref().unwrap_or(&record.input);
        let mut text = format!("\n== {name}: {} ({})\n", record.verdict, record.reason);
        for line in &record.transcript {
            text.push_str("   ");
            text.push_str(
                &line
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect::<String>(),
            );
            text.push('\n');
        }
        self.0
            .write_all(text.as_bytes())
            .and_then(|()| self.0.flush())
            .map_err(|source| ReportError::Io {
                path: PathBuf::from("<stdout>"),
                source,
            })
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>, ReportError> {
        Ok(Vec::new())
    }
}

/// The demo's sender list, built in so `demo` works from any directory.
const DEMO_SENDERS: &str = include_str!("../samples/senders.csv");

/// `demo`: the offline mail world on loopback, audited like a real list.
fn demo(args: sendercheck::cli::DemoArgs) -> Result<u8> {
    use sendercheck::world::{World, WorldSpec, DEMO_TOML};
    let spec_text = if args.world.exists() {
        std::fs::read_to_string(&args.world)
            .with_context(|| format!("cannot read {}", args.world.display()))?
    } else {
        DEMO_TOML.to_string()
    };
    let spec =
        WorldSpec::from_toml(&spec_text).with_context(|| format!("{}", args.world.display()))?;
    let world = World::start(&spec).context("cannot start the demo mail world on loopback")?;
    let source = if args.senders.exists() {
        Source::open(&args.senders)?
    } else {
        Source::from_reader("samples/senders.csv (built in)", DEMO_SENDERS.as_bytes())?
    };
    if !args.quiet {
        eprintln!(
            "sendercheck demo: DNS on {} and {} SMTP servers on 127.0.0.x port {} (loopback only)",
            world.nameserver(),
            world.servers.len(),
            world.smtp_port()
        );
    }
    let common = CommonArgs {
        nameserver: vec![world.nameserver().to_string()],
        smtp_port: Some(world.smtp_port()),
        allow_private_mx: true,
        probe_sender: Some("probe@sendercheck-demo.test".to_string()),
        helo: Some("prober.sendercheck-demo.test".to_string()),
        timeout: Some("3s".to_string()),
        connect_timeout: Some("3s".to_string()),
        dns_timeout: Some("1s".to_string()),
        greylist_wait: Some("2s".to_string()),
        per_host_rate: Some(50.0),
        format: ["json", "csv", "md", "html", "junit"]
            .map(String::from)
            .to_vec(),
        output: Some(args.output.clone()),
        fail_on: Some(args.fail_on),
        quiet: args.quiet,
        // Each demo starts a fresh world on new ports: remembering the last
        // demo's answers would only hide what the world does.
        no_state: true,
        ..CommonArgs::default()
    };
    let mut settings = Settings::resolve(&common, &ConfigFile::default())?;
    settings.options.input = InputOptions::default();
    let code = execute(&source, &settings, false)?;
    drop(world);
    Ok(code)
}
