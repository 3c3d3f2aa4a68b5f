//! What one MX host is spared, whatever the rest of the run does: at most
//! `--per-host-connections` sessions at once, at most `--per-host-rate` RCPTs
//! a second, and a pause (that host only) after a 421 or a run of 4xx
//! answers. Everything here is keyed by MX host name and shared by all
//! workers; nothing here speaks SMTP.

use super::CalloutOptions;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// This many 4xx RCPT answers in a row from one host slow that host down.
const TEMPFAIL_RUN: u32 = 10;

/// Per-host limits and back-off state of one run.
pub(super) struct Politeness {
    /// The `--per-host-connections` cap (at least one).
    cap: usize,
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    /// Open sessions per MX host.
    open: Mutex<HashMap<String, usize>>,
    open_changed: Condvar,
    /// Hosts that said 421 or kept deferring: not before this instant.
    backoff: Mutex<HashMap<String, (Instant, u32)>>,
    /// Consecutive 4xx RCPT answers per host.
    tempfail_runs: Mutex<HashMap<String, u32>>,
}

/// A per-host session slot, released when dropped.
pub(super) struct Slot<'p> {
    politeness: &'p Politeness,
    host: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut open = self.politeness.open.lock().expect("slot lock");
        if let Some(n) = open.get_mut(&self.host) {
            *n = n.saturating_sub(1);
        }
        self.politeness.open_changed.notify_all();
    }
}

impl Politeness {
    pub(super) fn new(opts: &CalloutOptions) -> Politeness {
        // A burst of one transaction's RCPTs lets a pipelined batch go out at
        // once; over any longer window the host still sees `per_host_rate`.
        let burst = NonZeroU32::new(opts.rcpt_per_transaction.clamp(1, u32::MAX as usize) as u32)
            .expect("clamped to at least one");
        let quota =
            Quota::with_period(Duration::from_secs_f64(1.0 / opts.per_host_rate.max(0.001)))
                .expect("a positive period")
                .allow_burst(burst);
        Politeness {
            cap: opts.per_host_connections.max(1),
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            open: Mutex::new(HashMap::new()),
            open_changed: Condvar::new(),
            backoff: Mutex::new(HashMap::new()),
            tempfail_runs: Mutex::new(HashMap::new()),
        }
    }

    /// Block until `host` has a free session slot, and take it.
    pub(super) fn slot(&self, host: &str) -> Slot<'_> {
        let mut open = self.open.lock().expect("slot lock");
        loop {
            let n = open.entry(host.to_string()).or_insert(0);
            if *n < self.cap {
                *n += 1;
                break;
            }
            open = self.open_changed.wait(open).expect("slot lock");
        }
        Slot {
            politeness: self,
            host: host.to_string(),
        }
    }

    /// Block until the host's rate limit allows one more RCPT.
    pub(super) fn rate(&self, host: &str) {
        let key = host.to_string();
        while let Err(not_until) = self.limiter.check_key(&key) {
            std::thread::sleep(not_until.wait_time_from(self.clock.now()));
        }
    }

    /// Block until the host's back-off pause, if any, is over.
    pub(super) fn wait_backoff(&self, host: &str) {
        let until = self
            .backoff
            .lock()
            .expect("backoff lock")
            .get(host)
            .map(|b| b.0);
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                std::thread::sleep(until - now);
            }
        }
    }

    /// A 421 or a run of 4xx slows this host down, never the others.
    pub(super) fn slow_down(&self, host: &str) {
        let mut map = self.backoff.lock().expect("backoff lock");
        let entry = map.entry(host.to_string()).or_insert((Instant::now(), 0));
        entry.1 = (entry.1 + 1).min(6);
        entry.0 = Instant::now() + Duration::from_millis(500 << entry.1);
    }

    /// A run of 4xx RCPT answers means the host is struggling or
    /// throttling us: pause it (only it) before its next session.
    pub(super) fn note_rcpt_reply(&self, host: &str, transient: bool) {
        let mut runs = self.tempfail_runs.lock().expect("tempfail lock");
        let run = runs.entry(host.to_string()).or_insert(0);
        if transient {
            *run += 1;
            if *run >= TEMPFAIL_RUN {
                *run = 0;
                drop(runs);
                self.slow_down(host);
            }
        } else {
            *run = 0;
        }
    }

    /// Back to the base pause after a session that made progress.
    pub(super) fn forgive(&self, host: &str) {
        if let Some(entry) = self.backoff.lock().expect("backoff lock").get_mut(host) {
            entry.1 = 0;
        }
    }
}
