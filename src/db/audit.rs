//! The audit log: who changed what, when. Entries are written in the same transaction
//! as the change they describe.

use rusqlite::{params, Transaction};

use super::{all_rows, sql_err, Sqlite, StoreError};

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
