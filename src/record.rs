//! The per-row result every report formats: plain data, decided upstream.

use crate::verdict::{Class, Decision, Flag, Verdict};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// Where in the SMTP dialogue the deciding reply came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Connect,
    Greeting,
    Helo,
    MailFrom,
    RcptTo,
}

impl Stage {
    pub fn code(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Helo => "helo",
            Stage::MailFrom => "mail-from",
            Stage::RcptTo => "rcpt-to",
        }
    }
}

/// The server reply that decided a verdict, and who said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub mx_host: String,
    pub ip: String,
    pub stage: Stage,
    /// The reply lines as the server sent them (code included).
    pub reply: Vec<String>,
}

/// One input row's result. Every input line gets exactly one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SenderRecord {
    /// 1-based line of the row in the input file.
    pub line: u64,
    /// The cell exactly as read (before trimming or stripping).
    pub input: String,
    /// Normalised mailbox (`local@a-label-domain`), when the cell parsed.
    pub address: Option<String>,
    pub domain: Option<String>,
    pub verdict: Verdict,
    /// Always `verdict.class()`; stored so serialised reports carry it.
    pub class: Class,
    pub reason: String,
    pub flags: Vec<Flag>,
    /// Passed-through columns, in input order.
    #[serde(serialize_with = "ordered_map")]
    pub extra: Vec<(String, String)>,
    /// The MX hosts of the route used, in the order they would be tried.
    pub mx_hosts: Vec<String>,
    /// What a stock Exim `verify = sender/callout` would decide.
    pub exim: Option<Decision>,
    /// What a stock Postfix `reject_unverified_sender` would decide.
    pub postfix: Option<Decision>,
    pub evidence: Option<Evidence>,
    /// The SMTP commands and replies of the session, for this sender.
    pub transcript: Vec<String>,
    /// One-line remediation, for failing verdicts.
    pub fix: Option<String>,
}

impl SenderRecord {
    /// A record with only the fields every row has.
    pub fn new(
        line: u64,
        input: impl Into<String>,
        verdict: Verdict,
        reason: impl Into<String>,
    ) -> Self {
        SenderRecord {
            line,
            input: input.into(),
            address: None,
            domain: None,
            verdict,
            class: verdict.class(),
            reason: reason.into(),
            flags: Vec::new(),
            extra: Vec::new(),
            mx_hosts: Vec::new(),
            exim: None,
            postfix: None,
            evidence: None,
            transcript: Vec::new(),
            fix: None,
        }
    }

    /// Makes this record the one [`SenderRecord::new`] would for another
    /// row, with its address and domain (when the cell parsed) and the
    /// passed-through columns, keeping the buffers: a run fills one record
    /// per input row, and a million rows should not cost a million sets of
    /// allocations.
    pub fn refill(
        &mut self,
        line: u64,
        input: &str,
        names: Option<(&str, &str)>,
        verdict: Verdict,
        reason: &str,
        extra: &[(String, String)],
    ) {
        // Destructured so a new field cannot be left over from the last row.
        let SenderRecord {
            line: line_,
            input: input_,
            address,
            domain,
            verdict: verdict_,
            class,
            reason: reason_,
            flags,
            extra: extra_,
            mx_hosts,
            exim,
            postfix,
            evidence,
            transcript,
            fix,
        } = self;
        *line_ = line;
        set_text(input_, input);
        match names {
            Some((a, d)) => {
                set_text(address.get_or_insert_with(String::new), a);
                set_text(domain.get_or_insert_with(String::new), d);
            }
            None => (*address, *domain) = (None, None),
        }
        (*verdict_, *class) = (verdict, verdict.class());
        set_text(reason_, reason);
        flags.clear();
        extra_.truncate(extra.len());
        for ((k, v), (from_k, from_v)) in extra_.iter_mut().zip(extra) {
            set_text(k, from_k);
            set_text(v, from_v);
        }
        let reused = extra_.len();
        extra_.extend_from_slice(&extra[reused..]);
        mx_hosts.clear();
        (*exim, *postfix, *evidence, *fix) = (None, None, None, None);
        transcript.clear();
    }

    /// Change the verdict, keeping `class` in step.
    pub fn set_verdict(&mut self, verdict: Verdict) {
        self.verdict = verdict;
        self.class = verdict.class();
    }
}

/// Replaces `to`'s text, reusing its buffer.
pub(crate) fn set_text(to: &mut String, text: &str) {
    to.clear();
    to.push_str(text);
}

fn ordered_map<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Counts by verdict and by class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: u64,
    pub by_class: BTreeMap<Class, u64>,
    pub by_verdict: BTreeMap<Verdict, u64>,
}

impl Summary {
    pub fn add(&mut self, verdict: Verdict, n: u64) {
        if n == 0 {
            return;
        }
        self.total += n;
        *self.by_verdict.entry(verdict).or_default() += n;
        *self.by_class.entry(verdict.class()).or_default() += n;
    }

    pub fn count(&self, verdict: Verdict) -> u64 {
        self.by_verdict.get(&verdict).copied().unwrap_or(0)
    }

    pub fn class_count(&self, class: Class) -> u64 {
        self.by_class.get(&class).copied().unwrap_or(0)
    }
}

/// Figures about the run, for `stats` in JSON and the text footer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Data rows read (one result each).
    pub rows: u64,
    pub distinct_addresses: u64,
    pub distinct_domains: u64,
    /// Blank lines the reader skipped.
    pub blank_lines: u64,
    pub duration_ms: u64,
    /// DNS queries sent, by record type (`MX`, `A`, `AAAA`).
    pub dns_queries: BTreeMap<String, u64>,
    pub mx_groups: u64,
    pub connections: u64,
    pub transactions: u64,
    pub rcpt_commands: u64,
    /// SMTP sessions opened, by MX host name.
    pub smtp_sessions_by_host: BTreeMap<String, u64>,
}

/// One MX group of the plan, as shown by `--stop-after dns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupLine {
    /// The MX hosts, in the order they would be tried.
    pub mx_hosts: Vec<String>,
    pub domains: Vec<String>,
    pub senders: u64,
    /// Whether this group is in this run's shard.
    pub in_shard: bool,
}

/// What the run was, for report headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunMeta {
    pub tool: String,
    pub version: String,
    /// The input's name as given (`<stdin>` for `-`).
    pub input: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub finished_at: String,
    /// False when the run was interrupted or stopped early by `--stop-after`.
    pub complete: bool,
    /// `syntax` or `dns` when the run stopped early.
    pub stop_after: Option<String>,
}

/// Everything a report needs besides the rows, known before the first row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportContext {
    pub meta: RunMeta,
    pub summary: Summary,
    pub stats: Stats,
    pub groups: Vec<GroupLine>,
    /// Changes since the previous run over the same store (`--state`);
    /// absent without a store or on the first run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// What changed since the previous run, per distinct address. Only
/// definitive results (pass or fail) count; unknowns change nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// The run compared against.
    pub previous_run: PreviousRun,
    /// Fail now; passed last time, or never seen before.
    pub newly_failing: Vec<Change>,
    /// Pass now; failed last time.
    pub newly_fixed: Vec<Change>,
    /// Fail now and last time (`since`: when the failing streak began).
    pub still_failing: Vec<Change>,
}

impl Changes {
    /// The three lists with their titles, in the order reports show them.
    pub fn lists(&self) -> [(&'static str, &[Change]); 3] {
        [
            ("newly failing", &self.newly_failing),
            ("newly fixed", &self.newly_fixed),
            ("still failing", &self.still_failing),
        ]
    }

    /// Entries in all three lists.
    pub fn len(&self) -> usize {
        self.lists().iter().map(|(_, l)| l.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The run a [`Changes`] compares against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PreviousRun {
    pub id: i64,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub complete: bool,
}

impl PreviousRun {
    /// `run 3 (2026-11-28T02:00:00Z)`, with `, incomplete` when it was cut
    /// short: how every report names it.
    pub fn describe(&self) -> String {
        let incomplete = if self.complete { "" } else { ", incomplete" };
        format!("run {} ({}{incomplete})", self.id, self.started_at)
    }
}

/// One address whose state is listed in [`Changes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub address: String,
    pub verdict: Verdict,
    /// The last definitive verdict before this run (none for a new address).
    pub previous: Option<Verdict>,
    /// RFC 3339 UTC: since when the address fails (failing entries only).
    pub since: Option<String>,
}

/// RFC 3339 UTC for seconds since the Unix epoch.
pub fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refill_leaves_nothing_of_the_last_row() {
        let mut r = SenderRecord::new(2, "a@example.com", Verdict::Receivable, "ok");
        r.address = Some("a@example.com".into());
        r.domain = Some("example.com".into());
        r.flags = vec![Flag::Duplicate];
        r.extra = vec![("x".into(), "1".into()), ("y".into(), "2".into())];
        r.mx_hosts = vec!["mx.example.com".into()];
        r.exim = Some(Decision::Pass);
        r.postfix = Some(Decision::Pass);
        r.evidence = Some(Evidence {
            mx_host: "mx.example.com".into(),
            ip: "192.0.2.1".into(),
            stage: Stage::RcptTo,
            reply: vec!["250 ok".into()],
        });
        r.transcript = vec!["RCPT TO:<a@example.com>".into()];
        r.fix = Some("none".into());
        let extra = [("z".to_string(), "3".to_string())];
        r.refill(7, "bad", None, Verdict::InvalidAddress, "no '@'", &extra);
        let mut want = SenderRecord::new(7, "bad", Verdict::InvalidAddress, "no '@'");
        want.extra = extra.to_vec();
        assert_eq!(r, want);
        let names = Some(("b@example.org", "example.org"));
        r.refill(8, " b@example.org", names, Verdict::Skipped, "later", &[]);
        let mut want = SenderRecord::new(8, " b@example.org", Verdict::Skipped, "later");
        want.address = Some("b@example.org".into());
        want.domain = Some("example.org".into());
        assert_eq!(r, want);
    }
}
