//! Login throttling: failed logins counted over a sliding 5-minute window, per username
//! and per client address. While either is at its limit, every attempt is refused
//! with a `Retry-After` before any password is checked. Successes never count.
//!
//! An attempt is *reserved* before its password is hashed and *settled* once the
//! answer is known: a reservation counts against both limits from the moment it is
//! made, so however many attempts for one username arrive at once, at most the limit
//! of them are ever checked inside the window. A success (or an attempt that was not
//! checked at all, e.g. refused by a busy hashing pool) gives its reservation back; a
//! failure keeps it as the failure's instant.
//!
//! `Throttle` is the interface (reserve → settle); `MemoryThrottle` keeps the counters
//! in this process (a restart forgets them). `shared_throttle::DbThrottle` implements
//! the same two calls on one table for every replica (PostgreSQL).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// Usernames are at most 64 characters; longer junk is keyed by its first 128 bytes.
const MAX_KEY_LEN: usize = 128;
/// Past this many keys, stale ones are swept on the next reservation.
const SWEEP_AT: usize = 10_000;

/// A login attempt that may go on to check its password. Settle it exactly once.
#[must_use = "a reservation must be settled with the attempt's outcome"]
#[derive(Debug, PartialEq, Eq)]
pub struct Reservation(pub u64);

/// How a reserved attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The password was right: the reservation is given back (successes never count).
    Success,
    /// Wrong password or unknown user: the reservation stays, a failure in the window.
    Failure,
    /// The password was never checked (busy pool, storage error): given back.
    NotChecked,
}

/// Why an attempt may not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The username or the address is at its limit: retry after this many seconds.
    Wait(u64),
    /// A shared counter could not be reached (the detail is for the log).
    Unavailable(String),
}

pub trait Throttle: Send + Sync {
    /// Reserves one attempt for `username` from `addr` at `now` (Unix ms), or
    /// `Err(Refused::Wait(seconds))` while either is at its limit (reservations
    /// included).
    fn reserve(&self, username: &str, addr: IpAddr, now: i64) -> Result<Reservation, Refused>;
    /// Records how the reserved attempt ended.
    fn settle(&self, reservation: Reservation, outcome: Outcome);
}

/// The counters in memory. Each key keeps at most `limit` entries (a reservation is
/// refused at the limit), so memory is bounded by the keys seen in the window.
pub struct MemoryThrottle {
    max_user: usize,
    max_addr: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    users: HashMap<String, VecDeque<Entry>>,
    addrs: HashMap<IpAddr, VecDeque<Entry>>,
    /// Open reservations: where to find them when they are settled.
    open: HashMap<u64, (String, IpAddr)>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: i64,
    id: u64,
}

impl MemoryThrottle {
    pub fn new(max_user: u32, max_addr: u32) -> MemoryThrottle {
        MemoryThrottle {
            max_user: max_user as usize,
            max_addr: max_addr as usize,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent in a
        // way that matters (worst case one attempt is not counted), so keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Throttle for MemoryThrottle {
    fn reserve(&self, username: &str, addr: IpAddr, now: i64) -> Result<Reservation, Refused> {
        let mut state = self.lock();
        let user = key(username);
        let by_user = retry_after(state.users.get_mut(user), self.max_user, now);
        let by_addr = retry_after(state.addrs.get_mut(&addr), self.max_addr, now);
        if by_user.max(by_addr) > 0 {
            return Err(Refused::Wait(by_user.max(by_addr)));
        }
        if state.users.len() + state.addrs.len() > SWEEP_AT {
            sweep(&mut state.users, now);
            sweep(&mut state.addrs, now);
        }
        let id = state.next_id;
        state.next_id += 1;
        let entry = Entry { at: now, id };
        state
            .users
            .entry(user.to_string())
            .or_default()
            .push_back(entry);
        state.addrs.entry(addr).or_default().push_back(entry);
        // Open reservations are bounded too: each is one of the (bounded) entries above.
        state.open.insert(id, (user.to_string(), addr));
        Ok(Reservation(id))
    }

    fn settle(&self, reservation: Reservation, outcome: Outcome) {
        let mut state = self.lock();
        let Some((user, addr)) = state.open.remove(&reservation.0) else {
            return;
        };
        if outcome == Outcome::Failure {
            return;
        }
        let id = reservation.0;
        if let Some(entries) = state.users.get_mut(&user) {
            entries.retain(|e| e.id != id);
        }
        if let Some(entries) = state.addrs.get_mut(&addr) {
            entries.retain(|e| e.id != id);
        }
    }
}

/// The username as counted: its first 128 bytes (usernames are at most 64 characters).
pub(crate) fn key(username: &str) -> &str {
    let mut end = username.len().min(MAX_KEY_LEN);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    &username[..end]
}

fn prune(entries: &mut VecDeque<Entry>, now: i64) {
    while entries.front().is_some_and(|e| e.at <= now - WINDOW_MS) {
        entries.pop_front();
    }
}

/// Seconds until the window frees up, or 0 when under the limit.
fn retry_after(entries: Option<&mut VecDeque<Entry>>, limit: usize, now: i64) -> u64 {
    let Some(entries) = entries else { return 0 };
    prune(entries, now);
    if entries.len() < limit {
        return 0;
    }
    // Entries are in time order and never more than `limit`: the oldest one leaving
    // the window brings the count under the limit.
    let frees_at = entries.front().map_or(now, |e| e.at + WINDOW_MS);
    (((frees_at - now).max(1) + 999) / 1000) as u64
}

fn sweep<K: Hash + Eq>(map: &mut HashMap<K, VecDeque<Entry>>, now: i64) {
    map.retain(|_, entries| {
        prune(entries, now);
        !entries.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn fail(t: &MemoryThrottle, user: &str, addr: IpAddr, now: i64) {
        let r = t.reserve(user, addr, now).unwrap();
        t.settle(r, Outcome::Failure);
    }

    #[test]
    fn a_username_is_refused_after_its_limit_until_the_window_frees() {
        let t = MemoryThrottle::new(3, 100);
        for i in 0..3 {
            fail(&t, "alice", A, 1000 + i);
        }
        // From another address too: the username is what is over its limit.
        assert_eq!(t.reserve("alice", B, 2000), Err(Refused::Wait(299)));
        assert!(t.reserve("bob", B, 2000).is_ok());
        assert_eq!(
            t.reserve("alice", B, 1000 + WINDOW_MS - 1),
            Err(Refused::Wait(1))
        );
        assert!(t.reserve("alice", B, 1000 + WINDOW_MS).is_ok());
    }

    #[test]
    fn an_address_is_refused_after_its_limit_for_every_username() {
        let t = MemoryThrottle::new(100, 2);
        fail(&t, "u1", A, 0);
        fail(&t, "u2", A, 60_000);
        assert_eq!(t.reserve("u3", A, 120_000), Err(Refused::Wait(180)));
        assert!(t.reserve("u3", B, 120_000).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_before_their_outcome_is_known() {
        let t = MemoryThrottle::new(3, 100);
        let open: Vec<_> = (0..3).map(|_| t.reserve("alice", A, 0).unwrap()).collect();
        // Three passwords are being checked: a fourth is not even started.
        assert!(t.reserve("alice", A, 0).is_err());
        let mut open = open.into_iter();
        t.settle(open.next().unwrap(), Outcome::Success);
        t.settle(open.next().unwrap(), Outcome::NotChecked);
        // Successes and unchecked attempts give their place back; failures keep it.
        let again = t.reserve("alice", A, 1).unwrap();
        t.settle(open.next().unwrap(), Outcome::Failure);
        t.settle(again, Outcome::Failure);
        assert!(t.reserve("alice", A, 2).is_ok());
        assert!(t.reserve("alice", A, 2).is_err());
    }

    #[test]
    fn memory_stays_bounded_per_key() {
        let t = MemoryThrottle::new(5, 5);
        for i in 0..1000 {
            if let Ok(r) = t.reserve("mallory", A, i) {
                t.settle(r, Outcome::Failure);
            }
        }
        let state = t.lock();
        assert_eq!(state.users["mallory"].len(), 5);
        assert!(state.open.is_empty());
    }
}
