//! Benchmark: a second run of 100,000 cached senders.
//!
//! Starts the offline mail world on loopback (one DNS server, one catch-all
//! SMTP server for 1,000 domains), runs `sendercheck audit` once to fill the
//! state store (real callouts), then runs it again and reports the wall time
//! of the second run and the traffic the world saw during it (must be none).
//!
//!     cargo build --release && cargo run --release --example cache_bench [N]

use sendercheck::world::{Script, ServerSpec, World, WorldSpec};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let domains = 1_000;
    let mut toml = String::from("smtp_port = 0\n");
    for d in 0..domains {
        toml.push_str(&format!(
            "[dns.\"d{d}.bench.test\"]\nmx = [\"10 mx.bench.test\"]\n"
        ));
    }
    let mut spec = WorldSpec::from_toml(&toml).expect("spec");
    spec.smtp.push(ServerSpec {
        name: "mx.bench.test".into(),
        ip: Ipv4Addr::new(127, 0, 0, 90),
        script: Script::new("mx.bench.test").catch_all(true),
    });
    let world = World::start(&spec).expect("world");
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("senders.csv");
    let mut text = String::with_capacity(n * 32);
    text.push_str("email\n");
    for i in 0..n {
        text.push_str(&format!("user{i}@d{}.bench.test\n", i % domains));
    }
    std::fs::write(&csv, text).expect("csv");
    let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join(if cfg!(debug_assertions) {
        "target/debug/sendercheck"
    } else {
        "target/release/sendercheck"
    });
    let run = |label: &str| {
        let t = Instant::now();
        let status = Command::new(&exe)
            .arg("audit")
            .arg(&csv)
            .args(["--nameserver", &world.nameserver().to_string()])
            .args(["--smtp-port", &world.smtp_port().to_string()])
            .args(["--allow-private-mx", "--helo", "prober.bench.test", "-q"])
            .args(["--per-host-rate", "1000000", "--per-host-connections", "8"])
            .args([
                "--rcpt-per-transaction",
                "100",
                "--no-random-probe",
                "--no-postmaster-probe",
            ])
            .args(["--format", "json", "--fail-on", "never", "-o"])
            .arg(dir.path().join("out"))
            .stdout(Stdio::null())
            .status()
            .expect("run sendercheck");
        let secs = t.elapsed().as_secs_f64();
        println!("{label}: {secs:.2} s (exit {:?})", status.code());
        secs
    };
    run("first run (callouts fill the store)");
    world.dns.clear_log();
    for (_, s) in &world.servers {
        s.reset();
    }
    let second = run("second run (all cached)");
    let conns: usize = world.servers.iter().map(|(_, s)| s.log().connections).sum();
    let queries = world.dns.queries().len();
    println!(
        "second run of {n} cached senders: {second:.2} s, {conns} SMTP connections, {queries} DNS queries"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/report.json")).expect("report"))
            .expect("json");
    let cached = json["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| {
                    r["flags"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|x| x == "cached"))
                })
                .count()
        })
        .unwrap_or(0);
    println!(
        "rows flagged cached: {cached}; store: {} bytes",
        std::fs::metadata(dir.path().join("out/sendercheck.db"))
            .map(|m| m.len())
            .unwrap_or(0)
    );
    assert_eq!(conns + queries, 0, "a cached run must send nothing");
}
