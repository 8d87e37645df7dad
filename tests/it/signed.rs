//! Signed access tokens (PASETO v4.public) and rotating refresh tokens: the three
//! grants of POST /oauth/token, the server-side checks, the keys and their rotation.

use std::sync::{Arc, Barrier};
use std::thread;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::support::*;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

fn token_endpoint(s: &Server, body: &str) -> Resp {
    post_form(&s.url("/oauth/token"), None, body)
}

fn exchange(s: &Server, subject: &str) -> Resp {
    token_endpoint(
        s,
        &format!(
            "grant_type={}&subject_token={}&subject_token_type={}",
            form_encode(EXCHANGE),
            form_encode(subject),
            form_encode(ACCESS_TYPE)
        ),
    )
}

/// A fresh access token for a live session or PAT.
fn access_for(s: &Server, subject: &str) -> String {
    let r = exchange(s, subject);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["access_token"].as_str().unwrap().to_string()
}

fn password_grant(s: &Server, user: &str, password: &str) -> Resp {
    token_endpoint(
        s,
        &format!(
            "grant_type=password&username={}&password={}",
            form_encode(user),
            form_encode(password)
        ),
    )
}

fn refresh(s: &Server, refresh_token: &str) -> Resp {
    refresh_at(&s.url("/oauth/token"), refresh_token)
}

fn refresh_at(token_url: &str, refresh_token: &str) -> Resp {
    post_form(
        token_url,
        None,
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            form_encode(refresh_token)
        ),
    )
}

/// The claims and footer of a v4.public token (not verified: the server does that).
fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 4, "{token}");
    assert_eq!(&parts[..2], ["v4", "public"]);
    let signed = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let claims = serde_json::from_slice(&signed[..signed.len() - 64]).unwrap();
    let footer = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[3]).unwrap()).unwrap();
    (claims, footer)
}

fn assert_grant_error(r: &Resp, code: &str) {
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"], code, "{}", r.text);
    assert!(r.json["error_description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
}

fn keys(s: &Server) -> Vec<Value> {
    let r = get(&s.url("/oauth/keys"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["keys"].as_array().unwrap().clone()
}

fn token_id(s: &Server, kind: &str) -> String {
    sqlite(
        &s.db,
        &format!("SELECT id FROM tokens WHERE kind = '{kind}' ORDER BY created_at DESC LIMIT 1"),
    )[0][0]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_session_exchanges_for_an_access_token_that_validates() {
    let s = Server::start(&[]);
    let alice = s.add_user("alice");
    let session = s.login("alice");
    let r = exchange(&s, &session);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.json["issued_token_type"], ACCESS_TYPE);
    assert_eq!(r.json["token_type"], "Bearer");
    assert!(r.json.get("refresh_token").is_none());
    let expires_in = r.json["expires_in"].as_i64().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    let access = r.json["access_token"].as_str().unwrap();

    let (claims, footer) = decode(access);
    assert_eq!(claims["iss"], s.base.as_str());
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["sv"], 1);
    assert_eq!(claims["sid"], token_id(&s, "session").as_str());
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["iat"].as_str().unwrap().ends_with('Z'));
    let active = keys(&s);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["status"], "active");
    assert_eq!(footer["kid"], active[0]["kid"]);
    assert!(active[0]["kid"].as_str().unwrap().starts_with("k4.pid."));
    assert!(active[0]["public_key"]
        .as_str()
        .unwrap()
        .starts_with("k4.public."));

    for path in ["/api/validate", "/api/userinfo", "/oauth/userinfo"] {
        let r = get(&s.url(path), Some(access));
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json["token_type"], "access");
        assert_eq!(r.json["sub"], alice.as_str());
        assert_eq!(r.json["session_version"], 1);
    }
    let r = get(&s.url("/api/validate"), Some(access));
    assert_eq!(r.header("X-Auth-User"), Some("alice"));
    let r = post_form(
        &s.url("/oauth/introspect"),
        Some(access),
        &format!("token={}", form_encode(access)),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["token_type"], "access");
    assert_eq!(r.json["sub"], alice.as_str());
}

#[test]
fn a_pat_exchanges_and_a_dead_subject_does_not() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let pat = s.new_pat(&session, r#"{"name":"ci"}"#);
    let access = access_for(&s, &pat);
    assert_eq!(decode(&access).0["sid"], token_id(&s, "pat").as_str());
    assert_eq!(get(&s.url("/api/validate"), Some(&access)).status, 200);

    let r = post_json(&s.url("/api/logout"), Some(&pat), "");
    assert_eq!(r.status, 204);
    assert_grant_error(&exchange(&s, &pat), "invalid_grant");
    // Not a session or PAT at all.
    assert_grant_error(&exchange(&s, &access), "invalid_grant");
    assert_grant_error(&exchange(&s, "apr_nope"), "invalid_grant");
    let r = token_endpoint(
        &s,
        &format!(
            "grant_type={}&subject_token={session}&subject_token_type=urn:x",
            form_encode(EXCHANGE)
        ),
    );
    assert_grant_error(&r, "invalid_request");
}

#[test]
fn an_exchange_slides_the_session_and_using_the_access_token_does_not() {
    let s = Server::start(&["--session-window", "100s"]);
    s.add_user("alice");
    let session = s.login("alice");
    let stored = || {
        sqlite(&s.db, "SELECT expires_at FROM tokens")[0][0]
            .as_i64()
            .unwrap()
    };
    let before = stored();
    thread::sleep(std::time::Duration::from_millis(1_100));
    let access = access_for(&s, &session);
    let after_exchange = stored();
    assert!(after_exchange > before, "{before} -> {after_exchange}");
    // The access token never outlives its session.
    let exp = decode(&access).0["exp"].as_str().unwrap().to_string();
    assert!(exp.as_str() <= rfc3339_ms(after_exchange).as_str(), "{exp}");
    thread::sleep(std::time::Duration::from_millis(1_100));
    assert_eq!(get(&s.url("/api/userinfo"), Some(&access)).status, 200);
    assert_eq!(stored(), after_exchange);
}

/// RFC 3339, second precision, like the server writes.
fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn every_other_endpoint_answers_an_access_token_403() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let access = access_for(&s, &session);
    let r = post_json(&s.url("/api/tokens"), Some(&access), r#"{"name":"x"}"#);
    assert_error(&r, 403, "forbidden");
    assert_error(&get(&s.url("/api/tokens"), Some(&access)), 403, "forbidden");
    let r = request(
        "DELETE",
        &s.url("/api/tokens/tok_x"),
        &[("Authorization", &format!("Bearer {access}"))],
        b"",
    );
    assert_error(&r, 403, "forbidden");
    let r = post_json(&s.url("/api/sessions/revoke-all"), Some(&access), "");
    assert_error(&r, 403, "forbidden");
    // The renew endpoint keeps its 400 for anything but Bearer apt_….
    let r = post_json(&s.url("/api/tokens/current/renew"), Some(&access), "");
    assert_error(&r, 400, "invalid_request");
    // A broken one is a 401 there like anywhere.
    let r = get(&s.url("/api/tokens"), Some("v4.public.broken"));
    assert_invalid_token(&r, "unknown");
    // Nothing was revoked or bumped.
    assert_eq!(get(&s.url("/api/validate"), Some(&session)).status, 200);
}

#[test]
fn unusable_access_tokens_are_refused_with_their_reason() {
    let s = Server::start(&["--session-window", "3s"]);
    s.add_user("alice");
    let other = Server::start(&[]);
    other.add_user("alice");

    // Signed by another appliance's key: unknown.
    let foreign = access_for(&other, &other.login("alice"));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&foreign)), "unknown");
    // Malformed, or a changed byte: unknown.
    let session = s.login("alice");
    let access = access_for(&s, &session);
    let mut bytes = access.clone().into_bytes();
    let i = "v4.public.".len() + 20;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    for bad in [tampered.as_str(), "v4.public.e30", "v4.public."] {
        assert_invalid_token(&get(&s.url("/api/validate"), Some(bad)), "unknown");
    }
    // Revoked with its session.
    let victim = s.login("alice");
    let revoked = access_for(&s, &victim);
    assert_eq!(
        post_json(&s.url("/api/logout"), Some(&victim), "").status,
        204
    );
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&revoked)), "revoked");
    // Stale after break-glass.
    let stale = access_for(&s, &s.login("alice"));
    // A fresh session for the bump: `session` may have run out its 3 s on a busy box.
    let bump = post_json(
        &s.url("/api/sessions/revoke-all"),
        Some(&s.login("alice")),
        "",
    );
    assert_eq!(bump.status, 200);
    assert_invalid_token(&get(&s.url("/api/userinfo"), Some(&stale)), "stale");
    let r = post_form(
        &s.url("/oauth/introspect"),
        Some(&s.login("alice")),
        &format!("token={}", form_encode(&stale)),
    );
    assert_eq!(r.json, serde_json::json!({"active": false}));
    // Expired: the token ends with its 3 s session at the latest.
    let short = access_for(&s, &s.login("alice"));
    thread::sleep(std::time::Duration::from_millis(3_200));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&short)), "expired");
}

#[test]
fn a_server_with_another_issuer_refuses_the_token() {
    let s = Server::start(&["--issuer", "https://auth.example.com/"]);
    s.add_user("alice");
    let access = access_for(&s, &s.login("alice"));
    assert_eq!(decode(&access).0["iss"], "https://auth.example.com");
    assert_eq!(get(&s.url("/api/validate"), Some(&access)).status, 200);
    // Same database, same keys, another issuer: not its token.
    let (dir, db) = s.kill_and_keep();
    let again = Server::start_on(dir, db, &["--issuer", "https://other.example.com"]);
    assert_invalid_token(&get(&again.url("/api/validate"), Some(&access)), "unknown");
}

#[test]
fn logout_with_an_access_token_revokes_its_session_but_not_a_pat() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let access = access_for(&s, &session);
    assert_eq!(
        post_json(&s.url("/api/logout"), Some(&access), "").status,
        204
    );
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&session)), "revoked");

    let pat = s.new_pat(&s.login("alice"), r#"{"name":"ci"}"#);
    let from_pat = access_for(&s, &pat);
    assert_error(
        &post_json(&s.url("/api/logout"), Some(&from_pat), ""),
        403,
        "forbidden",
    );
    assert_eq!(get(&s.url("/api/validate"), Some(&pat)).status, 200);

    let r = password_grant(&s, "alice", PASSWORD);
    let family_access = r.json["access_token"].as_str().unwrap().to_string();
    let refresh_token = r.json["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        post_json(&s.url("/api/logout"), Some(&family_access), "").status,
        204
    );
    assert_grant_error(&refresh(&s, &refresh_token), "invalid_grant");
}

#[test]
fn the_password_grant_answers_a_pair_and_refuses_like_login() {
    let s = Server::start(&["--login-max-failures-user", "2"]);
    let alice = s.add_user("alice");
    let r = password_grant(&s, "alice", PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.json["token_type"], "Bearer");
    assert!(r.json["expires_in"].as_i64().unwrap() > 3500);
    assert!(r.json["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("apr_"));
    let access = r.json["access_token"].as_str().unwrap();
    let (claims, _) = decode(access);
    assert_eq!(claims["sub"], alice.as_str());
    assert!(claims["sid"].as_str().unwrap().starts_with("fam_"));
    assert_eq!(get(&s.url("/api/validate"), Some(access)).status, 200);
    // Only the hash is stored.
    let stored = sqlite(&s.db, "SELECT token_hash FROM refresh_tokens");
    assert_eq!(stored, vec![vec![Value::from(32)]]);

    assert_grant_error(
        &password_grant(&s, "alice", "wrong-password"),
        "invalid_grant",
    );
    assert_grant_error(
        &password_grant(&s, "nobody", "wrong-password"),
        "invalid_grant",
    );
    // Shares the login throttle: 2 failures for alice, then 429 even when right.
    assert_grant_error(
        &password_grant(&s, "alice", "wrong-password"),
        "invalid_grant",
    );
    let r = password_grant(&s, "alice", "wrong-password");
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.header("Retry-After").is_some());
    let r = post_json(
        &s.url("/api/login"),
        None,
        &format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#),
    );
    assert_eq!(r.status, 429);
}

#[test]
fn malformed_token_requests_get_rfc6749_errors() {
    let s = Server::start(&[]);
    assert_grant_error(
        &token_endpoint(&s, "grant_type=client_credentials"),
        "unsupported_grant_type",
    );
    assert_grant_error(&token_endpoint(&s, ""), "invalid_request");
    assert_grant_error(
        &token_endpoint(&s, "grant_type=password&username=a"),
        "invalid_request",
    );
    assert_grant_error(
        &token_endpoint(
            &s,
            "grant_type=password&grant_type=password&username=a&password=b",
        ),
        "invalid_request",
    );
    assert_grant_error(
        &token_endpoint(&s, "grant_type=refresh_token"),
        "invalid_request",
    );
    let r = get(&s.url("/oauth/token"), None);
    assert_eq!(r.status, 405);
}

#[test]
fn the_token_endpoint_takes_only_a_form_with_each_parameter_once() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let body = format!("grant_type=password&username=alice&password={PASSWORD}");
    let send = |content_type: &str, body: &str| {
        request(
            "POST",
            &s.url("/oauth/token"),
            &[("Content-Type", content_type)],
            body.as_bytes(),
        )
    };
    // RFC 6749 §3.2: the parameters are a form; a body of another type is refused
    // even when it reads as one.
    for content_type in ["application/json", "text/plain", "multipart/form-data"] {
        assert_grant_error(&send(content_type, &body), "invalid_request");
    }
    let json = format!(r#"{{"grant_type":"password","username":"alice","password":"{PASSWORD}"}}"#);
    assert_grant_error(&send("application/json", &json), "invalid_request");
    let r = send("Application/X-WWW-Form-Urlencoded; charset=UTF-8", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    // No parameter may be sent twice, whichever it is.
    for repeated in ["username=alice", "scope=a&scope=b", "password=x"] {
        assert_grant_error(
            &token_endpoint(&s, &format!("{body}&{repeated}")),
            "invalid_request",
        );
    }
}

/// Unix seconds of a PASETO time claim.
fn claim_secs(claims: &Value, name: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(claims[name].as_str().unwrap())
        .unwrap()
        .timestamp()
}

#[test]
fn expires_in_is_the_lifetime_and_matches_the_claims() {
    let s = Server::start(&["--access-token-lifetime", "10m", "--session-window", "100s"]);
    s.add_user("alice");
    let session = s.login("alice");
    let pat = s.new_pat(&session, r#"{"name":"ci"}"#);
    // The PAT outlives 10 minutes: the token lives exactly that.
    let r = exchange(&s, &pat);
    assert_eq!(r.status, 200, "{}", r.text);
    let (claims, _) = decode(r.json["access_token"].as_str().unwrap());
    assert_eq!(r.json["expires_in"], 600, "{}", r.text);
    assert_eq!(claim_secs(&claims, "exp") - claim_secs(&claims, "iat"), 600);
    // A session and a refresh token end first (100 s window): the token ends with its
    // parent, and expires_in says so.
    for r in [
        exchange(&s, &session),
        password_grant(&s, "alice", PASSWORD),
    ] {
        assert_eq!(r.status, 200, "{}", r.text);
        let (claims, _) = decode(r.json["access_token"].as_str().unwrap());
        let expires_in = r.json["expires_in"].as_i64().unwrap();
        assert_eq!(
            claim_secs(&claims, "exp") - claim_secs(&claims, "iat"),
            expires_in
        );
        assert!((95..=100).contains(&expires_in), "{expires_in}");
    }
}

#[test]
fn a_refresh_rotates_and_a_replayed_token_kills_the_family() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let first = password_grant(&s, "alice", PASSWORD);
    let r1 = first.json["refresh_token"].as_str().unwrap().to_string();
    let a1 = first.json["access_token"].as_str().unwrap().to_string();
    let second = refresh(&s, &r1);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.header("Cache-Control"), Some("no-store"));
    let r2 = second.json["refresh_token"].as_str().unwrap().to_string();
    let a2 = second.json["access_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_eq!(decode(&a1).0["sid"], decode(&a2).0["sid"]);
    assert_eq!(get(&s.url("/api/validate"), Some(&a2)).status, 200);

    // The spent token comes back: theft. Everything of the family dies.
    assert_grant_error(&refresh(&s, &r1), "invalid_grant");
    assert_grant_error(&refresh(&s, &r2), "invalid_grant");
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&a2)), "revoked");
    let audit = s.admin(&["audit", "--json"], "");
    let log: Value = serde_json::from_str(&stdout(&audit)).unwrap();
    let detections: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "refresh.reuse_detected")
        .collect();
    assert_eq!(detections.len(), 1, "{log}");
    assert_eq!(detections[0]["target"], decode(&a1).0["sid"]);
    assert_eq!(detections[0]["actor"], "user:alice");
}

#[test]
fn concurrent_refreshes_with_one_token_rotate_exactly_once() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let r = password_grant(&s, "alice", PASSWORD);
    let token = r.json["refresh_token"].as_str().unwrap().to_string();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (url, token, barrier) =
                (s.url("/oauth/token"), token.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                refresh_at(&url, &token)
            })
        })
        .collect();
    let answers: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<&Resp> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        answers.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for loser in answers.iter().filter(|r| r.status != 200) {
        assert_grant_error(loser, "invalid_grant");
    }
    // One new token was stored (two in all), and the losers' replays revoked the family.
    let rows = sqlite(&s.db, "SELECT count(*) FROM refresh_tokens");
    assert_eq!(rows[0][0], 2);
    let revoked = sqlite(
        &s.db,
        "SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL",
    );
    assert_eq!(revoked[0][0], 1);
    let won = winners[0].json["refresh_token"].as_str().unwrap();
    assert_grant_error(&refresh(&s, won), "invalid_grant");
    let log = stdout(&s.admin(&["audit"], ""));
    assert_eq!(log.matches("refresh.reuse_detected").count(), 1, "{log}");
}

#[test]
fn refresh_tokens_end_with_their_window_break_glass_and_revocation() {
    let s = Server::start(&["--session-window", "3s"]);
    s.add_user("alice");
    let grant = |s: &Server| {
        let r = password_grant(s, "alice", PASSWORD);
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["refresh_token"].as_str().unwrap().to_string()
    };
    // RFC 7009 revokes the whole family.
    let r1 = grant(&s);
    let r2 = refresh(&s, &r1).json["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        post_form(&s.url("/oauth/revoke"), None, &format!("token={r2}")).status,
        200
    );
    assert_grant_error(&refresh(&s, &r2), "invalid_grant");
    // So does the CLI.
    let r3 = grant(&s);
    let out = s.admin(&["revoke", "--token", "-"], &format!("{r3}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_grant_error(&refresh(&s, &r3), "invalid_grant");
    // Break-glass ends families issued before it.
    let r4 = grant(&s);
    assert!(s.admin(&["revoke", "--user", "alice"], "").status.success());
    assert_grant_error(&refresh(&s, &r4), "invalid_grant");
    let r5 = grant(&s);
    // A refresh token lives the session window from its issue.
    thread::sleep(std::time::Duration::from_millis(3_200));
    assert_grant_error(&refresh(&s, &r5), "invalid_grant");
}

#[test]
fn key_rotation_keeps_old_tokens_valid_until_they_expire() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let old = access_for(&s, &session);
    let old_kid = decode(&old).1["kid"].as_str().unwrap().to_string();

    let out = s.admin(&["keys", "rotate"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let new = access_for(&s, &session);
    let new_kid = decode(&new).1["kid"].as_str().unwrap().to_string();
    assert_ne!(old_kid, new_kid);
    for t in [&old, &new] {
        assert_eq!(get(&s.url("/api/validate"), Some(t)).status, 200);
    }
    let served: Vec<(String, String)> = keys(&s)
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().into(),
                k["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        served,
        [
            (new_kid.clone(), "active".into()),
            (old_kid.clone(), "retiring".into())
        ]
    );
    let listed: Value =
        serde_json::from_str(&stdout(&s.admin(&["keys", "list", "--json"], ""))).unwrap();
    assert_eq!(listed[0]["kid"], new_kid.as_str());
    assert_eq!(listed[1]["status"], "retiring");
    let table = stdout(&s.admin(&["keys", "list"], ""));
    assert!(
        table.contains(&old_kid) && table.contains("retiring"),
        "{table}"
    );
    let log = stdout(&s.admin(&["audit"], ""));
    assert!(log.contains("keys.rotate"), "{log}");
}

#[test]
fn a_retiring_key_is_dropped_once_its_tokens_have_expired() {
    let s = Server::start(&["--session-window", "5s", "--access-token-lifetime", "1m"]);
    s.add_user("alice");
    let old = access_for(&s, &s.login("alice"));
    let (claims, footer) = decode(&old);
    assert!(s.admin(&["keys", "rotate"], "").status.success());
    assert_eq!(keys(&s).len(), 2);
    assert_eq!(get(&s.url("/api/validate"), Some(&old)).status, 200);
    // Its last token ended with its 5 s session (plus the signer's step, 1% of a
    // minute); past that, the next rotation drops the key.
    sleep_until_past(claims["exp"].as_str().unwrap(), 1_000);
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&old)), "expired");
    assert!(s.admin(&["keys", "rotate"], "").status.success());
    let served = keys(&s);
    assert_eq!(served.len(), 1, "{served:?}");
    assert_ne!(served[0]["kid"], footer["kid"]);
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&old)), "unknown");
}

/// Sleeps until `margin_ms` after the RFC 3339 instant `at` (by the wall clock, which
/// the real server uses).
#[allow(clippy::disallowed_methods)]
fn sleep_until_past(at: &str, margin_ms: i64) {
    let target = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .timestamp_millis()
        + margin_ms;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    if target > now {
        thread::sleep(std::time::Duration::from_millis((target - now) as u64));
    }
}

#[test]
fn the_metadata_names_every_endpoint() {
    let s = Server::start(&[]);
    let r = get(&s.url("/.well-known/oauth-authorization-server"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let m = &r.json;
    assert_eq!(m["issuer"], s.base.as_str());
    for (field, path) in [
        ("token_endpoint", "/oauth/token"),
        ("introspection_endpoint", "/oauth/introspect"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("userinfo_endpoint", "/oauth/userinfo"),
        ("keys_uri", "/oauth/keys"),
    ] {
        assert_eq!(m[field], s.url(path).as_str(), "{field}");
    }
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!(["password", "refresh_token", EXCHANGE])
    );
}

#[test]
fn the_library_validator_verifies_real_access_tokens_offline() {
    use appliance::client::{ValidateError, Validator};
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let access = access_for(&s, &session);
    let v = Validator::new(&s.base).ttl(std::time::Duration::from_secs(3));
    let who = v.validate(&access).unwrap();
    assert_eq!(
        (who.username.as_str(), who.token_type.as_str()),
        ("alice", "access")
    );
    // What an offline verifier gives up: revoking the one session is not seen before
    // the token's exp...
    assert_eq!(
        post_json(&s.url("/api/logout"), Some(&session), "").status,
        204
    );
    assert!(v.validate(&access).is_ok());
    // ...but break-glass is, within the TTL.
    let other = s.login("alice");
    let fresh = access_for(&s, &other);
    assert!(v.validate(&fresh).is_ok());
    assert_eq!(
        post_json(&s.url("/api/sessions/revoke-all"), Some(&other), "").status,
        200
    );
    thread::sleep(std::time::Duration::from_millis(3_100));
    assert_eq!(v.validate(&fresh), Err(ValidateError::Stale));
    // A token of another issuer is refused.
    let elsewhere = Validator::new(&s.base).issuer("https://auth.example.com");
    let newest = access_for(&s, &s.login("alice"));
    assert!(matches!(
        elsewhere.validate(&newest),
        Err(ValidateError::Invalid { .. })
    ));
}
