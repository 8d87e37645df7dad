//! Schema migrations keyed by `PRAGMA user_version`, applied in one IMMEDIATE transaction.
//!
//! Step 1 is `schema.sql`; later steps are appended to `STEPS` and never edited. A
//! database whose version is newer than the binary knows is refused, untouched.

use rusqlite::{Connection, TransactionBehavior};

use super::{sql_err, StoreError};

const STEPS: &[&str] = &[
    include_str!("../../schema.sql"),
    // 2: failed logins, for a throttle shared by every process on the database.
    LOGIN_FAILURES,
];

/// Step 2 on both backends (PostgreSQL has it in its step 1).
pub(crate) const LOGIN_FAILURES: &str = "CREATE TABLE login_failures (
    key TEXT NOT NULL,      -- u:<username> or a:<client address>
    at  INTEGER NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (key, at);
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
