//! The domain operations on PostgreSQL: the SQLite statements of `users.rs`,
//! `tokens.rs` and `audit.rs` with `$n` parameters, the same guards, and the same
//! transaction boundaries. Under READ COMMITTED a guarded `UPDATE … RETURNING` that
//! waits for a racing writer re-checks its WHERE on the new row, so the guard still
//! decides: one of two racing renews, slides or revokes matches.

use postgres::types::ToSql;
use postgres::{GenericClient, Row};

use super::{pg_err, Pg};
use crate::auth::token::{Kind, TokenHash};
use crate::db::{
    AuditEntry, AuditRecord, NewToken, PatSummary, RevokeOutcome, StoreError, TokenRecord, User,
};

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The first row of a statement, if any (the statements here match one key).
pub(super) fn first<C: GenericClient>(
    c: &mut C,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    Ok(c.query(sql, params).map_err(pg_err)?.into_iter().next())
}

impl Pg {
    /// The first row of one statement, prepared once per connection.
    pub(super) fn one(
        &self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let mut conn = self.conn()?;
        let stmt = conn.prepared(sql)?;
        Ok(conn
            .query(&stmt, params)
            .map_err(pg_err)?
            .into_iter()
            .next())
    }
}

pub(super) fn get<'a, T: postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(pg_err)
}

pub(super) fn record<C: GenericClient>(
    c: &mut C,
    now: i64,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        &[
            &now,
            &entry.actor,
            &entry.action,
            &entry.target,
            &entry.detail,
        ],
    )
    .map(|_| ())
    .map_err(pg_err)
}

pub(super) fn user_from_row(r: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: get(r, 0)?,
        username: get(r, 1)?,
        session_version: get(r, 2)?,
        created_at: get(r, 3)?,
    })
}

impl Pg {
    pub(crate) fn create_user(
        &self,
        id: &str,
        username: &str,
        password_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        tx.execute(
            "INSERT INTO users (id, username, password_hash, session_version, created_at) VALUES ($1, $2, $3, 1, $4)",
            &[&id, &username, &password_hash, &now],
        )
        .map_err(pg_err)?;
        record(&mut tx, now, audit)?;
        tx.commit().map_err(pg_err)?;
        Ok(User {
            id: id.to_string(),
            username: username.to_string(),
            session_version: 1,
            created_at: now,
        })
    }

    pub(crate) fn user_for_login(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        let row = self.one(
            "SELECT id, username, session_version, created_at, password_hash FROM users WHERE username = $1",
            &[&username],
        )?;
        row.map(|r| Ok((user_from_row(&r)?, get(&r, 4)?)))
            .transpose()
    }

    pub(crate) fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.conn()?
            .query(
                "SELECT id, username, session_version, created_at FROM users ORDER BY created_at, username",
                &[],
            )
            .map_err(pg_err)?
            .iter()
            .map(user_from_row)
            .collect()
    }

    pub(crate) fn count_users(&self) -> Result<i64, StoreError> {
        let row = self.one("SELECT count(*) FROM users", &[])?;
        row.map_or(Ok(0), |r| get(&r, 0))
    }

    pub(crate) fn bump_session_version(
        &self,
        user_id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let version: i64 = match first(
            &mut tx,
            "UPDATE users SET session_version = session_version + 1 WHERE id = $1 RETURNING session_version",
            &[&user_id],
        )? {
            Some(r) => get(&r, 0)?,
            None => return Err(StoreError::NotFound),
        };
        record(
            &mut tx,
            now,
            &AuditEntry {
                detail: format!("session_version={version}"),
                ..audit.clone()
            },
        )?;
        tx.commit().map_err(pg_err)?;
        Ok(version)
    }

    pub(crate) fn secret(&self, name: &str, fresh: &[u8; 32]) -> Result<Vec<u8>, StoreError> {
        let mut conn = self.conn()?;
        conn.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &&fresh[..]],
        )
        .map_err(pg_err)?;
        let row = first(
            &mut **conn,
            "SELECT value FROM secrets WHERE name = $1",
            &[&name],
        )?;
        row.map(|r| get(&r, 0))
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    pub(crate) fn insert_token(
        &self,
        t: &NewToken<'_>,
        audit: Option<(&AuditEntry, i64)>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let inserted = tx
            .execute(
                "INSERT INTO tokens (token_hash, id, kind, user_id, name, prefix, created_at, expires_at, session_version)
                 SELECT $1, $2, $3, id, $5, $6, $7, $8, session_version FROM users WHERE id = $4",
                &[
                    &&t.hash[..],
                    &t.id,
                    &t.kind.as_str(),
                    &t.user_id,
                    &t.name,
                    &t.prefix,
                    &t.created_at,
                    &t.expires_at,
                ],
            )
            .map_err(pg_err)?;
        if inserted == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some((entry, now)) = audit {
            record(&mut tx, now, entry)?;
        }
        tx.commit().map_err(pg_err)
    }

    pub(crate) fn lookup_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let row = self.one(
            "SELECT t.token_hash, t.id, t.kind, t.user_id, u.username, t.created_at, t.expires_at,
                    t.last_used_at, t.revoked_at, t.session_version, u.session_version
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1",
            &[&&hash[..]],
        )?;
        row.map(|r| {
            let kind: String = get(&r, 2)?;
            Ok(TokenRecord {
                hash: get(&r, 0)?,
                id: get(&r, 1)?,
                // The CHECK constraint admits only these two words.
                kind: Kind::parse(&kind).unwrap_or(Kind::Session),
                user_id: get(&r, 3)?,
                username: get(&r, 4)?,
                created_at: get(&r, 5)?,
                expires_at: get(&r, 6)?,
                last_used_at: get(&r, 7)?,
                revoked_at: get(&r, 8)?,
                issued_version: get(&r, 9)?,
                user_version: get(&r, 10)?,
            })
        })
        .transpose()
    }

    pub(crate) fn slide_session(
        &self,
        hash: &TokenHash,
        now: i64,
        target: i64,
        min_gain: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = self.one(
            "UPDATE tokens SET expires_at = $1
             WHERE token_hash = $2 AND kind = 'session' AND revoked_at IS NULL
               AND expires_at > $3 AND expires_at <= $1::bigint - $4::bigint
             RETURNING expires_at",
            &[&target, &&hash[..], &now, &min_gain.max(1)],
        )?;
        row.map(|r| get(&r, 0)).transpose()
    }

    pub(crate) fn token_expiry(&self, hash: &TokenHash) -> Result<Option<Option<i64>>, StoreError> {
        let row = self.one(
            "SELECT expires_at FROM tokens WHERE token_hash = $1",
            &[&&hash[..]],
        )?;
        row.map(|r| get(&r, 0)).transpose()
    }

    pub(crate) fn touch_token(
        &self,
        hash: &TokenHash,
        now: i64,
        every_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let stmt = conn.prepared(
            "UPDATE tokens SET last_used_at = $2
             WHERE token_hash = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )?;
        let n = conn
            .execute(&stmt, &[&&hash[..], &now, &(now - every_ms)])
            .map_err(pg_err)?;
        Ok(n == 1)
    }

    pub(crate) fn renew_pat(
        &self,
        hash: &TokenHash,
        now: i64,
        lifetime_ms: i64,
        threshold_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = self.one(
            "UPDATE tokens SET expires_at = $2::bigint + $3::bigint
             WHERE token_hash = $1 AND kind = 'pat' AND revoked_at IS NULL
               AND expires_at IS NOT NULL AND expires_at > $2::bigint
               AND expires_at <= $2::bigint + $4::bigint
             RETURNING expires_at",
            &[&&hash[..], &now, &lifetime_ms, &threshold_ms],
        )?;
        row.map(|r| get(&r, 0)).transpose()
    }

    pub(crate) fn revoke_token(
        &self,
        hash: &TokenHash,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let revoked = first(
            &mut tx,
            "UPDATE tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL
             RETURNING id",
            &[&&hash[..], &now],
        )?;
        let outcome = match revoked {
            Some(r) => {
                if let Some(entry) = audit {
                    let id: String = get(&r, 0)?;
                    record(
                        &mut tx,
                        now,
                        &AuditEntry {
                            target: id,
                            ..entry.clone()
                        },
                    )?;
                }
                RevokeOutcome::Revoked
            }
            None => match first(
                &mut tx,
                "SELECT 1 FROM tokens WHERE token_hash = $1",
                &[&&hash[..]],
            )? {
                Some(_) => RevokeOutcome::AlreadyRevoked,
                None => RevokeOutcome::NotFound,
            },
        };
        tx.commit().map_err(pg_err)?;
        Ok(outcome)
    }

    pub(crate) fn revoke_pat_by_id(
        &self,
        user_id: &str,
        id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let n = tx
            .execute(
                "UPDATE tokens SET revoked_at = $3
                 WHERE id = $1 AND user_id = $2 AND kind = 'pat' AND revoked_at IS NULL
                   AND (expires_at IS NULL OR expires_at > $3)",
                &[&id, &user_id, &now],
            )
            .map_err(pg_err)?;
        if n == 1 {
            record(&mut tx, now, audit)?;
        }
        tx.commit().map_err(pg_err)?;
        Ok(n == 1)
    }

    pub(crate) fn list_pats(&self, user_id: &str, now: i64) -> Result<Vec<PatSummary>, StoreError> {
        self.conn()?
            .query(
                "SELECT t.id, coalesce(t.name, ''), t.prefix, t.created_at, t.expires_at, t.last_used_at
                 FROM tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.user_id = $1 AND t.kind = 'pat' AND t.revoked_at IS NULL
                   AND (t.expires_at IS NULL OR t.expires_at > $2)
                   AND t.session_version >= u.session_version
                 ORDER BY t.created_at DESC, t.id",
                &[&user_id, &now],
            )
            .map_err(pg_err)?
            .iter()
            .map(|r| {
                Ok(PatSummary {
                    id: get(r, 0)?,
                    name: get(r, 1)?,
                    prefix: get(r, 2)?,
                    created_at: get(r, 3)?,
                    expires_at: get(r, 4)?,
                    last_used_at: get(r, 5)?,
                })
            })
            .collect()
    }

    pub(crate) fn purge_tokens(&self, cutoff: i64, batch: i64) -> Result<usize, StoreError> {
        // SKIP LOCKED: replicas purging at once take disjoint batches instead of
        // queueing behind each other's row locks.
        let n = self
            .conn()?
            .execute(
                "DELETE FROM tokens WHERE token_hash IN (
                     SELECT token_hash FROM tokens WHERE revoked_at < $1 OR expires_at < $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&cutoff, &batch],
            )
            .map_err(pg_err)?;
        Ok(n as usize)
    }

    pub(crate) fn seed_sessions(
        &self,
        user_id: &str,
        count: u64,
        keep: u64,
        now: i64,
        expires_at: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let stmt = tx
            .prepare(
                "INSERT INTO tokens (token_hash, id, kind, user_id, prefix, created_at, expires_at, session_version)
                 SELECT $1, $2, 'session', id, $3, $4, $5, session_version FROM users WHERE id = $6",
            )
            .map_err(pg_err)?;
        let mut kept = Vec::new();
        for i in 0..count {
            let minted = crate::auth::token::mint(Kind::Session)
                .map_err(|e| StoreError::Other(e.to_string()))?;
            let id = crate::auth::token::random_id("tok_")
                .map_err(|e| StoreError::Other(e.to_string()))?;
            tx.execute(
                &stmt,
                &[
                    &&minted.hash[..],
                    &id,
                    &minted.display_prefix,
                    &now,
                    &expires_at,
                    &user_id,
                ],
            )
            .map_err(pg_err)?;
            if i < keep {
                kept.push(minted.token);
            }
        }
        tx.commit().map_err(pg_err)?;
        Ok(kept)
    }

    pub(crate) fn count_live_tokens(&self, now: i64) -> Result<(i64, i64), StoreError> {
        let row = self.one(
            "SELECT count(*) FILTER (WHERE kind = 'session'), count(*) FILTER (WHERE kind = 'pat') FROM tokens
             WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)",
            &[&now],
        )?;
        row.map_or(Ok((0, 0)), |r| Ok((get(&r, 0)?, get(&r, 1)?)))
    }

    pub(crate) fn reserve_login_attempt(
        &self,
        id: i64,
        keys: [&str; 2],
        limits: [i64; 2],
        now: i64,
        since: i64,
    ) -> Result<[Option<i64>; 2], StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        // Both keys locked for the transaction, in one order (by lock id) on every
        // replica so two attempts can never wait for each other.
        tx.query(
            "SELECT pg_advisory_xact_lock(h) FROM (
                 SELECT hashtextextended(k, 0) AS h FROM unnest(ARRAY[$1::text, $2::text]) AS k
                 ORDER BY 1) AS l",
            &[&keys[0], &keys[1]],
        )
        .map_err(pg_err)?;
        let marks = match first(
            &mut tx,
            "SELECT (SELECT at FROM login_attempts WHERE user_key = $1 AND at > $3 ORDER BY at DESC LIMIT 1 OFFSET $4),
                    (SELECT at FROM login_attempts WHERE addr_key = $2 AND at > $3 ORDER BY at DESC LIMIT 1 OFFSET $5)",
            &[
                &keys[0],
                &keys[1],
                &since,
                &(limits[0] - 1).max(0),
                &(limits[1] - 1).max(0),
            ],
        )? {
            Some(r) => [get(&r, 0)?, get(&r, 1)?],
            None => [None, None],
        };
        if marks == [None, None] {
            tx.execute(
                "INSERT INTO login_attempts (id, user_key, addr_key, at) VALUES ($1, $2, $3, $4)",
                &[&id, &keys[0], &keys[1], &now],
            )
            .map_err(pg_err)?;
        }
        tx.commit().map_err(pg_err)?;
        Ok(marks)
    }

    pub(crate) fn release_login_attempt(&self, id: i64) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM login_attempts WHERE id = $1", &[&id])
            .map(|_| ())
            .map_err(pg_err)
    }

    pub(crate) fn purge_login_attempts(&self, cutoff: i64) -> Result<usize, StoreError> {
        let n = self
            .conn()?
            .execute("DELETE FROM login_attempts WHERE at <= $1", &[&cutoff])
            .map_err(pg_err)?;
        Ok(n as usize)
    }

    pub(crate) fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.conn()?
            .query(
                "SELECT at, actor, action, target, detail FROM audit ORDER BY seq",
                &[],
            )
            .map_err(pg_err)?
            .iter()
            .map(|r| {
                Ok(AuditRecord {
                    at: get(r, 0)?,
                    actor: get(r, 1)?,
                    action: get(r, 2)?,
                    target: get(r, 3)?,
                    detail: get(r, 4)?,
                })
            })
            .collect()
    }
}
