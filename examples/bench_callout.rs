//! Issue acceptance C: SMTP callouts. 20,000 senders over 2,000 domains on 50
//! scripted MX hosts (127.0.0.x, one shared port, 20 ms before every reply,
//! users known so most senders are accepted), audited by the release binary with
//! `--per-host-rate 50 --concurrency 64 --timeout 5s`.
//!
//! `cargo run --release --example bench_callout -- [SENDERS] [DOMAINS] [HOSTS] [CONCURRENCY]`
//! Prints wall time, connections, the floor and wall / floor, where floor =
//! RCPTs due on the busiest host (its senders + 2 control probes per domain)
//! / per-host rate. Loopback only: the world and the child both stay on 127/8.

#[path = "bench_util/mod.rs"]
mod bench_util;

use sendercheck::world::{DomainSpec, Script, ServerSpec, World, WorldSpec};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

const RATE: f64 = 50.0;

fn main() {
    let senders = bench_util::arg(1, 20_000);
    let domains = bench_util::arg(2, 2_000).max(1);
    let hosts = bench_util::arg(3, 50).clamp(1, 200);
    let concurrency = bench_util::arg(4, 64).to_string();
    let per_domain = senders.div_ceil(domains);
    let bin = bench_util::binary();

    // Known users u0..u{per_domain-2}; the last local part of each domain is
    // unknown (550), so ~90% are accepted.
    let known: Vec<String> = (0..per_domain.saturating_sub(1))
        .map(|u| format!("u{u}"))
        .collect();
    let mut spec = WorldSpec::default();
    for h in 0..hosts {
        let script = Script {
            users: known.clone(),
            ..Script::new(&format!("mx{h}.hosts.test"))
        }
        .reply_delay(Duration::from_millis(20));
        spec.smtp.push(ServerSpec {
            name: format!("mx{h}.hosts.test"),
            ip: Ipv4Addr::new(127, 0, 0, 10 + h as u8),
            script,
        });
    }
    let mut dns = BTreeMap::new();
    for d in 0..domains {
        dns.insert(
            format!("d{d}.smtp.test"),
            DomainSpec {
                mx: vec![format!("10 mx{}.hosts.test", d % hosts)],
                ..DomainSpec::default()
            },
        );
    }
    spec.dns = dns;
    let world = World::start(&spec).expect("world on loopback");

    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("senders.csv");
    let mut on_host = vec![0usize; hosts];
    let mut domains_on_host = vec![0usize; hosts];
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        writeln!(f, "email,campaign").unwrap();
        let mut n = 0;
        'outer: for u in 0..per_domain {
            for d in 0..domains {
                if n == senders {
                    break 'outer;
                }
                writeln!(f, "u{u}@d{d}.smtp.test,bench").unwrap();
                on_host[d % hosts] += 1;
                n += 1;
            }
        }
    }
    for d in 0..domains {
        domains_on_host[d % hosts] += 1;
    }
    let busiest = (0..hosts)
        .max_by_key(|&h| on_host[h] + 2 * domains_on_host[h])
        .unwrap();
    let due = on_host[busiest] + 2 * domains_on_host[busiest];
    let floor = due as f64 / RATE;

    let out = dir.path().join("out");
    let argv: Vec<String> = [
        "audit",
        csv.to_str().unwrap(),
        "--nameserver",
        &world.nameserver().to_string(),
        "--smtp-port",
        &world.smtp_port().to_string(),
        "--allow-private-mx",
        "--helo",
        "prober.bench.test",
        "--per-host-rate",
        "50",
        "--concurrency",
        &concurrency,
        "--timeout",
        "5s",
        "--connect-timeout",
        "5s",
        "--greylist-wait",
        "0",
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    // BENCH_NO_STATE=1 measures the engine without the state store.
    .chain(std::env::var_os("BENCH_NO_STATE").map(|_| "--no-state".to_string()))
    .collect();
    let run = bench_util::run_child(&bin, &argv, Duration::from_secs(600));
    if run.status.is_none() {
        eprintln!("{}", run.stderr);
        std::process::exit(1);
    }
    let stats = bench_util::report_stats(&out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let wall = run.wall.as_secs_f64();
    let connections = stats["connections"].as_u64().unwrap_or(0);

    let mut per_host: Vec<(usize, usize, usize, usize)> = Vec::new(); // conns, rcpts, max concurrent, commands
    for (_, server) in &world.servers {
        let log = server.log();
        per_host.push((
            log.connections,
            log.rcpt_count,
            log.max_concurrent,
            log.commands.len(),
        ));
    }
    let total_rcpt: usize = per_host.iter().map(|p| p.1).sum();
    let conns_min = per_host.iter().map(|p| p.0).min().unwrap_or(0);
    let conns_max = per_host.iter().map(|p| p.0).max().unwrap_or(0);
    let rcpt_max = per_host.iter().map(|p| p.1).max().unwrap_or(0);
    let busiest_log = world.servers[busiest].1.log();

    println!(
        "bench C (callouts): {senders} senders, {domains} domains, {hosts} MX hosts on 127.0.0.x:{}, reply delay 20 ms, --concurrency {concurrency}",
        world.smtp_port()
    );
    println!("  exit status               {:?}", run.status);
    println!(
        "  summary                   {}",
        report["summary"]["by_verdict"]
    );
    println!("  wall                      {wall:.2} s");
    println!("  duration_ms (stats)       {}", stats["duration_ms"]);
    println!(
        "  cpu user/sys              {:?} / {:?} s",
        run.user_s, run.sys_s
    );
    println!("  peak RSS                  {}", bench_util::rss(&run));
    println!(
        "  connections (stats)       {connections} (target <= {})",
        senders / 8
    );
    println!(
        "  transactions / rcpts      {} / {}",
        stats["transactions"], stats["rcpt_commands"]
    );
    println!("  RCPTs seen by servers     {total_rcpt} (busiest host: {rcpt_max})");
    println!("  connections per host      min {conns_min}, max {conns_max}");
    println!(
        "  busiest host              mx{busiest}: {} senders + {} controls = {due} RCPTs; saw {} connections, {} RCPTs, max {} concurrent",
        on_host[busiest],
        2 * domains_on_host[busiest],
        busiest_log.connections,
        busiest_log.rcpt_count,
        busiest_log.max_concurrent
    );
    println!("  floor                     {floor:.2} s ({due} / {RATE})");
    println!(
        "  wall / floor              {:.2} (target <= 1.30)",
        wall / floor
    );
    if let Some(d) = stats["duration_ms"].as_u64() {
        println!(
            "  duration / floor          {:.2}",
            d as f64 / 1000.0 / floor
        );
    }
    // Session lengths: commands per connection on the busiest host.
    let mut per_conn: BTreeMap<u64, usize> = BTreeMap::new();
    for (c, _) in &busiest_log.commands {
        *per_conn.entry(*c).or_default() += 1;
    }
    let lens: Vec<usize> = per_conn.values().copied().collect();
    if !lens.is_empty() {
        println!(
            "  commands per session (busiest host): min {}, max {}, mean {:.1}",
            lens.iter().min().unwrap(),
            lens.iter().max().unwrap(),
            lens.iter().sum::<usize>() as f64 / lens.len() as f64
        );
    }
}
