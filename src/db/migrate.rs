//! Schema migrations keyed by `PRAGMA user_version`, applied in one IMMEDIATE transaction.
//!
//! Step 1 is `schema.sql`; later steps are appended to `STEPS` and never edited. A
//! database whose version is newer than the binary knows is refused, untouched.

use rusqlite::{Connection, TransactionBehavior};

use super::{sql_err, StoreError};

const STEPS: &[&str] = &[
    include_str!("../../schema.sql"),
    // 2: login attempts, for a throttle shared by every process on the database.
    LOGIN_ATTEMPTS,
];

/// Step 2: the shared login throttle's table (PostgreSQL has it in its step 1). Only
/// `serve` on PostgreSQL uses it; SQLite has it so one conformance suite covers both.
const LOGIN_ATTEMPTS: &str = "CREATE TABLE login_attempts (
    id       INTEGER PRIMARY KEY,   -- the reservation
    user_key TEXT NOT NULL,         -- the username as counted
    addr_key TEXT NOT NULL,         -- the client address
    at       INTEGER NOT NULL
);
CREATE INDEX login_attempts_by_user ON login_attempts (user_key, at);
CREATE INDEX login_attempts_by_addr ON login_attempts (addr_key, at);
";
/// The schema version this binary writes.
pub const LATEST: i64 = STEPS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err)?;
    if version > LATEST {
        return Err(StoreError::TooNew {
            found: version,
            supported: LATEST,
        });
    }
    for (i, step) in STEPS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(step).map_err(sql_err)?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)
}
