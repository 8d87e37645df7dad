//! The audit log: who changed what, when. Entries are written in the same transaction
//! as the change they describe. Also the failed-login log the shared throttle reads.

use rusqlite::{params, Transaction};

use super::{all_rows, first_row, sql_err, Sqlite, StoreError};

/// A change about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// `cli:<OS user>` or `user:<username>`.
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    pub detail: String,
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

pub(crate) fn record(tx: &Transaction<'_>, now: i64, entry: &AuditEntry) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            now,
            entry.actor,
            entry.action,
            entry.target,
            entry.detail
        ])
    })
    .map(|_| ())
    .map_err(sql_err)
}

impl Sqlite {
    /// The whole log, oldest first.
    pub(crate) fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT at, actor, action, target, detail FROM audit ORDER BY seq")
            .map_err(sql_err)?;
        all_rows(&mut stmt, [], |r| {
            Ok(AuditRecord {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                detail: r.get(4)?,
            })
        })
    }
}

/// The `limit`-th newest failure of each key after `since` (OFFSET limit - 1).
const FAILURE_MARKS: &str =
    "SELECT (SELECT at FROM login_failures WHERE key = ?1 AND at > ?3 ORDER BY at DESC LIMIT 1 OFFSET ?4),
            (SELECT at FROM login_failures WHERE key = ?2 AND at > ?3 ORDER BY at DESC LIMIT 1 OFFSET ?5)";

impl Sqlite {
    pub(crate) fn login_failure_marks(
        &self,
        keys: [&str; 2],
        limits: [i64; 2],
        since: i64,
    ) -> Result<[Option<i64>; 2], StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(FAILURE_MARKS).map_err(sql_err)?;
        let marks = first_row(
            &mut stmt,
            params![
                keys[0],
                keys[1],
                since,
                (limits[0] - 1).max(0),
                (limits[1] - 1).max(0)
            ],
            |r| Ok([r.get(0)?, r.get(1)?]),
        )?;
        Ok(marks.unwrap_or([None, None]))
    }

    pub(crate) fn record_login_failure(&self, keys: [&str; 2], now: i64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("INSERT INTO login_failures (key, at) VALUES (?1, ?3), (?2, ?3)")
            .and_then(|mut s| s.execute(params![keys[0], keys[1], now]))
            .map(|_| ())
            .map_err(sql_err)
    }

    pub(crate) fn purge_login_failures(&self, cutoff: i64) -> Result<usize, StoreError> {
        self.conn()?
            .prepare_cached("DELETE FROM login_failures WHERE at <= ?1")
            .and_then(|mut s| s.execute([cutoff]))
            .map_err(sql_err)
    }
}
