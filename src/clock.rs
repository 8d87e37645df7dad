//! Where time comes from: `SystemClock` in production, `FixedClock` in tests.
//!
//! Every decision about expiry takes `now` (Unix milliseconds) from a `Clock`, so tests
//! move time instead of sleeping. This is the only module allowed to read the system time.

use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync {
    /// Now, as integer Unix milliseconds.
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(now_ms: i64) -> Self {
        FixedClock(AtomicI64::new(now_ms))
    }
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 UTC with second precision (truncated), as the contract puts times on the wire.
pub fn rfc3339(ms: i64) -> String {
    use chrono::{Datelike, Timelike};
    match chrono::DateTime::from_timestamp(ms.div_euclid(1000), 0) {
        // Written digit by digit: this is on every validate, and chrono's `format`
        // parses its pattern each time.
        Some(t) if (0..=9999).contains(&t.year()) => {
            let mut out = *b"0000-00-00T00:00:00Z";
            let mut put = |at: usize, width: usize, mut n: u32| {
                for i in (at..at + width).rev() {
                    out[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                }
            };
            put(0, 4, t.year() as u32);
            put(5, 2, t.month());
            put(8, 2, t.day());
            put(11, 2, t.hour());
            put(14, 2, t.minute());
            put(17, 2, t.second());
            out.iter().map(|&b| b as char).collect()
        }
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Unreachable for instants this program stores (bounded by config ranges).
        None => String::from("1970-01-01T00:00:00Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_times_are_truncated_to_the_second() {
        assert_eq!(rfc3339(1_795_362_344_999), "2026-11-22T15:45:44Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_799_000), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = FixedClock::new(1000);
        assert_eq!(c.now_ms(), 1000);
        c.advance(500);
        assert_eq!(c.now_ms(), 1500);
    }
}
