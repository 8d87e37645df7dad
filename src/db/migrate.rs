//! Schema migrations keyed by `PRAGMA user_version`, applied in one IMMEDIATE transaction.
//!
//! A new database gets `schema.sql` (the whole, latest schema) and is stamped `LATEST`.
//! An older one gets the numbered upgrade steps after its version, which are appended
//! to `UPGRADES` and never edited (each also folded into `schema.sql`). A database
//! whose version is newer than the binary knows is refused, untouched.

use rusqlite::{Connection, TransactionBehavior};

use super::{sql_err, StoreError};

const SCHEMA: &str = include_str!("../../schema.sql");

/// `UPGRADES[i]` takes a database from version `i + 1` to `i + 2`.
const UPGRADES: &[&str] = &[
    include_str!("migrations/v2.sql"),
    include_str!("migrations/v3.sql"),
];

/// The schema version this binary writes.
pub const LATEST: i64 = UPGRADES.len() as i64 + 1;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err)?;
    if version > LATEST {
        return Err(StoreError::TooNew {
            found: version,
            supported: LATEST,
        });
    }
    if version <= 0 {
        tx.execute_batch(SCHEMA).map_err(sql_err)?;
        set_version(&tx, LATEST)?;
    } else {
        for (i, step) in UPGRADES.iter().enumerate().skip(version as usize - 1) {
            tx.execute_batch(step).map_err(sql_err)?;
            set_version(&tx, i as i64 + 2)?;
        }
    }
    tx.commit().map_err(sql_err)
}

fn set_version(tx: &rusqlite::Transaction<'_>, version: i64) -> Result<(), StoreError> {
    // PRAGMA takes no bound parameters; the value is our own integer.
    tx.execute_batch(&format!("PRAGMA user_version = {version}"))
        .map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table, index and column, as SQLite describes them.
    fn shape(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<(String, String)>, _>>()
            .unwrap();
        // Whitespace and comments differ between schema.sql and the steps.
        rows.into_iter()
            .map(|(n, sql): (String, String)| {
                let sql: String = sql
                    .lines()
                    .map(|l| l.split("--").next().unwrap_or("").trim())
                    .collect::<Vec<_>>()
                    .join(" ");
                (n, sql.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect()
    }

    #[test]
    fn a_version_1_database_upgrades_to_the_schema_of_a_new_one() {
        let mut old = Connection::open_in_memory().unwrap();
        old.execute_batch(include_str!("migrations/v1.sql"))
            .unwrap();
        old.execute_batch("PRAGMA user_version = 1").unwrap();
        migrate(&mut old).unwrap();
        let mut new = Connection::open_in_memory().unwrap();
        migrate(&mut new).unwrap();
        assert_eq!(shape(&old), shape(&new));
        let v: i64 = old
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST);
    }
}
