//! Proves the offline world with real sockets: hand-built DNS queries over UDP
//! and TCP, raw SMTP dialogues, and hostile servers that must still end.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use sendercheck::world::{
    unused_port_free_ip, DnsServer, Greeting, Hostile, NullSender, Script, SmtpServer, Transport,
    World, WorldError, WorldSpec, Zone,
};

// ---------------------------------------------------------------- DNS helpers

fn query(name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    msg
}

fn udp_ask(server: SocketAddr, msg: &Message, timeout: Duration) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(timeout)).unwrap();
    sock.send_to(&msg.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => {
            assert!(n <= 4096, "UDP answer must respect the size limit");
            let resp = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(resp.metadata.id, msg.metadata.id);
            Some(resp)
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("udp error {e}"),
    }
}

fn tcp_ask_many(server: SocketAddr, msgs: &[Message]) -> Vec<Message> {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    for msg in msgs {
        let wire = msg.to_vec().unwrap();
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        s.write_all(&framed).unwrap();
    }
    for _ in msgs {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).unwrap();
        out.push(Message::from_vec(&buf).unwrap());
    }
    out
}

fn udp(server: &DnsServer, name: &str, qtype: RecordType) -> Message {
    udp_ask(server.addr(), &query(name, qtype), Duration::from_secs(5)).expect("an answer")
}

fn mx_targets(msg: &Message) -> Vec<(u16, String)> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
            _ => None,
        })
        .collect()
}

fn test_zone() -> Zone {
    let mut z = Zone::new();
    z.mx("Provider.TEST.", 10, "mx1.provider.test")
        .mx("provider.test", 20, "mx2.provider.test")
        .a("mx1.provider.test", Ipv4Addr::new(127, 0, 0, 10))
        .a("mx2.provider.test", Ipv4Addr::new(127, 0, 0, 11))
        .aaaa("mx1.provider.test", "::1".parse().unwrap())
        .txt("provider.test", "v=spf1 -all")
        .mx("nullmx.test", 0, ".")
        .cname("alias.test", "provider.test")
        .cname("dangling.test", "nowhere.test")
        .servfail("broken.test")
        .refused("refused.test")
        .silent("silent.test")
        .a("only-tcp.test", Ipv4Addr::new(127, 0, 0, 12))
        .tcp_only("only-tcp.test")
        .a("deep.sub.parent.test", Ipv4Addr::new(127, 0, 0, 13));
    for i in 0..20u16 {
        // Distinct long labels, so name compression cannot squeeze them under 512 bytes.
        z.mx(
            "big.test",
            i,
            &format!("mx.provider-number-{i:02}-with-a-long-label.test"),
        );
    }
    z
}

// ---------------------------------------------------------------- DNS tests

#[test]
fn dns_mx_over_udp_and_tcp_case_insensitive() {
    let dns = DnsServer::start(test_zone()).unwrap();
    assert!(dns.addr().ip().is_loopback());
    let r = udp(&dns, "PROVIDER.test.", RecordType::MX);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert!(!r.metadata.truncation);
    let mut mx = mx_targets(&r);
    mx.sort();
    assert_eq!(
        mx,
        vec![
            (10, "mx1.provider.test.".to_string()),
            (20, "mx2.provider.test.".to_string())
        ]
    );

    let answers = tcp_ask_many(
        dns.addr(),
        &[
            query("mx1.provider.test.", RecordType::A),
            query("mx1.provider.test.", RecordType::AAAA),
            query("provider.test.", RecordType::TXT),
        ],
    );
    assert!(
        matches!(&answers[0].answers[0].data, RData::A(a) if a.0 == Ipv4Addr::new(127, 0, 0, 10))
    );
    assert!(matches!(&answers[1].answers[0].data, RData::AAAA(_)));
    assert!(matches!(&answers[2].answers[0].data, RData::TXT(_)));

    assert_eq!(dns.count("provider.test", "MX"), 1);
    assert_eq!(dns.count("MX1.provider.test.", "a"), 1);
    assert_eq!(dns.total("A"), 1);
    let q = dns.queries();
    assert_eq!(q.len(), 4);
    assert_eq!(q[0], ("provider.test".into(), "MX".into(), Transport::Udp));
    assert_eq!(q[3], ("provider.test".into(), "TXT".into(), Transport::Tcp));
}

#[test]
fn dns_nxdomain_vs_nodata() {
    let dns = DnsServer::start(test_zone()).unwrap();
    let nx = udp(&dns, "absent.test.", RecordType::MX);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.answers.is_empty());
    assert!(
        matches!(nx.authorities[0].data, RData::SOA(_)),
        "SOA in authority"
    );

    // Exists with other types: NODATA.
    let nodata = udp(&dns, "mx1.provider.test.", RecordType::MX);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert!(matches!(nodata.authorities[0].data, RData::SOA(_)));

    // An empty non-terminal exists too.
    let ent = udp(&dns, "parent.test.", RecordType::A);
    assert_eq!(ent.metadata.response_code, ResponseCode::NoError);
    assert!(ent.answers.is_empty());
}

#[test]
fn dns_null_mx_and_cname_chase() {
    let dns = DnsServer::start(test_zone()).unwrap();
    let r = udp(&dns, "nullmx.test.", RecordType::MX);
    assert_eq!(mx_targets(&r), vec![(0, ".".to_string())]);

    let r = udp(&dns, "alias.test.", RecordType::MX);
    assert!(matches!(&r.answers[0].data, RData::CNAME(c) if c.0.to_ascii() == "provider.test."));
    assert_eq!(mx_targets(&r).len(), 2);
    assert_eq!(r.answers[1].name.to_ascii(), "provider.test.");

    // A CNAME to nothing: the CNAME, then NXDOMAIN for the target (RFC 6604).
    let r = udp(&dns, "dangling.test.", RecordType::A);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn dns_truncation_and_tcp_fallback() {
    let dns = DnsServer::start(test_zone()).unwrap();
    // 20 long MX records do not fit 512 bytes: TC=1 over UDP...
    let r = udp(&dns, "big.test.", RecordType::MX);
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty());
    // ...but do fit a 4096-byte EDNS buffer...
    let mut q = query("big.test.", RecordType::MX);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    q.set_edns(edns);
    let r = udp_ask(dns.addr(), &q, Duration::from_secs(5)).unwrap();
    assert!(!r.metadata.truncation);
    assert_eq!(mx_targets(&r).len(), 20);
    assert!(r.edns.is_some(), "an EDNS query gets an OPT back");
    // ...and over TCP in full.
    let r = &tcp_ask_many(dns.addr(), &[query("big.test.", RecordType::MX)])[0];
    assert_eq!(mx_targets(r).len(), 20);
    assert_eq!(dns.count("big.test", "MX"), 3);

    // tcp_only: empty TC answer over UDP, full answer over TCP.
    let r = udp(&dns, "only-tcp.test.", RecordType::A);
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty());
    let r = &tcp_ask_many(dns.addr(), &[query("only-tcp.test.", RecordType::A)])[0];
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 1);
    let q = dns.queries();
    let transports: Vec<_> = q
        .iter()
        .filter(|(n, _, _)| n == "only-tcp.test")
        .map(|(_, _, t)| *t)
        .collect();
    assert_eq!(transports, vec![Transport::Udp, Transport::Tcp]);
    assert_eq!(dns.count("only-tcp.test", "A"), 2);
}

#[test]
fn dns_servfail_refused_silent() {
    let dns = DnsServer::start(test_zone()).unwrap();
    assert_eq!(
        udp(&dns, "broken.test.", RecordType::MX)
            .metadata
            .response_code,
        ResponseCode::ServFail
    );
    assert_eq!(
        udp(&dns, "refused.test.", RecordType::MX)
            .metadata
            .response_code,
        ResponseCode::Refused
    );
    let started = Instant::now();
    let r = udp_ask(
        dns.addr(),
        &query("silent.test.", RecordType::MX),
        Duration::from_millis(200),
    );
    assert!(r.is_none(), "silent names never answer");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(dns.count("silent.test", "MX"), 1);
    // The server still answers others after a silent query.
    assert_eq!(
        udp(&dns, "provider.test.", RecordType::MX)
            .metadata
            .response_code,
        ResponseCode::NoError
    );
}

#[test]
fn dns_garbage_and_drop_with_open_connection() {
    let dns = DnsServer::start(test_zone()).unwrap();
    let addr = dns.addr();
    // Garbage over UDP gets FORMERR (when it has a header) and no crash.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&[0x12, 0x34, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0xff], addr)
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let r = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(r.metadata.id, 0x1234);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    // An idle TCP client must not keep Drop waiting.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    drop(dns);
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut b = [0u8; 1];
    assert!(matches!(idle.read(&mut b), Ok(0) | Err(_)));
}

// ---------------------------------------------------------------- SMTP helpers

/// A raw SMTP client: no cleverness, so the server is what is being tested.
struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(server: &SmtpServer) -> Client {
        let s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            r: BufReader::new(s),
        }
    }

    /// One full reply, continuation lines joined with '\n'.
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "connection closed while waiting for a reply: {lines:?}"
            );
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    fn send(&mut self, raw: &str) {
        self.r.get_mut().write_all(raw.as_bytes()).unwrap();
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// True if the server closed the connection (EOF or reset) with nothing more to say.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
        }
    }
}

fn code(reply: &str) -> &str {
    &reply[..3]
}

fn provider() -> Script {
    Script::new("mx1.provider.test")
        .domain("provider.test")
        .users(&["news", "Billing", "alice"])
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

// ---------------------------------------------------------------- SMTP tests

#[test]
fn smtp_normal_dialogue() {
    let srv = SmtpServer::start(ip(1), 0, provider()).unwrap();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220 mx1.provider.test"));
    let ehlo = c.cmd("EHLO prober.test");
    assert!(ehlo.starts_with("250-mx1.provider.test"));
    assert!(ehlo.contains("250-PIPELINING"));
    assert_eq!(code(&c.cmd("MAIL FROM:<>")), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<news@provider.test>")), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<BILLING@Provider.Test>")), "250");
    let unknown = c.cmd("RCPT TO:<nobody@provider.test>");
    assert_eq!(
        unknown,
        "550 5.1.1 <nobody@provider.test>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    assert_eq!(code(&c.cmd("RCPT TO:<postmaster@provider.test>")), "250");
    assert_eq!(
        c.cmd("RCPT TO:<news@elsewhere.test>"),
        "554 5.7.1 <news@elsewhere.test>: Relay access denied"
    );
    assert_eq!(code(&c.cmd("RSET")), "250");
    assert_eq!(code(&c.cmd("QUIT")), "221");
    assert!(c.closed());
    let log = srv.log();
    assert_eq!(log.connections, 1);
    assert_eq!(log.rcpt_count, 5);
    assert!(!log.data_seen);
    assert!(!log.injected);
    assert_eq!(log.commands[0], (1, "EHLO prober.test".to_string()));
    assert_eq!(log.verbs("rcpt").len(), 5);
}

#[test]
fn smtp_null_sender_rejected_at_mail_or_rcpt() {
    let srv =
        SmtpServer::start(ip(1), 0, provider().null_sender(NullSender::RejectAtMail)).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("EHLO prober.test");
    assert_eq!(
        c.cmd("MAIL FROM:<>"),
        "550 5.7.1 <>: Sender address rejected: Null sender not accepted here"
    );
    assert_eq!(code(&c.cmd("MAIL FROM:<probe@prober.test>")), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<news@provider.test>")), "250");

    let srv =
        SmtpServer::start(ip(1), 0, provider().null_sender(NullSender::RejectAtRcpt)).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("HELO prober.test");
    assert_eq!(code(&c.cmd("MAIL FROM:<>")), "250");
    assert!(c
        .cmd("RCPT TO:<news@provider.test>")
        .starts_with("550 5.7.1 <>: Sender address rejected"));
}

#[test]
fn smtp_probe_blocked_variants() {
    let srv = SmtpServer::start(
        ip(1),
        0,
        provider()
            .null_sender(NullSender::RejectAtMail)
            .reject_non_null_too(true),
    )
    .unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("EHLO prober.test");
    assert_eq!(code(&c.cmd("MAIL FROM:<>")), "550");
    let r = c.cmd("MAIL FROM:<probe@prober.test>");
    assert!(
        r.starts_with("550 5.7.1") && r.contains("[127.0.0.1]"),
        "{r}"
    );

    let text = "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using b.barracudacentral.org";
    let srv = SmtpServer::start(ip(1), 0, provider().rcpt_override(text)).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("EHLO prober.test");
    c.cmd("MAIL FROM:<>");
    assert_eq!(c.cmd("RCPT TO:<news@provider.test>"), text);
    assert_eq!(code(&c.cmd("RCPT TO:<postmaster@provider.test>")), "250");

    let greeting = "554 5.7.1 mx.x: Client host [127.0.0.1] blocked using zen.spamhaus.org";
    let srv = SmtpServer::start(
        ip(1),
        0,
        provider().greeting(Greeting::Reject(greeting.into())),
    )
    .unwrap();
    let mut c = Client::connect(&srv);
    assert_eq!(c.reply(), greeting);
    assert_eq!(code(&c.cmd("EHLO prober.test")), "503");
    assert_eq!(code(&c.cmd("QUIT")), "221");
}

#[test]
fn smtp_greylist_first_450_then_250() {
    let srv = SmtpServer::start(ip(1), 0, provider().greylist(1)).unwrap();
    let attempt = |rcpt: &str| {
        let mut c = Client::connect(&srv);
        c.reply();
        c.cmd("EHLO prober.test");
        c.cmd("MAIL FROM:<>");
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        c.cmd("QUIT");
        r
    };
    let first = attempt("news@provider.test");
    assert!(
        first.starts_with("450 4.2.0 <news@provider.test>: Recipient address rejected: Greylisted")
    );
    assert_eq!(code(&attempt("news@provider.test")), "250");
    // Greylisting is per (sender, recipient) pair; an unknown user is unknown once let through.
    assert_eq!(code(&attempt("nobody@provider.test")), "450");
    assert_eq!(code(&attempt("nobody@provider.test")), "550");
}

#[test]
fn smtp_limits_452_and_421() {
    let srv = SmtpServer::start(ip(1), 0, provider().max_rcpt_per_txn(2)).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("EHLO prober.test");
    c.cmd("MAIL FROM:<>");
    assert_eq!(code(&c.cmd("RCPT TO:<news@provider.test>")), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<alice@provider.test>")), "250");
    assert_eq!(
        c.cmd("RCPT TO:<billing@provider.test>"),
        "452 4.5.3 Too many recipients"
    );
    c.cmd("RSET");
    c.cmd("MAIL FROM:<>");
    assert_eq!(code(&c.cmd("RCPT TO:<billing@provider.test>")), "250");

    let srv = SmtpServer::start(ip(1), 0, provider().drop_after_commands(3)).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("EHLO prober.test");
    c.cmd("MAIL FROM:<>");
    assert_eq!(code(&c.cmd("RCPT TO:<news@provider.test>")), "250");
    assert_eq!(
        c.cmd("RCPT TO:<alice@provider.test>"),
        "421 4.7.0 Too many commands, closing"
    );
    assert!(c.closed());
}

#[test]
fn smtp_pipelined_input_and_ehlo_fallback() {
    let srv = SmtpServer::start(ip(1), 0, provider().tempfail_rcpt(false)).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("EHLO prober.test");
    c.send(
        "MAIL FROM:<>\r\nRCPT TO:<news@provider.test>\r\nRCPT TO:<x@provider.test>\r\n\
         RCPT TO:<alice@provider.test>\r\nRSET\r\nNOOP\r\nQUIT\r\n",
    );
    let codes: Vec<String> = (0..7).map(|_| code(&c.reply()).to_string()).collect();
    assert_eq!(codes, ["250", "250", "550", "250", "250", "250", "221"]);
    assert!(c.closed());

    let srv =
        SmtpServer::start(ip(1), 0, provider().ehlo_rejected(true).pipelining(false)).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    assert_eq!(code(&c.cmd("EHLO prober.test")), "500");
    assert_eq!(c.cmd("HELO prober.test"), "250 mx1.provider.test");

    let srv = SmtpServer::start(
        ip(1),
        0,
        provider().tempfail_rcpt(true).greeting(Greeting::Multiline),
    )
    .unwrap();
    let mut c = Client::connect(&srv);
    assert_eq!(c.reply().lines().count(), 3);
    let ehlo = c.cmd("EHLO prober.test");
    assert!(ehlo.contains("PIPELINING"));
    c.cmd("MAIL FROM:<>");
    assert_eq!(
        c.cmd("RCPT TO:<news@provider.test>"),
        "451 4.3.2 Please try again later"
    );
}

#[test]
fn smtp_data_and_injection_are_seen() {
    let srv = SmtpServer::start(ip(1), 0, provider()).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("EHLO prober.test");
    c.cmd("MAIL FROM:<>");
    assert!(!srv.log().data_seen);
    assert_eq!(code(&c.cmd("DATA")), "554", "no valid recipients yet");
    assert!(srv.log().data_seen);

    let srv = SmtpServer::start(ip(1), 0, provider()).unwrap();
    let mut c = Client::connect(&srv);
    c.reply();
    c.cmd("EHLO prober.test");
    c.cmd("MAIL FROM:<>");
    c.cmd("RCPT TO:<news@provider.test>");
    assert_eq!(code(&c.cmd("DATA")), "354");
    assert_eq!(code(&c.cmd("Subject: x\r\n\r\nhello\r\n.")), "250");
    assert!(srv.log().data_seen);
    assert!(!srv.log().injected);
    c.cmd("RCPT TO:<a\rDATA@provider.test>");
    c.cmd("NOOP\0");
    assert!(srv.log().injected);
}

#[test]
fn smtp_servers_share_a_port_and_dead_ips_refuse() {
    let a = SmtpServer::start(ip(31), 0, provider()).unwrap();
    let port = a.addr().port();
    let b = SmtpServer::start(ip(32), port, Script::new("mx.other.test")).unwrap();
    assert_eq!(b.addr(), SocketAddr::from((ip(32), port)));
    assert!(Client::connect(&b).reply().starts_with("220 mx.other.test"));
    assert!(SmtpServer::start(Ipv4Addr::new(10, 0, 0, 1), 0, Script::default()).is_err());
    let dead = unused_port_free_ip(port, &[ip(31), ip(32)]).unwrap();
    assert!(dead.is_loopback());
    let err = TcpStream::connect((dead, port)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // Concurrency is logged.
    let c1 = Client::connect(&a);
    let mut c2 = Client::connect(&a);
    c2.reply();
    assert_eq!(a.log().max_concurrent, 2);
    drop(c1);
}

/// Reads until EOF/reset or `cap` bytes; returns the bytes seen (at most `keep`).
fn drain(s: &mut TcpStream, cap: usize, keep: usize) -> (usize, Vec<u8>) {
    let mut total = 0;
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    while total < cap {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if kept.len() < keep {
                    kept.extend_from_slice(&buf[..n.min(keep - kept.len())]);
                }
                total += n;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    (total, kept)
}

fn hostile(h: Hostile) -> (SmtpServer, TcpStream) {
    let srv = SmtpServer::start(ip(1), 0, provider().hostile(h)).unwrap();
    let s = TcpStream::connect(srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (srv, s)
}

#[test]
fn hostile_servers_end_by_themselves() {
    let (_srv, mut s) = hostile(Hostile::HugeLine);
    let (n, head) = drain(&mut s, 64 << 20, 8);
    assert_eq!(n, 4 + 10 * 1024 * 1024);
    assert_eq!(&head[..4], b"220 ");

    let (_srv, mut s) = hostile(Hostile::EndlessContinuation);
    let (n, head) = drain(&mut s, 64 << 20, 8);
    assert!((50 << 20..51 << 20).contains(&n), "{n}");
    assert_eq!(&head[..4], b"220-");

    let (_srv, mut s) = hostile(Hostile::Garbage);
    let (n, head) = drain(&mut s, 1 << 20, 1);
    assert_eq!(n, 4096);
    assert!(!head[0].is_ascii_digit());

    let (_srv, mut s) = hostile(Hostile::ResetMidReply);
    let (_, head) = drain(&mut s, 1 << 20, 100);
    assert!(!head.contains(&b'\n'), "never a complete reply");
}

#[test]
fn hostile_servers_stop_on_drop() {
    for h in [
        Hostile::Tarpit,
        Hostile::EndlessContinuation,
        Hostile::HugeLine,
    ] {
        let (srv, mut s) = hostile(h);
        let mut first = [0u8; 1];
        s.read_exact(&mut first).unwrap();
        assert_eq!(first[0], b'2');
        if h == Hostile::Tarpit {
            // The next byte is a second away.
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let e = s.read(&mut first).unwrap_err();
            assert!(matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut
            ));
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        }
        let started = Instant::now();
        drop(srv);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{h:?} held Drop"
        );
        drain(&mut s, 64 << 20, 0);
    }

    let srv = SmtpServer::start(ip(1), 0, provider().greeting(Greeting::Never)).unwrap();
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 1];
    let e = s.read(&mut b).unwrap_err();
    assert!(matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    let started = Instant::now();
    drop(srv);
    assert!(started.elapsed() < Duration::from_secs(3));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
}

// ---------------------------------------------------------------- the whole world

fn rcpt_via(world: &World, server: &str, rcpt: &str) -> String {
    let srv = world.server(server).expect("server in the demo world");
    let mut c = Client::connect(srv);
    c.reply();
    c.cmd("EHLO prober.test");
    let mail = c.cmd("MAIL FROM:<>");
    if !mail.starts_with('2') {
        return mail;
    }
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    c.cmd("QUIT");
    r
}

#[test]
fn demo_world_starts_and_plays_its_domains() {
    let spec = WorldSpec::demo().unwrap();
    let world = World::start(&spec).unwrap();
    let port = world.smtp_port();
    assert!(world.servers.iter().all(|(_, s)| s.addr().port() == port));
    let ns = world.nameserver();
    let ask = |name: &str, t: RecordType| {
        udp_ask(ns, &query(name, t), Duration::from_secs(5)).expect("answer")
    };

    // DNS shapes.
    assert_eq!(mx_targets(&ask("provider.test.", RecordType::MX)).len(), 2);
    let a = ask("mx1.provider.test.", RecordType::A);
    assert!(matches!(&a.answers[0].data, RData::A(ip) if ip.0 == Ipv4Addr::new(127, 0, 0, 10)));
    assert_eq!(
        mx_targets(&ask("nullmx.test.", RecordType::MX)),
        vec![(0, ".".into())]
    );
    assert_eq!(
        mx_targets(&ask("mixed-nullmx.test.", RecordType::MX)).len(),
        2
    );
    assert_eq!(
        ask("absent.test.", RecordType::MX).metadata.response_code,
        ResponseCode::NXDomain
    );
    let txtonly = ask("txtonly.test.", RecordType::MX);
    assert_eq!(txtonly.metadata.response_code, ResponseCode::NoError);
    assert!(txtonly.answers.is_empty());
    assert!(ask("txtonly.test.", RecordType::A).answers.is_empty());
    assert_eq!(
        ask("mx.nowhere.badmx.test.", RecordType::A)
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    assert!(ask("implicit.test.", RecordType::MX).answers.is_empty());
    assert_eq!(ask("implicit.test.", RecordType::A).answers.len(), 1);
    assert!(ask("bigmx.test.", RecordType::MX).metadata.truncation);
    assert_eq!(
        ask("servfail.test.", RecordType::MX).metadata.response_code,
        ResponseCode::ServFail
    );
    let brand = ask("brand.test.", RecordType::MX);
    assert_eq!(mx_targets(&brand).len(), 2);

    // Dead addresses really refuse.
    for dead in [200, 201, 202] {
        let e = TcpStream::connect((ip(dead), port)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    }

    // SMTP behaviours.
    assert_eq!(
        code(&rcpt_via(&world, "mx1.provider.test", "news@provider.test")),
        "250"
    );
    assert_eq!(
        code(&rcpt_via(
            &world,
            "mx1.provider.test",
            "nobody@provider.test"
        )),
        "550"
    );
    assert!(
        rcpt_via(&world, "mx1.provider.test", "news@relaydenied.test")
            .contains("Relay access denied")
    );
    assert!(
        rcpt_via(&world, "mx.strict-mail.test", "news@strict-mail.test").contains("Null sender")
    );
    assert!(
        rcpt_via(&world, "mx.strict-rcpt.test", "news@strict-rcpt.test").contains("Null sender")
    );
    assert_eq!(
        code(&rcpt_via(&world, "mx.catchall.test", "zz9@catchall.test")),
        "250"
    );
    assert_eq!(
        code(&rcpt_via(
            &world,
            "mx.nopostmaster.test",
            "postmaster@nopostmaster.test"
        )),
        "550"
    );
    assert_eq!(
        code(&rcpt_via(&world, "mx.greylist.test", "news@greylist.test")),
        "450"
    );
    assert_eq!(
        code(&rcpt_via(&world, "mx.greylist.test", "news@greylist.test")),
        "250"
    );
    assert_eq!(
        code(&rcpt_via(&world, "implicit.test", "news@implicit.test")),
        "250"
    );
    assert_eq!(
        code(&rcpt_via(
            &world,
            "mx2.deadprimary.test",
            "news@deadprimary.test"
        )),
        "250"
    );
    assert!(rcpt_via(&world, "mx.rblrcpt.test", "news@rblrcpt.test").contains("blocked using"));
    assert_eq!(
        code(&rcpt_via(&world, "mx.tempfail.test", "news@tempfail.test")),
        "451"
    );
    let mut c = Client::connect(world.server("mx.blocklisted.test").unwrap());
    assert!(c
        .reply()
        .starts_with("554 5.7.1 mx.blocklisted.test: Client host [127.0.0.1] blocked"));
    let mut c = Client::connect(world.server("MX.OLDMTA.TEST.").unwrap());
    c.reply();
    assert_eq!(code(&c.cmd("EHLO prober.test")), "500");
    assert_eq!(
        world.server("mx1.provider.test").unwrap().log().rcpt_count,
        3
    );
    assert!(world.servers.iter().all(|(_, s)| !s.log().data_seen));
}

#[test]
fn world_spec_is_strict() {
    assert!(matches!(
        WorldSpec::from_toml("[dns.\"x.test\"]\nmx = [\"10\"]\n"),
        Err(WorldError::Spec(_))
    ));
    assert!(matches!(
        WorldSpec::from_toml("[dns.\"x.test\"]\nmxx = [\"10 a.test\"]\n"),
        Err(WorldError::Toml(_))
    ));
    assert!(matches!(
        WorldSpec::from_toml(
            "[[smtp]]\nname = \"a\"\nip = \"127.0.0.5\"\n[smtp.script]\nusres = [\"x\"]\n"
        ),
        Err(WorldError::Toml(_))
    ));
    assert!(matches!(
        WorldSpec::from_toml("[[smtp]]\nname = \"a\"\nip = \"192.0.2.1\"\n"),
        Err(WorldError::Spec(_))
    ));
    let spec = WorldSpec::from_toml(
        "[[smtp]]\nname = \"mx.a.test\"\nip = \"127.0.0.5\"\n[smtp.script]\nreply_delay_ms = 20\ngreylist = 2\n",
    )
    .unwrap();
    assert_eq!(spec.smtp[0].script.reply_delay, Duration::from_millis(20));
    assert!(spec.smtp[0].script.postmaster, "defaults fill the rest");
    let world = World::start(&spec).unwrap();
    let srv = world.server("mx.a.test").unwrap();
    assert!(Client::connect(srv).reply().starts_with("220 mx.a.test"));
}

/// The DNS stage will use hickory-resolver: prove it gets along with our server,
/// including the UDP→TCP fallback on truncation and negative answers.
#[test]
fn hickory_resolver_understands_the_world() {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::Resolver;

    let dns = DnsServer::start(test_zone()).unwrap();
    let mut ns = NameServerConfig::udp_and_tcp(dns.addr().ip());
    for c in &mut ns.connections {
        c.port = dns.addr().port();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resolver = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .build()
        .unwrap();
        let mx = resolver.mx_lookup("provider.test.").await.unwrap();
        assert_eq!(mx.answers().len(), 2);
        let big = resolver.mx_lookup("big.test.").await.unwrap();
        assert_eq!(big.answers().len(), 20);
        assert!(resolver.mx_lookup("absent.test.").await.is_err());
        assert!(resolver.mx_lookup("mx1.provider.test.").await.is_err());
        // The resolver sends EDNS (1232 bytes), so big.test fits UDP; tcp_only forces TCP.
        let a = resolver.ipv4_lookup("only-tcp.test.").await.unwrap();
        assert_eq!(a.answers().len(), 1);
    });
    let transports: Vec<Transport> = dns
        .queries()
        .into_iter()
        .filter(|(n, _, _)| n == "only-tcp.test")
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(transports, vec![Transport::Udp, Transport::Tcp]);
}
