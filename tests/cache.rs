//! The state store end to end: the binary against an in-process mail world on
//! loopback. The clock is fixed through `SENDERCHECK_NOW`; nothing sleeps to
//! synchronise (the kill tests poll the servers' logs for progress).

use sendercheck::cache::Store;
use sendercheck::world::{Script, ServerSpec, World, WorldSpec};
use serde_json::Value;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const HOUR: i64 = 3600;

/// One DNS name and one SMTP server per domain; `users` are its mailboxes.
fn world(domains: &[(&str, u8, &[&str])], delay_ms: u64) -> World {
    world_of(
        domains
            .iter()
            .map(|(d, ip, users)| {
                (
                    *d,
                    *ip,
                    Script::new(&format!("mx.{d}"))
                        .domain(d)
                        .users(users)
                        .reply_delay(Duration::from_millis(delay_ms)),
                )
            })
            .collect(),
    )
}

/// One DNS name (`MX 10 mx.DOMAIN`) and one scripted SMTP server per domain.
fn world_of(domains: Vec<(&str, u8, Script)>) -> World {
    let mut toml = String::from("smtp_port = 0\n");
    for (d, _, _) in &domains {
        toml.push_str(&format!("[dns.\"{d}\"]\nmx = [\"10 mx.{d}\"]\n"));
    }
    let mut spec = WorldSpec::from_toml(&toml).unwrap();
    for (d, ip, script) in domains {
        spec.smtp.push(ServerSpec {
            name: format!("mx.{d}"),
            ip: Ipv4Addr::new(127, 0, 0, ip),
            script,
        });
    }
    World::start(&spec).unwrap()
}

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

impl Dir {
    fn new(senders: &[String]) -> Dir {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().to_path_buf();
        let mut csv = String::from("email,campaign\n");
        for s in senders {
            csv.push_str(&format!("{s},nightly\n"));
        }
        std::fs::write(path.join("senders.csv"), csv).unwrap();
        Dir { _tmp: tmp, path }
    }
    fn db(&self) -> PathBuf {
        self.path.join("out/sendercheck.db")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path.join("out/report.json")).unwrap()).unwrap()
    }
}

fn command(w: &World, dir: &Dir, now: i64, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sendercheck"));
    c.arg("audit")
        .arg(dir.path.join("senders.csv"))
        .args(["--nameserver", &w.nameserver().to_string()])
        .args(["--smtp-port", &w.smtp_port().to_string()])
        .args(["--allow-private-mx", "--helo", "prober.test"])
        .args(["--probe-sender", "probe@prober.test"])
        .args([
            "--timeout",
            "5s",
            "--dns-timeout",
            "2s",
            "--greylist-wait",
            "0",
        ])
        .args(["--format", "json,md,html", "-q", "--fail-on", "never"])
        .arg("-o")
        .arg(dir.path.join("out"))
        .args(extra)
        .env("SENDERCHECK_NOW", now.to_string())
        .stdin(Stdio::null());
    c
}

fn run(w: &World, dir: &Dir, now: i64, extra: &[&str]) -> (Output, Value) {
    let out = command(w, dir, now, extra).output().unwrap();
    assert!(
        out.status.code().is_some(),
        "killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = dir.json();
    (out, json)
}

fn results(json: &Value) -> HashMap<String, Value> {
    json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["address"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn has_flag(r: &Value, flag: &str) -> bool {
    r["flags"].as_array().unwrap().iter().any(|f| f == flag)
}

fn reset(w: &World) {
    w.dns.clear_log();
    for (_, s) in &w.servers {
        s.reset();
    }
}

fn connections(w: &World) -> usize {
    w.servers.iter().map(|(_, s)| s.log().connections).sum()
}

/// RCPT commands per recipient address (lower case) across every server.
fn rcpts(w: &World) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for (_, s) in &w.servers {
        for line in s.log().verbs("RCPT") {
            let a = line
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map(|(a, _)| a.to_lowercase())
                .unwrap_or_default();
            *m.entry(a).or_default() += 1;
        }
    }
    m
}

fn integrity_ok(db: &Path) {
    let store = Store::open(db).expect("store opens after the run");
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn second_run_is_served_from_the_cache_and_expired_failures_are_reprobed() {
    let w = world(&[("good.test", 61, &["news", "info"])], 0);
    let dir = Dir::new(&["news@good.test".into(), "nobody@good.test".into()]);

    let (out, first) = run(&w, &dir, T0, &[]);
    assert_eq!(out.status.code(), Some(0));
    let r = results(&first);
    assert_eq!(r["news@good.test"]["verdict"], "receivable");
    assert_eq!(r["nobody@good.test"]["verdict"], "unreceivable");
    assert!(!has_flag(&r["news@good.test"], "cached"));
    assert!(
        first.get("changes").is_none(),
        "first run: nothing to compare"
    );
    assert!(connections(&w) > 0 && !w.dns.queries().is_empty());

    // Ten minutes later: everything from the store, not one packet.
    reset(&w);
    let (_, second) = run(&w, &dir, T0 + 600, &[]);
    let r = results(&second);
    for a in ["news@good.test", "nobody@good.test"] {
        assert!(has_flag(&r[a], "cached"), "{a}: {:?}", r[a]);
        assert!(
            r[a]["reason"].as_str().unwrap().contains("decided 10m ago"),
            "{:?}",
            r[a]
        );
    }
    assert_eq!(r["nobody@good.test"]["verdict"], "unreceivable");
    assert_eq!(connections(&w), 0, "cached senders cost no SMTP connection");
    assert_eq!(w.dns.queries(), vec![], "cached senders cost no DNS query");
    assert_eq!(second["stats"]["connections"], 0);
    let ch = &second["changes"];
    assert_eq!(ch["still_failing"][0]["address"], "nobody@good.test");
    assert_eq!(ch["still_failing"][0]["since"], "2026-01-01T00:00:00Z");
    assert_eq!(ch["newly_failing"], Value::Array(vec![]));

    // Past the 2 h failure TTL, inside the 24 h pass TTL: only the failure
    // is asked again.
    reset(&w);
    let (_, third) = run(&w, &dir, T0 + 2 * HOUR + 1, &[]);
    let r = results(&third);
    assert!(has_flag(&r["news@good.test"], "cached"));
    assert!(!has_flag(&r["nobody@good.test"], "cached"));
    assert_eq!(r["nobody@good.test"]["verdict"], "unreceivable");
    let seen = rcpts(&w);
    assert_eq!(seen.get("nobody@good.test"), Some(&1));
    assert_eq!(seen.get("news@good.test"), None);
    assert_eq!(w.dns.count("good.test", "MX"), 1);

    // --refresh asks everything again.
    reset(&w);
    let (_, fourth) = run(&w, &dir, T0 + 2 * HOUR + 2, &["--refresh"]);
    assert!(results(&fourth).values().all(|r| !has_flag(r, "cached")));
    assert_eq!(rcpts(&w).get("news@good.test"), Some(&1));

    // The history subcommand reads the same store.
    let h = Command::new(env!("CARGO_BIN_EXE_sendercheck"))
        .args(["history", "-o"])
        .arg(dir.path.join("out"))
        .output()
        .unwrap();
    assert_eq!(h.status.code(), Some(0));
    let text = String::from_utf8(h.stdout).unwrap();
    assert_eq!(text.matches("complete").count(), 4, "{text}");
    let h = Command::new(env!("CARGO_BIN_EXE_sendercheck"))
        .args(["history", "--sender", "NoBody@good.test", "--state"])
        .arg(dir.db())
        .output()
        .unwrap();
    let text = String::from_utf8(h.stdout).unwrap();
    assert_eq!(text.matches("unreceivable").count(), 4, "{text}");
    assert_eq!(text.matches("[cached]").count(), 1, "{text}");
    integrity_ok(&dir.db());
}

#[test]
fn changes_show_a_fixed_and_a_broken_sender() {
    let dir = Dir::new(&[
        "news@shift.test".into(),
        "info@shift.test".into(),
        "sales@shift.test".into(),
    ]);
    {
        let w = world(&[("shift.test", 62, &["news", "sales"])], 0);
        let (_, json) = run(&w, &dir, T0, &[]);
        let r = results(&json);
        assert_eq!(r["news@shift.test"]["verdict"], "receivable");
        assert_eq!(r["info@shift.test"]["verdict"], "unreceivable");
    }
    // The next night: info@ was created, news@ was deleted.
    let w = world(&[("shift.test", 62, &["info", "sales"])], 0);
    let (_, json) = run(&w, &dir, T0 + 25 * HOUR, &[]);
    let ch = &json["changes"];
    assert_eq!(ch["previous_run"]["id"], 1);
    assert_eq!(ch["previous_run"]["complete"], true);
    assert_eq!(ch["newly_failing"].as_array().unwrap().len(), 1, "{ch}");
    assert_eq!(ch["newly_failing"][0]["address"], "news@shift.test");
    assert_eq!(ch["newly_failing"][0]["previous"], "receivable");
    assert_eq!(ch["newly_fixed"].as_array().unwrap().len(), 1, "{ch}");
    assert_eq!(ch["newly_fixed"][0]["address"], "info@shift.test");
    assert_eq!(ch["newly_fixed"][0]["previous"], "unreceivable");
    assert_eq!(ch["still_failing"], Value::Array(vec![]));
    let md = std::fs::read_to_string(dir.path.join("out/report.md")).unwrap();
    assert!(md.contains("### Changes since the last run"), "{md}");
    assert!(md.contains("| newly failing | `news@shift.test`"), "{md}");
    let html = std::fs::read_to_string(dir.path.join("out/report.html")).unwrap();
    assert!(html.contains("<h2>Changes since the last run</h2>"));
    assert!(html.contains("<tr><td>newly failing</td><td><code>news@shift.test</code></td>"));
    assert!(html.contains("<tr><td>newly fixed</td><td><code>info@shift.test</code></td>"));
}

#[test]
fn a_second_run_on_a_busy_store_fails_fast() {
    let w = world(&[("busy.test", 63, &["news"])], 0);
    let dir = Dir::new(&["news@busy.test".into()]);
    std::fs::create_dir_all(dir.path.join("out")).unwrap();
    let held = Store::open(&dir.db()).unwrap();
    let started = Instant::now();
    let out = command(&w, &dir, T0, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another sendercheck run")
            && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    assert_eq!(connections(&w), 0);
    assert!(!dir.path.join("out/report.json").exists());
    drop(held);
    let (out, _) = run(&w, &dir, T0, &[]);
    assert_eq!(out.status.code(), Some(0));
}

/// Eight domains, each on its own slow MX, five senders each (one unknown).
fn slow_world() -> (World, Vec<String>) {
    let names: Vec<String> = (0..8).map(|i| format!("slow{i}.test")).collect();
    let users: &[&str] = &["a", "b", "c", "d"];
    let specs: Vec<(&str, u8, &[&str])> = names
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), 70 + i as u8, users))
        .collect();
    let w = world(&specs, 25);
    let mut senders = Vec::new();
    for d in &names {
        for u in ["a", "b", "c", "d", "x"] {
            senders.push(format!("{u}@{d}"));
        }
    }
    (w, senders)
}

const SLOW_ARGS: &[&str] = &[
    "--concurrency",
    "1",
    "--per-host-connections",
    "1",
    "--per-host-rate",
    "20",
];

/// Start a run and wait until the servers have seen `rcpt` RCPT commands.
fn start_and_wait(w: &World, dir: &Dir, rcpt: usize) -> Child {
    let mut child = command(w, dir, T0, SLOW_ARGS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: usize = w.servers.iter().map(|(_, s)| s.log().rcpt_count).sum();
        if seen >= rcpt {
            return child;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the interruption point"
        );
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// After an interrupted run and a resumed one: one final result per sender,
/// each sender asked once, plus at most `extra` asked twice.
fn check_resume(w: &World, dir: &Dir, senders: &[String], extra: usize) {
    let (out, json) = run(w, dir, T0 + 60, SLOW_ARGS);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json["meta"]["complete"], true);
    let r = results(&json);
    assert_eq!(json["results"].as_array().unwrap().len(), senders.len());
    for s in senders {
        let want = if s.starts_with("x@") {
            "unreceivable"
        } else {
            "receivable"
        };
        assert_eq!(r[s]["verdict"], want, "{s}: {:?}", r[s]);
    }
    assert!(
        r.values().any(|v| has_flag(v, "cached")),
        "resumed from the store"
    );
    let seen = rcpts(w);
    let mut twice = 0;
    for s in senders {
        let n = seen.get(s).copied().unwrap_or(0);
        assert!((1..=2).contains(&n), "{s} asked {n} times");
        twice += usize::from(n == 2);
    }
    assert!(
        twice <= extra,
        "{twice} senders asked twice (allowed {extra})"
    );
    integrity_ok(&dir.db());
}

#[test]
fn sigterm_writes_an_incomplete_report_and_the_next_run_resumes() {
    let (w, senders) = slow_world();
    let dir = Dir::new(&senders);
    // Two MX hosts' worth of RCPTs (5 senders + 2 controls each) seen.
    let child = start_and_wait(&w, &dir, 14);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let json = dir.json();
    assert_eq!(json["meta"]["complete"], false);
    let r = results(&json);
    assert_eq!(r.len(), senders.len());
    let interrupted = r
        .values()
        .filter(|v| {
            v["verdict"] == "skipped" && v["reason"].as_str().unwrap().contains("interrupted")
        })
        .count();
    let decided = r.values().filter(|v| v["verdict"] != "skipped").count();
    assert!(
        interrupted > 0 && decided >= 10,
        "{decided} decided, {interrupted} interrupted"
    );
    assert_eq!(interrupted + decided, senders.len());
    // The session in flight finished: every decided sender is in the store,
    // so nobody is asked twice.
    check_resume(&w, &dir, &senders, 0);
}

#[test]
fn sigkill_loses_at_most_the_session_in_flight() {
    let (w, senders) = slow_world();
    let dir = Dir::new(&senders);
    let mut child = start_and_wait(&w, &dir, 17);
    child.kill().unwrap();
    child.wait().unwrap();
    // One session at a time (--concurrency 1): at most its five senders are
    // asked again.
    check_resume(&w, &dir, &senders, 5);
    let h = Command::new(env!("CARGO_BIN_EXE_sendercheck"))
        .args(["history", "--state"])
        .arg(dir.db())
        .output()
        .unwrap();
    let text = String::from_utf8(h.stdout).unwrap();
    assert!(
        text.contains("unfinished") && text.contains("complete"),
        "{text}"
    );
}

/// Control RCPTs (random local part, postmaster@) across every server.
fn control_rcpts(w: &World) -> usize {
    rcpts(w)
        .iter()
        .filter(|(a, _)| a.starts_with("sendercheck-") || a.starts_with("postmaster@"))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn a_fresh_route_saves_the_dns_queries_of_expired_senders() {
    let w = world(&[("route.test", 64, &["news"])], 0);
    let dir = Dir::new(&["news@route.test".into(), "nobody@route.test".into()]);
    // Senders expire after 30 min, the route after the default hour.
    let ttls: &[&str] = &["--cache-pass-ttl", "30m", "--cache-fail-ttl", "30m"];

    run(&w, &dir, T0, ttls);
    assert_eq!(w.dns.count("route.test", "MX"), 1);

    // 45 min later: both senders expired, the route is still fresh.
    reset(&w);
    let (_, json) = run(&w, &dir, T0 + 45 * 60, ttls);
    let r = results(&json);
    assert_eq!(r["news@route.test"]["verdict"], "receivable");
    assert_eq!(r["nobody@route.test"]["verdict"], "unreceivable");
    assert!(r.values().all(|v| !has_flag(v, "cached")), "{r:?}");
    assert_eq!(w.dns.total("MX"), 0, "{:?}", w.dns.queries());
    assert_eq!(w.dns.queries(), vec![], "no DNS query at all");
    assert_eq!(json["stats"]["dns_queries"], serde_json::json!({}));
    let seen = rcpts(&w);
    assert_eq!(seen.get("news@route.test"), Some(&1), "re-probed");
    assert_eq!(seen.get("nobody@route.test"), Some(&1), "re-probed");
    assert_eq!(r["news@route.test"]["mx_hosts"][0], "mx.route.test");
    let transcript = r["news@route.test"]["transcript"].to_string();
    assert!(
        transcript.contains("MX route from the state store"),
        "{transcript}"
    );

    // Two hours after the first run: the senders (decided at 45 min) and the
    // route (learned at 0) have both expired, so DNS is asked again...
    reset(&w);
    let (_, json) = run(&w, &dir, T0 + 2 * HOUR, ttls);
    assert_eq!(w.dns.count("route.test", "MX"), 1);
    assert!(json["stats"]["dns_queries"]["MX"].as_u64().unwrap() >= 1);
    assert_eq!(rcpts(&w).get("news@route.test"), Some(&1));

    // ...and the route learned then is fresh again 40 min later.
    reset(&w);
    run(&w, &dir, T0 + 2 * HOUR + 40 * 60, ttls);
    assert_eq!(w.dns.total("MX"), 0, "{:?}", w.dns.queries());
    assert_eq!(rcpts(&w).get("news@route.test"), Some(&1));

    // --refresh ignores the cached route.
    reset(&w);
    run(&w, &dir, T0 + 2 * HOUR + 41 * 60, &["--refresh"]);
    assert_eq!(w.dns.count("route.test", "MX"), 1);
    integrity_ok(&dir.db());
}

#[test]
fn fresh_control_answers_are_not_asked_again_and_still_flag() {
    let w = world_of(vec![
        (
            "catch.test",
            65,
            Script::new("mx.catch.test")
                .domain("catch.test")
                .catch_all(true),
        ),
        (
            "nopm.test",
            66,
            Script::new("mx.nopm.test")
                .domain("nopm.test")
                .users(&["news", "info", "sales"])
                .postmaster(false),
        ),
    ]);
    let dir = Dir::new(&["news@catch.test".into(), "news@nopm.test".into()]);
    let (_, json) = run(&w, &dir, T0, &[]);
    let r = results(&json);
    assert!(has_flag(&r["news@catch.test"], "catch-all"), "{r:?}");
    assert!(has_flag(&r["news@nopm.test"], "no-postmaster"), "{r:?}");
    assert_eq!(control_rcpts(&w), 4, "{:?}", rcpts(&w));

    // An hour later the list has grown: the new senders are asked, the
    // domains' controls (catch-all accepted: 24 h; postmaster refused: 2 h)
    // are not.
    std::fs::write(
        dir.path.join("senders.csv"),
        "email\nnews@catch.test\nsales@catch.test\nnews@nopm.test\ninfo@nopm.test\n",
    )
    .unwrap();
    reset(&w);
    let (_, json) = run(&w, &dir, T0 + HOUR, &[]);
    let r = results(&json);
    assert_eq!(control_rcpts(&w), 0, "{:?}", rcpts(&w));
    let seen = rcpts(&w);
    assert_eq!(seen.get("sales@catch.test"), Some(&1));
    assert_eq!(seen.get("info@nopm.test"), Some(&1));
    assert_eq!(seen.get("news@catch.test"), None, "cached sender");
    assert_eq!(json["stats"]["rcpt_commands"], 2);
    for a in ["news@catch.test", "sales@catch.test"] {
        assert_eq!(r[a]["verdict"], "receivable", "{a}: {:?}", r[a]);
        assert!(has_flag(&r[a], "catch-all"), "{a}: {:?}", r[a]);
    }
    for a in ["news@nopm.test", "info@nopm.test"] {
        assert_eq!(r[a]["verdict"], "receivable", "{a}: {:?}", r[a]);
        assert!(has_flag(&r[a], "no-postmaster"), "{a}: {:?}", r[a]);
    }
    assert!(!has_flag(&r["sales@catch.test"], "cached"));
    let transcript = r["info@nopm.test"]["transcript"].to_string();
    assert!(
        transcript.contains("postmaster@ control answer from the state store"),
        "{transcript}"
    );

    // Three hours after the first run nopm.test's refused controls (2 h)
    // have expired and are asked again; catch.test's accepted ones (24 h)
    // are not.
    std::fs::write(
        dir.path.join("senders.csv"),
        "email\nnew1@catch.test\nsales@nopm.test\n",
    )
    .unwrap();
    reset(&w);
    let (_, json) = run(&w, &dir, T0 + 3 * HOUR, &[]);
    let r = results(&json);
    let seen = rcpts(&w);
    assert_eq!(seen.get("postmaster@nopm.test"), Some(&1), "{seen:?}");
    assert_eq!(seen.get("postmaster@catch.test"), None, "{seen:?}");
    let random_to = |d: &str| {
        seen.iter()
            .filter(|(a, _)| a.starts_with("sendercheck-") && a.ends_with(d))
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    assert_eq!(random_to("@catch.test"), 0, "{seen:?}");
    assert_eq!(random_to("@nopm.test"), 1, "{seen:?}");
    assert!(has_flag(&r["new1@catch.test"], "catch-all"));
    assert!(has_flag(&r["sales@nopm.test"], "no-postmaster"));

    // --refresh asks the controls again.
    reset(&w);
    run(&w, &dir, T0 + 3 * HOUR + 1, &["--refresh"]);
    assert_eq!(control_rcpts(&w), 4, "{:?}", rcpts(&w));
    integrity_ok(&dir.db());
}

#[test]
fn sigkill_mid_task_keeps_the_senders_of_finished_sessions() {
    // One domain, one MX that drops every connection after five commands
    // (EHLO, MAIL, three RCPTs): the single task needs several sessions.
    let users: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
    let user_refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let w = world_of(vec![(
        "drops.test",
        67,
        Script::new("mx.drops.test")
            .domain("drops.test")
            .users(&user_refs)
            .drop_after_commands(5),
    )]);
    let senders: Vec<String> = users.iter().map(|u| format!("{u}@drops.test")).collect();
    let dir = Dir::new(&senders);
    let mut child = command(&w, &dir, T0, SLOW_ARGS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The third connection opens after two sessions have answered: the
    // controls and one sender, then three senders.
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.servers[0].1.log().connections < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    integrity_ok(&dir.db());

    let (out, json) = run(&w, &dir, T0 + 60, SLOW_ARGS);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let r = results(&json);
    assert!(r.values().all(|v| v["verdict"] == "receivable"), "{r:?}");
    let cached = r.values().filter(|v| has_flag(v, "cached")).count();
    assert!(
        cached >= 4,
        "senders answered by finished sessions are in the store ({cached} cached)"
    );
}
