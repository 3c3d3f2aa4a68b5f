//! Settings: command-line flags merged over the configuration file and the
//! defaults, turned into the library's options.

use anyhow::{bail, Context, Result};
use sendercheck::audit::{AuditOptions, StopAfter};
use sendercheck::cache::{StateOptions, Ttls};
use sendercheck::callout::CalloutOptions;
use sendercheck::cli::{parse_duration, CommonArgs, ConfigFile, FailOn, StopAfterArg};
use sendercheck::dns::DnsOptions;
use sendercheck::input::InputOptions;
use sendercheck::plan::Shard;
use sendercheck::report::Format;
use sendercheck::smtp::{HeloName, SmtpPath};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The state store settings: `--state`, else `sendercheck.db` in the output
/// directory when `default_on`; none with `--no-state`.
pub fn state_options(
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

/// Everything resolved from flags, config file and defaults.
pub struct Settings {
    pub options: AuditOptions,
    pub formats: Vec<Format>,
    pub output: PathBuf,
    pub fail_on: FailOn,
    pub quiet: bool,
    pub verbose: u8,
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
    pub fn resolve(a: &CommonArgs, c: &ConfigFile) -> Result<Settings> {
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
            known_controls: Default::default(),
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
