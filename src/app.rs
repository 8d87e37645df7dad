//! The commands of the server: authenticate (with sliding), log in, issue, renew and
//! revoke tokens. Handlers parse input and call these; these decide by `now` from the
//! clock and speak to storage in domain terms. Signed access tokens and the OAuth
//! grants are in `app/oauth.rs`.

pub mod oauth;

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::auth::password::{PasswordPool, PoolError};
use crate::auth::throttle::{Outcome, Refused, Throttle};
use crate::auth::token::{self, Kind, Minted, TokenHash};
use crate::auth::valid_username;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::tokens::RevokeOutcome;
use crate::db::{AuditEntry, NewToken, Store, TokenRecord, User};
use crate::error::{Error, Reason};
use crate::metrics::Metrics;

/// `last_used_at` of a PAT is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// One day in the milliseconds every instant is counted in.
pub const DAY_MS: i64 = 86_400_000;
/// Lifetimes when no flag or variable sets them (`--pat-lifetime`, `--session-window`).
pub const DEFAULT_PAT_LIFETIME: &str = "90d";
pub const DEFAULT_SESSION_WINDOW: &str = "30d";
/// A PAT's name: 1 to this many characters, surrounding whitespace trimmed.
pub const PAT_NAME_MAX_CHARS: usize = 100;
/// A PAT's lifetime in whole days: 1 to this many.
pub const PAT_MAX_DAYS: i64 = 3650;

/// The name a PAT is stored under (trimmed), or why it cannot be one. The API answers
/// the refusal with 400, the admin CLI with exit 2.
pub fn pat_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > PAT_NAME_MAX_CHARS {
        return Err(format!(
            "The token name must be 1 to {PAT_NAME_MAX_CHARS} characters."
        ));
    }
    crate::text::check_free_text("The token name", name)?;
    Ok(name)
}

/// A PAT lifetime of `days` whole days, in ms, or why it cannot be one.
pub fn pat_lifetime_days(days: i64) -> Result<i64, String> {
    if (1..=PAT_MAX_DAYS).contains(&days) {
        Ok(days * DAY_MS)
    } else {
        Err(format!(
            "The token lifetime must be a whole number of days from 1 to {PAT_MAX_DAYS}."
        ))
    }
}

pub struct App {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub passwords: PasswordPool,
    pub throttle: Box<dyn Throttle>,
    pub metrics: Metrics,
    /// Signs the CSRF tokens of the sign-in form (shared through the database).
    pub csrf_key: Vec<u8>,
}

/// A live token and its owner, as authentication found them.
#[derive(Debug, Clone)]
pub struct Principal {
    pub record: TokenRecord,
    pub hash: TokenHash,
    /// The stored, enforced expiry after any sliding (None: never expires).
    pub expires_at: Option<i64>,
    /// For a signed access token: the kind of the session, PAT or refresh family it
    /// came from.
    pub parent: Option<Kind>,
}

impl Principal {
    pub fn kind(&self) -> Kind {
        self.record.kind
    }
    pub fn audit(&self, action: &'static str, target: &str, detail: String) -> AuditEntry {
        AuditEntry {
            actor: format!("user:{}", self.record.username),
            action,
            target: target.to_string(),
            detail,
        }
    }
}

/// Whether authenticating a session pushes its expiry forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slide {
    Yes,
    No,
}

/// A token issued to a caller: the secret (shown once) and its stored expiry.
pub struct Issued {
    pub id: String,
    pub token: String,
    pub expires_at: Option<i64>,
}

impl App {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Checks a presented token: shape, stored hash (constant-time), revocation,
    /// break-glass version, expiry. A live session slides when asked to.
    /// A signed access token is refused here (403 when valid); `authenticate_any`
    /// accepts one.
    pub fn authenticate(&self, presented: &str, slide: Slide) -> Result<Principal, Error> {
        if crate::auth::access::looks_like(presented) {
            return Err(self.refuse_access(presented));
        }
        let now = self.now();
        let (record, hash) = self.live_token(presented, now)?;
        let mut expires_at = record.expires_at;
        match record.kind {
            Kind::Session if slide == Slide::Yes => {
                expires_at = Some(self.slide(&record, &hash, now)?);
            }
            Kind::Pat => {
                if record
                    .last_used_at
                    .is_none_or(|t| now - t >= TOUCH_EVERY_MS)
                {
                    self.store.touch_token(&hash, now, TOUCH_EVERY_MS)?;
                }
            }
            Kind::Session | Kind::Refresh | Kind::Access => {}
        }
        Ok(Principal {
            record,
            hash,
            expires_at,
            parent: None,
        })
    }

    /// The live token behind `presented`, or why it is not live.
    pub fn live_token(&self, presented: &str, now: i64) -> Result<(TokenRecord, TokenHash), Error> {
        let kind = token::kind_of(presented).ok_or(Error::InvalidToken(Reason::Unknown))?;
        let hash = token::hash(presented);
        let record = self
            .store
            .lookup_token(&hash)?
            .filter(|r| token::hashes_match(&r.hash, &hash) && r.kind == kind)
            .ok_or(Error::InvalidToken(Reason::Unknown))?;
        if record.revoked_at.is_some() {
            return Err(Error::InvalidToken(Reason::Revoked));
        }
        if record.issued_version < record.user_version {
            return Err(Error::InvalidToken(Reason::Stale));
        }
        if record.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::InvalidToken(Reason::Expired));
        }
        Ok((record, hash))
    }

    /// Pushes a live session's expiry to min(now + window, created_at + lifetime), but
    /// writes only when the stored value is behind by the slack or more.
    fn slide(&self, record: &TokenRecord, hash: &TokenHash, now: i64) -> Result<i64, Error> {
        let stored = record.expires_at.unwrap_or(now);
        let target = (now + self.config.session_window_ms)
            .min(record.created_at + self.config.session_lifetime_ms);
        let slack = self.config.slide_slack_ms().max(1);
        if target - stored < slack {
            self.metrics
                .session_extensions_skipped
                .fetch_add(1, Relaxed);
            return Ok(stored);
        }
        if let Some(written) = self.store.slide_session(hash, now, target, slack)? {
            self.metrics
                .session_extensions_written
                .fetch_add(1, Relaxed);
            return Ok(written);
        }
        // The guard refused: a racing request slid it (to within the slack of our
        // target), or it was revoked or expired in between. Answer with what is stored
        // now.
        match self.store.token_expiry(hash)? {
            Some(Some(e)) if e > now => Ok(e),
            _ => Err(Error::InvalidToken(Reason::Expired)),
        }
    }

    /// The throttled, pooled password check shared by every password login (API, form,
    /// OAuth password grant). Unknown users (any shape) cost one dummy hash and get the
    /// same answer as a wrong password. The attempt is reserved with the throttle before
    /// the password is hashed, so concurrent attempts cannot overrun the limit.
    pub fn check_password(
        &self,
        username: &str,
        password: &str,
        addr: IpAddr,
    ) -> Result<User, Error> {
        let reservation = self
            .throttle
            .reserve(username, addr, self.now())
            .map_err(|refused| match refused {
                Refused::Wait(retry_after_secs) => {
                    self.metrics.login_throttled.fetch_add(1, Relaxed);
                    Error::TooManyRequests { retry_after_secs }
                }
                Refused::Unavailable(detail) => Error::Unavailable(detail),
            })?;
        let checked = self.verify_password(username, password);
        let outcome = match &checked {
            Ok(Some(_)) => Outcome::Success,
            Ok(None) => Outcome::Failure,
            Err(_) => Outcome::NotChecked,
        };
        self.throttle.settle(reservation, outcome);
        let Some(user) = checked? else {
            self.metrics.login_failures.fetch_add(1, Relaxed);
            return Err(Error::InvalidCredentials);
        };
        Ok(user)
    }

    /// Password login. Unknown users (any shape) cost one dummy hash and get the same
    /// answer as a wrong password.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        addr: IpAddr,
    ) -> Result<(Issued, User), Error> {
        let user = self.check_password(username, password, addr)?;
        let now = self.now();
        let expires_at = now
            + self
                .config
                .session_window_ms
                .min(self.config.session_lifetime_ms);
        let issued = issue(
            &self.store,
            Kind::Session,
            &user.id,
            None,
            now,
            Some(expires_at),
            None,
        )?;
        self.metrics.logins.fetch_add(1, Relaxed);
        Ok((issued, user))
    }

    /// The user whose password this is (None: wrong password or unknown user), or why
    /// the password could not be checked.
    fn verify_password(&self, username: &str, password: &str) -> Result<Option<User>, Error> {
        let found = if valid_username(username) {
            self.store.user_for_login(username)?
        } else {
            None
        };
        self.metrics.login_queue_depth.fetch_add(1, Relaxed);
        let verified = self
            .passwords
            .verify(password, found.as_ref().map(|(_, phc)| phc.as_str()));
        self.metrics.login_queue_depth.fetch_sub(1, Relaxed);
        match verified {
            Ok(true) => Ok(found.map(|(user, _)| user)),
            Ok(false) => Ok(None),
            Err(PoolError::Busy) => {
                self.metrics.login_pool_rejected.fetch_add(1, Relaxed);
                Err(Error::TooManyRequests {
                    retry_after_secs: 1,
                })
            }
            Err(PoolError::Gone) => Err(Error::Internal("password pool stopped".into())),
        }
    }

    /// Creates a PAT for the caller (a session: a PAT cannot mint PATs).
    /// `expires_in`: None = the configured lifetime, Some(None) = never.
    pub fn create_pat(
        &self,
        caller: &Principal,
        name: &str,
        expires_in_ms: Option<Option<i64>>,
    ) -> Result<Issued, Error> {
        if caller.kind() != Kind::Session {
            return Err(Error::Forbidden(
                "Personal access tokens can only be created with a session token; log in with a password first.".into(),
            ));
        }
        let name = pat_name(name).map_err(Error::InvalidRequest)?;
        let now = self.now();
        let expires_at = match expires_in_ms {
            None => Some(now + self.config.pat_lifetime_ms),
            Some(d) => d.map(|ms| now + ms),
        };
        let audit = caller.audit("token.create", "", format!("name={name}"));
        issue(
            &self.store,
            Kind::Pat,
            &caller.record.user_id,
            Some(name),
            now,
            expires_at,
            Some(audit),
        )
    }

    /// Renews a PAT in place when it is due. Returns (renewed, expires_at).
    pub fn renew_pat(&self, caller: &Principal) -> Result<(bool, Option<i64>), Error> {
        let Some(_) = caller.expires_at else {
            return Ok((false, None));
        };
        let now = self.now();
        let cfg = &self.config;
        if let Some(new) = self.store.renew_pat(
            &caller.hash,
            now,
            cfg.pat_lifetime_ms,
            cfg.pat_renew_threshold_ms,
        )? {
            self.metrics.pat_renewed.fetch_add(1, Relaxed);
            return Ok((true, Some(new)));
        }
        self.metrics.pat_renew_not_due.fetch_add(1, Relaxed);
        // Not due, or a concurrent renew won: report what is stored now, so every
        // racing caller sees the same expiry.
        match self.store.token_expiry(&caller.hash)? {
            Some(e) => Ok((false, e)),
            None => Err(Error::InvalidToken(Reason::Unknown)),
        }
    }

    /// Revokes the token behind `presented` if it is live (logout, RFC 7009).
    pub fn revoke(&self, hash: &TokenHash) -> Result<bool, Error> {
        let revoked = self.store.revoke_token(hash, self.now(), None)? == RevokeOutcome::Revoked;
        if revoked {
            self.metrics.revocations.fetch_add(1, Relaxed);
        }
        Ok(revoked)
    }

    pub fn delete_pat(&self, caller: &Principal, id: &str) -> Result<(), Error> {
        let audit = caller.audit("token.delete", id, String::new());
        if self
            .store
            .revoke_pat_by_id(&caller.record.user_id, id, self.now(), &audit)?
        {
            self.metrics.revocations.fetch_add(1, Relaxed);
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    pub fn revoke_all(&self, caller: &Principal) -> Result<i64, Error> {
        let audit = caller.audit("user.revoke_all", &caller.record.username, String::new());
        let version =
            self.store
                .bump_session_version(&caller.record.user_id, self.now(), &audit)?;
        self.metrics.session_version_bumps.fetch_add(1, Relaxed);
        Ok(version)
    }
}

/// Mints and stores a token (also used by `admin token create`).
pub fn issue(
    store: &Store,
    kind: Kind,
    user_id: &str,
    name: Option<&str>,
    now: i64,
    expires_at: Option<i64>,
    audit: Option<AuditEntry>,
) -> Result<Issued, Error> {
    let Minted {
        token,
        hash,
        display_prefix,
    } = token::mint(kind).map_err(|e| Error::Internal(format!("OS random source failed: {e}")))?;
    let id = token::random_id("tok_")
        .map_err(|e| Error::Internal(format!("OS random source failed: {e}")))?;
    let audit = audit.map(|a| AuditEntry {
        target: id.clone(),
        ..a
    });
    store.insert_token(
        &NewToken {
            hash: &hash,
            id: &id,
            kind,
            user_id,
            name,
            prefix: &display_prefix,
            created_at: now,
            expires_at,
        },
        audit.as_ref().map(|a| (a, now)),
    )?;
    Ok(Issued {
        id,
        token,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::throttle::MemoryThrottle;
    use crate::cli::{Cli, Command};
    use crate::clock::FixedClock;
    use clap::Parser;

    pub(super) const T0: i64 = 1_800_000_000_000;
    pub(super) const S: i64 = 1_000;
    const DAY: i64 = DAY_MS;

    pub(super) struct Fixture {
        pub(super) app: App,
        pub(super) clock: Arc<FixedClock>,
        _dir: tempfile::TempDir,
    }

    /// An app on a fresh database with the user `alice` (password `password1`), the
    /// given `serve` flags, and a fixed clock at `T0`.
    pub(super) fn fixture(flags: &[&str]) -> Fixture {
        let mut argv = vec!["appliance", "serve"];
        argv.extend_from_slice(flags);
        let Command::Serve(args) = Cli::parse_from(argv).command else {
            unreachable!()
        };
        let config = Config::from_args(&args).unwrap();
        let (store, dir) = crate::db::testing::store();
        let clock = Arc::new(FixedClock::new(T0));
        let phc = crate::auth::password::hash_password("password1").unwrap();
        let audit = AuditEntry {
            actor: "cli:t".into(),
            action: "user.add",
            target: "alice".into(),
            detail: String::new(),
        };
        store
            .create_user("usr_1", "alice", &phc, T0, &audit)
            .unwrap();
        let app = App {
            throttle: Box::new(MemoryThrottle::new(
                config.login_max_failures_user,
                config.login_max_failures_addr,
            )),
            passwords: PasswordPool::new(1, 4).unwrap(),
            metrics: Metrics::default(),
            clock: clock.clone(),
            csrf_key: vec![7; 32],
            store,
            config,
        };
        Fixture {
            app,
            clock,
            _dir: dir,
        }
    }

    pub(super) const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn each_use_slides_the_session_to_now_plus_the_window() {
        let f = fixture(&["--session-window", "100s"]);
        let (issued, _) = f.app.login("alice", "password1", ADDR).unwrap();
        assert_eq!(issued.expires_at, Some(T0 + 100 * S));
        f.clock.advance(50 * S);
        let p = f.app.authenticate(&issued.token, Slide::Yes).unwrap();
        assert_eq!(p.expires_at, Some(T0 + 150 * S));
        f.clock.advance(99 * S);
        let p = f.app.authenticate(&issued.token, Slide::Yes).unwrap();
        assert_eq!(p.expires_at, Some(T0 + 249 * S));
    }

    #[test]
    fn an_expired_session_stays_expired() {
        let f = fixture(&["--session-window", "100s"]);
        let (issued, _) = f.app.login("alice", "password1", ADDR).unwrap();
        f.clock.advance(100 * S);
        let err = f.app.authenticate(&issued.token, Slide::Yes).unwrap_err();
        assert_eq!(err, Error::InvalidToken(Reason::Expired));
        f.clock.set(T0);
        // Even if the clock went back, nothing was written past the expiry.
        let p = f.app.authenticate(&issued.token, Slide::No).unwrap();
        assert_eq!(p.expires_at, Some(T0 + 100 * S));
    }

    #[test]
    fn sliding_stops_at_the_absolute_lifetime() {
        let f = fixture(&["--session-window", "1d", "--session-lifetime", "2d"]);
        let (issued, _) = f.app.login("alice", "password1", ADDR).unwrap();
        f.clock.advance(DAY * 9 / 10);
        let p = f.app.authenticate(&issued.token, Slide::Yes).unwrap();
        assert_eq!(p.expires_at, Some(T0 + DAY * 19 / 10));
        f.clock.advance(DAY * 9 / 10);
        let p = f.app.authenticate(&issued.token, Slide::Yes).unwrap();
        assert_eq!(p.expires_at, Some(T0 + 2 * DAY));
        f.clock.set(T0 + 2 * DAY);
        assert_eq!(
            f.app.authenticate(&issued.token, Slide::Yes).unwrap_err(),
            Error::InvalidToken(Reason::Expired)
        );
    }

    #[test]
    fn a_busy_token_writes_once_per_coalescing_interval() {
        // Window 1000 s: slack is 10 s.
        let f = fixture(&["--session-window", "1000s"]);
        let (issued, _) = f.app.login("alice", "password1", ADDR).unwrap();
        for _ in 0..100 {
            f.clock.advance(S);
            let p = f.app.authenticate(&issued.token, Slide::Yes).unwrap();
            // The answer is always the stored, enforced value.
            let stored = f.app.store.token_expiry(&p.hash).unwrap().unwrap();
            assert_eq!(p.expires_at, stored);
        }
        let written = f.app.metrics.session_extensions_written.load(Relaxed);
        let skipped = f.app.metrics.session_extensions_skipped.load(Relaxed);
        assert_eq!(written, 10);
        assert_eq!(skipped, 90);
    }

    #[test]
    fn a_version_bump_makes_older_tokens_stale_and_newer_ones_work() {
        let f = fixture(&[]);
        let (old, _) = f.app.login("alice", "password1", ADDR).unwrap();
        let caller = f.app.authenticate(&old.token, Slide::No).unwrap();
        assert_eq!(f.app.revoke_all(&caller).unwrap(), 2);
        assert_eq!(
            f.app.authenticate(&old.token, Slide::Yes).unwrap_err(),
            Error::InvalidToken(Reason::Stale)
        );
        let (new, _) = f.app.login("alice", "password1", ADDR).unwrap();
        assert_eq!(
            f.app
                .authenticate(&new.token, Slide::Yes)
                .unwrap()
                .record
                .user_version,
            2
        );
    }

    #[test]
    fn a_pat_is_renewed_only_inside_the_threshold() {
        let f = fixture(&["--pat-lifetime", "10d", "--pat-renew-threshold", "3d"]);
        let (session, _) = f.app.login("alice", "password1", ADDR).unwrap();
        let caller = f.app.authenticate(&session.token, Slide::No).unwrap();
        let pat = f.app.create_pat(&caller, "ci", None).unwrap();
        assert_eq!(pat.expires_at, Some(T0 + 10 * DAY));
        let p = f.app.authenticate(&pat.token, Slide::Yes).unwrap();
        assert_eq!(f.app.renew_pat(&p).unwrap(), (false, Some(T0 + 10 * DAY)));
        f.clock.advance(7 * DAY);
        let p = f.app.authenticate(&pat.token, Slide::Yes).unwrap();
        assert_eq!(f.app.renew_pat(&p).unwrap(), (true, Some(T0 + 17 * DAY)));
        // PATs never slide.
        f.clock.advance(DAY);
        assert_eq!(
            f.app
                .authenticate(&pat.token, Slide::Yes)
                .unwrap()
                .expires_at,
            Some(T0 + 17 * DAY)
        );
        // A PAT cannot mint PATs.
        assert!(matches!(
            f.app.create_pat(&p, "x", None),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn unknown_users_and_wrong_passwords_get_the_same_answer_and_count() {
        let f = fixture(&["--login-max-failures-user", "2"]);
        assert_eq!(
            f.app.login("alice", "wrong-pass", ADDR).err(),
            Some(Error::InvalidCredentials)
        );
        assert_eq!(
            f.app.login("nobody", "wrong-pass", ADDR).err(),
            Some(Error::InvalidCredentials)
        );
        assert_eq!(
            f.app.login("NOT A NAME", "x", ADDR).err(),
            Some(Error::InvalidCredentials)
        );
        assert_eq!(
            f.app.login("alice", "wrong-pass", ADDR).err(),
            Some(Error::InvalidCredentials)
        );
        // At the limit: even the right password is refused without being checked.
        assert!(matches!(
            f.app.login("alice", "password1", ADDR),
            Err(Error::TooManyRequests { .. })
        ));
        f.clock.advance(5 * 60 * S);
        assert!(f.app.login("alice", "password1", ADDR).is_ok());
    }
}
