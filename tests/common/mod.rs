//! Shared helpers for the integration tests that drive the `sendercheck`
//! binary against the in-process mail world (`sendercheck::world`).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use sendercheck::world::{DnsServer, Script, ServerLog, SmtpServer, Zone};
use serde_json::Value;
use tempfile::TempDir;

/// One finished run of the binary.
pub struct Run {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
    pub elapsed: Duration,
    /// Keeps the input and report directory alive for inspection.
    pub dir: TempDir,
}

impl Run {
    /// The result row for `input` (the CSV cell as written) or, failing
    /// that, for the normalised `address`.
    pub fn result(&self, key: &str) -> &Value {
        let results = self.json["results"].as_array().expect("results[]");
        results
            .iter()
            .find(|r| r["input"] == key)
            .or_else(|| results.iter().find(|r| r["address"] == key))
            .unwrap_or_else(|| panic!("no result for {key:?} in {:#}", self.json["results"]))
    }

    pub fn results(&self) -> &Vec<Value> {
        self.json["results"].as_array().expect("results[]")
    }

    pub fn groups(&self) -> &Vec<Value> {
        self.json["groups"].as_array().expect("groups[]")
    }

    pub fn stat(&self, path: &[&str]) -> u64 {
        let mut v = &self.json["stats"];
        for p in path {
            v = &v[*p];
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("stats.{} missing", path.join(".")))
    }
}

/// Writes `csv` (given whole, header included) to a temporary file and runs
/// `sendercheck audit` on it with JSON output, plus `args`.
pub fn audit(csv: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("senders.csv");
    std::fs::write(&input, csv).expect("write input");
    let out = dir.path().join("out");
    let started = Instant::now();
    let output = Command::cargo_bin("sendercheck")
        .expect("binary")
        .arg("audit")
        .arg(&input)
        .args(["--format", "json", "-q", "-o"])
        .arg(&out)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run sendercheck");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code().unwrap_or(-1);
    let json = read_json(&out.join("report.json")).unwrap_or_else(|| {
        panic!(
            "no report.json (exit {code}); stderr:\n{stderr}\nstdout:\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    Run {
        code,
        json,
        stderr,
        elapsed,
        dir,
    }
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("report.json is JSON"))
}

/// A CSV with one `sender` column.
pub fn csv_of<S: AsRef<str>>(senders: &[S]) -> String {
    let mut s = String::from("sender\n");
    for a in senders {
        s.push_str(a.as_ref());
        s.push('\n');
    }
    s
}

/// `--nameserver` argument for a DNS server.
pub fn ns(dns: &DnsServer) -> String {
    dns.addr().to_string()
}

/// Flags of a result as plain strings.
pub fn flags(r: &Value) -> Vec<String> {
    r["flags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn has_flag(r: &Value, flag: &str) -> bool {
    flags(r).iter().any(|f| f == flag)
}

/// Asserts verdict, and that the reason contains `fragment` (case-insensitive).
#[track_caller]
pub fn assert_verdict(r: &Value, verdict: &str, fragment: &str) {
    assert_eq!(r["verdict"], verdict, "verdict of {:#}", r);
    let reason = r["reason"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        reason.contains(&fragment.to_lowercase()),
        "reason of {} should mention {fragment:?}: {reason}",
        r["input"]
    );
}

// ------------------------------------------------------------------ SMTP world

/// `127.0.net.host`: each test file / test picks its own `net` so parallel
/// tests never share an address.
pub fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, host)
}

/// Starts one scripted server per `(ip, script)`, all on one port: the first
/// binds port 0, the rest reuse its port. A port free on the first address may
/// be taken on another, so the whole set is retried on a fresh port.
pub fn start_smtp(servers: Vec<(Ipv4Addr, Script)>) -> (u16, Vec<SmtpServer>) {
    let mut last = None;
    for _ in 0..16 {
        let mut port = 0;
        let mut started = Vec::new();
        let mut failed = false;
        for (ip, script) in &servers {
            match SmtpServer::start(*ip, port, script.clone()) {
                Ok(s) => {
                    port = s.addr().port();
                    started.push(s);
                }
                Err(e) => {
                    last = Some(e);
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            return (port, started);
        }
    }
    panic!("cannot start SMTP servers on one port: {last:?}");
}

/// A test world: a DNS server plus SMTP servers on one port.
pub struct MailWorld {
    pub dns: DnsServer,
    pub port: u16,
    /// (host name, server) in the order given.
    pub servers: Vec<(String, SmtpServer)>,
}

impl MailWorld {
    /// `hosts`: (MX host name, address, script); each host name gets an A
    /// record. `zone` holds the rest (MX records of the sender domains).
    pub fn start(mut zone: Zone, hosts: Vec<(&str, Ipv4Addr, Script)>) -> MailWorld {
        for (name, ip, _) in &hosts {
            zone.a(name, *ip);
        }
        let scripts = hosts
            .iter()
            .map(|(name, ip, s)| {
                let mut s = s.clone();
                if s.hostname.is_empty() {
                    s.hostname = name.to_string();
                }
                (*ip, s)
            })
            .collect();
        let (port, started) = start_smtp(scripts);
        let servers = hosts
            .iter()
            .map(|(n, _, _)| n.to_string())
            .zip(started)
            .collect();
        let dns = DnsServer::start(zone).expect("dns server");
        MailWorld { dns, port, servers }
    }

    pub fn server(&self, name: &str) -> &SmtpServer {
        self.servers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("no server {name}"))
    }

    pub fn log(&self, name: &str) -> ServerLog {
        self.server(name).log()
    }

    /// The standard arguments pointing the tool at this world, fast timeouts,
    /// no rate limit to speak of, no greylisting wait.
    pub fn args(&self) -> Vec<String> {
        [
            "--nameserver",
            &ns(&self.dns),
            "--smtp-port",
            &self.port.to_string(),
            "--allow-private-mx",
            "--helo",
            "prober.sendercheck.test",
            "--timeout",
            "1s",
            "--connect-timeout",
            "1s",
            "--dns-timeout",
            "1s",
            "--greylist-wait",
            "0",
            "--per-host-rate",
            "1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Runs an audit of `senders` with the standard arguments plus `extra`
    /// (later flags win).
    pub fn audit(&self, senders: &[&str], extra: &[&str]) -> Run {
        self.audit_csv(&csv_of(senders), extra)
    }

    pub fn audit_csv(&self, csv: &str, extra: &[&str]) -> Run {
        // A flag given in `extra` replaces the standard one (clap refuses
        // repeated value flags).
        let mut args = Vec::new();
        let std_args = self.args();
        let mut i = 0;
        while i < std_args.len() {
            let flag = &std_args[i];
            let takes_value = std_args.get(i + 1).is_some_and(|v| !v.starts_with("--"));
            let step = if takes_value { 2 } else { 1 };
            if !extra.contains(&flag.as_str()) {
                args.extend(std_args[i..i + step].iter().cloned());
            }
            i += step;
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        audit(csv, &args)
    }

    /// Every server: never DATA, never an injected line.
    #[track_caller]
    pub fn assert_clean(&self) {
        for (name, s) in &self.servers {
            let log = s.log();
            assert!(!log.data_seen, "{name} saw DATA: {:?}", log.commands);
            assert!(
                !log.unannounced_utf8,
                "{name} got a UTF-8 address outside SMTPUTF8: {:?}",
                log.commands
            );
            assert!(
                !log.injected,
                "{name} saw an injected line: {:?}",
                log.commands
            );
            assert!(
                !log.commands
                    .iter()
                    .any(|(_, c)| c.to_ascii_uppercase().starts_with("DATA")),
                "{name} got a DATA command"
            );
        }
    }

    /// Connections to `name` stay within what one plain group needs:
    /// ceil(senders / rcpt-per-transaction) plus `retries` extra sessions.
    #[track_caller]
    pub fn assert_connections(&self, name: &str, senders: usize, per_txn: usize, retries: usize) {
        let log = self.log(name);
        let bound = senders.div_ceil(per_txn) + retries;
        assert!(
            log.connections <= bound,
            "{name}: {} connections for {senders} senders (bound {bound}): {:?}",
            log.connections,
            log.commands
        );
    }
}

/// A socket address nothing listens on (connection refused): a dead MX.
pub fn dead_ip(net: u8) -> Ipv4Addr {
    ip(net, 250)
}

pub fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}
