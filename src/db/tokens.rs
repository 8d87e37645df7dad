//! Sessions and personal access tokens, keyed by the SHA-256 of the token.
//!
//! The hot path is `lookup` (one indexed read joined to the user). Writes that race are
//! guarded UPDATEs whose WHERE clause is the decision: sliding never revives an expired
//! session and never extends twice; renewing is a compare-and-swap on the threshold.

use rusqlite::{params, TransactionBehavior};

use super::audit::{record, AuditEntry};
use super::{all_rows, first_row, sql_err, Sqlite, StoreError};
use crate::auth::token::{Kind, TokenHash};

/// A token about to be stored (the secret itself never is).
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub hash: &'a TokenHash,
    pub id: &'a str,
    pub kind: Kind,
    pub user_id: &'a str,
    pub name: Option<&'a str>,
    pub prefix: &'a str,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A stored token with what authentication needs of its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: Vec<u8>,
    pub id: String,
    pub kind: Kind,
    pub user_id: String,
    pub username: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The user's session_version when the token was issued.
    pub issued_version: i64,
    /// The user's session_version now.
    pub user_version: i64,
}

/// What `GET /api/tokens` shows of a PAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatSummary {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyRevoked,
    NotFound,
}

impl Sqlite {
    /// Stores a token under the user's current session_version (read in the same
    /// statement, so a concurrent break-glass bump cannot be missed). `NotFound` if the
    /// user does not exist. The audit entry, if any, is written in the same transaction.
    pub(crate) fn insert_token(
        &self,
        t: &NewToken<'_>,
        audit: Option<(&AuditEntry, i64)>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO tokens (token_hash, id, kind, user_id, name, prefix, created_at, expires_at, session_version)
                 SELECT ?1, ?2, ?3, id, ?5, ?6, ?7, ?8, session_version FROM users WHERE id = ?4",
            )
            .and_then(|mut s| {
                s.execute(params![
                    &t.hash[..],
                    t.id,
                    t.kind.as_str(),
                    t.user_id,
                    t.name,
                    t.prefix,
                    t.created_at,
                    t.expires_at
                ])
            })
            .map_err(sql_err)?;
        if inserted == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some((entry, now)) = audit {
            record(&tx, now, entry)?;
        }
        tx.commit().map_err(sql_err)
    }

    /// The token stored under `hash`, whatever its state.
    pub(crate) fn lookup_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT t.token_hash, t.id, t.kind, t.user_id, u.username, t.created_at, t.expires_at,
                        t.last_used_at, t.revoked_at, t.session_version, u.session_version
                 FROM tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = ?1",
            )
            .map_err(sql_err)?;
        first_row(&mut stmt, [&hash[..]], |r| {
            let kind: String = r.get(2)?;
            Ok(TokenRecord {
                hash: r.get(0)?,
                id: r.get(1)?,
                // The CHECK constraint admits only these two words.
                kind: Kind::parse(&kind).unwrap_or(Kind::Session),
                user_id: r.get(3)?,
                username: r.get(4)?,
                created_at: r.get(5)?,
                expires_at: r.get(6)?,
                last_used_at: r.get(7)?,
                revoked_at: r.get(8)?,
                issued_version: r.get(9)?,
                user_version: r.get(10)?,
            })
        })
    }

    /// Slides a live session's expiry forward to `target` when the stored expiry is
    /// behind it by `min_gain` ms or more. Returns the new expiry when this call wrote
    /// it; `None` when the guard refused (expired, revoked, unknown, or a racing writer
    /// already slid it to within `min_gain` of `target`): an expired session is never
    /// revived, and requests racing on one token write once per `min_gain`, not once
    /// each.
    pub(crate) fn slide_session(
        &self,
        hash: &TokenHash,
        now: i64,
        target: i64,
        min_gain: i64,
    ) -> Result<Option<i64>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "UPDATE tokens SET expires_at = ?1
                 WHERE token_hash = ?2 AND kind = 'session' AND revoked_at IS NULL
                   AND expires_at > ?3 AND expires_at <= ?1 - ?4
                 RETURNING expires_at",
            )
            .map_err(sql_err)?;
        first_row(
            &mut stmt,
            params![target, &hash[..], now, min_gain.max(1)],
            |r| r.get(0),
        )
    }

    /// The stored expiry of a token (`Some(None)`: never expires; `None`: no such token).
    pub(crate) fn token_expiry(&self, hash: &TokenHash) -> Result<Option<Option<i64>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT expires_at FROM tokens WHERE token_hash = ?1")
            .map_err(sql_err)?;
        first_row(&mut stmt, [&hash[..]], |r| r.get(0))
    }

    /// Records that a PAT was used, at most once per `every_ms`.
    pub(crate) fn touch_token(
        &self,
        hash: &TokenHash,
        now: i64,
        every_ms: i64,
    ) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let n = conn
            .prepare_cached(
                "UPDATE tokens SET last_used_at = ?2
                 WHERE token_hash = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3)",
            )
            .and_then(|mut s| s.execute(params![&hash[..], now, now - every_ms]))
            .map_err(sql_err)?;
        Ok(n == 1)
    }

    /// Compare-and-swap renewal of a live PAT: only when `threshold_ms` or less is left
    /// does its expiry become `now + lifetime_ms`. Returns the new expiry when this call
    /// renewed it; `None` when not due (or a racing renew already did it).
    pub(crate) fn renew_pat(
        &self,
        hash: &TokenHash,
        now: i64,
        lifetime_ms: i64,
        threshold_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "UPDATE tokens SET expires_at = ?2 + ?3
                 WHERE token_hash = ?1 AND kind = 'pat' AND revoked_at IS NULL
                   AND expires_at IS NOT NULL AND expires_at > ?2 AND expires_at <= ?2 + ?4
                 RETURNING expires_at",
            )
            .map_err(sql_err)?;
        first_row(
            &mut stmt,
            params![&hash[..], now, lifetime_ms, threshold_ms],
            |r| r.get(0),
        )
    }

    /// Revokes the token stored under `hash`. The guarded UPDATE is the decision (no
    /// read first), so of two racing revokes exactly one matches and audits.
    pub(crate) fn revoke_token(
        &self,
        hash: &TokenHash,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let revoked: Option<String> = {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE tokens SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL
                     RETURNING id",
                )
                .map_err(sql_err)?;
            first_row(&mut stmt, params![&hash[..], now], |r| r.get(0))?
        };
        let outcome = match revoked {
            Some(id) => {
                if let Some(entry) = audit {
                    record(
                        &tx,
                        now,
                        &AuditEntry {
                            target: id,
                            ..entry.clone()
                        },
                    )?;
                }
                RevokeOutcome::Revoked
            }
            None => {
                let mut stmt = tx
                    .prepare_cached("SELECT 1 FROM tokens WHERE token_hash = ?1")
                    .map_err(sql_err)?;
                match first_row(&mut stmt, [&hash[..]], |r| r.get::<_, i64>(0))? {
                    Some(_) => RevokeOutcome::AlreadyRevoked,
                    None => RevokeOutcome::NotFound,
                }
            }
        };
        tx.commit().map_err(sql_err)?;
        Ok(outcome)
    }

    /// Revokes one of the user's own live PATs by id; false if there is no such live PAT.
    pub(crate) fn revoke_pat_by_id(
        &self,
        user_id: &str,
        id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let n = tx
            .execute(
                "UPDATE tokens SET revoked_at = ?3
                 WHERE id = ?1 AND user_id = ?2 AND kind = 'pat' AND revoked_at IS NULL
                   AND (expires_at IS NULL OR expires_at > ?3)",
                params![id, user_id, now],
            )
            .map_err(sql_err)?;
        if n == 1 {
            record(&tx, now, audit)?;
        }
        tx.commit().map_err(sql_err)?;
        Ok(n == 1)
    }

    /// The user's live PATs, newest first.
    pub(crate) fn list_pats(&self, user_id: &str, now: i64) -> Result<Vec<PatSummary>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT t.id, coalesce(t.name, ''), t.prefix, t.created_at, t.expires_at, t.last_used_at
                 FROM tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.user_id = ?1 AND t.kind = 'pat' AND t.revoked_at IS NULL
                   AND (t.expires_at IS NULL OR t.expires_at > ?2)
                   AND t.session_version >= u.session_version
                 ORDER BY t.created_at DESC, t.id",
            )
            .map_err(sql_err)?;
        all_rows(&mut stmt, params![user_id, now], |r| {
            Ok(PatSummary {
                id: r.get(0)?,
                name: r.get(1)?,
                prefix: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                last_used_at: r.get(5)?,
            })
        })
    }

    /// Deletes up to `batch` rows of tokens that expired or were revoked before `cutoff`.
    /// Returns how many were deleted; call again while it returns `batch`.
    pub(crate) fn purge_tokens(&self, cutoff: i64, batch: i64) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "DELETE FROM tokens WHERE token_hash IN (
                 SELECT token_hash FROM tokens WHERE revoked_at < ?1
                 UNION
                 SELECT token_hash FROM tokens WHERE expires_at < ?1
                 LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![cutoff, batch]))
        .map_err(sql_err)
    }

    /// Benchmark fixture: `count` sessions for one user in one transaction of prepared
    /// inserts. Returns the first `keep` tokens (the rest are forgotten).
    pub(crate) fn seed_sessions(
        &self,
        user_id: &str,
        count: u64,
        keep: u64,
        now: i64,
        expires_at: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let mut kept = Vec::new();
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO tokens (token_hash, id, kind, user_id, prefix, created_at, expires_at, session_version)
                     SELECT ?1, ?2, 'session', id, ?3, ?4, ?5, session_version FROM users WHERE id = ?6",
                )
                .map_err(sql_err)?;
            for i in 0..count {
                let minted = crate::auth::token::mint(Kind::Session)
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                let id = crate::auth::token::random_id("tok_")
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                stmt.execute(params![
                    &minted.hash[..],
                    id,
                    minted.display_prefix,
                    now,
                    expires_at,
                    user_id
                ])
                .map_err(sql_err)?;
                if i < keep {
                    kept.push(minted.token);
                }
            }
        }
        tx.commit().map_err(sql_err)?;
        Ok(kept)
    }

    /// Live (unexpired, unrevoked) sessions and PATs, for the metrics gauges.
    pub(crate) fn count_live_tokens(&self, now: i64) -> Result<(i64, i64), StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT count(*) FILTER (WHERE kind = 'session'), count(*) FILTER (WHERE kind = 'pat') FROM tokens
                 WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)",
            )
            .map_err(sql_err)?;
        Ok(first_row(&mut stmt, [now], |r| Ok((r.get(0)?, r.get(1)?)))?.unwrap_or((0, 0)))
    }
}
