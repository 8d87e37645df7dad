//! `Validator`: how a Rust service accepts appliance tokens — `GET /api/validate` with
//! a short, bounded cache of positive answers, failing closed when the server is away.
//!
//! The cache trades at most one TTL of revocation delay for not asking the server on
//! every request; a break-glass bump seen through any token of a user invalidates that
//! user's older cached answers at once.
//!
//! ```no_run
//! use std::time::Duration;
//! use appliance::client::{ValidateError, Validator};
//!
//! let validator = Validator::new("http://127.0.0.1:8080").ttl(Duration::from_secs(30));
//! match validator.validate("aps_...") {
//!     Ok(who) => println!("request from {} ({})", who.username, who.sub),
//!     Err(ValidateError::Transient(e)) => eprintln!("refused for now, server away: {e}"),
//!     Err(e) => eprintln!("refused: {e}"),
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::advice::{classify, Class, Failure};
use super::http::Client;
use crate::clock::{Clock, SystemClock};

const DEFAULT_TTL: Duration = Duration::from_secs(60);
const DEFAULT_CAPACITY: usize = 10_000;

/// Who a valid token belongs to: the body of `GET /api/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    /// The user id.
    pub sub: String,
    pub username: String,
    pub session_version: i64,
    /// `session` or `pat`.
    pub token_type: String,
    /// RFC 3339, or `None` for a PAT that never expires.
    pub expires_at: Option<String>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidateError {
    /// The server refused the token (`reason`: `missing`, `unknown`, `expired`, `revoked`).
    Invalid { reason: String },
    /// The token was issued before its user's sessions were revoked (break-glass).
    Stale,
    /// The server could not answer (network, 5xx, timeout). The token is NOT accepted.
    Transient(String),
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidateError::Invalid { reason } => write!(f, "token refused ({reason})"),
            ValidateError::Stale => {
                write!(f, "token issued before the user's sessions were revoked")
            }
            ValidateError::Transient(e) => write!(f, "could not validate the token: {e}"),
        }
    }
}

impl std::error::Error for ValidateError {}

/// The cache key: sha256 of the token, so the cache never holds a usable token.
pub type TokenKey = [u8; 32];

/// A positive answer and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    pub identity: Identity,
    pub fetched_at_ms: i64,
}

/// A user's session version and when it was last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenVersion {
    pub version: i64,
    pub seen_at_ms: i64,
}

/// Where the `Validator` keeps answers. Implementations must be bounded in size;
/// the `Validator` decides freshness, the cache only stores.
pub trait Cache: Send + Sync {
    fn get(&self, key: &TokenKey) -> Option<CachedAnswer>;
    fn put(&self, key: TokenKey, answer: CachedAnswer);
    fn remove(&self, key: &TokenKey);
    fn user_version(&self, user_id: &str) -> Option<SeenVersion>;
    /// Records `seen` unless a higher version is already held (versions only grow).
    fn note_user_version(&self, user_id: &str, seen: SeenVersion);
}

/// The default cache: two maps behind a mutex, each holding at most `capacity`
/// entries; when full, the oldest entry makes room.
pub struct MemoryCache {
    capacity: usize,
    inner: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    answers: HashMap<TokenKey, CachedAnswer>,
    users: HashMap<String, SeenVersion>,
}

impl MemoryCache {
    pub fn new(capacity: usize) -> MemoryCache {
        MemoryCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Maps::default()),
        }
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        // A panic elsewhere cannot leave two plain maps inconsistent; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Cache for MemoryCache {
    fn get(&self, key: &TokenKey) -> Option<CachedAnswer> {
        self.maps().answers.get(key).cloned()
    }

    fn put(&self, key: TokenKey, answer: CachedAnswer) {
        let mut maps = self.maps();
        if maps.answers.len() >= self.capacity && !maps.answers.contains_key(&key) {
            let oldest = maps
                .answers
                .iter()
                .min_by_key(|(_, a)| a.fetched_at_ms)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                maps.answers.remove(&k);
            }
        }
        maps.answers.insert(key, answer);
    }

    fn remove(&self, key: &TokenKey) {
        self.maps().answers.remove(key);
    }

    fn user_version(&self, user_id: &str) -> Option<SeenVersion> {
        self.maps().users.get(user_id).copied()
    }

    fn note_user_version(&self, user_id: &str, seen: SeenVersion) {
        let mut maps = self.maps();
        if let Some(held) = maps.users.get_mut(user_id) {
            if seen.version >= held.version {
                *held = seen;
            }
            return;
        }
        if maps.users.len() >= self.capacity {
            let oldest = maps
                .users
                .iter()
                .min_by_key(|(_, s)| s.seen_at_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                maps.users.remove(&k);
            }
        }
        maps.users.insert(user_id.to_string(), seen);
    }
}

/// Validates tokens against one appliance server. Cheap to share between threads.
pub struct Validator {
    client: Client,
    ttl_ms: i64,
    clock: Arc<dyn Clock>,
    cache: Arc<dyn Cache>,
}

impl Validator {
    /// A validator for the server at `base_url` (such as `http://127.0.0.1:8080`), with a
    /// 60 s TTL, the system clock and a `MemoryCache` of 10 000 entries.
    pub fn new(base_url: &str) -> Validator {
        Validator {
            client: Client::new(vec![base_url.trim_end_matches('/').to_string()]),
            ttl_ms: duration_ms(DEFAULT_TTL),
            clock: Arc::new(SystemClock),
            cache: Arc::new(MemoryCache::new(DEFAULT_CAPACITY)),
        }
    }

    /// How long a positive answer is trusted without asking the server again.
    /// This is the longest a revocation can go unnoticed.
    pub fn ttl(mut self, ttl: Duration) -> Validator {
        self.ttl_ms = duration_ms(ttl);
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Validator {
        self.clock = clock;
        self
    }

    pub fn cache(mut self, cache: Arc<dyn Cache>) -> Validator {
        self.cache = cache;
        self
    }

    /// Who `token` belongs to, from the cache while fresh, else from the server.
    pub fn validate(&self, token: &str) -> Result<Identity, ValidateError> {
        if token.is_empty() {
            return Err(invalid("missing"));
        }
        // A token the server could never have issued (and that could not even be sent
        // as a header) is refused without a request.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("unknown"));
        }
        let key = token_key(token);
        let now = self.clock.now_ms();
        if let Some(hit) = self.cache.get(&key) {
            if self.is_fresh(hit.fetched_at_ms, now) && !has_expired(&hit.identity, now) {
                let newer = self
                    .cache
                    .user_version(&hit.identity.sub)
                    .filter(|seen| self.is_fresh(seen.seen_at_ms, now))
                    .is_some_and(|seen| seen.version > hit.identity.session_version);
                if newer {
                    self.cache.remove(&key);
                    return Err(ValidateError::Stale);
                }
                return Ok(hit.identity);
            }
            self.cache.remove(&key);
        }
        self.fetch(token, key, now)
    }

    fn fetch(&self, token: &str, key: TokenKey, now: i64) -> Result<Identity, ValidateError> {
        let answer = self
            .client
            .send("GET", "/api/validate", Some(token), None)
            .map_err(refusal)?;
        let identity: Identity = serde_json::from_value(answer.json).map_err(|_| {
            ValidateError::Transient(format!(
                "{} answered /api/validate with an unexpected body",
                answer.url
            ))
        })?;
        self.cache.note_user_version(
            &identity.sub,
            SeenVersion {
                version: identity.session_version,
                seen_at_ms: now,
            },
        );
        self.cache.put(
            key,
            CachedAnswer {
                identity: identity.clone(),
                fetched_at_ms: now,
            },
        );
        Ok(identity)
    }

    /// Fresh within the TTL; an instant in the future (a clock stepped back) is not.
    fn is_fresh(&self, at_ms: i64, now: i64) -> bool {
        at_ms <= now && now - at_ms < self.ttl_ms
    }
}

/// The error of a failed `/api/validate`: only a 401 says anything about the token;
/// everything else is the server's problem, and the token is refused for now.
fn refusal(f: Failure) -> ValidateError {
    match (classify(&f), &f) {
        (Class::Auth, Failure::Status { reason, .. }) => match reason.as_deref() {
            Some("stale") => ValidateError::Stale,
            Some(r) => invalid(r),
            None => invalid("unknown"),
        },
        _ => ValidateError::Transient(f.raw()),
    }
}

/// A cached answer is not trusted past the token's own expiry, even within the TTL.
fn has_expired(identity: &Identity, now: i64) -> bool {
    match &identity.expires_at {
        None => false,
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            // An expiry that does not parse cannot vouch for the token: ask again.
            .map_or(true, |at| at.timestamp_millis() <= now),
    }
}

fn invalid(reason: &str) -> ValidateError {
    ValidateError::Invalid {
        reason: reason.to_string(),
    }
}

fn token_key(token: &str) -> TokenKey {
    Sha256::digest(token.as_bytes()).into()
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake_server::FakeServer;
    use crate::clock::FixedClock;

    const T0: i64 = 1_795_000_000_000;

    fn body(version: i64) -> String {
        format!(
            r#"{{"sub":"usr_1","username":"alice","session_version":{version},"token_type":"session","expires_at":"2026-12-01T00:00:00Z"}}"#
        )
    }

    fn stale() -> String {
        r#"{"error":"invalid_token","message":"stale","reason":"stale"}"#.to_string()
    }

    fn setup(server: &FakeServer) -> (Validator, Arc<FixedClock>) {
        let clock = Arc::new(FixedClock::new(T0));
        let v = Validator::new(&server.url)
            .ttl(Duration::from_secs(60))
            .clock(clock.clone());
        (v, clock)
    }

    #[test]
    fn a_cached_answer_within_the_ttl_makes_no_request() {
        let server = FakeServer::start(200, &body(1));
        let (v, clock) = setup(&server);
        let id = v.validate("aps_one").unwrap();
        assert_eq!(id.username, "alice");
        assert_eq!(server.hits(), 1);
        clock.advance(59_000);
        assert_eq!(v.validate("aps_one").unwrap(), id);
        assert_eq!(server.hits(), 1);
        // Another token is another entry.
        v.validate("aps_two").unwrap();
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn validators_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Validator>();
        shareable::<MemoryCache>();
    }

    #[test]
    fn a_cached_answer_is_not_used_past_the_token_expiry() {
        let expires = crate::clock::rfc3339(T0 + 30_000);
        let server = FakeServer::start(200, &body(1).replace("2026-12-01T00:00:00Z", &expires));
        let (v, clock) = setup(&server);
        v.validate("aps_one").unwrap();
        clock.advance(29_000);
        v.validate("aps_one").unwrap();
        assert_eq!(server.hits(), 1);
        clock.advance(1_000);
        server.set(
            401,
            r#"{"error":"invalid_token","message":"expired","reason":"expired"}"#,
        );
        assert_eq!(
            v.validate("aps_one"),
            Err(ValidateError::Invalid {
                reason: "expired".into()
            })
        );
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn an_expired_entry_is_fetched_again() {
        let server = FakeServer::start(200, &body(1));
        let (v, clock) = setup(&server);
        v.validate("aps_one").unwrap();
        clock.advance(60_000);
        v.validate("aps_one").unwrap();
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn a_break_glass_bump_is_seen_after_the_ttl() {
        let server = FakeServer::start(200, &body(1));
        let (v, clock) = setup(&server);
        v.validate("aps_old").unwrap();
        server.set(401, &stale());
        clock.advance(30_000);
        assert!(v.validate("aps_old").is_ok(), "cached within the TTL");
        clock.advance(30_000);
        assert_eq!(v.validate("aps_old"), Err(ValidateError::Stale));
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn a_newer_version_seen_for_the_user_makes_older_cached_answers_stale() {
        let server = FakeServer::start(200, &body(1));
        let (v, _clock) = setup(&server);
        v.validate("aps_old").unwrap();
        server.set(200, &body(2));
        assert_eq!(v.validate("aps_new").unwrap().session_version, 2);
        assert_eq!(v.validate("aps_old"), Err(ValidateError::Stale));
        assert_eq!(server.hits(), 2, "the stale answer came from the cache");
    }

    #[test]
    fn other_401_reasons_are_invalid() {
        let server = FakeServer::start(
            401,
            r#"{"error":"invalid_token","message":"revoked","reason":"revoked"}"#,
        );
        let (v, _clock) = setup(&server);
        assert_eq!(
            v.validate("aps_x"),
            Err(ValidateError::Invalid {
                reason: "revoked".into()
            })
        );
    }

    #[test]
    fn a_server_outage_rejects_the_token() {
        let server = FakeServer::start(500, r#"{"error":"internal","message":"boom"}"#);
        let (v, clock) = setup(&server);
        assert!(matches!(
            v.validate("aps_x"),
            Err(ValidateError::Transient(_))
        ));
        // A cached answer that has expired is not used as a fallback during an outage.
        server.set(200, &body(1));
        v.validate("aps_x").unwrap();
        server.set(503, "");
        clock.advance(61_000);
        assert!(matches!(
            v.validate("aps_x"),
            Err(ValidateError::Transient(_))
        ));
    }

    #[test]
    fn an_unreachable_server_rejects_the_token() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let v = Validator::new(&format!("http://127.0.0.1:{port}"));
        match v.validate("aps_x") {
            Err(ValidateError::Transient(e)) => assert!(e.contains("connection refused"), "{e}"),
            other => panic!("expected Transient, got {other:?}"),
        }
    }

    #[test]
    fn malformed_tokens_are_refused_without_a_request() {
        let server = FakeServer::start(200, &body(1));
        let (v, _clock) = setup(&server);
        assert!(matches!(
            v.validate("aps_x\r\nX-Evil: 1"),
            Err(ValidateError::Invalid { .. })
        ));
        assert!(matches!(v.validate(""), Err(ValidateError::Invalid { .. })));
        assert_eq!(server.hits(), 0);
    }

    #[test]
    fn the_cache_never_holds_the_raw_token() {
        let key = token_key("aps_secret");
        assert_ne!(&key[..], b"aps_secret");
        assert_eq!(key, token_key("aps_secret"));
        assert_ne!(key, token_key("aps_secreT"));
    }

    #[test]
    fn the_memory_cache_is_bounded() {
        let cache = MemoryCache::new(2);
        let answer = |at| CachedAnswer {
            identity: serde_json::from_str(&body(1)).unwrap(),
            fetched_at_ms: at,
        };
        cache.put([1; 32], answer(1));
        cache.put([2; 32], answer(2));
        cache.put([3; 32], answer(3));
        assert!(cache.get(&[1; 32]).is_none(), "the oldest made room");
        assert!(cache.get(&[2; 32]).is_some() && cache.get(&[3; 32]).is_some());
    }

    #[test]
    fn user_versions_never_go_back() {
        let cache = MemoryCache::new(4);
        let seen = |version, at| SeenVersion {
            version,
            seen_at_ms: at,
        };
        cache.note_user_version("u", seen(3, 1));
        cache.note_user_version("u", seen(2, 2));
        assert_eq!(cache.user_version("u"), Some(seen(3, 1)));
        cache.note_user_version("u", seen(3, 5));
        assert_eq!(cache.user_version("u"), Some(seen(3, 5)));
    }
}
