//! Storage: the SQLite pool, its pragmas, migrations, and every SQL statement of the
//! program, behind functions in domain terms. rusqlite types do not leave this module.
//!
//! Each function is one statement or one transaction, so a second backend can keep
//! the same guarantees. Decisions that race (sliding, renewing, revoking) are guarded
//! `UPDATE ... WHERE <condition> RETURNING`: the guard is the check.

pub mod audit;
pub mod keys;
mod migrate;
pub mod refresh;
pub mod tokens;
pub mod users;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{ErrorCode, Params, Row, Statement};

pub use audit::{AuditEntry, AuditRecord};
pub use migrate::LATEST as SCHEMA_VERSION;
pub use tokens::{NewToken, PatSummary, TokenRecord};
pub use users::User;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    /// A unique constraint refused the write (duplicate username).
    Conflict,
    /// The database stayed locked by another writer past the busy timeout.
    Busy,
    /// The file's schema is newer than this binary.
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

/// The database: a pool of identically configured connections.
#[derive(Clone)]
pub struct Store {
    pool: Pool<SqliteConnectionManager>,
}

/// Applied to every connection the pool opens. `synchronous=NORMAL` in WAL mode never
/// corrupts the database; a power loss (not a process crash) may lose the last
/// commits before the crash.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
PRAGMA temp_store = MEMORY;";

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path, max_connections: u32) -> Result<Store, StoreError> {
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
        let store = Store { pool };
        migrate::migrate(&mut *store.conn()?)?;
        Ok(store)
    }

    pub(crate) fn conn(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Other(e.to_string()))
    }

    /// `SELECT 1` on a pooled connection.
    pub fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT 1").map_err(sql_err)?;
        first_row(&mut stmt, [], |r| r.get::<_, i64>(0)).map(|_| ())
    }

    /// Writes a consistent copy of the live database to `dest` (SQLite online backup).
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.backup(rusqlite::MAIN_DB, dest, None).map_err(sql_err)
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
        let store = Store::open(&dir.path().join("t.db"), 4).unwrap();
        (store, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_newer_than_the_binary_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        drop(Store::open(&path, 1).unwrap());
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(c);
        match Store::open(&path, 1) {
            Err(StoreError::TooNew {
                found: 99,
                supported,
            }) => assert_eq!(supported, SCHEMA_VERSION),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("opened a database newer than the binary"),
        }
    }

    #[test]
    fn opening_twice_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twice.db");
        drop(Store::open(&path, 1).unwrap());
        let store = Store::open(&path, 1).unwrap();
        store.ping().unwrap();
    }
}
