//! The whole HTTP surface on one screen: one match from (method, path) to a handler.

use super::browser as b;
use super::handlers as h;
use super::oauth as o;
use super::request::{Method::*, Req};
use super::response::Reply;
use crate::app::App;
use crate::error::Error;

/// Routes a request; also names the endpoint for metrics and logs.
pub fn route(app: &App, req: &Req) -> (&'static str, Result<Reply, Error>) {
    let segments: Vec<&str> = req.path.split('/').skip(1).collect();
    // HEAD is GET without the body (tiny_http leaves the body out).
    let method = if req.method == Head { Get } else { req.method };
    match (method, segments.as_slice()) {
        (Post, ["api", "login"]) => ("login", h::login(app, req)),
        (Post, ["api", "logout"]) => ("logout", h::logout(app, req)),
        (Get, ["api", "userinfo"] | ["oauth", "userinfo"]) => ("userinfo", h::userinfo(app, req)),
        (_, ["api", "validate"]) => ("validate", h::validate(app, req)),
        (Post, ["api", "tokens"]) => ("tokens_create", h::create_token(app, req)),
        (Get, ["api", "tokens"]) => ("tokens_list", h::list_tokens(app, req)),
        (Post, ["api", "tokens", "current", "renew"]) => ("tokens_renew", h::renew_token(app, req)),
        (Delete, ["api", "tokens", id]) => ("tokens_delete", h::delete_token(app, req, id)),
        (Post, ["api", "sessions", "revoke-all"]) => ("revoke_all", h::revoke_all(app, req)),
        (Post, ["oauth", "introspect"]) => ("introspect", h::introspect(app, req)),
        (Post, ["oauth", "revoke"]) => ("oauth_revoke", h::oauth_revoke(app, req)),
        (Post, ["oauth", "token"]) => ("oauth_token", o::token(app, req)),
        (Get, ["oauth", "keys"]) => ("oauth_keys", o::keys(app)),
        (Get, [".well-known", "oauth-authorization-server"]) => {
            ("oauth_metadata", o::metadata(app))
        }
        (Get, ["openapi.json"]) => ("openapi", h::openapi()),
        (Get, ["healthz"]) => ("healthz", h::healthz(app)),
        (Get, ["metrics"]) => ("metrics", h::metrics(app)),
        // Browser sign-in: HTML pages.
        (Get, ["login"]) => ("browser_login", b::login_form(app, req)),
        (Post, ["login"]) => ("browser_login", b::login_submit(app, req)),
        (Get, ["logout"]) => ("browser_logout", b::logout(app, req)),
        (Post, ["logout"]) => ("browser_logout", b::logout_submit(app, req)),
        (Get, [""]) => ("other", b::home(app, req)),
        // Known paths, other methods: 405 with the methods that are (RFC 9110 §15.5.6).
        _ => match allowed(&segments) {
            Some(methods) => (
                "other",
                Ok(super::error_reply(&req.path, &Error::MethodNotAllowed)
                    .header("Allow", methods)),
            ),
            None => ("other", Err(Error::NotFound)),
        },
    }
}

/// The methods each known path answers, for the `Allow` header of a 405 (keep in step
/// with the table above; a test walks both).
fn allowed(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["api", "login" | "logout"]
        | ["api", "tokens", "current", "renew"]
        | ["api", "sessions", "revoke-all"]
        | ["oauth", "introspect" | "revoke" | "token"] => "POST",
        ["api", "userinfo"]
        | ["oauth", "userinfo" | "keys"]
        | [".well-known", "oauth-authorization-server"]
        | ["openapi.json" | "healthz" | "metrics" | ""] => "GET, HEAD",
        ["api", "tokens"] | ["login" | "logout"] => "GET, HEAD, POST",
        ["api", "tokens", id] if !id.is_empty() => "DELETE",
        _ => return None,
    })
}
