//! An authoritative DNS server that runs in process on loopback.
//!
//! It exists so that tests and `sendercheck demo` can exercise every DNS outcome
//! the auditor must classify (MX sets, null MX, implicit MX, NXDOMAIN vs NODATA,
//! SERVFAIL, timeouts, truncation and TCP fallback) without touching the real
//! Internet. It is authoritative for every name: anything not in the [`Zone`] does
//! not exist. Queries are logged so tests can assert how many lookups were made.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::net::{lock, Conns};

/// TTL of every positive answer; long enough that a resolver caches within a run.
const TTL: u32 = 300;
/// Negative-caching TTL (SOA minimum): short, so a re-run sees zone edits.
const NEGATIVE_TTL: u32 = 30;
/// Connections beyond this many are closed at once: a test world must stay bounded.
const MAX_TCP_CONNS: usize = 64;
/// A TCP client silent for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(30);
/// Payload size we advertise in our own OPT record.
const OUR_EDNS_PAYLOAD: u16 = 1232;
/// Longest CNAME chain we follow, so a loop in a zone cannot hang the server.
const MAX_CHASE: usize = 8;

/// Which transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One record in the zone, kept in our own form so the builder never fails;
/// names are turned into wire names only when answering.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Mx(u16, String),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Txt(String),
}

impl Entry {
    fn rtype(&self) -> RecordType {
        match self {
            Entry::Mx(..) => RecordType::MX,
            Entry::A(_) => RecordType::A,
            Entry::Aaaa(_) => RecordType::AAAA,
            Entry::Cname(_) => RecordType::CNAME,
            Entry::Txt(_) => RecordType::TXT,
        }
    }

    /// The wire record, or `None` if a name in it is not a valid DNS name (such a
    /// record is simply not served; the builder cannot report errors).
    fn to_record(&self, owner: &Name) -> Option<Record> {
        let data = match self {
            Entry::Mx(pref, target) => RData::MX(MX::new(*pref, fqdn(target)?)),
            Entry::A(ip) => RData::A(A(*ip)),
            Entry::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Entry::Cname(target) => RData::CNAME(CNAME(fqdn(target)?)),
            // A TXT character-string holds at most 255 bytes; longer text is split
            // into several strings, as zone files do.
            Entry::Txt(text) => RData::TXT(TXT::from_bytes(text.as_bytes().chunks(255).collect())),
        };
        Some(Record::from_rdata(owner.clone(), TTL, data))
    }
}

/// Lower-case, no trailing dot, no surrounding blanks: the one spelling we key on.
fn norm(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A fully qualified wire name from our normalised spelling ("" is the root).
fn fqdn(name: &str) -> Option<Name> {
    let n = norm(name);
    if n.is_empty() {
        return Some(Name::root());
    }
    Name::from_ascii(format!("{n}.")).ok()
}

/// The records the server answers from, built up with chained calls.
///
/// Names are case-insensitive and the trailing dot is optional. Flags
/// (`servfail`, `refused`, `silent`, `tcp_only`) apply to queries for exactly
/// that name, whatever the type.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    records: BTreeMap<String, Vec<Entry>>,
    servfail: HashSet<String>,
    refused: HashSet<String>,
    silent: HashSet<String>,
    tcp_only: HashSet<String>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    fn add(&mut self, name: &str, entry: Entry) -> &mut Self {
        let list = self.records.entry(norm(name)).or_default();
        if !list.contains(&entry) {
            list.push(entry);
        }
        self
    }

    /// An MX record. A target of `"."` makes it a null MX (RFC 7505).
    pub fn mx(&mut self, domain: &str, pref: u16, target: &str) -> &mut Self {
        self.add(domain, Entry::Mx(pref, norm(target)))
    }

    pub fn a(&mut self, name: &str, ip: Ipv4Addr) -> &mut Self {
        self.add(name, Entry::A(ip))
    }

    pub fn aaaa(&mut self, name: &str, ip: Ipv6Addr) -> &mut Self {
        self.add(name, Entry::Aaaa(ip))
    }

    /// A CNAME. Queries for `name` get the CNAME plus the target's records of the
    /// asked type, chased within the zone, as a real authoritative server does.
    pub fn cname(&mut self, name: &str, target: &str) -> &mut Self {
        self.add(name, Entry::Cname(norm(target)))
    }

    pub fn txt(&mut self, name: &str, text: &str) -> &mut Self {
        self.add(name, Entry::Txt(text.to_string()))
    }

    /// Every query for `name` is answered SERVFAIL.
    pub fn servfail(&mut self, name: &str) -> &mut Self {
        self.servfail.insert(norm(name));
        self
    }

    /// Every query for `name` is answered REFUSED.
    pub fn refused(&mut self, name: &str) -> &mut Self {
        self.refused.insert(norm(name));
        self
    }

    /// Queries for `name` are never answered, so the client times out.
    pub fn silent(&mut self, name: &str) -> &mut Self {
        self.silent.insert(norm(name));
        self
    }

    /// UDP answers for `name` come back empty with TC=1; TCP answers in full.
    /// This forces the client's TCP fallback even for small answers.
    pub fn tcp_only(&mut self, name: &str) -> &mut Self {
        self.tcp_only.insert(norm(name));
        self
    }

    /// True if the name owns records or is an ancestor of a name that does (an
    /// "empty non-terminal" exists and gets NODATA, not NXDOMAIN).
    fn exists(&self, name: &str) -> bool {
        if name.is_empty() || self.records.contains_key(name) {
            return true;
        }
        let suffix = format!(".{name}");
        self.records.keys().any(|k| k.ends_with(&suffix))
    }

    /// The SOA we claim authority with: we pose as the server of the top-level
    /// label of the query, which is always an ancestor of the name asked about.
    fn soa_for(&self, name: &str) -> Option<Record> {
        let apex = name.rsplit('.').next().unwrap_or("");
        let owner = fqdn(apex)?;
        let soa = SOA::new(
            fqdn("ns.world.test")?,
            fqdn("hostmaster.world.test")?,
            1,
            3600,
            600,
            86400,
            NEGATIVE_TTL,
        );
        let mut rec = Record::from_rdata(owner, NEGATIVE_TTL, RData::SOA(soa));
        rec.ttl = NEGATIVE_TTL;
        Some(rec)
    }

    fn is_apex(name: &str) -> bool {
        !name.is_empty() && !name.contains('.')
    }

    /// Fills `resp` with the authoritative answer to `query`.
    fn answer(&self, query: &Query, resp: &mut Message) {
        let qtype = query.query_type();
        let qname = norm(&query.name().to_ascii());
        let mut owner = query.name().clone();
        let mut cur = qname.clone();
        let mut seen = BTreeSet::new();
        let mut found = false;

        if qtype == RecordType::SOA && Zone::is_apex(&qname) {
            if let Some(soa) = self.soa_for(&qname) {
                resp.add_answer(soa);
                return;
            }
        }

        for _ in 0..MAX_CHASE {
            seen.insert(cur.clone());
            let entries = self.records.get(&cur).map(Vec::as_slice).unwrap_or(&[]);
            let matching: Vec<&Entry> = entries
                .iter()
                .filter(|e| qtype == RecordType::ANY || e.rtype() == qtype)
                .collect();
            if !matching.is_empty() {
                resp.add_answers(matching.iter().filter_map(|e| e.to_record(&owner)));
                found = true;
                break;
            }
            let cname = entries.iter().find_map(|e| match e {
                Entry::Cname(t) if qtype != RecordType::CNAME => Some(t.clone()),
                _ => None,
            });
            let Some(target) = cname else { break };
            if let Some(rec) = Entry::Cname(target.clone()).to_record(&owner) {
                resp.add_answer(rec);
            }
            let Some(next) = fqdn(&target) else { break };
            if seen.contains(&target) {
                break;
            }
            owner = next;
            cur = target;
        }

        if !found {
            // RFC 6604: the rcode describes the last name in the CNAME chain.
            if !self.exists(&cur) {
                resp.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Some(soa) = self.soa_for(&cur) {
                resp.add_authority(soa);
            }
        }
    }
}

/// What to do with one received datagram or TCP frame.
enum Reply {
    Send(Vec<u8>),
    Ignore,
}

struct Shared {
    zone: Zone,
    log: Mutex<Vec<(String, String, Transport)>>,
    stop: AtomicBool,
    conns: Conns,
}

impl Shared {
    fn handle(&self, bytes: &[u8], transport: Transport) -> Reply {
        let req = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(_) => return formerr(bytes),
        };
        if req.metadata.message_type != MessageType::Query {
            return Reply::Ignore;
        }
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.checking_disabled = req.metadata.checking_disabled;
        if req.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(OUR_EDNS_PAYLOAD);
            resp.set_edns(edns);
        }
        let Some(query) = req.queries.first().cloned() else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return encode(&resp);
        };
        resp.add_query(query.clone());
        if req.metadata.op_code != OpCode::Query {
            resp.metadata.response_code = ResponseCode::NotImp;
            return encode(&resp);
        }

        let name = norm(&query.name().to_ascii());
        lock(&self.log).push((name.clone(), query.query_type().to_string(), transport));

        let zone = &self.zone;
        if zone.silent.contains(&name) {
            return Reply::Ignore;
        }
        if zone.servfail.contains(&name) {
            resp.metadata.response_code = ResponseCode::ServFail;
            return encode(&resp);
        }
        if zone.refused.contains(&name) {
            resp.metadata.response_code = ResponseCode::Refused;
            return encode(&resp);
        }
        resp.metadata.authoritative = true;
        if transport == Transport::Udp && zone.tcp_only.contains(&name) {
            return encode(&resp.truncate());
        }
        zone.answer(&query, &mut resp);

        let Reply::Send(wire) = encode(&resp) else {
            return Reply::Ignore;
        };
        // max_payload() is the client's EDNS size, never below the classic 512.
        if transport == Transport::Udp && wire.len() > usize::from(req.max_payload()) {
            return encode(&resp.truncate());
        }
        Reply::Send(wire)
    }
}

fn encode(msg: &Message) -> Reply {
    match msg.to_vec() {
        Ok(wire) => Reply::Send(wire),
        Err(_) => {
            let err = Message::error_msg(
                msg.metadata.id,
                msg.metadata.op_code,
                ResponseCode::ServFail,
            );
            err.to_vec().map_or(Reply::Ignore, Reply::Send)
        }
    }
}

/// FORMERR for an undecodable message, if it at least carries a header to reply to.
fn formerr(bytes: &[u8]) -> Reply {
    if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
        return Reply::Ignore; // too short, or itself a response: never answer those
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    encode(&Message::error_msg(
        id,
        OpCode::Query,
        ResponseCode::FormErr,
    ))
}

/// A running DNS server on 127.0.0.1, same port for UDP and TCP.
pub struct DnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP on an ephemeral port, then TCP on the same port, and returns
    /// once both are listening (so a client may query immediately).
    pub fn start(zone: Zone) -> io::Result<DnsServer> {
        let (udp, tcp) = bind_pair()?;
        let addr = udp.local_addr()?;
        // A timeout backs up the wake-up datagram sent by Drop.
        udp.set_read_timeout(Some(Duration::from_millis(500)))?;
        let shared = Arc::new(Shared {
            zone,
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            conns: Conns::default(),
        });
        let s = Arc::clone(&shared);
        let udp_thread = thread::Builder::new()
            .name("world-dns-udp".into())
            .spawn(move || serve_udp(&s, &udp))?;
        let s = Arc::clone(&shared);
        let tcp_thread = thread::Builder::new()
            .name("world-dns-tcp".into())
            .spawn(move || serve_tcp(&s, &tcp));
        let tcp_thread = match tcp_thread {
            Ok(t) => t,
            Err(e) => {
                let mut half = DnsServer {
                    addr,
                    shared,
                    threads: vec![udp_thread],
                };
                half.stop();
                return Err(e);
            }
        };
        Ok(DnsServer {
            addr,
            shared,
            threads: vec![udp_thread, tcp_thread],
        })
    }

    /// `127.0.0.1:port`, for UDP and TCP alike.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every query received so far, in order: (lower-case name without trailing
    /// dot, type mnemonic such as "MX", transport).
    pub fn queries(&self) -> Vec<(String, String, Transport)> {
        lock(&self.shared.log).clone()
    }

    /// Queries for `name` (any case, trailing dot optional) of type `qtype`
    /// ("MX", "a"...), over any transport: a UDP query retried over TCP counts 2.
    pub fn count(&self, name: &str, qtype: &str) -> usize {
        let name = norm(name);
        lock(&self.shared.log)
            .iter()
            .filter(|(n, t, _)| *n == name && t.eq_ignore_ascii_case(qtype))
            .count()
    }

    /// Queries of type `qtype` for any name.
    pub fn total(&self, qtype: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|(_, t, _)| t.eq_ignore_ascii_case(qtype))
            .count()
    }

    /// Forgets the query log (for tests that measure one phase of a run).
    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake both blocking loops: a datagram for recv_from, a connection for accept.
        if let Ok(sock) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) {
            let _ = sock.send_to(&[0], self.addr);
        }
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.shared.conns.shutdown_and_join();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// UDP on an ephemeral port, then TCP on that same port; the TCP port may be
/// taken by someone else, so retry with a fresh UDP port a few times.
fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no port free for UDP+TCP");
    for _ in 0..16 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn serve_udp(shared: &Shared, sock: &UdpSocket) {
    let mut buf = vec![0u8; 65535];
    loop {
        let received = sock.recv_from(&mut buf);
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // Errors (timeouts, ICMP noise) are not fatal to a server.
        let Ok((n, peer)) = received else { continue };
        if let Reply::Send(wire) = shared.handle(&buf[..n], Transport::Udp) {
            let _ = sock.send_to(&wire, peer);
        }
    }
}

fn serve_tcp(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if shared.conns.live_count() >= MAX_TCP_CONNS {
            continue; // dropping the stream closes it
        }
        let id = shared.conns.next_id();
        shared.conns.register(id, &stream);
        let s = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("world-dns-conn".into())
            .spawn(move || {
                serve_tcp_conn(&s, stream);
                s.conns.unregister(id);
            });
        match spawned {
            Ok(handle) => shared.conns.track(handle),
            Err(_) => shared.conns.unregister(id),
        }
    }
}

/// RFC 1035 §4.2.2 framing: a 2-byte length before each message, any number of
/// queries per connection, answered in order.
fn serve_tcp_conn(shared: &Shared, mut stream: TcpStream) {
    if stream.set_read_timeout(Some(TCP_IDLE)).is_err() {
        return;
    }
    let _ = stream.set_write_timeout(Some(TCP_IDLE));
    let _ = stream.set_nodelay(true);
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let len = usize::from(u16::from_be_bytes(len));
        let mut msg = vec![0u8; len];
        if len == 0 || stream.read_exact(&mut msg).is_err() {
            return;
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if let Reply::Send(wire) = shared.handle(&msg, Transport::Tcp) {
            let Ok(n) = u16::try_from(wire.len()) else {
                return;
            };
            let mut framed = Vec::with_capacity(wire.len() + 2);
            framed.extend_from_slice(&n.to_be_bytes());
            framed.extend_from_slice(&wire);
            if stream.write_all(&framed).is_err() {
                return;
            }
        }
    }
}
