//! PostgreSQL: new passwords and removal of users, signing keys, and refresh families,
//! statement for statement the SQLite ones in `users.rs`, `keys.rs` and `refresh.rs`,
//! with the same guards (the UNIQUE active slot, the guarded spend of a refresh token).

use super::ops::{first, get, record, user_from_row};
use super::{pg_err, Pg};
use crate::auth::token::TokenHash;
use crate::db::refresh::FAMILY_ID_PREFIX;
use crate::db::{
    ActiveKey, AuditEntry, Family, NewKey, NewRefresh, Parent, PublicKeyInfo, Rotation, StoreError,
    User,
};

const INSERT_ACTIVE: &str =
    "INSERT INTO signing_keys (kid, public_key, secret_key, slot, created_at, signed_until)
     VALUES ($1, $2, $3, 'active', $4, $4)
     ON CONFLICT DO NOTHING";

const LIVE_FAMILY: &str = "SELECT f.id FROM refresh_families f JOIN users u ON u.id = f.user_id
     WHERE f.revoked_at IS NULL AND f.session_version >= u.session_version";

impl Pg {
    pub(crate) fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        bump: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let version: i64 = match first(
            &mut tx,
            "UPDATE users SET password_hash = $2, session_version = session_version + $3
             WHERE username = $1 RETURNING session_version",
            &[&username, &password_hash, &i64::from(bump)],
        )? {
            Some(r) => get(&r, 0)?,
            None => return Err(StoreError::NotFound),
        };
        let detail = if bump {
            format!("session_version={version}")
        } else {
            "sessions kept".to_string()
        };
        record(
            &mut tx,
            now,
            &AuditEntry {
                detail,
                ..audit.clone()
            },
        )?;
        tx.commit().map_err(pg_err)?;
        Ok(version)
    }

    pub(crate) fn delete_user(
        &self,
        username: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let user = match first(
            &mut tx,
            "DELETE FROM users WHERE username = $1
             RETURNING id, username, session_version, created_at",
            &[&username],
        )? {
            Some(r) => user_from_row(&r)?,
            None => return Err(StoreError::NotFound),
        };
        record(
            &mut tx,
            now,
            &AuditEntry {
                detail: format!("id={}", user.id),
                ..audit.clone()
            },
        )?;
        tx.commit().map_err(pg_err)?;
        Ok(user)
    }

    pub(crate) fn insert_first_key(&self, key: &NewKey<'_>, now: i64) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute(
                INSERT_ACTIVE,
                &[&key.kid, &key.public_key, &key.secret_key, &now],
            )
            .map_err(pg_err)?;
        Ok(n == 1)
    }

    pub(crate) fn active_key(&self) -> Result<Option<ActiveKey>, StoreError> {
        let row = first(
            &mut **self.conn()?,
            "SELECT kid, secret_key, signed_until FROM signing_keys WHERE slot = 'active'",
            &[],
        )?;
        row.map(|r| {
            Ok(ActiveKey {
                kid: get(&r, 0)?,
                secret_key: get(&r, 1)?,
                signed_until: get(&r, 2)?,
            })
        })
        .transpose()
    }

    pub(crate) fn extend_key_use(&self, kid: &str, until: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let n = conn
            .execute(
                "UPDATE signing_keys SET signed_until = $2
                 WHERE kid = $1 AND slot = 'active' AND signed_until < $2",
                &[&kid, &until],
            )
            .map_err(pg_err)?;
        if n == 1 {
            return Ok(true);
        }
        // Nothing written: either already far enough (fine) or no longer active.
        Ok(first(
            &mut **conn,
            "SELECT 1 FROM signing_keys WHERE kid = $1 AND slot = 'active' AND signed_until >= $2",
            &[&kid, &until],
        )?
        .is_some())
    }

    pub(crate) fn public_key(&self, kid: &str) -> Result<Option<String>, StoreError> {
        let row = first(
            &mut **self.conn()?,
            "SELECT public_key FROM signing_keys WHERE kid = $1",
            &[&kid],
        )?;
        row.map(|r| get(&r, 0)).transpose()
    }

    pub(crate) fn list_keys(&self, now: i64) -> Result<Vec<PublicKeyInfo>, StoreError> {
        self.conn()?
            .query(
                "SELECT kid, public_key, slot, created_at, signed_until FROM signing_keys
                 WHERE slot = 'active' OR signed_until > $1
                 ORDER BY CASE WHEN slot = 'active' THEN 0 ELSE 1 END, created_at DESC, kid",
                &[&now],
            )
            .map_err(pg_err)?
            .iter()
            .map(|r| {
                Ok(PublicKeyInfo {
                    kid: get(r, 0)?,
                    public_key: get(r, 1)?,
                    active: get::<Option<String>>(r, 2)?.is_some(),
                    created_at: get(r, 3)?,
                    signed_until: get(r, 4)?,
                })
            })
            .collect()
    }

    pub(crate) fn rotate_key(
        &self,
        key: &NewKey<'_>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let retired: Option<String> = first(
            &mut tx,
            "UPDATE signing_keys SET slot = NULL, retired_at = $1 WHERE slot = 'active' RETURNING kid",
            &[&now],
        )?
        .map(|r| get(&r, 0))
        .transpose()?;
        let n = tx
            .execute(
                INSERT_ACTIVE,
                &[&key.kid, &key.public_key, &key.secret_key, &now],
            )
            .map_err(pg_err)?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        tx.execute(
            "DELETE FROM signing_keys WHERE slot IS NULL AND signed_until <= $1",
            &[&now],
        )
        .map_err(pg_err)?;
        record(
            &mut tx,
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
        tx.commit().map_err(pg_err)
    }

    pub(crate) fn drop_retired_keys(&self, now: i64) -> Result<usize, StoreError> {
        let n = self
            .conn()?
            .execute(
                "DELETE FROM signing_keys WHERE slot IS NULL AND signed_until <= $1",
                &[&now],
            )
            .map_err(pg_err)?;
        Ok(n as usize)
    }

    pub(crate) fn start_refresh_family(
        &self,
        family_id: &str,
        user_id: &str,
        first_token: &NewRefresh<'_>,
        lifetime_ms: i64,
    ) -> Result<Family, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let now = first_token.now;
        let (version, family_expires): (i64, i64) = match first(
            &mut tx,
            "INSERT INTO refresh_families (id, user_id, session_version, created_at, expires_at)
             SELECT $1, id, session_version, $3::bigint, $3::bigint + $4::bigint FROM users WHERE id = $2
             RETURNING session_version, expires_at",
            &[&family_id, &user_id, &now, &lifetime_ms],
        )? {
            Some(r) => (get(&r, 0)?, get(&r, 1)?),
            None => return Err(StoreError::NotFound),
        };
        let username: String = match first(
            &mut tx,
            "SELECT username FROM users WHERE id = $1",
            &[&user_id],
        )? {
            Some(r) => get(&r, 0)?,
            None => return Err(StoreError::NotFound),
        };
        let token_expires_at = insert_refresh(&mut tx, family_id, first_token, family_expires)?;
        tx.commit().map_err(pg_err)?;
        Ok(Family {
            id: family_id.to_string(),
            user_id: user_id.to_string(),
            username,
            session_version: version,
            token_expires_at,
        })
    }

    pub(crate) fn rotate_refresh(
        &self,
        old: &TokenHash,
        next: &NewRefresh<'_>,
        reuse_audit: &dyn Fn(&str) -> AuditEntry,
    ) -> Result<Rotation, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let now = next.now;
        // The guard is the decision: only one caller can move spent_at off NULL (a
        // racing one waits for the row, then finds it spent).
        let spent: Option<String> = first(
            &mut tx,
            &format!(
                "UPDATE refresh_tokens SET spent_at = $2
                 WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > $2
                   AND family_id IN ({LIVE_FAMILY})
                 RETURNING family_id"
            ),
            &[&&old[..], &now],
        )?
        .map(|r| get(&r, 0))
        .transpose()?;
        let outcome = match spent {
            Some(family_id) => {
                let r = first(
                    &mut tx,
                    "SELECT f.user_id, u.username, u.session_version, f.expires_at
                     FROM refresh_families f JOIN users u ON u.id = f.user_id WHERE f.id = $1",
                    &[&family_id],
                )?
                .ok_or(StoreError::NotFound)?;
                let (user_id, username, version, family_expires): (String, String, i64, i64) =
                    (get(&r, 0)?, get(&r, 1)?, get(&r, 2)?, get(&r, 3)?);
                let token_expires_at = insert_refresh(&mut tx, &family_id, next, family_expires)?;
                Rotation::Rotated(Family {
                    id: family_id,
                    user_id,
                    username,
                    session_version: version,
                    token_expires_at,
                })
            }
            None => {
                let found = first(
                    &mut tx,
                    "SELECT t.family_id, t.spent_at, u.username
                     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
                          JOIN users u ON u.id = f.user_id
                     WHERE t.token_hash = $1",
                    &[&&old[..]],
                )?;
                match found {
                    Some(r) if get::<Option<i64>>(&r, 1)?.is_some() => {
                        let family_id: String = get(&r, 0)?;
                        let username: String = get(&r, 2)?;
                        let n = revoke_family_in(&mut tx, &family_id, now)?;
                        if n == 1 {
                            record(
                                &mut tx,
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
        tx.commit().map_err(pg_err)?;
        Ok(outcome)
    }

    pub(crate) fn revoke_refresh_family(
        &self,
        hash: &TokenHash,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<Option<bool>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        let family: Option<String> = first(
            &mut tx,
            "SELECT family_id FROM refresh_tokens WHERE token_hash = $1",
            &[&&hash[..]],
        )?
        .map(|r| get(&r, 0))
        .transpose()?;
        let outcome = match family {
            None => None,
            Some(id) => {
                let n = revoke_family_in(&mut tx, &id, now)?;
                if let (1, Some(entry)) = (n, audit) {
                    record(
                        &mut tx,
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
        tx.commit().map_err(pg_err)?;
        Ok(outcome)
    }

    pub(crate) fn access_parent(&self, sid: &str, sub: &str) -> Result<Option<Parent>, StoreError> {
        let sql = if sid.starts_with(FAMILY_ID_PREFIX) {
            "SELECT 'refresh'::text, f.revoked_at, u.username, u.session_version
             FROM refresh_families f JOIN users u ON u.id = f.user_id
             WHERE f.id = $1 AND f.user_id = $2"
        } else {
            "SELECT t.kind, t.revoked_at, u.username, u.session_version
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = $1 AND t.user_id = $2"
        };
        let row = self.one(sql, &[&sid, &sub])?;
        row.map(|r| {
            Ok(Parent {
                kind: get(&r, 0)?,
                revoked: get::<Option<i64>>(&r, 1)?.is_some(),
                username: get(&r, 2)?,
                user_version: get(&r, 3)?,
            })
        })
        .transpose()
    }

    pub(crate) fn revoke_parent(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        let sql = if sid.starts_with(FAMILY_ID_PREFIX) {
            "UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"
        } else {
            "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND kind = 'session' AND revoked_at IS NULL"
        };
        let n = self.conn()?.execute(sql, &[&sid, &now]).map_err(pg_err)?;
        Ok(n == 1)
    }

    pub(crate) fn purge_refresh(&self, cutoff: i64, batch: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let families = conn
            .execute(
                "DELETE FROM refresh_families WHERE id IN (
                     SELECT id FROM refresh_families WHERE expires_at < $1 OR revoked_at < $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&cutoff, &batch],
            )
            .map_err(pg_err)?;
        let tokens = conn
            .execute(
                "DELETE FROM refresh_tokens WHERE token_hash IN (
                     SELECT token_hash FROM refresh_tokens WHERE expires_at < $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&cutoff, &batch],
            )
            .map_err(pg_err)?;
        Ok(families.max(tokens) as usize)
    }
}

fn insert_refresh(
    tx: &mut postgres::Transaction<'_>,
    family_id: &str,
    t: &NewRefresh<'_>,
    family_expires: i64,
) -> Result<i64, StoreError> {
    let expires_at = (t.now + t.window_ms).min(family_expires);
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        &[&&t.hash[..], &family_id, &t.now, &expires_at],
    )
    .map_err(pg_err)?;
    Ok(expires_at)
}

fn revoke_family_in(
    tx: &mut postgres::Transaction<'_>,
    family_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    tx.execute(
        "UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[&family_id, &now],
    )
    .map_err(pg_err)
}
