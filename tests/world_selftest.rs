//! Proves the offline world with real sockets: hand-built DNS queries over UDP
//! and TCP, raw SMTP dialogues, and hostile servers that must still end.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use sendercheck::world::{DnsServer, Transport, Zone};

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
