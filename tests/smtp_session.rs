//! Session tests against scripted SMTP servers on 127.0.0.1.
//!
//! Each test starts a real listener on port 0 and a thread that plays one
//! server script, recording every byte it received, so the assertions are about
//! what actually crossed the wire.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sendercheck::smtp::{
    Command, HeloName, ReplyError, Session, SessionConfig, SessionError, SmtpPath, TranscriptLine,
};

/// The server end of one connection, as seen by a script.
struct Peer {
    stream: TcpStream,
    lines: VecDeque<String>,
    partial: Vec<u8>,
    raw: Vec<u8>,
}

impl Peer {
    fn send(&mut self, s: &str) {
        self.stream.write_all(s.as_bytes()).unwrap();
    }

    /// One read() call; returns the lines it completed. Empty on EOF.
    fn read_chunk(&mut self) -> Vec<String> {
        let mut buf = [0u8; 8192];
        let n = self.stream.read(&mut buf).unwrap_or(0);
        self.raw.extend_from_slice(&buf[..n]);
        self.partial.extend_from_slice(&buf[..n]);
        let mut done = Vec::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line);
            done.push(text.trim_end_matches(['\r', '\n']).to_string());
        }
        done
    }

    /// The next command line; panics if the client closed first.
    fn line(&mut self) -> String {
        loop {
            if let Some(l) = self.lines.pop_front() {
                return l;
            }
            let got = self.read_chunk();
            assert!(!got.is_empty() || !self.partial.is_empty(), "client closed");
            self.lines.extend(got);
        }
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.line(), want);
    }

    /// Read until the client closes, recording everything.
    fn drain(&mut self) {
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.raw.extend_from_slice(&buf[..n]);
        }
    }
}

/// Start a one-connection server playing `script`; join to get its result and
/// every byte it received.
fn server<T, F>(script: F) -> (SocketAddr, JoinHandle<(T, Vec<u8>)>)
where
    T: Send + 'static,
    F: FnOnce(&mut Peer) -> T + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        // A safety net so a broken client fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut peer = Peer {
            stream,
            lines: VecDeque::new(),
            partial: Vec::new(),
            raw: Vec::new(),
        };
        let out = script(&mut peer);
        (out, peer.raw)
    });
    (addr, handle)
}

fn cfg(reply_timeout: Duration) -> SessionConfig {
    let mut c = SessionConfig::new(HeloName::new("probe.test").unwrap());
    c.connect_timeout = Duration::from_secs(5);
    c.reply_timeout = reply_timeout;
    c.session_deadline = Duration::from_secs(30);
    c
}

fn path(s: &str) -> SmtpPath {
    SmtpPath::parse(s).unwrap()
}

/// Every command is one CRLF-terminated line with no stray CR, LF or other
/// control character, uses an allowed verb, and none is DATA.
fn assert_clean_commands(raw: &[u8]) {
    let text = std::str::from_utf8(raw).expect("client sent non-UTF-8");
    assert!(text.is_empty() || text.ends_with("\r\n"), "{text:?}");
    for line in text.split_terminator("\r\n") {
        assert!(
            !line.chars().any(char::is_control),
            "control char in {line:?}"
        );
        let verb = line.split([' ', ':']).next().unwrap().to_ascii_uppercase();
        assert!(
            ["EHLO", "HELO", "MAIL", "RCPT", "RSET", "QUIT"].contains(&verb.as_str()),
            "unexpected command {line:?}"
        );
        assert_ne!(verb, "DATA");
    }
}

#[test]
fn full_callout_dialogue() {
    let (addr, srv) = server(|p| {
        p.send("220-mx.test ESMTP\r\n220 ready\r\n");
        p.expect("EHLO probe.test");
        p.send("250-mx.test greets you\r\n250-SIZE 10000\r\n250 8BITMIME\r\n");
        p.expect("MAIL FROM:<>");
        p.send("250 2.1.0 Ok\r\n");
        p.expect("RCPT TO:<news@example.com>");
        p.send("550-5.1.1 <news@example.com>: no such user\r\n550 5.1.1 sorry\r\n");
        p.expect("RSET");
        p.send("250 2.0.0 Ok\r\n");
        p.expect("QUIT");
        p.send("221 2.0.0 Bye\r\n");
        p.drain();
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    assert_eq!(s.peer(), addr);
    assert_eq!(s.greeting().code, 220);
    assert_eq!(s.greeting().lines, vec!["mx.test ESMTP", "ready"]);
    let ehlo = s.hello().unwrap();
    assert_eq!(ehlo.code, 250);
    assert_eq!(s.extensions(), ["SIZE", "8BITMIME"]);
    assert!(!s.supports_pipelining());
    assert!(s.mail_from(&SmtpPath::null()).unwrap().is_positive());
    let rcpt = s.rcpt_to(&path("news@example.com")).unwrap();
    assert!(rcpt.is_permanent());
    assert_eq!(rcpt.enhanced.unwrap().to_string(), "5.1.1");
    assert!(s.rset().unwrap().is_positive());
    let transcript = s.quit();
    let ((), raw) = srv.join().unwrap();
    assert_clean_commands(&raw);

    use TranscriptLine::*;
    let want = vec![
        Note(format!("connected to {addr}")),
        Received("220-mx.test ESMTP".into()),
        Received("220 ready".into()),
        Sent("EHLO probe.test".into()),
        Received("250-mx.test greets you".into()),
        Received("250-SIZE 10000".into()),
        Received("250 8BITMIME".into()),
        Sent("MAIL FROM:<>".into()),
        Received("250 2.1.0 Ok".into()),
        Sent("RCPT TO:<news@example.com>".into()),
        Received("550-5.1.1 <news@example.com>: no such user".into()),
        Received("550 5.1.1 sorry".into()),
        Sent("RSET".into()),
        Received("250 2.0.0 Ok".into()),
        Sent("QUIT".into()),
        Received("221 2.0.0 Bye".into()),
    ];
    assert_eq!(transcript, want);
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let (addr, srv) = server(|p| {
        p.send("220 old.mx.test\r\n");
        p.expect("EHLO probe.test");
        p.send("500 5.5.1 command unrecognized\r\n");
        p.expect("HELO probe.test");
        p.send("250 old.mx.test\r\n");
        p.drain();
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    let r = s.hello().unwrap();
    assert_eq!(r.code, 250);
    assert!(s.extensions().is_empty());
    assert!(!s.supports_pipelining());
    let sent: Vec<_> = s
        .transcript()
        .iter()
        .filter_map(|l| match l {
            TranscriptLine::Sent(c) => Some(c.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["EHLO probe.test", "HELO probe.test"]);
    drop(s);
    let ((), raw) = srv.join().unwrap();
    assert_clean_commands(&raw);
}

#[test]
fn ehlo_421_is_not_followed_by_helo() {
    let (addr, srv) = server(|p| {
        p.send("220 mx.test\r\n");
        p.expect("EHLO probe.test");
        p.send("421 4.3.2 shutting down\r\n");
        p.drain();
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    assert_eq!(s.hello().unwrap().code, 421);
    drop(s);
    let ((), raw) = srv.join().unwrap();
    assert_eq!(raw, b"EHLO probe.test\r\n");
}

#[test]
fn pipelining_sends_all_rcpts_in_one_write() {
    let (addr, srv) = server(|p| {
        p.send("220 mx.test\r\n");
        p.expect("EHLO probe.test");
        p.send("250-mx.test\r\n250-PIPELINING\r\n250 SIZE\r\n");
        p.expect("MAIL FROM:<>");
        p.send("250 ok\r\n");
        // Nothing has been answered yet: every RCPT must already be here,
        // in a single read.
        let batch = p.read_chunk();
        p.send("250 2.1.5 ok\r\n550 5.1.1 unknown\r\n451 4.7.1 greylisted\r\n");
        p.drain();
        batch
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    s.hello().unwrap();
    assert!(s.supports_pipelining());
    s.mail_from(&SmtpPath::null()).unwrap();
    let to = [path("a@x.test"), path("b@x.test"), path("c@x.test")];
    let replies = s.rcpt_batch(&to).unwrap();
    let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    assert_eq!(codes, [250, 550, 451]);
    drop(s);
    let (batch, raw) = srv.join().unwrap();
    assert_eq!(
        batch,
        [
            "RCPT TO:<a@x.test>",
            "RCPT TO:<b@x.test>",
            "RCPT TO:<c@x.test>"
        ]
    );
    assert_clean_commands(&raw);
}

#[test]
fn without_pipelining_rcpts_go_one_at_a_time() {
    let (addr, srv) = server(|p| {
        p.send("220 mx.test\r\n");
        p.expect("EHLO probe.test");
        p.send("250-mx.test\r\n250 SIZE\r\n");
        p.expect("MAIL FROM:<>");
        p.send("250 ok\r\n");
        let mut reads = Vec::new();
        for code in ["250", "550", "250"] {
            // The client must wait for each reply before the next RCPT, so
            // each read holds exactly one command.
            reads.push(p.read_chunk());
            p.send(&format!("{code} done\r\n"));
        }
        p.drain();
        reads
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    s.hello().unwrap();
    s.mail_from(&SmtpPath::null()).unwrap();
    let to = [path("a@x.test"), path("b@x.test"), path("c@x.test")];
    let codes: Vec<u16> = s.rcpt_batch(&to).unwrap().iter().map(|r| r.code).collect();
    assert_eq!(codes, [250, 550, 250]);
    drop(s);
    let (reads, raw) = srv.join().unwrap();
    assert_eq!(
        reads,
        [
            vec!["RCPT TO:<a@x.test>"],
            vec!["RCPT TO:<b@x.test>"],
            vec!["RCPT TO:<c@x.test>"]
        ]
    );
    assert_clean_commands(&raw);
}

#[test]
fn pipelined_batch_broken_part_way_keeps_received_replies() {
    let (addr, srv) = server(|p| {
        p.send("220 mx.test\r\n");
        p.expect("EHLO probe.test");
        p.send("250-mx.test\r\n250 PIPELINING\r\n");
        p.expect("MAIL FROM:<>");
        p.send("250 ok\r\n");
        let batch = p.read_chunk();
        assert_eq!(batch.len(), 3);
        p.send("250 ok\r\n550 5.7.1 too many invalid recipients\r\n");
        // Close without answering the third.
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    s.hello().unwrap();
    s.mail_from(&SmtpPath::null()).unwrap();
    let to = [path("a@x.test"), path("b@x.test"), path("c@x.test")];
    let err = s.rcpt_batch(&to).unwrap_err();
    let codes: Vec<u16> = err.partial_replies().iter().map(|r| r.code).collect();
    assert_eq!(codes, [250, 550]);
    match err {
        SessionError::Partial { source, .. } => {
            assert!(matches!(*source, SessionError::Closed { stage: "rcpt" }))
        }
        other => panic!("{other:?}"),
    }
    // The session knows it is out of step and refuses further use.
    assert!(matches!(
        s.rset(),
        Err(SessionError::Broken { stage: "rset" })
    ));
    srv.join().unwrap();
}

#[test]
fn permanent_greeting_is_data_not_error() {
    let (addr, srv) = server(|p| {
        p.send("554 5.7.1 no SMTP service for you\r\n");
        p.expect("QUIT");
        p.send("221 bye\r\n");
        p.drain();
    });
    let s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    assert_eq!(s.greeting().code, 554);
    assert!(s.greeting().is_permanent());
    assert_eq!(s.greeting().enhanced.unwrap().to_string(), "5.7.1");
    let t = s.quit();
    assert_eq!(t.last(), Some(&TranscriptLine::Received("221 bye".into())));
    srv.join().unwrap();
}

#[test]
fn dribbled_reply_times_out_on_the_whole_reply() {
    let (addr, srv) = server(|p| {
        p.send("220 mx.test\r\n");
        p.expect("EHLO probe.test");
        // A valid but endless reply, one byte every 200 ms; each byte would
        // reset a naive per-read timeout.
        for b in b"250-".iter().chain(b"x".repeat(200).iter()) {
            if p.stream.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(1))).unwrap();
    let start = Instant::now();
    let err = s.hello().unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(err, SessionError::Timeout { stage: "ehlo" }),
        "{err:?}"
    );
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    drop(s);
    srv.join().unwrap();
}

#[test]
fn session_deadline_caps_everything() {
    let (addr, srv) = server(|p| {
        p.send("220 mx.test\r\n");
        p.drain();
    });
    let mut c = cfg(Duration::from_secs(10));
    c.session_deadline = Duration::from_millis(500);
    let mut s = Session::connect(addr, &c).unwrap();
    let start = Instant::now();
    let err = s.hello().unwrap_err();
    assert!(matches!(err, SessionError::DeadlineExceeded), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    drop(s);
    srv.join().unwrap();
}

#[test]
fn ten_megabyte_line_is_refused_early() {
    let (addr, srv) = server(|p| {
        let mut line = b"220 ".to_vec();
        line.resize(10 * 1024 * 1024, b'a');
        // Fails once the client gives up and closes: it never reads it all.
        p.stream.write_all(&line).is_err()
    });
    let err = Session::connect(addr, &cfg(Duration::from_secs(10))).unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Protocol {
                stage: "greeting",
                source: ReplyError::LineTooLong { limit: 2048 }
            }
        ),
        "{err:?}"
    );
    let (write_failed, _) = srv.join().unwrap();
    assert!(write_failed, "client swallowed the whole 10 MB line");
}

#[test]
fn endless_continuation_lines_are_refused() {
    for (line_len, want_lines) in [(10usize, true), (1000, false)] {
        let (addr, srv) = server(move |p| {
            let line = format!("220-{}\r\n", "y".repeat(line_len));
            for _ in 0..100_000 {
                if p.stream.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
        });
        let err = Session::connect(addr, &cfg(Duration::from_secs(10))).unwrap_err();
        match err {
            SessionError::Protocol {
                stage: "greeting",
                source: ReplyError::TooManyLines { limit: 64 },
            } => assert!(want_lines),
            SessionError::Protocol {
                stage: "greeting",
                source: ReplyError::TooLarge { limit: 32768 },
            } => assert!(!want_lines),
            other => panic!("{other:?}"),
        }
        srv.join().unwrap();
    }
}

#[test]
fn garbage_is_malformed() {
    let (addr, srv) = server(|p| {
        p.stream
            .write_all(b"\x00\xff\x1b[2JHELLO there\r\n")
            .unwrap();
        p.drain();
    });
    let err = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap_err();
    match err {
        SessionError::Protocol {
            stage: "greeting",
            source: ReplyError::Malformed { line },
        } => {
            assert!(line.contains("HELLO there"), "{line}");
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
        other => panic!("{other:?}"),
    }
    srv.join().unwrap();
}

#[test]
fn reset_mid_reply_is_closed() {
    let (addr, srv) = server(|p| {
        p.send("220 mx.test\r\n");
        // Wait until EHLO is in our receive buffer, but leave it unread:
        // closing with unread data makes the kernel send RST, not FIN.
        let mut one = [0u8; 1];
        p.stream.peek(&mut one).unwrap();
        p.send("250-mx.test\r\n250-PIPEL");
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    let err = s.hello().unwrap_err();
    srv.join().unwrap();
    assert!(
        matches!(
            err,
            SessionError::Closed { stage: "ehlo" } | SessionError::Io { stage: "ehlo", .. }
        ),
        "{err:?}"
    );
}

#[test]
fn eof_mid_reply_is_closed() {
    let (addr, srv) = server(|p| {
        p.send("220-mx.test\r\n220 rea");
    });
    let err = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap_err();
    assert!(
        matches!(err, SessionError::Closed { stage: "greeting" }),
        "{err:?}"
    );
    srv.join().unwrap();
}

#[test]
fn silent_server_times_out_at_greeting() {
    let (addr, srv) = server(|p| p.drain());
    let start = Instant::now();
    let err = Session::connect(addr, &cfg(Duration::from_millis(500))).unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(err, SessionError::Timeout { stage: "greeting" }),
        "{err:?}"
    );
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let ((), raw) = srv.join().unwrap();
    assert!(raw.is_empty(), "client spoke before the greeting");
}

#[test]
fn unsolicited_reply_is_detected() {
    let (addr, srv) = server(|p| {
        p.send("220 mx.test\r\n");
        p.expect("EHLO probe.test");
        p.send("250 mx.test\r\n250 extra\r\n");
        p.drain();
    });
    let mut s = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap();
    s.hello().unwrap();
    let err = s.mail_from(&SmtpPath::null()).unwrap_err();
    assert!(
        matches!(err, SessionError::Unsolicited { stage: "mail", .. }),
        "{err:?}"
    );
    drop(s);
    let ((), raw) = srv.join().unwrap();
    assert_eq!(raw, b"EHLO probe.test\r\n", "MAIL must not be sent");
}

#[test]
fn refused_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = Session::connect(addr, &cfg(Duration::from_secs(5))).unwrap_err();
    assert!(
        matches!(err, SessionError::Connect { addr: a, .. } if a == addr),
        "{err:?}"
    );
}

#[test]
fn hostile_addresses_never_reach_the_wire() {
    // Either refused, or (surrounding whitespace trimmed as in a CSV cell)
    // reduced to a path whose command is one clean line.
    for bad in [
        "a@x.test\r\nDATA",
        "a@x.test\nRCPT TO:<b@y>",
        "a\r\n@x.test",
        "a@x.test\r",
        "\r\na@x.test",
    ] {
        if let Ok(p) = SmtpPath::parse(bad) {
            let wire = Command::RcptTo(p).to_wire();
            assert_clean_commands(&wire);
            assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
        }
    }
    assert!(SmtpPath::parse("a@x.test\r\nDATA").is_err());
}
