//! The demo's `report.html` rendered by a real browser: Debian's headless
//! `chromium` (installed by `.ci/run`) takes a screenshot and dumps the DOM
//! after the page's script ran; the page must show the summary numbers of
//! `report.json`.
//!
//! Without a `chromium` binary the test is skipped with a notice, except
//! under `CI`, where a missing browser is a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

/// `chromium` on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// Flags that keep a headless Chromium offline and quiet in a container.
/// Chromium, in a network namespace of its own (only a loopback) where one
/// can be made: the page is a local file, and the browser's own start-up
/// probes (name lookups, an IPv6 reachability check) then reach nothing.
fn browser(exe: &Path, profile: &Path) -> Command {
    let isolated = std::process::Command::new("unshare")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut c = if isolated {
        let mut c = Command::new("unshare");
        c.args(["-n", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // The page is a local file and self-contained: the browser must not
        // resolve any name (it would ask the machine's DNS server otherwise).
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--dns-prefetch-disable",
        "--no-pings",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .timeout(Duration::from_secs(120));
    c
}

/// The page's text: tags become spaces, whitespace collapses.
fn text_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn demo_report_renders_in_headless_chromium() {
    let Some(exe) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed, but CI is set: .ci/run installs it (apt-get install chromium)");
        }
        // Straight to the process's stderr: the test harness captures
        // `eprintln!` of passing tests, and this notice must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED html_chromium: no `chromium` on PATH \
             (apt-get install --no-install-recommends chromium to run it) ***\n"
        );
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let demo = Command::cargo_bin("sendercheck")
        .unwrap()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "-q", "-o"])
        .arg(&out)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(
        demo.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let summary = &report["summary"];
    let total = summary["total"].as_u64().unwrap();
    let count = |class: &str| summary["by_class"][class].as_u64().unwrap();
    assert!(total > 0);

    let page = std::fs::canonicalize(out.join("report.html")).unwrap();
    let url = format!("file://{}", page.display());

    // Screenshot.
    let shot = dir.path().join("shot.png");
    let o = browser(&exe, &dir.path().join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "chromium --screenshot: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}); chromium said:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10 * 1024, "screenshot only {} bytes", png.len());
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000), "screenshot size");

    // The DOM after the page's script ran.
    let o = browser(&exe, &dir.path().join("profile-dom"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "chromium --dump-dom: {:?}", o.status);
    let dom = String::from_utf8_lossy(&o.stdout);
    let text = text_of(&dom);
    for phrase in [
        format!("{total} senders"),
        format!("{} pass", count("pass")),
        format!("{} fail", count("fail")),
        format!("{} unknown", count("unknown")),
    ] {
        assert!(
            text.contains(&phrase),
            "rendered page lacks {phrase:?}: {}",
            &text[..text.len().min(600)]
        );
    }
    assert_eq!(
        count("pass") + count("fail") + count("unknown"),
        total,
        "classes add up"
    );
    // One table row per sender, and the filter box the script reveals.
    assert_eq!(
        dom.matches("<tr class=").count() as u64,
        total,
        "table rows"
    );
    assert!(
        dom.contains("<div id=\"filters\">"),
        "the filter script ran"
    );
    assert!(text.contains("Sender verification report"));
}
