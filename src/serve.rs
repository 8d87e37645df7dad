//! `appliance serve`: validate the configuration, open the database, start the
//! password pool and the background purge, and run the HTTP server until a signal.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::app::App;
use crate::auth::password::PasswordPool;
use crate::auth::throttle::Throttle;
use crate::cli::ServeArgs;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::db::{Store, StoreError};
use crate::error::exit;
use crate::metrics::Metrics;

/// Rows deleted per purge statement, so a purge never holds the write lock for long.
const PURGE_BATCH: i64 = 500;

pub fn run(args: &ServeArgs) -> u8 {
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return exit::USAGE;
        }
    };
    let store = match Store::open(Path::new(&config.db), config.workers as u32 + 4) {
        Ok(s) => s,
        Err(e @ StoreError::TooNew { .. }) => {
            eprintln!("Cannot use {}: {e}.", config.db);
            return exit::REFUSED;
        }
        Err(e) => {
            eprintln!("Cannot open the database {}: {e}.", config.db);
            return exit::REFUSED;
        }
    };
    if store.count_users().unwrap_or(1) == 0 {
        eprintln!(
            "No users yet. Add the first one with: appliance admin user add --db {} USERNAME",
            config.db
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
            eprintln!("Cannot read the signing key from {}: {e}.", config.db);
            return exit::REFUSED;
        }
    };
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
    let app = Arc::new(App {
        throttle: Throttle::new(
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
    match crate::http::serve(app, listener) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("{e}");
            exit::REFUSED
        }
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
            let cutoff = app.clock.now_ms() - app.config.purge_after_ms;
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
                        eprintln!("WARN purge failed, will retry: {e}");
                        break;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("WARN cannot start the purge thread: {e}");
    }
}
