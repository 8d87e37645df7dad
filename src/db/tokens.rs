//! Sessions and personal access tokens, keyed by the SHA-256 of the token.
//!
//! The hot path is `lookup` (one indexed read joined to the user). Writes that race are
//! guarded UPDATEs whose WHERE clause is the decision: sliding never revives an expired
//! session and never extends twice; renewing is a compare-and-swap on the threshold.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::audit::{record, AuditEntry};
use super::{all_rows, first_row, sql_err, Store, StoreError};
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

impl Store {
    /// Stores a token under the user's current session_version (read in the same
    /// statement, so a concurrent break-glass bump cannot be missed). `NotFound` if the
    /// user does not exist. The audit entry, if any, is written in the same transaction.
    pub fn insert_token(
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
    pub fn lookup_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
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
    pub fn slide_session(
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
    pub fn token_expiry(&self, hash: &TokenHash) -> Result<Option<Option<i64>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT expires_at FROM tokens WHERE token_hash = ?1")
            .map_err(sql_err)?;
        first_row(&mut stmt, [&hash[..]], |r| r.get(0))
    }

    /// Records that a PAT was used, at most once per `every_ms`.
    pub fn touch_token(
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
    pub fn renew_pat(
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

    /// Revokes the token stored under `hash`.
    pub fn revoke_token(
        &self,
        hash: &TokenHash,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let state: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT id, revoked_at FROM tokens WHERE token_hash = ?1",
                [&hash[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql_err)?;
        let outcome = match state {
            None => RevokeOutcome::NotFound,
            Some((_, Some(_))) => RevokeOutcome::AlreadyRevoked,
            Some((id, None)) => {
                tx.execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL",
                    params![&hash[..], now],
                )
                .map_err(sql_err)?;
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
        };
        tx.commit().map_err(sql_err)?;
        Ok(outcome)
    }

    /// Revokes one of the user's own live PATs by id; false if there is no such live PAT.
    pub fn revoke_pat_by_id(
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
    pub fn list_pats(&self, user_id: &str, now: i64) -> Result<Vec<PatSummary>, StoreError> {
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
    pub fn purge_tokens(&self, cutoff: i64, batch: i64) -> Result<usize, StoreError> {
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
    pub fn seed_sessions(
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
    pub fn count_live_tokens(&self, now: i64) -> Result<(i64, i64), StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT coalesce(sum(kind = 'session'), 0), coalesce(sum(kind = 'pat'), 0) FROM tokens
                 WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)",
            )
            .map_err(sql_err)?;
        Ok(first_row(&mut stmt, [now], |r| Ok((r.get(0)?, r.get(1)?)))?.unwrap_or((0, 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::store;
    use super::*;
    use crate::auth::token::hash;

    const DAY: i64 = 86_400_000;

    fn audit() -> AuditEntry {
        AuditEntry {
            actor: "cli:test".into(),
            action: "test",
            target: String::new(),
            detail: String::new(),
        }
    }

    fn with_token(s: &Store, kind: Kind, secret: &str, expires_at: Option<i64>) -> TokenHash {
        if s.user_by_username("alice").unwrap().is_none() {
            s.create_user("u1", "alice", "phc", 0, &audit()).unwrap();
        }
        let h = hash(secret);
        let id = format!("tok_{secret}");
        s.insert_token(
            &NewToken {
                hash: &h,
                id: &id,
                kind,
                user_id: "u1",
                name: Some("n"),
                prefix: "apt_12345678",
                created_at: 0,
                expires_at,
            },
            None,
        )
        .unwrap();
        h
    }

    #[test]
    fn expired_session_is_not_revived() {
        let (s, _d) = store();
        let h = with_token(&s, Kind::Session, "s1", Some(1_000));
        assert_eq!(s.slide_session(&h, 1_000, 5_000, 1).unwrap(), None);
        assert_eq!(s.slide_session(&h, 2_000, 5_000, 1).unwrap(), None);
        assert_eq!(s.token_expiry(&h).unwrap(), Some(Some(1_000)));
    }

    #[test]
    fn racing_slides_extend_once() {
        let (s, _d) = store();
        let h = with_token(&s, Kind::Session, "s1", Some(10_000));
        assert_eq!(s.slide_session(&h, 500, 20_000, 1).unwrap(), Some(20_000));
        assert_eq!(s.slide_session(&h, 500, 20_000, 1).unwrap(), None);
        // Never moves a session backwards either.
        assert_eq!(s.slide_session(&h, 600, 15_000, 1).unwrap(), None);
        assert_eq!(s.token_expiry(&h).unwrap(), Some(Some(20_000)));
    }

    #[test]
    fn requests_racing_on_one_session_write_once_per_slack() {
        let (s, _d) = store();
        let h = with_token(&s, Kind::Session, "s1", Some(10_000));
        // Two requests a few ms apart both read 10_000 and want now + window.
        assert_eq!(s.slide_session(&h, 500, 20_000, 100).unwrap(), Some(20_000));
        assert_eq!(s.slide_session(&h, 505, 20_005, 100).unwrap(), None);
        assert_eq!(s.slide_session(&h, 600, 20_100, 100).unwrap(), Some(20_100));
    }

    #[test]
    fn revoked_session_does_not_slide_and_unknown_is_a_no_op() {
        let (s, _d) = store();
        let h = with_token(&s, Kind::Session, "s1", Some(10_000));
        assert_eq!(
            s.revoke_token(&h, 100, None).unwrap(),
            RevokeOutcome::Revoked
        );
        assert_eq!(
            s.revoke_token(&h, 101, None).unwrap(),
            RevokeOutcome::AlreadyRevoked
        );
        assert_eq!(s.slide_session(&h, 200, 20_000, 1).unwrap(), None);
        assert_eq!(
            s.slide_session(&hash("nope"), 200, 20_000, 1).unwrap(),
            None
        );
        assert_eq!(
            s.revoke_token(&hash("nope"), 200, None).unwrap(),
            RevokeOutcome::NotFound
        );
    }

    #[test]
    fn renew_extends_only_inside_the_threshold() {
        let (s, _d) = store();
        let now = 1_000 * DAY;
        let far = with_token(&s, Kind::Pat, "p1", Some(now + 30 * DAY));
        let due = with_token(&s, Kind::Pat, "p2", Some(now + 7 * DAY));
        let never = with_token(&s, Kind::Pat, "p3", None);
        let dead = with_token(&s, Kind::Pat, "p4", Some(now));
        assert_eq!(s.renew_pat(&far, now, 90 * DAY, 7 * DAY).unwrap(), None);
        assert_eq!(
            s.renew_pat(&due, now, 90 * DAY, 7 * DAY).unwrap(),
            Some(now + 90 * DAY)
        );
        assert_eq!(s.renew_pat(&never, now, 90 * DAY, 7 * DAY).unwrap(), None);
        assert_eq!(s.renew_pat(&dead, now, 90 * DAY, 7 * DAY).unwrap(), None);
        assert_eq!(s.token_expiry(&dead).unwrap(), Some(Some(now)));
    }

    #[test]
    fn concurrent_renews_extend_once() {
        let (s, _d) = store();
        let now = 1_000 * DAY;
        let h = with_token(&s, Kind::Pat, "p1", Some(now + DAY));
        let results: Vec<Option<i64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8i64)
                .map(|i| {
                    let s = s.clone();
                    scope.spawn(move || s.renew_pat(&h, now + i, 90 * DAY, 7 * DAY).unwrap())
                })
                .collect();
            handles.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let winners: Vec<i64> = results.iter().flatten().copied().collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert_eq!(s.token_expiry(&h).unwrap(), Some(Some(winners[0])));
    }

    #[test]
    fn pat_use_is_recorded_at_most_once_a_minute() {
        let (s, _d) = store();
        let h = with_token(&s, Kind::Pat, "p1", None);
        assert!(s.touch_token(&h, 1_000, 60_000).unwrap());
        assert!(!s.touch_token(&h, 30_000, 60_000).unwrap());
        assert!(s.touch_token(&h, 61_000, 60_000).unwrap());
    }

    #[test]
    fn purge_deletes_only_rows_dead_before_the_cutoff() {
        let (s, _d) = store();
        let old = with_token(&s, Kind::Session, "old", Some(1_000));
        let recent = with_token(&s, Kind::Session, "recent", Some(50_000));
        let live = with_token(&s, Kind::Pat, "live", None);
        let revoked = with_token(&s, Kind::Pat, "rev", None);
        s.revoke_token(&revoked, 2_000, None).unwrap();
        assert_eq!(s.purge_tokens(10_000, 1).unwrap(), 1);
        assert_eq!(s.purge_tokens(10_000, 100).unwrap(), 1);
        assert_eq!(s.purge_tokens(10_000, 100).unwrap(), 0);
        assert!(s.lookup_token(&old).unwrap().is_none());
        assert!(s.lookup_token(&revoked).unwrap().is_none());
        assert!(s.lookup_token(&recent).unwrap().is_some());
        assert!(s.lookup_token(&live).unwrap().is_some());
    }

    /// UPDATE ... RETURNING must be stepped to completion, or SQLite never checkpoints
    /// and the WAL grows without bound (82 MB after 20k un-stepped calls).
    #[test]
    fn wal_stays_small_after_many_sliding_writes() {
        let (s, dir) = store();
        let h = with_token(&s, Kind::Session, "s1", Some(10_000));
        let mut now = 0;
        for _ in 0..20_000 {
            now += 1_000;
            let written = s.slide_session(&h, now, now + 10_000, 1).unwrap();
            assert_eq!(written, Some(now + 10_000));
            // The read path between writes, as requests do.
            assert!(s.lookup_token(&h).unwrap().is_some());
        }
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(wal < 8 * 1024 * 1024, "WAL grew to {wal} bytes");
    }
}
