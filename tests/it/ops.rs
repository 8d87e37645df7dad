//! Operating the appliance: shutdown, slow clients, metrics, purge, audit, backup.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_and_exits_0() {
    let mut s = Server::start(&[]);
    s.add_user("alice");
    // The request is in flight from its first byte: the connection's thread is reading
    // its body while we hold back the rest of it.
    let body = format!(
        r#"{{"username":"alice","password":"{PASSWORD}"}}{}"#,
        " ".repeat(2000)
    );
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        conn,
        "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(&body.as_bytes()[..10]).unwrap();
    sleep(Duration::from_millis(300));
    signal(s.pid(), "-TERM");
    sleep(Duration::from_millis(300));
    conn.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("aps_"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_stops_an_idle_server_with_exit_0() {
    let mut s = Server::start(&[]);
    signal(s.pid(), "-INT");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not exit after SIGINT");
        sleep(Duration::from_millis(50));
    }
    assert_eq!(s.child.try_wait().unwrap().unwrap().code(), Some(0));
}

#[test]
fn slow_clients_neither_block_validation_nor_stay_forever() {
    let s = Server::start(&["--client-timeout", "2s"]);
    s.add_user("alice");
    let token = s.login("alice");
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(b"GET /api/validate HTTP/1.1\r\nHo").unwrap();
            c
        })
        .collect();
    sleep(Duration::from_millis(200));
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(&s.url("/api/validate"), Some(&token)).status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "20 validations took {:?}",
        started.elapsed()
    );
    // Past the client timeout (2 s, counted from each accept) the server drops them.
    sleep(Duration::from_millis(2000));
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in &slow {
        c.set_nonblocking(true).unwrap();
    }
    loop {
        slow.retain_mut(|c| {
            let mut buf = [0u8; 256];
            // WouldBlock: still open. EOF, a late error response or a reset: dropped.
            matches!(c.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        if slow.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} slow connections still open",
            slow.len()
        );
        sleep(Duration::from_millis(250));
    }
}

#[test]
fn metrics_count_requests_extensions_renewals_and_failures() {
    let s = Server::start(&[
        "--session-window",
        "3s",
        "--pat-lifetime",
        "10d",
        "--pat-renew-threshold",
        "9d",
    ]);
    s.add_user("alice");
    let token = s.login("alice");
    for _ in 0..3 {
        get(&s.url("/api/validate"), Some(&token));
    }
    get(&s.url("/api/validate"), Some("aps_nope"));
    post_json(
        &s.url("/api/login"),
        None,
        r#"{"username":"alice","password":"wrong-password"}"#,
    );
    let pat = s.new_pat(&token, r#"{"name":"x","expires_in_days":5}"#);
    request(
        "POST",
        &s.url("/api/tokens/current/renew"),
        &[("Authorization", &format!("Bearer {pat}"))],
        b"",
    );
    let r = get(&s.url("/metrics"), None);
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    let value = |name: &str| -> f64 {
        r.text
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {name} in {}", r.text))
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("appliance_requests_total{endpoint=\"validate\",status=\"2xx\"}"),
        3.0
    );
    assert_eq!(
        value("appliance_requests_total{endpoint=\"validate\",status=\"4xx\"}"),
        1.0
    );
    assert_eq!(value("appliance_login_failures_total"), 1.0);
    assert_eq!(value("appliance_pat_renewals_total"), 1.0);
    assert!(
        value("appliance_session_extensions_written_total")
            + value("appliance_session_extensions_skipped_total")
            >= 4.0
    );
    assert_eq!(value("appliance_live_tokens{kind=\"session\"}"), 1.0);
    assert_eq!(value("appliance_live_tokens{kind=\"pat\"}"), 1.0);
    assert!(value("appliance_request_duration_seconds_count") >= 6.0);
}

#[test]
fn purged_tokens_read_unknown_and_recent_ones_keep_their_reason() {
    let s = Server::start(&["--purge-after", "1s"]);
    s.add_user("alice");
    let revoked = s.login("alice");
    let live = s.login("alice");
    post_json(&s.url("/api/logout"), Some(&revoked), "");
    let expiring = s.admin_pat("alice", "short", &["--expires-in", "1s"]);
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&revoked)), "revoked");
    sleep(Duration::from_millis(1100));
    assert_invalid_token(&get(&s.url("/api/validate"), Some(&expiring)), "expired");
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let a = get(&s.url("/api/validate"), Some(&revoked));
        let b = get(&s.url("/api/validate"), Some(&expiring));
        if a.json["reason"] == "unknown" && b.json["reason"] == "unknown" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not purged: {} {}",
            a.text,
            b.text
        );
        sleep(Duration::from_millis(250));
    }
    assert_eq!(get(&s.url("/api/validate"), Some(&live)).status, 200);
    assert_eq!(sqlite(&s.db, "SELECT count(*) FROM tokens")[0][0], 1);
}

#[test]
fn every_change_is_audited_with_its_actor() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let created = s.pat(&session, r#"{"name":"ci"}"#);
    let id = created.json["id"].as_str().unwrap().to_string();
    request(
        "DELETE",
        &s.url(&format!("/api/tokens/{id}")),
        &[("Authorization", &format!("Bearer {session}"))],
        b"",
    );
    post_json(&s.url("/api/sessions/revoke-all"), Some(&session), "");
    let pat = s.admin_pat("alice", "agent", &[]);
    s.admin(&["revoke", "--token", &pat], "");
    s.admin(&["revoke", "--user", "alice"], "");
    let fresh = s.login("alice");
    post_json(&s.url("/api/logout"), Some(&fresh), "");

    let out = run_with(
        appliance().args(["admin", "audit", "--json", "--db", s.db_arg()]),
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["at"].as_str().unwrap().ends_with('Z'));
            assert!(e["detail"].is_string());
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let actions: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        actions,
        [
            "user.add",
            "token.create",
            "token.delete",
            "user.revoke_all",
            "token.create",
            "token.revoke",
            "user.revoke_all"
        ]
    );
    assert!(rows[0].0.starts_with("cli:"));
    for row in &rows[1..4] {
        assert_eq!(row.0, "user:alice");
    }
    assert_eq!(rows[1].2, id);
    assert_eq!(rows[2].2, id);
    assert!(rows[4].0.starts_with("cli:") && rows[6].0.starts_with("cli:"));
    assert!(
        !stdout(&out).contains(&pat[4..]),
        "the audit log holds a token"
    );
    // The actor is the real OS user, whatever $USER claims.
    let spoofed = run_with(
        appliance()
            .args(["admin", "revoke", "--user", "alice", "--db", s.db_arg()])
            .env("USER", "mallory")
            .env("LOGNAME", "mallory"),
        "",
    );
    assert!(spoofed.status.success());
    let actor = &sqlite(&s.db, "SELECT actor FROM audit ORDER BY seq DESC LIMIT 1")[0][0];
    assert!(
        actor.as_str().unwrap().starts_with("cli:") && actor != "cli:mallory",
        "{actor}"
    );
    let table = run_with(appliance().args(["admin", "audit", "--db", s.db_arg()]), "");
    assert!(stdout(&table).contains("user.revoke_all"));
}

#[test]
fn a_live_backup_is_consistent_and_restores() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let session = s.login("alice");
    let first = s.new_pat(&session, r#"{"name":"before"}"#);
    let backup = s.dir.path().join("backup.db");
    let url = s.url("/api/tokens");
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for i in 0..100 {
                post_json(&url, Some(&session), &format!(r#"{{"name":"during-{i}"}}"#));
            }
        });
        sleep(Duration::from_millis(100));
        let out = s.admin(&["backup", backup.to_str().unwrap()], "");
        assert!(out.status.success(), "{}", stderr(&out));
        writer.join().unwrap();
    });
    assert_eq!(sqlite(&backup, "PRAGMA integrity_check")[0][0], "ok");
    assert_eq!(
        s.admin(&["backup", backup.to_str().unwrap()], "")
            .status
            .code(),
        Some(1),
        "overwrote a backup"
    );
    // Restore: serve the copy; tokens live at backup time work.
    let dir = tempfile::tempdir().unwrap();
    let restored_db = dir.path().join("restored.db");
    std::fs::copy(&backup, &restored_db).unwrap();
    let restored = Server::start_on(dir, restored_db, &[]);
    assert_eq!(
        get(&restored.url("/api/validate"), Some(&first)).status,
        200
    );
    assert_eq!(
        get(&restored.url("/api/validate"), Some(&session)).status,
        200
    );
}

/// As in the Docker image: a non-root user, a fresh empty data directory, settings from
/// the image's environment variables (listening on all interfaces).
#[test]
fn serves_as_a_non_root_user_on_a_fresh_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let mut cmd = if is_root {
        // 65534 is `nobody`: give it the directory, as the image does for its user.
        assert!(Command::new("chown")
            .args(["65534:65534", data.path().to_str().unwrap()])
            .status()
            .unwrap()
            .success());
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let db = data.path().join("appliance.db");
    let mut child = cmd
        .arg("serve")
        .env("APPLIANCE_LISTEN", "0.0.0.0:0")
        .env("APPLIANCE_DB", &db)
        .env_remove("USER")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_stdout_line(&mut child);
    assert!(line.starts_with("listening on http://0.0.0.0:"), "{line:?}");
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    let r = get(&format!("http://127.0.0.1:{port}/healthz"), None);
    assert_eq!(r.status, 200);
    assert!(db.exists());
    signal(child.id(), "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Bursts of new keep-alive connections are all answered promptly. tiny_http's
/// connection thread pool used to queue one of a burst behind connections that stay
/// open, so it waited until one of them closed (vendor/tiny_http/PATCHES.md).
#[test]
fn bursts_of_new_connections_are_answered_promptly() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let token = s.login("alice");
    let request =
        format!("GET /api/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    for round in 0..8 {
        let clients = 16 + round * 4;
        let barrier = std::sync::Barrier::new(clients);
        let answered = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..clients)
                .map(|_| {
                    scope.spawn(|| {
                        let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
                        conn.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
                        conn.write_all(request.as_bytes()).unwrap();
                        let mut buf = [0u8; 64];
                        let ok = matches!(conn.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200"));
                        // Keep the connection open (keep-alive) until every client of
                        // the round has its answer, as a busy client would.
                        barrier.wait();
                        ok
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(
            answered, clients,
            "round {round}: only {answered} of {clients} answered within 1.5 s"
        );
    }
}
