//! RFC 7662 introspection and RFC 7009 revocation.

use serde_json::json;

use crate::support::*;

fn introspect(s: &Server, caller: Option<&str>, token: &str) -> Resp {
    post_form(
        &s.url("/oauth/introspect"),
        caller,
        &format!("token={}&token_type_hint=access_token", form_encode(token)),
    )
}

fn expires_at_ms(s: &Server, column_match: &str) -> Option<i64> {
    sqlite(
        &s.db,
        &format!("SELECT expires_at FROM tokens WHERE {column_match}"),
    )[0][0]
        .as_i64()
}

/// The wall clock, to compare with what the real server (on the system clock) answers.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn live_session_and_pat_introspect_as_active() {
    let s = Server::start(&[]);
    let alice = s.add_user("alice");
    let bob = s.add_user("bob");
    let session = s.login("alice");
    let caller = s.login("bob");
    let r = introspect(&s, Some(&caller), &session);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let body = r.json.as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["active", "exp", "iat", "sub", "token_type", "username"]
    );
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["sub"], alice.as_str());
    assert_eq!(r.json["username"], "alice");
    assert_eq!(r.json["token_type"], "session");
    let (iat, exp) = (
        r.json["iat"].as_i64().unwrap(),
        r.json["exp"].as_i64().unwrap(),
    );
    assert!((iat - unix_now()).abs() < 60, "iat {iat}");
    assert!((exp - (iat + 30 * 86_400)).abs() < 60, "exp {exp}");

    let pat = s.pat(&caller, r#"{"name":"ci"}"#);
    let pat = pat.json["token"].as_str().unwrap();
    let r = introspect(&s, Some(&session), pat);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["token_type"], "pat");
    assert_eq!(r.json["sub"], bob.as_str());
    assert!(r.json["exp"].as_i64().unwrap() > unix_now() + 89 * 86_400);
    // A PAT may be the caller too.
    assert_eq!(introspect(&s, Some(pat), &session).json["active"], true);
}

#[test]
fn never_expiring_pat_has_no_exp() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let pat = s.admin_pat("alice", "agent", &["--never-expires"]);
    let session = s.login("alice");
    let r = introspect(&s, Some(&session), &pat);
    assert_eq!(r.json["active"], true, "{}", r.text);
    assert!(r.json.get("exp").is_none(), "{}", r.text);
    assert!(r.json["iat"].is_i64());
}

#[test]
fn tokens_that_are_not_live_introspect_as_inactive_only() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let caller = s.login("alice");
    let revoked = s.login("alice");
    assert_eq!(
        post_json(&s.url("/api/logout"), Some(&revoked), "").status,
        204
    );
    let expired = s.login("alice");
    let c = rusqlite::Connection::open(&s.db).unwrap();
    let hash = sha256_hex(&expired);
    c.execute(
        "UPDATE tokens SET expires_at = 1000 WHERE hex(token_hash) = upper(?1)",
        [&hash],
    )
    .unwrap();
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&expired)), "expired");
    let unknown = format!("aps_{}", "A".repeat(43));
    for token in [
        revoked.as_str(),
        expired.as_str(),
        unknown.as_str(),
        "garbage",
        &caller[..caller.len() - 1],
        &caller.to_uppercase(),
    ] {
        let r = introspect(&s, Some(&caller), token);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json, json!({ "active": false }), "{token}");
    }
}

#[test]
fn introspection_needs_a_caller_and_a_token() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    assert_invalid_token(&introspect(&s, None, &session), "missing");
    assert_invalid_token(&introspect(&s, Some("nope"), &session), "unknown");
    // The browser cookie is not a caller credential here.
    let r = request(
        "POST",
        &s.url("/oauth/introspect"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("appliance_session={session}")),
        ],
        format!("token={session}").as_bytes(),
    );
    assert_invalid_token(&r, "missing");
    for body in ["", "token=", "token_type_hint=x"] {
        let r = post_form(&s.url("/oauth/introspect"), Some(&session), body);
        assert_error(&r, 400, "invalid_request");
    }
}

#[test]
fn introspection_does_not_slide_the_introspected_session() {
    let s = Server::start(&["--session-window", "3s"]);
    s.add_user("alice");
    s.add_user("bob");
    let target = s.login("alice");
    let before = expires_at_ms(
        &s,
        &format!("hex(token_hash) = upper('{}')", sha256_hex(&target)),
    );
    // Long enough that a slide would be written (the slack is 1% of the window).
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let caller = s.login("bob");
    let r = introspect(&s, Some(&caller), &target);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["exp"].as_i64(), before.map(|ms| ms.div_euclid(1000)));
    let after = expires_at_ms(
        &s,
        &format!("hex(token_hash) = upper('{}')", sha256_hex(&target)),
    );
    assert_eq!(before, after);
    // Whereas using the session does slide it.
    assert_eq!(get(&s.url("/api/validate"), Some(&target)).status, 200);
    let used = expires_at_ms(
        &s,
        &format!("hex(token_hash) = upper('{}')", sha256_hex(&target)),
    );
    assert!(used > after, "{used:?} vs {after:?}");
}

#[test]
fn revocation_endpoint_revokes_live_tokens_and_accepts_unknown_ones() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let pat = s.new_pat(&session, r#"{"name":"ci"}"#);
    for token in [&pat, &session] {
        let r = post_form(
            &s.url("/oauth/revoke"),
            None,
            &format!("token={token}&token_type_hint=access_token"),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_invalid_token(&get(&s.url("/api/validate"), Some(token)), "revoked");
        // Again: still 200.
        let again = post_form(&s.url("/oauth/revoke"), None, &format!("token={token}"));
        assert_eq!(again.status, 200);
    }
    for unknown in ["garbage", &format!("apt_{}", "x".repeat(43))] {
        let r = post_form(&s.url("/oauth/revoke"), None, &format!("token={unknown}"));
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for body in ["", "token=", "token_type_hint=refresh_token"] {
        let r = post_form(&s.url("/oauth/revoke"), None, body);
        assert_error(&r, 400, "invalid_request");
    }
}

fn sha256_hex(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
