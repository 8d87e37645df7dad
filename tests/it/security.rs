//! What an attacker outside the HTTP loop tried: file modes, log and audit forgery,
//! cookies that are not sessions. (The throttle race, CSRF and forced sign-out are
//! tested beside the features in api.rs and web.rs.)

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use crate::support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `sh -c 'umask 022; exec appliance ARGS…'`, like a shell with the usual umask.
fn under_umask_022(args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 022 && exec \"$0\" \"$@\"", BIN])
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("APPLIANCE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn the_database_its_wal_and_shm_and_backups_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/appliance.db");
    let mut cmd = under_umask_022(&["serve", "--listen", "127.0.0.1:0", "--db"]);
    cmd.arg(&db);
    let s = Server::spawn(cmd, dir, db.clone());
    s.add_user("alice");
    s.login("alice");
    assert_eq!(
        mode(db.parent().unwrap()),
        0o700,
        "the directory it created"
    );
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", db.display());
        assert_eq!(mode(Path::new(&file)), 0o600, "{file}");
    }
    let backup = s.dir.path().join("backup.db");
    let mut cmd = under_umask_022(&["admin", "backup", backup.to_str().unwrap(), "--db"]);
    cmd.arg(&db);
    let out = run_with(&mut cmd, "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(sqlite(&backup, "SELECT count(*) FROM users")[0][0], 1);
    // Nothing was left beside it.
    let names: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn backup_refuses_an_existing_path_and_symlinks_dangling_or_not() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let dir = s.dir.path();
    let existing = dir.join("existing");
    std::fs::write(&existing, "keep me").unwrap();
    let target = dir.join("target.db");
    let dangling = dir.join("dangling");
    symlink(&target, &dangling).unwrap();
    let to_existing = dir.join("to-existing");
    symlink(&existing, &to_existing).unwrap();
    for dest in [&existing, &dangling, &to_existing] {
        let out = s.admin(&["backup", dest.to_str().unwrap()], "");
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    }
    assert!(!target.exists(), "followed a dangling symlink");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
}

#[test]
fn a_database_others_can_read_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("appliance.db");
    drop(Server::start_on(
        tempfile::tempdir().unwrap(),
        db.clone(),
        &[],
    ));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = Server::start_on(dir, db.clone(), &[]);
    sleep(Duration::from_millis(100));
    let log = s.log_lines().join("\n");
    assert!(
        log.contains(&format!("WARN {} has mode 0644", db.display())) && log.contains("chmod 600"),
        "{log}"
    );
}

const FORGED: &str = "ci\n2026-12-01T00:41:00Z  cli:root  user.delete  alice\u{1b}[8m";

#[test]
fn names_with_control_characters_are_refused_by_the_api_and_the_cli() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    for name in [
        FORGED,
        "a\rb",
        "\u{1b}[2J",
        "x\u{0}",
        "tab\tname",
        "rtl\u{202e}",
    ] {
        let body = serde_json::json!({ "name": name }).to_string();
        let r = s.pat(&session, &body);
        assert_error(&r, 400, "invalid_request");
        assert!(r.text.contains("control characters"), "{}", r.text);
        if name.contains('\0') {
            continue; // no NUL in an argv
        }
        let out = s.admin(&["token", "create", "--user", "alice", "--name", name], "");
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("control characters"),
            "{}",
            stderr(&out)
        );
    }
    // Surrounding spaces are trimmed, the same rule for both.
    let r = s.pat(&session, r#"{"name":"  ci  "}"#);
    assert_eq!(r.json["name"], "ci", "{}", r.text);
    let audit = sqlite(
        &s.db,
        "SELECT count(*) FROM audit WHERE action = 'token.create'",
    );
    assert_eq!(audit[0][0], 1);
}

#[test]
fn text_views_print_one_line_per_record_and_no_escape_sequence() {
    let s = Server::start(&[]);
    s.add_user("alice");
    // Rows written before names were checked (or by hand) are shown escaped.
    let c = rusqlite::Connection::open(&s.db).unwrap();
    c.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (0, 'user:alice', 'token.create', ?1, ?2)",
        ["tok_x\u{1b}]0;owned\u{7}", &format!("name={FORGED}")],
    )
    .unwrap();
    c.execute(
        "UPDATE users SET username = ?1 WHERE username = 'alice'",
        ["alice\n2026-01-01T00:00:00Z  usr_fake  root\u{1b}[8m"],
    )
    .unwrap();
    drop(c);
    let audit = s.admin(&["audit"], "");
    assert!(audit.status.success(), "{}", stderr(&audit));
    let text = stdout(&audit);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains(r"name=ci\n2026-12-01T00:41:00Z"), "{text}");
    let users = stdout(&s.admin(&["user", "list"], ""));
    assert_eq!(users.lines().count(), 2, "{users}");
    assert!(!users.contains('\u{1b}'), "{users:?}");
    // --json stays exact.
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&s.admin(&["audit", "--json"], ""))).unwrap();
    assert_eq!(json[1]["detail"], format!("name={FORGED}"));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&s.admin(&["user", "list", "--json"], ""))).unwrap();
    assert!(json[0]["username"]
        .as_str()
        .unwrap()
        .ends_with("root\u{1b}[8m"));
}

/// Sends `request` as raw bytes and returns the status line.
fn raw(s: &Server, request: &[u8]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).unwrap();
    status
}

/// Waits for the request log to show `n` more lines than `skip` and returns them.
fn log_after(s: &Server, want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines.extend(s.log_lines());
        if want(&lines) {
            break;
        }
        sleep(Duration::from_millis(20));
    }
    lines
}

const FORGED_LINE: &[u8] =
    b"GET /x\n2026-12-01T00:41:00Z\tGET\t/admin\t200\x1b[2J HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn a_request_line_cannot_forge_a_log_line_or_reach_the_terminal() {
    let s = Server::start(&[]);
    // A bare LF ends the request line (RFC 9112 §2.2) and control characters are not
    // allowed in a target: the HTTP layer refuses it before anything routes or logs it
    // as a request.
    let status = raw(&s, FORGED_LINE);
    assert!(status.starts_with("HTTP/1.1 400"), "{status:?}");
    let lines = log_after(&s, |l| l.iter().any(|l| l.contains("refused")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("refused") && l.contains("bad_framing")),
        "{lines:?}"
    );
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "{l:?}");
        assert!(!l.starts_with("2026-12-01T00:41:00Z"), "forged: {l:?}");
        // Every line starts with its RFC 3339 time.
        let time = l.split(' ').next().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{l:?}");
    }
}

#[test]
fn the_json_log_is_one_exact_object_a_line() {
    let s = Server::start(&["--log-format", "json"]);
    assert!(raw(&s, FORGED_LINE).starts_with("HTTP/1.1 400"));
    // Bytes outside ASCII in a target become `?` (the query starts there), control
    // bytes never reach the log.
    assert!(raw(
        &s,
        b"GET /x\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 404"));
    get(&s.url("/healthz?secret=1"), None);
    let lines = log_after(&s, |l| l.iter().any(|l| l.contains("/healthz")));
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let refused = objects
        .iter()
        .find(|o| o["message"].as_str().is_some_and(|m| m.contains("refused")))
        .expect("refusal logged");
    assert_eq!(refused["level"], "warn");
    let odd = objects.iter().find(|o| o["status"] == 404).expect("logged");
    assert_eq!(odd["path"], "/x");
    let health = objects.iter().find(|o| o["path"] == "/healthz").unwrap();
    assert_eq!(health["method"], "GET");
    assert_eq!(health["status"], 200);
    assert!(health["ms"].is_number());
    assert!(chrono::DateTime::parse_from_rfc3339(health["time"].as_str().unwrap()).is_ok());
    // The environment variable chooses it too; anything else is a usage error.
    let out = run_with(
        appliance()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("APPLIANCE_LOG_FORMAT", "xml"),
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn the_session_cookie_takes_session_tokens_only() {
    let s = Server::start(&["--insecure-cookies"]);
    s.add_user("alice");
    let session = s.login("alice");
    let pat = s.new_pat(&session, r#"{"name":"ci"}"#);
    let as_cookie = format!("appliance_session={pat}");
    for path in ["/api/validate", "/api/userinfo"] {
        let r = request("GET", &s.url(path), &[("Cookie", &as_cookie)], b"");
        assert_invalid_token(&r, "unknown");
    }
    for junk in ["appliance_session=hello", "appliance_session=apr_x"] {
        let r = request("GET", &s.url("/api/validate"), &[("Cookie", junk)], b"");
        assert_invalid_token(&r, "unknown");
    }
    // Signing out with a PAT in the cookie does not revoke the PAT.
    let out = request("GET", &s.url("/logout"), &[("Cookie", &as_cookie)], b"");
    assert_eq!(out.status, 200);
    assert_eq!(get(&s.url("/api/validate"), Some(&pat)).status, 200);
    let home = request("GET", &s.url("/"), &[("Cookie", &as_cookie)], b"");
    assert!(home.text.contains("not signed in"), "{}", home.text);
    // The session itself works in the cookie.
    let cookie = format!("appliance_session={session}");
    let r = request("GET", &s.url("/api/validate"), &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn only_space_and_tab_around_a_header_value_are_ignored() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let token = s.login("alice");
    let validate = |value: &str| {
        raw(
            &s,
            format!(
                "GET /api/validate HTTP/1.1\r\nHost: x\r\nAuthorization:{value}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    for ok in [
        format!(" Bearer {token}"),
        format!(" \tBearer {token} \t"),
        format!("Bearer {token}"),
    ] {
        assert!(validate(&ok).starts_with("HTTP/1.1 200"), "{ok:?}");
    }
    for bad in [
        format!(" Bearer {token}\x0b"),
        format!(" Bearer {token}\x0c"),
        format!(" \x0bBearer {token}"),
        format!(" \x0cBearer {token}"),
    ] {
        assert!(validate(&bad).starts_with("HTTP/1.1 401"), "{bad:?}");
    }
}
