//! `admin migrate-to`: every row of a SQLite database copied into an empty PostgreSQL
//! one, read in one SQLite snapshot and written in one PostgreSQL transaction (all or
//! nothing). Hashes, ids, versions, instants, the CSRF key and the signing keys are
//! kept, so every token (signed access tokens and refresh tokens included) and every
//! password keeps working on the new database.

use super::pg::{pg_err, Pg};
use super::{all_rows, sql_err, AuditEntry, Sqlite, StoreError};

/// What was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub users: usize,
    pub tokens: usize,
    pub audit: usize,
    pub keys: usize,
    pub refresh_families: usize,
    pub refresh_tokens: usize,
}

struct KeyRow {
    kid: String,
    public_key: String,
    secret_key: Vec<u8>,
    slot: Option<String>,
    created_at: i64,
    retired_at: Option<i64>,
    signed_until: i64,
}

struct FamilyRow {
    id: String,
    user_id: String,
    session_version: i64,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

struct RefreshRow {
    hash: Vec<u8>,
    family_id: String,
    created_at: i64,
    expires_at: i64,
    spent_at: Option<i64>,
}

struct UserRow {
    id: String,
    username: String,
    password_hash: String,
    session_version: i64,
    created_at: i64,
}

struct TokenRow {
    hash: Vec<u8>,
    id: String,
    kind: String,
    user_id: String,
    name: Option<String>,
    prefix: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    session_version: i64,
    revoked_at: Option<i64>,
}

struct AuditRow {
    at: i64,
    actor: String,
    action: String,
    target: String,
    detail: String,
}

pub(crate) struct Dump {
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    audit: Vec<AuditRow>,
    secrets: Vec<(String, Vec<u8>)>,
    keys: Vec<KeyRow>,
    families: Vec<FamilyRow>,
    refresh: Vec<RefreshRow>,
}

impl Sqlite {
    /// Every row, from one read transaction (a consistent snapshot even while `serve`
    /// writes).
    pub(crate) fn export(&self) -> Result<Dump, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(sql_err)?;
        let users = all_rows(
            &mut tx
                .prepare("SELECT id, username, password_hash, session_version, created_at FROM users ORDER BY created_at, id")
                .map_err(sql_err)?,
            [],
            |r| {
                Ok(UserRow {
                    id: r.get(0)?,
                    username: r.get(1)?,
                    password_hash: r.get(2)?,
                    session_version: r.get(3)?,
                    created_at: r.get(4)?,
                })
            },
        )?;
        let tokens = all_rows(
            &mut tx
                .prepare(
                    "SELECT token_hash, id, kind, user_id, name, prefix, created_at, expires_at,
                            last_used_at, session_version, revoked_at FROM tokens",
                )
                .map_err(sql_err)?,
            [],
            |r| {
                Ok(TokenRow {
                    hash: r.get(0)?,
                    id: r.get(1)?,
                    kind: r.get(2)?,
                    user_id: r.get(3)?,
                    name: r.get(4)?,
                    prefix: r.get(5)?,
                    created_at: r.get(6)?,
                    expires_at: r.get(7)?,
                    last_used_at: r.get(8)?,
                    session_version: r.get(9)?,
                    revoked_at: r.get(10)?,
                })
            },
        )?;
        let audit = all_rows(
            &mut tx
                .prepare("SELECT at, actor, action, target, detail FROM audit ORDER BY seq")
                .map_err(sql_err)?,
            [],
            |r| {
                Ok(AuditRow {
                    at: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    detail: r.get(4)?,
                })
            },
        )?;
        let secrets = all_rows(
            &mut tx
                .prepare("SELECT name, value FROM secrets")
                .map_err(sql_err)?,
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let keys = all_rows(
            &mut tx
                .prepare(
                    "SELECT kid, public_key, secret_key, slot, created_at, retired_at, signed_until
                     FROM signing_keys",
                )
                .map_err(sql_err)?,
            [],
            |r| {
                Ok(KeyRow {
                    kid: r.get(0)?,
                    public_key: r.get(1)?,
                    secret_key: r.get(2)?,
                    slot: r.get(3)?,
                    created_at: r.get(4)?,
                    retired_at: r.get(5)?,
                    signed_until: r.get(6)?,
                })
            },
        )?;
        let families = all_rows(
            &mut tx
                .prepare(
                    "SELECT id, user_id, session_version, created_at, expires_at, revoked_at
                     FROM refresh_families",
                )
                .map_err(sql_err)?,
            [],
            |r| {
                Ok(FamilyRow {
                    id: r.get(0)?,
                    user_id: r.get(1)?,
                    session_version: r.get(2)?,
                    created_at: r.get(3)?,
                    expires_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                })
            },
        )?;
        let refresh = all_rows(
            &mut tx
                .prepare(
                    "SELECT token_hash, family_id, created_at, expires_at, spent_at FROM refresh_tokens",
                )
                .map_err(sql_err)?,
            [],
            |r| {
                Ok(RefreshRow {
                    hash: r.get(0)?,
                    family_id: r.get(1)?,
                    created_at: r.get(2)?,
                    expires_at: r.get(3)?,
                    spent_at: r.get(4)?,
                })
            },
        )?;
        Ok(Dump {
            users,
            tokens,
            audit,
            secrets,
            keys,
            families,
            refresh,
        })
    }
}

impl Pg {
    /// Writes `dump` into this database in one transaction, refusing one that already
    /// holds users or tokens; the copy itself is audited last.
    pub(crate) fn import(
        &self,
        dump: &Dump,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Copied, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(pg_err)?;
        // Replicas may be running on an empty database: keep them out until the copy
        // is whole, so none mints a key or a user half-way.
        tx.batch_execute(
            "LOCK TABLE users, tokens, audit, secrets, signing_keys, refresh_families, refresh_tokens
             IN EXCLUSIVE MODE",
        )
            .map_err(pg_err)?;
        let present: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM tokens)
                    + (SELECT count(*) FROM refresh_families)",
                &[],
            )
            .and_then(|r| r.try_get(0))
            .map_err(pg_err)?;
        if present > 0 {
            return Err(StoreError::Other(
                "the PostgreSQL database already holds users or tokens; migrate into an empty database".into(),
            ));
        }
        let insert_user = tx
            .prepare("INSERT INTO users (id, username, password_hash, session_version, created_at) VALUES ($1, $2, $3, $4, $5)")
            .map_err(pg_err)?;
        for u in &dump.users {
            tx.execute(
                &insert_user,
                &[
                    &u.id,
                    &u.username,
                    &u.password_hash,
                    &u.session_version,
                    &u.created_at,
                ],
            )
            .map_err(pg_err)?;
        }
        let insert_token = tx
            .prepare(
                "INSERT INTO tokens (token_hash, id, kind, user_id, name, prefix, created_at, expires_at,
                                     last_used_at, session_version, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .map_err(pg_err)?;
        for t in &dump.tokens {
            tx.execute(
                &insert_token,
                &[
                    &t.hash,
                    &t.id,
                    &t.kind,
                    &t.user_id,
                    &t.name,
                    &t.prefix,
                    &t.created_at,
                    &t.expires_at,
                    &t.last_used_at,
                    &t.session_version,
                    &t.revoked_at,
                ],
            )
            .map_err(pg_err)?;
        }
        let insert_audit = tx
            .prepare(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
            )
            .map_err(pg_err)?;
        for a in &dump.audit {
            tx.execute(
                &insert_audit,
                &[&a.at, &a.actor, &a.action, &a.target, &a.detail],
            )
            .map_err(pg_err)?;
        }
        // The CSRF key too, so forms signed before the move still verify.
        for (name, value) in &dump.secrets {
            tx.execute(
                "INSERT INTO secrets (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[name, value],
            )
            .map_err(pg_err)?;
        }
        // The signing keys, so access tokens signed before the move still verify. A
        // replica already started on this empty database made a key of its own: no
        // token it signed can name a user (there are none), so the copied keys replace
        // it (and its `extend_key_use` fails, so it picks up the copied active key).
        tx.execute("DELETE FROM signing_keys", &[])
            .map_err(pg_err)?;
        let insert_key = tx
            .prepare(
                "INSERT INTO signing_keys (kid, public_key, secret_key, slot, created_at, retired_at, signed_until)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .map_err(pg_err)?;
        for k in &dump.keys {
            tx.execute(
                &insert_key,
                &[
                    &k.kid,
                    &k.public_key,
                    &k.secret_key,
                    &k.slot,
                    &k.created_at,
                    &k.retired_at,
                    &k.signed_until,
                ],
            )
            .map_err(pg_err)?;
        }
        let insert_family = tx
            .prepare(
                "INSERT INTO refresh_families (id, user_id, session_version, created_at, expires_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .map_err(pg_err)?;
        for f in &dump.families {
            tx.execute(
                &insert_family,
                &[
                    &f.id,
                    &f.user_id,
                    &f.session_version,
                    &f.created_at,
                    &f.expires_at,
                    &f.revoked_at,
                ],
            )
            .map_err(pg_err)?;
        }
        let insert_refresh = tx
            .prepare(
                "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, spent_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .map_err(pg_err)?;
        for t in &dump.refresh {
            tx.execute(
                &insert_refresh,
                &[
                    &t.hash,
                    &t.family_id,
                    &t.created_at,
                    &t.expires_at,
                    &t.spent_at,
                ],
            )
            .map_err(pg_err)?;
        }
        tx.execute(
            &insert_audit,
            &[
                &now,
                &entry.actor,
                &entry.action,
                &entry.target,
                &entry.detail,
            ],
        )
        .map_err(pg_err)?;
        tx.commit().map_err(pg_err)?;
        Ok(Copied {
            users: dump.users.len(),
            tokens: dump.tokens.len(),
            audit: dump.audit.len(),
            keys: dump.keys.len(),
            refresh_families: dump.families.len(),
            refresh_tokens: dump.refresh.len(),
        })
    }
}
