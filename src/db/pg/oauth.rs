//! Signing keys and refresh families on PostgreSQL: the statements of `db/keys.rs` and
//! `db/refresh.rs` with `$n` parameters, the same guards and transaction boundaries.
//!
//! Races that SQLite settles by its single writer are settled here by the guards
//! themselves: the UNIQUE `slot` lets one of any number of concurrent first keys in
//! (`ON CONFLICT DO NOTHING` waits for the racing insert, then skips); a refresh spends
//! its token with `UPDATE … WHERE spent_at IS NULL … RETURNING`, which under READ
//! COMMITTED waits for a racing spender and re-checks the guard on the row it
//! committed, so exactly one wins and the others see a spent token and revoke the
//! family (itself guarded on `revoked_at IS NULL`: one detection, one audit entry).

use postgres::GenericClient;

use super::ops::{first, get, record};
use super::{pg_err, Pg};
use crate::auth::token::TokenHash;
use crate::db::keys::{ActiveKey, NewKey, PublicKeyInfo};
use crate::db::refresh::{Family, NewRefresh, Parent, Rotation, FAMILY_ID_PREFIX};
use crate::db::{AuditEntry, StoreError};

const INSERT_ACTIVE: &str =
    "INSERT INTO signing_keys (kid, public_key, secret_key, slot, created_at, signed_until)
     VALUES ($1, $2, $3, 'active', $4, $4)
     ON CONFLICT DO NOTHING";

const DROP_RETIRED: &str = "DELETE FROM signing_keys WHERE slot IS NULL AND signed_until <= $1";

impl Pg {
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
        let row = self.one(
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
        let stmt = conn.prepared(
            "UPDATE signing_keys SET signed_until = $2
             WHERE kid = $1 AND slot = 'active' AND signed_until < $2",
        )?;
        if conn.execute(&stmt, &[&kid, &until]).map_err(pg_err)? == 1 {
            return Ok(true);
        }
        // Nothing written: either already far enough (fine) or no longer active.
        let stmt = conn.prepared(
            "SELECT 1 FROM signing_keys WHERE kid = $1 AND slot = 'active' AND signed_until >= $2",
        )?;
        Ok(!conn
            .query(&stmt, &[&kid, &until])
            .map_err(pg_err)?
            .is_empty())
    }

    pub(crate) fn public_key(&self, kid: &str) -> Result<Option<String>, StoreError> {
        let row = self.one(
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
            // A racing rotation put its own key in first.
            return Err(StoreError::Conflict);
        }
        tx.execute(DROP_RETIRED, &[&now]).map_err(pg_err)?;
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
            .execute(DROP_RETIRED, &[&now])
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
        let row = first(
            &mut tx,
            "INSERT INTO refresh_families (id, user_id, session_version, created_at, expires_at)
             SELECT $1, u.id, u.session_version, $3::bigint, $3::bigint + $4::bigint
             FROM users u WHERE u.id = $2
             RETURNING session_version, expires_at, (SELECT username FROM users WHERE id = $2)",
            &[&family_id, &user_id, &now, &lifetime_ms],
        )?
        .ok_or(StoreError::NotFound)?;
        let (version, family_expires, username): (i64, i64, String) =
            (get(&row, 0)?, get(&row, 1)?, get(&row, 2)?);
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
        // The guard is the decision: only one caller can move spent_at off NULL.
        let spent: Option<String> = first(
            &mut tx,
            "UPDATE refresh_tokens SET spent_at = $2
             WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > $2
               AND family_id IN (
                   SELECT f.id FROM refresh_families f JOIN users u ON u.id = f.user_id
                   WHERE f.revoked_at IS NULL AND f.session_version >= u.session_version)
             RETURNING family_id",
            &[&&old[..], &now],
        )?
        .map(|r| get(&r, 0))
        .transpose()?;
        let outcome = match spent {
            Some(family_id) => {
                let row = first(
                    &mut tx,
                    "SELECT f.user_id, u.username, u.session_version, f.expires_at
                     FROM refresh_families f JOIN users u ON u.id = f.user_id WHERE f.id = $1",
                    &[&family_id],
                )?
                .ok_or(StoreError::NotFound)?;
                let family_expires: i64 = get(&row, 3)?;
                let token_expires_at = insert_refresh(&mut tx, &family_id, next, family_expires)?;
                Rotation::Rotated(Family {
                    id: family_id,
                    user_id: get(&row, 0)?,
                    username: get(&row, 1)?,
                    session_version: get(&row, 2)?,
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
                        if revoke_family_in(&mut tx, &family_id, now)? == 1 {
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
        let row = if sid.starts_with(FAMILY_ID_PREFIX) {
            self.one(
                "SELECT 'refresh', f.revoked_at, u.username, u.session_version
                 FROM refresh_families f JOIN users u ON u.id = f.user_id
                 WHERE f.id = $1 AND f.user_id = $2",
                &[&sid, &sub],
            )?
        } else {
            self.one(
                "SELECT t.kind, t.revoked_at, u.username, u.session_version
                 FROM tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.id = $1 AND t.user_id = $2",
                &[&sid, &sub],
            )?
        };
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
                     LIMIT $2)",
                &[&cutoff, &batch],
            )
            .map_err(pg_err)?;
        let tokens = conn
            .execute(
                "DELETE FROM refresh_tokens WHERE token_hash IN (
                     SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
                &[&cutoff, &batch],
            )
            .map_err(pg_err)?;
        Ok(families.max(tokens) as usize)
    }
}

fn insert_refresh<C: GenericClient>(
    tx: &mut C,
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

fn revoke_family_in<C: GenericClient>(
    tx: &mut C,
    family_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    tx.execute(
        "UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[&family_id, &now],
    )
    .map_err(pg_err)
}
