//! DNS routes through the binary (`--stop-after dns`): every route outcome a
//! sender domain can have, query counting, and shards. No SMTP is spoken: the
//! addresses in these zones are never connected to.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use common::*;
use sendercheck::world::{DnsServer, Transport, Zone};
use serde_json::Value;

/// Public-looking addresses for MX hosts: only resolved, never contacted.
const PUB1: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
const PUB2: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 35);

fn route_zone() -> Zone {
    let mut z = Zone::new();
    // Plain MX set, written out of preference order.
    z.mx("mx.test", 20, "mx-b.mx.test")
        .mx("mx.test", 10, "mx-a.mx.test")
        .mx("mx.test", 30, "mx-c.mx.test")
        .a("mx-a.mx.test", PUB1)
        .a("mx-b.mx.test", PUB2)
        .a("mx-c.mx.test", PUB2);
    z.mx("nullmx.test", 0, ".");
    z.mx("mixed.test", 0, ".")
        .mx("mixed.test", 10, "mx-a.mx.test");
    z.a("implicit.test", PUB1);
    z.txt("txtonly.test", "v=spf1 -all");
    z.mx("badtarget.test", 10, "nowhere.badtarget.test");
    z.mx("literal.test", 10, "192.0.2.1.");
    z.mx("zero.test", 10, "mx.zero.test")
        .a("mx.zero.test", Ipv4Addr::UNSPECIFIED);
    z.mx("docaddr.test", 10, "mx.docaddr.test")
        .a("mx.docaddr.test", Ipv4Addr::new(192, 0, 2, 7));
    z.mx("cnamemx.test", 10, "alias.cnamemx.test")
        .cname("alias.cnamemx.test", "real.cnamemx.test")
        .a("real.cnamemx.test", PUB1);
    z.mx("private.test", 10, "mx.private.test")
        .a("mx.private.test", Ipv4Addr::new(10, 1, 2, 3));
    z.servfail("servfail.test");
    z.refused("refused.test");
    z.silent("silent.test");
    for i in 1..=20u16 {
        let host = format!("mx{i:02}.twenty.test");
        z.mx("twenty.test", i * 5, &host).a(&host, PUB1);
    }
    z.cname("chain.test", "chain2.test")
        .cname("chain2.test", "chainend.test")
        .mx("chainend.test", 10, "mx-a.mx.test");
    z.mx("tcponly.test", 10, "mx-a.mx.test")
        .tcp_only("tcponly.test");
    z.mx("xn--bcher-kva.test", 10, "mx-a.mx.test");
    z
}

const ROUTE_SENDERS: &[&str] = &[
    "news@mx.test",
    "news@nullmx.test",
    "news@mixed.test",
    "news@implicit.test",
    "news@absent.test",
    "news@txtonly.test",
    "news@badtarget.test",
    "news@literal.test",
    "news@zero.test",
    "news@docaddr.test",
    "news@cnamemx.test",
    "news@private.test",
    "news@servfail.test",
    "news@refused.test",
    "news@silent.test",
    "news@twenty.test",
    "news@chain.test",
    "news@tcponly.test",
    "news@bücher.test",
];

struct RouteRun {
    run: Run,
    /// (name, type, transport) of every query the server saw.
    queries: Vec<(String, String, Transport)>,
}

/// One `--stop-after dns` run over every route case, shared by the tests below.
fn routes() -> &'static RouteRun {
    static RUN: OnceLock<RouteRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let dns = DnsServer::start(route_zone()).expect("dns");
        let run = audit(
            &csv_of(ROUTE_SENDERS),
            &[
                "--stop-after",
                "dns",
                "--nameserver",
                &ns(&dns),
                "--dns-timeout",
                "300ms",
                "--dns-attempts",
                "1",
            ],
        );
        RouteRun {
            run,
            queries: dns.queries(),
        }
    })
}

fn row(sender: &str) -> &'static Value {
    routes().run.result(sender)
}

fn mx_hosts(r: &Value) -> Vec<String> {
    r["mx_hosts"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|h| h.as_str().unwrap_or_default().to_string())
        .collect()
}

/// A routed domain under `--stop-after dns`: in a group, not probed.
#[track_caller]
fn assert_planned(r: &Value) {
    assert_verdict(r, "skipped", "--stop-after dns");
    let domain = r["domain"].as_str().expect("domain");
    let group = routes()
        .run
        .groups()
        .iter()
        .find(|g| g["domains"].as_array().unwrap().iter().any(|d| d == domain))
        .unwrap_or_else(|| panic!("{domain} is in no MX group"));
    assert_eq!(group["in_shard"], true);
}

#[test]
fn mx_records_keep_preference_order() {
    let r = row("news@mx.test");
    assert_planned(r);
    assert_eq!(
        mx_hosts(r),
        ["mx-a.mx.test", "mx-b.mx.test", "mx-c.mx.test"]
    );
    assert!(flags(r).is_empty(), "{:?}", flags(r));
}

#[test]
fn null_mx_alone() {
    let r = row("news@nullmx.test");
    assert_verdict(r, "null-mx", "null MX");
    assert_eq!(r["class"], "fail");
    assert!(!has_flag(r, "null-mx-mixed"));
}

#[test]
fn null_mx_mixed_with_real_mx() {
    let r = row("news@mixed.test");
    assert_verdict(r, "null-mx", "null MX");
    assert!(has_flag(r, "null-mx-mixed"), "{:?}", flags(r));
    assert_eq!(r["postfix"], "fail");
}

#[test]
fn implicit_mx_from_a_record() {
    let r = row("news@implicit.test");
    assert_planned(r);
    assert!(has_flag(r, "implicit-mx"), "{:?}", flags(r));
    assert_eq!(mx_hosts(r), ["implicit.test"]);
}

#[test]
fn nxdomain_is_no_domain() {
    let r = row("news@absent.test");
    assert_verdict(r, "no-domain", "NXDOMAIN");
    assert_eq!(r["class"], "fail");
    assert!(flags(r).is_empty());
}

#[test]
fn nodata_is_no_mail_host() {
    let r = row("news@txtonly.test");
    assert_verdict(r, "no-mail-host", "no MX record and no A/AAAA");
    assert!(!has_flag(r, "implicit-mx"));
}

#[test]
fn mx_target_nxdomain_is_no_mail_host() {
    let r = row("news@badtarget.test");
    assert_verdict(r, "no-mail-host", "nowhere.badtarget.test does not exist");
    assert_eq!(mx_hosts(r), ["nowhere.badtarget.test"]);
}

#[test]
fn mx_target_ip_literal_is_no_mail_host() {
    let r = row("news@literal.test");
    assert_verdict(r, "no-mail-host", "is an IP address");
}

#[test]
fn mx_target_unspecified_address_is_no_mail_host() {
    let r = row("news@zero.test");
    assert_verdict(r, "no-mail-host", "0.0.0.0");
}

#[test]
fn mx_target_documentation_address_is_no_mail_host() {
    let r = row("news@docaddr.test");
    assert_verdict(r, "no-mail-host", "documentation address");
}

#[test]
fn mx_target_cname_is_usable_and_flagged() {
    let r = row("news@cnamemx.test");
    assert_planned(r);
    assert!(has_flag(r, "mx-cname"), "{:?}", flags(r));
}

#[test]
fn private_mx_is_no_mail_host_without_allowance() {
    let r = row("news@private.test");
    assert_verdict(r, "no-mail-host", "--allow-private-mx");
    assert_eq!(r["class"], "fail");
    assert_eq!(r["exim"], "fail");
    assert!(!routes().run.groups().iter().any(|g| g["domains"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == "private.test")));
}

#[test]
fn private_mx_is_planned_with_allowance() {
    let mut z = Zone::new();
    z.mx("private.test", 10, "mx.private.test")
        .a("mx.private.test", Ipv4Addr::new(10, 1, 2, 3));
    let dns = DnsServer::start(z).expect("dns");
    let run = audit(
        &csv_of(&["news@private.test"]),
        &[
            "--stop-after",
            "dns",
            "--nameserver",
            &ns(&dns),
            "--allow-private-mx",
        ],
    );
    let r = run.result("news@private.test");
    assert_verdict(r, "skipped", "--stop-after dns");
    assert_eq!(mx_hosts(r), ["mx.private.test"]);
    let groups = run.groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["in_shard"], true);
    assert_eq!(groups[0]["mx_hosts"][0], "mx.private.test");
}

#[track_caller]
fn assert_dns_error(sender: &str, fragment: &str) {
    let r = row(sender);
    assert_verdict(r, "dns-error", fragment);
    assert_eq!(r["class"], "unknown");
    assert_eq!(r["exim"], "defer");
    assert_eq!(r["postfix"], "defer");
}

#[test]
fn servfail_is_dns_error() {
    assert_dns_error("news@servfail.test", "servfail.test");
}

#[test]
fn refused_is_dns_error() {
    assert_dns_error("news@refused.test", "refused.test");
}

#[test]
fn silent_server_is_dns_error() {
    assert_dns_error("news@silent.test", "silent.test");
}

#[test]
fn twenty_mx_records() {
    let r = row("news@twenty.test");
    assert_planned(r);
    let want: Vec<String> = (1..=20).map(|i| format!("mx{i:02}.twenty.test")).collect();
    assert_eq!(mx_hosts(r), want);
}

#[test]
fn mx_through_cname_chain() {
    let r = row("news@chain.test");
    assert_planned(r);
    assert_eq!(mx_hosts(r), ["mx-a.mx.test"]);
}

#[test]
fn tcp_only_name_resolves_over_tcp() {
    let r = row("news@tcponly.test");
    assert_planned(r);
    assert_eq!(mx_hosts(r), ["mx-a.mx.test"]);
    assert!(routes()
        .queries
        .iter()
        .any(|(n, t, tr)| n == "tcponly.test" && t == "MX" && *tr == Transport::Tcp));
}

#[test]
fn idn_domain_resolves_by_a_label() {
    let r = row("news@bücher.test");
    assert_planned(r);
    assert_eq!(r["domain"], "xn--bcher-kva.test");
    assert_eq!(r["address"], "news@xn--bcher-kva.test");
    assert!(has_flag(r, "idn-converted"), "{:?}", flags(r));
    assert_eq!(mx_hosts(r), ["mx-a.mx.test"]);
    assert!(routes()
        .queries
        .iter()
        .any(|(n, t, _)| n == "xn--bcher-kva.test" && t == "MX"));
}

#[test]
fn route_run_exit_status_reflects_failures() {
    // null-mx, no-domain, no-mail-host are failures.
    assert_eq!(routes().run.code, 1, "{}", routes().run.stderr);
}

// ------------------------------------------------------------ query counting

#[test]
fn one_query_per_domain_and_per_mx_host() {
    const DOMAINS: usize = 300;
    const HOSTS: usize = 12;
    const SENDERS: usize = 5000;
    let mut z = Zone::new();
    for h in 0..HOSTS {
        z.a(&format!("mx{h}.shared.test"), PUB1);
    }
    for d in 0..DOMAINS {
        // Two MX hosts per domain, from the shared twelve.
        z.mx(
            &format!("d{d}.test"),
            10,
            &format!("mx{}.shared.test", d % HOSTS),
        );
        z.mx(
            &format!("d{d}.test"),
            20,
            &format!("mx{}.shared.test", (d + 1) % HOSTS),
        );
    }
    let dns = DnsServer::start(z).expect("dns");
    let senders: Vec<String> = (0..SENDERS)
        .map(|i| format!("user{i}@d{}.test", i % DOMAINS))
        .collect();
    let run = audit(
        &csv_of(&senders),
        &["--stop-after", "dns", "--nameserver", &ns(&dns)],
    );
    assert_eq!(run.results().len(), SENDERS);
    for d in 0..DOMAINS {
        assert_eq!(
            dns.count(&format!("d{d}.test"), "MX"),
            1,
            "MX queries for d{d}.test"
        );
    }
    for h in 0..HOSTS {
        let host = format!("mx{h}.shared.test");
        assert_eq!(dns.count(&host, "A"), 1, "A queries for {host}");
        assert_eq!(dns.count(&host, "AAAA"), 1, "AAAA queries for {host}");
    }
    assert_eq!(dns.total("MX"), DOMAINS);
    assert_eq!(dns.total("A"), HOSTS);
    assert_eq!(dns.total("AAAA"), HOSTS);
    assert_eq!(run.stat(&["dns_queries", "MX"]), DOMAINS as u64);
    assert_eq!(run.stat(&["dns_queries", "A"]), HOSTS as u64);
    assert_eq!(run.stat(&["dns_queries", "AAAA"]), HOSTS as u64);
    assert!(run
        .results()
        .iter()
        .all(|r| r["verdict"] == "skipped" && !r["mx_hosts"].as_array().unwrap().is_empty()));
}

// ------------------------------------------------------------------- shards

fn in_shard_groups(run: &Run) -> BTreeSet<Vec<String>> {
    run.groups()
        .iter()
        .filter(|g| g["in_shard"] == true)
        .map(|g| {
            g["mx_hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn shards_are_disjoint_cover_everything_and_are_stable() {
    const GROUPS: usize = 30;
    let mut z = Zone::new();
    let mut senders = Vec::new();
    for g in 0..GROUPS {
        let host = format!("mx.g{g}.test");
        z.a(&host, PUB1);
        for d in 0..2 {
            let domain = format!("d{d}.g{g}.test");
            z.mx(&domain, 10, &host);
            senders.push(format!("news@{domain}"));
        }
    }
    let dns = DnsServer::start(z).expect("dns");
    let csv = csv_of(&senders);
    let shard_run = |k: usize| {
        let shard = format!("{k}/3");
        audit(
            &csv,
            &[
                "--stop-after",
                "dns",
                "--nameserver",
                &ns(&dns),
                "--shard",
                &shard,
            ],
        )
    };
    let mut all: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut first = Vec::new();
    for k in 1..=3 {
        let run = shard_run(k);
        assert_eq!(run.groups().len(), GROUPS, "every run plans every group");
        // Skipped reasons agree with in_shard.
        for r in run.results() {
            let reason = r["reason"].as_str().unwrap();
            let domain = r["domain"].as_str().unwrap();
            let g = run
                .groups()
                .iter()
                .find(|g| g["domains"].as_array().unwrap().iter().any(|d| d == domain))
                .unwrap();
            assert_eq!(
                reason.contains("not in this shard"),
                g["in_shard"] == false,
                "{domain}: {reason}"
            );
        }
        let mine = in_shard_groups(&run);
        for g in &mine {
            *all.entry(g.clone()).or_default() += 1;
        }
        first.push(mine);
    }
    assert_eq!(all.len(), GROUPS, "shards cover every group");
    assert!(all.values().all(|&n| n == 1), "shards overlap: {all:?}");
    assert!(first.iter().all(|s| !s.is_empty()), "a shard is empty");
    for (k, want) in first.iter().enumerate() {
        assert_eq!(
            &in_shard_groups(&shard_run(k + 1)),
            want,
            "shard {} moved",
            k + 1
        );
    }
}
