//! The `serve` and `admin` command lines, run as a user would.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn db_in(dir: &tempfile::TempDir) -> String {
    dir.path().join("a.db").to_str().unwrap().to_string()
}

#[test]
fn help_lists_every_command() {
    let out = run(&["--help"], "");
    assert!(out.status.success());
    let text = stdout(&out);
    for cmd in [
        "serve",
        "admin",
        "healthcheck",
        "login",
        "logout",
        "whoami",
        "agent",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
    let admin = stdout(&run(&["admin", "--help"], ""));
    for cmd in ["user", "token", "revoke", "audit", "backup"] {
        assert!(admin.contains(cmd), "admin --help lacks {cmd}");
    }
}

#[test]
fn serve_refuses_nonsense_settings_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    for args in [
        vec!["--pat-lifetime", "7d", "--pat-renew-threshold", "7d"],
        vec!["--pat-lifetime", "1d", "--pat-renew-threshold", "2d"],
        vec!["--session-window", "0s"],
        vec!["--session-window", "3 days"],
        vec!["--session-lifetime", "99999999d"],
        vec!["--purge-after", "-1d"],
        vec!["--body-limit", "lots"],
        vec!["--trusted-proxies", "not-an-ip"],
        vec!["--workers", "0"],
        vec!["--cookie-domain", "https://example.test"],
        vec!["--cookie-domain", "example.test:8080"],
        vec!["--cookie-domain", "ex ample.test"],
        vec!["--cookie-domain", "example.test; Path=/x"],
        vec!["--no-such-flag"],
    ] {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--db", &db];
        all.extend_from_slice(&args);
        let out = run(&all, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).trim().is_empty());
    }
    // Env variables are settings too.
    let out = run_with(
        appliance()
            .args(["serve", "--listen", "127.0.0.1:0", "--db", &db])
            .env("APPLIANCE_SESSION_WINDOW", "0d"),
        "",
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn serve_refuses_an_address_it_cannot_listen_on_before_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    for listen in ["nonsense", "127.0.0.1:99999", "127.0.0.1"] {
        let out = run(&["serve", "--listen", listen, "--db", &db], "");
        assert_eq!(out.status.code(), Some(2), "{listen}: {}", stderr(&out));
        assert!(stderr(&out).contains("--listen"), "{}", stderr(&out));
    }
    assert!(!std::path::Path::new(&db).exists());
}

#[test]
fn serve_on_an_empty_database_says_how_to_add_the_first_user() {
    let s = Server::start(&[]);
    std::thread::sleep(Duration::from_millis(200));
    let log = s.log_lines().join("\n");
    assert!(log.contains("appliance admin user add"), "{log}");
}

#[test]
fn serve_reads_settings_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.db");
    let mut child = appliance()
        .args(["serve"])
        .env("APPLIANCE_LISTEN", "127.0.0.1:0")
        .env("APPLIANCE_DB", &db)
        .env("APPLIANCE_SESSION_WINDOW", "1h")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let line = first_stdout_line(&mut child);
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    assert!(db.exists());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn admin_user_add_validates_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let add = |name: &str, pw: &str| {
        run(
            &[
                "admin",
                "user",
                "add",
                name,
                "--password-stdin",
                "--db",
                &db,
            ],
            &format!("{pw}\n"),
        )
    };
    let ok = add("alice", PASSWORD);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).trim().starts_with("usr_"));
    assert_eq!(add("alice", PASSWORD).status.code(), Some(1));
    for bad in ["Alice", "al ice", "", &"a".repeat(65), "a/b"] {
        let out = add(bad, PASSWORD);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    assert_eq!(add("bob", "short").status.code(), Some(2));
    let list = run(&["admin", "user", "list", "--json", "--db", &db], "");
    let users: Value = serde_json::from_str(&stdout(&list)).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["session_version"], 1);
    assert!(users[0]["id"].as_str().unwrap().starts_with("usr_"));
    assert!(users[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let table = stdout(&run(&["admin", "user", "list", "--db", &db], ""));
    assert!(table.contains("alice"));
}

#[test]
fn admin_token_create_prints_only_the_token_and_refuses_unknown_users() {
    let s = Server::start(&[]);
    s.add_user("alice");
    // `admin token create --user alice --name n EXTRA…`
    let create = |extra: &[&str]| {
        let mut args = vec!["token", "create", "--user", "alice", "--name", "n"];
        args.extend_from_slice(extra);
        s.admin(&args, "")
    };
    let out = create(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1);
    let r = get(&s.url("/api/userinfo"), Some(text.trim()));
    assert_eq!(r.json["token_type"], "pat");
    let never = create(&["--never-expires"]);
    let r = get(&s.url("/api/userinfo"), Some(stdout(&never).trim()));
    assert_eq!(r.json["expires_at"], Value::Null);
    assert!(create(&["--expires-in-days", "3"]).status.success());
    let unknown = s.admin(&["token", "create", "--user", "nobody", "--name", "n"], "");
    assert_eq!(unknown.status.code(), Some(1));
    for bad in [
        &["--expires-in-days", "0"][..],
        &["--expires-in", "soon"],
        &["--never-expires", "--expires-in-days", "3"],
    ] {
        assert_eq!(create(bad).status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn admin_revoke_refuses_unknown_tokens_and_users() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let unknown = "aps_".to_string() + &"Q".repeat(43);
    assert_eq!(
        s.admin(&["revoke", "--token", &unknown], "").status.code(),
        Some(1)
    );
    assert_eq!(
        s.admin(&["revoke", "--token", "garbage"], "").status.code(),
        Some(1)
    );
    assert_eq!(
        s.admin(&["revoke", "--user", "nobody"], "").status.code(),
        Some(1)
    );
    assert_eq!(s.admin(&["revoke"], "").status.code(), Some(2));
}

#[test]
fn a_database_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA user_version = 999;").unwrap();
    drop(c);
    let out = run(&["serve", "--listen", "127.0.0.1:0", "--db", &db], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("newer"), "{}", stderr(&out));
    let out = run(&["admin", "user", "list", "--db", &db], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_file_that_is_not_a_database_is_refused_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    std::fs::write(
        &db,
        "this is not sqlite, just text that is long enough to have a header..........",
    )
    .unwrap();
    let out = run(&["admin", "user", "list", "--db", &db], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Cannot open"), "{}", stderr(&out));
}

/// kill -9 while logins and PAT creations are being written; after a restart the
/// database passes integrity_check and every token acknowledged before the kill works.
#[test]
fn a_killed_server_loses_no_acknowledged_token() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let url = s.url("/api/tokens");
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let pid = s.pid();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..200 {
                    let auth = format!("Bearer {session}");
                    let b = ureq::http::Request::builder()
                        .method("POST")
                        .uri(&url)
                        .header("Authorization", auth)
                        .body(br#"{"name":"crash"}"#.to_vec())
                        .unwrap();
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    match agent.run(b) {
                        Ok(mut r) if r.status() == 201 => {
                            let v: Value =
                                serde_json::from_str(&r.body_mut().read_to_string().unwrap())
                                    .unwrap();
                            acknowledged
                                .lock()
                                .unwrap()
                                .push(v["token"].as_str().unwrap().to_string());
                        }
                        _ => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(400));
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    });
    let tokens = acknowledged.into_inner().unwrap();
    assert!(
        !tokens.is_empty(),
        "no write was acknowledged before the kill"
    );
    let (dir, db) = s.kill_and_keep();
    let integrity = sqlite(&db, "PRAGMA integrity_check");
    assert_eq!(integrity[0][0], "ok");
    let restarted = Server::start_on(dir, db, &[]);
    for t in &tokens {
        assert_eq!(get(&restarted.url("/api/validate"), Some(t)).status, 200);
    }
}
