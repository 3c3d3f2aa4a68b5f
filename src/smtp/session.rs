//! One blocking SMTP session over std::net, bounded in time and memory.
//!
//! Time: every reply has its own deadline (`reply_timeout`, measured from just
//! before the command is written), and the whole session has one more
//! (`session_deadline`, measured from the start of `connect`); each read gets
//! the time left until the nearer one, so a server that dribbles a byte at a
//! time cannot stretch either. Memory: reads go into a fixed buffer and through
//! [`ReplyParser`], whose limits hold while data streams in.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::command::{Command, HeloName, SmtpPath};
use super::reply::{Reply, ReplyError, ReplyLimits, ReplyParser};

/// Size of the read buffer; the only per-read allocation a server can cause.
const READ_BUF: usize = 4096;
/// Exim waits at most one second for the reply to QUIT (research §1.4).
const QUIT_WAIT: Duration = Duration::from_secs(1);

/// How a session behaves. Defaults follow Exim's callout (research §1.6).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// TCP connect timeout (Exim: the callout timeout, 30 s).
    pub connect_timeout: Duration,
    /// Bound on the whole reply to one command, greeting included.
    pub reply_timeout: Duration,
    /// Bound on the whole session, from the start of connect.
    pub session_deadline: Duration,
    /// The name given in EHLO/HELO.
    pub helo: HeloName,
    pub limits: ReplyLimits,
}

impl SessionConfig {
    /// Exim-like defaults: 30 s connect, 30 s per reply, 300 s per session.
    pub fn new(helo: HeloName) -> SessionConfig {
        SessionConfig {
            connect_timeout: Duration::from_secs(30),
            reply_timeout: Duration::from_secs(30),
            session_deadline: Duration::from_secs(300),
            helo,
            limits: ReplyLimits::default(),
        }
    }
}

/// Why a session step did not produce a reply.
///
/// `stage` is one of `"greeting"`, `"ehlo"`, `"helo"`, `"mail"`, `"rcpt"`,
/// `"rset"`, `"quit"`.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Connection refused, host unreachable and the like.
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("timed out connecting to {addr}")]
    ConnectTimeout { addr: SocketAddr },
    /// No complete reply within `reply_timeout`.
    #[error("timed out waiting for the {stage} reply")]
    Timeout { stage: &'static str },
    /// EOF or reset before a complete reply.
    #[error("connection closed during {stage}")]
    Closed { stage: &'static str },
    /// The server sent something that is not a bounded SMTP reply.
    #[error("protocol error during {stage}: {source}")]
    Protocol {
        stage: &'static str,
        source: ReplyError,
    },
    /// The server sent a reply nobody asked for; every later reply would be
    /// paired with the wrong command. Detected only for bytes already read
    /// when the next command is due. `reply` is escaped and truncated.
    #[error("unsolicited reply before {stage}: {reply}")]
    Unsolicited { stage: &'static str, reply: String },
    #[error("I/O error during {stage}: {source}")]
    Io {
        stage: &'static str,
        source: io::Error,
    },
    /// `session_deadline` ran out.
    #[error("session deadline exceeded")]
    DeadlineExceeded,
    /// An earlier error left the session out of step with the server.
    #[error("session unusable after an earlier error (at {stage})")]
    Broken { stage: &'static str },
    /// A batch broke part-way: the replies that did arrive, then the cause.
    #[error("{source} (after {} of the batch's replies)", replies.len())]
    Partial {
        replies: Vec<Reply>,
        source: Box<SessionError>,
    },
}

impl SessionError {
    /// The stage the error happened in, when it has one.
    pub fn stage(&self) -> Option<&'static str> {
        match self {
            SessionError::Connect { .. } | SessionError::ConnectTimeout { .. } => Some("connect"),
            SessionError::Timeout { stage }
            | SessionError::Closed { stage }
            | SessionError::Protocol { stage, .. }
            | SessionError::Unsolicited { stage, .. }
            | SessionError::Io { stage, .. }
            | SessionError::Broken { stage } => Some(stage),
            SessionError::DeadlineExceeded => None,
            SessionError::Partial { source, .. } => source.stage(),
        }
    }

    /// Replies received before the error (only `Partial` has any).
    pub fn partial_replies(&self) -> &[Reply] {
        match self {
            SessionError::Partial { replies, .. } => replies,
            _ => &[],
        }
    }
}

/// One line of a session transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptLine {
    /// A command as sent, without CRLF.
    Sent(String),
    /// One reply line as the server sent it.
    Received(String),
    /// What happened that is not a line on the wire ("connected to …").
    Note(String),
}

/// A connected SMTP session that has read the greeting.
#[derive(Debug)]
pub struct Session {
    stream: TcpStream,
    peer: SocketAddr,
    parser: ReplyParser,
    buf: Box<[u8; READ_BUF]>,
    greeting: Reply,
    reply_timeout: Duration,
    helo: HeloName,
    deadline: Instant,
    /// Upper-cased EHLO keywords; empty after a HELO fallback.
    extensions: Vec<String>,
    transcript: Vec<TranscriptLine>,
    /// Set by an error that leaves us out of step with the server.
    broken: bool,
}

impl Session {
    /// Connect and read the complete greeting. A non-2xx greeting is not an
    /// error: it is returned by [`greeting`](Session::greeting), because a 554
    /// banner is evidence the caller must judge.
    pub fn connect(addr: SocketAddr, cfg: &SessionConfig) -> Result<Session, SessionError> {
        let start = Instant::now();
        let deadline = start + cfg.session_deadline;
        let connect_for = cfg.connect_timeout.min(cfg.session_deadline);
        if connect_for.is_zero() {
            return Err(SessionError::ConnectTimeout { addr });
        }
        let stream =
            TcpStream::connect_timeout(&addr, connect_for).map_err(|e| connect_error(addr, e))?;
        // Every command goes out in one write; no reason to wait for Nagle.
        let _ = stream.set_nodelay(true);
        let mut session = Session {
            stream,
            peer: addr,
            parser: ReplyParser::new(cfg.limits),
            buf: Box::new([0; READ_BUF]),
            greeting: Reply {
                code: 0,
                enhanced: None,
                lines: Vec::new(),
            },
            reply_timeout: cfg.reply_timeout,
            helo: cfg.helo.clone(),
            deadline,
            extensions: Vec::new(),
            transcript: vec![TranscriptLine::Note(format!("connected to {addr}"))],
            broken: false,
        };
        let reply_deadline = Instant::now() + cfg.reply_timeout;
        session.greeting = session.read_reply("greeting", reply_deadline)?;
        Ok(session)
    }

    /// The server's greeting (any code).
    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }

    /// EHLO; on a non-2xx reply with the connection still up, HELO, as Exim
    /// does. Returns the deciding reply: EHLO's 2xx, or HELO's reply. A 421
    /// to EHLO is returned as is: the server has said it is closing.
    pub fn hello(&mut self) -> Result<Reply, SessionError> {
        self.extensions.clear();
        let ehlo = self.command(Command::Ehlo(self.helo.clone()), "ehlo")?;
        if ehlo.is_positive() {
            self.extensions = ehlo
                .lines
                .iter()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_ascii_uppercase)
                .collect();
            return Ok(ehlo);
        }
        if ehlo.code == 421 {
            return Ok(ehlo);
        }
        self.command(Command::Helo(self.helo.clone()), "helo")
    }

    /// Whether the EHLO reply advertised PIPELINING (RFC 2920).
    pub fn supports_pipelining(&self) -> bool {
        self.supports("PIPELINING")
    }

    /// Whether the EHLO reply advertised `keyword` (upper-case).
    pub fn supports(&self, keyword: &str) -> bool {
        self.extensions.iter().any(|k| k == keyword)
    }

    /// EHLO keywords, upper-cased, without parameters (empty after HELO).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    pub fn mail_from(&mut self, from: &SmtpPath) -> Result<Reply, SessionError> {
        self.command(Command::MailFrom(from.clone()), "mail")
    }

    /// `MAIL FROM` with the SMTPUTF8 parameter (RFC 6531), for a transaction
    /// that carries a UTF-8 address. Only when the server offers SMTPUTF8.
    pub fn mail_from_smtputf8(&mut self, from: &SmtpPath) -> Result<Reply, SessionError> {
        self.command(Command::MailFromSmtputf8(from.clone()), "mail")
    }

    pub fn rcpt_to(&mut self, to: &SmtpPath) -> Result<Reply, SessionError> {
        self.command(Command::RcptTo(to.clone()), "rcpt")
    }

    /// Several RCPTs. With PIPELINING they go out in one write and the
    /// replies are read in order; without, one at a time. If the session
    /// breaks after some replies arrived, the error is
    /// [`SessionError::Partial`] carrying them; if none arrived, the plain
    /// error.
    pub fn rcpt_batch(&mut self, to: &[SmtpPath]) -> Result<Vec<Reply>, SessionError> {
        let mut replies = Vec::with_capacity(to.len());
        let partial = |replies: Vec<Reply>, e: SessionError| {
            if replies.is_empty() {
                e
            } else {
                SessionError::Partial {
                    replies,
                    source: Box::new(e),
                }
            }
        };
        if to.len() > 1 && self.supports_pipelining() {
            let commands: Vec<Command> = to.iter().map(|p| Command::RcptTo(p.clone())).collect();
            let sent_at = Instant::now();
            self.send(&commands, "rcpt")?;
            for i in 0..commands.len() {
                // The first reply is bounded from the write; each later one
                // from the arrival of the previous reply.
                let start = if i == 0 { sent_at } else { Instant::now() };
                match self.read_reply("rcpt", start + self.reply_timeout) {
                    Ok(r) => replies.push(r),
                    Err(e) => return Err(partial(replies, e)),
                }
            }
        } else {
            for path in to {
                match self.rcpt_to(path) {
                    Ok(r) => replies.push(r),
                    Err(e) => return Err(partial(replies, e)),
                }
            }
        }
        Ok(replies)
    }

    pub fn rset(&mut self) -> Result<Reply, SessionError> {
        self.command(Command::Rset, "rset")
    }

    /// Best effort: send QUIT, wait at most 1 s for the reply, close.
    /// Returns the transcript, QUIT included, since the session is consumed.
    pub fn quit(mut self) -> Vec<TranscriptLine> {
        if !self.broken {
            let limit = Instant::now() + QUIT_WAIT;
            if self.send(&[Command::Quit], "quit").is_ok() {
                let _ = self.read_reply("quit", limit);
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        self.transcript
    }

    /// Every line sent and received so far, in order, with notes.
    pub fn transcript(&self) -> &[TranscriptLine] {
        &self.transcript
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Send one command and read its reply.
    fn command(&mut self, cmd: Command, stage: &'static str) -> Result<Reply, SessionError> {
        let reply_deadline = Instant::now() + self.reply_timeout;
        self.send(std::slice::from_ref(&cmd), stage)?;
        self.read_reply(stage, reply_deadline)
    }

    /// Write commands in one write, bounded by the reply timeout.
    fn send(&mut self, cmds: &[Command], stage: &'static str) -> Result<(), SessionError> {
        if self.broken {
            return Err(SessionError::Broken { stage });
        }
        if !self.parser.is_idle() {
            // A reply we did not ask for is already here; pairing it with this
            // command would misattribute every answer after it.
            let reply = match self.parser.next_reply() {
                Ok(Some(r)) => r.to_string().escape_debug().take(80).collect(),
                _ => "(partial data)".to_string(),
            };
            return Err(self.fail(SessionError::Unsolicited { stage, reply }));
        }
        let mut wire = Vec::new();
        for cmd in cmds {
            wire.extend(cmd.to_wire());
            self.transcript.push(TranscriptLine::Sent(cmd.to_string()));
        }
        let deadline = (Instant::now() + self.reply_timeout).min(self.deadline);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.fail(SessionError::DeadlineExceeded));
        }
        if let Err(e) = self.stream.set_write_timeout(Some(left)) {
            return Err(self.fail(SessionError::Io { stage, source: e }));
        }
        if let Err(e) = self.stream.write_all(&wire) {
            let err = match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    SessionError::Timeout { stage }
                }
                k if is_closed(k) => SessionError::Closed { stage },
                _ => SessionError::Io { stage, source: e },
            };
            return Err(self.fail(err));
        }
        Ok(())
    }

    /// Read one complete reply before `reply_deadline` (and the session's).
    fn read_reply(
        &mut self,
        stage: &'static str,
        reply_deadline: Instant,
    ) -> Result<Reply, SessionError> {
        if self.broken {
            return Err(SessionError::Broken { stage });
        }
        let session_bound = self.deadline <= reply_deadline;
        let deadline = reply_deadline.min(self.deadline);
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => {
                    self.transcript
                        .extend(reply.wire_lines().into_iter().map(TranscriptLine::Received));
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(source) => return Err(self.fail(SessionError::Protocol { stage, source })),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let err = if session_bound {
                    SessionError::DeadlineExceeded
                } else {
                    SessionError::Timeout { stage }
                };
                return Err(self.fail(err));
            }
            if let Err(e) = self.stream.set_read_timeout(Some(left)) {
                return Err(self.fail(SessionError::Io { stage, source: e }));
            }
            match self.stream.read(&mut self.buf[..]) {
                Ok(0) => return Err(self.fail(SessionError::Closed { stage })),
                // A parse error is recorded in the parser and surfaces from
                // next_reply after any replies completed before it.
                Ok(n) => {
                    let _ = self.parser.feed(&self.buf[..n]);
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => {}
                    k if is_closed(k) => return Err(self.fail(SessionError::Closed { stage })),
                    _ => return Err(self.fail(SessionError::Io { stage, source: e })),
                },
            }
        }
    }

    /// Mark the session unusable and note the error in the transcript.
    fn fail(&mut self, err: SessionError) -> SessionError {
        self.broken = true;
        self.transcript.push(TranscriptLine::Note(err.to_string()));
        err
    }
}

/// Classify a failed `connect`.
///
/// A reset is not a refusal: a refused SYN reports `ECONNREFUSED`, while
/// `ECONNRESET` means the handshake completed and the server dropped the
/// connection before the client's poll saw it succeed — a server that
/// accepts and resets at once. To a receiver that is a connection lost
/// while waiting for the greeting, so it is reported exactly like the same
/// reset seen one step later by the first read.
fn connect_error(addr: SocketAddr, e: io::Error) -> SessionError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            SessionError::ConnectTimeout { addr }
        }
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            SessionError::Closed { stage: "greeting" }
        }
        _ => SessionError::Connect { addr, source: e },
    }
}

fn is_closed(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(kind: io::ErrorKind) -> SessionError {
        connect_error("127.0.0.1:25".parse().unwrap(), io::Error::from(kind))
    }

    #[test]
    fn a_reset_during_connect_is_a_lost_greeting_not_a_dead_host() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
        ] {
            let e = classify(kind);
            assert!(
                matches!(e, SessionError::Closed { stage: "greeting" }),
                "{kind:?}: {e:?}"
            );
            assert_eq!(e.stage(), Some("greeting"));
        }
    }

    #[test]
    fn refusals_and_timeouts_stay_connect_failures() {
        let refused = classify(io::ErrorKind::ConnectionRefused);
        assert!(
            matches!(refused, SessionError::Connect { .. }),
            "{refused:?}"
        );
        let slow = classify(io::ErrorKind::TimedOut);
        assert!(
            matches!(slow, SessionError::ConnectTimeout { .. }),
            "{slow:?}"
        );
        assert_eq!(slow.stage(), Some("connect"));
    }
}
