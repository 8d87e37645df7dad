//! Signed access tokens: PASETO `v4.public` (Ed25519) with the PASERK id of the signing
//! key in the footer, `{"kid": "k4.pid.…"}`. Signing, key generation and PASERK
//! encoding are `pasetors`'; this module only shapes the claims.
//!
//! Shared by the server (which signs and checks fully against the database) and the
//! library's `Validator` (which checks offline): `verify` proves the signature and
//! parses the claims; the time and issuer rules are the caller's, with its own clock.

use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::token::{Public, UntrustedToken};
use pasetors::version4::{PublicToken, V4};
use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;

/// Every access token starts with this.
pub const PREFIX: &str = "v4.public.";
/// Longer than any token we sign; anything longer is not looked at.
const MAX_LEN: usize = 4096;

/// The claims of an access token. Instants are Unix milliseconds here, RFC 3339
/// strings (second precision) on the wire, as PASETO specifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    pub username: String,
    /// The user's session_version at issue.
    pub sv: i64,
    /// The session, PAT or refresh family the token came from.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    iss: String,
    sub: String,
    username: String,
    sv: i64,
    sid: String,
    jti: String,
    iat: String,
    exp: String,
}

#[derive(Serialize, Deserialize)]
struct Footer {
    kid: String,
}

/// Why a token is not one of ours (all are `unknown` to a client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    BadSignature,
}

/// A new Ed25519 key pair from the OS CSPRNG (`pasetors` → `ed25519-compact` →
/// `getrandom`).
pub struct KeyMaterial {
    pub kid: String,
    pub public_key: String,
    /// Seed || public key, 64 bytes.
    pub secret_key: Vec<u8>,
}

pub fn generate_key() -> Result<KeyMaterial, String> {
    let pair = AsymmetricKeyPair::<V4>::generate().map_err(|e| format!("key generation: {e:?}"))?;
    Ok(KeyMaterial {
        kid: paserk(&Id::from(&pair.public))?,
        public_key: paserk(&pair.public)?,
        secret_key: pair.secret.as_bytes().to_vec(),
    })
}

fn paserk(value: &impl FormatAsPaserk) -> Result<String, String> {
    let mut out = String::new();
    value
        .fmt(&mut out)
        .map_err(|e| format!("PASERK encoding: {e:?}"))?;
    Ok(out)
}

/// A `k4.public.` PASERK whose id is `kid`, or `None`.
pub fn public_key(kid: &str, paserk_public: &str) -> Option<AsymmetricPublicKey<V4>> {
    let key = AsymmetricPublicKey::<V4>::try_from(paserk_public).ok()?;
    (paserk(&Id::from(&key)).ok()? == kid).then_some(key)
}

/// Signs `claims` with the secret key whose PASERK id is `kid`.
pub fn sign(secret_key: &[u8], kid: &str, claims: &Claims) -> Result<String, String> {
    let key =
        AsymmetricSecretKey::<V4>::from(secret_key).map_err(|e| format!("signing key: {e:?}"))?;
    let wire = Wire {
        iss: claims.iss.clone(),
        sub: claims.sub.clone(),
        username: claims.username.clone(),
        sv: claims.sv,
        sid: claims.sid.clone(),
        jti: claims.jti.clone(),
        iat: rfc3339(claims.iat),
        exp: rfc3339(claims.exp),
    };
    let message = serde_json::to_vec(&wire).map_err(|e| e.to_string())?;
    let footer = serde_json::to_vec(&Footer {
        kid: kid.to_string(),
    })
    .map_err(|e| e.to_string())?;
    PublicToken::sign(&key, &message, Some(&footer), None).map_err(|e| format!("signing: {e:?}"))
}

/// Whether a presented credential has the shape of an access token (it may still be
/// anything).
pub fn looks_like(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// The `kid` the token's (unverified) footer names.
pub fn kid_of(token: &str) -> Result<String, Invalid> {
    if token.len() > MAX_LEN {
        return Err(Invalid::Malformed);
    }
    let untrusted =
        UntrustedToken::<Public, V4>::try_from(token).map_err(|_| Invalid::Malformed)?;
    let footer: Footer =
        serde_json::from_slice(untrusted.untrusted_footer()).map_err(|_| Invalid::Malformed)?;
    Ok(footer.kid)
}

/// Proves the signature under `key` and parses the claims. Issuer and expiry are the
/// caller's to check.
pub fn verify(key: &AsymmetricPublicKey<V4>, token: &str) -> Result<Claims, Invalid> {
    if token.len() > MAX_LEN {
        return Err(Invalid::Malformed);
    }
    let untrusted =
        UntrustedToken::<Public, V4>::try_from(token).map_err(|_| Invalid::Malformed)?;
    let trusted =
        PublicToken::verify(key, &untrusted, None, None).map_err(|_| Invalid::BadSignature)?;
    let wire: Wire = serde_json::from_str(trusted.payload()).map_err(|_| Invalid::Malformed)?;
    Ok(Claims {
        iat: parse_time(&wire.iat)?,
        exp: parse_time(&wire.exp)?,
        iss: wire.iss,
        sub: wire.sub,
        username: wire.username,
        sv: wire.sv,
        sid: wire.sid,
        jti: wire.jti,
    })
}

fn parse_time(s: &str) -> Result<i64, Invalid> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| Invalid::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "usr_1".into(),
            username: "alice".into(),
            sv: 3,
            sid: "tok_x".into(),
            jti: "j".into(),
            iat: 1_800_000_000_000,
            exp: 1_800_003_600_000,
        }
    }

    #[test]
    fn a_signed_token_verifies_under_its_key_and_names_it() {
        let k = generate_key().unwrap();
        assert!(k.kid.starts_with("k4.pid."));
        assert!(k.public_key.starts_with("k4.public."));
        let token = sign(&k.secret_key, &k.kid, &claims()).unwrap();
        assert!(looks_like(&token));
        assert_eq!(kid_of(&token).unwrap(), k.kid);
        let key = public_key(&k.kid, &k.public_key).unwrap();
        assert_eq!(verify(&key, &token).unwrap(), claims());
    }

    #[test]
    fn another_key_or_a_changed_byte_is_refused() {
        let k = generate_key().unwrap();
        let other = generate_key().unwrap();
        let token = sign(&k.secret_key, &k.kid, &claims()).unwrap();
        let other_key = public_key(&other.kid, &other.public_key).unwrap();
        assert_eq!(verify(&other_key, &token), Err(Invalid::BadSignature));
        // A public key presented under another key's id is not that key.
        assert!(public_key(&k.kid, &other.public_key).is_none());
        let key = public_key(&k.kid, &k.public_key).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = PREFIX.len() + 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(verify(&key, &tampered).is_err());
        assert_eq!(kid_of("v4.public.x"), Err(Invalid::Malformed));
        assert_eq!(kid_of("aps_x"), Err(Invalid::Malformed));
    }
}
