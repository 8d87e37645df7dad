//! The Ed25519 keys that sign access tokens, shared by every process on the database.
//!
//! One key is `active` (the UNIQUE `slot`); a rotated key is `retiring` and still served
//! until `signed_until`, a bound on the expiry of every token it signed, which the
//! signer raises (guarded on the key still being active) before it signs. Past it the
//! key is dropped.

use rusqlite::params;

use super::audit::{record, AuditEntry};
use super::{all_rows, first_row, sql_err, Sqlite, StoreError};

/// A key as `/oauth/keys` and `admin keys list` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    pub kid: String,
    pub public_key: String,
    pub active: bool,
    pub created_at: i64,
    pub signed_until: i64,
}

/// The key that signs now.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub kid: String,
    pub secret_key: Vec<u8>,
    pub signed_until: i64,
}

/// A key about to be stored.
pub struct NewKey<'a> {
    pub kid: &'a str,
    pub public_key: &'a str,
    pub secret_key: &'a [u8],
}

const INSERT_ACTIVE: &str =
    "INSERT INTO signing_keys (kid, public_key, secret_key, slot, created_at, signed_until)
     VALUES (?1, ?2, ?3, 'active', ?4, ?4)
     ON CONFLICT DO NOTHING";

impl Sqlite {
    /// Stores `key` as the active key unless there is one already (a concurrent first
    /// start included: the UNIQUE slot lets exactly one in). True if this one went in.
    pub(crate) fn insert_first_key(&self, key: &NewKey<'_>, now: i64) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let n = conn
            .prepare_cached(INSERT_ACTIVE)
            .and_then(|mut s| s.execute(params![key.kid, key.public_key, key.secret_key, now]))
            .map_err(sql_err)?;
        Ok(n == 1)
    }

    /// The active key, if any.
    pub(crate) fn active_key(&self) -> Result<Option<ActiveKey>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT kid, secret_key, signed_until FROM signing_keys WHERE slot = 'active'",
            )
            .map_err(sql_err)?;
        first_row(&mut stmt, [], |r| {
            Ok(ActiveKey {
                kid: r.get(0)?,
                secret_key: r.get(1)?,
                signed_until: r.get(2)?,
            })
        })
    }

    /// Raises the active key's `signed_until` to `until`, only while it is still the
    /// active key. False when it was rotated away: the caller signs with the new one.
    pub(crate) fn extend_key_use(&self, kid: &str, until: i64) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let n = conn
            .prepare_cached(
                "UPDATE signing_keys SET signed_until = ?2
                 WHERE kid = ?1 AND slot = 'active' AND signed_until < ?2",
            )
            .and_then(|mut s| s.execute(params![kid, until]))
            .map_err(sql_err)?;
        if n == 1 {
            return Ok(true);
        }
        // Nothing written: either already far enough (fine) or no longer active.
        let mut stmt = conn
            .prepare_cached(
                "SELECT 1 FROM signing_keys WHERE kid = ?1 AND slot = 'active' AND signed_until >= ?2",
            )
            .map_err(sql_err)?;
        Ok(first_row(&mut stmt, params![kid, until], |r| r.get::<_, i64>(0))?.is_some())
    }

    /// The public key named `kid`, until it is dropped.
    pub(crate) fn public_key(&self, kid: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT public_key FROM signing_keys WHERE kid = ?1")
            .map_err(sql_err)?;
        first_row(&mut stmt, [kid], |r| r.get(0))
    }

    /// The served keys: the active one first, then retiring ones, newest first.
    pub(crate) fn list_keys(&self, now: i64) -> Result<Vec<PublicKeyInfo>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT kid, public_key, slot, created_at, signed_until FROM signing_keys
                 WHERE slot = 'active' OR signed_until > ?1
                 ORDER BY CASE WHEN slot = 'active' THEN 0 ELSE 1 END, created_at DESC, kid",
            )
            .map_err(sql_err)?;
        all_rows(&mut stmt, [now], |r| {
            Ok(PublicKeyInfo {
                kid: r.get(0)?,
                public_key: r.get(1)?,
                active: r.get::<_, Option<String>>(2)?.is_some(),
                created_at: r.get(3)?,
                signed_until: r.get(4)?,
            })
        })
    }

    /// Makes `key` the active key; the previous one starts retiring, and retiring keys
    /// whose tokens have all expired are dropped. One transaction, audited.
    pub(crate) fn rotate_key(
        &self,
        key: &NewKey<'_>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let retired: Option<String> = {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE signing_keys SET slot = NULL, retired_at = ?1 WHERE slot = 'active' RETURNING kid",
                )
                .map_err(sql_err)?;
            first_row(&mut stmt, [now], |r| r.get(0))?
        };
        let n = tx
            .prepare_cached(INSERT_ACTIVE)
            .and_then(|mut s| s.execute(params![key.kid, key.public_key, key.secret_key, now]))
            .map_err(sql_err)?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        tx.prepare_cached("DELETE FROM signing_keys WHERE slot IS NULL AND signed_until <= ?1")
            .and_then(|mut s| s.execute([now]))
            .map_err(sql_err)?;
        record(
            &tx,
            now,
            &AuditEntry {
                target: key.kid.to_string(),
                detail: match retired {
                    Some(old) => format!("retiring={old}"),
                    None => String::new(),
                },
                ..audit.clone()
            },
        )?;
        tx.commit().map_err(sql_err)
    }

    /// Drops retiring keys whose tokens have all expired (the purge thread).
    pub(crate) fn drop_retired_keys(&self, now: i64) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached("DELETE FROM signing_keys WHERE slot IS NULL AND signed_until <= ?1")
            .and_then(|mut s| s.execute([now]))
            .map_err(sql_err)
    }
}
