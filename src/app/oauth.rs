//! Signed access tokens and the OAuth 2 grants: minting and fully checking access
//! tokens, the password, refresh-token and token-exchange grants, and revocation of
//! what an access or refresh token came from.
//!
//! An access token's `exp` is min(now + `--access-token-lifetime`, its parent's
//! expiry); a refresh token lives `--session-window` from its issue and never past its
//! family's start + `--session-lifetime`. Checking an access token slides nothing.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use super::{App, Principal, Slide};
use crate::auth::access::{self, Claims};
use crate::auth::token::{self, Kind};
use crate::db::keys::NewKey;
use crate::db::refresh::{Family, NewRefresh, Rotation, FAMILY_ID_PREFIX};
use crate::db::{AuditEntry, Store, TokenRecord};
use crate::error::{Error, GrantError, Reason};

/// The active key's `signed_until` is raised past the token being signed by 1% of the
/// access token lifetime (at most a minute), so a busy signer writes about once per
/// step, not once per token, and a retired key outlives its last token by little.
fn signed_until_step_ms(access_token_lifetime_ms: i64) -> i64 {
    (access_token_lifetime_ms / 100).clamp(1, 60_000)
}

/// A fresh signed access token.
pub struct AccessToken {
    pub token: String,
    /// Seconds from now to `exp`.
    pub expires_in: i64,
}

/// What the password and refresh grants answer.
pub struct Grant {
    pub access: AccessToken,
    pub refresh_token: String,
}

fn random(prefix: &str) -> Result<String, Error> {
    token::random_id(prefix).map_err(|e| Error::Internal(format!("OS random source failed: {e}")))
}

fn grant_error(description: &str) -> Error {
    Error::Grant(GrantError::InvalidGrant, description.to_string())
}

/// Makes the first signing key unless the database has one. Concurrent first starts
/// race on the UNIQUE active slot; exactly one key goes in.
pub fn ensure_signing_key(store: &Store, now: i64) -> Result<(), Error> {
    if store.active_key()?.is_some() {
        return Ok(());
    }
    let key = access::generate_key().map_err(Error::Internal)?;
    store.insert_first_key(
        &NewKey {
            kid: &key.kid,
            public_key: &key.public_key,
            secret_key: &key.secret_key,
        },
        now,
    )?;
    Ok(())
}

/// `appliance admin keys rotate`: a new active key; the old one retires.
pub fn rotate_signing_key(store: &Store, now: i64, audit: &AuditEntry) -> Result<String, Error> {
    let key = access::generate_key().map_err(Error::Internal)?;
    store.rotate_key(
        &NewKey {
            kid: &key.kid,
            public_key: &key.public_key,
            secret_key: &key.secret_key,
        },
        now,
        audit,
    )?;
    Ok(key.kid)
}

impl App {
    /// Like `authenticate`, but a signed access token is accepted too (validate,
    /// userinfo, introspect).
    pub fn authenticate_any(&self, presented: &str, slide: Slide) -> Result<Principal, Error> {
        if access::looks_like(presented) {
            self.check_access(presented, self.now())
        } else {
            self.authenticate(presented, slide)
        }
    }

    /// What introspection reports of a token of any kind: its record while live,
    /// without sliding or touching it.
    pub fn inspect(&self, presented: &str) -> Result<TokenRecord, Error> {
        let now = self.now();
        if access::looks_like(presented) {
            self.check_access(presented, now).map(|p| p.record)
        } else {
            self.live_token(presented, now).map(|(record, _)| record)
        }
    }

    /// The refusal of a valid access token where only a session or PAT will do; an
    /// invalid one is a 401 like any unusable credential.
    pub(super) fn refuse_access(&self, presented: &str) -> Error {
        match self.check_access(presented, self.now()) {
            Ok(_) => Error::Forbidden(
                "A signed access token is accepted only by validate, userinfo, introspect and logout; use a session token or a personal access token here.".into(),
            ),
            Err(e) => e,
        }
    }

    /// Checks an access token fully: a known key's signature, our issuer, expiry, the
    /// user's session_version, and its parent still live.
    pub fn check_access(&self, presented: &str, now: i64) -> Result<Principal, Error> {
        let unknown = || Error::InvalidToken(Reason::Unknown);
        let kid = access::kid_of(presented).map_err(|_| unknown())?;
        let public = self.store.public_key(&kid)?.ok_or_else(unknown)?;
        let key = access::public_key(&kid, &public).ok_or_else(unknown)?;
        let claims = access::verify(&key, presented).map_err(|_| unknown())?;
        if claims.iss != self.config.issuer {
            return Err(unknown());
        }
        // The reasons in the order sessions and PATs use: revoked, stale, expired.
        let parent = self
            .store
            .access_parent(&claims.sid, &claims.sub)?
            .ok_or_else(unknown)?;
        if parent.revoked {
            return Err(Error::InvalidToken(Reason::Revoked));
        }
        if claims.sv < parent.user_version {
            return Err(Error::InvalidToken(Reason::Stale));
        }
        if claims.exp <= now {
            return Err(Error::InvalidToken(Reason::Expired));
        }
        let kind_of_parent = Kind::parse(&parent.kind).unwrap_or(Kind::Refresh);
        Ok(Principal {
            record: TokenRecord {
                hash: Vec::new(),
                id: claims.sid,
                kind: Kind::Access,
                user_id: claims.sub,
                username: parent.username,
                created_at: claims.iat,
                expires_at: Some(claims.exp),
                last_used_at: None,
                revoked_at: None,
                issued_version: claims.sv,
                user_version: parent.user_version,
            },
            hash: token::hash(presented),
            expires_at: Some(claims.exp),
            parent: Some(kind_of_parent),
        })
    }

    /// Signs an access token for `sid` with the active key.
    fn mint_access(
        &self,
        user_id: &str,
        username: &str,
        sv: i64,
        sid: &str,
        parent_expires_at: Option<i64>,
    ) -> Result<AccessToken, Error> {
        let now = self.now();
        let exp = parent_expires_at
            .unwrap_or(i64::MAX)
            .min(now + self.config.access_token_lifetime_ms);
        // PASETO times have second precision: truncate, never round past the parent.
        let exp = exp.div_euclid(1000) * 1000;
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: user_id.to_string(),
            username: username.to_string(),
            sv,
            sid: sid.to_string(),
            jti: random("")?,
            iat: now,
            exp,
        };
        // The key is read each time, so a rotation by another process (the CLI, a
        // replica) is used at once; its signed_until is raised before signing, guarded
        // on it still being active, so a retiring key is served as long as needed.
        for _ in 0..3 {
            let key = self
                .store
                .active_key()?
                .ok_or_else(|| Error::Internal("no active signing key".into()))?;
            if key.signed_until >= exp
                || self.store.extend_key_use(
                    &key.kid,
                    exp + signed_until_step_ms(self.config.access_token_lifetime_ms),
                )?
            {
                let token =
                    access::sign(&key.secret_key, &key.kid, &claims).map_err(Error::Internal)?;
                self.metrics.access_tokens_issued.fetch_add(1, Relaxed);
                // In the token's own seconds, so `expires_in` = `exp` - `iat` (a 1h
                // token says 3600, not 3599 for the milliseconds `exp` dropped).
                return Ok(AccessToken {
                    token,
                    expires_in: (exp / 1000 - now.div_euclid(1000)).max(0),
                });
            }
        }
        Err(Error::Internal(
            "the signing key kept being rotated while signing".into(),
        ))
    }

    /// RFC 8693: an access token for a live session (which slides) or PAT.
    pub fn exchange(&self, subject: &str) -> Result<AccessToken, Error> {
        if !matches!(token::kind_of(subject), Some(Kind::Session | Kind::Pat)) {
            return Err(grant_error(
                "The subject_token must be a session token (aps_) or a personal access token (apt_).",
            ));
        }
        let p = self
            .authenticate(subject, Slide::Yes)
            .map_err(|e| match e {
                Error::InvalidToken(r) => {
                    grant_error(&format!("The subject_token is not live ({}).", r.as_str()))
                }
                other => other,
            })?;
        self.mint_access(
            &p.record.user_id,
            &p.record.username,
            p.record.user_version,
            &p.record.id,
            p.expires_at,
        )
    }

    /// The password grant: a new refresh family and its first tokens. Shares the
    /// throttling and hashing pool of every login; a wrong password and an unknown
    /// user read the same.
    pub fn password_grant(
        &self,
        username: &str,
        password: &str,
        addr: IpAddr,
    ) -> Result<Grant, Error> {
        let user = self
            .check_password(username, password, addr)
            .map_err(|e| match e {
                Error::InvalidCredentials => grant_error("Invalid username or password."),
                other => other,
            })?;
        let minted = mint_refresh()?;
        let family_id = random(FAMILY_ID_PREFIX)?;
        let family = self.store.start_refresh_family(
            &family_id,
            &user.id,
            &NewRefresh {
                hash: &minted.hash,
                now: self.now(),
                window_ms: self.config.session_window_ms,
            },
            self.config.session_lifetime_ms,
        )?;
        self.metrics.logins.fetch_add(1, Relaxed);
        self.grant(&family, minted.token)
    }

    /// The answer to a password or refresh grant: an access token for the family's
    /// newest refresh token, and that refresh token.
    fn grant(&self, family: &Family, refresh_token: String) -> Result<Grant, Error> {
        let access = self.mint_access(
            &family.user_id,
            &family.username,
            family.session_version,
            &family.id,
            Some(family.token_expires_at),
        )?;
        Ok(Grant {
            access,
            refresh_token,
        })
    }

    /// The refresh grant: spends the presented refresh token and answers a new pair.
    /// A spent token presented again revokes its family (audited).
    pub fn refresh_grant(&self, presented: &str) -> Result<Grant, Error> {
        if token::kind_of(presented) != Some(Kind::Refresh) {
            return Err(grant_error(
                "The refresh_token is not a refresh token (apr_).",
            ));
        }
        let old = token::hash(presented);
        let minted = mint_refresh()?;
        // Written by the request that presented the spent token, on behalf of its owner.
        let audit = |username: &str| AuditEntry {
            actor: format!("user:{username}"),
            action: "refresh.reuse_detected",
            target: String::new(),
            detail: "a spent refresh token was presented again; its family is revoked".into(),
        };
        let next = NewRefresh {
            hash: &minted.hash,
            now: self.now(),
            window_ms: self.config.session_window_ms,
        };
        match self.store.rotate_refresh(&old, &next, &audit)? {
            Rotation::Rotated(family) => self.grant(&family, minted.token),
            Rotation::Reused { .. } => {
                self.metrics.revocations.fetch_add(1, Relaxed);
                Err(grant_error(
                    "The refresh_token was already used; every token of its family is revoked.",
                ))
            }
            Rotation::Refused => Err(grant_error(
                "The refresh_token is unknown, expired or revoked.",
            )),
        }
    }

    /// Logout: revokes the presented session or PAT, or, for an access token, the
    /// session or refresh family it came from (one from a PAT: 403, revoke the PAT).
    pub fn logout(&self, presented: &str) -> Result<(), Error> {
        if !access::looks_like(presented) {
            let caller = self.authenticate(presented, Slide::No)?;
            self.revoke(&caller.hash)?;
            return Ok(());
        }
        let caller = self.check_access(presented, self.now())?;
        if caller.parent == Some(Kind::Pat) {
            return Err(Error::Forbidden(
                "This access token was exchanged from a personal access token; revoke the personal access token itself.".into(),
            ));
        }
        if self.store.revoke_parent(&caller.record.id, self.now())? {
            self.metrics.revocations.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// RFC 7009: revokes a live session or PAT, or the whole family of a refresh token.
    /// Anything else is ignored.
    pub fn revoke_presented(&self, presented: &str) -> Result<(), Error> {
        match token::kind_of(presented) {
            Some(Kind::Refresh) => {
                let hash = token::hash(presented);
                if self.store.revoke_refresh_family(&hash, self.now(), None)? == Some(true) {
                    self.metrics.revocations.fetch_add(1, Relaxed);
                }
            }
            Some(_) => match self.live_token(presented, self.now()) {
                Ok((_, hash)) => {
                    self.revoke(&hash)?;
                }
                Err(Error::InvalidToken(_)) => {}
                // The database could not say: the client must retry, not believe it
                // revoked.
                Err(other) => return Err(other),
            },
            None => {}
        }
        Ok(())
    }
}

fn mint_refresh() -> Result<token::Minted, Error> {
    token::mint(Kind::Refresh).map_err(|e| Error::Internal(format!("OS random source failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixture, Fixture, ADDR, S, T0};
    use super::*;

    const HOUR: i64 = 3_600 * S;
    const DAY: i64 = 24 * HOUR;

    fn with_key(flags: &[&str]) -> Fixture {
        let f = fixture(flags);
        ensure_signing_key(&f.app.store, T0).unwrap();
        f
    }

    fn claims(f: &Fixture, token: &str) -> Claims {
        let key = f.app.store.active_key().unwrap().unwrap();
        let public = f.app.store.public_key(&key.kid).unwrap().unwrap();
        access::verify(&access::public_key(&key.kid, &public).unwrap(), token).unwrap()
    }

    fn refused(r: Result<Grant, Error>) -> GrantError {
        match r {
            Err(Error::Grant(code, _)) => code,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("granted"),
        }
    }

    #[test]
    fn an_access_token_lives_its_lifetime_but_never_past_its_parent() {
        let f = with_key(&["--access-token-lifetime", "1h"]);
        let (session, _) = f.app.login("alice", "password1", ADDR).unwrap();
        let a = f.app.exchange(&session.token).unwrap();
        assert_eq!(a.expires_in, 3_600);
        assert_eq!(claims(&f, &a.token).exp, T0 + HOUR);

        let f = with_key(&["--access-token-lifetime", "1h", "--session-window", "100s"]);
        let (session, _) = f.app.login("alice", "password1", ADDR).unwrap();
        f.clock.advance(10 * S);
        let a = f.app.exchange(&session.token).unwrap();
        // The exchange slid the session to now + 100 s; the token ends with it.
        assert_eq!(claims(&f, &a.token).exp, T0 + 110 * S);
        assert_eq!(a.expires_in, 100);
    }

    #[test]
    fn the_server_checks_expiry_version_and_parent_by_its_clock() {
        let f = with_key(&[]);
        let (session, _) = f.app.login("alice", "password1", ADDR).unwrap();
        let a = f.app.exchange(&session.token).unwrap();
        let p = f.app.authenticate_any(&a.token, Slide::Yes).unwrap();
        assert_eq!(p.record.kind, Kind::Access);
        assert_eq!(p.parent, Some(Kind::Session));
        f.clock.advance(HOUR);
        assert_eq!(
            f.app.check_access(&a.token, f.app.now()).unwrap_err(),
            Error::InvalidToken(Reason::Expired)
        );

        let b = f.app.exchange(&session.token).unwrap();
        f.app.logout(&session.token).unwrap();
        assert_eq!(
            f.app.check_access(&b.token, f.app.now()).unwrap_err(),
            Error::InvalidToken(Reason::Revoked)
        );

        let (other, _) = f.app.login("alice", "password1", ADDR).unwrap();
        let c = f.app.exchange(&other.token).unwrap();
        let caller = f.app.authenticate(&other.token, Slide::No).unwrap();
        f.app.revoke_all(&caller).unwrap();
        assert_eq!(
            f.app.check_access(&c.token, f.app.now()).unwrap_err(),
            Error::InvalidToken(Reason::Stale)
        );
        // Where only a session or PAT will do, a valid access token is a 403.
        let (fresh, _) = f.app.login("alice", "password1", ADDR).unwrap();
        let d = f.app.exchange(&fresh.token).unwrap();
        assert!(matches!(
            f.app.authenticate(&d.token, Slide::No),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn refresh_tokens_live_the_window_and_never_past_the_family_lifetime() {
        let f = with_key(&["--session-window", "1d", "--session-lifetime", "2d"]);
        let g = f.app.password_grant("alice", "password1", ADDR).unwrap();
        f.clock.advance(DAY * 9 / 10);
        let g = f.app.refresh_grant(&g.refresh_token).unwrap();
        f.clock.advance(DAY * 9 / 10);
        let g = f.app.refresh_grant(&g.refresh_token).unwrap();
        assert_eq!(claims(&f, &g.access.token).exp, T0 + DAY * 18 / 10 + HOUR);
        // The token issued at 1.8 d lives to the family's end (2 d), not 2.8 d, and so
        // does an access token minted a second before it.
        f.clock.set(T0 + 2 * DAY - S);
        let g = f.app.refresh_grant(&g.refresh_token).unwrap();
        assert_eq!(claims(&f, &g.access.token).exp, T0 + 2 * DAY);
        assert_eq!(g.access.expires_in, 1);
        f.clock.set(T0 + 2 * DAY);
        assert_eq!(
            refused(f.app.refresh_grant(&g.refresh_token)),
            GrantError::InvalidGrant
        );
    }

    #[test]
    fn an_unused_refresh_token_ends_with_its_window() {
        let f = with_key(&["--session-window", "1d"]);
        let g = f.app.password_grant("alice", "password1", ADDR).unwrap();
        f.clock.advance(DAY);
        assert_eq!(
            refused(f.app.refresh_grant(&g.refresh_token)),
            GrantError::InvalidGrant
        );
        assert_eq!(
            refused(f.app.password_grant("alice", "wrong", ADDR)),
            GrantError::InvalidGrant
        );
        assert_eq!(
            refused(f.app.password_grant("nobody", "wrong", ADDR)),
            GrantError::InvalidGrant
        );
    }
}
