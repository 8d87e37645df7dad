//! Fixing users from the command line, on a running server: a new password
//! (`admin user passwd`) and removal (`admin user delete`), both audited.

use serde_json::Value;

use crate::support::*;

const NEW_PASSWORD: &str = "another-long-password";

fn login_with(s: &Server, password: &str) -> Resp {
    post_json(
        &s.url("/api/login"),
        None,
        &format!(r#"{{"username":"alice","password":"{password}"}}"#),
    )
}

fn audit(s: &Server) -> Vec<Value> {
    let out = s.admin(&["audit", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn actions(s: &Server) -> Vec<String> {
    audit(s)
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_new_password_works_at_once_and_rejects_every_older_token() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let pat = s.new_pat(&session, r#"{"name":"daemon"}"#);
    let out = s.admin(
        &["user", "passwd", "alice", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("session_version 2"),
        "{}",
        stdout(&out)
    );

    assert_error(&login_with(&s, PASSWORD), 401, "invalid_credentials");
    assert_eq!(login_with(&s, NEW_PASSWORD).status, 200);
    for token in [&session, &pat] {
        assert_invalid_token(&get(&s.url("/api/validate"), Some(token)), "stale");
    }
    assert!(actions(&s).contains(&"user.passwd alice".to_string()));
    let entry = audit(&s).pop().unwrap();
    assert_eq!(entry["detail"], "session_version=2");
    assert!(entry["actor"].as_str().unwrap().starts_with("cli:"));
}

#[test]
fn keep_sessions_changes_the_password_and_nothing_else() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let out = s.admin(
        &[
            "user",
            "passwd",
            "alice",
            "--password-stdin",
            "--keep-sessions",
        ],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(get(&s.url("/api/validate"), Some(&session)).status, 200);
    assert_eq!(login_with(&s, NEW_PASSWORD).status, 200);
    assert_eq!(audit(&s).pop().unwrap()["detail"], "sessions kept");
}

#[test]
fn passwd_refuses_an_unknown_user_and_bad_passwords_without_changing_anything() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let out = s.admin(
        &["user", "passwd", "bob", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("No user named 'bob'"),
        "{}",
        stderr(&out)
    );
    for (stdin, says) in [
        ("", "Standard input held no password"),
        ("short\n", "at least 8"),
    ] {
        let out = s.admin(&["user", "passwd", "alice", "--password-stdin"], stdin);
        assert_eq!(out.status.code(), Some(2), "{stdin:?}");
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("admin user passwd alice") || says == "at least 8",
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(get(&s.url("/api/validate"), Some(&session)).status, 200);
    assert_eq!(login_with(&s, PASSWORD).status, 200);
    assert!(!actions(&s).iter().any(|a| a.starts_with("user.passwd")));
}

#[test]
fn a_deleted_user_is_gone_with_every_token_and_the_audit_keeps_the_history() {
    let s = Server::start(&[]);
    s.add_user("alice");
    s.add_user("bob");
    let session = s.login("alice");
    let pat = s.new_pat(&session, r#"{"name":"daemon"}"#);
    let cli_pat = s.admin_pat("alice", "cron", &[]);
    let bobs = s.login("bob");
    let grant = post_form(
        &s.url("/oauth/token"),
        None,
        &format!("grant_type=password&username=alice&password={PASSWORD}"),
    );
    assert_eq!(grant.status, 200, "{}", grant.text);
    let access = grant.json["access_token"].as_str().unwrap().to_string();
    let refresh = grant.json["refresh_token"].as_str().unwrap().to_string();

    let out = s.admin(&["user", "delete", "alice"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("'alice'"), "{}", stdout(&out));

    for token in [&session, &pat, &cli_pat, &access] {
        assert_invalid_token(&get(&s.url("/api/validate"), Some(token)), "unknown");
    }
    let again = post_form(
        &s.url("/oauth/token"),
        None,
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    );
    assert_eq!(again.status, 400, "{}", again.text);
    assert_eq!(again.json["error"], "invalid_grant");
    assert_error(&login_with(&s, PASSWORD), 401, "invalid_credentials");
    assert_eq!(get(&s.url("/api/validate"), Some(&bobs)).status, 200);
    let list = stdout(&s.admin(&["user", "list"], ""));
    assert!(!list.contains("alice") && list.contains("bob"), "{list}");
    let history = actions(&s);
    for a in ["user.add alice", "token.create ", "user.delete alice"] {
        assert!(history.iter().any(|h| h.starts_with(a)), "{a}: {history:?}");
    }

    let again = s.admin(&["user", "delete", "alice"], "");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("No user named 'alice'"),
        "{}",
        stderr(&again)
    );

    // The name can be used again; the old tokens stay dead.
    s.add_user("alice");
    assert_eq!(login_with(&s, PASSWORD).status, 200);
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&pat)), "unknown");
}
