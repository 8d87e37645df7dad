//! Users: creation, lookup by username, listing, the break-glass version bump, new
//! passwords and removal.

use rusqlite::{params, TransactionBehavior};

use super::audit::{record, AuditEntry};
use super::{all_rows, first_row, sql_err, Sqlite, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub session_version: i64,
    pub created_at: i64,
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        session_version: r.get(2)?,
        created_at: r.get(3)?,
    })
}

impl Sqlite {
    /// Adds a user; `Conflict` if the username is taken.
    pub(crate) fn create_user(
        &self,
        id: &str,
        username: &str,
        password_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        tx.execute(
            "INSERT INTO users (id, username, password_hash, session_version, created_at) VALUES (?1, ?2, ?3, 1, ?4)",
            params![id, username, password_hash, now],
        )
        .map_err(sql_err)?;
        record(&tx, now, audit)?;
        tx.commit().map_err(sql_err)?;
        Ok(User {
            id: id.to_string(),
            username: username.to_string(),
            session_version: 1,
            created_at: now,
        })
    }

    /// The user and their password hash (PHC string), for a login.
    pub(crate) fn user_for_login(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, username, session_version, created_at, password_hash FROM users WHERE username = ?1",
            )
            .map_err(sql_err)?;
        first_row(&mut stmt, [username], |r| {
            Ok((user_from_row(r)?, r.get(4)?))
        })
    }

    pub(crate) fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT id, username, session_version, created_at FROM users ORDER BY created_at, username")
            .map_err(sql_err)?;
        all_rows(&mut stmt, [], user_from_row)
    }

    pub(crate) fn count_users(&self) -> Result<i64, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT count(*) FROM users")
            .map_err(sql_err)?;
        Ok(first_row(&mut stmt, [], |r| r.get(0))?.unwrap_or(0))
    }

    /// Break-glass: every token issued before is rejected from now on. Returns the new
    /// version; `NotFound` for an unknown user id.
    pub(crate) fn bump_session_version(
        &self,
        user_id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let version = {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE users SET session_version = session_version + 1 WHERE id = ?1 RETURNING session_version",
                )
                .map_err(sql_err)?;
            first_row(&mut stmt, [user_id], |r| r.get::<_, i64>(0))?.ok_or(StoreError::NotFound)?
        };
        record(
            &tx,
            now,
            &AuditEntry {
                detail: format!("session_version={version}"),
                ..audit.clone()
            },
        )?;
        tx.commit().map_err(sql_err)?;
        Ok(version)
    }
}

impl Sqlite {
    /// Sets a new password hash for `username`; with `bump`, also bumps the user's
    /// session_version, so every token issued before is rejected. Returns the
    /// session_version after the change; `NotFound` for an unknown username.
    pub(crate) fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        bump: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let version = {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE users SET password_hash = ?2, session_version = session_version + ?3
                     WHERE username = ?1 RETURNING session_version",
                )
                .map_err(sql_err)?;
            first_row(
                &mut stmt,
                params![username, password_hash, i64::from(bump)],
                |r| r.get::<_, i64>(0),
            )?
            .ok_or(StoreError::NotFound)?
        };
        let detail = if bump {
            format!("session_version={version}")
        } else {
            "sessions kept".to_string()
        };
        record(
            &tx,
            now,
            &AuditEntry {
                detail,
                ..audit.clone()
            },
        )?;
        tx.commit().map_err(sql_err)?;
        Ok(version)
    }

    /// Removes the user and (by `ON DELETE CASCADE`) every token of theirs, so each
    /// reads `unknown` from then on. The audit log keeps their history: it names users,
    /// it does not reference them. Returns the removed user; `NotFound` if unknown.
    pub(crate) fn delete_user(
        &self,
        username: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let user = {
            let mut stmt = tx
                .prepare_cached(
                    "DELETE FROM users WHERE username = ?1
                     RETURNING id, username, session_version, created_at",
                )
                .map_err(sql_err)?;
            first_row(&mut stmt, [username], user_from_row)?.ok_or(StoreError::NotFound)?
        };
        record(
            &tx,
            now,
            &AuditEntry {
                detail: format!("id={}", user.id),
                ..audit.clone()
            },
        )?;
        tx.commit().map_err(sql_err)?;
        Ok(user)
    }
}

impl Sqlite {
    /// The named secret: `fresh` is stored if there is none yet, then whatever is
    /// stored is returned (the same statements on PostgreSQL).
    pub(crate) fn secret(&self, name: &str, fresh: &[u8; 32]) -> Result<Vec<u8>, StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![name, &fresh[..]]))
        .map_err(sql_err)?;
        let mut stmt = conn
            .prepare_cached("SELECT value FROM secrets WHERE name = ?1")
            .map_err(sql_err)?;
        first_row(&mut stmt, [name], |r| r.get(0))?.ok_or(StoreError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::on_each_backend;
    use super::*;

    fn cli() -> AuditEntry {
        AuditEntry {
            actor: "cli:test".into(),
            action: "user.add",
            target: "alice".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn a_duplicate_username_is_a_conflict_and_changes_nothing() {
        on_each_backend(|s| {
            s.create_user("u1", "alice", "phc", 1, &cli()).unwrap();
            assert_eq!(
                s.create_user("u2", "alice", "phc", 2, &cli()),
                Err(StoreError::Conflict)
            );
            assert_eq!(s.list_users().unwrap().len(), 1);
            assert_eq!(s.audit_log().unwrap().len(), 1);
        });
    }

    #[test]
    fn a_new_password_bumps_the_version_unless_sessions_are_kept() {
        on_each_backend(|s| {
            s.create_user("u1", "alice", "old", 1, &cli()).unwrap();
            let passwd = AuditEntry {
                action: "user.passwd",
                ..cli()
            };
            assert_eq!(s.set_password("alice", "new", true, 2, &passwd), Ok(2));
            assert_eq!(s.user_for_login("alice").unwrap().unwrap().1, "new");
            assert_eq!(s.set_password("alice", "newer", false, 3, &passwd), Ok(2));
            assert_eq!(s.user_for_login("alice").unwrap().unwrap().1, "newer");
            assert_eq!(
                s.set_password("bob", "x", true, 4, &passwd),
                Err(StoreError::NotFound)
            );
            let log = s.audit_log().unwrap();
            assert_eq!(log.len(), 3);
            assert_eq!(
                (log[1].action.as_str(), log[1].detail.as_str()),
                ("user.passwd", "session_version=2")
            );
            assert_eq!(log[2].detail, "sessions kept");
        });
    }

    #[test]
    fn deleting_a_user_removes_their_tokens_and_keeps_the_audit() {
        on_each_backend(|s| {
            s.create_user("u1", "alice", "phc", 1, &cli()).unwrap();
            let hash = crate::auth::token::hash("aps_test");
            s.insert_token(
                &crate::db::NewToken {
                    hash: &hash,
                    id: "tok_1",
                    kind: crate::auth::token::Kind::Session,
                    user_id: "u1",
                    name: None,
                    prefix: "aps_test",
                    created_at: 1,
                    expires_at: Some(1_000),
                },
                None,
            )
            .unwrap();
            let delete = AuditEntry {
                action: "user.delete",
                ..cli()
            };
            assert_eq!(s.delete_user("alice", 2, &delete).unwrap().id, "u1");
            assert_eq!(s.lookup_token(&hash).unwrap(), None);
            assert_eq!(s.user_by_username("alice").unwrap(), None);
            assert_eq!(
                s.delete_user("alice", 3, &delete),
                Err(StoreError::NotFound)
            );
            let log = s.audit_log().unwrap();
            assert_eq!(log.len(), 2);
            assert_eq!(
                (log[1].action.as_str(), log[1].detail.as_str()),
                ("user.delete", "id=u1")
            );
            // The name is free again, for a new user with a new id.
            s.create_user("u2", "alice", "phc", 4, &cli()).unwrap();
        });
    }

    #[test]
    fn a_secret_is_created_once_and_then_kept() {
        on_each_backend(|s| {
            let first = s.secret("csrf").unwrap();
            assert_eq!(first.len(), 32);
            assert_eq!(s.secret("csrf").unwrap(), first);
            assert_ne!(s.secret("other").unwrap(), first);
        });
    }

    #[test]
    fn bumping_the_version_counts_up_and_is_audited() {
        on_each_backend(|s| {
            s.create_user("u1", "alice", "phc", 1, &cli()).unwrap();
            let bump = AuditEntry {
                action: "user.revoke_all",
                ..cli()
            };
            assert_eq!(s.bump_session_version("u1", 5, &bump), Ok(2));
            assert_eq!(s.bump_session_version("u1", 6, &bump), Ok(3));
            assert_eq!(
                s.bump_session_version("nobody", 7, &bump),
                Err(StoreError::NotFound)
            );
            let log = s.audit_log().unwrap();
            assert_eq!(log.len(), 3);
            assert_eq!(log[2].detail, "session_version=3");
        });
    }
}
