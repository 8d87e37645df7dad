//! The one error type of the server and the ONE place it maps to HTTP status and code.
//!
//! Handlers return `Error`; `http::response` turns it into bytes with `status()`,
//! `code()` and `message()`. Messages never carry a token, a hash or SQL.

use std::fmt;

use crate::db::StoreError;

/// Why a bearer credential was refused (the `reason` of a 401 `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Missing,
    Unknown,
    Expired,
    Revoked,
    Stale,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Unknown => "unknown",
            Reason::Expired => "expired",
            Reason::Revoked => "revoked",
            Reason::Stale => "stale",
        }
    }
}

/// The error codes of an RFC 6749 token endpoint (§5.2), answered with 400 and
/// `{"error", "error_description"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    InvalidRequest,
    InvalidGrant,
    UnsupportedGrantType,
}

impl GrantError {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantError::InvalidRequest => "invalid_request",
            GrantError::InvalidGrant => "invalid_grant",
            GrantError::UnsupportedGrantType => "unsupported_grant_type",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    InvalidRequest(String),
    /// A refusal of `POST /oauth/token`, with its description.
    Grant(GrantError, String),
    InvalidToken(Reason),
    InvalidCredentials,
    Forbidden(String),
    NotFound,
    /// With the methods the path answers (the `Allow` header).
    MethodNotAllowed(&'static str),
    PayloadTooLarge(u64),
    /// The HTTP layer's own refusals (then the connection closes).
    RequestTimeout,
    ExpectationFailed,
    UriTooLong,
    HeaderFieldsTooLarge,
    HttpVersionNotSupported,
    TooManyRequests {
        retry_after_secs: u64,
    },
    /// The detail is logged, never sent.
    Internal(String),
    /// The database cannot be reached (v2); the detail is logged, never sent.
    Unavailable(String),
}

/// `Retry-After` of a 503: PostgreSQL usually returns within seconds (a restart, a
/// failover), and the pool's checkout has already waited a few.
const UNAVAILABLE_RETRY_SECS: u64 = 2;

impl Error {
    /// The whole status table.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidRequest(_) | Error::Grant(..) => 400,
            Error::InvalidToken(_) | Error::InvalidCredentials => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::RequestTimeout => 408,
            Error::PayloadTooLarge(_) => 413,
            Error::UriTooLong => 414,
            Error::ExpectationFailed => 417,
            Error::TooManyRequests { .. } => 429,
            Error::HeaderFieldsTooLarge => 431,
            Error::HttpVersionNotSupported => 505,
            Error::Internal(_) => 500,
            Error::Unavailable(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::Grant(code, _) => code.as_str(),
            Error::InvalidToken(_) => "invalid_token",
            Error::InvalidCredentials => "invalid_credentials",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::RequestTimeout => "request_timeout",
            Error::ExpectationFailed => "expectation_failed",
            Error::UriTooLong => "uri_too_long",
            Error::HeaderFieldsTooLarge => "request_header_fields_too_large",
            Error::HttpVersionNotSupported => "http_version_not_supported",
            Error::TooManyRequests { .. } => "too_many_requests",
            Error::Internal(_) => "internal",
            Error::Unavailable(_) => "unavailable",
        }
    }

    /// The sentence sent to the client.
    pub fn message(&self) -> String {
        match self {
            Error::InvalidRequest(m) | Error::Forbidden(m) | Error::Grant(_, m) => m.clone(),
            Error::InvalidToken(r) => match r {
                Reason::Missing => "No credentials were sent; send Authorization: Bearer <token>.",
                Reason::Unknown => "The token is not recognised.",
                Reason::Expired => "The token has expired; log in again.",
                Reason::Revoked => "The token has been revoked; log in again.",
                Reason::Stale => {
                    "The token was issued before the user's sessions were revoked; log in again."
                }
            }
            .to_string(),
            Error::InvalidCredentials => "Invalid username or password.".to_string(),
            Error::NotFound => "No such resource.".to_string(),
            Error::MethodNotAllowed(_) => "This method is not allowed on this path.".to_string(),
            Error::PayloadTooLarge(limit) => {
                format!("The request body is larger than the limit of {limit} bytes.")
            }
            Error::RequestTimeout => {
                "The request did not arrive in full within the client timeout.".to_string()
            }
            Error::ExpectationFailed => "Only Expect: 100-continue is supported.".to_string(),
            Error::UriTooLong => "The request line is longer than 8 KiB.".to_string(),
            Error::HeaderFieldsTooLarge => {
                "The header section is over 16 KiB or 100 fields.".to_string()
            }
            Error::HttpVersionNotSupported => {
                "Only HTTP/1.0 and HTTP/1.1 are supported.".to_string()
            }
            Error::TooManyRequests { retry_after_secs } => {
                format!("Too many attempts; retry in {retry_after_secs} seconds.")
            }
            Error::Internal(_) => "An internal error occurred; it has been logged.".to_string(),
            Error::Unavailable(_) => format!(
                "The database cannot be reached; retry in {UNAVAILABLE_RETRY_SECS} seconds."
            ),
        }
    }

    /// The `Retry-After` seconds an answer carries, if any.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            Error::Unavailable(_) => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        }
    }

    /// Every variant once, so the table above can be walked by a test.
    #[cfg(test)]
    fn all() -> Vec<Error> {
        vec![
            Error::InvalidRequest("x".into()),
            Error::Grant(GrantError::InvalidRequest, "x".into()),
            Error::Grant(GrantError::InvalidGrant, "x".into()),
            Error::Grant(GrantError::UnsupportedGrantType, "x".into()),
            Error::InvalidToken(Reason::Missing),
            Error::InvalidCredentials,
            Error::Forbidden("x".into()),
            Error::NotFound,
            Error::MethodNotAllowed("GET, HEAD"),
            Error::PayloadTooLarge(1),
            Error::RequestTimeout,
            Error::ExpectationFailed,
            Error::UriTooLong,
            Error::HeaderFieldsTooLarge,
            Error::HttpVersionNotSupported,
            Error::TooManyRequests {
                retry_after_secs: 3,
            },
            Error::Internal("secret detail".into()),
            Error::Unavailable("secret detail".into()),
        ]
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Internal(detail) => write!(f, "internal: {detail}"),
            Error::Unavailable(detail) => write!(f, "unavailable: {detail}"),
            other => write!(f, "{}: {}", other.code(), other.message()),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Error::NotFound,
            StoreError::Unavailable(detail) => Error::Unavailable(detail),
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Process exit codes shared by every command (the contract's table).
pub mod exit {
    pub const OK: u8 = 0;
    /// Refused on its merits: unknown user, duplicate, database locked or too new.
    pub const REFUSED: u8 = 1;
    pub const USAGE: u8 = 2;
    /// Any 401, expired and revoked included.
    pub const AUTH: u8 = 3;
    pub const FORBIDDEN: u8 = 4;
    pub const UNREACHABLE: u8 = 5;
    pub const SERVER: u8 = 6;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_contract_status_and_code() {
        let table: Vec<(u16, &str)> = Error::all()
            .iter()
            .map(|e| (e.status(), e.code()))
            .collect();
        assert_eq!(
            table,
            vec![
                (400, "invalid_request"),
                (400, "invalid_request"),
                (400, "invalid_grant"),
                (400, "unsupported_grant_type"),
                (401, "invalid_token"),
                (401, "invalid_credentials"),
                (403, "forbidden"),
                (404, "not_found"),
                (405, "method_not_allowed"),
                (413, "payload_too_large"),
                (408, "request_timeout"),
                (417, "expectation_failed"),
                (414, "uri_too_long"),
                (431, "request_header_fields_too_large"),
                (505, "http_version_not_supported"),
                (429, "too_many_requests"),
                (500, "internal"),
                (503, "unavailable"),
            ]
        );
        let retry: Vec<Option<u64>> = Error::all().iter().map(Error::retry_after).collect();
        // Only 429 and 503 say when to come back (the table's last three rows).
        let mut expected = vec![None; table.len() - 3];
        expected.extend([Some(3), None, Some(2)]);
        assert_eq!(retry, expected);
    }

    #[test]
    fn internal_details_are_never_sent() {
        for e in [
            Error::Internal("secret detail".into()),
            Error::Unavailable("secret detail".into()),
        ] {
            assert!(!e.message().contains("secret"));
        }
    }

    #[test]
    fn reasons_use_the_contract_words() {
        let words: Vec<&str> = [
            Reason::Missing,
            Reason::Unknown,
            Reason::Expired,
            Reason::Revoked,
            Reason::Stale,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect();
        assert_eq!(words, ["missing", "unknown", "expired", "revoked", "stale"]);
    }
}
