//! Input handling through the binary: every CSV oddity a real sender list has,
//! each with its message and its line number checked. No network: every run
//! stops after the syntax stage.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    json: Option<Value>,
    raw_json: String,
}

impl Run {
    fn results(&self) -> &Vec<Value> {
        self.json.as_ref().expect("report.json")["results"]
            .as_array()
            .expect("results array")
    }

    /// The result whose `line` is `line`.
    fn at(&self, line: u64) -> &Value {
        self.results()
            .iter()
            .find(|r| r["line"] == line)
            .unwrap_or_else(|| panic!("no result for line {line}: {:#?}", self.results()))
    }

    /// The flags of the result for `line`.
    fn flags(&self, line: u64) -> Vec<String> {
        self.at(line)["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect()
    }

    fn lines(&self) -> Vec<u64> {
        self.results()
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect()
    }

    /// The error message, which must be one line.
    fn error(&self) -> &str {
        assert_eq!(self.code, 2, "stderr: {}", self.stderr);
        let text = self.stderr.trim_end_matches('\n');
        assert!(
            !text.contains('\n'),
            "an error message is a single line, got: {text:?}"
        );
        assert!(text.starts_with("sendercheck: error: "), "{text:?}");
        text
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs `audit <input> --stop-after syntax --format json -o <dir>/out <args>`.
fn audit_with(input: &str, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let out = dir.join("out");
    let mut cmd = Command::cargo_bin("sendercheck").unwrap();
    cmd.current_dir(dir)
        .arg("audit")
        .arg(input)
        .args(["--stop-after", "syntax", "--format", "json", "-o"])
        .arg(&out)
        .args(args);
    if let Some(bytes) = stdin {
        cmd.write_stdin(bytes.to_vec());
    }
    let o = cmd.output().unwrap();
    let raw_json = std::fs::read_to_string(out.join("report.json")).unwrap_or_default();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        json: serde_json::from_str(&raw_json).ok(),
        raw_json,
    }
}

/// Writes `bytes` to `in.csv` and audits it.
fn audit(bytes: &[u8], args: &[&str]) -> Run {
    let dir = tmp();
    let p = write(dir.path(), "in.csv", bytes);
    audit_with(p.to_str().unwrap(), dir.path(), args, None)
}

fn verdict(r: &Value) -> &str {
    r["verdict"].as_str().unwrap()
}

fn reason(r: &Value) -> &str {
    r["reason"].as_str().unwrap()
}

#[test]
fn bom_before_header_still_finds_the_column() {
    let run = audit(
        b"\xEF\xBB\xBFemail,campaign\nnews@example.com,spring\nbad address,spring\n",
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), [2, 3]);
    assert_eq!(run.at(2)["address"], "news@example.com");
    assert_eq!(verdict(run.at(2)), "skipped");
    assert_eq!(verdict(run.at(3)), "invalid-address");
    // The header name comes out clean, BOM stripped.
    assert_eq!(run.at(2)["extra"]["campaign"], "spring");
}

#[test]
fn bom_with_no_header_is_not_part_of_the_first_address() {
    let run = audit(
        b"\xEF\xBB\xBFnews@example.com\nx@example.org\n",
        &["--no-header"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), [1, 2]);
    assert_eq!(run.at(1)["address"], "news@example.com");
    assert_eq!(run.at(1)["input"], "news@example.com");
}

#[test]
fn crlf_line_endings() {
    let run = audit(
        b"email,owner\r\na@example.com,ann\r\nnot-an-address,bob\r\nc@example.com,cy\r\n",
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), [2, 3, 4]);
    assert_eq!(run.at(2)["extra"]["owner"], "ann");
    assert_eq!(verdict(run.at(3)), "invalid-address");
    assert_eq!(run.at(3)["input"], "not-an-address");
    assert_eq!(run.at(4)["address"], "c@example.com");
    // No stray CR in any value.
    assert!(!run.raw_json.contains("\\r"), "{}", run.raw_json);
}

#[test]
fn crlf_with_blank_lines() {
    let run = audit(
        b"email\r\n\r\na@example.com\r\n\r\n\r\nb@example.com\r\n",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), [3, 6]);
    assert!(
        run.stderr
            .contains("skipped 3 blank line(s) (line 2, 4, 5)"),
        "{}",
        run.stderr
    );
}

#[test]
fn quoted_fields_with_commas_and_newlines() {
    let csv = b"email,notes,owner\n\
a@example.com,\"one, two\",ann\n\
b@example.com,\"line one\nline two\nline three\",bob\n\
\"c@example.com\",plain,cy\n\
bad@,\"x\ny\",dee\n\
e@example.com,,eve\n";
    let run = audit(csv, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), [2, 3, 6, 7, 9]);
    assert_eq!(run.at(2)["extra"]["notes"], "one, two");
    assert_eq!(
        run.at(3)["extra"]["notes"],
        "line one\nline two\nline three"
    );
    assert_eq!(run.at(3)["extra"]["owner"], "bob");
    assert_eq!(run.at(6)["address"], "c@example.com");
    assert_eq!(verdict(run.at(7)), "invalid-address");
    assert_eq!(run.at(9)["address"], "e@example.com");
    assert_eq!(run.at(9)["extra"]["notes"], "");
}

#[test]
fn quoted_address_cell_with_embedded_newline_is_invalid() {
    let run = audit(b"email\n\"a@exa\nmple.com\"\nb@example.com\n", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), [2, 4]);
    assert_eq!(verdict(run.at(2)), "invalid-address");
    assert_eq!(verdict(run.at(4)), "skipped");
}

#[test]
fn ragged_rows() {
    let run = audit(
        b"campaign,owner,email\nspring,ann,a@example.com\nshort,bob\nlong,cy,c@example.com,extra1,extra2\nonly\n",
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), [2, 3, 4, 5]);
    let short = run.at(3);
    assert_eq!(verdict(short), "invalid-address");
    assert!(
        reason(short).contains("row has 2 field(s)"),
        "{}",
        reason(short)
    );
    assert!(
        reason(short).contains("'email' is field 3"),
        "{}",
        reason(short)
    );
    assert_eq!(short["extra"]["campaign"], "short");
    assert!(reason(run.at(5)).contains("row has 1 field(s)"));
    let long = run.at(4);
    assert_eq!(verdict(long), "skipped");
    assert_eq!(long["address"], "c@example.com");
    assert_eq!(long["extra"]["column4"], "extra1");
    assert_eq!(long["extra"]["column5"], "extra2");
}

#[test]
fn invalid_utf8_in_the_address_cell() {
    let run = audit(
        b"email,owner\nn\xFFws@example.com,ann\nok@example.com,bob\n",
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), [2, 3]);
    let bad = run.at(2);
    assert_eq!(verdict(bad), "invalid-address");
    assert!(reason(bad).contains("not valid UTF-8"), "{}", reason(bad));
    assert!(reason(bad).contains("offset 1"), "{}", reason(bad));
    assert_eq!(bad["input"], "n\u{FFFD}ws@example.com");
    assert_eq!(verdict(run.at(3)), "skipped");
}

#[test]
fn invalid_utf8_in_another_cell_is_passed_through_lossy() {
    let run = audit(b"email,owner\nnews@example.com,Jos\xE9\n", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.at(2);
    assert_eq!(verdict(r), "skipped");
    assert_eq!(r["address"], "news@example.com");
    assert_eq!(r["extra"]["owner"], "Jos\u{FFFD}");
}

#[test]
fn blank_lines_are_noted_with_their_lines() {
    let run = audit(
        b"\nemail\n\na@example.com\n\n\nb@example.com\nc@example.com\n\n",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), [4, 7, 8]);
    assert_eq!(run.at(7)["address"], "b@example.com");
    assert!(
        run.stderr
            .contains("skipped 5 blank line(s) (line 1, 3, 5, 6, 9)"),
        "{}",
        run.stderr
    );
}

#[test]
fn blank_lines_note_is_quiet_with_q() {
    let run = audit(b"email\n\na@example.com\n", &["-q"]);
    assert_eq!(run.code, 0);
    assert!(!run.stderr.contains("blank"), "{}", run.stderr);
    assert_eq!(run.lines(), [3]);
}

#[test]
fn empty_file() {
    let run = audit(b"", &[]);
    let msg = run.error();
    assert!(msg.contains("in.csv"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn header_only() {
    let run = audit(b"email,campaign\n", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.results().is_empty());
    assert_eq!(run.json.as_ref().unwrap()["summary"]["total"], 0);
}

#[test]
fn missing_address_column() {
    let run = audit(b"name,campaign\nann,spring\n", &[]);
    let msg = run.error();
    assert!(msg.contains("in.csv"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
    assert!(msg.contains("header has: name, campaign"), "{msg}");
    assert!(msg.contains("--column"), "{msg}");
}

#[test]
fn column_by_name_is_case_insensitive() {
    let run = audit(
        b"Owner,Reply_To,campaign\nann@example.com,bounce@example.com,x\n",
        &["--column", "reply_to"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.at(2)["address"], "bounce@example.com");
    assert_eq!(run.at(2)["extra"]["Owner"], "ann@example.com");
}

#[test]
fn column_by_unknown_name() {
    let run = audit(
        b"owner,campaign\nann@example.com,x\n",
        &["--column", "sender"],
    );
    let msg = run.error();
    assert!(msg.contains("no column named 'sender'"), "{msg}");
    assert!(msg.contains("header has: owner, campaign"), "{msg}");
}

#[test]
fn column_by_index() {
    let run = audit(
        b"owner,campaign,email\nann@example.com,x,c@example.com\n",
        &["--column", "1"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.at(2)["address"], "ann@example.com");
    assert_eq!(run.at(2)["extra"]["email"], "c@example.com");
}

#[test]
fn column_index_out_of_range() {
    let run = audit(b"email,campaign\na@example.com,x\n", &["--column", "9"]);
    let msg = run.error();
    assert!(msg.contains("line 1"), "{msg}");
    assert!(msg.contains("--column 9 is out of range"), "{msg}");
    assert!(msg.contains("2 column(s)"), "{msg}");
}

#[test]
fn no_header() {
    let run = audit(
        b"spring,a@example.com\nsummer,bad@@x\n",
        &["--no-header", "--column", "2"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), [1, 2]);
    assert_eq!(run.at(1)["address"], "a@example.com");
    assert_eq!(run.at(1)["extra"]["column1"], "spring");
    assert_eq!(verdict(run.at(2)), "invalid-address");
}

#[test]
fn no_header_with_a_column_name_is_an_error() {
    let run = audit(b"a@example.com\n", &["--no-header", "--column", "email"]);
    let msg = run.error();
    assert!(msg.contains("--no-header"), "{msg}");
}

#[test]
fn stdin_dash() {
    let dir = tmp();
    let run = audit_with(
        "-",
        dir.path(),
        &[],
        Some(b"email\n\na@example.com\nnope\n"),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), [3, 4]);
    assert!(
        run.stderr
            .contains("<stdin>: skipped 1 blank line(s) (line 2)"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json.as_ref().unwrap()["meta"]["input"], "<stdin>");
}

#[test]
fn stdin_empty() {
    let dir = tmp();
    let run = audit_with("-", dir.path(), &[], Some(b""));
    let msg = run.error();
    assert!(msg.contains("<stdin>: line 1"), "{msg}");
}

#[test]
fn directory_as_input() {
    let dir = tmp();
    let sub = dir.path().join("adir");
    std::fs::create_dir(&sub).unwrap();
    let run = audit_with(sub.to_str().unwrap(), dir.path(), &[], None);
    let msg = run.error();
    assert!(msg.contains("adir"), "{msg}");
    assert!(msg.contains("is a directory"), "{msg}");
}

#[test]
fn missing_file() {
    let dir = tmp();
    let run = audit_with("no-such.csv", dir.path(), &[], None);
    let msg = run.error();
    assert!(msg.contains("no-such.csv"), "{msg}");
    assert!(msg.contains("cannot read"), "{msg}");
}

#[test]
fn extras_pass_through_in_order() {
    let run = audit(b"zeta,email,alpha,mid\nz1,a@example.com,a1,m1\n", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.at(2);
    assert_eq!(r["extra"]["zeta"], "z1");
    assert_eq!(r["extra"]["alpha"], "a1");
    assert_eq!(r["extra"]["mid"], "m1");
    // Key order in the file is the input order (not sorted).
    let line = run
        .raw_json
        .lines()
        .find(|l| l.contains("\"line\":2"))
        .expect("row line");
    let extra = &line[line.find("\"extra\":").unwrap()..];
    let (z, a, m) = (
        extra.find("\"zeta\"").unwrap(),
        extra.find("\"alpha\"").unwrap(),
        extra.find("\"mid\"").unwrap(),
    );
    assert!(z < a && a < m, "{extra}");
}

#[test]
fn duplicates_each_get_their_own_result() {
    let run = audit(
        b"email,campaign\nnews@example.com,a\nnews@EXAMPLE.com,b\nnews@example.com,c\nNews@example.com,d\n",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), [2, 3, 4, 5]);
    let flags = |l: u64| run.flags(l);
    assert!(!flags(2).contains(&"duplicate".to_string()));
    assert!(
        flags(3).contains(&"duplicate".to_string()),
        "{:?}",
        flags(3)
    );
    assert!(flags(4).contains(&"duplicate".to_string()));
    assert!(!flags(5).contains(&"duplicate".to_string()));
    assert_eq!(run.at(3)["extra"]["campaign"], "b");
    assert_eq!(run.at(3)["input"], "news@EXAMPLE.com");
    assert_eq!(run.at(3)["address"], "news@example.com");
    // The local part is case-sensitive (RFC 5321 §2.4): a different sender.
    assert_eq!(run.at(5)["address"], "News@example.com");
    let stats = &run.json.as_ref().unwrap()["stats"];
    assert_eq!(stats["rows"], 4);
    assert_eq!(stats["distinct_addresses"], 2);
}

/// Pass one skips the parse of a cell spelled exactly as an address it has
/// seen (and pass two takes address and domain from such a cell): whatever
/// spelling came first, every row must report what its own cell says.
#[test]
fn repeated_cells_report_their_own_flags() {
    let input = "email\nNews <news@example.com>\nnews@example.com\n\
                 \"\"\"a@b\"\"@Example.com\"\n\"\"\"a@b\"\"@example.com\"\n\"\"\"a@b\"\"@example.com\"\n\
                 j\u{f6}rg@example.com\nj\u{f6}rg@example.com\n\
                 news@[192.0.2.1]\nnews@[192.0.2.1]\nbad\nbad\n";
    let run = audit(input.as_bytes(), &[]);
    let flags = |l: u64| run.flags(l);
    let names = |l: u64| (run.at(l)["address"].clone(), run.at(l)["domain"].clone());
    assert_eq!(flags(2), ["display-name-stripped"]);
    assert_eq!(flags(3), ["duplicate"]);
    assert_eq!(names(3), ("news@example.com".into(), "example.com".into()));
    assert!(flags(4).is_empty());
    assert_eq!(flags(5), ["duplicate"]);
    assert_eq!(flags(6), ["duplicate"]);
    assert_eq!(
        names(6),
        ("\"a@b\"@example.com".into(), "example.com".into())
    );
    assert_eq!(flags(7), ["needs-smtputf8"]);
    assert_eq!(flags(8), ["needs-smtputf8", "duplicate"]);
    assert_eq!(flags(10), ["address-literal", "duplicate"]);
    assert_eq!(names(10), ("news@[192.0.2.1]".into(), "[192.0.2.1]".into()));
    assert_eq!(verdict(run.at(12)), "invalid-address");
    assert!(flags(12).is_empty());
    let stats = &run.json.as_ref().unwrap()["stats"];
    assert_eq!(stats["distinct_addresses"], 4);
}

#[test]
fn stop_after_syntax_skips_valid_addresses() {
    let run = audit(b"email\na@example.com\nbad\n", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let ok = run.at(2);
    assert_eq!(verdict(ok), "skipped");
    assert!(reason(ok).contains("--stop-after syntax"), "{}", reason(ok));
    assert_eq!(run.at(2)["class"], "unknown");
    assert_eq!(verdict(run.at(3)), "invalid-address");
    assert!(run.stdout.contains("bad"), "{}", run.stdout);
}

#[test]
fn unterminated_quote_is_one_line_with_a_line_number() {
    // The csv crate reads an unterminated quote to the end of the file as one
    // field; whatever it decides, the run must not crash and the row keeps its line.
    let run = audit(b"email,notes\na@example.com,\"open\nb@example.com,x\n", &[]);
    assert!(
        run.code == 0 || run.code == 1 || run.code == 2,
        "{}",
        run.stderr
    );
    if run.code == 2 {
        run.error();
    } else {
        assert_eq!(run.lines(), [2]);
    }
}

#[test]
fn blank_lines_before_a_headerless_first_row() {
    let run = audit(b"\n\na@example.com\n\nb@example.com", &["--no-header"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), [3, 5]);
    assert!(
        run.stderr
            .contains("skipped 3 blank line(s) (line 1, 2, 4)"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_blank_line_note_for_a_clean_file() {
    for csv in [
        &b"email\na@example.com\n"[..],
        b"email\r\na@example.com\r\n",
        b"email\na@example.com",
        b"email\n",
        b"email\r\n",
        b"email,notes\na@example.com,\"x\n\ny\"\n",
    ] {
        let run = audit(csv, &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(!run.stderr.contains("blank"), "{csv:?}: {}", run.stderr);
    }
}
