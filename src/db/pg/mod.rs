//! The PostgreSQL backend: an r2d2 pool of `postgres` clients (TLS through rustls),
//! SQLSTATE-based error mapping, and migrations under an advisory lock. The domain
//! operations are in `ops.rs`, statement for statement the SQLite ones.

mod oauth;
mod ops;
mod tls;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;
use postgres::error::SqlState;
use postgres::Statement;
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

type Conn = PooledConnection<Manager>;

/// A client with its prepared statements: `Client::query(&str)` prepares on every call
/// (a round trip of its own), which halved validation throughput.
pub(crate) struct PgConn {
    client: postgres::Client,
    statements: HashMap<&'static str, Statement>,
}

impl PgConn {
    /// `sql` prepared once per connection.
    pub(crate) fn prepared(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(pg_err)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }
}

impl Deref for PgConn {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// r2d2_postgres's manager, handing out `PgConn`s.
pub(crate) struct Manager(PostgresConnectionManager<MakeRustlsConnect>);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.0.connect()?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

/// Read for the password when set, so a container can keep it out of the URL and the
/// environment (a mounted secret file).
pub const PASSWORD_FILE_ENV: &str = "APPLIANCE_DB_PASSWORD_FILE";

/// How long a request waits for a pooled connection before it answers 503.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Key of the session-level advisory lock that serialises migrations of replicas
/// starting together ("appliance" in ASCII, truncated to 8 bytes).
const MIGRATION_LOCK: i64 = 0x6170_706c_6961_6e63;

/// `STEPS[i]` takes a database from version `i` to `i + 1`; a new one gets them all,
/// in one transaction. Steps are appended, never edited.
const STEPS: &[&str] = &[
    include_str!("../../../schema.postgres.sql"),
    // 2: signing keys, refresh families and refresh tokens (signed access tokens).
    include_str!("migrations/v2.sql"),
];

/// The schema version this binary writes.
pub const LATEST: i64 = STEPS.len() as i64;

#[derive(Clone)]
pub(crate) struct Pg {
    pool: Pool<Manager>,
}

impl Pg {
    pub(crate) fn open(url: &str, pool_size: u32) -> Result<Pg, StoreError> {
        let target = Target::parse(url)?;
        let manager = Manager(PostgresConnectionManager::new(target.config, target.tls));
        // One connection first, so an unreachable server or a refused login fails now
        // with PostgreSQL's reason (and where it was tried), not a pool timeout.
        let mut first = r2d2::ManageConnection::connect(&manager).map_err(|e| {
            let reason = e.to_string();
            match pg_err(e) {
                StoreError::Unavailable(_) => StoreError::Unavailable(format!(
                    "cannot reach PostgreSQL at {}: {reason}",
                    target.place
                )),
                _ => StoreError::Other(format!(
                    "PostgreSQL at {} refused the connection: {reason}",
                    target.place
                )),
            }
        })?;
        migrate(&mut first.client)?;
        drop(first);
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            // A broken connection is noticed on use (is_closed) and dropped on return;
            // checking every checkout would add a round trip to every request.
            .test_on_check_out(false)
            .connection_timeout(CHECKOUT_TIMEOUT)
            .build_unchecked(manager);
        Ok(Pg { pool })
    }

    pub(crate) fn conn(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        self.conn()?
            .simple_query("SELECT 1")
            .map(|_| ())
            .map_err(pg_err)
    }
}

/// A parsed `postgres://` URL: the client configuration, the TLS connector its
/// `sslmode` asks for, and `host:port` for messages (never the password).
struct Target {
    config: postgres::Config,
    tls: MakeRustlsConnect,
    place: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl Target {
    fn parse(url: &str) -> Result<Target, StoreError> {
        let bad = |m: String| StoreError::Other(format!("{}: {m}", redact(url)));
        // tokio-postgres knows sslmode disable|prefer|require but not verify-full or
        // sslrootcert (libpq's words): those two are taken out and done here.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept: Vec<&str> = Vec::new();
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            match key {
                "sslmode" => {
                    mode = match value.as_str() {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(bad(format!(
                                "sslmode={other} is not supported; use disable, prefer, require or verify-full"
                            )))
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(value),
                _ => kept.push(pair),
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config = postgres::Config::from_str(&rebuilt)
            .map_err(|e| bad(format!("not a PostgreSQL URL ({e})")))?;
        config.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => postgres::config::SslMode::Require,
        });
        if let Some(path) = std::env::var_os(PASSWORD_FILE_ENV).filter(|p| !p.is_empty()) {
            let secret = std::fs::read_to_string(&path).map_err(|e| {
                bad(format!(
                    "cannot read the password file {} ({PASSWORD_FILE_ENV}): {e}",
                    path.to_string_lossy()
                ))
            })?;
            config.password(secret.trim_end_matches(['\n', '\r']));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives(true);
        if config.get_application_name().is_none() {
            config.application_name("appliance");
        }
        let tls = match mode {
            SslMode::VerifyFull => tls::verifying(root_cert.as_deref()).map_err(bad)?,
            _ => tls::encrypt_only(),
        };
        let place = place(&config);
        Ok(Target { config, tls, place })
    }
}

/// `host:port` of the first host, for messages.
fn place(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.to_string_lossy().into_owned(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// The database target as it may be printed: a PostgreSQL URL's password (in the
/// user part or a `password=` parameter) becomes `***`; a file path is unchanged.
pub fn redact(target: &str) -> String {
    if !super::is_postgres(target) {
        return target.to_string();
    }
    let (scheme, rest) = target.split_once("://").unwrap_or(("", target));
    let (authority_end, _) = rest
        .char_indices()
        .find(|(_, c)| matches!(c, '/' | '?'))
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// SQLSTATE classes that mean "try again": the connection (08), the server shutting
/// down or starting (57P), serialization failure and deadlock (40001, 40P01), too many
/// connections (53300), a standby after failover (25006).
fn transient(state: &SqlState) -> bool {
    let code = state.code();
    code.starts_with("08")
        || code.starts_with("57P")
        || matches!(code, "40001" | "40P01" | "53300" | "25006")
}

pub(crate) fn pg_err(e: postgres::Error) -> StoreError {
    match e.code() {
        Some(state) if *state == SqlState::UNIQUE_VIOLATION => StoreError::Conflict,
        Some(state) if transient(state) => StoreError::Unavailable(e.to_string()),
        Some(_) => StoreError::Other(e.to_string()),
        None => {
            let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
            if e.is_closed() || io {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Other(e.to_string())
            }
        }
    }
}

/// Applies the missing schema steps in one transaction, holding a session advisory
/// lock so replicas starting together migrate once; a newer database is refused.
fn migrate(client: &mut postgres::Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_err)?;
    let result = migrate_locked(client);
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_err);
    result.and(unlocked.map(|_| ()))
}

fn migrate_locked(client: &mut postgres::Client) -> Result<(), StoreError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .map_err(pg_err)?;
    let mut tx = client.transaction().map_err(pg_err)?;
    let version: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .and_then(|r| r.try_get(0))
        .map_err(pg_err)?;
    if version > LATEST {
        return Err(StoreError::TooNew {
            found: version,
            supported: LATEST,
        });
    }
    if version == LATEST {
        return Ok(());
    }
    for step in STEPS.iter().skip(version.max(0) as usize) {
        tx.batch_execute(step).map_err(pg_err)?;
    }
    tx.execute("DELETE FROM schema_version", &[])
        .map_err(pg_err)?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES ($1)",
        &[&LATEST],
    )
    .map_err(pg_err)?;
    tx.commit().map_err(pg_err)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fresh, randomly named database per test on the server named by
    //! `APPLIANCE_TEST_PG_URL`, dropped afterwards; without the variable the
    //! PostgreSQL tests skip, saying so once.

    use std::io::Write;
    use std::sync::Once;

    use super::super::Store;

    pub const URL_ENV: &str = "APPLIANCE_TEST_PG_URL";

    /// Drops its database when dropped.
    pub struct PgDb {
        admin_url: String,
        pub name: String,
        pub url: String,
    }

    impl Drop for PgDb {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
                let _ = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }

    /// A new empty database, or `None` (after one skip line) when no server is given.
    pub fn pg_db() -> Option<PgDb> {
        let Ok(admin_url) = std::env::var(URL_ENV) else {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                // Straight to the stream: libtest captures print!/eprint! of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED the PostgreSQL storage tests: set {URL_ENV} (for example {URL_ENV}=postgres://postgres@127.0.0.1:5432/postgres) to run them"
                );
            });
            return None;
        };
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).unwrap();
        let name = format!(
            "appliance_t_{}",
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut c = postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{URL_ENV}: cannot connect: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let url = if query.is_empty() {
            format!("{server}/{name}")
        } else {
            format!("{server}/{name}?{query}")
        };
        Some(PgDb {
            admin_url,
            name,
            url,
        })
    }

    pub fn pg_store() -> Option<(Store, PgDb)> {
        let db = pg_db()?;
        let store = Store::open(&db.url, 8).unwrap();
        Some((store, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact("postgres://app:s3cr%40t@db.example:5433/auth?sslmode=require"),
            "postgres://app:***@db.example:5433/auth?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://app@db/auth?password=s3cret&sslmode=disable"),
            "postgresql://app@db/auth?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://app:pw@db"), "postgres://app:***@db");
        assert_eq!(redact("./appliance.db"), "./appliance.db");
    }

    #[test]
    fn retryable_states_are_unavailable_and_others_are_not() {
        for s in [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CONNECTION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
        ] {
            assert!(transient(&s), "{}", s.code());
        }
        for s in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::INVALID_PASSWORD,
        ] {
            assert!(!transient(&s), "{}", s.code());
        }
    }

    #[test]
    fn unsupported_sslmodes_and_bad_urls_are_refused_without_the_password() {
        for url in [
            "postgres://u:hunter2@127.0.0.1/db?sslmode=verify-ca",
            "postgres://u:hunter2@127.0.0.1/db?nonsense=1",
        ] {
            match Target::parse(url) {
                Err(StoreError::Other(m)) => assert!(!m.contains("hunter2"), "{m}"),
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("{url} accepted"),
            }
        }
        let t = Target::parse("postgres://u:hunter2@127.0.0.1:6543/db?sslmode=require").unwrap();
        assert_eq!(t.place, "127.0.0.1:6543");
    }
}
