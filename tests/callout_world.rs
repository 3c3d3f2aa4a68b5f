//! Full runs of the binary against the in-process DNS server and scripted SMTP
//! servers on 127.0.N.x (one N per test, so parallel tests never share an
//! address): one test per row of the decision table
//! (`research/callout-semantics.md` §7) that a server can play, hostile
//! servers, command injection, and the per-host connection cap.
//!
//! Every test also checks the servers' side: never DATA, never an injected
//! line, and no more connections than the work needs.

mod common;

use std::time::Duration;

use common::*;
use sendercheck::world::{Greeting, Hostile, NullSender, Script, Zone};
use serde_json::Value;

const PER_TXN: usize = 10; // the tool's default --rcpt-per-transaction

/// A world with one sender domain served by one MX host `mx.<domain>` on
/// 127.0.`net`.10.
fn one_mx(net: u8, domain: &str, script: Script) -> MailWorld {
    let host = format!("mx.{domain}");
    let mut z = Zone::new();
    z.mx(domain, 10, &host);
    MailWorld::start(z, vec![(&host, ip(net, 10), script)])
}

/// Asserts everything a result says about a decision.
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn check(
    r: &Value,
    verdict: &str,
    class: &str,
    exim: Option<&str>,
    postfix: Option<&str>,
    want_flags: &[&str],
    stage: &str,
    reply_starts: &str,
) {
    assert_eq!(r["verdict"], verdict, "{r:#}");
    assert_eq!(r["class"], class, "{r:#}");
    assert_eq!(
        r["exim"],
        exim.map_or(Value::Null, Value::from),
        "exim: {r:#}"
    );
    assert_eq!(
        r["postfix"],
        postfix.map_or(Value::Null, Value::from),
        "postfix: {r:#}"
    );
    let mut got = flags(r);
    got.sort();
    let mut want: Vec<String> = want_flags.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "flags: {r:#}");
    assert_eq!(r["evidence"]["stage"], stage, "evidence stage: {r:#}");
    let reply = r["evidence"]["reply"][0].as_str().unwrap_or_default();
    assert!(
        reply.starts_with(reply_starts),
        "evidence reply should start {reply_starts:?}: {r:#}"
    );
}

#[track_caller]
fn reason_has(r: &Value, fragment: &str) {
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.to_lowercase().contains(&fragment.to_lowercase()),
        "reason should mention {fragment:?}: {reason}"
    );
}

// ------------------------------------------------------------ RCPT answers

#[test]
fn row16_valid_user_is_receivable() {
    let w = one_mx(30, "valid.test", Script::default().users(&["news"]));
    let run = w.audit(&["news@valid.test"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.result("news@valid.test");
    check(
        r,
        "receivable",
        "pass",
        Some("pass"),
        Some("pass"),
        &[],
        "rcpt-to",
        "250",
    );
    assert_eq!(r["evidence"]["mx_host"], "mx.valid.test");
    assert_eq!(r["evidence"]["ip"], "127.0.30.10");
    let log = w.log("mx.valid.test");
    assert!(log.verbs("MAIL").iter().all(|c| c == "MAIL FROM:<>"));
    assert!(log
        .verbs("RCPT")
        .contains(&"RCPT TO:<news@valid.test>".to_string()));
    w.assert_clean();
    w.assert_connections("mx.valid.test", 1, PER_TXN, 0);
}

#[test]
fn row18_unknown_user_is_unreceivable() {
    let w = one_mx(31, "unknown.test", Script::default().users(&["news"]));
    let run = w.audit(&["nobody@unknown.test"], &[]);
    assert_eq!(run.code, 1);
    let r = run.result("nobody@unknown.test");
    check(
        r,
        "unreceivable",
        "fail",
        Some("fail"),
        Some("fail"),
        &[],
        "rcpt-to",
        "550 5.1.1",
    );
    assert!(r["fix"].to_string().contains(":blackhole:"), "{r:#}");
    w.assert_clean();
    w.assert_connections("mx.unknown.test", 1, PER_TXN, 0);
}

#[test]
fn row13_null_sender_refused_at_mail_with_probe_sender() {
    let script = Script::default()
        .users(&["news"])
        .null_sender(NullSender::RejectAtMail);
    let w = one_mx(32, "strict.test", script);
    let run = w.audit(
        &["news@strict.test"],
        &["--probe-sender", "probe@sendercheck.test"],
    );
    assert_eq!(run.code, 1);
    let r = run.result("news@strict.test");
    check(
        r,
        "null-sender-rejected",
        "fail",
        Some("fail"),
        Some("pass"),
        &[],
        "mail-from",
        "550 5.7.1",
    );
    reason_has(r, "with a non-null sender the mailbox was accepted");
    let log = w.log("mx.strict.test");
    assert!(log
        .verbs("MAIL")
        .contains(&"MAIL FROM:<probe@sendercheck.test>".to_string()));
    w.assert_clean();
    // One session with <>, one retry with the probe sender.
    w.assert_connections("mx.strict.test", 1, PER_TXN, 1);
}

#[test]
fn row13_null_sender_refused_at_mail_without_probe_sender() {
    let script = Script::default()
        .users(&["news"])
        .null_sender(NullSender::RejectAtMail);
    let w = one_mx(33, "strict.test", script);
    let run = w.audit(&["news@strict.test"], &[]);
    assert_eq!(run.code, 1);
    let r = run.result("news@strict.test");
    check(
        r,
        "null-sender-rejected",
        "fail",
        Some("fail"),
        None,
        &[],
        "mail-from",
        "550 5.7.1",
    );
    reason_has(r, "the mailbox itself was not checked");
    let log = w.log("mx.strict.test");
    assert!(log.verbs("MAIL").iter().all(|c| c == "MAIL FROM:<>"));
    assert!(log.verbs("RCPT").is_empty(), "{:?}", log.commands);
    w.assert_clean();
    w.assert_connections("mx.strict.test", 1, PER_TXN, 0);
}

#[test]
fn null_sender_refused_at_rcpt() {
    let script = Script::default()
        .users(&["news"])
        .null_sender(NullSender::RejectAtRcpt);
    let w = one_mx(34, "strictrcpt.test", script);
    let run = w.audit(
        &["news@strictrcpt.test"],
        &["--probe-sender", "probe@sendercheck.test"],
    );
    assert_eq!(run.code, 1);
    let r = run.result("news@strictrcpt.test");
    check(
        r,
        "null-sender-rejected",
        "fail",
        Some("fail"),
        Some("pass"),
        &[],
        "rcpt-to",
        "550 5.7.1 <>: Sender address rejected",
    );
    reason_has(r, "with a non-null sender the mailbox was accepted");
    w.assert_clean();
    w.assert_connections("mx.strictrcpt.test", 1, PER_TXN, 1);
}

#[test]
fn row17_catch_all_is_receivable_and_flagged() {
    let w = one_mx(35, "catchall.test", Script::default().catch_all(true));
    let run = w.audit(&["whatever@catchall.test"], &[]);
    assert_eq!(run.code, 0);
    let r = run.result("whatever@catchall.test");
    check(
        r,
        "receivable",
        "pass",
        Some("pass"),
        Some("pass"),
        &["catch-all"],
        "rcpt-to",
        "250",
    );
    reason_has(r, "not verified");
    // The catch-all control asked a random local part.
    let log = w.log("mx.catchall.test");
    assert!(log.verbs("RCPT").iter().any(|c| c.contains("sendercheck-")));
    w.assert_clean();
    w.assert_connections("mx.catchall.test", 1, PER_TXN, 0);
}

#[test]
fn row19_relay_denied_is_unreceivable() {
    let script = Script::default().domain("elsewhere.test").users(&["news"]);
    let w = one_mx(36, "relay.test", script);
    let run = w.audit(&["news@relay.test"], &[]);
    assert_eq!(run.code, 1);
    let r = run.result("news@relay.test");
    check(
        r,
        "unreceivable",
        "fail",
        Some("fail"),
        Some("fail"),
        &[],
        "rcpt-to",
        "554 5.7.1",
    );
    reason_has(r, "relay denied");
    w.assert_clean();
    w.assert_connections("mx.relay.test", 1, PER_TXN, 0);
}

#[test]
fn row25_no_postmaster_is_receivable_and_flagged() {
    let script = Script::default().users(&["news"]).postmaster(false);
    let w = one_mx(37, "nopm.test", script);
    let run = w.audit(&["news@nopm.test"], &[]);
    assert_eq!(run.code, 0);
    let r = run.result("news@nopm.test");
    check(
        r,
        "receivable",
        "pass",
        Some("pass"),
        Some("pass"),
        &["no-postmaster"],
        "rcpt-to",
        "250",
    );
    reason_has(r, "postmaster@ is refused");
    w.assert_clean();
    w.assert_connections("mx.nopm.test", 1, PER_TXN, 0);
}

// -------------------------------------------------------------- greetings

#[test]
fn row11_generic_5xx_greeting_is_unreceivable() {
    let script = Script::default().greeting(Greeting::Reject(
        "554 5.3.2 mx.nosmtp.test No SMTP service here".into(),
    ));
    let w = one_mx(38, "nosmtp.test", script);
    let run = w.audit(&["news@nosmtp.test"], &[]);
    assert_eq!(run.code, 1);
    let r = run.result("news@nosmtp.test");
    check(
        r,
        "unreceivable",
        "fail",
        Some("fail"),
        Some("defer"),
        &[],
        "greeting",
        "554 5.3.2",
    );
    w.assert_clean();
    w.assert_connections("mx.nosmtp.test", 1, PER_TXN, 0);
}

#[test]
fn row10_blocklist_greeting_is_probe_blocked() {
    let script = Script::default().greeting(Greeting::Reject(
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
            .into(),
    ));
    let w = one_mx(39, "blgreet.test", script);
    let run = w.audit(&["news@blgreet.test"], &[]);
    assert_eq!(run.code, 0, "probe-blocked is unknown, not a failure");
    let r = run.result("news@blgreet.test");
    check(
        r,
        "probe-blocked",
        "unknown",
        Some("fail"),
        Some("defer"),
        &[],
        "greeting",
        "554 5.7.1",
    );
    w.assert_clean();
    w.assert_connections("mx.blgreet.test", 1, PER_TXN, 0);
}

// ------------------------------------------------------- RCPT refusals

#[test]
fn row20_blocked_using_at_rcpt_is_probe_blocked() {
    let script = Script::default().users(&["news"]).rcpt_override(
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using bl.spamcop.net",
    );
    let w = one_mx(40, "rblrcpt.test", script);
    let run = w.audit(&["news@rblrcpt.test"], &[]);
    assert_eq!(run.code, 0);
    let r = run.result("news@rblrcpt.test");
    check(
        r,
        "probe-blocked",
        "unknown",
        Some("fail"),
        Some("fail"),
        &[],
        "rcpt-to",
        "554 5.7.1",
    );
    reason_has(r, "prober");
    w.assert_clean();
    w.assert_connections("mx.rblrcpt.test", 1, PER_TXN, 0);
}

#[test]
fn row21_policy_refusal_at_rcpt_is_unreceivable() {
    let script = Script::default()
        .users(&["news"])
        .rcpt_override("550 5.7.1 Recipient address rejected: Access denied");
    let w = one_mx(41, "policy.test", script);
    let run = w.audit(&["news@policy.test"], &[]);
    assert_eq!(run.code, 1);
    let r = run.result("news@policy.test");
    check(
        r,
        "unreceivable",
        "fail",
        Some("fail"),
        Some("fail"),
        &[],
        "rcpt-to",
        "550 5.7.1",
    );
    w.assert_clean();
    w.assert_connections("mx.policy.test", 1, PER_TXN, 0);
}

// ------------------------------------------------------------ greylisting

#[test]
fn row22_greylisted_then_accepted_after_wait() {
    let script = Script::default().users(&["news"]).greylist(1);
    let w = one_mx(42, "grey.test", script);
    let run = w.audit(&["news@grey.test"], &["--greylist-wait", "1s"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.result("news@grey.test");
    check(
        r,
        "receivable",
        "pass",
        Some("pass"),
        Some("pass"),
        &["greylisted"],
        "rcpt-to",
        "250",
    );
    let log = w.log("mx.grey.test");
    assert_eq!(
        log.verbs("RCPT")
            .iter()
            .filter(|c| *c == "RCPT TO:<news@grey.test>")
            .count(),
        2,
        "asked once, re-probed once: {:?}",
        log.commands
    );
    w.assert_clean();
    w.assert_connections("mx.grey.test", 1, PER_TXN, 1);
}

#[test]
fn row22_greylisted_without_wait_is_tempfail() {
    let script = Script::default().users(&["news"]).greylist(1);
    let w = one_mx(43, "grey.test", script);
    let run = w.audit(&["news@grey.test"], &["--greylist-wait", "0"]);
    assert_eq!(run.code, 0);
    let r = run.result("news@grey.test");
    check(
        r,
        "tempfail",
        "unknown",
        Some("defer"),
        Some("defer"),
        &[],
        "rcpt-to",
        "450 4.2.0",
    );
    w.assert_clean();
    w.assert_connections("mx.grey.test", 1, PER_TXN, 0);
}

// ------------------------------------------------------ session limits

fn known_and_unknown(domain: &str, n: usize) -> (Vec<String>, Vec<String>, Vec<String>) {
    let users: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
    let mut senders = Vec::new();
    for i in 0..n {
        senders.push(format!("u{i}@{domain}"));
        senders.push(format!("x{i}@{domain}"));
    }
    (users, senders.clone(), senders)
}

#[track_caller]
fn assert_per_sender(run: &Run, domain: &str, n: usize) {
    for i in 0..n {
        let ok = run.result(&format!("u{i}@{domain}"));
        assert_eq!(ok["verdict"], "receivable", "{ok:#}");
        assert_eq!(
            ok["evidence"]["reply"][0].as_str().unwrap().get(..3),
            Some("250")
        );
        let bad = run.result(&format!("x{i}@{domain}"));
        assert_eq!(bad["verdict"], "unreceivable", "{bad:#}");
        assert_eq!(
            bad["evidence"]["reply"][0].as_str().unwrap().get(..3),
            Some("550")
        );
    }
}

#[test]
fn row24_421_after_n_commands_still_decides_every_sender() {
    let (users, senders, _) = known_and_unknown("drop.test", 10);
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let script = Script::default().users(&users).drop_after_commands(6);
    let w = one_mx(44, "drop.test", script);
    let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
    let run = w.audit(&senders, &[]);
    assert!(
        run.elapsed < Duration::from_secs(20),
        "took {:?}",
        run.elapsed
    );
    assert_per_sender(&run, "drop.test", 10);
    let log = w.log("mx.drop.test");
    assert!(
        log.connections >= 2,
        "the server dropped the session: {log:?}"
    );
    // Every session but the dropped ones carries its share of work: EHLO, MAIL
    // and up to four RCPTs fit in six commands.
    let rcpts = 20 + 2; // senders + catch-all and postmaster controls
    assert!(
        log.connections <= rcpts,
        "{} connections for {rcpts} recipients",
        log.connections
    );
    w.assert_clean();
}

#[test]
fn row23_452_too_many_recipients_still_decides_every_sender() {
    let (users, senders, _) = known_and_unknown("limit.test", 6);
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let script = Script::default().users(&users).max_rcpt_per_txn(3);
    let w = one_mx(45, "limit.test", script);
    let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
    let run = w.audit(&senders, &[]);
    assert_per_sender(&run, "limit.test", 6);
    let log = w.log("mx.limit.test");
    assert!(
        !log.verbs("RSET").is_empty(),
        "a fresh transaction after 452: {:?}",
        log.commands
    );
    w.assert_clean();
    w.assert_connections("mx.limit.test", senders.len(), PER_TXN, 0);
}

#[test]
fn pipelining_and_no_pipelining() {
    let mut z = Zone::new();
    z.mx("pipe.test", 10, "mx.pipe.test")
        .mx("nopipe.test", 10, "mx.nopipe.test");
    let w = MailWorld::start(
        z,
        vec![
            (
                "mx.pipe.test",
                ip(46, 10),
                Script::default().users(&["a", "b"]),
            ),
            (
                "mx.nopipe.test",
                ip(46, 11),
                Script::default().users(&["a", "b"]).pipelining(false),
            ),
        ],
    );
    let senders = [
        "a@pipe.test",
        "b@pipe.test",
        "c@pipe.test",
        "a@nopipe.test",
        "b@nopipe.test",
        "c@nopipe.test",
    ];
    let run = w.audit(&senders, &[]);
    for d in ["pipe.test", "nopipe.test"] {
        assert_eq!(run.result(&format!("a@{d}"))["verdict"], "receivable");
        assert_eq!(run.result(&format!("b@{d}"))["verdict"], "receivable");
        assert_eq!(run.result(&format!("c@{d}"))["verdict"], "unreceivable");
        let log = w.log(&format!("mx.{d}"));
        // 3 senders + 2 controls, all in one transaction of one session.
        assert_eq!(log.verbs("RCPT").len(), 5, "{d}: {:?}", log.commands);
        assert_eq!(log.verbs("MAIL").len(), 1, "{d}: {:?}", log.commands);
        w.assert_connections(&format!("mx.{d}"), 3, PER_TXN, 0);
    }
    w.assert_clean();
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let script = Script::default().users(&["news"]).ehlo_rejected(true);
    let w = one_mx(47, "oldmta.test", script);
    let run = w.audit(&["news@oldmta.test"], &[]);
    let r = run.result("news@oldmta.test");
    check(
        r,
        "receivable",
        "pass",
        Some("pass"),
        Some("pass"),
        &[],
        "rcpt-to",
        "250",
    );
    let log = w.log("mx.oldmta.test");
    assert_eq!(log.verbs("EHLO"), ["EHLO prober.sendercheck.test"]);
    assert_eq!(log.verbs("HELO"), ["HELO prober.sendercheck.test"]);
    w.assert_clean();
    w.assert_connections("mx.oldmta.test", 1, PER_TXN, 0);
}

// ------------------------------------------------------- MX fallback

#[test]
fn dead_primary_live_secondary_is_receivable() {
    let mut z = Zone::new();
    z.mx("deadprimary.test", 10, "mx1.deadprimary.test")
        .mx("deadprimary.test", 20, "mx2.deadprimary.test")
        .a("mx1.deadprimary.test", dead_ip(48));
    let w = MailWorld::start(
        z,
        vec![(
            "mx2.deadprimary.test",
            ip(48, 11),
            Script::default().users(&["news"]),
        )],
    );
    let run = w.audit(&["news@deadprimary.test"], &[]);
    let r = run.result("news@deadprimary.test");
    check(
        r,
        "receivable",
        "pass",
        Some("pass"),
        Some("pass"),
        &[],
        "rcpt-to",
        "250",
    );
    assert_eq!(r["evidence"]["mx_host"], "mx2.deadprimary.test");
    let transcript = r["transcript"].to_string();
    assert!(transcript.contains("mx1.deadprimary.test"), "{transcript}");
    w.assert_clean();
    w.assert_connections("mx2.deadprimary.test", 1, PER_TXN, 0);
}

#[test]
fn row8_all_mx_dead_is_unreachable() {
    let mut z = Zone::new();
    z.mx("alldead.test", 10, "mx1.alldead.test")
        .mx("alldead.test", 20, "mx2.alldead.test")
        .a("mx1.alldead.test", ip(49, 250))
        .a("mx2.alldead.test", ip(49, 251));
    // One live server elsewhere fixes the shared port.
    let w = MailWorld::start(z, vec![("mx.other.test", ip(49, 10), Script::default())]);
    let run = w.audit(&["news@alldead.test"], &[]);
    assert_eq!(run.code, 0);
    let r = run.result("news@alldead.test");
    check(
        r,
        "unreachable",
        "unknown",
        Some("defer"),
        Some("defer"),
        &[],
        "connect",
        "",
    );
    reason_has(r, "no MX host accepted a connection");
    assert_eq!(w.log("mx.other.test").connections, 0);
}

// ----------------------------------------------------------- hostile

#[test]
fn hostile_servers_end_with_unknown_verdicts() {
    let cases: [(&str, Script); 6] = [
        ("tarpit", Script::default().hostile(Hostile::Tarpit)),
        ("hugeline", Script::default().hostile(Hostile::HugeLine)),
        (
            "endless",
            Script::default().hostile(Hostile::EndlessContinuation),
        ),
        ("garbage", Script::default().hostile(Hostile::Garbage)),
        ("reset", Script::default().hostile(Hostile::ResetMidReply)),
        ("silent", Script::default().greeting(Greeting::Never)),
    ];
    let mut z = Zone::new();
    let names: Vec<(String, String)> = cases
        .iter()
        .map(|(n, _)| (format!("{n}.test"), format!("mx.{n}.test")))
        .collect();
    for (domain, host) in &names {
        z.mx(domain, 10, host);
    }
    let hosts = names
        .iter()
        .zip(cases.iter())
        .enumerate()
        .map(|(i, ((_, host), (_, script)))| (host.as_str(), ip(50, 10 + i as u8), script.clone()))
        .collect();
    let w = MailWorld::start(z, hosts);
    let senders: Vec<String> = names.iter().map(|(d, _)| format!("news@{d}")).collect();
    let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
    let run = w.audit(&senders, &["--timeout", "1s"]);
    assert!(
        run.elapsed < Duration::from_secs(20),
        "liveness: the run took {:?}",
        run.elapsed
    );
    for s in &senders {
        let r = run.result(s);
        assert_eq!(r["class"], "unknown", "{s}: {r:#}");
        // Rows 12/24: no usable greeting on the only MX is a temporary failure.
        assert_eq!(r["verdict"], "tempfail", "{s}: {r:#}");
        assert_eq!(r["evidence"]["stage"], "greeting", "{s}: {r:#}");
        assert_eq!(r["exim"], "defer", "{s}: {r:#}");
    }
    w.assert_clean();
    for (_, host) in &names {
        w.assert_connections(host, 1, PER_TXN, 0);
    }
}

// ----------------------------------------------------------- injection

#[test]
fn crlf_in_a_cell_never_reaches_a_server() {
    let w = one_mx(51, "inj.test", Script::default().catch_all(true));
    let csv = "sender\n\"news@inj.test\r\nDATA\"\nnews@inj.test\n\"x@inj.test\rRSET\"\n";
    let run = w.audit_csv(csv, &[]);
    let rows = run.results();
    let bad: Vec<&Value> = rows
        .iter()
        .filter(|r| r["input"].as_str().unwrap_or_default().contains('\r'))
        .collect();
    assert_eq!(bad.len(), 2, "{rows:#?}");
    for r in bad {
        assert_eq!(r["verdict"], "invalid-address", "{r:#}");
    }
    assert_eq!(run.result("news@inj.test")["verdict"], "receivable");
    let log = w.log("mx.inj.test");
    assert!(
        !log.commands
            .iter()
            .any(|(_, c)| c.to_ascii_uppercase().contains("DATA") || c.contains("RSET")),
        "{:?}",
        log.commands
    );
    w.assert_clean();
    w.assert_connections("mx.inj.test", 1, PER_TXN, 0);
}

// ------------------------------------------------------ connection cap

#[test]
fn per_host_connection_cap_holds_and_every_sender_is_decided() {
    const HOSTS: usize = 4;
    const DOMAINS: usize = 40;
    const SENDERS: usize = 2000;
    let mut z = Zone::new();
    let host_names: Vec<String> = (0..HOSTS).map(|h| format!("mx{h}.cap.test")).collect();
    for d in 0..DOMAINS {
        z.mx(&format!("d{d}.cap.test"), 10, &host_names[d % HOSTS]);
    }
    let known: Vec<String> = (0..SENDERS / 2).map(|i| format!("u{i}")).collect();
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let hosts = host_names
        .iter()
        .enumerate()
        .map(|(h, n)| {
            (
                n.as_str(),
                ip(52, 10 + h as u8),
                Script::default().users(&known),
            )
        })
        .collect();
    let w = MailWorld::start(z, hosts);
    let senders: Vec<String> = (0..SENDERS)
        .map(|i| format!("u{i}@d{}.cap.test", i % DOMAINS))
        .collect();
    let run = w.audit_csv(
        &csv_of(&senders),
        &[
            "--per-host-connections",
            "2",
            "--per-host-rate",
            "1000",
            "--concurrency",
            "16",
        ],
    );
    for r in run.results() {
        let i: usize = r["address"].as_str().unwrap()[1..]
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let want = if i < SENDERS / 2 {
            "receivable"
        } else {
            "unreceivable"
        };
        assert_eq!(r["verdict"], want, "{r:#}");
    }
    assert_eq!(run.results().len(), SENDERS);
    let mut rcpts = 0;
    for h in &host_names {
        let log = w.log(h);
        assert!(
            log.max_concurrent <= 2,
            "{h}: {} concurrent sessions",
            log.max_concurrent
        );
        assert!(log.connections >= 1);
        rcpts += log.verbs("RCPT").len();
        w.assert_connections(h, SENDERS / HOSTS + 2 * DOMAINS / HOSTS, PER_TXN, 0);
    }
    // Every sender asked exactly once, plus two controls per domain.
    assert_eq!(rcpts, SENDERS + 2 * DOMAINS);
    w.assert_clean();
}

// ----------------------------------------------------------- IPv6

/// An MX host with only an AAAA record is probed over IPv6; a dual-stack
/// host whose IPv4 address is dead is reached on its IPv6 address. Skipped
/// (with a note) where the kernel has no `::1`.
#[test]
fn ipv6_mx_addresses_are_probed() {
    use sendercheck::world::{DnsServer, SmtpServer};
    use std::net::Ipv6Addr;
    let script = Script::default().users(&["news"]);
    let v6 = match SmtpServer::start(Ipv6Addr::LOCALHOST, 0, script.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: cannot listen on [::1] here: {e}");
            return;
        }
    };
    let port = v6.addr().port();
    let mut z = Zone::new();
    z.mx("v6only.test", 10, "mx.v6only.test");
    z.aaaa("mx.v6only.test", Ipv6Addr::LOCALHOST);
    z.mx("dual.test", 10, "mx.dual.test");
    // Nothing listens on this IPv4 address at `port`.
    let dead = sendercheck::world::unused_port_free_ip(port, &[]).expect("a free 127/8 address");
    z.a("mx.dual.test", dead);
    z.aaaa("mx.dual.test", Ipv6Addr::LOCALHOST);
    let w = MailWorld {
        dns: DnsServer::start(z).expect("dns server"),
        port,
        servers: vec![("mx.v6only.test".to_string(), v6)],
    };
    let run = w.audit(
        &["news@v6only.test", "nobody@v6only.test", "news@dual.test"],
        &[],
    );
    let r = run.result("nobody@v6only.test");
    assert_eq!(r["verdict"], "unreceivable", "{r:#}");
    for sender in ["news@v6only.test", "news@dual.test"] {
        let r = run.result(sender);
        check(
            r,
            "receivable",
            "pass",
            Some("pass"),
            Some("pass"),
            &[],
            "rcpt-to",
            "250",
        );
        assert_eq!(r["evidence"]["ip"], "::1", "{sender}: {r:#}");
    }
    let r = run.result("news@dual.test");
    let transcript = r["transcript"].to_string();
    assert!(
        transcript.contains(&dead.to_string()),
        "IPv4 tried first: {transcript}"
    );
    w.assert_clean();
}

// ----------------------------------------------------------- SMTPUTF8

/// RFC 6531 §3.4: a UTF-8 address goes out only in a transaction opened with
/// `MAIL FROM:<> SMTPUTF8`, to a server that offers SMTPUTF8. Of a server
/// that does not, it is asked as real Exim asks (local part downconverted to
/// `xn--…`), and Postfix's model fails it (its probe bounces).
#[test]
fn utf8_local_parts_use_smtputf8_or_exims_downconversion() {
    let mut z = Zone::new();
    z.mx("utf.test", 10, "mx.utf.test");
    z.mx("plain.test", 10, "mx.plain.test");
    z.mx("alias.test", 10, "mx.alias.test");
    let w = MailWorld::start(
        z,
        vec![
            (
                "mx.utf.test",
                ip(53, 10),
                Script::default()
                    .users(&["j\u{f6}rg", "news"])
                    .smtputf8(true),
            ),
            (
                "mx.plain.test",
                ip(53, 11),
                Script::default().users(&["j\u{f6}rg", "news"]),
            ),
            // Knows the downconverted form (an alias for it).
            (
                "mx.alias.test",
                ip(53, 12),
                Script::default().users(&["xn--jrg-sna"]),
            ),
        ],
    );
    let run = w.audit(
        &[
            "j\u{f6}rg@utf.test",
            "news@utf.test",
            "j\u{f6}rg@plain.test",
            "news@plain.test",
            "j\u{f6}rg@alias.test",
        ],
        &[],
    );
    for sender in ["j\u{f6}rg@utf.test", "news@utf.test", "news@plain.test"] {
        let r = run.result(sender);
        assert_eq!(r["verdict"], "receivable", "{sender}: {r:#}");
        assert!(
            !r["flags"].to_string().contains("smtputf8-not-offered"),
            "{r:#}"
        );
    }
    let mails = w.log("mx.utf.test").verbs("MAIL");
    assert!(
        mails.contains(&"MAIL FROM:<> SMTPUTF8".to_string()),
        "{mails:?}"
    );
    let rcpts = w.log("mx.utf.test").verbs("RCPT");
    assert!(
        rcpts.contains(&"RCPT TO:<j\u{f6}rg@utf.test>".to_string()),
        "{rcpts:?}"
    );

    // No SMTPUTF8: the server never sees UTF-8, only the downconverted form,
    // and does not know it.
    let plain = w.log("mx.plain.test");
    assert!(
        plain.commands.iter().all(|(_, c)| c.is_ascii()),
        "UTF-8 reached a server without SMTPUTF8: {:?}",
        plain.commands
    );
    assert!(plain
        .verbs("RCPT")
        .contains(&"RCPT TO:<xn--jrg-sna@plain.test>".to_string()));
    let r = run.result("j\u{f6}rg@plain.test");
    assert_eq!(r["verdict"], "unreceivable", "{r:#}");
    assert_eq!(r["exim"], "fail", "{r:#}");
    assert_eq!(r["postfix"], "fail", "{r:#}");
    assert!(
        r["flags"].to_string().contains("smtputf8-not-offered"),
        "{r:#}"
    );
    let fix = r["fix"].as_str().unwrap();
    assert!(
        fix.contains("xn--jrg-sna@plain.test") && fix.contains("SMTPUTF8"),
        "{fix}"
    );

    // The downconverted form exists: Exim passes, Postfix still fails.
    let r = run.result("j\u{f6}rg@alias.test");
    assert_eq!(r["verdict"], "receivable", "{r:#}");
    assert_eq!(r["exim"], "pass", "{r:#}");
    assert_eq!(r["postfix"], "fail", "{r:#}");
    assert!(
        r["transcript"].to_string().contains("downconverted"),
        "{r:#}"
    );
    w.assert_clean();
}
