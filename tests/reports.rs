//! Report formats on a fixed, hand-built set of records covering every
//! verdict. Outputs are compared byte for byte with `tests/golden/`; run with
//! `UPDATE_GOLDEN=1` to regenerate them after an intended change.

use sendercheck::record::{
    Evidence, GroupLine, ReportContext, RunMeta, SenderRecord, Stage, Stats, Summary,
};
use sendercheck::report::{self, Format, Options, ReportError};
use sendercheck::verdict::{Decision, Flag, Verdict};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn ev(mx: &str, ip: &str, stage: Stage, reply: &[&str]) -> Option<Evidence> {
    Some(Evidence {
        mx_host: mx.into(),
        ip: ip.into(),
        stage,
        reply: reply.iter().map(|s| s.to_string()).collect(),
    })
}

#[allow(clippy::too_many_arguments)]
fn rec(
    line: u64,
    input: &str,
    verdict: Verdict,
    reason: &str,
    mx: &[&str],
    evidence: Option<Evidence>,
    campaign: &str,
) -> SenderRecord {
    let mut r = SenderRecord::new(line, input, verdict, reason);
    let trimmed = input.trim();
    if let Some((_, d)) = trimmed.rsplit_once('@') {
        if verdict != Verdict::InvalidAddress {
            r.address = Some(trimmed.to_string());
            r.domain = Some(d.to_string());
        }
    }
    r.extra = vec![
        ("campaign".into(), campaign.into()),
        ("owner".into(), "marketing".into()),
    ];
    r.mx_hosts = mx.iter().map(|s| s.to_string()).collect();
    if evidence.is_some() {
        r.transcript = vec![
            "<- 220 mx ESMTP".into(),
            "-> EHLO probe.test".into(),
            "-> MAIL FROM:<>".into(),
        ];
    }
    r.evidence = evidence;
    let (exim, postfix) = match verdict.class() {
        sendercheck::verdict::Class::Pass => (Decision::Pass, Decision::Pass),
        sendercheck::verdict::Class::Fail => (Decision::Fail, Decision::Fail),
        sendercheck::verdict::Class::Unknown => (Decision::Defer, Decision::Defer),
    };
    r.exim = Some(exim);
    r.postfix = Some(if verdict == Verdict::NullSenderRejected {
        Decision::Pass
    } else {
        postfix
    });
    r
}

/// The fixture: every verdict, hostile replies and cells included.
fn records() -> Vec<SenderRecord> {
    let mut v = vec![
        rec(
            2,
            "news@example.com",
            Verdict::Receivable,
            "RCPT accepted with the null sender",
            &["mx1.example.com", "mx2.example.com"],
            ev(
                "mx1.example.com",
                "192.0.2.10",
                Stage::RcptTo,
                &["250 2.1.5 Ok"],
            ),
            "spring",
        ),
        rec(
            3,
            "info@shop.example",
            Verdict::Unreceivable,
            "RCPT refused: user unknown",
            &["mail.shophost.co.uk"],
            ev(
                "mail.shophost.co.uk",
                "192.0.2.20",
                Stage::RcptTo,
                &[
                    "550-5.1.1 <info@shop.example>: \"unknown\" user & <script>alert(1)</script>",
                    "550 5.1.1 'mailbox' unavailable",
                ],
            ),
            "spring",
        ),
        rec(
            4,
            "news@relay.example",
            Verdict::Unreceivable,
            "RCPT refused: relay access denied (MX does not serve the domain)",
            &["mx.otherhost.example"],
            ev(
                "mx.otherhost.example",
                "192.0.2.30",
                Stage::RcptTo,
                &["554 5.7.1 <news@relay.example>: Relay access denied"],
            ),
            "spring",
        ),
        rec(
            5,
            "bounce@strict.example",
            Verdict::NullSenderRejected,
            "MAIL FROM:<> refused; a non-null sender is accepted",
            &["mx.strict.example"],
            ev(
                "mx.strict.example",
                "192.0.2.40",
                Stage::MailFrom,
                &["550 5.7.1 Null sender not accepted | see policy"],
            ),
            "summer",
        ),
        rec(
            6,
            "hello@nullmx.example",
            Verdict::NullMx,
            "the domain publishes a null MX (RFC 7505)",
            &[],
            None,
            "summer",
        ),
        rec(
            7,
            "a@nxdomain.example",
            Verdict::NoDomain,
            "NXDOMAIN",
            &[],
            None,
            "summer",
        ),
        rec(
            8,
            "b@nohost.example",
            Verdict::NoMailHost,
            "no MX and no A/AAAA",
            &[],
            None,
            "summer",
        ),
        rec(
            9,
            "not an address",
            Verdict::InvalidAddress,
            "no @ in the cell",
            &[],
            None,
            "=HYPERLINK(\"http://x\")",
        ),
        rec(
            10,
            "c@grey.example",
            Verdict::Tempfail,
            "4xx on every MX after re-probes (greylisting)",
            &["mx.grey.example"],
            ev(
                "mx.grey.example",
                "192.0.2.50",
                Stage::RcptTo,
                &["451 4.7.1 Greylisted\u{1b}[31m, try again later"],
            ),
            "autumn",
        ),
        rec(
            11,
            "d@down.example",
            Verdict::Unreachable,
            "no MX host accepted a connection",
            &["mx.down.example"],
            None,
            "autumn",
        ),
        rec(
            12,
            "e@block.example",
            Verdict::ProbeBlocked,
            "the refusal names the prober's IP",
            &["mx.block.example"],
            ev(
                "mx.block.example",
                "192.0.2.60",
                Stage::Greeting,
                &["554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org"],
            ),
            "autumn",
        ),
        rec(
            13,
            "f@servfail.example",
            Verdict::DnsError,
            "SERVFAIL",
            &[],
            None,
            "autumn",
        ),
        rec(
            14,
            "g@private.example",
            Verdict::Skipped,
            "MX resolves to a private address",
            &["mx.private.example"],
            None,
            "winter",
        ),
        rec(
            15,
            " sales@shop.example",
            Verdict::Unreceivable,
            "RCPT refused: user unknown",
            &["mail.shophost.co.uk"],
            ev(
                "mail.shophost.co.uk",
                "192.0.2.20",
                Stage::RcptTo,
                &["550 5.1.1 <sales@shop.example>: Recipient address rejected: User unknown"],
            ),
            "-winter",
        ),
        rec(
            16,
            "info@shop.example",
            Verdict::Unreceivable,
            "RCPT refused: user unknown",
            &["mail.shophost.co.uk"],
            ev(
                "mail.shophost.co.uk",
                "192.0.2.20",
                Stage::RcptTo,
                &["550 5.1.1 <info@shop.example>: Recipient address rejected: User unknown"],
            ),
            "winter",
        ),
    ];
    v[0].flags = vec![Flag::CatchAll, Flag::NoPostmaster];
    v[13].flags = vec![Flag::TrimmedWhitespace];
    v[14].flags = vec![Flag::Duplicate];
    v
}

fn context(records: &[SenderRecord]) -> ReportContext {
    let mut summary = Summary::default();
    for r in records {
        summary.add(r.verdict, 1);
    }
    let mut stats = Stats {
        rows: records.len() as u64,
        distinct_addresses: 14,
        distinct_domains: 13,
        blank_lines: 1,
        duration_ms: 1234,
        mx_groups: 8,
        connections: 7,
        transactions: 8,
        rcpt_commands: 12,
        ..Stats::default()
    };
    stats.dns_queries.insert("MX".into(), 13);
    stats.dns_queries.insert("A".into(), 9);
    stats
        .smtp_sessions_by_host
        .insert("mx1.example.com".into(), 1);
    ReportContext {
        meta: RunMeta {
            tool: "sendercheck".into(),
            version: "0.1.0".into(),
            input: "senders.csv".into(),
            started_at: "2026-01-02T03:04:05Z".into(),
            finished_at: "2026-01-02T03:04:06Z".into(),
            complete: true,
            stop_after: None,
        },
        summary,
        stats,
        groups: vec![
            GroupLine {
                mx_hosts: vec!["mail.shophost.co.uk".into()],
                domains: vec!["shop.example".into()],
                senders: 3,
                in_shard: true,
            },
            GroupLine {
                mx_hosts: vec!["mx1.example.com".into(), "mx2.example.com".into()],
                domains: vec!["example.com".into()],
                senders: 1,
                in_shard: true,
            },
        ],
        changes: None,
    }
}

/// Writes `format` for the fixture into a fresh directory.
fn render(format: Format, options: Options) -> (tempfile::TempDir, PathBuf) {
    let records = records();
    let ctx = context(&records);
    let dir = tempfile::tempdir().unwrap();
    let mut w = report::open_with(format, dir.path(), &ctx, options).unwrap();
    for r in &records {
        w.row(r).unwrap();
    }
    let paths = w.finish().unwrap();
    assert_eq!(paths, vec![dir.path().join(format.file_name())]);
    let path = paths[0].clone();
    (dir, path)
}

/// Compares `actual` with `tests/golden/<name>`, or rewrites it under
/// `UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    if expected != actual {
        panic!(
            "{name} differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{}",
            String::from_utf8_lossy(actual)
        );
    }
}

// ---------------------------------------------------------------- JSON

#[test]
fn json_golden_and_schema() {
    let (_dir, path) = render(Format::Json, Options::default());
    let bytes = std::fs::read(&path).unwrap();
    golden("report.json", &bytes);
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let errors = schema_check::validate(&doc, &schema);
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
    assert_eq!(doc["results"].as_array().unwrap().len(), records().len());
    assert_eq!(doc["summary"]["by_verdict"]["unreceivable"], 4);
    assert_eq!(doc["summary"]["by_verdict"].as_object().unwrap().len(), 12);
    assert_eq!(doc["results"][1]["extra"]["campaign"], "spring");
    assert!(doc["results"][1]["fix"]
        .as_str()
        .unwrap()
        .contains("info@shop.example: :blackhole:"));
}

#[test]
fn json_changes_section_matches_the_schema() {
    use sendercheck::record::{Change, Changes, PreviousRun};
    let records = records();
    let mut ctx = context(&records);
    ctx.changes = Some(Changes {
        previous_run: PreviousRun {
            id: 3,
            started_at: "2026-01-01T03:04:05Z".into(),
            complete: false,
        },
        newly_failing: vec![Change {
            address: "news@example.com".into(),
            verdict: Verdict::Unreceivable,
            previous: Some(Verdict::Receivable),
            since: Some("2026-01-02T03:04:05Z".into()),
        }],
        newly_fixed: vec![Change {
            address: "info@shop.example".into(),
            verdict: Verdict::Receivable,
            previous: Some(Verdict::NullSenderRejected),
            since: None,
        }],
        still_failing: vec![Change {
            address: "new@example.com".into(),
            verdict: Verdict::NoDomain,
            previous: None,
            since: Some("2025-12-24T00:00:00Z".into()),
        }],
    });
    let dir = tempfile::tempdir().unwrap();
    let mut w = report::open(Format::Json, dir.path(), &ctx).unwrap();
    for r in &records {
        w.row(r).unwrap();
    }
    let paths = w.finish().unwrap();
    let doc: Value = serde_json::from_slice(&std::fs::read(&paths[0]).unwrap()).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let errors = schema_check::validate(&doc, &schema);
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
    assert_eq!(
        doc["changes"]["newly_fixed"][0]["previous"],
        "null-sender-rejected"
    );
    let mut bad = doc.clone();
    bad["changes"]["newly_failing"][0]["verdict"] = "broken".into();
    assert_eq!(schema_check::validate(&bad, &schema).len(), 1);
    for format in [Format::Text, Format::Markdown] {
        let dir = tempfile::tempdir().unwrap();
        let mut w = report::open(format, dir.path(), &ctx).unwrap();
        for r in &records {
            w.row(r).unwrap();
        }
        let paths = w.finish().unwrap();
        let text = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(text.contains("news@example.com"), "{format:?}");
        assert!(text.contains("newly fixed"), "{format:?}: {text}");
        assert!(text.contains("2025-12-24T00:00:00Z"), "{format:?}");
    }
}

#[test]
fn schema_rejects_unknown_fields_and_codes() {
    let (_dir, path) = render(Format::Json, Options::default());
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["results"][0]["verdict"] = "maybe".into();
    doc["results"][1]["surprise"] = 1.into();
    doc["summary"]["by_class"]["pass"] = (-1).into();
    let errors = schema_check::validate(&doc, &schema);
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn json_with_no_rows_is_valid() {
    let ctx = context(&[]);
    let dir = tempfile::tempdir().unwrap();
    let w = report::open(Format::Json, dir.path(), &ctx).unwrap();
    let paths = w.finish().unwrap();
    let doc: Value = serde_json::from_slice(&std::fs::read(&paths[0]).unwrap()).unwrap();
    assert_eq!(doc["results"], Value::Array(vec![]));
    assert_eq!(doc["summary"]["total"], 0);
}

// ------------------------------------------------------------ atomicity

#[test]
fn dropped_writer_leaves_no_file() {
    let records = records();
    let ctx = context(&records);
    for format in Format::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut w = report::open(format, dir.path(), &ctx).unwrap();
        for r in &records {
            w.row(r).unwrap();
        }
        drop(w);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{format:?} left {left:?}");
    }
}

#[test]
fn format_names_parse() {
    for (s, f) in [
        ("json", Format::Json),
        ("csv", Format::Csv),
        ("md", Format::Markdown),
        ("markdown", Format::Markdown),
        ("html", Format::Html),
        ("junit", Format::Junit),
        ("text", Format::Text),
    ] {
        assert_eq!(Format::parse(s), Some(f));
    }
    assert_eq!(Format::parse("pdf"), None);
    assert!(matches!(
        report::open(Format::Json, Path::new("/nonexistent/dir"), &context(&[])),
        Err(ReportError::Io { .. })
    ));
}

/// A minimal JSON Schema (draft 2020-12) checker for the keywords our schema
/// uses. Unknown keywords are an error, so the schema cannot silently rely on
/// something this checker ignores.
mod schema_check {
    use serde_json::Value;

    const ANNOTATIONS: [&str; 5] = ["$schema", "$id", "title", "description", "$defs"];

    pub fn validate(doc: &Value, schema: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        check(doc, schema, schema, "$", &mut errors);
        errors
    }

    fn type_ok(v: &Value, t: &str) -> bool {
        match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            other => panic!("unknown type {other}"),
        }
    }

    fn check(v: &Value, s: &Value, root: &Value, at: &str, errors: &mut Vec<String>) {
        let s = s.as_object().expect("schema is an object");
        for (k, kw) in s {
            match k.as_str() {
                "$ref" => {
                    let r = kw.as_str().unwrap();
                    let name = r.strip_prefix("#/$defs/").expect("local $ref");
                    check(v, &root["$defs"][name], root, at, errors);
                }
                "type" => {
                    let ok = match kw {
                        Value::String(t) => type_ok(v, t),
                        Value::Array(ts) => ts.iter().any(|t| type_ok(v, t.as_str().unwrap())),
                        _ => panic!("bad type"),
                    };
                    if !ok {
                        errors.push(format!("{at}: not of type {kw}"));
                    }
                }
                "const" => {
                    if v != kw {
                        errors.push(format!("{at}: not {kw}"));
                    }
                }
                "enum" => {
                    if !kw.as_array().unwrap().contains(v) {
                        errors.push(format!("{at}: {v} not in enum"));
                    }
                }
                "minimum" => {
                    if let Some(n) = v.as_f64() {
                        if n < kw.as_f64().unwrap() {
                            errors.push(format!("{at}: {n} below minimum"));
                        }
                    }
                }
                "required" => {
                    if let Some(o) = v.as_object() {
                        for name in kw.as_array().unwrap() {
                            if !o.contains_key(name.as_str().unwrap()) {
                                errors.push(format!("{at}: missing {name}"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(o) = v.as_object() {
                        for (name, sub) in kw.as_object().unwrap() {
                            if let Some(x) = o.get(name) {
                                check(x, sub, root, &format!("{at}.{name}"), errors);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(o) = v.as_object() {
                        let known = s.get("properties").and_then(Value::as_object);
                        for (name, x) in o {
                            if known.is_some_and(|p| p.contains_key(name)) {
                                continue;
                            }
                            match kw {
                                Value::Bool(false) => {
                                    errors.push(format!("{at}: unexpected property {name}"))
                                }
                                Value::Bool(true) => {}
                                sub => check(x, sub, root, &format!("{at}.{name}"), errors),
                            }
                        }
                    }
                }
                "items" => {
                    if let Some(a) = v.as_array() {
                        for (i, x) in a.iter().enumerate() {
                            check(x, kw, root, &format!("{at}[{i}]"), errors);
                        }
                    }
                }
                k if ANNOTATIONS.contains(&k) => {}
                other => panic!("schema keyword {other} not supported by this checker"),
            }
        }
    }
}

// ---------------------------------------------------------------- text

#[test]
fn text_golden() {
    let (_dir, path) = render(Format::Text, Options::default());
    let text = std::fs::read_to_string(&path).unwrap();
    golden("report.txt", text.as_bytes());
    assert!(
        !text.contains('\u{1b}'),
        "control characters must be escaped"
    );
    assert!(text.contains("\\x1b[31m"));
    assert!(
        !text.contains("news@example.com  "),
        "passes are not listed"
    );
}

#[test]
fn text_verbose_and_plan() {
    let records = records();
    let mut ctx = context(&records);
    ctx.meta.complete = false;
    ctx.meta.stop_after = Some("dns".into());
    let buf = SharedBuf::default();
    let mut w = report::text_writer(Box::new(buf.clone()), &ctx, true);
    for r in &records {
        w.row(r).unwrap();
    }
    assert!(w.finish().unwrap().is_empty());
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    golden("report-verbose-plan.txt", text.as_bytes());
    assert!(text.contains("Plan: 2 MX group(s)"));
    assert!(text.contains("news@example.com"));
}

#[test]
fn text_broken_pipe_is_distinct() {
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }
    let records = records();
    let ctx = context(&records);
    let mut w = report::text_writer(Box::new(Closed), &ctx, false);
    assert!(matches!(w.row(&records[1]), Err(ReportError::BrokenPipe)));
}

#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_golden_and_injection() {
    let (_dir, path) = render(Format::Csv, Options::default());
    let bytes = std::fs::read(&path).unwrap();
    golden("report.csv", &bytes);
    let mut rdr = csv::Reader::from_reader(&bytes[..]);
    let headers = rdr.headers().unwrap().clone();
    assert_eq!(&headers[0], "line");
    assert_eq!(&headers[12], "campaign");
    assert_eq!(&headers[13], "owner");
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), records().len());
    let invalid = rows.iter().find(|r| &r[0] == "9").unwrap();
    assert_eq!(&invalid[1], "not an address");
    assert_eq!(&invalid[12], "'=HYPERLINK(\"http://x\")");
    let dash = rows.iter().find(|r| &r[0] == "15").unwrap();
    assert_eq!(&dash[12], "'-winter");
    assert_eq!(&dash[6], "trimmed-whitespace");
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "unsafe cell {cell:?}"
            );
        }
    }
}

// ------------------------------------------------------------ Markdown

#[test]
fn markdown_golden() {
    let (_dir, path) = render(Format::Markdown, Options::default());
    let md = std::fs::read_to_string(&path).unwrap();
    golden("report.md", md.as_bytes());
    assert!(!md.contains("<script>"));
    assert!(md.contains("<details>"));
    assert!(md.contains("info@shop.example: :blackhole:"));
    assert!(md.contains("sales@shop.example: :blackhole:"));
    assert!(!md.contains("news@relay.example: :blackhole:"));
}

// ---------------------------------------------------------------- JUnit

fn junit_counts(xml: &str) -> (roxmltree::Document<'_>, [u64; 4]) {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    let attr = |n: &str| suite.attribute(n).unwrap().parse::<u64>().unwrap();
    let counts = [
        attr("tests"),
        attr("failures"),
        attr("errors"),
        attr("skipped"),
    ];
    (doc, counts)
}

#[test]
fn junit_golden_and_counts() {
    let (_dir, path) = render(Format::Junit, Options::default());
    let xml = std::fs::read_to_string(&path).unwrap();
    golden("junit.xml", xml.as_bytes());
    let (doc, counts) = junit_counts(&xml);
    assert_eq!(counts, [15, 9, 0, 5]);
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 15);
    assert_eq!(
        cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
            .count(),
        9
    );
    let info = cases[1];
    assert_eq!(
        info.attribute("classname"),
        Some("sendercheck.shop.example")
    );
    assert_eq!(info.attribute("name"), Some("line 3: info@shop.example"));
    let failure = info.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("type"), Some("unreceivable"));
    let body = failure.text().unwrap();
    assert!(body.contains("<script>alert(1)</script>"), "{body}");
    assert!(body.contains("fix: add `info@shop.example: :blackhole:`"));
    // The ESC byte in the greylisting reply is illegal in XML 1.0: the parse
    // above succeeded, so it was stripped.
    assert!(!xml.contains('\u{1b}'));
}

#[test]
fn junit_gate_unknown_fails_unknowns() {
    let (_dir, path) = render(
        Format::Junit,
        Options {
            gate_unknown: true,
            ..Options::default()
        },
    );
    let xml = std::fs::read_to_string(&path).unwrap();
    let (_, counts) = junit_counts(&xml);
    assert_eq!(counts, [15, 14, 0, 0]);
}

// ---------------------------------------------------------------- HTML

#[test]
fn html_golden_and_escaping() {
    let (_dir, path) = render(Format::Html, Options::default());
    let html = std::fs::read_to_string(&path).unwrap();
    golden("report.html", html.as_bytes());
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;unknown&quot; user &amp; "));
    assert!(html.contains("&#39;mailbox&#39;"));
    // self-contained: nothing fetched from elsewhere
    for needle in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(needle), "external reference {needle}");
    }
    assert_eq!(html.matches("<script>").count(), 1);
    // every sender has a row, each with its class for the filter
    assert_eq!(html.matches("<tr class=\"fail\"").count(), 9);
    assert_eq!(html.matches("<tr class=\"unknown\"").count(), 5);
    assert_eq!(html.matches("<tr class=\"pass\"").count(), 1);
    assert!(html.contains("shophost.co.uk"));
}

// ---------------------------------------------------------------- fixes

#[test]
fn fix_files() {
    let records = records();
    let dir = tempfile::tempdir().unwrap();
    // A stale file from an earlier run must not survive.
    std::fs::create_dir_all(dir.path().join("fixes/valiases")).unwrap();
    std::fs::write(dir.path().join("fixes/valiases/old.example"), "x").unwrap();
    let mut w = report::fix_writer(dir.path());
    for r in &records {
        w.row(r).unwrap();
    }
    let mut written = w.finish().unwrap();
    written.sort();
    let fixes = dir.path().join("fixes");
    let rel: Vec<String> = written
        .iter()
        .map(|p| p.strip_prefix(&fixes).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "FIXES.md",
            "postfix-virtual",
            "qmail/shop.example/.qmail-info",
            "qmail/shop.example/.qmail-sales",
            "sendmail-virtusertable",
            "valiases/shop.example",
        ]
    );
    let read = |p: &str| std::fs::read_to_string(fixes.join(p)).unwrap();
    assert_eq!(
        read("valiases/shop.example"),
        "info@shop.example: :blackhole:\nsales@shop.example: :blackhole:\n"
    );
    assert!(!fixes.join("valiases/relay.example").exists());
    assert!(!fixes.join("valiases/old.example").exists());
    assert_eq!(read("qmail/shop.example/.qmail-info"), "#\n");
    let postfix = read("postfix-virtual");
    assert!(postfix.contains("\ninfo@shop.example  devnull@localhost\n"));
    assert!(postfix.contains("devnull: /dev/null"));
    assert!(!postfix.contains("relay.example"));
    assert!(read("sendmail-virtusertable").contains("\nsales@shop.example\tdevnull\n"));
    let md = read("FIXES.md");
    golden("FIXES.md", md.as_bytes());
    assert!(md.contains("relay denied"));
    assert!(md.contains("RFC 5321 §4.5.5"));
    // nothing left behind but the fixes tree
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("fixes")]);
}

#[test]
fn one_line_fixes() {
    use sendercheck::fix::{one_line, Problem};
    let records = records();
    let by_line = |n: u64| records.iter().find(|r| r.line == n).unwrap();
    assert_eq!(Problem::of(by_line(3)), Some(Problem::UserUnknown));
    assert_eq!(Problem::of(by_line(4)), Some(Problem::RelayDenied));
    assert_eq!(Problem::of(by_line(2)), None);
    assert_eq!(Problem::of(by_line(10)), None);
    assert!(one_line(by_line(5)).unwrap().contains("MAIL FROM:<>"));
    assert!(one_line(by_line(6)).unwrap().contains("publish a real MX"));
    assert!(one_line(by_line(9)).unwrap().contains("line 9"));
    assert_eq!(one_line(by_line(12)), None);
}

// ---------------------------------------------------------- throughput

/// `cargo test --release --test reports -- --ignored --nocapture`: a million
/// rows through every format, timed. Peak memory can be checked by running
/// the same under `/usr/bin/time -v`.
#[test]
#[ignore]
fn million_rows() {
    let fixture = records();
    let n = 1_000_000u64;
    let mut ctx = context(&fixture);
    ctx.summary = Summary::default();
    for i in 0..n {
        ctx.summary.add(fixture[(i % 15) as usize].verdict, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let mut r = fixture[0].clone();
    let mut sum = 0;
    for i in 0..n {
        r.clone_from(&fixture[(i % 15) as usize]);
        r.line = i + 2;
        sum += std::hint::black_box(&r).line;
    }
    println!("clone only: {:?} ({sum})", start.elapsed());
    let start = std::time::Instant::now();
    for i in 0..n {
        std::hint::black_box(sendercheck::fix::one_line(&fixture[(i % 15) as usize]));
    }
    println!("one_line only: {:?}", start.elapsed());
    let start = std::time::Instant::now();
    let mut sink = std::io::BufWriter::with_capacity(256 * 1024, std::io::sink());
    for i in 0..n {
        serde_json::to_writer(&mut sink, &fixture[(i % 15) as usize]).unwrap();
    }
    println!("serde_json of records to sink: {:?}", start.elapsed());
    for format in Format::ALL {
        let start = std::time::Instant::now();
        let mut w = report::open(format, dir.path(), &ctx).unwrap();
        let mut r = fixture[0].clone();
        for i in 0..n {
            let base = &fixture[(i % 15) as usize];
            r.clone_from(base);
            r.line = i + 2;
            w.row(&r).unwrap();
        }
        let paths = w.finish().unwrap();
        let size = std::fs::metadata(&paths[0]).unwrap().len();
        println!(
            "{format:?}: {n} rows in {:?}, {} MB",
            start.elapsed(),
            size / 1_000_000
        );
    }
    let start = std::time::Instant::now();
    let mut w = report::fix_writer(dir.path());
    for i in 0..n {
        let mut r = fixture[(i % 15) as usize].clone();
        if let Some(a) = &mut r.address {
            *a = format!("u{i}.{a}");
        }
        w.row(&r).unwrap();
    }
    w.finish().unwrap();
    println!("fixes: {n} rows in {:?}", start.elapsed());
}
