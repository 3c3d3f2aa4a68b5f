//! Plumbing shared by the DNS and SMTP servers: an interruptible stop signal and
//! a registry of live connections.
//!
//! Both servers run blocking threads. To make `Drop` prompt and deterministic we
//! never rely on polling alone: the stop signal wakes sleepers through a condvar,
//! and every accepted socket is registered so that `Drop` can `shutdown()` it,
//! which makes any blocked `read`/`write` on it return at once.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Locks a mutex, ignoring poisoning: a panicking connection thread must not take
/// the whole test world down with it, and our data stays consistent per update.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A one-way "stop now" flag whose waits can be cut short.
#[derive(Default)]
pub(crate) struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    pub(crate) fn trigger(&self) {
        *lock(&self.stopped) = true;
        self.cv.notify_all();
    }

    pub(crate) fn is_set(&self) -> bool {
        *lock(&self.stopped)
    }

    /// Sleeps for `dur` unless stopped first. Returns `true` if the world is
    /// stopping, so callers can bail out of long scripted behaviours.
    pub(crate) fn sleep(&self, dur: Duration) -> bool {
        let deadline = Instant::now() + dur;
        let mut stopped = lock(&self.stopped);
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped = self
                .cv
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Live connections and the threads serving them.
#[derive(Default)]
pub(crate) struct Conns {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Conns {
    /// Allocates a connection id (1-based, in accept order).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn live_count(&self) -> usize {
        lock(&self.live).len()
    }

    /// Registers a socket so that `shutdown_all` can interrupt it. A clone
    /// failure only loses the interruptibility of this one connection; its own
    /// timeouts still bound it.
    pub(crate) fn register(&self, id: u64, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            lock(&self.live).insert(id, clone);
        }
    }

    pub(crate) fn unregister(&self, id: u64) {
        lock(&self.live).remove(&id);
    }

    /// Keeps a handle to join at shutdown; prunes finished ones so a long-lived
    /// server does not accumulate handles.
    pub(crate) fn track(&self, handle: JoinHandle<()>) {
        let mut threads = lock(&self.threads);
        threads.retain(|h| !h.is_finished());
        threads.push(handle);
    }

    /// Shuts down every live socket and joins every connection thread.
    pub(crate) fn shutdown_and_join(&self) {
        for stream in lock(&self.live).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *lock(&self.threads));
        for handle in threads {
            let _ = handle.join();
        }
    }
}
