//! `Validator`: how a Rust service accepts appliance tokens — `GET /api/validate` with
//! a short, bounded cache of positive answers, failing closed when the server is away.
//!
//! The cache trades at most one TTL of revocation delay for not asking the server on
//! every request; a break-glass bump seen through any token of a user invalidates that
//! user's older cached answers at once.
//!
//! Signed access tokens (`v4.public.…`) are verified offline: the signature with the
//! keys of `GET /oauth/keys` (kept; an unknown `kid` refetches them at most once per
//! 30 s), `iss` and `exp` (with a leeway of at most 30 s), then the `sv` claim against
//! the user's current session_version, from the cache while fresh, else from
//! `GET /api/userinfo` with the token itself. With a warm cache no request is sent.
//! What that gives up: revoking one session reaches an offline verifier only at the
//! token's `exp`; a break-glass bump, within the TTL.
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

use pasetors::keys::AsymmetricPublicKey;
use pasetors::version4::V4;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::advice::{classify, Class, Failure};
use super::http::Client;
use crate::auth::access;
use crate::clock::{rfc3339, Clock, SystemClock};

const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// An unknown `kid` refetches the keys at most this often.
const KEY_REFETCH_MS: i64 = 30_000;
/// The largest clock skew allowed on `exp`, and the default.
const MAX_LEEWAY: Duration = Duration::from_secs(30);
const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
const DEFAULT_CAPACITY: usize = 10_000;

/// Who a valid token belongs to: the body of `GET /api/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    /// The user id.
    pub sub: String,
    pub username: String,
    pub session_version: i64,
    /// `session`, `pat` or `access` (a signed access token).
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

/// The verification keys of the server, replaced whole on each fetch (so the map holds
/// only what the server serves), and when they were last asked for.
#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, AsymmetricPublicKey<V4>>,
    fetched_at_ms: Option<i64>,
    /// Why the last fetch failed, if it did: repeated (fail closed) until the next.
    failure: Option<String>,
}

/// Validates tokens against one appliance server. Cheap to share between threads.
pub struct Validator {
    client: Client,
    ttl_ms: i64,
    issuer: String,
    leeway_ms: i64,
    clock: Arc<dyn Clock>,
    cache: Arc<dyn Cache>,
    keys: Mutex<Keys>,
    /// Held by the one caller fetching `/oauth/keys`.
    fetching: Mutex<()>,
}

impl Validator {
    /// A validator for the server at `base_url` (such as `http://127.0.0.1:8080`), with a
    /// 60 s TTL, the system clock and a `MemoryCache` of 10 000 entries.
    pub fn new(base_url: &str) -> Validator {
        let base = base_url.trim_end_matches('/').to_string();
        Validator {
            client: Client::new(vec![base.clone()]),
            ttl_ms: duration_ms(DEFAULT_TTL),
            issuer: base,
            leeway_ms: duration_ms(DEFAULT_LEEWAY),
            clock: Arc::new(SystemClock),
            cache: Arc::new(MemoryCache::new(DEFAULT_CAPACITY)),
            keys: Mutex::new(Keys::default()),
            fetching: Mutex::new(()),
        }
    }

    /// The `iss` signed access tokens must carry: the server's `--issuer` (default: the
    /// base URL given to `new`).
    pub fn issuer(mut self, issuer: &str) -> Validator {
        self.issuer = issuer.trim_end_matches('/').to_string();
        self
    }

    /// Clock skew allowed on a signed token's `exp` (default 5 s, at most 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Validator {
        self.leeway_ms = duration_ms(leeway.min(MAX_LEEWAY));
        self
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
        if access::looks_like(token) {
            return self.validate_signed(token);
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

    /// A signed access token, offline: signature, issuer, expiry, then `sv` against the
    /// user's current session_version (cached, else asked with the token itself).
    fn validate_signed(&self, token: &str) -> Result<Identity, ValidateError> {
        let now = self.clock.now_ms();
        let kid = access::kid_of(token).map_err(|_| invalid("unknown"))?;
        let key = self.key(&kid, now)?.ok_or_else(|| invalid("unknown"))?;
        let claims = access::verify(&key, token).map_err(|_| invalid("unknown"))?;
        if claims.iss != self.issuer {
            return Err(invalid("unknown"));
        }
        if claims.exp.saturating_add(self.leeway_ms) <= now {
            return Err(invalid("expired"));
        }
        let current = match self
            .cache
            .user_version(&claims.sub)
            .filter(|seen| self.is_fresh(seen.seen_at_ms, now))
        {
            Some(seen) => {
                if claims.sv > seen.version {
                    // Signed after a bump we had not seen: the user's version is at
                    // least this now (kept with the old timestamp: no longer trust).
                    self.cache.note_user_version(
                        &claims.sub,
                        SeenVersion {
                            version: claims.sv,
                            seen_at_ms: seen.seen_at_ms,
                        },
                    );
                }
                seen.version
            }
            None => self.fetch_version(token, &claims.sub, now)?,
        };
        if claims.sv < current {
            return Err(ValidateError::Stale);
        }
        Ok(Identity {
            sub: claims.sub,
            username: claims.username,
            session_version: claims.sv,
            token_type: "access".into(),
            expires_at: Some(rfc3339(claims.exp)),
        })
    }

    /// The user's session_version from `GET /api/userinfo` with the token itself.
    fn fetch_version(&self, token: &str, sub: &str, now: i64) -> Result<i64, ValidateError> {
        let answer = self
            .client
            .send("GET", "/api/userinfo", Some(token), None)
            .map_err(refusal)?;
        let identity: Identity = serde_json::from_value(answer.json)
            .ok()
            .filter(|i: &Identity| i.sub == sub)
            .ok_or_else(|| {
                ValidateError::Transient(format!(
                    "{} answered /api/userinfo with an unexpected body",
                    answer.url
                ))
            })?;
        self.cache.note_user_version(
            sub,
            SeenVersion {
                version: identity.session_version,
                seen_at_ms: now,
            },
        );
        Ok(identity.session_version)
    }

    /// The verification key `kid`: from the kept keys, else (at most once per 30 s)
    /// from a fresh `GET /oauth/keys`. `None`: the server does not serve it.
    fn key(&self, kid: &str, now: i64) -> Result<Option<AsymmetricPublicKey<V4>>, ValidateError> {
        if let Some(key) = self.known_key(kid) {
            return Ok(Some(key));
        }
        // One fetch at a time; tokens under known keys never wait for it (they only
        // take `keys`, which is never held across a request).
        let _fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = self.known_key(kid) {
            return Ok(Some(key)); // fetched by the caller we waited for
        }
        {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            let recently = keys
                .fetched_at_ms
                .is_some_and(|at| at <= now && now - at < KEY_REFETCH_MS);
            if recently {
                return match &keys.failure {
                    Some(e) => Err(ValidateError::Transient(e.clone())),
                    None => Ok(None),
                };
            }
            // Counted as an attempt even if it fails: a down server is not hammered.
            keys.fetched_at_ms = Some(now);
        }
        let fetched = self.client.send("GET", "/oauth/keys", None, None);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let answer = match fetched {
            Ok(a) => a,
            Err(f) => {
                keys.failure = Some(f.raw());
                return Err(ValidateError::Transient(f.raw()));
            }
        };
        keys.failure = None;
        let listed = answer.json["keys"].as_array().cloned().unwrap_or_default();
        keys.by_kid = listed
            .iter()
            .take(DEFAULT_CAPACITY)
            .filter_map(|k| {
                let id = k["kid"].as_str()?;
                let public = access::public_key(id, k["public_key"].as_str()?)?;
                Some((id.to_string(), public))
            })
            .collect();
        Ok(keys.by_kid.get(kid).cloned())
    }

    fn known_key(&self, kid: &str) -> Option<AsymmetricPublicKey<V4>> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.by_kid.get(kid).cloned()
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

    mod signed {
        use super::*;
        use crate::auth::access::{generate_key, sign, Claims, KeyMaterial};

        const ISS: &str = "https://auth.example.com";

        fn keys_body(keys: &[&KeyMaterial]) -> String {
            let list: Vec<serde_json::Value> = keys
                .iter()
                .map(|k| {
                    serde_json::json!({"kid": k.kid, "public_key": k.public_key,
                        "status": "active", "created_at": "2026-11-01T00:00:00Z"})
                })
                .collect();
            serde_json::json!({ "keys": list }).to_string()
        }

        fn token(key: &KeyMaterial, sv: i64, iss: &str, exp: i64) -> String {
            let claims = Claims {
                iss: iss.into(),
                sub: "usr_1".into(),
                username: "alice".into(),
                sv,
                sid: "tok_1".into(),
                jti: format!("j{sv}{exp}"),
                iat: T0,
                exp,
            };
            sign(&key.secret_key, &key.kid, &claims).unwrap()
        }

        struct Fixture {
            server: FakeServer,
            v: Validator,
            clock: Arc<FixedClock>,
            key: KeyMaterial,
        }

        fn fixture() -> Fixture {
            let key = generate_key().unwrap();
            let server = FakeServer::start(404, "{}");
            server.set_path("/oauth/keys", 200, &keys_body(&[&key]));
            server.set_path("/api/userinfo", 200, &body(1));
            let (v, clock) = setup(&server);
            Fixture {
                v: v.issuer(ISS),
                server,
                clock,
                key,
            }
        }

        #[test]
        fn a_warm_cache_sends_no_request() {
            let f = fixture();
            let one = token(&f.key, 1, ISS, T0 + 3_600_000);
            let id = f.v.validate(&one).unwrap();
            assert_eq!(
                (id.sub.as_str(), id.token_type.as_str()),
                ("usr_1", "access")
            );
            assert_eq!(f.server.hits_on("/oauth/keys"), 1);
            assert_eq!(f.server.hits_on("/api/userinfo"), 1);
            // The same token again, and another token of the same user: no request.
            f.clock.advance(30_000);
            f.v.validate(&one).unwrap();
            f.v.validate(&token(&f.key, 1, ISS, T0 + 7_200_000))
                .unwrap();
            assert_eq!(f.server.hits(), 2);
        }

        #[test]
        fn a_break_glass_bump_is_seen_within_the_ttl() {
            let f = fixture();
            let old = token(&f.key, 1, ISS, T0 + 3_600_000);
            f.v.validate(&old).unwrap();
            f.server.set_path("/api/userinfo", 401, &stale());
            f.clock.advance(59_000);
            assert!(f.v.validate(&old).is_ok(), "cached within the TTL");
            f.clock.advance(1_000);
            assert_eq!(f.v.validate(&old), Err(ValidateError::Stale));
            assert_eq!(f.server.hits_on("/api/userinfo"), 2);
        }

        #[test]
        fn a_newer_version_seen_for_the_user_makes_older_tokens_stale_at_once() {
            let f = fixture();
            let old = token(&f.key, 1, ISS, T0 + 3_600_000);
            f.v.validate(&old).unwrap();
            // A token issued after a bump carries the new version; it is signed, so the
            // user's version is at least that.
            f.v.validate(&token(&f.key, 2, ISS, T0 + 3_600_000))
                .unwrap();
            assert_eq!(f.v.validate(&old), Err(ValidateError::Stale));
            assert_eq!(f.server.hits(), 2);
        }

        #[test]
        fn a_key_rotation_is_picked_up_through_one_refetch() {
            let f = fixture();
            f.v.validate(&token(&f.key, 1, ISS, T0 + 3_600_000))
                .unwrap();
            let next = generate_key().unwrap();
            f.server
                .set_path("/oauth/keys", 200, &keys_body(&[&next, &f.key]));
            f.clock.advance(30_000);
            f.v.validate(&token(&next, 1, ISS, T0 + 3_600_000)).unwrap();
            assert_eq!(f.server.hits_on("/oauth/keys"), 2);
            // An unknown key: Invalid, and refetched at most once per 30 s.
            let stranger = generate_key().unwrap();
            let foreign = token(&stranger, 1, ISS, T0 + 3_600_000);
            let unknown = Err(ValidateError::Invalid {
                reason: "unknown".into(),
            });
            assert_eq!(f.v.validate(&foreign), unknown);
            f.clock.advance(29_999);
            assert_eq!(f.v.validate(&foreign), unknown);
            assert_eq!(f.server.hits_on("/oauth/keys"), 2);
            f.clock.advance(1);
            assert_eq!(f.v.validate(&foreign), unknown);
            assert_eq!(f.server.hits_on("/oauth/keys"), 3);
            // Known keys keep working without a request.
            f.v.validate(&token(&f.key, 1, ISS, T0 + 3_600_000))
                .unwrap();
            assert_eq!(f.server.hits_on("/oauth/keys"), 3);
        }

        #[test]
        fn another_issuer_or_a_changed_byte_is_invalid() {
            let f = fixture();
            let unknown = Err(ValidateError::Invalid {
                reason: "unknown".into(),
            });
            let elsewhere = token(&f.key, 1, "https://evil.example.com", T0 + 3_600_000);
            assert_eq!(f.v.validate(&elsewhere), unknown);
            let good = token(&f.key, 1, ISS, T0 + 3_600_000);
            let tampered = good.replacen("v4.public.ey", "v4.public.ez", 1);
            assert_eq!(f.v.validate(&tampered), unknown);
            assert_eq!(f.v.validate("v4.public.garbage"), unknown);
            assert_eq!(f.server.hits_on("/api/userinfo"), 0);
        }

        #[test]
        fn expiry_allows_the_leeway_and_no_more() {
            let f = fixture();
            let t = token(&f.key, 1, ISS, T0 + 10_000);
            f.v.validate(&t).unwrap();
            f.clock.advance(14_000);
            assert!(f.v.validate(&t).is_ok(), "within the 5 s leeway");
            f.clock.advance(1_000);
            assert_eq!(
                f.v.validate(&t),
                Err(ValidateError::Invalid {
                    reason: "expired".into()
                })
            );
            // The leeway is capped at 30 s.
            let lax = Validator::new(&f.server.url)
                .issuer(ISS)
                .leeway(Duration::from_secs(3_600))
                .clock(f.clock.clone());
            f.clock.advance(30_000);
            assert!(matches!(
                lax.validate(&t),
                Err(ValidateError::Invalid { .. })
            ));
        }

        #[test]
        fn a_failed_fetch_fails_closed() {
            let f = fixture();
            f.server.set_path("/api/userinfo", 503, "");
            let t = token(&f.key, 1, ISS, T0 + 3_600_000);
            assert!(matches!(f.v.validate(&t), Err(ValidateError::Transient(_))));
            // The keys endpoint down: a token under a new key is not accepted either,
            // and the refusal is repeated, not turned into Invalid, until a refetch.
            f.server
                .set_path("/oauth/keys", 500, r#"{"error":"internal","message":"x"}"#);
            let next = generate_key().unwrap();
            let t2 = token(&next, 1, ISS, T0 + 3_600_000);
            f.clock.advance(31_000);
            assert!(matches!(
                f.v.validate(&t2),
                Err(ValidateError::Transient(_))
            ));
            assert!(matches!(
                f.v.validate(&t2),
                Err(ValidateError::Transient(_))
            ));
        }
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
