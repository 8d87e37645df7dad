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

#[cfg(test)]
mod tests {
    use super::super::testing::on_each_backend;
    use super::*;

    fn key(n: u8) -> (String, String, Vec<u8>) {
        (format!("k4.pid.{n}"), format!("k4.public.{n}"), vec![n; 64])
    }

    fn new(k: &(String, String, Vec<u8>)) -> NewKey<'_> {
        NewKey {
            kid: &k.0,
            public_key: &k.1,
            secret_key: &k.2,
        }
    }

    fn audit() -> AuditEntry {
        AuditEntry {
            actor: "cli:t".into(),
            action: "keys.rotate",
            target: String::new(),
            detail: String::new(),
        }
    }

    #[test]
    fn the_first_key_goes_in_once() {
        on_each_backend(|s| {
            let (a, b) = (key(1), key(2));
            assert!(s.insert_first_key(&new(&a), 10).unwrap());
            assert!(!s.insert_first_key(&new(&b), 11).unwrap());
            assert_eq!(s.active_key().unwrap().unwrap().kid, a.0);
            assert_eq!(s.list_keys(12).unwrap().len(), 1);
        });
    }

    #[test]
    fn a_rotated_key_is_served_until_its_tokens_expire_then_dropped() {
        on_each_backend(|s| {
            let (a, b, c) = (key(1), key(2), key(3));
            s.insert_first_key(&new(&a), 0).unwrap();
            assert!(s.extend_key_use(&a.0, 1_000).unwrap());
            s.rotate_key(&new(&b), 100, &audit()).unwrap();
            // The old key can no longer be used to sign...
            assert!(!s.extend_key_use(&a.0, 2_000).unwrap());
            assert_eq!(s.active_key().unwrap().unwrap().kid, b.0);
            // ...but verifies until its last token expires.
            let listed = s.list_keys(999).unwrap();
            assert_eq!(
                listed
                    .iter()
                    .map(|k| (k.kid.as_str(), k.active))
                    .collect::<Vec<_>>(),
                [(b.0.as_str(), true), (a.0.as_str(), false)]
            );
            assert!(s.list_keys(1_000).unwrap().iter().all(|k| k.kid != a.0));
            // The next rotation drops it for good.
            assert!(s.extend_key_use(&b.0, 5_000).unwrap());
            s.rotate_key(&new(&c), 1_000, &audit()).unwrap();
            let kids: Vec<String> = s.list_keys(0).unwrap().into_iter().map(|k| k.kid).collect();
            assert_eq!(kids, [c.0.clone(), b.0.clone()]);
            assert_eq!(s.public_key(&a.0).unwrap(), None);
            assert_eq!(s.public_key(&b.0).unwrap().as_deref(), Some(b.1.as_str()));
            let log = s.audit_log().unwrap();
            assert_eq!(log.last().unwrap().detail, format!("retiring={}", b.0));
        });
    }

    #[test]
    fn concurrent_first_starts_make_one_key() {
        on_each_backend(|s| {
            let inserted: Vec<bool> = {
                let barrier = std::sync::Barrier::new(8);
                std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..8u8)
                        .map(|n| {
                            let (s, barrier) = (&s, &barrier);
                            scope.spawn(move || {
                                let k = key(n);
                                barrier.wait();
                                s.insert_first_key(&new(&k), 0).unwrap()
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                })
            };
            assert_eq!(inserted.iter().filter(|b| **b).count(), 1);
            assert_eq!(s.list_keys(0).unwrap().len(), 1);
        });
    }
}
