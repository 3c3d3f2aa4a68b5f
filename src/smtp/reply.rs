//! Sans-I/O SMTP reply parser: bytes in, replies out.
//!
//! The parser never touches a socket, so it can be tested byte by byte and the
//! session can feed it from a fixed-size read buffer. Every limit is checked
//! while data streams in: a hostile server cannot make us buffer more than
//! [`ReplyLimits`] allows, whatever it sends.

use std::collections::VecDeque;
use std::fmt;

/// An RFC 3463 enhanced status code, e.g. `5.1.1`.
///
/// Only explanatory: Exim acts on the basic code's first digit alone, and so
/// must the verdict (research §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl EnhancedCode {
    /// The enhanced code of a reply with basic `code` whose first line's text
    /// (after `NNN-`/`NNN `) is `first_text`: a leading token whose class
    /// matches the basic code's first digit (RFC 3463 §2).
    pub fn of_reply(code: u16, first_text: &str) -> Option<EnhancedCode> {
        let class = (code / 100) as u8;
        EnhancedCode::parse_leading(first_text).filter(|e| e.class == class)
    }

    /// Parse a leading `class.subject.detail` token from a reply line's text.
    ///
    /// The token must be followed by a space or the end of the text, so
    /// `5.1.1x` is not a code. `class` must be 2, 4 or 5 (RFC 3463 §3.1).
    fn parse_leading(text: &str) -> Option<EnhancedCode> {
        let token = text.split(' ').next()?;
        let mut parts = token.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let class: u8 = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        Some(EnhancedCode {
            class,
            subject: parse_1_to_3_digits(subject)?,
            detail: parse_1_to_3_digits(detail)?,
        })
    }
}

fn parse_1_to_3_digits(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One complete (possibly multi-line) SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit basic code.
    pub code: u16,
    /// The enhanced code parsed from the first line's text, when present and
    /// consistent with the basic code's class.
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line after `NNN-`/`NNN ` (enhanced code included).
    /// Server-controlled: may hold control characters other than LF (a stray
    /// CR, ESC); escape before showing it on a terminal or in markup.
    pub lines: Vec<String>,
}

impl Reply {
    /// The class digit (2, 3, 4 or 5).
    pub fn first_digit(&self) -> u8 {
        (self.code / 100) as u8
    }
    /// 2yz: completed.
    pub fn is_positive(&self) -> bool {
        self.first_digit() == 2
    }
    /// 4yz: try again later.
    pub fn is_transient(&self) -> bool {
        self.first_digit() == 4
    }
    /// 5yz: definitive refusal.
    pub fn is_permanent(&self) -> bool {
        self.first_digit() == 5
    }
    /// All lines' text joined with a space.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
    /// The lines as the server sent them (`550-5.1.1 foo`, `550 bar`), for
    /// evidence and transcripts.
    pub fn wire_lines(&self) -> Vec<String> {
        let last = self.lines.len().saturating_sub(1);
        self.lines
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let sep = if i == last { ' ' } else { '-' };
                if text.is_empty() && sep == ' ' {
                    format!("{}", self.code)
                } else {
                    format!("{}{}{}", self.code, sep, text)
                }
            })
            .collect()
    }
}

impl fmt::Display for Reply {
    /// `550 5.1.1 no such user more text`: code and joined text on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        if text.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, text)
        }
    }
}

/// Bounds on one reply. They hold while data streams in, not after the fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Bytes in one line, excluding the line ending. RFC 5321 §4.5.3.1.5 says
    /// 512; real servers exceed it, so the default is generous.
    pub max_line: usize,
    /// Lines in one reply.
    pub max_lines: usize,
    /// Bytes in one reply, line endings included.
    pub max_bytes: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_line: 2048,
            max_lines: 64,
            max_bytes: 32 * 1024,
        }
    }
}

/// Why the byte stream is not a valid, bounded SMTP reply sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("reply has more than {limit} lines")]
    TooManyLines { limit: usize },
    #[error("reply larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("malformed reply line: \"{line}\"")]
    Malformed {
        /// The offending line, escaped and truncated to 80 characters.
        line: String,
    },
}

/// Incremental reply parser.
///
/// Call [`feed`](ReplyParser::feed) with whatever bytes arrived (one at a time
/// is fine), then [`next_reply`](ReplyParser::next_reply) until it returns
/// `Ok(None)`. Replies that were complete before an error are still returned,
/// in order, before the error; after an error the parser is poisoned and keeps
/// returning it, because the stream cannot be resynchronised.
#[derive(Debug)]
pub struct ReplyParser {
    limits: ReplyLimits,
    /// Bytes of the current, unterminated line.
    line: Vec<u8>,
    /// Code and text lines of the reply being assembled.
    pending_code: Option<u16>,
    pending_lines: Vec<String>,
    /// Bytes consumed by the reply being assembled (completed lines only).
    pending_bytes: usize,
    ready: VecDeque<Reply>,
    error: Option<ReplyError>,
}

impl ReplyParser {
    pub fn new(limits: ReplyLimits) -> ReplyParser {
        ReplyParser {
            limits,
            line: Vec::new(),
            pending_code: None,
            pending_lines: Vec::new(),
            pending_bytes: 0,
            ready: VecDeque::new(),
            error: None,
        }
    }

    /// Consume bytes. Fails as soon as a limit is crossed or a line is
    /// malformed; complete replies before the failure stay available.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), ReplyError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        for &b in bytes {
            if let Err(e) = self.push_byte(b) {
                self.error = Some(e.clone());
                self.line = Vec::new();
                self.pending_lines = Vec::new();
                return Err(e);
            }
        }
        Ok(())
    }

    /// The next complete reply, `Ok(None)` if more bytes are needed, or the
    /// error that poisoned the stream once earlier replies are drained.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        if let Some(r) = self.ready.pop_front() {
            return Ok(Some(r));
        }
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(None),
        }
    }

    /// True when nothing has been received that is not yet handed out: no
    /// queued reply, no partial reply, no partial line. A session uses this to
    /// spot replies the server sent without being asked.
    pub fn is_idle(&self) -> bool {
        self.ready.is_empty()
            && self.line.is_empty()
            && self.pending_code.is_none()
            && self.error.is_none()
    }

    fn push_byte(&mut self, b: u8) -> Result<(), ReplyError> {
        if b == b'\n' {
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            // Checked again here because a CR that turned out not to end the
            // line was allowed one byte of slack below.
            if line.len() > self.limits.max_line {
                return Err(ReplyError::LineTooLong {
                    limit: self.limits.max_line,
                });
            }
            self.pending_bytes += line.len() + 1;
            return self.finish_line(&line);
        }
        self.line.push(b);
        // One byte of slack for the CR of a CRLF ending.
        if self.line.len() > self.limits.max_line + 1
            || (self.line.len() == self.limits.max_line + 1 && b != b'\r')
        {
            return Err(ReplyError::LineTooLong {
                limit: self.limits.max_line,
            });
        }
        if self.pending_bytes + self.line.len() > self.limits.max_bytes {
            return Err(ReplyError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    fn finish_line(&mut self, line: &[u8]) -> Result<(), ReplyError> {
        if self.pending_bytes > self.limits.max_bytes {
            return Err(ReplyError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        let (code, last, text) = split_line(line).ok_or_else(|| malformed(line))?;
        if let Some(first) = self.pending_code {
            if first != code {
                return Err(malformed(line));
            }
        }
        if self.pending_lines.len() >= self.limits.max_lines {
            return Err(ReplyError::TooManyLines {
                limit: self.limits.max_lines,
            });
        }
        self.pending_code = Some(code);
        self.pending_lines
            .push(String::from_utf8_lossy(text).into_owned());
        if last {
            let lines = std::mem::take(&mut self.pending_lines);
            let enhanced = EnhancedCode::of_reply(code, &lines[0]);
            self.ready.push_back(Reply {
                code,
                enhanced,
                lines,
            });
            self.pending_code = None;
            self.pending_bytes = 0;
        }
        Ok(())
    }
}

/// Split `NNN-text` / `NNN text` / `NNN` into (code, is_last, text).
///
/// The code must match RFC 5321 §4.2's `%x32-35 %x30-35 %x30-39`.
fn split_line(line: &[u8]) -> Option<(u16, bool, &[u8])> {
    if line.len() < 3 {
        return None;
    }
    let (d0, d1, d2) = (line[0], line[1], line[2]);
    if !(b'2'..=b'5').contains(&d0) || !(b'0'..=b'5').contains(&d1) || !d2.is_ascii_digit() {
        return None;
    }
    let code = u16::from(d0 - b'0') * 100 + u16::from(d1 - b'0') * 10 + u16::from(d2 - b'0');
    match line.get(3) {
        None => Some((code, true, &[])),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

fn malformed(line: &[u8]) -> ReplyError {
    let escaped: String = String::from_utf8_lossy(line)
        .escape_debug()
        .take(80)
        .collect();
    ReplyError::Malformed { line: escaped }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::new(ReplyLimits::default());
        p.feed(input)?;
        let mut out = Vec::new();
        while let Some(r) = p.next_reply()? {
            out.push(r);
        }
        Ok(out)
    }

    fn one(input: &str) -> Reply {
        let mut v = parse_all(input.as_bytes()).unwrap();
        assert_eq!(v.len(), 1, "{input:?}");
        v.remove(0)
    }

    fn ec(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
        Some(EnhancedCode {
            class,
            subject,
            detail,
        })
    }

    #[test]
    fn single_line() {
        let r = one("250 2.1.0 Ok\r\n");
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["2.1.0 Ok"]);
        assert_eq!(r.enhanced, ec(2, 1, 0));
        assert!(r.is_positive() && !r.is_transient() && !r.is_permanent());
        assert_eq!(r.first_digit(), 2);
        assert_eq!(r.wire_lines(), vec!["250 2.1.0 Ok"]);
        assert_eq!(r.to_string(), "250 2.1.0 Ok");
    }

    #[test]
    fn multi_line_keeps_order_and_wire_form() {
        let r = one("550-5.1.1 x\r\n550 5.1.1 y\r\n");
        assert_eq!(r.code, 550);
        assert_eq!(r.lines, vec!["5.1.1 x", "5.1.1 y"]);
        assert_eq!(r.enhanced, ec(5, 1, 1));
        assert!(r.is_permanent());
        assert_eq!(r.text(), "5.1.1 x 5.1.1 y");
        assert_eq!(r.wire_lines(), vec!["550-5.1.1 x", "550 5.1.1 y"]);
    }

    #[test]
    fn ehlo_style_reply() {
        let r = one("250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 HELP\r\n");
        assert_eq!(r.lines.len(), 4);
        assert_eq!(r.lines[1], "PIPELINING");
        assert_eq!(r.enhanced, None);
    }

    #[test]
    fn enhanced_code_rules() {
        assert_eq!(one("421 4.7.0 go away\r\n").enhanced, ec(4, 7, 0));
        assert_eq!(one("421 4.7.0\r\n").enhanced, ec(4, 7, 0));
        assert_eq!(one("550 5.1.1x\r\n").enhanced, None);
        assert_eq!(one("550 2.1.0 ok?\r\n").enhanced, None, "class mismatch");
        assert_eq!(one("550 5.7.26 dmarc\r\n").enhanced, ec(5, 7, 26));
        assert_eq!(one("550 5.1234.1 x\r\n").enhanced, None);
        assert_eq!(one("550 3.1.1 x\r\n").enhanced, None);
        assert_eq!(one("550 5.1 x\r\n").enhanced, None);
        assert_eq!(one("550 5.1.1.1 x\r\n").enhanced, None);
        assert_eq!(one("550 5..1 x\r\n").enhanced, None);
        assert_eq!(one("550 x 5.1.1\r\n").enhanced, None);
        // Only the first line counts.
        assert_eq!(one("550-no code here\r\n550 5.1.1 x\r\n").enhanced, None);
        assert_eq!(ec(5, 7, 26).unwrap().to_string(), "5.7.26");
    }

    #[test]
    fn bare_code_is_final() {
        let r = one("250\r\n");
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec![""]);
        assert_eq!(r.wire_lines(), vec!["250"]);
        assert_eq!(r.to_string(), "250");
    }

    #[test]
    fn bare_lf_and_mixed_endings() {
        let v = parse_all(b"220-a\n220 b\r\n250 c\n").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].lines, vec!["a", "b"]);
        assert_eq!(v[1].lines, vec!["c"]);
    }

    #[test]
    fn pipelined_replies_in_one_buffer() {
        let v = parse_all(
            b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550-5.1.1 no\r\n550 5.1.1 no\r\n451 4.7.1 later\r\n",
        )
        .unwrap();
        let codes: Vec<u16> = v.iter().map(|r| r.code).collect();
        assert_eq!(codes, vec![250, 250, 550, 451]);
        assert_eq!(v[2].lines.len(), 2);
    }

    #[test]
    fn split_at_every_offset_gives_the_same_replies() {
        let input: &[u8] =
            b"220-mx.example ESMTP\r\n220 ready\r\n250 2.1.0 ok\n550-5.1.1 a\r\n550 5.1.1 b\r\n250\r\n";
        let whole = parse_all(input).unwrap();
        assert_eq!(whole.len(), 4);
        for cut in 0..=input.len() {
            let mut p = ReplyParser::new(ReplyLimits::default());
            let mut got = Vec::new();
            for part in [&input[..cut], &input[cut..]] {
                p.feed(part).unwrap();
                while let Some(r) = p.next_reply().unwrap() {
                    got.push(r);
                }
            }
            assert_eq!(got, whole, "cut at {cut}");
            assert!(p.is_idle());
        }
        // And one byte at a time.
        let mut p = ReplyParser::new(ReplyLimits::default());
        let mut got = Vec::new();
        for b in input {
            p.feed(std::slice::from_ref(b)).unwrap();
            while let Some(r) = p.next_reply().unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn incomplete_reply_waits() {
        let mut p = ReplyParser::new(ReplyLimits::default());
        p.feed(b"250-a\r\n250 b").unwrap();
        assert_eq!(p.next_reply().unwrap(), None);
        assert!(!p.is_idle());
        p.feed(b"\r\n").unwrap();
        assert_eq!(p.next_reply().unwrap().unwrap().lines, vec!["a", "b"]);
        assert!(p.is_idle());
    }

    #[test]
    fn line_too_long_fails_while_streaming() {
        let limits = ReplyLimits {
            max_line: 16,
            ..ReplyLimits::default()
        };
        let mut p = ReplyParser::new(limits);
        p.feed(b"250 ").unwrap();
        let mut fed = 4;
        let err = loop {
            match p.feed(b"x") {
                Ok(()) => fed += 1,
                Err(e) => break e,
            }
            assert!(fed <= 17, "limit not enforced while streaming");
        };
        assert_eq!(err, ReplyError::LineTooLong { limit: 16 });
        assert_eq!(fed, 16);
        // Poisoned from now on.
        assert!(p.feed(b"\r\n").is_err());
        assert!(p.next_reply().is_err());
    }

    #[test]
    fn line_exactly_at_limit_passes_with_crlf_or_lf() {
        let limits = ReplyLimits {
            max_line: 8,
            ..ReplyLimits::default()
        };
        for input in [&b"250 abcd\r\n"[..], b"250 abcd\n"] {
            let mut p = ReplyParser::new(limits);
            p.feed(input).unwrap();
            assert_eq!(p.next_reply().unwrap().unwrap().lines, vec!["abcd"]);
        }
        let mut p = ReplyParser::new(limits);
        assert_eq!(
            p.feed(b"250 abcde\r\n"),
            Err(ReplyError::LineTooLong { limit: 8 })
        );
        // A CR inside the line does not buy an extra byte.
        let mut p = ReplyParser::new(limits);
        assert_eq!(
            p.feed(b"250 abcd\rx"),
            Err(ReplyError::LineTooLong { limit: 8 })
        );
    }

    #[test]
    fn huge_line_fails_early() {
        let mut p = ReplyParser::new(ReplyLimits::default());
        let chunk = [b'a'; 4096];
        p.feed(b"250 ").unwrap();
        let mut total = 4;
        let res = loop {
            if let Err(e) = p.feed(&chunk) {
                break e;
            }
            total += chunk.len();
            assert!(total < 10 * 1024 * 1024);
        };
        assert!(matches!(res, ReplyError::LineTooLong { limit: 2048 }));
        assert!(total <= 2048 + 4096);
    }

    #[test]
    fn too_many_lines() {
        let limits = ReplyLimits {
            max_lines: 3,
            ..ReplyLimits::default()
        };
        let mut p = ReplyParser::new(limits);
        assert!(p.feed(b"250-a\r\n250-b\r\n250 c\r\n").is_ok());
        assert_eq!(p.next_reply().unwrap().unwrap().lines.len(), 3);
        let err = p.feed(b"250-a\r\n250-b\r\n250-c\r\n250-d\r\n");
        assert_eq!(err, Err(ReplyError::TooManyLines { limit: 3 }));
    }

    #[test]
    fn too_large_counts_the_whole_reply() {
        let limits = ReplyLimits {
            max_line: 100,
            max_lines: 1000,
            max_bytes: 64,
        };
        let mut p = ReplyParser::new(limits);
        let line = b"250-0123456789\r\n"; // 16 bytes
        let mut err = None;
        for _ in 0..10 {
            if let Err(e) = p.feed(line) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ReplyError::TooLarge { limit: 64 }));
        // Separate replies each get the full budget.
        let mut p = ReplyParser::new(limits);
        for _ in 0..20 {
            p.feed(b"250 0123456789012345678901234567890123456789\r\n")
                .unwrap();
        }
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            &b"hello\r\n"[..],
            b"25 ok\r\n",
            b"2500 ok\r\n",
            b"250_ok\r\n",
            b"250\tok\r\n",
            b"abc ok\r\n",
            b"\r\n",
            b"\n",
            b"650 nope\r\n",
            b"160 nope\r\n",
            b"270 nope\r\n",
            b" 250 ok\r\n",
        ] {
            let err = parse_all(bad).unwrap_err();
            assert!(matches!(err, ReplyError::Malformed { .. }), "{bad:?}");
        }
    }

    #[test]
    fn continuation_code_must_match() {
        let err = parse_all(b"250-a\r\n251 b\r\n").unwrap_err();
        assert_eq!(
            err,
            ReplyError::Malformed {
                line: "251 b".into()
            }
        );
    }

    #[test]
    fn malformed_line_is_escaped_and_truncated() {
        let mut input = b"\x1b[31m\x00".to_vec();
        input.extend(std::iter::repeat_n(b'z', 200));
        input.extend(b"\r\n");
        let ReplyError::Malformed { line } = parse_all(&input).unwrap_err() else {
            panic!()
        };
        assert!(line.starts_with("\\u{1b}[31m\\0"), "{line}");
        assert_eq!(line.chars().count(), 80);
        assert!(!line.chars().any(char::is_control));
    }

    #[test]
    fn replies_before_an_error_are_kept() {
        let mut p = ReplyParser::new(ReplyLimits::default());
        assert!(p.feed(b"250 ok\r\n250 ok too\r\ngarbage\r\n").is_err());
        assert_eq!(p.next_reply().unwrap().unwrap().text(), "ok");
        assert_eq!(p.next_reply().unwrap().unwrap().text(), "ok too");
        assert!(matches!(p.next_reply(), Err(ReplyError::Malformed { .. })));
        assert!(!p.is_idle());
    }

    #[test]
    fn non_utf8_is_lossy_not_an_error() {
        let r = one("550 caf\u{e9}\r\n");
        assert_eq!(r.lines, vec!["caf\u{e9}"]);
        let v = parse_all(b"550 bad \xff\xfe bytes\r\n").unwrap();
        assert_eq!(v[0].lines, vec!["bad \u{fffd}\u{fffd} bytes"]);
    }
}
