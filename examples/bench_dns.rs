//! Issue acceptance B: DNS routing of 50,000 distinct domains (one sender each,
//! ~500 shared MX hosts) against the in-process world DNS server on loopback.
//!
//! `cargo run --release --example bench_dns -- [DOMAINS] [MX_HOSTS]`
//! Needs `target/release/sendercheck` (benches/run.sh builds it). Runs
//! `sendercheck audit --stop-after dns --nameserver 127.0.0.1:PORT` as a child
//! and prints wall time, lookups/s and the child's peak RSS.

#[path = "bench_util/mod.rs"]
mod bench_util;

use sendercheck::world::{DnsServer, Zone};
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

fn main() {
    let domains = bench_util::arg(1, 50_000);
    let hosts = bench_util::arg(2, 500).max(1);
    let bin = bench_util::binary();

    let mut zone = Zone::new();
    for h in 0..hosts {
        // Loopback addresses only; never contacted (--stop-after dns).
        let ip = Ipv4Addr::new(127, 0, 1 + (h / 250) as u8, 1 + (h % 250) as u8);
        zone.a(&format!("mx{h}.hosts.test"), ip);
    }
    for d in 0..domains {
        zone.mx(
            &format!("d{d}.dns.test"),
            10,
            &format!("mx{}.hosts.test", d % hosts),
        );
    }
    let dns = DnsServer::start(zone).expect("world DNS on loopback");

    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("senders.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        writeln!(f, "email,campaign").unwrap();
        for d in 0..domains {
            writeln!(f, "news@d{d}.dns.test,bench").unwrap();
        }
    }
    let out = dir.path().join("out");
    let argv: Vec<String> = [
        "audit",
        csv.to_str().unwrap(),
        "--stop-after",
        "dns",
        "--nameserver",
        &dns.addr().to_string(),
        "--allow-private-mx",
        "--dns-timeout",
        "2s",
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = bench_util::run_child(&bin, &argv, Duration::from_secs(300));
    if run.status.is_none() {
        eprintln!("{}", run.stderr);
        std::process::exit(1);
    }
    let stats = bench_util::report_stats(&out);
    let q = &stats["dns_queries"];
    let sent: u64 = q
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    let (mx, a, aaaa) = (dns.total("MX"), dns.total("A"), dns.total("AAAA"));
    let wall = run.wall.as_secs_f64();
    let skipped = std::fs::read_to_string(out.join("report.json"))
        .map(|t| t.matches("not probed (--stop-after dns)").count())
        .unwrap_or(0);
    println!(
        "bench B (DNS): {domains} domains, {hosts} MX hosts, world DNS on {}",
        dns.addr()
    );
    println!("  exit status           {:?}", run.status);
    println!("  wall                  {wall:.2} s (whole run: input, DNS, plan, report)");
    println!("  duration_ms (stats)   {}", stats["duration_ms"]);
    println!(
        "  cpu user/sys          {:?} / {:?} s",
        run.user_s, run.sys_s
    );
    println!("  peak RSS              {}", bench_util::rss(&run));
    println!("  queries sent (stats)  {q}");
    println!("  queries served        MX {mx}, A {a}, AAAA {aaaa}");
    println!("  routed senders        {skipped} of {domains} (verdict skipped: not probed)");
    println!("  mx groups             {}", stats["mx_groups"]);
    println!("  domains/s             {:.0}", domains as f64 / wall);
    println!(
        "  lookups/s             {:.0} (all queries sent / wall)",
        sent as f64 / wall
    );
}
