//! The audit log: who changed what, when. Entries are written in the same transaction
//! as the change they describe. Also the login attempts the shared throttle counts.

use rusqlite::{params, Transaction, TransactionBehavior};

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

/// The `limit`-th newest attempt of each key after `since` (OFFSET limit - 1).
const ATTEMPT_MARKS: &str =
    "SELECT (SELECT at FROM login_attempts WHERE user_key = ?1 AND at > ?3 ORDER BY at DESC LIMIT 1 OFFSET ?4),
            (SELECT at FROM login_attempts WHERE addr_key = ?2 AND at > ?3 ORDER BY at DESC LIMIT 1 OFFSET ?5)";

impl Sqlite {
    pub(crate) fn reserve_login_attempt(
        &self,
        id: i64,
        keys: [&str; 2],
        limits: [i64; 2],
        now: i64,
        since: i64,
    ) -> Result<[Option<i64>; 2], StoreError> {
        let mut conn = self.conn()?;
        // IMMEDIATE: the count and the insert happen under the one write lock.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let marks = {
            let mut stmt = tx.prepare_cached(ATTEMPT_MARKS).map_err(sql_err)?;
            first_row(
                &mut stmt,
                params![
                    keys[0],
                    keys[1],
                    since,
                    (limits[0] - 1).max(0),
                    (limits[1] - 1).max(0)
                ],
                |r| Ok([r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?]),
            )?
            .unwrap_or([None, None])
        };
        if marks == [None, None] {
            tx.prepare_cached(
                "INSERT INTO login_attempts (id, user_key, addr_key, at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![id, keys[0], keys[1], now]))
            .map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)?;
        Ok(marks)
    }

    pub(crate) fn release_login_attempt(&self, id: i64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("DELETE FROM login_attempts WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map(|_| ())
            .map_err(sql_err)
    }

    pub(crate) fn purge_login_attempts(&self, cutoff: i64) -> Result<usize, StoreError> {
        self.conn()?
            .prepare_cached("DELETE FROM login_attempts WHERE at <= ?1")
            .and_then(|mut s| s.execute([cutoff]))
            .map_err(sql_err)
    }
}
