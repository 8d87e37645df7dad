//! Refresh families and their rotating refresh tokens, and the parents (session, PAT or
//! family) that a signed access token names in its `sid`.
//!
//! Rotation is a compare-and-swap on "not yet spent": of any number of concurrent
//! refreshes with one token exactly one spends it; a token presented when already spent
//! revokes its whole family (theft detection), in the same transaction.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::audit::{record, AuditEntry};
use super::{first_row, sql_err, Sqlite, StoreError};
use crate::auth::token::TokenHash;

/// A live family and its user, after a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub id: String,
    pub user_id: String,
    pub username: String,
    /// The user's session_version (the family's own, which is not below it).
    pub session_version: i64,
    /// Expiry of the refresh token just issued.
    pub token_expires_at: i64,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// This call spent it; the new token is stored.
    Rotated(Family),
    /// Already spent: the family is revoked now (theft detection).
    Reused { family_id: String },
    /// Unknown, expired, or its family revoked, stale or gone.
    Refused,
}

/// The state of what a signed access token's `sid` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// `session`, `pat` or `refresh`.
    pub kind: String,
    pub revoked: bool,
    pub username: String,
    pub user_version: i64,
}

/// A refresh token about to be stored.
pub struct NewRefresh<'a> {
    pub hash: &'a TokenHash,
    pub now: i64,
    /// How long a refresh token lives from its issue (`--session-window`).
    pub window_ms: i64,
}

const LIVE_FAMILY: &str = "SELECT f.id FROM refresh_families f JOIN users u ON u.id = f.user_id
     WHERE f.revoked_at IS NULL AND f.session_version >= u.session_version";

impl Sqlite {
    /// Starts a family for the user with its first refresh token; the family lives
    /// `lifetime_ms` (`--session-lifetime`), each token `window_ms` within it. The
    /// family takes the user's session_version in the same statement.
    pub(crate) fn start_refresh_family(
        &self,
        family_id: &str,
        user_id: &str,
        first: &NewRefresh<'_>,
        lifetime_ms: i64,
    ) -> Result<Family, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let now = first.now;
        let family = {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO refresh_families (id, user_id, session_version, created_at, expires_at)
                     SELECT ?1, id, session_version, ?3, ?3 + ?4 FROM users WHERE id = ?2
                     RETURNING session_version, expires_at",
                )
                .map_err(sql_err)?;
            first_row(
                &mut stmt,
                params![family_id, user_id, now, lifetime_ms],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?
            .ok_or(StoreError::NotFound)?
        };
        let username: String = tx
            .query_row("SELECT username FROM users WHERE id = ?1", [user_id], |r| {
                r.get(0)
            })
            .map_err(sql_err)?;
        let token_expires_at = insert_refresh(&tx, family_id, first, family.1)?;
        tx.commit().map_err(sql_err)?;
        Ok(Family {
            id: family_id.to_string(),
            user_id: user_id.to_string(),
            username,
            session_version: family.0,
            token_expires_at,
        })
    }

    /// Spends the refresh token `old` and stores `next` in its family, if `old` is live
    /// and unspent and its family live (not revoked, not stale). A spent `old` revokes
    /// the family, audited with the entry `reuse_audit` makes of the owner's username
    /// (target: the family), in the same transaction.
    pub(crate) fn rotate_refresh(
        &self,
        old: &TokenHash,
        next: &NewRefresh<'_>,
        reuse_audit: &dyn Fn(&str) -> AuditEntry,
    ) -> Result<Rotation, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let now = next.now;
        // The guard is the decision: only one caller can move spent_at off NULL.
        let spent: Option<String> = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "UPDATE refresh_tokens SET spent_at = ?2
                     WHERE token_hash = ?1 AND spent_at IS NULL AND expires_at > ?2
                       AND family_id IN ({LIVE_FAMILY})
                     RETURNING family_id"
                ))
                .map_err(sql_err)?;
            first_row(&mut stmt, params![&old[..], now], |r| r.get(0))?
        };
        let outcome = match spent {
            Some(family_id) => {
                let (user_id, username, version, family_expires) = tx
                    .query_row(
                        "SELECT f.user_id, u.username, u.session_version, f.expires_at
                         FROM refresh_families f JOIN users u ON u.id = f.user_id WHERE f.id = ?1",
                        [&family_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .map_err(sql_err)?;
                let token_expires_at = insert_refresh(&tx, &family_id, next, family_expires)?;
                Rotation::Rotated(Family {
                    id: family_id,
                    user_id,
                    username,
                    session_version: version,
                    token_expires_at,
                })
            }
            None => {
                let found: Option<(String, Option<i64>, String)> = tx
                    .query_row(
                        "SELECT t.family_id, t.spent_at, u.username
                         FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
                              JOIN users u ON u.id = f.user_id
                         WHERE t.token_hash = ?1",
                        [&old[..]],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()
                    .map_err(sql_err)?;
                match found {
                    Some((family_id, Some(_), username)) => {
                        let n = revoke_family_in(&tx, &family_id, now)?;
                        if n == 1 {
                            record(
                                &tx,
                                now,
                                &AuditEntry {
                                    target: family_id.clone(),
                                    ..reuse_audit(&username)
                                },
                            )?;
                        }
                        Rotation::Reused { family_id }
                    }
                    _ => Rotation::Refused,
                }
            }
        };
        tx.commit().map_err(sql_err)?;
        Ok(outcome)
    }

    /// Revokes the family of the refresh token `hash` (RFC 7009, `admin revoke`).
    /// `None`: no such token; `Some(false)`: already revoked.
    pub(crate) fn revoke_refresh_family(
        &self,
        hash: &TokenHash,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<Option<bool>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let family: Option<String> = tx
            .query_row(
                "SELECT family_id FROM refresh_tokens WHERE token_hash = ?1",
                [&hash[..]],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        let outcome = match family {
            None => None,
            Some(id) => {
                let n = revoke_family_in(&tx, &id, now)?;
                if let (1, Some(entry)) = (n, audit) {
                    record(
                        &tx,
                        now,
                        &AuditEntry {
                            target: id,
                            ..entry.clone()
                        },
                    )?;
                }
                Some(n == 1)
            }
        };
        tx.commit().map_err(sql_err)?;
        Ok(outcome)
    }

    /// What an access token's `sid` names, if it belongs to user `sub`.
    pub(crate) fn access_parent(&self, sid: &str, sub: &str) -> Result<Option<Parent>, StoreError> {
        let conn = self.conn()?;
        let sql = if sid.starts_with(FAMILY_ID_PREFIX) {
            "SELECT 'refresh', f.revoked_at, u.username, u.session_version
             FROM refresh_families f JOIN users u ON u.id = f.user_id
             WHERE f.id = ?1 AND f.user_id = ?2"
        } else {
            "SELECT t.kind, t.revoked_at, u.username, u.session_version
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = ?1 AND t.user_id = ?2"
        };
        let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
        first_row(&mut stmt, params![sid, sub], |r| {
            Ok(Parent {
                kind: r.get(0)?,
                revoked: r.get::<_, Option<i64>>(1)?.is_some(),
                username: r.get(2)?,
                user_version: r.get(3)?,
            })
        })
    }

    /// Revokes the session or refresh family an access token came from (logout with
    /// an access token). True if this call revoked it.
    pub(crate) fn revoke_parent(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let sql = if sid.starts_with(FAMILY_ID_PREFIX) {
            "UPDATE refresh_families SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL"
        } else {
            "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND kind = 'session' AND revoked_at IS NULL"
        };
        let n = conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params![sid, now]))
            .map_err(sql_err)?;
        Ok(n == 1)
    }

    /// Deletes up to `batch` families that ended (expired or revoked) before `cutoff`,
    /// with their tokens. Spent tokens of live families are kept: they are how reuse is
    /// detected.
    pub(crate) fn purge_refresh(&self, cutoff: i64, batch: i64) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        let families = conn
            .prepare_cached(
                "DELETE FROM refresh_families WHERE id IN (
                     SELECT id FROM refresh_families WHERE expires_at < ?1 OR revoked_at < ?1
                     LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![cutoff, batch]))
            .map_err(sql_err)?;
        let tokens = conn
            .prepare_cached(
                "DELETE FROM refresh_tokens WHERE token_hash IN (
                     SELECT token_hash FROM refresh_tokens WHERE expires_at < ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![cutoff, batch]))
            .map_err(sql_err)?;
        Ok(families.max(tokens))
    }
}

/// Family ids start with this (session and PAT ids with `tok_`).
pub const FAMILY_ID_PREFIX: &str = "fam_";

fn insert_refresh(
    tx: &rusqlite::Transaction<'_>,
    family_id: &str,
    t: &NewRefresh<'_>,
    family_expires: i64,
) -> Result<i64, StoreError> {
    let expires_at = (t.now + t.window_ms).min(family_expires);
    tx.prepare_cached(
        "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![&t.hash[..], family_id, t.now, expires_at]))
    .map_err(sql_err)?;
    Ok(expires_at)
}

fn revoke_family_in(
    tx: &rusqlite::Transaction<'_>,
    family_id: &str,
    now: i64,
) -> Result<usize, StoreError> {
    tx.prepare_cached(
        "UPDATE refresh_families SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
    )
    .and_then(|mut s| s.execute(params![family_id, now]))
    .map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::super::testing::on_each_backend;
    use super::*;
    use crate::auth::token::hash;
    use crate::db::Store;

    const DAY: i64 = 86_400_000;

    fn reuse(username: &str) -> AuditEntry {
        AuditEntry {
            actor: format!("user:{username}"),
            ..audit()
        }
    }

    fn audit() -> AuditEntry {
        AuditEntry {
            actor: "system".into(),
            action: "refresh.reuse_detected",
            target: String::new(),
            detail: String::new(),
        }
    }

    fn with_family(s: &Store) -> TokenHash {
        let add = AuditEntry {
            action: "user.add",
            ..audit()
        };
        s.create_user("usr_1", "alice", "phc", 0, &add).unwrap();
        let h = hash("apr_first");
        let first = NewRefresh {
            hash: &h,
            now: 0,
            window_ms: DAY,
        };
        let f = s
            .start_refresh_family("fam_1", "usr_1", &first, 3 * DAY / 2)
            .unwrap();
        assert_eq!(f.token_expires_at, DAY);
        h
    }

    fn next(h: &TokenHash, now: i64) -> NewRefresh<'_> {
        NewRefresh {
            hash: h,
            now,
            window_ms: DAY,
        }
    }

    #[test]
    fn rotation_spends_once_and_never_outlives_the_family() {
        on_each_backend(|s| {
            let first = with_family(s);
            let second = hash("apr_second");
            match s
                .rotate_refresh(&first, &next(&second, DAY / 2), &reuse)
                .unwrap()
            {
                // Half a day in, a new token would live a day, but the family ends at 1.5 d.
                Rotation::Rotated(f) => assert_eq!(f.token_expires_at, 3 * DAY / 2),
                other => panic!("{other:?}"),
            }
            // An expired token is refused without touching the family.
            let third = hash("apr_third");
            assert_eq!(
                s.rotate_refresh(&second, &next(&third, 3 * DAY / 2), &reuse)
                    .unwrap(),
                Rotation::Refused
            );
            assert!(!s.access_parent("fam_1", "usr_1").unwrap().unwrap().revoked);
        });
    }

    #[test]
    fn a_spent_token_presented_again_revokes_the_family_once_audited() {
        on_each_backend(|s| {
            let first = with_family(s);
            let (second, third, fourth) = (hash("apr_2"), hash("apr_3"), hash("apr_4"));
            assert!(matches!(
                s.rotate_refresh(&first, &next(&second, 1), &reuse).unwrap(),
                Rotation::Rotated(_)
            ));
            let replayed = s.rotate_refresh(&first, &next(&third, 2), &reuse).unwrap();
            assert_eq!(
                replayed,
                Rotation::Reused {
                    family_id: "fam_1".into()
                }
            );
            // The thief's replay killed the legitimate holder's new token too.
            assert_eq!(
                s.rotate_refresh(&second, &next(&fourth, 3), &reuse)
                    .unwrap(),
                Rotation::Refused
            );
            assert!(s.access_parent("fam_1", "usr_1").unwrap().unwrap().revoked);
            let detections: Vec<_> = s
                .audit_log()
                .unwrap()
                .into_iter()
                .filter(|e| e.action == "refresh.reuse_detected")
                .collect();
            assert_eq!(detections.len(), 1);
            assert_eq!(detections[0].actor, "user:alice");
            assert_eq!(detections[0].target, "fam_1");
        });
    }

    #[test]
    fn break_glass_ends_families_issued_before_it() {
        on_each_backend(|s| {
            let first = with_family(s);
            s.bump_session_version("usr_1", 1, &audit()).unwrap();
            let second = hash("apr_2");
            assert_eq!(
                s.rotate_refresh(&first, &next(&second, 2), &reuse).unwrap(),
                Rotation::Refused
            );
        });
    }

    #[test]
    fn purge_drops_ended_families_and_keeps_live_ones() {
        on_each_backend(|s| {
            let first = with_family(s);
            let other = hash("apr_other");
            s.start_refresh_family("fam_2", "usr_1", &next(&other, 0), 10 * DAY)
                .unwrap();
            s.revoke_refresh_family(&first, 5, None).unwrap();
            assert_eq!(s.purge_refresh(6, 100).unwrap(), 1);
            assert!(s.access_parent("fam_1", "usr_1").unwrap().is_none());
            assert!(s.access_parent("fam_2", "usr_1").unwrap().is_some());
            let rotated = s
                .rotate_refresh(&other, &next(&hash("apr_3"), 7), &reuse)
                .unwrap();
            assert!(matches!(rotated, Rotation::Rotated(_)));
        });
    }

    #[test]
    fn eight_concurrent_rotations_of_one_token_spend_it_once_and_revoke_the_family() {
        on_each_backend(|s| {
            let first = with_family(s);
            let outcomes: Vec<Rotation> = {
                let barrier = std::sync::Barrier::new(8);
                std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..8)
                        .map(|i| {
                            let (s, barrier) = (&s, &barrier);
                            scope.spawn(move || {
                                let next_hash = hash(&format!("apr_next_{i}"));
                                barrier.wait();
                                s.rotate_refresh(&first, &next(&next_hash, 1), &reuse)
                                    .unwrap()
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                })
            };
            let won = outcomes
                .iter()
                .filter(|o| matches!(o, Rotation::Rotated(_)))
                .count();
            let reused = outcomes
                .iter()
                .filter(|o| matches!(o, Rotation::Reused { .. }))
                .count();
            assert_eq!((won, reused), (1, 7));
            assert!(s.access_parent("fam_1", "usr_1").unwrap().unwrap().revoked);
            let detections = s
                .audit_log()
                .unwrap()
                .into_iter()
                .filter(|e| e.action == "refresh.reuse_detected")
                .count();
            assert_eq!(detections, 1);
        });
    }
}
