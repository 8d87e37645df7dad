//! Which login throttle a server uses: the in-memory `Throttle` of one process (SQLite,
//! where one `serve` owns the file), or failures counted in the database, so every
//! replica on one PostgreSQL database refuses the 11th failure for a username
//! whichever replica it reaches. Same limits, window and `Retry-After` either way.
//!
//! Failed logins are rare and each already cost an Argon2id hash, so the shared
//! counter's read before hashing and write after a failure cost nothing that matters.

use std::net::IpAddr;

use crate::auth::throttle::{Throttle, WINDOW_MS};
use crate::config::canonical;
use crate::db::{Store, StoreError};

/// Usernames are at most 64 characters; longer junk is keyed by its first 128 bytes.
const MAX_KEY_LEN: usize = 128;

pub enum Limiter {
    Memory(Throttle),
    Shared {
        store: Store,
        max_user: u32,
        max_addr: u32,
    },
}

impl Limiter {
    /// The database's counter on PostgreSQL, memory on SQLite.
    pub fn for_store(store: &Store, max_user: u32, max_addr: u32) -> Limiter {
        if store.is_postgres() {
            Limiter::Shared {
                store: store.clone(),
                max_user,
                max_addr,
            }
        } else {
            Limiter::Memory(Throttle::new(max_user, max_addr))
        }
    }

    /// `Ok(Some(seconds))` while the username or the address is at its limit.
    pub fn check(&self, username: &str, addr: IpAddr, now: i64) -> Result<Option<u64>, StoreError> {
        match self {
            Limiter::Memory(t) => Ok(t.check(username, addr, now).err()),
            Limiter::Shared {
                store,
                max_user,
                max_addr,
            } => {
                let (user, addr) = keys(username, addr);
                let marks = store.login_failure_marks(
                    [&user, &addr],
                    [i64::from(*max_user), i64::from(*max_addr)],
                    now - WINDOW_MS,
                )?;
                // The key frees up when its limit-th newest failure leaves the window.
                let secs = marks
                    .iter()
                    .flatten()
                    .map(|at| ((at + WINDOW_MS - now).max(1) + 999) / 1000)
                    .max();
                Ok(secs.map(|s| s as u64))
            }
        }
    }

    pub fn record_failure(&self, username: &str, addr: IpAddr, now: i64) -> Result<(), StoreError> {
        match self {
            Limiter::Memory(t) => {
                t.record_failure(username, addr, now);
                Ok(())
            }
            Limiter::Shared { store, .. } => {
                let (user, addr) = keys(username, addr);
                store.record_login_failure([&user, &addr], now)
            }
        }
    }

    /// Forgets failures older than the window (the purge thread; safe on every replica).
    pub fn purge(&self, now: i64) -> Result<usize, StoreError> {
        match self {
            Limiter::Memory(_) => Ok(0),
            Limiter::Shared { store, .. } => store.purge_login_failures(now - WINDOW_MS),
        }
    }
}

fn keys(username: &str, addr: IpAddr) -> (String, String) {
    let mut end = username.len().min(MAX_KEY_LEN);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    (
        format!("u:{}", &username[..end]),
        format!("a:{}", canonical(addr)),
    )
}
