//! The log on stderr: one line per request, and the server's own warnings and
//! errors, each with an RFC 3339 UTC timestamp. `--log-format text` (the default)
//! writes `TIME METHOD PATH STATUS MSms` and `TIME LEVEL message`; `--log-format json`
//! writes one JSON object a line (`{"time","method","path","status","ms"}`,
//! `{"time","level","message"}`) for log shippers.
//!
//! What comes from outside (the method, the path, names in messages) is escaped in
//! text (`text::escape`) and by JSON itself, so a request line with a newline or ESC
//! in it can neither forge a line nor reach a terminal raw. Nothing secret is logged:
//! the query string is left out, and no token or password is ever passed here.
//!
//! Request lines are buffered in memory and written in batches by a flusher thread, so
//! a request costs no write(2) of its own. A line reaches stderr at most `FLUSH_DELAY`
//! after it was logged (sooner when the buffer fills up); an idle server has no
//! flusher wake-ups at all. Lines keep their order: every write to stderr happens under
//! `OUT`, which is taken before the buffer is emptied. Warnings and errors are written
//! at once.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
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
static JSON: AtomicBool = AtomicBool::new(false);

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Chooses the format of every line from now on (once, at start).
pub fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::Relaxed);
}

fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// RFC 3339 UTC with milliseconds: `2026-12-01T00:41:00.123Z`.
fn timestamp(now_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_ms() -> i64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now_ms()
}

/// The line for one request (without the newline).
fn request_line(
    json: bool,
    now_ms: i64,
    method: &str,
    path: &str,
    status: u16,
    micros: u64,
) -> String {
    let time = timestamp(now_ms);
    if json {
        serde_json::json!({
            "time": time,
            "method": method,
            "path": path,
            "status": status,
            "ms": micros as f64 / 1000.0,
        })
        .to_string()
    } else {
        format!(
            "{time} {} {} {status} {}.{}ms",
            crate::text::escape(method),
            crate::text::escape(path),
            micros / 1000,
            micros % 1000 / 100
        )
    }
}

/// The line for one event (without the newline).
fn event_line(json: bool, now_ms: i64, level: Level, message: &str) -> String {
    let time = timestamp(now_ms);
    if json {
        serde_json::json!({
            "time": time,
            "level": level.as_str().to_ascii_lowercase(),
            "message": message,
        })
        .to_string()
    } else {
        format!("{time} {} {}", level.as_str(), crate::text::escape(message))
    }
}

/// Logs one request: method, path (no query), status, time taken. Buffered.
pub fn request(method: &str, path: &str, status: u16, micros: u64) {
    line(format_args!(
        "{}",
        request_line(json(), now_ms(), method, path, status, micros)
    ));
}

/// Logs a warning, an error or a notice at once (after anything buffered). The
/// message is plain text; whatever in it came from outside is escaped here.
pub fn event(level: Level, message: &str) {
    line(format_args!(
        "{}",
        event_line(json(), now_ms(), level, message)
    ));
    flush();
}

/// A poisoned lock only means a thread panicked while holding it; the bytes are
/// still fine to write.
fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Appends one line (a newline is added).
fn line(args: fmt::Arguments<'_>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_920_060_123;
    const FORGED: &str = "/x\n2026-12-01T00:41:00.000Z GET /admin 200 0.1ms\u{1b}[2J";

    #[test]
    fn a_forged_request_line_stays_one_escaped_text_line() {
        let line = request_line(false, T, "G\u{1b}T", FORGED, 404, 1234);
        assert_eq!(
            line,
            r"2026-11-29T02:41:00.123Z G\u{1b}T /x\n2026-12-01T00:41:00.000Z GET /admin 200 0.1ms\u{1b}[2J 404 1.2ms"
        );
        let event = event_line(false, T, Level::Warn, "bad \u{1b}[8m\nname");
        assert_eq!(event, r"2026-11-29T02:41:00.123Z WARN bad \u{1b}[8m\nname");
    }

    #[test]
    fn json_lines_are_one_exact_object() {
        let line = request_line(true, T, "GET", FORGED, 404, 1234);
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"time": "2026-11-29T02:41:00.123Z", "method": "GET",
                "path": FORGED, "status": 404, "ms": 1.234})
        );
        let v: serde_json::Value =
            serde_json::from_str(&event_line(true, T, Level::Error, "x\ny")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"time": "2026-11-29T02:41:00.123Z", "level": "error", "message": "x\ny"})
        );
    }
}
