//! `appliance serve`: validate the configuration, open the database, start the
//! password pool and the background purge, and run the HTTP server until a signal.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::auth::password::PasswordPool;
use crate::auth::shared_throttle::DbThrottle;
use crate::auth::throttle::{MemoryThrottle, Throttle};
use crate::cli::ServeArgs;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::{is_postgres, redact, Store, StoreError};
use crate::error::exit;
use crate::http::log::{self, Level};
use crate::metrics::Metrics;
use crate::text;

/// Rows deleted per purge statement, so a purge never holds the write lock for long.
const PURGE_BATCH: i64 = 500;
/// How long `serve` waits at start for an unreachable PostgreSQL before exiting 1.
const START_RETRY: Duration = Duration::from_secs(30);

pub fn run(args: &ServeArgs) -> u8 {
    let mut config = match Config::from_args(args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return exit::USAGE;
        }
    };
    log::set_format(config.log_format);
    // The address first: a port already taken must not leave a new database behind,
    // nor a "next step" hint for a server that never starts.
    let listener = match crate::http::bind(
        &config.listen,
        Duration::from_millis(config.client_timeout_ms as u64),
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return exit::REFUSED;
        }
    };
    // Printed instead of the target: a PostgreSQL URL's password never is.
    let shown = text::escape(&redact(&config.db)).to_string();
    let created = !is_postgres(&config.db) && !Path::new(&config.db).exists();
    let store = match open_retrying(&config.db, config.db_pool_size) {
        Ok(s) => s,
        Err(e @ StoreError::TooNew { .. }) => {
            eprintln!("Cannot use {shown}: {e}.");
            return exit::REFUSED;
        }
        Err(e) => {
            eprintln!("Cannot open the database {shown}: {e}.");
            return exit::REFUSED;
        }
    };
    if !store.is_postgres() {
        for warning in crate::files::loose_file_warnings(Path::new(&config.db)) {
            log::event(Level::Warn, &warning);
        }
    }
    // A database URL may carry a password: it is never printed, not even in a hint.
    let db = if is_postgres(&config.db) {
        "DATABASE_URL".to_string()
    } else {
        crate::admin::absolute(&config.db).display().to_string()
    };
    if created {
        log::event(Level::Info, &format!("Created a new database at {db}."));
    }
    if store.count_users().unwrap_or(1) == 0 {
        log::event(
            Level::Info,
            &format!(
                "No users yet. Add the first one in another terminal (it asks for a password): {} admin user add --db {} alice",
                crate::admin::shell_word(&this_program()),
                crate::admin::shell_word(&db)
            ),
        );
    }
    // Logins waiting for a hashing thread are bounded (see Config); they wait on their
    // own connections' threads, never on ones that validate tokens.
    let passwords = match PasswordPool::new(config.login_workers, config.login_queue) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return exit::REFUSED;
        }
    };
    let csrf_key = match store.secret("csrf") {
        Ok(k) => k,
        Err(e) => {
            eprintln!("Cannot read the signing key from {shown}: {e}.");
            return exit::REFUSED;
        }
    };
    // The first signing key is made on first start (once, whoever races us).
    if let Err(e) = crate::app::oauth::ensure_signing_key(&store, SystemClock.now_ms()) {
        eprintln!("Cannot make the signing key in {}: {e}.", config.db);
        return exit::REFUSED;
    }
    if !config.issuer_given {
        if let Ok(addr) = listener.local_addr() {
            config.issuer = format!("http://{addr}");
        }
    }
    let app = Arc::new(App {
        throttle: throttle_for(
            &store,
            config.login_max_failures_user,
            config.login_max_failures_addr,
        ),
        config,
        store,
        clock: Arc::new(SystemClock),
        passwords,
        metrics: Metrics::default(),
        csrf_key,
    });
    start_purge(Arc::clone(&app));
    if !app.store.is_postgres() {
        start_checkpoint(app.store.clone());
    }
    match crate::http::serve(app, listener) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("{e}");
            exit::REFUSED
        }
    }
}

/// Login throttling counted in the database on PostgreSQL, so replicas share it; in
/// memory on SQLite, where one process owns the file.
fn throttle_for(store: &Store, max_user: u32, max_addr: u32) -> Box<dyn Throttle> {
    if store.is_postgres() {
        Box::new(DbThrottle::new(store.clone(), max_user, max_addr))
    } else {
        Box::new(MemoryThrottle::new(max_user, max_addr))
    }
}

/// Opens the database; while PostgreSQL cannot be reached (a replica starting before
/// its database, or during a failover) tries again for up to `START_RETRY`.
fn open_retrying(target: &str, pool_size: u32) -> Result<Store, StoreError> {
    let started = Instant::now();
    let mut said = false;
    loop {
        match Store::open(target, pool_size) {
            Err(StoreError::Unavailable(why)) if started.elapsed() < START_RETRY => {
                if !said {
                    eprintln!("WARN {why}; retrying for up to {}s", START_RETRY.as_secs());
                    said = true;
                }
                thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// Runs SQLite's checkpoint policy (`Store::checkpoint`) every second, so the WAL
/// stays bounded however busy the readers are.
fn start_checkpoint(store: Store) {
    let spawned = thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || loop {
            thread::sleep(Duration::from_secs(1));
            if let Err(e) = store.checkpoint() {
                eprintln!("WARN WAL checkpoint failed, will retry: {e}");
            }
        });
    if let Err(e) = spawned {
        eprintln!("WARN cannot start the checkpoint thread: {e}");
    }
}

/// How to run this binary from any directory: `appliance` when that name on PATH is
/// this very file, else its absolute path (after `cargo run` it is not on PATH).
fn this_program() -> String {
    let Ok(me) = std::env::current_exe() else {
        return "appliance".to_string();
    };
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("appliance"))
            .find(|p| p.is_file())
    });
    let same = |p: &Path| std::fs::canonicalize(p).ok() == std::fs::canonicalize(&me).ok();
    match on_path {
        Some(p) if same(&p) => "appliance".to_string(),
        _ => me.display().to_string(),
    }
}

/// Deletes rows of tokens that stopped working more than `--purge-after` ago, in
/// small batches, on its own thread: requests never wait for it.
fn start_purge(app: Arc<App>) {
    let every = Duration::from_millis((app.config.purge_after_ms / 2).clamp(1_000, 60_000) as u64);
    let spawned = thread::Builder::new()
        .name("purge".into())
        .spawn(move || loop {
            thread::sleep(every);
            let now = app.clock.now_ms();
            if app.store.is_postgres() {
                if let Err(e) = DbThrottle::purge(&app.store, now) {
                    log::event(
                        Level::Warn,
                        &format!("purge of login attempts failed, will retry: {e}"),
                    );
                }
            }
            let cutoff = now - app.config.purge_after_ms;
            if let Err(e) = app.store.drop_retired_keys(now) {
                eprintln!("WARN dropping retired signing keys failed, will retry: {e}");
            }
            while let Ok(n) = app.store.purge_refresh(cutoff, PURGE_BATCH) {
                if (n as i64) < PURGE_BATCH {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            loop {
                match app.store.purge_tokens(cutoff, PURGE_BATCH) {
                    Ok(n) => {
                        app.metrics
                            .purged_tokens
                            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        if (n as i64) < PURGE_BATCH {
                            break;
                        }
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        log::event(Level::Warn, &format!("purge failed, will retry: {e}"));
                        break;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        log::event(Level::Warn, &format!("cannot start the purge thread: {e}"));
    }
}
