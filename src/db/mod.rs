//! Storage: every SQL statement of the program, behind `Store`'s functions in domain
//! terms. `Store` is the only storage type callers see; behind it one of two backends,
//! SQLite (a file, the default: this module, `users`, `tokens`, `audit`, `migrate`) or
//! PostgreSQL (`pg`, for several replicas on one database). rusqlite and postgres types
//! do not leave this module.
//!
//! Each function is one statement or one transaction on both backends, with the same
//! guards. Decisions that race (sliding, renewing, revoking) are guarded
//! `UPDATE ... WHERE <condition> RETURNING`: the guard is the check, so they hold under
//! PostgreSQL's concurrent writers as under SQLite's single one.

pub mod audit;
#[cfg(test)]
mod conformance;
pub mod keys;
mod migrate;
mod pg;
pub mod refresh;
pub mod tokens;
mod transfer;
pub mod users;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{ErrorCode, Params, Row, Statement};

pub use audit::{AuditEntry, AuditRecord};
pub use keys::{ActiveKey, NewKey, PublicKeyInfo};
pub use migrate::LATEST as SCHEMA_VERSION;
pub use pg::redact;
pub use refresh::{Family, NewRefresh, Parent, Rotation};
pub use tokens::{NewToken, PatSummary, RevokeOutcome, TokenRecord};
pub use transfer::Copied;
pub use users::User;

use crate::auth::token::TokenHash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    /// A unique constraint refused the write (duplicate username).
    Conflict,
    /// The database stayed locked by another writer past the busy timeout.
    Busy,
    /// The database cannot be reached (PostgreSQL down, connection lost, pool
    /// exhausted waiting for it) or asked for a retry (serialization failure). The
    /// detail is for the log: the caller answers 503 and may try again.
    Unavailable(String),
    /// The database's schema is newer than this binary.
    TooNew {
        found: i64,
        supported: i64,
    },
    Other(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => write!(f, "not found"),
            StoreError::Conflict => write!(f, "already exists"),
            StoreError::Busy => write!(f, "the database is locked by another process; try again"),
            StoreError::TooNew { found, supported } => write!(
                f,
                "the database has schema version {found}, newer than this binary supports ({supported}); use a newer appliance"
            ),
            StoreError::Unavailable(m) => write!(f, "the database is unavailable: {m}"),
            StoreError::Other(m) => write!(f, "{m}"),
        }
    }
}

pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict,
        _ => StoreError::Other(e.to_string()),
    }
}

type Conn = PooledConnection<SqliteConnectionManager>;

/// The database: the only storage type callers see.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(pg::Pg),
}

/// Calls the same method on whichever backend the store has.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sqlite(b) => b.$method($($arg),*),
            Backend::Postgres(b) => b.$method($($arg),*),
        }
    };
}

/// True when `--db` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

impl Store {
    /// Opens (creating if needed) and migrates the database `target`: a
    /// `postgres://`/`postgresql://` URL, or else a SQLite file path. `pool_size` is the
    /// most connections this process holds.
    pub fn open(target: &str, pool_size: u32) -> Result<Store, StoreError> {
        let backend = if is_postgres(target) {
            Backend::Postgres(pg::Pg::open(target, pool_size)?)
        } else {
            Backend::Sqlite(Sqlite::open(Path::new(target), pool_size)?)
        };
        Ok(Store { backend })
    }

    /// A cheap query on a pooled connection (`/healthz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
    }

    /// Writes a consistent copy of the live SQLite database to `dest` (online backup).
    /// PostgreSQL has its own tools: refused with a sentence naming `pg_dump`.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => b.backup_to(dest),
            Backend::Postgres(_) => Err(StoreError::Other(
                "backup copies a SQLite file; for PostgreSQL use pg_dump (for example `pg_dump -Fc -f appliance.dump DBNAME`)".into(),
            )),
        }
    }

    /// Bounds SQLite's WAL (see `Sqlite::checkpoint`); nothing to do on PostgreSQL.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => b.checkpoint(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Copies every row of this SQLite database into `dest`, an empty PostgreSQL one
    /// (`admin migrate-to`), in one transaction there; the copy is audited as `entry`.
    pub fn copy_into(
        &self,
        dest: &Store,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Copied, StoreError> {
        match (&self.backend, &dest.backend) {
            (Backend::Sqlite(from), Backend::Postgres(to)) => {
                to.import(&from.export()?, now, entry)
            }
            _ => Err(StoreError::Other(
                "migrate-to copies a SQLite file (--db) into a PostgreSQL database (the URL)"
                    .into(),
            )),
        }
    }

    // Users (db/users.rs, db/pg/ops.rs).

    /// Adds a user; `Conflict` if the username is taken.
    pub fn create_user(
        &self,
        id: &str,
        username: &str,
        password_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        dispatch!(self.create_user(id, username, password_hash, now, audit))
    }

    /// The user and their password hash (PHC string), for a login.
    pub fn user_for_login(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        dispatch!(self.user_for_login(username))
    }

    pub fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.user_for_login(username)?.map(|(u, _)| u))
    }

    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        dispatch!(self.list_users())
    }

    pub fn count_users(&self) -> Result<i64, StoreError> {
        dispatch!(self.count_users())
    }

    /// Break-glass: every token issued before is rejected from now on. Returns the new
    /// version; `NotFound` for an unknown user id.
    pub fn bump_session_version(
        &self,
        user_id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        dispatch!(self.bump_session_version(user_id, now, audit))
    }

    /// Sets a new password hash for `username`; with `bump`, also bumps the user's
    /// session_version, so every token issued before is rejected. Returns the
    /// session_version after the change; `NotFound` for an unknown username.
    pub fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        bump: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        dispatch!(self.set_password(username, password_hash, bump, now, audit))
    }

    /// Removes the user and (by `ON DELETE CASCADE`) every token of theirs; the audit
    /// log keeps their history. Returns the removed user; `NotFound` if unknown.
    pub fn delete_user(
        &self,
        username: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        dispatch!(self.delete_user(username, now, audit))
    }

    /// The named 32-byte secret, created at random on first use. Every process on the
    /// database gets the same one (insert-if-absent, then read), so replicas verify
    /// what another one signed.
    pub fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh)
            .map_err(|e| StoreError::Other(format!("OS random source failed: {e}")))?;
        dispatch!(self.secret(name, &fresh))
    }

    // Tokens (db/tokens.rs, db/pg/ops.rs).

    /// Stores a token under the user's current session_version (read in the same
    /// statement, so a concurrent break-glass bump cannot be missed). `NotFound` if the
    /// user does not exist. The audit entry, if any, is written in the same transaction.
    pub fn insert_token(
        &self,
        t: &NewToken<'_>,
        audit: Option<(&AuditEntry, i64)>,
    ) -> Result<(), StoreError> {
        dispatch!(self.insert_token(t, audit))
    }

    /// The token stored under `hash`, whatever its state.
    pub fn lookup_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(self.lookup_token(hash))
    }

    /// Slides a live session's expiry forward to `target` when the stored expiry is
    /// behind it by `min_gain` ms or more. Returns the new expiry when this call wrote
    /// it; `None` when the guard refused (expired, revoked, unknown, or a racing writer
    /// already slid it to within `min_gain` of `target`).
    pub fn slide_session(
        &self,
        hash: &TokenHash,
        now: i64,
        target: i64,
        min_gain: i64,
    ) -> Result<Option<i64>, StoreError> {
        dispatch!(self.slide_session(hash, now, target, min_gain))
    }

    /// The stored expiry of a token (`Some(None)`: never expires; `None`: no such token).
    pub fn token_expiry(&self, hash: &TokenHash) -> Result<Option<Option<i64>>, StoreError> {
        dispatch!(self.token_expiry(hash))
    }

    /// Records that a PAT was used, at most once per `every_ms`.
    pub fn touch_token(
        &self,
        hash: &TokenHash,
        now: i64,
        every_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.touch_token(hash, now, every_ms))
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
        dispatch!(self.renew_pat(hash, now, lifetime_ms, threshold_ms))
    }

    /// Revokes the token stored under `hash`: one guarded UPDATE, so of two racing
    /// revokes exactly one reports `Revoked` (and writes the audit entry).
    pub fn revoke_token(
        &self,
        hash: &TokenHash,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<RevokeOutcome, StoreError> {
        dispatch!(self.revoke_token(hash, now, audit))
    }

    /// Revokes one of the user's own live PATs by id; false if there is no such live PAT.
    pub fn revoke_pat_by_id(
        &self,
        user_id: &str,
        id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        dispatch!(self.revoke_pat_by_id(user_id, id, now, audit))
    }

    /// The user's live PATs, newest first.
    pub fn list_pats(&self, user_id: &str, now: i64) -> Result<Vec<PatSummary>, StoreError> {
        dispatch!(self.list_pats(user_id, now))
    }

    /// Deletes up to `batch` rows of tokens that expired or were revoked before `cutoff`.
    /// Returns how many were deleted; call again while it returns `batch`. Safe when
    /// every replica runs it: a row deleted by one is simply not found by the others.
    pub fn purge_tokens(&self, cutoff: i64, batch: i64) -> Result<usize, StoreError> {
        dispatch!(self.purge_tokens(cutoff, batch))
    }

    /// Benchmark fixture: `count` sessions for one user in one transaction. Returns the
    /// first `keep` tokens (the rest are forgotten).
    pub fn seed_sessions(
        &self,
        user_id: &str,
        count: u64,
        keep: u64,
        now: i64,
        expires_at: i64,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self.seed_sessions(user_id, count, keep, now, expires_at))
    }

    /// Live (unexpired, unrevoked) sessions and PATs, for the metrics gauges.
    pub fn count_live_tokens(&self, now: i64) -> Result<(i64, i64), StoreError> {
        dispatch!(self.count_live_tokens(now))
    }

    // Signing keys (db/keys.rs, db/pg/oauth.rs).

    /// Stores `key` as the active key unless there is one already (a concurrent first
    /// start included: the UNIQUE slot lets exactly one in). True if this one went in.
    pub fn insert_first_key(&self, key: &NewKey<'_>, now: i64) -> Result<bool, StoreError> {
        dispatch!(self.insert_first_key(key, now))
    }

    /// The active key, if any.
    pub fn active_key(&self) -> Result<Option<ActiveKey>, StoreError> {
        dispatch!(self.active_key())
    }

    /// Raises the active key's `signed_until` to `until`, only while it is still the
    /// active key. False when it was rotated away: the caller signs with the new one.
    pub fn extend_key_use(&self, kid: &str, until: i64) -> Result<bool, StoreError> {
        dispatch!(self.extend_key_use(kid, until))
    }

    /// The public key named `kid`, until it is dropped.
    pub fn public_key(&self, kid: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self.public_key(kid))
    }

    /// The served keys: the active one first, then retiring ones, newest first.
    pub fn list_keys(&self, now: i64) -> Result<Vec<PublicKeyInfo>, StoreError> {
        dispatch!(self.list_keys(now))
    }

    /// Makes `key` the active key; the previous one starts retiring, and retiring keys
    /// whose tokens have all expired are dropped. One transaction, audited.
    pub fn rotate_key(
        &self,
        key: &NewKey<'_>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        dispatch!(self.rotate_key(key, now, audit))
    }

    /// Drops retiring keys whose tokens have all expired (the purge thread).
    pub fn drop_retired_keys(&self, now: i64) -> Result<usize, StoreError> {
        dispatch!(self.drop_retired_keys(now))
    }

    // Refresh families (db/refresh.rs, db/pg/oauth.rs).

    /// Starts a family for the user with its first refresh token; the family takes the
    /// user's session_version in the same statement.
    pub fn start_refresh_family(
        &self,
        family_id: &str,
        user_id: &str,
        first: &NewRefresh<'_>,
        lifetime_ms: i64,
    ) -> Result<Family, StoreError> {
        dispatch!(self.start_refresh_family(family_id, user_id, first, lifetime_ms))
    }

    /// Spends the refresh token `old` and stores `next` in its family (a guarded
    /// UPDATE: one of any number of concurrent refreshes wins); a spent `old` revokes
    /// the family, audited, in the same transaction.
    pub fn rotate_refresh(
        &self,
        old: &TokenHash,
        next: &NewRefresh<'_>,
        reuse_audit: &dyn Fn(&str) -> AuditEntry,
    ) -> Result<Rotation, StoreError> {
        dispatch!(self.rotate_refresh(old, next, reuse_audit))
    }

    /// Revokes the family of the refresh token `hash`. `None`: no such token;
    /// `Some(false)`: already revoked.
    pub fn revoke_refresh_family(
        &self,
        hash: &TokenHash,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<Option<bool>, StoreError> {
        dispatch!(self.revoke_refresh_family(hash, now, audit))
    }

    /// What an access token's `sid` names, if it belongs to user `sub`.
    pub fn access_parent(&self, sid: &str, sub: &str) -> Result<Option<Parent>, StoreError> {
        dispatch!(self.access_parent(sid, sub))
    }

    /// Revokes the session or refresh family an access token came from. True if this
    /// call revoked it.
    pub fn revoke_parent(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        dispatch!(self.revoke_parent(sid, now))
    }

    /// Deletes up to `batch` families that ended before `cutoff`, with their tokens.
    pub fn purge_refresh(&self, cutoff: i64, batch: i64) -> Result<usize, StoreError> {
        dispatch!(self.purge_refresh(cutoff, batch))
    }

    // Login attempts (db/audit.rs, db/pg/ops.rs): the throttle shared by replicas.

    /// Reserves attempt `id` for `keys` (username, address) at `now` unless a key
    /// already has `limits` attempts after `since`, all in one transaction (on
    /// PostgreSQL under advisory locks on both keys, so racing replicas cannot both
    /// take the last place). Returns, per key, the instant of its `limit`-th newest
    /// attempt when it is at its limit (`[None, None]`: reserved).
    pub fn reserve_login_attempt(
        &self,
        id: i64,
        keys: [&str; 2],
        limits: [i64; 2],
        now: i64,
        since: i64,
    ) -> Result<[Option<i64>; 2], StoreError> {
        dispatch!(self.reserve_login_attempt(id, keys, limits, now, since))
    }

    /// Gives a reservation back (a success, or a password never checked).
    pub fn release_login_attempt(&self, id: i64) -> Result<(), StoreError> {
        dispatch!(self.release_login_attempt(id))
    }

    /// Deletes attempts at or before `cutoff`; how many.
    pub fn purge_login_attempts(&self, cutoff: i64) -> Result<usize, StoreError> {
        dispatch!(self.purge_login_attempts(cutoff))
    }

    /// The whole audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self.audit_log())
    }
}

/// The SQLite backend: a pool of identically configured connections to one file.
#[derive(Clone)]
pub(crate) struct Sqlite {
    pool: Pool<SqliteConnectionManager>,
    /// The `-wal` file beside the database, watched by `checkpoint`.
    wal: PathBuf,
}

/// `checkpoint` runs when the WAL is larger than this; `journal_size_limit` truncates
/// the file back to it once a checkpoint has reset the log.
const WAL_LIMIT_BYTES: u64 = 4 * 1024 * 1024;
/// Applied to every connection the pool opens. `synchronous=NORMAL` in WAL mode never
/// corrupts the database; a power loss (not a process crash) may lose the last
/// commits before the crash.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
PRAGMA temp_store = MEMORY;
PRAGMA journal_size_limit = 4194304;";

impl Sqlite {
    /// Opens (creating if needed) and migrates the database at `path`.
    fn open(path: &Path, max_connections: u32) -> Result<Sqlite, StoreError> {
        // The file holds password hashes and keys: 0600 (SQLite gives -wal and -shm
        // the same mode), whatever the umask.
        crate::files::prepare_database(path).map_err(|e| StoreError::Other(e.to_string()))?;
        let manager = SqliteConnectionManager::file(path).with_init(|c| c.execute_batch(PRAGMAS));
        // One connection first, so a file that is not a database (or cannot be opened)
        // fails now with SQLite's reason, not after the pool's connection timeout.
        r2d2::ManageConnection::connect(&manager).map_err(|e| StoreError::Other(e.to_string()))?;
        let pool = Pool::builder()
            .max_size(max_connections.max(1))
            .min_idle(Some(1))
            // A SQLite connection to a local file does not go stale: r2d2's default
            // check on every checkout (an empty statement) cost ~4% of a validation.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let store = Sqlite {
            pool,
            wal: PathBuf::from(wal),
        };
        migrate::migrate(&mut *store.conn()?)?;
        Ok(store)
    }

    pub(crate) fn conn(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Other(e.to_string()))
    }

    /// `SELECT 1` on a pooled connection.
    fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT 1").map_err(sql_err)?;
        first_row(&mut stmt, [], |r| r.get::<_, i64>(0)).map(|_| ())
    }

    fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.backup(rusqlite::MAIN_DB, dest, None).map_err(sql_err)
    }

    /// Moves the WAL's content into the database and truncates the file to
    /// `journal_size_limit`. SQLite's automatic checkpoint is PASSIVE: under a steady
    /// stream of readers it never reaches the end of the WAL, which then grows (67–100
    /// MiB under mixed load). RESTART waits (up to the busy timeout) for the readers
    /// of the old WAL to finish, so the next writer starts again at its beginning.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size <= WAL_LIMIT_BYTES {
            return Ok(());
        }
        let conn = self.conn()?;
        // RESTART holds the write lock while it waits for readers: give up after
        // 500 ms (and try again next time) rather than hold writers for the full
        // busy timeout. Busy or not, the checkpoint answers with a row, not an error.
        conn.execute_batch("PRAGMA busy_timeout = 500")
            .map_err(sql_err)?;
        let done = conn
            .prepare_cached("PRAGMA wal_checkpoint(RESTART)")
            .map_err(sql_err)
            .and_then(|mut stmt| first_row(&mut stmt, [], |r| r.get::<_, i64>(0)).map(|_| ()));
        conn.execute_batch("PRAGMA busy_timeout = 5000")
            .map_err(sql_err)?;
        done
    }
}

/// Runs a statement, steps it to completion and returns its first row, if any.
///
/// `query_row` stops after one row and leaves the statement un-reset; on an
/// `UPDATE ... RETURNING` that keeps a read open, so SQLite never checkpoints and the
/// WAL grows without bound. Every row-returning statement goes through here.
pub(crate) fn first_row<T, P: Params>(
    stmt: &mut Statement<'_>,
    params: P,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    let mut rows = stmt.query(params).map_err(sql_err)?;
    let first = match rows.next().map_err(sql_err)? {
        Some(row) => Some(f(row).map_err(sql_err)?),
        None => None,
    };
    while rows.next().map_err(sql_err)?.is_some() {}
    Ok(first)
}

/// Like `first_row` but collecting every row.
pub(crate) fn all_rows<T, P: Params>(
    stmt: &mut Statement<'_>,
    params: P,
    mut f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params).map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        out.push(f(row).map_err(sql_err)?);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// A store on a fresh file in a temporary directory (kept alive by the returned guard).
    pub fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db").to_str().unwrap(), 4).unwrap();
        (store, dir)
    }

    pub use super::pg::testing::{pg_db, pg_store};

    /// Runs `f` on a fresh SQLite store and, when `APPLIANCE_TEST_PG_URL` names a
    /// server, on a fresh PostgreSQL database: one test, both backends.
    pub fn on_each_backend(f: impl Fn(&Store)) {
        let (s, _dir) = store();
        f(&s);
        if let Some((s, _db)) = pg_store() {
            f(&s);
        }
    }
}
