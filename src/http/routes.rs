//! The whole HTTP surface on one screen: one table from (method, path) to an endpoint
//! and its handler. Adding a route is adding a row; the 405's `Allow` header, metrics
//! and HTML-or-JSON errors all follow from the table.

use super::browser as b;
use super::handlers as h;
use super::oauth as o;
use super::request::{Method, Req};
use super::response::Reply;
use crate::app::App;
use crate::error::Error;

/// Every endpoint, for metrics and logs (`Other`: anything unrouted, and the home page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    Logout,
    Userinfo,
    Validate,
    TokensCreate,
    TokensList,
    TokensDelete,
    TokensRenew,
    RevokeAll,
    Introspect,
    OauthRevoke,
    OauthToken,
    OauthKeys,
    OauthMetadata,
    Openapi,
    Healthz,
    Metrics,
    BrowserLogin,
    BrowserLogout,
    Other,
}

impl Endpoint {
    /// In the order of the enum, so `endpoint as usize` indexes it.
    pub const ALL: [Endpoint; 20] = [
        Endpoint::Login,
        Endpoint::Logout,
        Endpoint::Userinfo,
        Endpoint::Validate,
        Endpoint::TokensCreate,
        Endpoint::TokensList,
        Endpoint::TokensDelete,
        Endpoint::TokensRenew,
        Endpoint::RevokeAll,
        Endpoint::Introspect,
        Endpoint::OauthRevoke,
        Endpoint::OauthToken,
        Endpoint::OauthKeys,
        Endpoint::OauthMetadata,
        Endpoint::Openapi,
        Endpoint::Healthz,
        Endpoint::Metrics,
        Endpoint::BrowserLogin,
        Endpoint::BrowserLogout,
        Endpoint::Other,
    ];

    /// The `endpoint` label of the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Login => "login",
            Endpoint::Logout => "logout",
            Endpoint::Userinfo => "userinfo",
            Endpoint::Validate => "validate",
            Endpoint::TokensCreate => "tokens_create",
            Endpoint::TokensList => "tokens_list",
            Endpoint::TokensDelete => "tokens_delete",
            Endpoint::TokensRenew => "tokens_renew",
            Endpoint::RevokeAll => "revoke_all",
            Endpoint::Introspect => "introspect",
            Endpoint::OauthRevoke => "oauth_revoke",
            Endpoint::OauthToken => "oauth_token",
            Endpoint::OauthKeys => "oauth_keys",
            Endpoint::OauthMetadata => "oauth_metadata",
            Endpoint::Openapi => "openapi",
            Endpoint::Healthz => "healthz",
            Endpoint::Metrics => "metrics",
            Endpoint::BrowserLogin => "browser_login",
            Endpoint::BrowserLogout => "browser_logout",
            Endpoint::Other => "other",
        }
    }
}

/// Which methods a row answers. `Get` answers HEAD too (tiny_http leaves the body out).
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    Get,
    Post,
    Delete,
    Any,
}

/// How a row's errors are rendered: the contract's JSON, or an HTML page.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Api,
    Page,
}
use Kind::{Api, Page};

type Handler = fn(&App, &Req, &[&str]) -> Result<Reply, Error>;

/// A path segment `ID` matches any non-empty segment and is handed to the handler.
const ID: &str = "{id}";

struct Route {
    on: On,
    path: &'static [&'static str],
    endpoint: Endpoint,
    kind: Kind,
    handler: Handler,
}

const fn r(
    on: On,
    path: &'static [&'static str],
    endpoint: Endpoint,
    kind: Kind,
    handler: Handler,
) -> Route {
    Route {
        on,
        path,
        endpoint,
        kind,
        handler,
    }
}

use Endpoint as E;
use On::{Any, Delete, Get, Post};

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    r(Post,   &["api", "login"],                      E::Login,         Api,  |a, q, _| h::login(a, q)),
    r(Post,   &["api", "logout"],                     E::Logout,        Api,  |a, q, _| h::logout(a, q)),
    r(Get,    &["api", "userinfo"],                   E::Userinfo,      Api,  |a, q, _| h::userinfo(a, q)),
    r(Get,    &["oauth", "userinfo"],                 E::Userinfo,      Api,  |a, q, _| h::userinfo(a, q)),
    r(Any,    &["api", "validate"],                   E::Validate,      Api,  |a, q, _| h::validate(a, q)),
    r(Post,   &["api", "tokens"],                     E::TokensCreate,  Api,  |a, q, _| h::create_token(a, q)),
    r(Get,    &["api", "tokens"],                     E::TokensList,    Api,  |a, q, _| h::list_tokens(a, q)),
    r(Post,   &["api", "tokens", "current", "renew"], E::TokensRenew,   Api,  |a, q, _| h::renew_token(a, q)),
    r(Delete, &["api", "tokens", ID],                 E::TokensDelete,  Api,  |a, q, p| h::delete_token(a, q, p[0])),
    r(Post,   &["api", "sessions", "revoke-all"],     E::RevokeAll,     Api,  |a, q, _| h::revoke_all(a, q)),
    r(Post,   &["oauth", "introspect"],               E::Introspect,    Api,  |a, q, _| h::introspect(a, q)),
    r(Post,   &["oauth", "revoke"],                   E::OauthRevoke,   Api,  |a, q, _| h::oauth_revoke(a, q)),
    r(Post,   &["oauth", "token"],                    E::OauthToken,    Api,  |a, q, _| o::token(a, q)),
    r(Get,    &["oauth", "keys"],                     E::OauthKeys,     Api,  |a, _, _| o::keys(a)),
    r(Get,    &[".well-known", "oauth-authorization-server"], E::OauthMetadata, Api, |a, _, _| o::metadata(a)),
    r(Get,    &["openapi.json"],                      E::Openapi,       Api,  |_, _, _| h::openapi()),
    r(Get,    &["healthz"],                           E::Healthz,       Api,  |a, _, _| h::healthz(a)),
    r(Get,    &["metrics"],                           E::Metrics,       Api,  |a, _, _| h::metrics(a)),
    // Browser sign-in: HTML pages, errors included.
    r(Get,    &["login"],                             E::BrowserLogin,  Page, |a, q, _| b::login_form(a, q)),
    r(Post,   &["login"],                             E::BrowserLogin,  Page, |a, q, _| b::login_submit(a, q)),
    r(Get,    &["logout"],                            E::BrowserLogout, Page, |a, q, _| b::logout(a, q)),
    r(Post,   &["logout"],                            E::BrowserLogout, Page, |a, q, _| b::logout_submit(a, q)),
    r(Get,    &[""],                                  E::Other,         Page, |a, q, _| b::home(a, q)),
];

/// What a path resolved to: the row for the method, or only the path's rows.
pub struct Resolved {
    pub endpoint: Endpoint,
    /// Errors of this path are HTML pages.
    pub page: bool,
    result: Result<Handler, Error>,
}

/// Finds the row for (method, path), with the path's `{id}` segments.
fn resolve<'p>(method: Method, path: &'p str, params: &mut Vec<&'p str>) -> Resolved {
    let Some(segments) = path.strip_prefix('/') else {
        return Resolved {
            endpoint: Endpoint::Other,
            page: false,
            result: Err(Error::NotFound),
        };
    };
    let mut path_known: Option<&Route> = None;
    for route in ROUTES {
        params.clear();
        if !matches(route.path, segments, params) {
            continue;
        }
        if accepts(route.on, method) {
            return Resolved {
                endpoint: route.endpoint,
                page: route.kind == Page,
                result: Ok(route.handler),
            };
        }
        path_known.get_or_insert(route);
    }
    match path_known {
        // Known path, other method: 405 with the methods that are (RFC 9110 §15.5.6).
        Some(route) => Resolved {
            endpoint: Endpoint::Other,
            page: route.kind == Page,
            result: Err(Error::MethodNotAllowed(allowed(route.path))),
        },
        None => Resolved {
            endpoint: Endpoint::Other,
            page: false,
            result: Err(Error::NotFound),
        },
    }
}

fn matches<'p>(pattern: &[&str], mut path: &'p str, params: &mut Vec<&'p str>) -> bool {
    for (i, want) in pattern.iter().enumerate() {
        let (segment, rest) = match path.split_once('/') {
            Some((s, r)) => (s, Some(r)),
            None => (path, None),
        };
        if *want == ID {
            if segment.is_empty() {
                return false;
            }
            params.push(segment);
        } else if segment != *want {
            return false;
        }
        match rest {
            Some(r) if i + 1 < pattern.len() => path = r,
            None if i + 1 == pattern.len() => return true,
            _ => return false,
        }
    }
    false
}

fn accepts(on: On, method: Method) -> bool {
    match on {
        On::Any => true,
        On::Get => matches!(method, Method::Get | Method::Head),
        On::Post => method == Method::Post,
        On::Delete => method == Method::Delete,
    }
}

/// The `Allow` header of a path: every method of its rows, in table order.
fn allowed(path: &[&str]) -> &'static str {
    let mut get = false;
    let mut post = false;
    let mut delete = false;
    for route in ROUTES.iter().filter(|r| r.path == path) {
        match route.on {
            On::Get => get = true,
            On::Post => post = true,
            On::Delete => delete = true,
            On::Any => return "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        }
    }
    match (get, post, delete) {
        (true, true, _) => "GET, HEAD, POST",
        (true, false, _) => "GET, HEAD",
        (false, true, _) => "POST",
        _ => "DELETE",
    }
}

/// Routes a request; also names the endpoint for metrics and logs, and says whether
/// its errors are HTML pages.
pub fn route(app: &App, req: &Req) -> (Endpoint, bool, Result<Reply, Error>) {
    let mut params = Vec::new();
    let resolved = resolve(req.method, &req.path, &mut params);
    let result = match resolved.result {
        Ok(handler) => handler(app, req, &params),
        Err(e) => Err(e),
    };
    (resolved.endpoint, resolved.page, result)
}

/// Whether errors on `path` are HTML pages (for answers the HTTP layer gives itself).
pub fn is_page(path: &str) -> bool {
    resolve(Method::Get, path, &mut Vec::new()).page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(method: Method, path: &str) -> (Endpoint, Result<(), Error>) {
        let r = resolve(method, path, &mut Vec::new());
        (r.endpoint, r.result.map(|_| ()))
    }

    #[test]
    fn every_row_is_reachable_and_named() {
        for route in ROUTES {
            let path: String = route
                .path
                .iter()
                .map(|s| format!("/{}", if *s == ID { "x1" } else { s }))
                .collect();
            let method = match route.on {
                On::Get => Method::Get,
                On::Post | On::Any => Method::Post,
                On::Delete => Method::Delete,
            };
            assert_eq!(endpoint(method, &path), (route.endpoint, Ok(())), "{path}");
        }
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{}", e.name());
        }
    }

    #[test]
    fn paths_and_methods() {
        assert_eq!(endpoint(Method::Head, "/healthz").0, Endpoint::Healthz);
        assert_eq!(endpoint(Method::Put, "/api/validate").0, Endpoint::Validate);
        let mut params = Vec::new();
        let r = resolve(Method::Delete, "/api/tokens/abc", &mut params);
        assert_eq!((r.endpoint, params), (Endpoint::TokensDelete, vec!["abc"]));
        for path in [
            "/api/tokens/",
            "/api/login/x",
            "/api",
            "/nope",
            "//api/login",
            "/api//login",
        ] {
            assert_eq!(
                endpoint(Method::Post, path).1,
                Err(Error::NotFound),
                "{path}"
            );
        }
        assert_eq!(
            endpoint(Method::Get, "/api/login").1,
            Err(Error::MethodNotAllowed("POST"))
        );
        assert_eq!(
            endpoint(Method::Put, "/login").1,
            Err(Error::MethodNotAllowed("GET, HEAD, POST"))
        );
        assert_eq!(
            endpoint(Method::Get, "/api/tokens/x").1,
            Err(Error::MethodNotAllowed("DELETE"))
        );
        assert!(is_page("/login") && is_page("/logout") && is_page("/"));
        assert!(!is_page("/api/login") && !is_page("/nope") && !is_page("") && !is_page("login"));
    }
}
