//! The subcommands: what each one runs and which exit status it returns.

use anyhow::{bail, Context, Result};
use sendercheck::audit::{self, StopAfter};
use sendercheck::cache::Store;
use sendercheck::cli::{Cli, Command, CommonArgs, ConfigFile, FailOn};
use sendercheck::input::{ColumnChoice, InputOptions, Source};
use sendercheck::record::ReportContext;
use sendercheck::report::{self, ReportError, ReportWriter};
use sendercheck::verdict::Class;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::output::StdoutOrSink;
use super::progress;
use super::settings::{state_options, Settings};
use crate::{EXIT_ERROR, EXIT_GATE, EXIT_OK};

pub fn run(cli: Cli) -> Result<u8> {
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
            // A syntax-only run asks nobody anything: nothing to cache or compare.
            let wants_state = settings.options.stop_after != Some(StopAfter::Syntax);
            settings.options.state =
                state_options(&args.common, &config, &settings.output, wants_state)?
                    .filter(|_| wants_state);
            let source = Source::open(&args.input)?;
            settings.options.stop = Some(stop_on_signals()?);
            execute(&source, &settings, false)
        }
        Command::Check(args) => {
            let config = ConfigFile::load(args.common.config.as_deref())?;
            let mut settings = Settings::resolve(&args.common, &config)?;
            settings.options.state = state_options(&args.common, &config, &settings.output, false)?;
            settings.options.stop = Some(stop_on_signals()?);
            // No header row: row N is argument N, so reported line numbers
            // are argument positions.
            settings.options.input.has_header = false;
            let mut csv = String::new();
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
        let stdout: Box<dyn Write> = Box::new(io::BufWriter::new(StdoutOrSink::new()));
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
            writers.push(Box::new(TranscriptWriter(StdoutOrSink::new())));
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
const DEMO_SENDERS: &str = include_str!("../../samples/senders.csv");

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
