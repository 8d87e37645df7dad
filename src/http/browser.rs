//! Browser sign-in for apps behind a reverse proxy: the HTML sign-in form, the session
//! cookie, the `rd` redirect policy, sign-out, and the small home page at `/`.
//!
//! CSRF, for the sign-in form and the sign-out button alike: a form carries a token
//! `{issued}.{nonce}.{mac}`, signed with HMAC-SHA256 under a key kept in the database
//! (so every replica verifies it), valid for an hour. The same token is set in a cookie
//! with the form (`__Host-appliance_csrf`, or `appliance_csrf` with
//! `--insecure-cookies`, since `__Host-` needs `Secure`; `HttpOnly; SameSite=Strict;
//! Path=/`). A post is accepted only when, before any credential is looked at:
//! - the browser does not say it comes from elsewhere: `Sec-Fetch-Site` is not
//!   `cross-site` or `same-site`, and `Origin` (or, without it, `Referer`) names this
//!   host;
//! - the field carries a valid, unexpired signature; and
//! - the browser sent the cookie and it equals the field (constant time). A token
//!   without its cookie is refused, so a token an attacker fetched for their own
//!   browser cannot sign a victim's browser in.
//!
//! A new form reuses the token of a valid cookie the browser sent while it has at
//! least half its hour left, so forms open in other tabs stay usable.
//!
//! Sign-out: `GET /logout` from this origin (or from a client that says nothing of
//! where it comes from) revokes the cookie's session; from elsewhere it only shows a
//! button that posts to `/logout` with a CSRF token, so no other site can sign a user
//! out. The session cookie holds session tokens only (`Req::session_cookie`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::request::Req;
use super::response::Reply;
use super::SESSION_COOKIE;
use crate::app::{App, Slide};
use crate::auth::token;
use crate::config::Config;
use crate::error::Error;

/// How long a sign-in form stays usable.
const CSRF_MAX_AGE_SECS: u32 = 3600;
/// Longest `rd` we follow; longer ones go to `/`.
const MAX_RD_LEN: usize = 2048;

const GENERIC_FAILURE: &str = "Invalid username or password.";
const STALE_FORM: &str = "This sign-in form has expired. Please try again.";

fn csrf_cookie_name(config: &Config) -> &'static str {
    if config.insecure_cookies {
        "appliance_csrf"
    } else {
        "__Host-appliance_csrf"
    }
}

/// `GET /login?rd=URL`: a fresh form with a fresh CSRF token.
pub fn login_form(app: &App, req: &Req) -> Result<Reply, Error> {
    let rd = Req::form_field(req.query.as_bytes(), "rd").unwrap_or_default();
    form_reply(app, req, 200, &rd, "", None)
}

/// `POST /login`: CSRF first, then the credentials (throttled like `/api/login`).
pub fn login_submit(app: &App, req: &Req) -> Result<Reply, Error> {
    let field = |name| Req::form_field(&req.body, name).unwrap_or_default();
    let (username, password, rd) = (field("username"), field("password"), field("rd"));
    if !post_is_ours(app, req) {
        return form_reply(app, req, 403, &rd, &username, Some(STALE_FORM));
    }
    match app.login(&username, &password, req.client) {
        Ok((issued, _user)) => {
            let target = safe_redirect(
                &rd,
                app.config.cookie_domain.as_deref(),
                req.host.as_deref(),
            );
            Ok(Reply::empty(303)
                .header("Location", target)
                .header(
                    "Set-Cookie",
                    session_cookie(&app.config, &issued.token, false),
                )
                .header("Set-Cookie", csrf_cookie(&app.config, "", 0))
                .no_store())
        }
        Err(Error::InvalidCredentials) => {
            form_reply(app, req, 401, &rd, &username, Some(GENERIC_FAILURE))
        }
        Err(Error::TooManyRequests { retry_after_secs }) => {
            let message =
                format!("Too many attempts. Please try again in {retry_after_secs} seconds.");
            Ok(form_reply(app, req, 429, &rd, &username, Some(&message))?
                .header("Retry-After", retry_after_secs.to_string()))
        }
        Err(other) => Err(other),
    }
}

/// `GET /logout`: from this origin, revokes the cookie's session (if it is live) and
/// clears the cookie; from another site, asks first (a button that posts to /logout).
pub fn logout(app: &App, req: &Req) -> Result<Reply, Error> {
    if provenance(req) == Provenance::Elsewhere {
        return confirm_logout(app, req, 200);
    }
    // HEAD is answered like GET, but only a GET signs out (a HEAD must change nothing).
    if req.method == super::request::Method::Get {
        sign_out(app, req)?;
    }
    Ok(signed_out(app))
}

/// `POST /logout`: the sign-out button, CSRF-checked like the sign-in form.
pub fn logout_submit(app: &App, req: &Req) -> Result<Reply, Error> {
    if !post_is_ours(app, req) {
        return confirm_logout(app, req, 403);
    }
    sign_out(app, req)?;
    Ok(signed_out(app).header("Set-Cookie", csrf_cookie(&app.config, "", 0)))
}

/// Revokes the session in the cookie, if it holds a live one.
fn sign_out(app: &App, req: &Req) -> Result<(), Error> {
    if let Some(Ok(presented)) = req.session_cookie() {
        match app.live_token(presented, app.now()) {
            Ok((record, hash)) => {
                if record.kind == token::Kind::Session {
                    app.revoke(&hash)?;
                }
            }
            Err(Error::InvalidToken(_)) => {}
            // The database could not say: not "signed out" while the session may live.
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

fn signed_out(app: &App) -> Reply {
    let body = "<h1>Signed out</h1>\n<p>You are signed out.</p>\n<p><a href=\"/login\">Sign in again</a></p>";
    html_page(200, "Signed out", body).header("Set-Cookie", session_cookie(&app.config, "", true))
}

/// The page another site's link to /logout lands on: nothing is revoked until the
/// user presses the button.
fn confirm_logout(app: &App, req: &Req, status: u16) -> Result<Reply, Error> {
    let (csrf, max_age) = form_csrf(app, req)?;
    let body = format!(
        r#"<h1>Sign out?</h1>
<p>A link brought you here to sign out. Press the button to sign out of this site.</p>
<form method="post" action="/logout">
<input type="hidden" name="csrf" value="{}">
<button type="submit">Sign out</button>
</form>
<p><a href="/">Stay signed in</a></p>"#,
        escape(&csrf)
    );
    Ok(html_page(status, "Sign out?", &body)
        .header("Set-Cookie", csrf_cookie(&app.config, &csrf, max_age)))
}

/// The CSRF token for a new form and the `Max-Age` of its cookie: the token already in
/// the browser's cookie while it has at least half its hour left, else a fresh one.
/// A form carries the cookie's token, so a fresh token for every form would make every
/// form open in another tab (or behind a page whose requests land on /login) stale.
fn form_csrf(app: &App, req: &Req) -> Result<(String, u32), Error> {
    let now_secs = app.now().div_euclid(1000);
    let held = req
        .cookie_value(csrf_cookie_name(&app.config))
        .and_then(|c| Some((c, csrf_issued(&app.csrf_key, c, now_secs)?)));
    if let Some((token, issued)) = held {
        let left = i64::from(CSRF_MAX_AGE_SECS) - (now_secs - issued).max(0);
        if left >= i64::from(CSRF_MAX_AGE_SECS / 2) {
            return Ok((token.to_string(), left as u32));
        }
    }
    Ok((mint_csrf(&app.csrf_key, now_secs)?, CSRF_MAX_AGE_SECS))
}

/// Where a browser says a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provenance {
    /// `Origin` (or, without it, `Referer`) names this host.
    SameOrigin,
    /// Another site, another origin, or an opaque origin (`Origin: null`).
    Elsewhere,
    /// Nothing said (a client that is not a browser, or an old one).
    Unsaid,
}

fn provenance(req: &Req) -> Provenance {
    if matches!(
        req.sec_fetch_site.as_deref(),
        Some("cross-site" | "same-site")
    ) {
        return Provenance::Elsewhere;
    }
    match req.origin.as_deref().or(req.referer.as_deref()) {
        None => Provenance::Unsaid,
        Some(url) if same_origin(url, req.host.as_deref()) => Provenance::SameOrigin,
        Some(_) => Provenance::Elsewhere,
    }
}

/// True when `url` (an `Origin` or `Referer`) is on `host`, the `Host` the browser
/// used. The scheme is not compared: a TLS-terminating proxy passes the host but not
/// the scheme. A proxy that passes the host without its port (nginx `$host`) is
/// compared by host name alone.
fn same_origin(url: &str, host: Option<&str>) -> bool {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return false;
    };
    let lower = url
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    authority.eq_ignore_ascii_case(host)
        || (!host.contains(':')
            && authority
                .rsplit_once(':')
                .is_some_and(|(name, _)| name.eq_ignore_ascii_case(host)))
}

/// The CSRF checks of a form post (see the module comment).
fn post_is_ours(app: &App, req: &Req) -> bool {
    if provenance(req) == Provenance::Elsewhere {
        return false;
    }
    let sent = Req::form_field(&req.body, "csrf").unwrap_or_default();
    let Some(cookie) = req.cookie_value(csrf_cookie_name(&app.config)) else {
        return false;
    };
    csrf_valid(&app.csrf_key, &sent, app.now().div_euclid(1000))
        && cookie.len() == sent.len()
        && bool::from(cookie.as_bytes().ct_eq(sent.as_bytes()))
}

/// `GET /`: who the browser is signed in as, if anyone. Where `rd` falls back to.
/// When the database cannot say whether the cookie's session lives, the page says so
/// (503) rather than "not signed in".
pub fn home(app: &App, req: &Req) -> Result<Reply, Error> {
    let signed_in = match req.session_cookie().and_then(Result::ok) {
        None => None,
        Some(t) => match app.authenticate(t, Slide::Yes) {
            Ok(p) => Some(p),
            Err(Error::InvalidToken(_)) => None,
            Err(other) => return Err(other),
        },
    };
    let body = match signed_in {
        Some(p) => format!(
            "<h1>appliance</h1>\n<p>You are signed in as <strong>{}</strong>.</p>\n<p><a href=\"/logout\">Sign out</a></p>",
            escape(&p.record.username)
        ),
        None => "<h1>appliance</h1>\n<p>You are not signed in.</p>\n<p><a href=\"/login\">Sign in</a></p>".to_string(),
    };
    Ok(html_page(200, "appliance", &body))
}

/// The sign-in form with a new CSRF token (cookie and hidden field).
fn form_reply(
    app: &App,
    req: &Req,
    status: u16,
    rd: &str,
    username: &str,
    message: Option<&str>,
) -> Result<Reply, Error> {
    let (csrf, max_age) = form_csrf(app, req)?;
    let alert = message.map_or(String::new(), |m| {
        format!("<p class=\"alert\" role=\"alert\">{}</p>\n", escape(m))
    });
    // An absolute action: a proxy may show this form in place of a page that answered
    // 401 (Traefik's `errors` middleware), and the post must still reach /login.
    let body = format!(
        r#"<h1>Sign in</h1>
{alert}<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="rd" value="{rd}">
<label for="username">Username</label>
<input id="username" name="username" type="text" value="{username}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>"#,
        csrf = escape(&csrf),
        rd = escape(rd),
        username = escape(username),
    );
    Ok(html_page(status, "Sign in", &body)
        .header("Set-Cookie", csrf_cookie(&app.config, &csrf, max_age)))
}

/// An error on a browser page, as HTML (the JSON API's errors stay JSON).
pub fn error_page(e: &Error) -> Reply {
    let body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<p><a href=\"/login\">Sign in</a></p>",
        e.status(),
        escape(&e.message())
    );
    let page = html_page(e.status(), "appliance", &body);
    match e.retry_after() {
        Some(secs) => page.header("Retry-After", secs.to_string()),
        None => page,
    }
}

fn html_page(status: u16, title: &str, body: &str) -> Reply {
    let page = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
*{{box-sizing:border-box}}
body{{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;background:#f4f5f7;color:#1d2125;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}}
main{{width:100%;max-width:22rem;margin:1rem;padding:2rem 1.5rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}}
h1{{margin:0 0 1rem;font-size:1.5rem}}
label{{display:block;margin:.75rem 0 .25rem;font-weight:600}}
input{{width:100%;padding:.6rem;font:inherit;border:1px solid #8c9196;border-radius:.25rem}}
input:focus,button:focus,a:focus{{outline:3px solid #1f6feb;outline-offset:1px}}
button{{width:100%;margin-top:1.25rem;padding:.7rem;font:inherit;font-weight:600;color:#fff;background:#1f6feb;border:0;border-radius:.25rem;cursor:pointer}}
.alert{{padding:.6rem .75rem;background:#fdecea;color:#8a1c13;border-radius:.25rem}}
a{{color:#0b5cd5}}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    );
    Reply::html(status, page)
        .header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        )
        .header("X-Frame-Options", "DENY")
        // Not `no-referrer`: under it a browser sends `Origin: null` with our own form
        // posts, which the CSRF check must refuse. `same-origin` still gives other
        // sites (an `rd` target) nothing.
        .header("Referrer-Policy", "same-origin")
        .no_store()
}

/// The session cookie, or (`clear`) the header that deletes it with the same attributes.
fn session_cookie(config: &Config, token: &str, clear: bool) -> String {
    let mut c = format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/");
    if !config.insecure_cookies {
        c.push_str("; Secure");
    }
    if let Some(domain) = &config.cookie_domain {
        c.push_str("; Domain=");
        c.push_str(domain);
    }
    if clear {
        c.push_str("; Max-Age=0");
    }
    c
}

fn csrf_cookie(config: &Config, value: &str, max_age: u32) -> String {
    let secure = if config.insecure_cookies {
        ""
    } else {
        "; Secure"
    };
    format!(
        "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
        csrf_cookie_name(config)
    )
}

/// A new signed CSRF token issued at `now_secs`.
fn mint_csrf(key: &[u8], now_secs: i64) -> Result<String, Error> {
    let nonce = token::random_id("")
        .map_err(|e| Error::Internal(format!("OS random source failed: {e}")))?;
    let signed = format!("{now_secs}.{nonce}");
    let mac = URL_SAFE_NO_PAD.encode(csrf_mac(key, &signed).finalize().into_bytes());
    Ok(format!("{signed}.{mac}"))
}

fn csrf_mac(key: &[u8], signed: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length; ours are 32 bytes.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"appliance-csrf.");
    mac.update(signed.as_bytes());
    mac
}

/// True for a token this server signed within the last `CSRF_MAX_AGE_SECS`.
fn csrf_valid(key: &[u8], token: &str, now_secs: i64) -> bool {
    csrf_issued(key, token, now_secs).is_some()
}

/// When a token this server signed within the last `CSRF_MAX_AGE_SECS` was issued.
fn csrf_issued(key: &[u8], token: &str, now_secs: i64) -> Option<i64> {
    let (signed, mac) = token.rsplit_once('.')?;
    let issued = signed
        .split_once('.')
        .and_then(|(t, _)| t.parse::<i64>().ok())?;
    let fresh = issued <= now_secs + 60 && now_secs - issued <= i64::from(CSRF_MAX_AGE_SECS);
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    // verify_slice compares in constant time.
    (fresh && csrf_mac(key, signed).verify_slice(&mac).is_ok()).then_some(issued)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a successful sign-in goes: `rd` if it is safe, else `/`.
///
/// Safe is a same-origin path (`/app?x=1`, not `//host` or `/\host`), an absolute
/// http(s) URL on the request's own host (reduced to its path, so it stays
/// same-origin), or, with a cookie domain, an absolute http(s) URL whose host is that
/// domain or a subdomain of it. Anything with control characters, spaces, backslashes,
/// non-ASCII, userinfo, percent-escapes in the authority, or another scheme is refused.
pub fn safe_redirect(rd: &str, cookie_domain: Option<&str>, request_host: Option<&str>) -> String {
    check_redirect(rd, cookie_domain, request_host).unwrap_or_else(|| "/".to_string())
}

fn check_redirect(
    rd: &str,
    cookie_domain: Option<&str>,
    request_host: Option<&str>,
) -> Option<String> {
    if rd.is_empty() || rd.len() > MAX_RD_LEN {
        return None;
    }
    // Printable ASCII only: no controls, spaces, DEL, non-ASCII; and no backslash,
    // which some browsers read as a slash.
    if !rd.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'\\') {
        return None;
    }
    if rd.starts_with('/') {
        return safe_path(rd).then(|| rd.to_string());
    }
    let lower = rd.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower.starts_with("https://") {
        &rd[8..]
    } else if lower.starts_with("http://") {
        &rd[7..]
    } else {
        return None;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = host_of(authority)?;
    let path = if path.is_empty() { "/" } else { path };
    if !path.starts_with('/') || !safe_path(path) {
        // `https://host?x` or `https://host#x`: keep it simple and refuse.
        return None;
    }
    if request_host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
        return Some(path.to_string());
    }
    let domain = cookie_domain?;
    let in_domain = host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1);
    in_domain.then(|| rd.to_string())
}

/// A path that stays on the origin even after one more round of percent-decoding:
/// not `//…`, not `/\…`.
fn safe_path(path: &str) -> bool {
    let decoded: Vec<u8> = percent_encoding::percent_decode(path.as_bytes()).collect();
    decoded.first() == Some(&b'/')
        && !matches!(decoded.get(1), Some(b'/' | b'\\'))
        && !decoded.iter().any(|b| b.is_ascii_control())
}

/// The lowercased host of an authority `host[:port]`, if it is a plain DNS name or
/// IPv4 address with an optional numeric port (no userinfo, escapes or IPv6 literal).
fn host_of(authority: &str) -> Option<String> {
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if p.parse::<u32>().ok().is_none_or(|n| n == 0 || n > 65535) {
            return None;
        }
    }
    let host = host.to_ascii_lowercase();
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    (labels_ok && host.len() <= 253).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(url: &str, domain: Option<&str>) -> String {
        safe_redirect(url, domain, Some("auth.example.com"))
    }

    #[test]
    fn same_origin_paths_are_followed() {
        for ok in ["/", "/app", "/app/x?y=1&z=%20#frag", "/a%2Fb", "/~user/"] {
            assert_eq!(rd(ok, None), ok);
            assert_eq!(rd(ok, Some("example.com")), ok);
        }
    }

    #[test]
    fn absolute_urls_on_the_cookie_domain_are_followed() {
        let d = Some("example.com");
        for ok in [
            "https://example.com/",
            "https://app.example.com/x?y=1",
            "http://app.example.com:8443/x",
            "HTTPS://App.Example.com/",
            "https://a.b.example.com",
        ] {
            assert_eq!(rd(ok, d), ok);
        }
    }

    #[test]
    fn absolute_urls_on_the_request_host_become_paths() {
        assert_eq!(rd("https://auth.example.com/app?x=1", None), "/app?x=1");
        assert_eq!(rd("http://AUTH.example.com", None), "/");
        assert_eq!(
            safe_redirect("http://127.0.0.1:8080/app", None, Some("127.0.0.1:8080")),
            "/app"
        );
        // Another port is another origin.
        assert_eq!(
            safe_redirect("http://127.0.0.1:9090/app", None, Some("127.0.0.1:8080")),
            "/"
        );
    }

    #[test]
    fn everything_else_goes_home() {
        let d = Some("example.com");
        for bad in [
            "",
            "//evil.example",
            "//evil.example/x",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "/%0a/evil",
            "https://evil.example",
            "https://evil.example/",
            "https://evil.example@app.example.com/",
            "https://app.example.com@evil.example/",
            "https://user:pass@app.example.com/",
            "https://app.example.com%2eevil.example/",
            "https://app.example.com%40evil.example/",
            "https://evilexample.com/",
            "https://example.com.evil.example/",
            "https://.example.com/",
            "https://app.example.com\\@evil.example/",
            "https:/\\evil.example",
            "https:\\\\evil.example",
            "https:evil.example",
            "https:///evil.example",
            "https://[::1]/",
            "https://app.example.com:0/",
            "https://app.example.com:99999/",
            "https://app.example.com:/",
            "https://app.example.com?x",
            "https://app.example.com/%2F%2Fevil",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,hi",
            "ftp://app.example.com/",
            "app",
            "evil.example",
            " /app",
            "/app\n",
            "/ap\tp",
            "/app\r\nSet-Cookie: x=1",
            "https://app.example.com/\u{0}",
            "/caf\u{e9}",
            "\u{7f}/app",
        ] {
            assert_eq!(rd(bad, d), "/", "{bad:?} was followed");
        }
        assert_eq!(rd(&format!("/{}", "a".repeat(MAX_RD_LEN)), d), "/");
    }

    #[test]
    fn without_a_cookie_domain_no_other_host_is_followed() {
        for bad in ["https://app.example.com/", "https://example.com/"] {
            assert_eq!(rd(bad, None), "/", "{bad}");
        }
    }

    #[test]
    fn csrf_tokens_verify_only_with_their_key_and_within_the_hour() {
        let key = [1u8; 32];
        let t = mint_csrf(&key, 1_000_000).unwrap();
        assert!(csrf_valid(&key, &t, 1_000_000));
        assert!(csrf_valid(&key, &t, 1_000_000 + 3600));
        assert!(!csrf_valid(&key, &t, 1_000_000 + 3601));
        assert!(!csrf_valid(&key, &t, 1_000_000 - 61));
        assert!(!csrf_valid(&[2u8; 32], &t, 1_000_000));
        let (signed, _) = t.rsplit_once('.').unwrap();
        let later = signed.replacen("1000000", "1000500", 1);
        assert!(!csrf_valid(
            &key,
            &format!("{later}.{}", t.rsplit_once('.').unwrap().1),
            1_000_600
        ));
        for junk in ["", ".", "..", "x.y.z", &t[..t.len() - 1], &format!("{t}A")] {
            assert!(!csrf_valid(&key, junk, 1_000_000), "{junk}");
        }
    }

    #[test]
    fn same_origin_is_the_host_the_browser_used() {
        let host = Some("app.example.com:8443");
        for ok in [
            "https://app.example.com:8443",
            "http://APP.example.com:8443/login?rd=x",
            "https://app.example.com:8443#x",
        ] {
            assert!(same_origin(ok, host), "{ok}");
        }
        for bad in [
            "null",
            "",
            "https://app.example.com",
            "https://app.example.com:8444",
            "https://evil.example",
            "https://app.example.com:8443@evil.example",
            "https://evil.example/https://app.example.com:8443",
            "ftp://app.example.com:8443",
            "//app.example.com:8443",
        ] {
            assert!(!same_origin(bad, host), "{bad}");
        }
        // A proxy that passes the host name alone: compared by name.
        assert!(same_origin(
            "https://app.example.com:8443",
            Some("app.example.com")
        ));
        assert!(same_origin(
            "https://app.example.com",
            Some("app.example.com")
        ));
        assert!(!same_origin(
            "https://evil.example:443",
            Some("app.example.com")
        ));
        assert!(!same_origin("https://app.example.com", None));
    }

    #[test]
    fn echoed_text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
