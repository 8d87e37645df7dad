//! Login throttling: failed logins counted over a sliding 5-minute window, per username
//! and per client address. While either is at its limit, every attempt is refused
//! with a `Retry-After` before any password is checked. Successes never count.
//!
//! The counters live in memory (a restart forgets them); each key keeps at most `limit`
//! instants, so memory is bounded by the number of distinct keys seen in the window.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// Usernames are at most 64 characters; longer junk is keyed by its first 128 bytes.
const MAX_KEY_LEN: usize = 128;
/// Past this many keys, stale ones are swept on the next failure.
const SWEEP_AT: usize = 10_000;

pub struct Throttle {
    max_user: usize,
    max_addr: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, VecDeque<i64>>,
    addrs: HashMap<IpAddr, VecDeque<i64>>,
}

impl Throttle {
    pub fn new(max_user: u32, max_addr: u32) -> Throttle {
        Throttle {
            max_user: max_user as usize,
            max_addr: max_addr as usize,
            state: Mutex::new(State::default()),
        }
    }

    /// `Err(seconds)` while the username or the address is at its limit.
    pub fn check(&self, username: &str, addr: IpAddr, now: i64) -> Result<(), u64> {
        let mut state = self.lock();
        let by_user = retry_after(state.users.get_mut(key(username)), self.max_user, now);
        let by_addr = retry_after(state.addrs.get_mut(&addr), self.max_addr, now);
        match by_user.max(by_addr) {
            0 => Ok(()),
            secs => Err(secs),
        }
    }

    pub fn record_failure(&self, username: &str, addr: IpAddr, now: i64) {
        let mut state = self.lock();
        push(
            &mut state.users,
            key(username).to_string(),
            self.max_user,
            now,
        );
        push(&mut state.addrs, addr, self.max_addr, now);
        if state.users.len() + state.addrs.len() > SWEEP_AT {
            sweep(&mut state.users, now);
            sweep(&mut state.addrs, now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent in a
        // way that matters (worst case one failure is not counted), so keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn key(username: &str) -> &str {
    let mut end = username.len().min(MAX_KEY_LEN);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    &username[..end]
}

fn prune(failures: &mut VecDeque<i64>, now: i64) {
    while failures.front().is_some_and(|t| *t <= now - WINDOW_MS) {
        failures.pop_front();
    }
}

/// Seconds until the window frees up, or 0 when under the limit.
fn retry_after(failures: Option<&mut VecDeque<i64>>, limit: usize, now: i64) -> u64 {
    let Some(failures) = failures else { return 0 };
    prune(failures, now);
    if failures.len() < limit {
        return 0;
    }
    // Only the newest `limit` instants are kept, so the oldest kept one leaving the
    // window brings the count under the limit.
    let frees_at = failures.front().map_or(now, |t| t + WINDOW_MS);
    (((frees_at - now).max(1) + 999) / 1000) as u64
}

fn push<K: Hash + Eq>(map: &mut HashMap<K, VecDeque<i64>>, k: K, limit: usize, now: i64) {
    let failures = map.entry(k).or_default();
    prune(failures, now);
    failures.push_back(now);
    while failures.len() > limit {
        failures.pop_front();
    }
}

fn sweep<K: Hash + Eq>(map: &mut HashMap<K, VecDeque<i64>>, now: i64) {
    map.retain(|_, failures| {
        prune(failures, now);
        !failures.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_username_is_refused_after_its_limit_until_the_window_frees() {
        let t = Throttle::new(3, 100);
        for i in 0..3 {
            assert_eq!(t.check("alice", A, 1000 + i), Ok(()));
            t.record_failure("alice", A, 1000 + i);
        }
        // From another address too: the username is what is over its limit.
        assert_eq!(t.check("alice", B, 2000), Err(299));
        assert_eq!(t.check("bob", B, 2000), Ok(()));
        assert_eq!(t.check("alice", B, 1000 + WINDOW_MS - 1), Err(1));
        assert_eq!(t.check("alice", B, 1000 + WINDOW_MS), Ok(()));
    }

    #[test]
    fn an_address_is_refused_after_its_limit_for_every_username() {
        let t = Throttle::new(100, 2);
        t.record_failure("u1", A, 0);
        t.record_failure("u2", A, 60_000);
        assert_eq!(t.check("u3", A, 120_000), Err(180));
        assert_eq!(t.check("u3", B, 120_000), Ok(()));
    }

    #[test]
    fn memory_stays_bounded_per_key() {
        let t = Throttle::new(5, 5);
        for i in 0..1000 {
            t.record_failure("mallory", A, i);
        }
        assert_eq!(t.lock().users["mallory"].len(), 5);
    }
}
