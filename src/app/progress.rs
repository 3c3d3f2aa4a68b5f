//! Progress on standard error: indicatif bars on a terminal, nothing in cron.

use indicatif::{ProgressBar, ProgressStyle};
use sendercheck::audit::Observer;
use std::sync::Mutex;
use std::time::Duration;

/// Shows stage progress and input notes.
pub struct Bars {
    bars: bool,
    notes: bool,
    verbose: u8,
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new(bars: bool, notes: bool, verbose: u8) -> Bars {
        Bars {
            bars,
            notes,
            verbose,
            current: Mutex::new(None),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = self.current.lock().expect("bar lock").take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Bars {
    fn stage(&self, name: &str, total: u64) {
        if self.verbose > 1 {
            eprintln!("sendercheck: stage {name} ({total})");
        }
        if !self.bars {
            return;
        }
        let mut current = self.current.lock().expect("bar lock");
        if let Some(bar) = current.take() {
            bar.finish_and_clear();
        }
        let bar = if total == 0 {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::new(total)
        };
        let style = ProgressStyle::with_template(
            "{spinner} {prefix:>9} [{bar:30}] {pos}/{len} {per_sec} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        *current = Some(bar);
    }

    fn progress(&self, done: u64, current_host: &str) {
        if self.verbose > 1 {
            eprintln!("sendercheck: session to {current_host} ({done} senders done)");
        }
        if let Some(bar) = self.current.lock().expect("bar lock").as_ref() {
            bar.set_position(done);
            bar.set_message(current_host.to_string());
        }
    }

    fn note(&self, message: &str) {
        if !self.notes {
            return;
        }
        match self.current.lock().expect("bar lock").as_ref() {
            Some(bar) => bar.suspend(|| eprintln!("sendercheck: note: {message}")),
            None => eprintln!("sendercheck: note: {message}"),
        }
    }
}
