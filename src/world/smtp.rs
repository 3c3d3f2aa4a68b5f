//! Scripted SMTP servers on 127.0.0.x.
//!
//! Each server plays one receiving-MX behaviour from the verdict table (user
//! unknown, null sender refused, greylisting, blocklist greetings, tarpits, ...)
//! so the callout engine can be tested against every row without a real MTA.
//! Many servers share one port on distinct loopback addresses, because the tool
//! under test takes a single `--smtp-port` override, exactly as real MX hosts all
//! listen on port 25. The reply texts copy Postfix's, since the auditor's
//! classification is tested against the words real servers use.
//!
//! Every behaviour is bounded in time and bytes: a test world must never run
//! forever, and dropping a server interrupts whatever it is doing.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::{Deserialize, Deserializer};

use super::net::{lock, Conns, Stop};

/// Connections beyond this many at once get a 421 and are closed.
pub const MAX_CONCURRENT: usize = 256;
/// Longest command line we read (RFC 5321 §4.5.3.1.4 says 512; we are lenient).
const MAX_LINE: usize = 4096;
/// A client idle this long is disconnected (RFC 5321 §4.5.3.2.7 suggests 5 min;
/// a test world is impatient).
const IDLE: Duration = Duration::from_secs(60);
/// A blocked write this long ends the connection (the peer stopped reading).
const WRITE_STALL: Duration = Duration::from_secs(10);
/// `Greeting::Never` holds a connection at most this long.
const NEVER_HOLD: Duration = Duration::from_secs(120);
/// Size of the line sent by `Hostile::HugeLine`.
const HUGE_LINE_BYTES: usize = 10 * 1024 * 1024;
/// Cap on what `Hostile::EndlessContinuation` sends before closing.
const ENDLESS_CAP_BYTES: usize = 50 * 1024 * 1024;
/// Bytes of noise sent by `Hostile::Garbage`.
const GARBAGE_BYTES: usize = 4096;
/// Pace of `Hostile::Tarpit`.
const TARPIT_INTERVAL: Duration = Duration::from_secs(1);
/// Message bytes accepted after DATA before we hang up on the client.
const MAX_DATA_BYTES: usize = 1024 * 1024;

const NULL_SENDER_REJECT: &str =
    "550 5.7.1 <>: Sender address rejected: Null sender not accepted here";
const GREYLIST_TEXT: &str =
    "Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/x.html";

/// How the server treats `MAIL FROM:<>`, the reverse-path of bounces and of
/// sender callouts (RFC 5321 §4.5.5 says it must be accepted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullSender {
    #[default]
    Accept,
    /// `MAIL FROM:<>` itself gets 550 (Exim-style sender ACL at MAIL).
    RejectAtMail,
    /// `MAIL FROM:<>` gets 250, then every RCPT (postmaster too) gets 550:
    /// Postfix evaluates `smtpd_sender_restrictions` at RCPT by default.
    RejectAtRcpt,
}

/// What the server says when a client connects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Greeting {
    /// `220 <hostname> ESMTP`.
    #[default]
    Normal,
    /// This full reply instead of 220 (e.g. a 554 blocklist text). Commands
    /// after it get 503 until QUIT; a 421 greeting closes at once.
    Reject(String),
    /// Accepts TCP and never speaks (the client must time out).
    Never,
    /// A three-line 220 greeting, to exercise multi-line reply parsing.
    Multiline,
}

/// Deliberately abusive behaviours replacing the whole session. Each is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hostile {
    /// The greeting is dribbled one byte per second, then the session is normal.
    Tarpit,
    /// A 10 MB line without CRLF, streamed, then close.
    HugeLine,
    /// `220-` continuation lines without end, up to 50 MB, then close.
    EndlessContinuation,
    /// 4 KB of random non-SMTP bytes, then close.
    Garbage,
    /// Half a greeting, then a TCP reset (SO_LINGER 0).
    ResetMidReply,
}

/// The behaviour of one SMTP server. `Script::default()` is a normal server
/// serving every domain, knowing no users (so only postmaster is accepted).
///
/// Fields are public for struct-update syntax; the chainable setters below do
/// the same thing. In `world.toml` the same fields appear under `[smtp.script]`
/// (with `reply_delay_ms` for `reply_delay`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    /// Name in the greeting and EHLO reply; empty means "localhost" (a `World`
    /// fills in the server's name instead).
    pub hostname: String,
    /// Domains served (case-insensitive). RCPT for any other domain gets
    /// `554 5.7.1 <x>: Relay access denied`. Empty means every domain.
    pub domains: Vec<String>,
    /// Known local parts (case-insensitive). Others get 550 5.1.1 user unknown.
    pub users: Vec<String>,
    /// Every local part accepted.
    pub catch_all: bool,
    /// `postmaster@` accepted even if not in `users` (RFC 5321 §4.5.1); when
    /// false it gets 550 5.1.1 like an unknown user.
    pub postmaster: bool,
    pub null_sender: NullSender,
    /// Non-null `MAIL FROM` refused too, with a blocklist text naming the client
    /// IP: the server refuses the prober, not the null sender.
    pub reject_non_null_too: bool,
    pub greeting: Greeting,
    /// Every non-postmaster RCPT (in a served domain) gets this reply instead.
    pub rcpt_override: Option<String>,
    /// The first N attempts of each (sender, recipient) pair get 450 greylisted.
    pub greylist: Option<u32>,
    /// Every RCPT gets `451 4.3.2 Please try again later`.
    pub tempfail_rcpt: bool,
    /// The command after the first N on a connection gets 421 and the close.
    pub drop_after_commands: Option<u32>,
    /// RCPTs beyond N in one transaction get `452 4.5.3 Too many recipients`.
    pub max_rcpt_per_txn: Option<u32>,
    /// Advertise PIPELINING. Pipelined input is handled either way, as real
    /// servers read commands from a buffer.
    pub pipelining: bool,
    /// Advertise SMTPUTF8 (RFC 6531). Either way, a UTF-8 address in a
    /// transaction opened without the SMTPUTF8 parameter gets Postfix's 553.
    pub smtputf8: bool,
    /// EHLO gets 500, so the client must fall back to HELO.
    pub ehlo_rejected: bool,
    /// Pause before every reply (benchmarks of a polite, slow server).
    #[serde(rename = "reply_delay_ms", deserialize_with = "millis")]
    pub reply_delay: Duration,
    pub hostile: Option<Hostile>,
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

impl Default for Script {
    fn default() -> Self {
        Script {
            hostname: String::new(),
            domains: Vec::new(),
            users: Vec::new(),
            catch_all: false,
            postmaster: true,
            null_sender: NullSender::Accept,
            reject_non_null_too: false,
            greeting: Greeting::Normal,
            rcpt_override: None,
            greylist: None,
            tempfail_rcpt: false,
            drop_after_commands: None,
            max_rcpt_per_txn: None,
            pipelining: true,
            smtputf8: false,
            ehlo_rejected: false,
            reply_delay: Duration::ZERO,
            hostile: None,
        }
    }
}

impl Script {
    /// A normal server named `hostname`.
    pub fn new(hostname: &str) -> Script {
        Script {
            hostname: hostname.to_string(),
            ..Script::default()
        }
    }
    pub fn domain(mut self, domain: &str) -> Self {
        self.domains.push(domain.to_string());
        self
    }
    pub fn users(mut self, users: &[&str]) -> Self {
        self.users.extend(users.iter().map(|u| u.to_string()));
        self
    }
    pub fn catch_all(mut self, on: bool) -> Self {
        self.catch_all = on;
        self
    }
    pub fn postmaster(mut self, on: bool) -> Self {
        self.postmaster = on;
        self
    }
    pub fn null_sender(mut self, n: NullSender) -> Self {
        self.null_sender = n;
        self
    }
    pub fn reject_non_null_too(mut self, on: bool) -> Self {
        self.reject_non_null_too = on;
        self
    }
    pub fn greeting(mut self, g: Greeting) -> Self {
        self.greeting = g;
        self
    }
    pub fn rcpt_override(mut self, reply: &str) -> Self {
        self.rcpt_override = Some(reply.to_string());
        self
    }
    pub fn greylist(mut self, attempts: u32) -> Self {
        self.greylist = Some(attempts);
        self
    }
    pub fn tempfail_rcpt(mut self, on: bool) -> Self {
        self.tempfail_rcpt = on;
        self
    }
    pub fn drop_after_commands(mut self, n: u32) -> Self {
        self.drop_after_commands = Some(n);
        self
    }
    pub fn max_rcpt_per_txn(mut self, n: u32) -> Self {
        self.max_rcpt_per_txn = Some(n);
        self
    }
    pub fn pipelining(mut self, on: bool) -> Self {
        self.pipelining = on;
        self
    }
    pub fn smtputf8(mut self, on: bool) -> Self {
        self.smtputf8 = on;
        self
    }
    pub fn ehlo_rejected(mut self, on: bool) -> Self {
        self.ehlo_rejected = on;
        self
    }
    pub fn reply_delay(mut self, d: Duration) -> Self {
        self.reply_delay = d;
        self
    }
    pub fn hostile(mut self, h: Hostile) -> Self {
        self.hostile = Some(h);
        self
    }

    fn host(&self) -> &str {
        if self.hostname.is_empty() {
            "localhost"
        } else {
            &self.hostname
        }
    }

    fn serves(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.domains.is_empty()
            || self
                .domains
                .iter()
                .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
    }
}

/// What a server has seen, as a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerLog {
    /// Connections accepted (including ones refused for concurrency).
    pub connections: usize,
    /// Most connections open at the same time.
    pub max_concurrent: usize,
    /// Every received line as (connection id, text without CRLF, lossy UTF-8).
    pub commands: Vec<(u64, String)>,
    /// A DATA or BDAT command arrived: a callout must never send one.
    pub data_seen: bool,
    /// A received line held a bare CR or a NUL: command injection got through.
    pub injected: bool,
    /// RCPT commands received.
    pub rcpt_count: usize,
    /// A UTF-8 address arrived outside an SMTPUTF8 transaction (RFC 6531
    /// §3.4 forbids the client to send it).
    pub unannounced_utf8: bool,
}

impl ServerLog {
    /// The commands of one connection, in order.
    pub fn commands_of(&self, conn: u64) -> Vec<String> {
        self.commands
            .iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Received commands starting with `verb` (case-insensitive), e.g. "RCPT".
    pub fn verbs(&self, verb: &str) -> Vec<String> {
        self.commands
            .iter()
            .filter(|(_, l)| l.len() >= verb.len() && l[..verb.len()].eq_ignore_ascii_case(verb))
            .map(|(_, l)| l.clone())
            .collect()
    }
}

struct Shared {
    script: Script,
    stop: Stop,
    conns: Conns,
    concurrent: AtomicUsize,
    log: Mutex<ServerLog>,
    /// Attempts seen per (sender, recipient), lower-case.
    greylist: Mutex<HashMap<(String, String), u32>>,
}

/// A running scripted SMTP server.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// Listens on `ip:port` (port 0 picks one) and returns once listening.
    /// Only loopback addresses are allowed: the world must never be reachable
    /// from outside the machine.
    pub fn start(ip: impl Into<IpAddr>, port: u16, script: Script) -> io::Result<SmtpServer> {
        let ip: IpAddr = ip.into();
        if !ip.is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("world SMTP servers listen on 127.0.0.0/8 or ::1 only, not {ip}"),
            ));
        }
        let listener = TcpListener::bind((ip, port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script,
            stop: Stop::default(),
            conns: Conns::default(),
            concurrent: AtomicUsize::new(0),
            log: Mutex::new(ServerLog::default()),
            greylist: Mutex::new(HashMap::new()),
        });
        let s = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("world-smtp-{ip}"))
            .spawn(move || accept_loop(&s, &listener))?;
        Ok(SmtpServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn script(&self) -> &Script {
        &self.shared.script
    }

    pub fn log(&self) -> ServerLog {
        lock(&self.shared.log).clone()
    }

    /// Forgets the log and the greylist memory (between phases of a test).
    pub fn reset(&self) {
        *lock(&self.shared.log) = ServerLog::default();
        lock(&self.shared.greylist).clear();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.shared.stop.trigger();
        // Wake the blocking accept() so it sees the stop flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        self.shared.conns.shutdown_and_join();
    }
}

/// A 127.0.0.x address on which nothing accepts `port` right now (connection
/// refused), skipping `avoid`: the "dead MX" of a test world. It is a snapshot,
/// so pick it after starting the world's servers.
pub fn unused_port_free_ip(port: u16, avoid: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    (2u8..=254).rev().map(|x| Ipv4Addr::new(127, 0, 0, x)).find(|ip| {
        !avoid.contains(ip)
            && matches!(
                TcpStream::connect_timeout(&SocketAddr::from((*ip, port)), Duration::from_millis(300)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
            )
    })
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.stop.is_set() {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        let now = shared.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut log = lock(&shared.log);
            log.connections += 1;
            log.max_concurrent = log.max_concurrent.max(now);
        }
        if now > MAX_CONCURRENT {
            let _ = stream.set_write_timeout(Some(WRITE_STALL));
            let _ = stream.write_all(b"421 4.7.0 Too many connections, try again later\r\n");
            shared.concurrent.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let id = shared.conns.next_id();
        shared.conns.register(id, &stream);
        let s = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("world-smtp-conn".into())
            .spawn(move || {
                let _ = Session::new(&s, id, stream).run();
                s.conns.unregister(id);
                s.concurrent.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(handle) => shared.conns.track(handle),
            Err(_) => {
                shared.conns.unregister(id);
                shared.concurrent.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// A reason to end the session early; the caller only needs to stop.
struct Closed;

impl From<io::Error> for Closed {
    fn from(_: io::Error) -> Closed {
        Closed
    }
}

type Step = Result<(), Closed>;

/// One SMTP connection: the state machine of RFC 5321 §4.1.4, without DATA
/// content handling beyond consuming it.
struct Session<'a> {
    sh: &'a Shared,
    id: u64,
    io: BufReader<TcpStream>,
    peer: String,
    greeted: bool,
    /// Reverse-path of the open transaction (empty string = null sender).
    sender: Option<String>,
    /// The transaction was opened with the SMTPUTF8 parameter.
    utf8_txn: bool,
    rcpts_in_txn: u32,
    accepted_in_txn: u32,
    commands: u32,
}

impl<'a> Session<'a> {
    fn new(sh: &'a Shared, id: u64, stream: TcpStream) -> Session<'a> {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "127.0.0.1".to_string(), |a| a.ip().to_string());
        Session {
            sh,
            id,
            io: BufReader::new(stream),
            peer,
            greeted: false,
            sender: None,
            utf8_txn: false,
            rcpts_in_txn: 0,
            accepted_in_txn: 0,
            commands: 0,
        }
    }

    fn stream(&mut self) -> &mut TcpStream {
        self.io.get_mut()
    }

    fn script(&self) -> &'a Script {
        &self.sh.script
    }

    fn run(mut self) -> Step {
        self.stream().set_read_timeout(Some(IDLE))?;
        self.stream().set_write_timeout(Some(WRITE_STALL))?;
        let _ = self.stream().set_nodelay(true);
        if let Some(h) = self.script().hostile {
            return self.hostile(h);
        }
        let host = self.script().host().to_string();
        match &self.script().greeting {
            Greeting::Normal => self.reply(&format!("220 {host} ESMTP world"))?,
            Greeting::Multiline => self.reply(&format!(
                "220-{host} ESMTP world\r\n220-Unsolicited bulk mail prohibited\r\n220 {host} ready"
            ))?,
            Greeting::Never => return self.hold_silently(),
            Greeting::Reject(text) => {
                self.reply(text)?;
                if text.starts_with("421") {
                    return Ok(());
                }
                return self.refused_session();
            }
        }
        while let Some(line) = self.read_command()? {
            if self.over_command_limit() {
                return self.reply("421 4.7.0 Too many commands, closing");
            }
            self.command(&line)?;
        }
        Ok(())
    }

    /// After a rejecting greeting, RFC 5321 §3.1 lets the server wait for QUIT,
    /// answering 503 to anything else.
    fn refused_session(&mut self) -> Step {
        while let Some(line) = self.read_command()? {
            if verb(&line) == "QUIT" {
                return self.reply("221 2.0.0 Bye");
            }
            self.reply("503 5.5.1 Error: session refused, send QUIT")?;
        }
        Ok(())
    }

    fn over_command_limit(&mut self) -> bool {
        self.commands += 1;
        self.script()
            .drop_after_commands
            .is_some_and(|n| self.commands > n)
    }

    /// Reads one line; `None` at end of stream. Logs it. Lines over `MAX_LINE`
    /// are answered 500 and skipped here, so callers only see real commands.
    fn read_command(&mut self) -> Result<Option<String>, Closed> {
        loop {
            let mut buf = Vec::new();
            let n = (&mut self.io)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)?;
            if n == 0 || self.sh.stop.is_set() {
                return Ok(None);
            }
            if buf.last() != Some(&b'\n') {
                if buf.len() <= MAX_LINE {
                    return Ok(None); // peer closed mid-line
                }
                self.skip_rest_of_line()?;
                self.log_line(&buf);
                self.reply("500 5.5.2 Error: line too long")?;
                continue;
            }
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            self.log_line(&buf);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
    }

    fn skip_rest_of_line(&mut self) -> Step {
        let mut skipped = 0usize;
        loop {
            let mut chunk = Vec::new();
            let n = (&mut self.io)
                .take(64 * 1024)
                .read_until(b'\n', &mut chunk)?;
            if n == 0 || skipped > MAX_DATA_BYTES {
                return Err(Closed);
            }
            skipped += n;
            if chunk.last() == Some(&b'\n') {
                return Ok(());
            }
        }
    }

    fn log_line(&self, line: &[u8]) {
        let mut log = lock(&self.sh.log);
        if line.iter().any(|&b| b == b'\r' || b == 0) {
            log.injected = true;
        }
        log.commands
            .push((self.id, String::from_utf8_lossy(line).into_owned()));
    }

    /// Sends one reply (lines separated by CRLF in `text`), after the scripted delay.
    fn reply(&mut self, text: &str) -> Step {
        let delay = self.script().reply_delay;
        if !delay.is_zero() && self.sh.stop.sleep(delay) {
            return Err(Closed);
        }
        let mut wire = text.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
        wire.extend_from_slice(b"\r\n");
        self.stream().write_all(&wire)?;
        Ok(())
    }

    fn reset_txn(&mut self) {
        self.sender = None;
        self.utf8_txn = false;
        self.rcpts_in_txn = 0;
        self.accepted_in_txn = 0;
    }

    fn command(&mut self, line: &str) -> Step {
        let host = self.script().host().to_string();
        match verb(line).as_str() {
            "EHLO" if self.script().ehlo_rejected => {
                self.reply("500 5.5.1 Error: command not recognized")
            }
            "EHLO" | "HELO" if arg(line).is_empty() => {
                self.reply(&format!("501 5.5.4 Syntax: {} hostname", verb(line)))
            }
            "EHLO" => {
                self.greeted = true;
                self.reset_txn();
                let mut ext = vec![host];
                if self.script().pipelining {
                    ext.push("PIPELINING".into());
                }
                if self.script().smtputf8 {
                    ext.push("SMTPUTF8".into());
                }
                ext.extend(["SIZE 10240000", "ENHANCEDSTATUSCODES", "8BITMIME"].map(String::from));
                let last = ext.len() - 1;
                let text: Vec<String> = ext
                    .iter()
                    .enumerate()
                    .map(|(i, e)| format!("250{}{e}", if i == last { ' ' } else { '-' }))
                    .collect();
                self.reply(&text.join("\r\n"))
            }
            "HELO" => {
                self.greeted = true;
                self.reset_txn();
                self.reply(&format!("250 {host}"))
            }
            "MAIL" => self.mail(line),
            "RCPT" => self.rcpt(line),
            "DATA" | "BDAT" => self.data(line),
            "RSET" => {
                self.reset_txn();
                self.reply("250 2.0.0 Ok")
            }
            "NOOP" => self.reply("250 2.0.0 Ok"),
            "VRFY" => self.reply("252 2.0.0 Send some mail, I'll try my best"),
            "QUIT" => {
                self.reply("221 2.0.0 Bye")?;
                Err(Closed)
            }
            "" => self.reply("500 5.5.2 Error: bad syntax"),
            _ => self.reply("502 5.5.2 Error: command not recognized"),
        }
    }

    fn mail(&mut self, line: &str) -> Step {
        if !self.greeted {
            return self.reply("503 5.5.1 Error: send HELO/EHLO first");
        }
        if self.sender.is_some() {
            return self.reply("503 5.5.1 Error: nested MAIL command");
        }
        let Some(path) = parse_path(line, "MAIL FROM:") else {
            return self.reply("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        let params = line.rsplit_once('>').map_or("", |(_, p)| p);
        let utf8 = params
            .split_ascii_whitespace()
            .any(|p| p.eq_ignore_ascii_case("SMTPUTF8"));
        if utf8 && !self.script().smtputf8 {
            return self.reply("555 5.5.4 Unsupported option: SMTPUTF8");
        }
        if !path.is_ascii() && !utf8 {
            lock(&self.sh.log).unannounced_utf8 = true;
            return self.reply("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
        }
        if path.is_empty() && self.script().null_sender == NullSender::RejectAtMail {
            return self.reply(NULL_SENDER_REJECT);
        }
        if !path.is_empty() && self.script().reject_non_null_too {
            let text = format!(
                "550 5.7.1 Service unavailable; Client host [{}] blocked using zen.spamhaus.org; \
                 messages from [{}] weren't sent, part of their network is on our block list (S3150)",
                self.peer, self.peer
            );
            return self.reply(&text);
        }
        self.sender = Some(path);
        self.utf8_txn = utf8;
        self.reply("250 2.1.0 Ok")
    }

    fn rcpt(&mut self, line: &str) -> Step {
        lock(&self.sh.log).rcpt_count += 1;
        let Some(sender) = self.sender.clone() else {
            return self.reply("503 5.5.1 Error: need MAIL command");
        };
        let Some(rcpt) = parse_path(line, "RCPT TO:") else {
            return self.reply("501 5.1.3 Bad recipient address syntax");
        };
        if !rcpt.is_ascii() && !self.utf8_txn {
            lock(&self.sh.log).unannounced_utf8 = true;
            return self.reply("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
        }
        self.rcpts_in_txn += 1;
        let reply = self.rcpt_verdict(&sender, &rcpt);
        if reply.starts_with('2') {
            self.accepted_in_txn += 1;
        }
        self.reply(&reply)
    }

    /// The decision for one recipient, in the order Postfix applies its
    /// restrictions: limits and sender checks, relay, policy, greylisting,
    /// then the mailbox lookup.
    fn rcpt_verdict(&self, sender: &str, rcpt: &str) -> String {
        let script = self.script();
        if script
            .max_rcpt_per_txn
            .is_some_and(|n| self.rcpts_in_txn > n)
        {
            return "452 4.5.3 Too many recipients".into();
        }
        if script.tempfail_rcpt {
            return "451 4.3.2 Please try again later".into();
        }
        if sender.is_empty() && script.null_sender == NullSender::RejectAtRcpt {
            return NULL_SENDER_REJECT.into();
        }
        // RFC 5321 §4.5.1: a bare "postmaster" needs no domain.
        let (local, domain) = rcpt.rsplit_once('@').unwrap_or((rcpt, ""));
        if rcpt.is_empty() || (domain.is_empty() && !local.eq_ignore_ascii_case("postmaster")) {
            return "501 5.1.3 Bad recipient address syntax".into();
        }
        if !domain.is_empty() && !script.serves(domain) {
            return format!("554 5.7.1 <{rcpt}>: Relay access denied");
        }
        let is_postmaster = local.eq_ignore_ascii_case("postmaster");
        if let Some(text) = &script.rcpt_override {
            if !is_postmaster {
                return text.clone();
            }
        }
        if let Some(n) = script.greylist {
            let key = (sender.to_ascii_lowercase(), rcpt.to_ascii_lowercase());
            let mut grey = lock(&self.sh.greylist);
            let seen = grey.entry(key).or_insert(0);
            *seen = seen.saturating_add(1);
            if *seen <= n {
                return format!("450 4.2.0 <{rcpt}>: {GREYLIST_TEXT}");
            }
        }
        let known = if is_postmaster {
            script.postmaster || script.catch_all || has_user(script, local)
        } else {
            script.catch_all || has_user(script, local)
        };
        if known {
            "250 2.1.5 Ok".into()
        } else {
            format!(
                "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
            )
        }
    }

    /// DATA is answered like Postfix would, and consumed, so a raw client can
    /// prove `data_seen`; the tool itself must never get here.
    fn data(&mut self, line: &str) -> Step {
        lock(&self.sh.log).data_seen = true;
        if verb(line) == "BDAT" {
            return self.reply("502 5.5.1 Error: BDAT not supported");
        }
        if self.sender.is_none() {
            return self.reply("503 5.5.1 Error: need RCPT command");
        }
        if self.accepted_in_txn == 0 {
            return self.reply("554 5.5.1 Error: no valid recipients");
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        let mut total = 0usize;
        loop {
            let mut buf = Vec::new();
            let n = (&mut self.io).take(64 * 1024).read_until(b'\n', &mut buf)?;
            total += n;
            if n == 0 || total > MAX_DATA_BYTES {
                return Err(Closed);
            }
            if buf == b".\r\n" || buf == b".\n" {
                break;
            }
        }
        self.reset_txn();
        self.reply("250 2.0.0 Ok: queued as W0RLD")
    }

    /// Keeps the connection open without a word until the client leaves, the
    /// world stops, or `NEVER_HOLD` passes.
    fn hold_silently(&mut self) -> Step {
        let start = Instant::now();
        let mut sink = [0u8; 4096];
        while start.elapsed() < NEVER_HOLD && !self.sh.stop.is_set() {
            let left = NEVER_HOLD
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(1));
            self.stream().set_read_timeout(Some(left))?;
            if self.io.read(&mut sink)? == 0 {
                break;
            }
        }
        Ok(())
    }

    fn hostile(mut self, how: Hostile) -> Step {
        let host = self.script().host().to_string();
        match how {
            Hostile::Tarpit => {
                for b in format!("220 {host} ESMTP\r\n").bytes() {
                    self.stream().write_all(&[b])?;
                    if self.sh.stop.sleep(TARPIT_INTERVAL) {
                        return Err(Closed);
                    }
                }
                while let Some(line) = self.read_command()? {
                    self.command(&line)?;
                }
                Ok(())
            }
            Hostile::HugeLine => {
                self.stream().write_all(b"220 ")?;
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                while sent < HUGE_LINE_BYTES && !self.sh.stop.is_set() {
                    self.stream().write_all(&chunk)?;
                    sent += chunk.len();
                }
                Ok(())
            }
            Hostile::EndlessContinuation => {
                let line = format!("220-{host} please hold, your call is important to us\r\n");
                let block = line.repeat(1024);
                let mut sent = 0;
                while sent < ENDLESS_CAP_BYTES && !self.sh.stop.is_set() {
                    self.stream().write_all(block.as_bytes())?;
                    sent += block.len();
                }
                Ok(())
            }
            Hostile::Garbage => {
                let mut noise = vec![0u8; GARBAGE_BYTES];
                rand::rng().fill_bytes(&mut noise);
                noise[0] = 0xff; // never a digit: this must not parse as a reply
                self.stream().write_all(&noise)?;
                Ok(())
            }
            Hostile::ResetMidReply => {
                self.stream()
                    .write_all(format!("220 {host} ESM").as_bytes())?;
                self.stream().flush()?;
                // SO_LINGER 0: closing sends RST instead of FIN. The registry's
                // duplicate descriptor closes last, and the option applies then.
                let stream = self.io.into_inner();
                let socket = tokio::net::TcpSocket::from_std_stream(stream);
                socket.set_zero_linger()?;
                Ok(())
            }
        }
    }
}

fn has_user(script: &Script, local: &str) -> bool {
    script.users.iter().any(|u| u.eq_ignore_ascii_case(local))
}

/// The command verb, upper-case ("MAIL" for "mail from:<>").
fn verb(line: &str) -> String {
    line.split([' ', ':'])
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn arg(line: &str) -> &str {
    line.split_once(' ').map_or("", |(_, a)| a.trim())
}

/// The address inside `<...>` after `prefix` ("MAIL FROM:"), case-insensitive,
/// with a source route (`@a,@b:`) dropped; `None` if malformed. Quoted local
/// parts may contain `>`.
fn parse_path(line: &str, prefix: &str) -> Option<String> {
    let head = line.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = line[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let path = &inner[..i];
                let path = match path.strip_prefix('@') {
                    Some(_) => path.split_once(':').map_or("", |(_, p)| p),
                    None => path,
                };
                return Some(path.to_string());
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("MAIL FROM:<>", "MAIL FROM:"),
            Some(String::new())
        );
        assert_eq!(
            parse_path("mail from: <a@b> SIZE=10", "MAIL FROM:"),
            Some("a@b".into())
        );
        assert_eq!(
            parse_path("RCPT TO:<@x,@y:a@b>", "RCPT TO:"),
            Some("a@b".into())
        );
        assert_eq!(
            parse_path("RCPT TO:<\"a>b\"@c>", "RCPT TO:"),
            Some("\"a>b\"@c".into())
        );
        assert_eq!(parse_path("RCPT TO:a@b", "RCPT TO:"), None);
        assert_eq!(parse_path("RCPT TO:<a@b", "RCPT TO:"), None);
        assert_eq!(parse_path("RCPT", "RCPT TO:"), None);
        assert_eq!(verb("mail from:<>"), "MAIL");
    }
}
