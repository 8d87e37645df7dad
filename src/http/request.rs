//! What a handler sees of a request: method, path, query, the few headers that matter,
//! the client address (after `--trusted-proxies`), and the body read through the limit.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};

use crate::auth::token::{self, Kind};
use crate::config::{canonical, Cidr};
use crate::error::{Error, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    pub host: Option<String>,
    /// What the browser says about where the request comes from (`cross-site`, …).
    pub sec_fetch_site: Option<String>,
    /// The `Origin` and `Referer` headers, as sent.
    pub origin: Option<String>,
    pub referer: Option<String>,
    /// The `Content-Type` header, as sent.
    pub content_type: Option<String>,
    pub client: IpAddr,
    pub body: Vec<u8>,
}

/// Reads a tiny_http request into a `Req`. A body over `limit` is not read past it.
pub fn read(rq: &mut tiny_http::Request, limit: u64, trusted: &[Cidr]) -> Result<Req, Error> {
    let method = match rq.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Post => Method::Post,
        tiny_http::Method::Put => Method::Put,
        tiny_http::Method::Patch => Method::Patch,
        tiny_http::Method::Delete => Method::Delete,
        tiny_http::Method::Options => Method::Options,
        _ => Method::Other,
    };
    let (path, query) = match rq.url().split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (rq.url().to_string(), String::new()),
    };
    let mut authorization = None;
    let mut cookie = None;
    let mut host = None;
    let mut forwarded_for = None;
    let mut sec_fetch_site = None;
    let mut origin = None;
    let mut referer = None;
    let mut content_type = None;
    for h in rq.headers() {
        let field = &h.field;
        if field.equiv("Authorization") {
            // Two Authorization headers are ambiguous: neither is used (401 unknown).
            authorization = match authorization {
                None => Some(h.value.as_str().to_string()),
                Some(_) => Some(String::new()),
            };
        } else if field.equiv("Cookie") {
            cookie = Some(h.value.as_str().to_string());
        } else if field.equiv("Host") {
            host = Some(h.value.as_str().to_string());
        } else if field.equiv("Sec-Fetch-Site") {
            sec_fetch_site = Some(h.value.as_str().to_ascii_lowercase());
        } else if field.equiv("Origin") {
            origin = Some(h.value.as_str().to_string());
        } else if field.equiv("Referer") {
            referer = Some(h.value.as_str().to_string());
        } else if field.equiv("Content-Type") {
            content_type = Some(h.value.as_str().to_string());
        } else if field.equiv("X-Forwarded-For") {
            forwarded_for = Some(h.value.as_str().to_string());
        }
    }
    let peer = rq
        .remote_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| canonical(a.ip()));
    let client = client_address(peer, forwarded_for.as_deref(), trusted);
    if rq.body_length().is_some_and(|n| n as u64 > limit) {
        return Err(Error::PayloadTooLarge(limit));
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::InvalidRequest(format!("Could not read the request body: {e}.")))?;
    if body.len() as u64 > limit {
        return Err(Error::PayloadTooLarge(limit));
    }
    Ok(Req {
        method,
        path,
        query,
        authorization,
        cookie,
        host,
        sec_fetch_site,
        origin,
        referer,
        content_type,
        client,
        body,
    })
}

/// The client is the TCP peer, unless the peer is a trusted proxy: then the rightmost
/// address of X-Forwarded-For that is not itself a trusted proxy.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in list.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

impl Req {
    /// The bearer token, if an Authorization header was sent; `cookie_ok` also takes the
    /// browser session cookie when no Authorization header is present.
    pub fn bearer(&self, cookie_ok: bool) -> Result<&str, Error> {
        match &self.authorization {
            Some(value) => parse_bearer(value).ok_or(Error::InvalidToken(Reason::Unknown)),
            None if cookie_ok => self
                .session_cookie()
                .unwrap_or(Err(Error::InvalidToken(Reason::Missing))),
            None => Err(Error::InvalidToken(Reason::Missing)),
        }
    }

    /// The browser session cookie: `None` when it is absent; `unknown` when it holds
    /// anything but a session token (a PAT included), since the cookie is for browser
    /// sessions only.
    pub fn session_cookie(&self) -> Option<Result<&str, Error>> {
        let value = self.cookie_value(super::SESSION_COOKIE)?;
        Some(match token::kind_of(value) {
            Some(Kind::Session) => Ok(value),
            _ => Err(Error::InvalidToken(Reason::Unknown)),
        })
    }

    pub fn cookie_value(&self, name: &str) -> Option<&str> {
        self.cookie.as_deref()?.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name && !v.is_empty()).then_some(v)
        })
    }

    /// One field of a form or query string (`a=1&b=2`), percent-decoded.
    pub fn form_field(encoded: &[u8], name: &str) -> Option<String> {
        form_urlencoded::parse(encoded)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// `Bearer <token>`: the scheme is case-insensitive; the token is everything after the
/// single separating space and must be non-empty.
pub fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec![Cidr::parse_one("10.0.0.0/8")];
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let xff = Some("198.51.100.7, 10.2.2.2");
        assert_eq!(
            client_address(proxy, xff, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(stranger, xff, &trusted), stranger);
        assert_eq!(client_address(proxy, None, &trusted), proxy);
        assert_eq!(client_address(proxy, Some("garbage"), &trusted), proxy);
        // A client cannot hide behind addresses it writes itself: the rightmost
        // untrusted hop is taken.
        assert_eq!(
            client_address(proxy, Some("1.1.1.1, 198.51.100.7"), &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn bearer_shapes() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("Bearer "), None);
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer("Bearerabc"), None);
        // The extra space stays part of the token, which then fails the shape check.
        assert_eq!(parse_bearer("Bearer  abc"), Some(" abc"));
    }
}
