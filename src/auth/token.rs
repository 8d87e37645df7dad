//! Tokens: 32 bytes from the OS CSPRNG, base64url without padding, behind a kind prefix.
//!
//! Only `sha256(token)` is ever stored. A presented token is first checked for shape
//! (prefix, length, alphabet) so that near-misses never reach the database, then looked
//! up by its hash, and the stored hash is compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SESSION_PREFIX: &str = "aps_";
pub const PAT_PREFIX: &str = "apt_";
pub const REFRESH_PREFIX: &str = "apr_";
/// 32 bytes in base64url without padding.
const BODY_LEN: usize = 43;
/// What `GET /api/tokens` shows of a PAT: `apt_` and 8 more characters.
pub const DISPLAY_PREFIX_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Session,
    Pat,
    /// A refresh token (`apr_…`), stored in `refresh_tokens`, never a bearer credential.
    Refresh,
    /// A signed access token (`v4.public.…`, see `auth::access`): never stored, never
    /// minted here; the kind of a principal that presented one.
    Access,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Session => "session",
            Kind::Pat => "pat",
            Kind::Refresh => "refresh",
            Kind::Access => "access",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "session" => Some(Kind::Session),
            "pat" => Some(Kind::Pat),
            _ => None,
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Kind::Session => SESSION_PREFIX,
            Kind::Pat => PAT_PREFIX,
            Kind::Refresh => REFRESH_PREFIX,
            Kind::Access => super::access::PREFIX,
        }
    }
}

pub type TokenHash = [u8; 32];

/// A freshly minted token: the secret (shown once) and what is stored.
pub struct Minted {
    pub token: String,
    pub hash: TokenHash,
    pub display_prefix: String,
}

pub fn mint(kind: Kind) -> Result<Minted, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    Ok(Minted {
        hash: hash(&token),
        display_prefix: token[..DISPLAY_PREFIX_LEN].to_string(),
        token,
    })
}

/// An opaque random id (users, tokens), never derived from a token.
pub fn random_id(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The kind a token claims by its shape, or `None` if it cannot be one of ours
/// (then it is unknown without asking the database).
pub fn kind_of(token: &str) -> Option<Kind> {
    let kind = if token.starts_with(SESSION_PREFIX) {
        Kind::Session
    } else if token.starts_with(PAT_PREFIX) {
        Kind::Pat
    } else if token.starts_with(REFRESH_PREFIX) {
        Kind::Refresh
    } else {
        return None;
    };
    let body = &token.as_bytes()[kind.prefix().len()..];
    let well_formed = body.len() == BODY_LEN
        && body
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    well_formed.then_some(kind)
}

/// The final comparison of a looked-up hash, in constant time.
pub fn hashes_match(stored: &[u8], presented: &TokenHash) -> bool {
    stored.len() == presented.len() && bool::from(stored.ct_eq(presented))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_prefixed_random_and_well_formed() {
        let a = mint(Kind::Session).unwrap();
        let b = mint(Kind::Session).unwrap();
        let p = mint(Kind::Pat).unwrap();
        assert!(a.token.starts_with("aps_") && p.token.starts_with("apt_"));
        assert_eq!(a.token.len(), 4 + 43);
        assert_ne!(a.token, b.token);
        assert_eq!(kind_of(&a.token), Some(Kind::Session));
        assert_eq!(kind_of(&p.token), Some(Kind::Pat));
        assert_eq!(a.hash, hash(&a.token));
        assert_eq!(p.display_prefix, &p.token[..12]);
    }

    #[test]
    fn near_miss_shapes_are_not_tokens() {
        let t = mint(Kind::Pat).unwrap().token;
        let mut with_space = t.clone();
        with_space.insert(20, ' ');
        for bad in [
            String::new(),
            t[..t.len() - 1].to_string(),
            format!("{t}A"),
            t.to_uppercase(),
            format!(" {t}"),
            with_space,
            "apt_".to_string() + &"a".repeat(44),
            "xyz_".to_string() + &t[4..],
            t.replace('_', "+"),
        ] {
            assert_eq!(kind_of(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hash_comparison_rejects_any_difference() {
        let h = hash("apt_x");
        assert!(hashes_match(&h, &h));
        let mut other = h;
        other[31] ^= 1;
        assert!(!hashes_match(&other, &h));
        assert!(!hashes_match(&h[..31], &h));
    }
}
