//! Shared by the benchmark examples: find the release binary, run it as a child
//! under `/usr/bin/time -v` (for peak RSS) with a hard deadline, read figures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Positional argument `n` (1-based) as a number, or `default` when absent
/// or unreadable.
pub fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `target/<profile>/sendercheck`, next to this example's own directory.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples");
    let bin = dir.join("sendercheck");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --release)",
        bin.display()
    );
    bin
}

/// What one child run showed.
#[derive(Debug)]
pub struct ChildRun {
    pub status: Option<i32>,
    pub wall: Duration,
    /// Peak RSS in KiB, when `/usr/bin/time` is there.
    pub max_rss_kb: Option<u64>,
    pub user_s: Option<f64>,
    pub sys_s: Option<f64>,
    pub stderr: String,
}

/// Runs `bin args`, killed after `deadline`. Stdout is discarded.
pub fn run_child(bin: &Path, args: &[String], deadline: Duration) -> ChildRun {
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.arg("-v").arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn sendercheck");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st.code();
        }
        if started.elapsed() > deadline {
            eprintln!("bench: child exceeded {deadline:?}; killing it");
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed();
    let stderr = reader.join().unwrap_or_default();
    let field = |name: &str| -> Option<String> {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
    };
    ChildRun {
        status,
        wall,
        max_rss_kb: field("Maximum resident set size (kbytes):").and_then(|v| v.parse().ok()),
        user_s: field("User time (seconds):").and_then(|v| v.parse().ok()),
        sys_s: field("System time (seconds):").and_then(|v| v.parse().ok()),
        stderr,
    }
}

/// The `stats` object of `DIR/report.json`.
pub fn report_stats(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("report.json parses");
    v["stats"].clone()
}

pub fn rss(r: &ChildRun) -> String {
    r.max_rss_kb
        .map_or("n/a (no /usr/bin/time)".to_string(), |kb| {
            format!("{:.1} MB", kb as f64 / 1024.0)
        })
}
