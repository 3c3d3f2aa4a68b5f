//! The verdict table of research/callout-semantics.md §7, row by row, for every
//! row an SMTP observation can produce (rows 8–25; rows 1–7 are DNS and are
//! decided before any callout). Evidence is built by hand with reply texts
//! taken from the research (sections 1.5, 2.3, 3.6 and 4).

use sendercheck::evidence::{Attempt, AttemptEnd, DomainProbes, ReplyFacts, SenderEvidence};
use sendercheck::record::Stage;
use sendercheck::verdict::{decide, Class, Decided, Decision, Flag, Verdict};
use std::net::IpAddr;

const SENDER: &str = "news@example.com";
const PROBER_IP: &str = "203.0.113.9";
const PROBER_HELO: &str = "probe.audit.example";

// --- evidence builders ------------------------------------------------------

fn reply(code: u16, enhanced: Option<(u8, u16, u16)>, lines: &[&str]) -> ReplyFacts {
    ReplyFacts {
        code,
        enhanced,
        lines: lines.iter().map(|l| l.to_string()).collect(),
    }
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, n])
}

fn at(host: &str, n: u8, stage: Stage, r: ReplyFacts) -> Attempt {
    Attempt {
        host: host.to_string(),
        ip: ip(n),
        stage,
        end: AttemptEnd::Reply(r),
    }
}

fn failed(host: &str, n: u8, stage: Stage, why: &str) -> Attempt {
    Attempt {
        host: host.to_string(),
        ip: ip(n),
        stage,
        end: AttemptEnd::Failed(why.to_string()),
    }
}

fn evidence(null_sender: Vec<Attempt>) -> SenderEvidence {
    SenderEvidence {
        null_sender,
        prober_tokens: vec![PROBER_IP.to_string(), PROBER_HELO.to_string()],
        ..SenderEvidence::default()
    }
}

fn with_probe_sender(mut ev: SenderEvidence, tries: Vec<Attempt>) -> SenderEvidence {
    ev.probe_sender_configured = true;
    ev.probe_sender = Some(tries);
    ev
}

fn with_domain(
    mut ev: SenderEvidence,
    random: Option<ReplyFacts>,
    postmaster: Option<ReplyFacts>,
) -> SenderEvidence {
    ev.domain = DomainProbes { random, postmaster };
    ev
}

// --- replies from the research ----------------------------------------------

fn ok_rcpt() -> ReplyFacts {
    reply(250, Some((2, 1, 5)), &["250 2.1.5 Ok"])
}

fn postfix_user_unknown(addr: &str) -> ReplyFacts {
    let line = format!(
        "550 5.1.1 <{addr}>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    reply(550, Some((5, 1, 1)), &[&line])
}

fn exim_unrouteable() -> ReplyFacts {
    reply(550, None, &["550 Unrouteable address"])
}

fn relay_denied(addr: &str) -> ReplyFacts {
    let line = format!("554 5.7.1 <{addr}>: Relay access denied");
    reply(554, Some((5, 7, 1)), &[&line])
}

fn null_sender_not_accepted(code: u16) -> ReplyFacts {
    reply(
        code,
        Some((5, 7, 1)),
        &["550 5.7.1 <>: Sender address rejected: Null sender not accepted here"],
    )
}

fn spamhaus_greeting() -> ReplyFacts {
    reply(
        554,
        Some((5, 7, 1)),
        &["554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org"],
    )
}

fn microsoft_s3150() -> ReplyFacts {
    reply(
        550,
        Some((5, 7, 1)),
        &["550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors."],
    )
}

fn greylisted() -> ReplyFacts {
    reply(
        450,
        Some((4, 2, 0)),
        &["450 4.2.0 <news@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html"],
    )
}

fn try_again_later() -> ReplyFacts {
    reply(451, Some((4, 3, 2)), &["451 4.3.2 Please try again later"])
}

fn four_twenty_one() -> ReplyFacts {
    reply(
        421,
        Some((4, 3, 2)),
        &["421 4.3.2 mx1.example.com Service not available, closing transmission channel"],
    )
}

fn mx1_mx2() -> (&'static str, &'static str) {
    ("mx1.example.com", "mx2.example.com")
}

// --- assertion helper -------------------------------------------------------

#[track_caller]
fn check(d: &Decided, verdict: Verdict, exim: Decision, postfix: Option<Decision>, flags: &[Flag]) {
    assert_eq!(d.verdict, verdict, "verdict; reason: {}", d.reason);
    let class = match verdict {
        Verdict::Receivable => Class::Pass,
        Verdict::Unreceivable | Verdict::NullSenderRejected => Class::Fail,
        _ => Class::Unknown,
    };
    assert_eq!(d.verdict.class(), class, "class; reason: {}", d.reason);
    assert_eq!(d.exim, Some(exim), "exim; reason: {}", d.reason);
    assert_eq!(d.postfix, postfix, "postfix; reason: {}", d.reason);
    let mut got = d.flags.clone();
    got.sort();
    let mut want = flags.to_vec();
    want.sort();
    assert_eq!(got, want, "flags; reason: {}", d.reason);
    assert!(!d.reason.is_empty());
}

#[track_caller]
fn deciding_host(d: &Decided) -> &str {
    d.deciding.as_ref().map(|a| a.host.as_str()).unwrap_or("")
}

// --- row 8: no MX accepts a connection; control connection fine ---------------

#[test]
fn row_08_connection_refused_on_every_mx_is_unreachable() {
    let (mx1, mx2) = mx1_mx2();
    let ev = evidence(vec![
        failed(mx1, 1, Stage::Connect, "connection refused"),
        failed(mx2, 2, Stage::Connect, "connect timeout after 30s"),
    ]);
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreachable,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
    assert!(d.reason.contains("Exim would defer"), "{}", d.reason);
}

// --- row 9: every connection of the run fails: our egress is blocked ----------

#[test]
fn row_09_egress_port_25_blocked_is_probe_blocked() {
    let (mx1, mx2) = mx1_mx2();
    let mut ev = evidence(vec![
        failed(mx1, 1, Stage::Connect, "connect timeout after 30s"),
        failed(mx2, 2, Stage::Connect, "connect timeout after 30s"),
    ]);
    ev.egress_blocked = true;
    let d = decide(&ev);
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
}

// --- row 10: 5xx greeting/HELO about the prober ------------------------------

#[test]
fn row_10_spamhaus_greeting_is_probe_blocked() {
    let (mx1, _) = mx1_mx2();
    let ev = evidence(vec![at(mx1, 1, Stage::Greeting, spamhaus_greeting())]);
    let d = decide(&ev);
    // Exim: FAIL (mail) at the first such host; Postfix skips the 5xx banner
    // and, with no other MX, defers.
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Defer),
        &[],
    );
    assert_eq!(deciding_host(&d), mx1);
}

#[test]
fn row_10_helo_rejected_naming_our_helo_is_probe_blocked() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        504,
        Some((5, 5, 2)),
        &["504 5.5.2 <probe>: Helo command rejected: need fully-qualified hostname"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::Helo, r)]));
    // Postfix stops at a 5xx to HELO: a bounce.
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

// --- row 11: 5xx greeting without client-specific text -----------------------

#[test]
fn row_11_plain_554_greeting_is_unreceivable() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        554,
        None,
        &["554 mx1.example.com ESMTP No SMTP service here"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::Greeting, r)]));
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Defer),
        &[],
    );
}

// --- row 12: no banner / 4xx or 421 greeting on every MX ----------------------

#[test]
fn row_12_421_greeting_on_every_mx_is_tempfail() {
    let (mx1, mx2) = mx1_mx2();
    let d = decide(&evidence(vec![
        at(mx1, 1, Stage::Greeting, four_twenty_one()),
        at(mx2, 2, Stage::Greeting, four_twenty_one()),
    ]));
    check(
        &d,
        Verdict::Tempfail,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
    assert!(d.reason.contains("Exim would defer"), "{}", d.reason);
}

#[test]
fn row_12_no_banner_within_30s_is_tempfail() {
    let (mx1, mx2) = mx1_mx2();
    let d = decide(&evidence(vec![
        failed(
            mx1,
            1,
            Stage::Greeting,
            "timeout after 30s waiting for the banner",
        ),
        failed(
            mx2,
            2,
            Stage::Greeting,
            "timeout after 30s waiting for the banner",
        ),
    ]));
    check(
        &d,
        Verdict::Tempfail,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
}

// --- row 13: null sender refused, non-null accepted --------------------------

#[test]
fn row_13_null_sender_refused_non_null_accepted() {
    let (mx1, _) = mx1_mx2();
    let ev = with_probe_sender(
        evidence(vec![at(
            mx1,
            1,
            Stage::MailFrom,
            null_sender_not_accepted(550),
        )]),
        vec![at(mx1, 1, Stage::RcptTo, ok_rcpt())],
    );
    let d = decide(&ev);
    // Fails at Exim sites, passes at Postfix sites (double-bounce@).
    check(
        &d,
        Verdict::NullSenderRejected,
        Decision::Fail,
        Some(Decision::Pass),
        &[],
    );
    assert_eq!(d.deciding.as_ref().unwrap().stage, Stage::MailFrom);
}

#[test]
fn row_13_null_sender_refused_at_rcpt_non_null_accepted() {
    // Postfix with smtpd_delay_reject reports the MAIL restriction at RCPT.
    let (mx1, _) = mx1_mx2();
    let ev = with_probe_sender(
        evidence(vec![at(
            mx1,
            1,
            Stage::RcptTo,
            null_sender_not_accepted(550),
        )]),
        vec![at(mx1, 1, Stage::RcptTo, ok_rcpt())],
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::NullSenderRejected,
        Decision::Fail,
        Some(Decision::Pass),
        &[],
    );
}

#[test]
fn row_13_null_sender_refused_without_probe_sender_postfix_unknown() {
    let (mx1, _) = mx1_mx2();
    let ev = evidence(vec![at(
        mx1,
        1,
        Stage::MailFrom,
        null_sender_not_accepted(550),
    )]);
    let d = decide(&ev);
    check(&d, Verdict::NullSenderRejected, Decision::Fail, None, &[]);
    assert!(d.reason.contains("--probe-sender"), "{}", d.reason);
}

// --- row 14: MAIL refused with reputation text (Microsoft S3150) ---------------

#[test]
fn row_14_microsoft_s3150_at_mail_is_probe_blocked() {
    let (_, _) = mx1_mx2();
    let mx = "example-com.mail.protection.outlook.com";
    let ev = with_probe_sender(
        evidence(vec![at(mx, 1, Stage::MailFrom, microsoft_s3150())]),
        vec![at(mx, 1, Stage::MailFrom, microsoft_s3150())],
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn row_14_plain_null_refusal_then_s3150_for_non_null_is_probe_blocked() {
    let mx = "example-com.mail.protection.outlook.com";
    let plain = reply(550, Some((5, 7, 1)), &["550 5.7.1 Service unavailable"]);
    let ev = with_probe_sender(
        evidence(vec![at(mx, 1, Stage::MailFrom, plain)]),
        vec![at(mx, 1, Stage::MailFrom, microsoft_s3150())],
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

// --- row 15: MAIL 4xx on every MX --------------------------------------------

#[test]
fn row_15_mail_4xx_on_every_mx_is_tempfail() {
    let (mx1, mx2) = mx1_mx2();
    let r = reply(451, Some((4, 3, 2)), &["451 4.3.2 Please try again later"]);
    let d = decide(&evidence(vec![
        at(mx1, 1, Stage::MailFrom, r.clone()),
        at(mx2, 2, Stage::MailFrom, r),
    ]));
    check(
        &d,
        Verdict::Tempfail,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
}

// --- row 16: RCPT 2xx, random local part refused ------------------------------

#[test]
fn row_16_rcpt_accepted_random_refused_is_receivable() {
    let (mx1, _) = mx1_mx2();
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, ok_rcpt())]),
        Some(postfix_user_unknown("q7x0r2k9@example.com")),
        Some(ok_rcpt()),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Receivable,
        Decision::Pass,
        Some(Decision::Pass),
        &[],
    );
    assert_eq!(deciding_host(&d), mx1);
}

// --- row 17: catch-all ------------------------------------------------------

#[test]
fn row_17_random_local_part_accepted_is_receivable_catch_all() {
    let (mx1, _) = mx1_mx2();
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, ok_rcpt())]),
        Some(ok_rcpt()),
        Some(ok_rcpt()),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Receivable,
        Decision::Pass,
        Some(Decision::Pass),
        &[Flag::CatchAll],
    );
}

// --- row 18: RCPT 5xx user unknown, postmaster accepted ------------------------

#[test]
fn row_18_postfix_user_unknown_is_unreceivable() {
    let (mx1, _) = mx1_mx2();
    let ev = with_domain(
        evidence(vec![at(
            mx1,
            1,
            Stage::RcptTo,
            postfix_user_unknown(SENDER),
        )]),
        None,
        Some(ok_rcpt()),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
    assert!(!d.reason.contains("relay"), "{}", d.reason);
}

#[test]
fn row_18_exim_unrouteable_address_is_unreceivable() {
    let (mx1, _) = mx1_mx2();
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, exim_unrouteable())]),
        None,
        Some(ok_rcpt()),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn row_18_gmail_account_does_not_exist_is_unreceivable() {
    let mx = "aspmx.l.google.com";
    let r = reply(
        550,
        Some((5, 1, 1)),
        &[
            "550-5.1.1 The email account that you tried to reach does not exist. Please try",
            "550-5.1.1 double-checking the recipient's email address for typos or",
            "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser",
        ],
    );
    let d = decide(&with_domain(
        evidence(vec![at(mx, 1, Stage::RcptTo, r)]),
        None,
        Some(ok_rcpt()),
    ));
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn row_18_microsoft_dbeb_is_unreceivable_even_if_postmaster_answers_alike() {
    // DBEB uses 5.4.1 "Access denied" for a missing mailbox (research 3.6);
    // the text carries no address, so an identical postmaster refusal must
    // not turn it into "postmaster refused identically".
    let mx = "example-com.mail.protection.outlook.com";
    let dbeb = reply(
        550,
        Some((5, 4, 1)),
        &["550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [DB5PR01MB1234.eurprd01.prod.exchangelabs.com]"],
    );
    let d = decide(&with_domain(
        evidence(vec![at(mx, 1, Stage::RcptTo, dbeb.clone())]),
        None,
        Some(dbeb),
    ));
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[Flag::NoPostmaster],
    );
}

#[test]
fn row_18_user_unknown_in_relay_recipient_table_is_not_relay_denied() {
    // Postfix relay_recipient_maps: a missing mailbox, not a wrong MX.
    let (mx1, _) = mx1_mx2();
    let r = reply(
        550,
        Some((5, 1, 1)),
        &["550 5.1.1 <news@example.com>: Recipient address rejected: User unknown in relay recipient table"],
    );
    let d = decide(&with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, r)]),
        None,
        Some(ok_rcpt()),
    ));
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
    assert!(!d.reason.contains("relay denied"), "{}", d.reason);
}

// --- row 19: relay access denied --------------------------------------------

#[test]
fn row_19_relay_access_denied_is_unreceivable_mx_does_not_serve_domain() {
    let (mx1, _) = mx1_mx2();
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, relay_denied(SENDER))]),
        None,
        Some(relay_denied("postmaster@example.com")),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
    assert!(d.reason.contains("relay denied"), "{}", d.reason);
}

// --- row 20: RCPT 5xx about the prober -------------------------------------

#[test]
fn row_20_spamhaus_at_rcpt_is_probe_blocked() {
    // Postfix smtpd_delay_reject: the DNSBL rejection arrives at RCPT.
    let (mx1, _) = mx1_mx2();
    let r = reply(
        554,
        Some((5, 7, 1)),
        &["554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.9"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn row_20_open_resolver_is_probe_blocked() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        554,
        Some((5, 7, 1)),
        &["554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org; Error: open resolver; https://www.spamhaus.org/returnc/pub/198.51.100.53"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn row_20_reply_naming_our_helo_is_probe_blocked() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        550,
        Some((5, 7, 1)),
        &["550 5.7.1 probe.audit.example: message refused"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn row_20_postmaster_refused_identically_is_probe_blocked() {
    let (mx1, _) = mx1_mx2();
    let r = |a: &str| {
        let line = format!("550 5.7.1 <{a}>: Recipient address rejected: Access denied");
        reply(550, Some((5, 7, 1)), &[&line])
    };
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, r(SENDER))]),
        None,
        Some(r("postmaster@example.com")),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

// --- row 21: policy refusal about this address ----------------------------------

#[test]
fn row_21_policy_refusal_with_postmaster_accepted_is_unreceivable() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        550,
        Some((5, 7, 1)),
        &["550 5.7.1 <news@example.com>: Recipient address rejected: Access denied"],
    );
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, r)]),
        None,
        Some(ok_rcpt()),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

// --- row 22: RCPT 4xx (greylisting) -----------------------------------------

#[test]
fn row_22_greylisted_on_every_mx_is_tempfail() {
    let (mx1, mx2) = mx1_mx2();
    let mut ev = evidence(vec![
        at(mx1, 1, Stage::RcptTo, greylisted()),
        at(mx2, 2, Stage::RcptTo, greylisted()),
    ]);
    ev.reprobed_after_tempfail = true;
    let d = decide(&ev);
    check(
        &d,
        Verdict::Tempfail,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
}

#[test]
fn row_22_try_again_later_is_tempfail() {
    let (mx1, _) = mx1_mx2();
    let d = decide(&evidence(vec![at(
        mx1,
        1,
        Stage::RcptTo,
        try_again_later(),
    )]));
    check(
        &d,
        Verdict::Tempfail,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
}

#[test]
fn row_22_greylisted_then_accepted_on_reprobe_is_receivable() {
    let (mx1, _) = mx1_mx2();
    let mut ev = evidence(vec![at(mx1, 1, Stage::RcptTo, ok_rcpt())]);
    ev.reprobed_after_tempfail = true;
    let d = decide(&ev);
    check(
        &d,
        Verdict::Receivable,
        Decision::Pass,
        Some(Decision::Pass),
        &[Flag::Greylisted],
    );
}

// --- row 23: too many recipients: an artefact of our batching ------------------

#[test]
fn row_23_452_too_many_recipients_is_not_a_verdict() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        452,
        Some((4, 5, 3)),
        &["452 4.5.3 Error: too many recipients"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    check(
        &d,
        Verdict::Tempfail,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
}

#[test]
fn row_23_552_too_many_recipients_is_not_unreceivable() {
    // RFC 5321 §4.5.3.1.10: treat 552 for this case as temporary. A real
    // callout sends one RCPT per transaction and would never see it.
    let (mx1, _) = mx1_mx2();
    let r = reply(552, Some((5, 5, 3)), &["552 5.5.3 Too many recipients"]);
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    check(
        &d,
        Verdict::Tempfail,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
}

// --- row 24: timeouts or drops after a command on every MX -----------------------

#[test]
fn row_24_timeouts_after_rcpt_on_every_mx_are_tempfail() {
    let (mx1, mx2) = mx1_mx2();
    let d = decide(&evidence(vec![
        failed(
            mx1,
            1,
            Stage::RcptTo,
            "timeout after 30s waiting for the RCPT reply",
        ),
        failed(mx2, 2, Stage::MailFrom, "connection reset by peer"),
    ]));
    check(
        &d,
        Verdict::Tempfail,
        Decision::Defer,
        Some(Decision::Defer),
        &[],
    );
}

// --- row 25: postmaster missing ----------------------------------------------

#[test]
fn row_25_postmaster_refused_sender_accepted_is_receivable_no_postmaster() {
    let (mx1, _) = mx1_mx2();
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, ok_rcpt())]),
        Some(postfix_user_unknown("q7x0r2k9@example.com")),
        Some(postfix_user_unknown("postmaster@example.com")),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Receivable,
        Decision::Pass,
        Some(Decision::Pass),
        &[Flag::NoPostmaster],
    );
    assert!(d.reason.contains("postmaster"), "{}", d.reason);
}

// --- multi-host sequences (precedence paragraph under §7) -----------------------

#[test]
fn multi_host_dead_primary_then_accepting_secondary_is_receivable() {
    let (mx1, mx2) = mx1_mx2();
    let d = decide(&evidence(vec![
        failed(mx1, 1, Stage::Connect, "connection refused"),
        at(mx2, 2, Stage::RcptTo, ok_rcpt()),
    ]));
    check(
        &d,
        Verdict::Receivable,
        Decision::Pass,
        Some(Decision::Pass),
        &[],
    );
    assert_eq!(deciding_host(&d), mx2);
}

#[test]
fn multi_host_first_4xx_then_second_5xx_fails_decided_by_second() {
    let (mx1, mx2) = mx1_mx2();
    let d = decide(&with_domain(
        evidence(vec![
            at(mx1, 1, Stage::RcptTo, greylisted()),
            at(mx2, 2, Stage::RcptTo, postfix_user_unknown(SENDER)),
        ]),
        None,
        Some(ok_rcpt()),
    ));
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
    assert_eq!(deciding_host(&d), mx2);
}

#[test]
fn multi_host_5xx_greeting_first_mx_exim_fails_postfix_moves_on() {
    let (mx1, mx2) = mx1_mx2();
    let banner = reply(554, None, &["554 mx1.example.com No SMTP service here"]);
    let d = decide(&evidence(vec![
        at(mx1, 1, Stage::Greeting, banner),
        at(mx2, 2, Stage::RcptTo, ok_rcpt()),
    ]));
    // Exim: the 5xx banner ends the callout with FAIL (1.3). Postfix:
    // smtp_skip_5xx_greeting, next MX accepts (2.3).
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Pass),
        &[],
    );
    assert_eq!(deciding_host(&d), mx1);
}

#[test]
fn multi_host_spamhaus_greeting_then_user_unknown_postfix_fails_at_second() {
    let (mx1, mx2) = mx1_mx2();
    let d = decide(&evidence(vec![
        at(mx1, 1, Stage::Greeting, spamhaus_greeting()),
        at(mx2, 2, Stage::RcptTo, postfix_user_unknown(SENDER)),
    ]));
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

// --- free text may only move a verdict towards unknown --------------------------

#[test]
fn free_text_user_unknown_that_says_blocked_is_probe_blocked() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        550,
        Some((5, 1, 1)),
        &["550 5.1.1 <news@example.com>: Recipient address rejected: User unknown; client [203.0.113.9] blocked"],
    );
    let d = decide(&with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, r)]),
        None,
        Some(ok_rcpt()),
    ));
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn free_text_user_unknown_that_says_blocked_without_our_ip_is_probe_blocked() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        550,
        Some((5, 1, 1)),
        &["550 5.1.1 User unknown or sender blocked"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    assert_eq!(d.verdict, Verdict::ProbeBlocked, "{}", d.reason);
    assert_eq!(d.verdict.class(), Class::Unknown);
}

#[test]
fn free_text_plain_550_without_signals_is_unreceivable() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        550,
        None,
        &["550 Requested action not taken: mailbox unavailable"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn free_text_bare_550_code_only_is_unreceivable() {
    let (mx1, _) = mx1_mx2();
    let r = reply(550, None, &["550"]);
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn free_text_never_turns_a_2xx_into_a_failure() {
    let (mx1, _) = mx1_mx2();
    let r = reply(
        250,
        Some((2, 1, 5)),
        &["250 2.1.5 Ok, but your host 203.0.113.9 is listed; user unknown"],
    );
    let d = decide(&evidence(vec![at(mx1, 1, Stage::RcptTo, r)]));
    check(
        &d,
        Verdict::Receivable,
        Decision::Pass,
        Some(Decision::Pass),
        &[],
    );
}

// --- no-postmaster domain with an unknown sender ------------------------------

#[test]
fn no_postmaster_domain_with_unknown_sender_stays_unreceivable() {
    // Two user-unknown replies that differ only by the address are not
    // "postmaster refused identically" (row 20): the domain simply has
    // neither mailbox (rows 18 + 25's flag).
    let (mx1, _) = mx1_mx2();
    let ev = with_domain(
        evidence(vec![at(
            mx1,
            1,
            Stage::RcptTo,
            postfix_user_unknown(SENDER),
        )]),
        Some(postfix_user_unknown("q7x0r2k9@example.com")),
        Some(postfix_user_unknown("postmaster@example.com")),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[Flag::NoPostmaster],
    );
}

#[test]
fn no_postmaster_domain_exim_unrouteable_stays_unreceivable() {
    // Exim's text names no address at all: identical for both.
    let (mx1, _) = mx1_mx2();
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, exim_unrouteable())]),
        None,
        Some(exim_unrouteable()),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[Flag::NoPostmaster],
    );
}

#[test]
fn no_postmaster_domain_user_unknown_without_enhanced_field_stays_unreceivable() {
    // The enhanced code only in the text (parser left `enhanced` empty).
    let (mx1, _) = mx1_mx2();
    let r = |a: &str| {
        let line = format!("550 5.1.1 <{a}>: Mailbox not found");
        reply(550, None, &[&line])
    };
    let ev = with_domain(
        evidence(vec![at(mx1, 1, Stage::RcptTo, r(SENDER))]),
        None,
        Some(r("postmaster@example.com")),
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[Flag::NoPostmaster],
    );
}

// --- null sender and non-null sender refused alike ------------------------------

#[test]
fn null_and_non_null_sender_refused_alike_is_not_null_sender_rejected() {
    // §4 step 4: only a non-null sender that is *accepted* shows the refusal
    // is specific to `<>`. Refused the same way, it is about us (row 20's
    // "rejected identically" reasoning), so the verdict moves to unknown.
    let (mx1, _) = mx1_mx2();
    let r = reply(550, Some((5, 7, 1)), &["550 5.7.1 Access denied"]);
    let ev = with_probe_sender(
        evidence(vec![at(mx1, 1, Stage::MailFrom, r.clone())]),
        vec![at(mx1, 1, Stage::MailFrom, r)],
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::ProbeBlocked,
        Decision::Fail,
        Some(Decision::Fail),
        &[],
    );
}

#[test]
fn rcpt_policy_refusal_for_null_sender_accepted_for_non_null_is_null_sender_rejected() {
    // Row 21 requires the same refusal with a non-null MAIL FROM; accepted
    // instead, the refusal is about `<>` (row 13).
    let (mx1, _) = mx1_mx2();
    let r = reply(
        550,
        Some((5, 7, 1)),
        &["550 5.7.1 <news@example.com>: Recipient address rejected: Access denied"],
    );
    let ev = with_probe_sender(
        evidence(vec![at(mx1, 1, Stage::RcptTo, r)]),
        vec![at(mx1, 1, Stage::RcptTo, ok_rcpt())],
    );
    let d = decide(&ev);
    check(
        &d,
        Verdict::NullSenderRejected,
        Decision::Fail,
        Some(Decision::Pass),
        &[],
    );
}

#[test]
fn tls_required_at_mail_is_about_the_prober_not_the_null_sender() {
    // A server that wants STARTTLS before MAIL refuses our plain-text probe;
    // Exim would have used TLS, so this must not read as a refused <>.
    let ev = evidence(vec![at(
        "mx.tls.test",
        1,
        Stage::MailFrom,
        reply(
            530,
            Some((5, 7, 0)),
            &["530 5.7.0 Must issue a STARTTLS command first"],
        ),
    )]);
    let d = decide(&ev);
    assert_eq!(d.verdict, Verdict::ProbeBlocked, "{}", d.reason);
    assert_eq!(d.verdict.class(), Class::Unknown);
}

#[test]
fn relay_refusals_in_other_mtas_words_are_relay_denied() {
    // Exim: "550 relay not permitted"; Microsoft: 5.7.54 "Unable to relay";
    // older MTAs: "we do not relay", "relaying disallowed".
    for text in [
        "550 relay not permitted",
        "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
        "550 5.7.1 Relaying disallowed",
        "554 we do not relay",
    ] {
        let ev = evidence(vec![at(
            "mx.other.test",
            1,
            Stage::RcptTo,
            reply(text[..3].parse().unwrap(), None, &[text]),
        )]);
        let d = decide(&ev);
        assert_eq!(d.verdict, Verdict::Unreceivable, "{text}: {}", d.reason);
        assert!(d.reason.contains("relay denied"), "{text}: {}", d.reason);
    }
}

// --- replies seen in the field, at RCPT --------------------------------------

/// One RCPT reply as servers in the field word it, with `<>` accepted at MAIL
/// and the postmaster control accepted: the text alone must land on the
/// right row (18, 19, 20, 21 or 22).
#[test]
fn field_replies_at_rcpt_land_on_their_rows() {
    use Verdict::*;
    let cases: &[(&str, Verdict)] = &[
        // Row 18: the mailbox does not exist, in each MTA's words.
        ("550 5.1.1 User not listed in public Name & Address Book", Unreceivable), // Domino
        ("550 sorry, no mailbox here by that name. (#5.1.1)", Unreceivable), // qmail
        ("550 5.1.1 <news@example.com>: Recipient address rejected: User unknown in local recipient table", Unreceivable),
        ("550-Verification failed for <news@example.com>\n550-Unrouteable address\n550 Sender verify failed", Unreceivable),
        ("554 delivery error: dd This user doesn't have a yahoo.com account (news@yahoo.com) [0]", Unreceivable),
        ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", Unreceivable),
        ("551 User not local; please try <news@other.example>", Unreceivable),
        ("550 5.2.1 The email account that you tried to reach is disabled.", Unreceivable),
        // Row 19: the MX does not take mail for the domain.
        ("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", Unreceivable),
        ("554 5.7.1 <news@example.com>: Relay access denied", Unreceivable),
        // Row 20: about the prober, however the rest reads.
        ("554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org", ProbeBlocked),
        ("550 5.7.1 Your IP 203.0.113.9 is listed on a DNSBL", ProbeBlocked),
        ("550 5.7.1 Mail from 203.0.113.9 refused, see dnsbl.example", ProbeBlocked),
        ("530 5.7.0 Must issue a STARTTLS command first", ProbeBlocked),
        // Row 21: policy refusal of this address.
        ("550 5.7.1 <news@example.com>: Recipient address rejected: Access denied", Unreceivable),
        // Row 22: any 4xx.
        ("450 4.7.1 Client host rejected: cannot find your hostname, [203.0.113.9]", Tempfail),
        ("451 4.7.1 Please try again later", Tempfail),
    ];
    let (mx1, _) = mx1_mx2();
    for &(text, want) in cases {
        let lines: Vec<&str> = text.split('\n').collect();
        let code = text[..3].parse().unwrap();
        let ev = with_domain(
            evidence(vec![at(mx1, 1, Stage::RcptTo, reply(code, None, &lines))]),
            None,
            Some(ok_rcpt()),
        );
        let d = decide(&ev);
        assert_eq!(d.verdict, want, "{text:?}: {}", d.reason);
    }
}

// --- beyond §7: an address that needs SMTPUTF8 at an MX without it -----------

/// The RCPT went out downconverted (as Exim sends it): Exim's decision is the
/// server's answer to that; Postfix's probe bounces whatever the answer.
#[test]
fn smtputf8_downconverted_keeps_exims_answer_and_fails_postfix() {
    let (mx1, _) = mx1_mx2();
    let mut ev = evidence(vec![at(mx1, 1, Stage::RcptTo, ok_rcpt())]);
    ev.smtputf8_downconverted = true;
    let d = decide(&ev);
    check(
        &d,
        Verdict::Receivable,
        Decision::Pass,
        Some(Decision::Fail),
        &[Flag::Smtputf8NotOffered],
    );
    let mut ev = evidence(vec![at(mx1, 1, Stage::RcptTo, exim_unrouteable())]);
    ev.smtputf8_downconverted = true;
    let d = decide(&ev);
    check(
        &d,
        Verdict::Unreceivable,
        Decision::Fail,
        Some(Decision::Fail),
        &[Flag::Smtputf8NotOffered],
    );
    assert!(d.reason.contains("SMTPUTF8"), "{}", d.reason);
}
