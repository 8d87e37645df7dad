//! The login throttle counted in the database, for replicas on one PostgreSQL database:
//! the same reserve → settle as `MemoryThrottle`, the same limits, window and
//! `Retry-After`, but one count for every replica, so the 11th failure for a username
//! is refused whichever replica it reaches. A reservation is one row of
//! `login_attempts`, taken in the same transaction as the count (under locks on both
//! keys); a success gives the row back, a failure keeps it.
//!
//! Failed logins are rare and each already costs an Argon2id hash, so a transaction
//! before hashing costs nothing that matters.

use std::net::IpAddr;

use crate::auth::throttle::{key, Outcome, Refused, Reservation, Throttle, WINDOW_MS};
use crate::config::canonical;
use crate::db::Store;

pub struct DbThrottle {
    store: Store,
    max_user: i64,
    max_addr: i64,
}

impl DbThrottle {
    pub fn new(store: Store, max_user: u32, max_addr: u32) -> DbThrottle {
        DbThrottle {
            store,
            max_user: i64::from(max_user),
            max_addr: i64::from(max_addr),
        }
    }

    /// Forgets attempts that left the window (the purge thread; safe on every replica).
    pub fn purge(store: &Store, now: i64) -> Result<usize, crate::db::StoreError> {
        store.purge_login_attempts(now - WINDOW_MS)
    }
}

impl Throttle for DbThrottle {
    fn reserve(&self, username: &str, addr: IpAddr, now: i64) -> Result<Reservation, Refused> {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id)
            .map_err(|e| Refused::Unavailable(format!("OS random source failed: {e}")))?;
        let id = u64::from_le_bytes(id);
        let user = format!("u:{}", key(username));
        let addr = format!("a:{}", canonical(addr));
        let marks = self
            .store
            .reserve_login_attempt(
                id as i64,
                [&user, &addr],
                [self.max_user, self.max_addr],
                now,
                now - WINDOW_MS,
            )
            .map_err(|e| Refused::Unavailable(e.to_string()))?;
        // A key at its limit frees up when its limit-th newest attempt leaves the window.
        match marks.iter().flatten().max() {
            None => Ok(Reservation(id)),
            Some(at) => Err(Refused::Wait(
                (((at + WINDOW_MS - now).max(1) + 999) / 1000) as u64,
            )),
        }
    }

    fn settle(&self, reservation: Reservation, outcome: Outcome) {
        if outcome == Outcome::Failure {
            return;
        }
        if let Err(e) = self.store.release_login_attempt(reservation.0 as i64) {
            // The attempt then counts as a failure until it leaves the window.
            crate::http::log::event(
                crate::http::log::Level::Warn,
                &format!("could not give back a login attempt: {e}"),
            );
        }
    }
}
