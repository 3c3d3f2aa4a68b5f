//! The binary as a CI gate and a cron job sees it: exit codes for every
//! `--fail-on` mode, the offline demo end to end, the configuration file,
//! ignore lists, `check`'s transcript, clean standard error, broken pipes and
//! spreadsheet-safe CSV.
//!
//! Inputs need no network where possible (`--stop-after syntax`); the rest
//! run against a tiny in-process mail world on 127.0.6x.y (one net per test).

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use common::*;
use sendercheck::world::{Script, Zone};
use serde_json::Value;

/// A world with `ok.test` served by `mx.ok.test` on 127.0.`net`.10, which
/// knows the user `news` and refuses every other local part.
fn ok_world(net: u8) -> MailWorld {
    let mut z = Zone::new();
    z.mx("ok.test", 10, "mx.ok.test");
    MailWorld::start(
        z,
        vec![(
            "mx.ok.test",
            ip(net, 10),
            Script::default().users(&["news"]),
        )],
    )
}

fn bin() -> Command {
    let mut c = Command::cargo_bin("sendercheck").expect("binary");
    c.timeout(Duration::from_secs(60));
    c
}

/// Runs the binary in `cwd` with `args`.
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run sendercheck")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("report.json is JSON")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

// ------------------------------------------------------------ exit codes

#[test]
fn exit_code_matrix() {
    let w = ok_world(60);
    let world_args = w.args();
    let world_args: Vec<&str> = world_args.iter().map(String::as_str).collect();
    let syntax_only = ["--stop-after", "syntax"];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let all_pass = write(d, "pass.csv", "sender\nnews@ok.test\n");
    let some_fail = write(d, "fail.csv", "sender\nnews@ok.test\nnobody@ok.test\n");
    // Valid addresses, never probed: `skipped`, which is unknown.
    let only_unknown = write(d, "unknown.csv", "sender\nnews@a.test\nbilling@b.test\n");
    let no_column = write(d, "nocolumn.csv", "name,campaign\nAlice,spring\n");
    let missing = d.join("does-not-exist.csv");

    type Case<'a> = (&'a str, &'a Path, &'a [&'a str], [i32; 4]);
    // Expected codes for: no --fail-on, fail, unknown, never.
    let cases: [Case; 5] = [
        ("all pass", &all_pass, &world_args, [0, 0, 0, 0]),
        ("some fail", &some_fail, &world_args, [1, 1, 1, 0]),
        ("only unknown", &only_unknown, &syntax_only, [0, 0, 1, 0]),
        ("missing column", &no_column, &syntax_only, [2, 2, 2, 2]),
        ("unreadable file", &missing, &syntax_only, [2, 2, 2, 2]),
    ];
    let modes: [Option<&str>; 4] = [None, Some("fail"), Some("unknown"), Some("never")];
    let mut failures = Vec::new();
    for (name, input, extra, want) in cases {
        for (mode, want) in modes.iter().zip(want) {
            let out = d.join("out");
            let mut args = vec!["audit", s(input), "-q", "--format", "json", "-o", s(&out)];
            if let Some(m) = mode {
                args.extend(["--fail-on", m]);
            }
            args.extend(extra.iter().copied());
            let o = run_in(d, &args);
            let got = code(&o);
            if got != want {
                failures.push(format!(
                    "{name} × --fail-on {}: exit {got}, want {want}; stderr: {}",
                    mode.unwrap_or("(default)"),
                    stderr(&o).trim()
                ));
            }
            if want == 2 {
                let err = stderr(&o);
                assert!(
                    err.starts_with("sendercheck: error:"),
                    "{name}: an input error says so on stderr: {err:?}"
                );
                assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    w.assert_clean();
}

// ------------------------------------------------------------------ demo

/// The cPanel valiases lines the demo's report.json calls for: one per
/// unreceivable address whose MX said "user unknown" (relay denied is an MX
/// problem, fixed in DNS, not with an alias).
fn expected_valiases(report: &Value) -> (BTreeSet<String>, Vec<String>) {
    let mut want = BTreeSet::new();
    let mut relay_denied = Vec::new();
    for r in report["results"].as_array().expect("results[]") {
        if r["verdict"] != "unreceivable" {
            continue;
        }
        let address = r["address"].as_str().expect("address").to_string();
        let reason = r["reason"].as_str().unwrap_or_default().to_lowercase();
        if reason.contains("relay denied") {
            relay_denied.push(address);
        } else {
            want.insert(format!("{address}: :blackhole:"));
        }
    }
    (want, relay_denied)
}

#[test]
fn demo_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = bin()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "-q", "-o", s(&out)])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "demo exits 1: {}", stderr(&o));
    assert_eq!(stderr(&o), "", "-q: nothing on stderr");
    assert!(stdout(&o).contains("Summary:"), "{}", stdout(&o));

    for f in [
        "report.json",
        "report.csv",
        "report.md",
        "report.html",
        "junit.xml",
        "fixes/FIXES.md",
    ] {
        let len = std::fs::metadata(out.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .len();
        assert!(len > 0, "{f} is empty");
    }
    let report = read_json(&out.join("report.json"));
    let total = report["summary"]["total"].as_u64().unwrap();
    assert_eq!(report["results"].as_array().unwrap().len() as u64, total);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml parses");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count() as u64;
    assert_eq!(cases, total, "one test case per sender");
    let csv_rows = csv::Reader::from_path(out.join("report.csv"))
        .unwrap()
        .records()
        .count() as u64;
    assert_eq!(csv_rows, total, "one CSV row per input row");

    // valiases: exactly the user-unknown addresses, one file per domain.
    let (want, relay_denied) = expected_valiases(&report);
    assert!(!want.is_empty(), "the demo has unknown users");
    assert!(
        !relay_denied.is_empty(),
        "the demo has a relay-denied sender"
    );
    let mut got = BTreeSet::new();
    let valiases = out.join("fixes/valiases");
    for entry in std::fs::read_dir(&valiases).expect("fixes/valiases/") {
        let path = entry.unwrap().path();
        let domain = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.ends_with(&format!("@{domain}: :blackhole:")),
                "valiases/{domain}: line for another domain or format: {line:?}"
            );
            assert!(got.insert(line.to_string()), "duplicate line {line:?}");
        }
    }
    assert_eq!(
        got, want,
        "valiases lines vs unreceivable user-unknown senders"
    );
    for a in &relay_denied {
        assert!(
            !got.iter().any(|l| l.starts_with(&format!("{a}:"))),
            "relay-denied {a} must be fixed at the MX, not aliased"
        );
    }
}

// ---------------------------------------------------------- configuration

#[test]
fn config_file_is_honoured_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "in.csv", "sender\nnews..x@a.test\n");
    let base = ["audit", "in.csv", "--stop-after", "syntax", "-q"];

    // No configuration: an invalid address fails the gate.
    assert_eq!(code(&run_in(d, &base)), 1);

    // ./sendercheck.toml is read when present.
    write(d, "sendercheck.toml", "fail_on = \"never\"\n");
    let o = run_in(d, &base);
    assert_eq!(
        code(&o),
        0,
        "fail_on = never from ./sendercheck.toml: {}",
        stderr(&o)
    );

    // The command line wins over the file.
    let mut args = base.to_vec();
    args.extend(["--fail-on", "fail"]);
    assert_eq!(code(&run_in(d, &args)), 1, "--fail-on beats the file");

    // --config FILE, from anywhere.
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "in.csv", "sender\nnews..x@a.test\n");
    let cfg = d.join("sendercheck.toml");
    let mut args = base.to_vec();
    args.extend(["--config", s(&cfg)]);
    assert_eq!(code(&run_in(other.path(), &args)), 0, "--config FILE");
}

#[test]
fn config_errors_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "in.csv", "sender\nnews@a.test\n");
    let base = ["audit", "in.csv", "--stop-after", "syntax", "-q"];

    // An unknown key, found implicitly and given explicitly.
    write(
        d,
        "sendercheck.toml",
        "fail_on = \"never\"\nper_host_rat = 3\n",
    );
    for extra in [&[][..], &["--config", "sendercheck.toml"][..]] {
        let mut args = base.to_vec();
        args.extend(extra);
        let o = run_in(d, &args);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
        assert!(err.contains("per_host_rat"), "names the key: {err}");
        assert!(err.contains("sendercheck.toml"), "names the file: {err}");
    }

    // A missing --config file is an error, not a silent default.
    std::fs::remove_file(d.join("sendercheck.toml")).unwrap();
    let mut args = base.to_vec();
    args.extend(["--config", "missing.toml"]);
    let o = run_in(d, &args);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("missing.toml"), "{err}");
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the cause is said once: {err}"
    );
}

// ------------------------------------------------------------ ignore lists

#[test]
fn excluded_senders_are_skipped_with_the_flag_named() {
    let w = ok_world(61);
    let run = w.audit(
        &[
            "news@ok.test",
            "nobody@ok.test",
            "a@skip.test",
            "b@Skip.Test",
        ],
        &[
            "--exclude-domain",
            "SKIP.test",
            "--exclude-address",
            "Nobody@ok.test",
        ],
    );
    assert_eq!(
        run.code, 0,
        "the only failing sender is excluded: {}",
        run.stderr
    );
    assert_eq!(run.result("news@ok.test")["verdict"], "receivable");
    assert_verdict(run.result("nobody@ok.test"), "skipped", "--exclude-address");
    assert_verdict(run.result("a@skip.test"), "skipped", "--exclude-domain");
    assert_verdict(run.result("b@Skip.Test"), "skipped", "--exclude-domain");
    let log = w.log("mx.ok.test");
    let rcpts = log.verbs("RCPT").join("\n").to_lowercase();
    assert!(
        !rcpts.contains("nobody@ok.test"),
        "excluded address probed: {rcpts}"
    );
    assert!(
        !rcpts.contains("skip.test"),
        "excluded domain probed: {rcpts}"
    );
    assert_eq!(
        w.dns.count("skip.test", "MX"),
        0,
        "excluded domain looked up"
    );
    w.assert_clean();
}

// ------------------------------------------------------------------ check

#[test]
fn check_prints_the_smtp_dialogue_never_data() {
    let w = ok_world(62);
    let mut args = vec![
        "check".to_string(),
        "news@ok.test".into(),
        "nobody@ok.test".into(),
    ];
    args.extend(w.args());
    let o = bin().args(&args).arg("-q").output().unwrap();
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "nobody@ fails: {out}\n{}", stderr(&o));
    assert!(out.contains("MAIL FROM:<>"), "{out}");
    // Like a telnet session: every command is followed by the server's reply.
    let after_mail = out
        .lines()
        .skip_while(|l| !l.contains("> MAIL FROM:<>"))
        .nth(1)
        .unwrap_or_default();
    assert!(after_mail.trim_start().starts_with("< 250"), "{out}");
    assert!(
        out.lines().any(|l| l.trim_start() == "> EHLO prober.test")
            || out.lines().any(|l| l.trim_start().starts_with("> EHLO ")),
        "{out}"
    );
    for (addr, reply) in [("news@ok.test", "250"), ("nobody@ok.test", "550")] {
        let rcpt = format!("RCPT TO:<{addr}>");
        let at = out
            .find(&rcpt)
            .unwrap_or_else(|| panic!("no {rcpt}: {out}"));
        let next = out[at..].lines().nth(1).unwrap_or_default();
        assert!(
            next.trim_start().starts_with(&format!("< {reply}")),
            "server reply after {rcpt}: {next:?}\n{out}"
        );
    }
    assert!(!out.contains("DATA"), "{out}");
    w.assert_clean();
}

#[test]
fn check_numbers_rows_by_argument_position() {
    let w = ok_world(64);
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "check".to_string(),
        "bad@@ok.test".into(),
        "news@ok.test".into(),
    ];
    args.extend(w.args());
    let o = bin()
        .args(&args)
        .args(["-q", "--no-state", "--format", "json", "-o"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let rows = report["results"].as_array().unwrap();
    let lines: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["input"].as_str().unwrap(), r["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(lines, [("bad@@ok.test", 1), ("news@ok.test", 2)]);
    assert_eq!(rows[1]["verdict"], "receivable", "{:#}", rows[1]);
}

// ----------------------------------------------------------------- stderr

fn assert_no_terminal_garbage(what: &str, text: &[u8]) {
    assert!(
        !text.contains(&0x1b),
        "{what}: ANSI escape: {:?}",
        String::from_utf8_lossy(text)
    );
    assert!(
        !text.contains(&b'\r'),
        "{what}: carriage return: {:?}",
        String::from_utf8_lossy(text)
    );
}

#[test]
fn no_garbage_for_cron() {
    let w = ok_world(63);
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.csv",
        &csv_of(&["news@ok.test", "nobody@ok.test"]),
    );
    let out = dir.path().join("out");
    let world_args = w.args();
    for verbosity in [None, Some("-v"), Some("-vv")] {
        let mut c = bin();
        c.args(["audit", s(&input), "--format", "json,html", "-o", s(&out)])
            .args(&world_args);
        if let Some(v) = verbosity {
            c.arg(v);
        }
        let o = c.output().unwrap();
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let what = format!("audit {}", verbosity.unwrap_or(""));
        assert_no_terminal_garbage(&format!("{what} stderr"), &o.stderr);
        assert_no_terminal_garbage(&format!("{what} stdout"), &o.stdout);
    }

    // -q and nothing wrong: stderr stays empty.
    let clean = write(dir.path(), "clean.csv", &csv_of(&["news@ok.test"]));
    let o = bin()
        .args(["audit", s(&clean), "-q", "--format", "json", "-o", s(&out)])
        .args(&world_args)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "-q prints nothing on stderr");
    assert!(!o.stdout.is_empty(), "the text report still goes to stdout");
    w.assert_clean();
}

// ------------------------------------------------------------ broken pipe

#[test]
fn broken_pipe_on_stdout_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Thousands of failing rows: the text report is far larger than a pipe
    // buffer, so writing it must hit the closed pipe.
    let mut csv = String::from("sender\n");
    for i in 0..20_000 {
        csv.push_str(&format!("broken-address-number-{i}.example.test\n"));
    }
    let input = write(dir.path(), "in.csv", &csv);
    for extra in [&[][..], &["--format", "json,csv", "-o", "out"][..]] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("sendercheck"))
            .current_dir(dir.path())
            .args(["audit", s(&input), "--stop-after", "syntax", "-q"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            matches!(status.code(), Some(0) | Some(1)),
            "exit {status:?} with stdout closed; stderr: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
        // `sendercheck audit … | head` in a gate: the run still completes,
        // so failing senders still fail it and the report files are written.
        assert_eq!(status.code(), Some(1), "the gate still counts: {err}");
        if !extra.is_empty() {
            let report = read_json(&dir.path().join("out/report.json"));
            assert_eq!(report["summary"]["total"], 20_000);
        }
    }
}

// -------------------------------------------------------------------- CSV

#[test]
fn csv_report_neutralises_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "in.csv",
        "sender,note,owner,cost,tab\n\
         news@a.test,\"=HYPERLINK(\"\"http://x\"\")\",@SUM(A1),+1,-2\n\
         \"=HYPERLINK(\"\"http://y\"\")\",plain,x,y,\"\tz\"\n",
    );
    let o = run_in(
        d,
        &[
            "audit",
            "in.csv",
            "--stop-after",
            "syntax",
            "-q",
            "--format",
            "csv",
            "-o",
            "out",
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let mut reader = csv::Reader::from_path(d.join("out/report.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let note = header.iter().position(|h| h == "note").expect("note kept");
    assert_eq!(&rows[0][note], "'=HYPERLINK(\"http://x\")");
    for row in &rows {
        for (h, cell) in header.iter().zip(row.iter()) {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "column {h}: live formula {cell:?}"
            );
        }
    }
    let text = std::fs::read_to_string(d.join("out/report.csv")).unwrap();
    assert!(text.contains("HYPERLINK(\"\"http://y\"\")"), "{text}");
}
