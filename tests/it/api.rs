//! The JSON API, endpoint by endpoint, against the real server.

use std::thread::sleep;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn login_body(user: &str, password: &str) -> String {
    serde_json::json!({ "username": user, "password": password }).to_string()
}

#[test]
fn login_then_validate_answers_who_the_token_is() {
    let s = Server::start(&[]);
    let id = s.add_user("alice");
    let r = post_json(&s.url("/api/login"), None, &login_body("alice", PASSWORD));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["user"]["id"], id.as_str());
    assert_eq!(r.json["user"]["username"], "alice");
    let token = r.json["token"].as_str().unwrap();
    assert!(token.starts_with("aps_") && token.len() == 47);
    let expires = r.json["expires_at"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");

    for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        let auth = format!("Bearer {token}");
        let r = request(
            method,
            &s.url("/api/validate"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 200, "{method}: {}", r.text);
        assert_eq!(r.json["sub"], id.as_str());
        assert_eq!(r.json["username"], "alice");
        assert_eq!(r.json["session_version"], 1);
        assert_eq!(r.json["token_type"], "session");
        assert_eq!(r.header("X-Auth-User"), Some("alice"));
        assert_eq!(r.header("X-Auth-User-Id"), Some(id.as_str()));
        assert_eq!(r.header("X-Auth-Session-Version"), Some("1"));
    }
    for path in ["/api/userinfo", "/oauth/userinfo"] {
        let r = get(&s.url(path), Some(token));
        assert_eq!(r.status, 200);
        assert_eq!(r.json["username"], "alice");
        assert_eq!(r.json["token_type"], "session");
    }
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_401() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let wrong = post_json(
        &s.url("/api/login"),
        None,
        &login_body("alice", "not-the-password"),
    );
    let unknown = post_json(
        &s.url("/api/login"),
        None,
        &login_body("mallory", "not-the-password"),
    );
    let bad_shape = post_json(&s.url("/api/login"), None, &login_body("Not A Name!", "x"));
    assert_error(&wrong, 401, "invalid_credentials");
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(wrong.text, bad_shape.text);
}

#[test]
fn malformed_and_oversized_bodies_are_refused_without_effect() {
    let s = Server::start(&["--body-limit", "1024"]);
    s.add_user("alice");
    let url = s.url("/api/login");
    for body in [
        "",
        "not json",
        "[]",
        r#"{"username":"alice"}"#,
        r#"{"username":"alice","password":5}"#,
        r#"{"username":null,"password":"x"}"#,
    ] {
        assert_error(&post_json(&url, None, body), 400, "invalid_request");
    }
    let huge = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        "x".repeat(5000)
    );
    assert_error(&post_json(&url, None, &huge), 413, "payload_too_large");
    // Nothing was stored by any of them.
    assert_eq!(sqlite(&s.db, "SELECT count(*) FROM tokens")[0][0], 0);
    // And the server still answers.
    s.login("alice");
}

#[test]
fn missing_and_unusable_credentials_are_401_with_a_reason() {
    let s = Server::start(&[]);
    let r = get(&s.url("/api/validate"), None);
    assert_invalid_token(&r, "missing");
    for header in [
        "Basic YWxpY2U6eA==",
        "Bearer",
        "Bearer ",
        "aps_x",
        "Token abc",
    ] {
        let r = request(
            "GET",
            &s.url("/api/validate"),
            &[("Authorization", header)],
            b"",
        );
        assert_invalid_token(&r, "unknown");
    }
}

#[test]
fn near_miss_tokens_are_rejected() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let token = s.login("alice");
    let mut variants = vec![
        String::new(),
        token[..token.len() - 1].to_string(),
        format!("{token}A"),
        format!("{token}{token}"),
        token.to_uppercase(),
        token.to_lowercase(),
        format!("{}x{}", &token[..20], &token[20..]),
        "aps_".to_string() + &"A".repeat(43),
        token.replace("aps_", "apt_"),
    ];
    for i in [4, 25, token.len() - 1] {
        let mut b = token.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        variants.push(String::from_utf8(b).unwrap());
    }
    for v in &variants {
        if v == &token {
            continue;
        }
        let r = get(&s.url("/api/validate"), Some(v));
        assert_invalid_token(&r, "unknown");
    }
    let with_space = format!("{} {}", &token[..10], &token[10..]);
    let auth = format!("Bearer {with_space}");
    assert_invalid_token(
        &request(
            "GET",
            &s.url("/api/validate"),
            &[("Authorization", &auth)],
            b"",
        ),
        "unknown",
    );
    assert_eq!(get(&s.url("/api/validate"), Some(&token)).status, 200);
}

#[test]
fn sessions_slide_with_use_and_expire_without_it() {
    let s = Server::start(&["--session-window", "3s"]);
    s.add_user("alice");
    let token = s.login("alice");
    let first = get(&s.url("/api/userinfo"), Some(&token)).json["expires_at"].clone();
    sleep(Duration::from_millis(2100));
    let r = get(&s.url("/api/validate"), Some(&token));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.json["expires_at"].as_str() > first.as_str(),
        "{} !> {first}",
        r.json["expires_at"]
    );
    sleep(Duration::from_millis(2100));
    // Still alive: the use above pushed it forward.
    assert_eq!(get(&s.url("/api/validate"), Some(&token)).status, 200);
    sleep(Duration::from_millis(3200));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&token)), "expired");
    // Never revived.
    assert_invalid_token(&get(&s.url("/api/userinfo"), Some(&token)), "expired");
}

#[test]
fn sliding_stops_at_the_absolute_lifetime() {
    let s = Server::start(&["--session-window", "2s", "--session-lifetime", "3s"]);
    s.add_user("alice");
    let token = s.login("alice");
    for _ in 0..2 {
        sleep(Duration::from_millis(1200));
        assert_eq!(get(&s.url("/api/validate"), Some(&token)).status, 200);
    }
    sleep(Duration::from_millis(1000));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&token)), "expired");
}

#[test]
fn personal_access_tokens_are_created_listed_and_deleted() {
    let s = Server::start(&[]);
    s.add_user("alice");
    s.add_user("bob");
    let session = s.login("alice");
    let r = s.pat(&session, r#"{"name":"ci"}"#);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let pat = r.json["token"].as_str().unwrap().to_string();
    let id = r.json["id"].as_str().unwrap().to_string();
    assert!(pat.starts_with("apt_"));
    assert_eq!(r.json["name"], "ci");
    assert!(r.json["expires_at"].is_string());
    let whole = s.pat(&session, r#"{"name":"whole","expires_in_days":30.0}"#);
    assert_eq!(whole.status, 201, "{}", whole.text);
    let forever = s.pat(&session, r#"{"name":"forever","expires_in_days":null}"#);
    assert_eq!(forever.status, 201);
    assert_eq!(forever.json["expires_at"], Value::Null);

    let info = get(&s.url("/api/userinfo"), Some(&pat));
    assert_eq!(info.json["token_type"], "pat");
    assert_eq!(
        get(
            &s.url("/api/userinfo"),
            Some(forever.json["token"].as_str().unwrap())
        )
        .json["expires_at"],
        Value::Null
    );

    // A PAT may list and delete, not create.
    assert_error(&s.pat(&pat, r#"{"name":"x"}"#), 403, "forbidden");
    let list = get(&s.url("/api/tokens"), Some(&pat));
    assert_eq!(list.status, 200);
    let tokens = list.json["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3);
    let entry = tokens.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert_eq!(entry["prefix"], &pat[..12]);
    assert!(entry["created_at"].is_string());
    assert!(!list.text.contains(&pat[12..]), "the list leaks the token");

    for bad in [
        r#"{"name":"x","expires_in_days":0}"#,
        r#"{"name":"x","expires_in_days":3651}"#,
        r#"{"name":"x","expires_in_days":"5"}"#,
        r#"{"name":"x","expires_in_days":1.5}"#,
        r#"{}"#,
        r#"{"name":7}"#,
    ] {
        assert_error(&s.pat(&session, bad), 400, "invalid_request");
    }

    let bob = s.login("bob");
    let del = |token: &str, id: &str| {
        request(
            "DELETE",
            &s.url(&format!("/api/tokens/{id}")),
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
    };
    assert_error(&del(&bob, &id), 404, "not_found");
    assert_eq!(del(&pat, &id).status, 204);
    assert_error(&del(&session, &id), 404, "not_found");
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&pat)), "revoked");
    assert_eq!(
        get(&s.url("/api/tokens"), Some(&session)).json["tokens"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn renew_answers_by_the_threshold() {
    let s = Server::start(&["--pat-lifetime", "10d", "--pat-renew-threshold", "9d"]);
    s.add_user("alice");
    let session = s.login("alice");
    let renew = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        request("POST", &s.url("/api/tokens/current/renew"), &headers, b"")
    };
    let fresh = s.new_pat(&session, r#"{"name":"fresh"}"#);
    let due = s.pat(&session, r#"{"name":"due","expires_in_days":5}"#);
    let due_token = due.json["token"].as_str().unwrap().to_string();
    let forever = s.new_pat(&session, r#"{"name":"forever","expires_in_days":null}"#);

    let before = get(&s.url("/api/userinfo"), Some(&fresh)).json["expires_at"].clone();
    let r = renew(Some(&format!("Bearer {fresh}")));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["renewed"], false);
    assert_eq!(r.json["expires_at"], before);

    let r = renew(Some(&format!("Bearer {due_token}")));
    assert_eq!(r.json["renewed"], true, "{}", r.text);
    assert!(r.json["expires_at"].as_str() > due.json["expires_at"].as_str());
    let again = renew(Some(&format!("Bearer {due_token}")));
    assert_eq!(again.json["renewed"], false);
    assert_eq!(again.json["expires_at"], r.json["expires_at"]);

    let r = renew(Some(&format!("Bearer {forever}")));
    assert_eq!(
        r.json,
        serde_json::json!({"renewed": false, "expires_at": ""})
    );

    for bad in [
        None,
        Some("Basic abc".to_string()),
        Some(format!("Bearer {session}")),
        Some("Bearer xyz".into()),
        Some(format!("Token {fresh}")),
    ] {
        assert_error(&renew(bad.as_deref()), 400, "invalid_request");
    }
    // The right shape, but not a live PAT: prefixes and extensions are unknown (401).
    for near in [
        "apt_short".to_string(),
        fresh[..fresh.len() - 1].to_string(),
        format!("{fresh}A"),
    ] {
        assert_invalid_token(&renew(Some(&format!("Bearer {near}"))), "unknown");
    }
    let doomed = s.new_pat(&session, r#"{"name":"doomed"}"#);
    s.admin(&["revoke", "--token", &doomed], "");
    assert_invalid_token(&renew(Some(&format!("Bearer {doomed}"))), "revoked");
    let unknown = "apt_".to_string() + &"A".repeat(43);
    assert_invalid_token(&renew(Some(&format!("Bearer {unknown}"))), "unknown");
}

#[test]
fn concurrent_renews_extend_once() {
    let s = Server::start(&["--pat-lifetime", "10d", "--pat-renew-threshold", "9d"]);
    s.add_user("alice");
    let session = s.login("alice");
    let pat = s.new_pat(&session, r#"{"name":"due","expires_in_days":5}"#);
    let url = s.url("/api/tokens/current/renew");
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    request(
                        "POST",
                        &url,
                        &[("Authorization", &format!("Bearer {pat}"))],
                        b"",
                    )
                    .json
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let renewed = answers.iter().filter(|a| a["renewed"] == true).count();
    assert_eq!(renewed, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| a["expires_at"] == answers[0]["expires_at"]),
        "{answers:?}"
    );
}

#[test]
fn break_glass_from_the_api_rejects_every_older_token() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let other = s.login("alice");
    let pat = s.new_pat(&session, r#"{"name":"ci"}"#);
    let r = post_json(&s.url("/api/sessions/revoke-all"), Some(&session), "");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["session_version"], 2);
    for t in [&session, &other, &pat] {
        assert_invalid_token(&get(&s.url("/api/validate"), Some(t)), "stale");
    }
    let fresh = s.login("alice");
    let r = get(&s.url("/api/validate"), Some(&fresh));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Auth-Session-Version"), Some("2"));
}

#[test]
fn admin_revocations_hold_for_the_very_next_request() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let a = s.login("alice");
    let b = s.login("alice");
    assert_eq!(get(&s.url("/api/validate"), Some(&a)).status, 200);
    let out = s.admin(&["revoke", "--token", "-"], &format!("{a}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&a)), "revoked");
    assert_eq!(get(&s.url("/api/validate"), Some(&b)).status, 200);
    let out = s.admin(&["revoke", "--user", "alice"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&b)), "stale");
    assert_eq!(
        get(&s.url("/api/validate"), Some(&s.login("alice"))).status,
        200
    );
}

#[test]
fn logout_revokes_the_presented_token() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let token = s.login("alice");
    let r = post_json(&s.url("/api/logout"), Some(&token), "");
    assert_eq!(r.status, 204);
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&token)), "revoked");
    assert_invalid_token(
        &post_json(&s.url("/api/logout"), Some(&token), ""),
        "revoked",
    );
}

#[test]
fn an_expired_pat_reads_expired() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let pat = s.admin_pat("alice", "short", &["--expires-in", "1s"]);
    assert_eq!(get(&s.url("/api/validate"), Some(&pat)).status, 200);
    sleep(Duration::from_millis(1100));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&pat)), "expired");
}

#[test]
fn unknown_paths_and_methods_get_json_errors() {
    let s = Server::start(&[]);
    assert_error(&get(&s.url("/nope"), None), 404, "not_found");
    assert_error(&get(&s.url("/api/login"), None), 405, "method_not_allowed");
    assert_error(
        &request("DELETE", &s.url("/healthz"), &[], b""),
        405,
        "method_not_allowed",
    );
    let h = get(&s.url("/healthz"), None);
    assert_eq!(h.status, 200);
    assert_eq!(h.json, serde_json::json!({"status": "ok"}));
}

#[test]
fn failed_logins_are_throttled_per_username() {
    let s = Server::start(&["--login-max-failures-user", "3"]);
    s.add_user("alice");
    let url = s.url("/api/login");
    for _ in 0..3 {
        assert_error(
            &post_json(&url, None, &login_body("alice", "wrong-password")),
            401,
            "invalid_credentials",
        );
    }
    for password in ["wrong-password", PASSWORD] {
        let r = post_json(&url, None, &login_body("alice", password));
        assert_error(&r, 429, "too_many_requests");
        let retry: u64 = r.header("Retry-After").unwrap().parse().unwrap();
        assert!((1..=300).contains(&retry), "{retry}");
    }
    // Another username from the same address is unaffected.
    s.add_user("bob");
    s.login("bob");
}

/// The limit holds however many attempts arrive at once: an attempt is counted before
/// its password is hashed, not after.
#[test]
fn concurrent_wrong_passwords_check_at_most_the_limit() {
    let s = Server::start(&["--login-max-failures-user", "10"]);
    s.add_user("alice");
    let url = s.url("/api/login");
    let statuses = concurrently(30, || {
        post_json(&url, None, &login_body("alice", "wrong-password")).status
    });
    let checked = statuses.iter().filter(|&&st| st == 401).count();
    assert!(checked <= 10, "{checked} passwords checked: {statuses:?}");
    assert!(checked >= 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|&st| st == 401 || st == 429),
        "{statuses:?}"
    );
    // And the right password is refused until the window frees up.
    assert_eq!(
        post_json(&url, None, &login_body("alice", PASSWORD)).status,
        429
    );
}

#[test]
fn failed_logins_are_throttled_per_address_behind_trusted_proxies() {
    let s = Server::start(&[
        "--login-max-failures-addr",
        "2",
        "--trusted-proxies",
        "127.0.0.0/8",
    ]);
    s.add_user("alice");
    let url = s.url("/api/login");
    let from = |ip: &str, user: &str, pw: &str| {
        request(
            "POST",
            &url,
            &[
                ("Content-Type", "application/json"),
                ("X-Forwarded-For", ip),
            ],
            login_body(user, pw).as_bytes(),
        )
    };
    assert_eq!(from("198.51.100.1", "u1", "wrong-pass").status, 401);
    assert_eq!(from("198.51.100.1", "u2", "wrong-pass").status, 401);
    assert_error(
        &from("198.51.100.1", "alice", PASSWORD),
        429,
        "too_many_requests",
    );
    assert_eq!(from("198.51.100.2", "alice", PASSWORD).status, 200);
}

#[test]
fn the_log_never_contains_a_token_or_password() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let token = s.login("alice");
    let pat = s.new_pat(&token, r#"{"name":"ci"}"#);
    get(&s.url("/api/validate"), Some(&pat));
    post_json(
        &s.url("/api/login"),
        None,
        &login_body("alice", "a-wrong-password"),
    );
    sleep(Duration::from_millis(200));
    let log = s.log_lines().join("\n");
    assert!(log.contains("POST /api/login 200"), "{log}");
    for secret in [&token[4..], &pat[4..], PASSWORD, "a-wrong-password"] {
        assert!(!log.contains(secret), "log leaks a secret: {log}");
    }
}
