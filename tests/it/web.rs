//! Browser sign-in: the form, CSRF, the session cookie, the `rd` redirect, sign-out.

use crate::support::*;

const CSRF_SECURE: &str = "__Host-appliance_csrf";
const CSRF_INSECURE: &str = "appliance_csrf";

/// GETs the form; returns (csrf cookie value, hidden csrf field).
fn get_form(s: &Server, csrf_name: &str) -> (String, String) {
    let r = get(&s.url("/login?rd=%2Fapp"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let cookie = cookie_value(set_cookie(&r, csrf_name).expect("csrf cookie")).to_string();
    let field = input_value(&r.text, "csrf").expect("csrf field");
    (cookie, field)
}

/// POSTs the form with the given CSRF cookie and field.
fn post_login(s: &Server, csrf: (&str, &str, &str), user: &str, pw: &str, rd: &str) -> Resp {
    let (name, cookie, field) = csrf;
    let body = format!(
        "username={}&password={}&rd={}&csrf={}",
        form_encode(user),
        form_encode(pw),
        form_encode(rd),
        form_encode(field)
    );
    let cookie_header = format!("{name}={cookie}");
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if !cookie.is_empty() {
        headers.push(("Cookie", cookie_header.as_str()));
    }
    request("POST", &s.url("/login"), &headers, body.as_bytes())
}

/// A full sign-in; returns the 303.
fn sign_in(s: &Server, csrf_name: &str, user: &str, rd: &str) -> Resp {
    let (cookie, field) = get_form(s, csrf_name);
    post_login(s, (csrf_name, &cookie, &field), user, PASSWORD, rd)
}

fn with_cookie(url: &str, cookie: &str) -> Resp {
    request("GET", url, &[("Cookie", cookie)], b"")
}

fn session_rows(s: &Server) -> i64 {
    sqlite(&s.db, "SELECT count(*) FROM tokens WHERE kind = 'session'")[0][0]
        .as_i64()
        .unwrap()
}

fn assert_html(r: &Resp) {
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert!(r.text.starts_with("<!doctype html>"), "{}", r.text);
}

#[test]
fn sign_in_form_is_plain_accessible_html_with_a_csrf_token() {
    let s = Server::start(&[]);
    let r = get(&s.url("/login?rd=%2Fapp"), None);
    assert_eq!(r.status, 200);
    assert_html(&r);
    for needle in [
        r#"<label for="username">"#,
        r#"<label for="password">"#,
        r#"type="password""#,
        r#"name="viewport""#,
        r#"<input type="hidden" name="rd" value="/app">"#,
    ] {
        assert!(r.text.contains(needle), "missing {needle}: {}", r.text);
    }
    for absent in ["<script", "src=", "http://", "https://", "<link"] {
        assert!(!r.text.contains(absent), "has {absent}");
    }
    let cookie = set_cookie(&r, CSRF_SECURE).expect("csrf cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let value = cookie_value(cookie);
    assert!(value.len() >= 22, "{cookie}");
    assert_eq!(input_value(&r.text, "csrf").as_deref(), Some(value));
    // Every form gets its own token.
    let again = get(&s.url("/login"), None);
    assert_ne!(input_value(&again.text, "csrf").as_deref(), Some(value));
}

#[test]
fn echoed_values_are_html_escaped() {
    let s = Server::start(&[]);
    let r = get(
        &s.url("/login?rd=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        None,
    );
    assert_eq!(r.status, 200);
    assert!(!r.text.contains("<script>"), "{}", r.text);
    assert!(r.text.contains("&quot;&gt;&lt;script&gt;"), "{}", r.text);
    let (cookie, field) = get_form(&s, CSRF_SECURE);
    let r = post_login(
        &s,
        (CSRF_SECURE, &cookie, &field),
        "<img src=x onerror=alert(1)>",
        "x",
        "/",
    );
    assert_eq!(r.status, 401);
    assert!(!r.text.contains("<img"), "{}", r.text);
}

#[test]
fn sign_in_sets_the_session_cookie_and_redirects_to_a_same_origin_rd() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let r = sign_in(&s, CSRF_SECURE, "alice", "/app?x=1");
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("Location"), Some("/app?x=1"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let cookie = set_cookie(&r, "appliance_session").expect("session cookie");
    let token = cookie_value(cookie);
    assert!(token.starts_with("aps_"), "{cookie}");
    assert_eq!(
        cookie,
        format!("appliance_session={token}; HttpOnly; SameSite=Lax; Path=/; Secure")
    );
    // The form's CSRF cookie is spent.
    let spent = set_cookie(&r, CSRF_SECURE).expect("csrf cleared");
    assert!(spent.contains("Max-Age=0"), "{spent}");

    let cookie_header = format!("appliance_session={token}");
    let v = with_cookie(&s.url("/api/validate"), &cookie_header);
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.header("X-Auth-User"), Some("alice"));
    let u = with_cookie(&s.url("/api/userinfo"), &cookie_header);
    assert_eq!(u.json["token_type"], "session");
    // An Authorization header wins over the cookie.
    let both = request(
        "GET",
        &s.url("/api/validate"),
        &[("Cookie", &cookie_header), ("Authorization", "Bearer nope")],
        b"",
    );
    assert_invalid_token(&both, "unknown");
    // Another host's absolute URL is not followed without a cookie domain.
    let r = sign_in(&s, CSRF_SECURE, "alice", "https://app.example.com/");
    assert_eq!(r.header("Location"), Some("/"));
}

#[test]
fn cookie_domain_sets_domain_and_allows_its_subdomains_only() {
    let s = Server::start(&["--insecure-cookies", "--cookie-domain", ".Example.COM"]);
    s.add_user("alice");
    let r = sign_in(&s, CSRF_INSECURE, "alice", "https://app.example.com/x?y=1");
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("Location"), Some("https://app.example.com/x?y=1"));
    let cookie = set_cookie(&r, "appliance_session").unwrap();
    let token = cookie_value(cookie);
    assert_eq!(
        cookie,
        format!("appliance_session={token}; HttpOnly; SameSite=Lax; Path=/; Domain=example.com")
    );
    for evil in [
        "https://evil.example/",
        "//evil.example",
        "https://evil.example@app.example.com/",
        "/\\evil.example",
        "https://app.example.com.evil.example/",
    ] {
        let r = sign_in(&s, CSRF_INSECURE, "alice", evil);
        assert_eq!(r.status, 303);
        assert_eq!(r.header("Location"), Some("/"), "{evil}");
    }
}

#[test]
fn failed_sign_in_shows_one_generic_message_and_no_session() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let (cookie, field) = get_form(&s, CSRF_SECURE);
    let wrong = post_login(
        &s,
        (CSRF_SECURE, &cookie, &field),
        "alice",
        "wrong-password",
        "/app",
    );
    let unknown = post_login(
        &s,
        (CSRF_SECURE, &cookie, &field),
        "mallory",
        PASSWORD,
        "/app",
    );
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, 401);
        assert_html(r);
        assert!(
            r.text.contains("Invalid username or password."),
            "{}",
            r.text
        );
        assert!(set_cookie(r, "appliance_session").is_none());
        // The form comes back filled in, ready for another try.
        assert_eq!(input_value(&r.text, "rd").as_deref(), Some("/app"));
        assert!(input_value(&r.text, "csrf").is_some());
    }
    let strip = |t: &str| t.replace(&input_value(t, "csrf").unwrap(), "");
    assert_eq!(
        strip(&wrong.text).replace("alice", "X"),
        strip(&unknown.text).replace("mallory", "X")
    );
    assert_eq!(session_rows(&s), 0);
}

#[test]
fn missing_or_wrong_csrf_token_is_refused_before_the_password() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let (cookie, field) = get_form(&s, CSRF_SECURE);
    let other = get_form(&s, CSRF_SECURE).1;
    let forged = format!("{}.{}", &field[..field.rfind('.').unwrap()], "A".repeat(43));
    for (cookie, field) in [
        ("", ""),
        ("", forged.as_str()),
        ("", "1.2.3"),
        (cookie.as_str(), ""),
        // Both signed by the server, but not the pair this browser was given.
        (cookie.as_str(), other.as_str()),
        (cookie.as_str(), &field[..field.len() - 1]),
    ] {
        let r = post_login(&s, (CSRF_SECURE, cookie, field), "alice", PASSWORD, "/");
        assert_eq!(r.status, 403, "{}", r.text);
        assert_html(&r);
        assert!(set_cookie(&r, "appliance_session").is_none());
        // A fresh form to try again.
        assert!(set_cookie(&r, CSRF_SECURE).is_some());
    }
    // A browser that says the post comes from another site is refused, token or not.
    let body = format!(
        "username=alice&password={}&rd=%2F&csrf={}",
        form_encode(PASSWORD),
        form_encode(&field)
    );
    let r = request(
        "POST",
        &s.url("/login"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(session_rows(&s), 0);
}

/// The form's token is bound to the cookie set with the form: without that cookie
/// (an attacker's own token posted from a victim's browser), no sign-in.
#[test]
fn a_form_token_without_its_cookie_is_refused() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let (cookie, field) = get_form(&s, CSRF_SECURE);
    for _ in 0..2 {
        let r = post_login(&s, (CSRF_SECURE, "", &field), "alice", PASSWORD, "/app");
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(set_cookie(&r, "appliance_session").is_none());
    }
    // Under the other name (what --insecure-cookies uses) it is not the cookie either.
    let r = post_login(&s, (CSRF_INSECURE, &cookie, &field), "alice", PASSWORD, "/");
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(session_rows(&s), 0);
    // With its cookie, the same token works.
    let r = post_login(
        &s,
        (CSRF_SECURE, &cookie, &field),
        "alice",
        PASSWORD,
        "/app",
    );
    assert_eq!(r.status, 303, "{}", r.text);
}

/// A browser with two tabs on the sign-in form (two apps that sent it to sign in, or a
/// page polling behind the form): opening the second form, or a wrong password typed
/// in it, must not make the first form stale.
#[test]
fn a_second_sign_in_form_leaves_the_first_usable() {
    let s = Server::start(&[]);
    s.add_user("alice");
    // The browser's cookie jar: whatever the last answer set.
    let (mut jar, first) = get_form(&s, CSRF_SECURE);
    let cookie = format!("{CSRF_SECURE}={jar}");
    let second = request(
        "GET",
        &s.url("/login?rd=%2Fother"),
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(second.status, 200, "{}", second.text);
    jar = cookie_value(set_cookie(&second, CSRF_SECURE).expect("csrf cookie")).to_string();
    let second_field = input_value(&second.text, "csrf").unwrap();
    let r = post_login(
        &s,
        (CSRF_SECURE, &jar, &second_field),
        "alice",
        "wrong password",
        "/",
    );
    assert_eq!(r.status, 401, "{}", r.text);
    if let Some(set) = set_cookie(&r, CSRF_SECURE) {
        jar = cookie_value(set).to_string();
    }
    let r = post_login(&s, (CSRF_SECURE, &jar, &first), "alice", PASSWORD, "/app");
    assert_eq!(r.status, 303, "{}", r.text);
    // Only a token this server signed is reused: anything else in the cookie gets a
    // fresh one, never echoed.
    for planted in ["1.x.y", "\"><b>x</b>", first.as_str()] {
        let r = request(
            "GET",
            &s.url("/login"),
            &[("Cookie", &format!("{CSRF_SECURE}={planted}x"))],
            b"",
        );
        let field = input_value(&r.text, "csrf").unwrap();
        assert!(
            !field.contains(planted) && !r.text.contains("<b>"),
            "{}",
            r.text
        );
    }
}

/// POSTs the sign-in form with a valid CSRF pair and extra headers.
fn post_login_from(s: &Server, csrf_name: &str, extra: &[(&str, &str)]) -> Resp {
    let (cookie, field) = get_form(s, csrf_name);
    let body = format!(
        "username=alice&password={}&rd=%2Fapp&csrf={}",
        form_encode(PASSWORD),
        form_encode(&field)
    );
    let cookie_header = format!("{csrf_name}={cookie}");
    let mut headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie_header.as_str()),
    ];
    headers.extend_from_slice(extra);
    request("POST", &s.url("/login"), &headers, body.as_bytes())
}

#[test]
fn a_sign_in_post_from_another_origin_is_refused() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let own = format!("http://127.0.0.1:{}", s.port);
    let own_page = format!("{own}/login?rd=%2Fapp");
    let other_port = format!("http://127.0.0.1:{}", s.port + 1);
    for foreign in [
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "null")],
        vec![("Origin", other_port.as_str())],
        vec![
            ("Origin", "https://evil.example"),
            ("Referer", own_page.as_str()),
        ],
        vec![("Referer", "https://evil.example/page")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
        vec![("Origin", own.as_str()), ("Sec-Fetch-Site", "same-site")],
    ] {
        let r = post_login_from(&s, CSRF_SECURE, &foreign);
        assert_eq!(r.status, 403, "{foreign:?}: {}", r.text);
        assert_html(&r);
    }
    assert_eq!(session_rows(&s), 0);
    for same in [
        vec![("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")],
        vec![("Referer", own_page.as_str())],
        vec![],
    ] {
        let r = post_login_from(&s, CSRF_SECURE, &same);
        assert_eq!(r.status, 303, "{same:?}: {}", r.text);
    }
}

#[test]
fn form_and_api_logins_share_the_throttle() {
    let s = Server::start(&["--login-max-failures-user", "2"]);
    s.add_user("alice");
    let (cookie, field) = get_form(&s, CSRF_SECURE);
    for _ in 0..2 {
        let r = post_login(
            &s,
            (CSRF_SECURE, &cookie, &field),
            "alice",
            "wrong-password",
            "/",
        );
        assert_eq!(r.status, 401);
    }
    let r = post_login(&s, (CSRF_SECURE, &cookie, &field), "alice", PASSWORD, "/");
    assert_eq!(r.status, 429, "{}", r.text);
    assert_html(&r);
    let secs: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=300).contains(&secs));
    assert!(set_cookie(&r, "appliance_session").is_none());
    let api = post_json(
        &s.url("/api/login"),
        None,
        &format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#),
    );
    assert_error(&api, 429, "too_many_requests");
}

#[test]
fn concurrent_wrong_passwords_through_the_form_check_at_most_the_limit() {
    let s = Server::start(&["--login-max-failures-user", "10"]);
    s.add_user("alice");
    let (cookie, field) = get_form(&s, CSRF_SECURE);
    let url = s.url("/login");
    let body = format!(
        "username=alice&password=wrong-password&rd=%2F&csrf={}",
        form_encode(&field)
    );
    let cookie_header = format!("{CSRF_SECURE}={cookie}");
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie_header.as_str()),
    ];
    let statuses = concurrently(30, || {
        request("POST", &url, &headers, body.as_bytes()).status
    });
    let checked = statuses.iter().filter(|&&st| st == 401).count();
    assert!(checked <= 10, "{checked} passwords checked: {statuses:?}");
    assert!(
        statuses.iter().all(|&st| st == 401 || st == 429),
        "{statuses:?}"
    );
    let r = post_login(&s, (CSRF_SECURE, &cookie, &field), "alice", PASSWORD, "/");
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(session_rows(&s), 0);
}

#[test]
fn sign_out_revokes_the_cookie_session_and_clears_the_cookie() {
    let s = Server::start(&["--insecure-cookies", "--cookie-domain", "example.com"]);
    s.add_user("alice");
    let r = sign_in(&s, CSRF_INSECURE, "alice", "/");
    let token = cookie_value(set_cookie(&r, "appliance_session").unwrap()).to_string();
    let cookie_header = format!("appliance_session={token}");
    let home = with_cookie(&s.url("/"), &cookie_header);
    assert_eq!(home.status, 200);
    assert!(
        home.text.contains("signed in as <strong>alice</strong>"),
        "{}",
        home.text
    );

    let out = with_cookie(&s.url("/logout"), &cookie_header);
    assert_eq!(out.status, 200);
    assert_html(&out);
    assert!(out.text.contains("signed out"), "{}", out.text);
    assert_eq!(
        set_cookie(&out, "appliance_session"),
        Some("appliance_session=; HttpOnly; SameSite=Lax; Path=/; Domain=example.com; Max-Age=0")
    );
    let v = with_cookie(&s.url("/api/validate"), &cookie_header);
    assert_invalid_token(&v, "revoked");
    let home = with_cookie(&s.url("/"), &cookie_header);
    assert!(home.text.contains("not signed in"), "{}", home.text);
    // Signing out without a session is fine too.
    assert_eq!(get(&s.url("/logout"), None).status, 200);
}

#[test]
fn browser_pages_refuse_other_methods() {
    let s = Server::start(&[]);
    // The browser pages answer with HTML, errors included.
    for (method, path) in [("PUT", "/login"), ("PUT", "/logout"), ("DELETE", "/")] {
        let r = request(method, &s.url(path), &[], b"");
        assert_eq!(r.status, 405, "{method} {path}");
        assert_html(&r);
        assert!(r.header("Allow").is_some());
    }
    let huge = vec![b'a'; 70_000];
    let r = request(
        "POST",
        &s.url("/login"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &huge,
    );
    assert_eq!(r.status, 413);
    assert_html(&r);
    // HEAD /logout changes nothing.
    s.add_user("alice");
    let token = s.login("alice");
    let cookie = format!("appliance_session={token}");
    assert_eq!(
        request("HEAD", &s.url("/logout"), &[("Cookie", &cookie)], b"").status,
        200
    );
    assert_eq!(get(&s.url("/api/validate"), Some(&token)).status, 200);
}

#[test]
fn another_site_cannot_sign_a_user_out() {
    let s = Server::start(&["--insecure-cookies"]);
    s.add_user("alice");
    let r = sign_in(&s, CSRF_INSECURE, "alice", "/");
    let token = cookie_value(set_cookie(&r, "appliance_session").unwrap()).to_string();
    let session = format!("appliance_session={token}");
    let page = format!("http://127.0.0.1:{}/", s.port);
    for foreign in [
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Referer", "https://evil.example/")],
        vec![("Origin", "https://evil.example")],
    ] {
        let mut headers = vec![("Cookie", session.as_str())];
        headers.extend_from_slice(&foreign);
        let r = request("GET", &s.url("/logout"), &headers, b"");
        assert_eq!(r.status, 200, "{foreign:?}");
        assert_html(&r);
        assert!(
            r.text.contains(r#"<form method="post" action="/logout">"#),
            "{}",
            r.text
        );
        assert!(set_cookie(&r, "appliance_session").is_none(), "{foreign:?}");
        assert_eq!(get(&s.url("/api/validate"), Some(&token)).status, 200);
    }
    // The button: a POST with the page's CSRF token and cookie signs out.
    let confirm = request(
        "GET",
        &s.url("/logout"),
        &[("Cookie", &session), ("Sec-Fetch-Site", "cross-site")],
        b"",
    );
    let field = input_value(&confirm.text, "csrf").unwrap();
    let csrf = cookie_value(set_cookie(&confirm, CSRF_INSECURE).unwrap()).to_string();
    let body = format!("csrf={}", form_encode(&field));
    // Without its cookie, or from another site, the button does nothing.
    for (cookies, extra) in [
        (session.clone(), None),
        (
            format!("{session}; {CSRF_INSECURE}={csrf}"),
            Some(("Origin", "https://evil.example")),
        ),
    ] {
        let mut headers = vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", cookies.as_str()),
        ];
        headers.extend(extra);
        let r = request("POST", &s.url("/logout"), &headers, body.as_bytes());
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(get(&s.url("/api/validate"), Some(&token)).status, 200);
    }
    let cookies = format!("{session}; {CSRF_INSECURE}={csrf}");
    let r = request(
        "POST",
        &s.url("/logout"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookies),
            ("Origin", page.trim_end_matches('/')),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("signed out"), "{}", r.text);
    assert!(set_cookie(&r, "appliance_session")
        .unwrap()
        .contains("Max-Age=0"));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&token)), "revoked");

    // Same-origin GET /logout signs out at once, as before.
    let r = sign_in(&s, CSRF_INSECURE, "alice", "/");
    let token = cookie_value(set_cookie(&r, "appliance_session").unwrap()).to_string();
    let session = format!("appliance_session={token}");
    let r = request(
        "GET",
        &s.url("/logout"),
        &[
            ("Cookie", &session),
            ("Sec-Fetch-Site", "same-origin"),
            ("Referer", &page),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.text.contains("signed out"), "{}", r.text);
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&token)), "revoked");
}

#[test]
fn the_csrf_cookie_is_secure_by_the_session_cookie_rule() {
    let secure = Server::start(&[]);
    let r = get(&secure.url("/login"), None);
    let c = set_cookie(&r, CSRF_SECURE).unwrap();
    assert!(c.contains("; Secure") && c.contains("Max-Age=3600"), "{c}");
    let plain = Server::start(&["--insecure-cookies"]);
    let r = get(&plain.url("/login"), None);
    let c = set_cookie(&r, CSRF_INSECURE).unwrap();
    assert!(!c.contains("Secure") && c.contains("Max-Age=3600"), "{c}");
}
