//! The request log on stderr: one line per request, buffered in memory and written
//! in batches by a flusher thread, so a request costs no write(2) of its own.
//!
//! A line reaches stderr at most `FLUSH_DELAY` after it was logged (sooner when the
//! buffer fills up); an idle server has no flusher wake-ups at all. Lines keep their
//! order: every write to stderr happens under `OUT`, which is taken before the buffer
//! is emptied.

use std::fmt;
use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// How long a logged line may wait in memory.
const FLUSH_DELAY: Duration = Duration::from_millis(20);
/// A buffer this full is written at once by the worker that filled it.
const FLUSH_AT: usize = 64 * 1024;

static BUF: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static NOT_EMPTY: Condvar = Condvar::new();
static OUT: Mutex<()> = Mutex::new(());

/// A poisoned lock only means a thread panicked while holding it; the bytes are
/// still fine to write.
fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Appends one line (a newline is added).
pub fn line(args: fmt::Arguments<'_>) {
    let mut buf = lock(&BUF);
    let was_empty = buf.is_empty();
    let _ = buf.write_fmt(args);
    buf.push(b'\n');
    let full = buf.len() >= FLUSH_AT;
    drop(buf);
    if full {
        flush();
    } else if was_empty {
        NOT_EMPTY.notify_one();
    }
}

/// Writes everything buffered so far to stderr.
pub fn flush() {
    let _out = lock(&OUT);
    let pending = std::mem::take(&mut *lock(&BUF));
    if !pending.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&pending);
        let _ = err.flush();
    }
}

/// Starts the thread that writes buffered lines within `FLUSH_DELAY`.
pub fn start_flusher() -> Result<(), String> {
    thread::Builder::new()
        .name("log-flush".into())
        .spawn(|| loop {
            {
                let mut buf = lock(&BUF);
                while buf.is_empty() {
                    buf = NOT_EMPTY
                        .wait(buf)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
            // Let a burst gather into one write.
            thread::sleep(FLUSH_DELAY);
            flush();
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the log thread: {e}"))
}
