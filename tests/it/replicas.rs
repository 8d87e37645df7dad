//! Several `serve` replicas on one PostgreSQL database behave as one appliance: a
//! revocation on one holds on the others, renewals and sliding are decided once,
//! the client fails over when a replica dies, and a database outage is a 503 (never a
//! 200 for a token) that heals by itself. Each test gets a fresh database on the
//! server named by `APPLIANCE_TEST_PG_URL`; without it they say once that they skipped.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::support::*;

const URL_ENV: &str = "APPLIANCE_TEST_PG_URL";

/// A fresh database, dropped with this.
pub struct PgDb {
    admin_url: String,
    name: String,
    /// `postgres://…/<name>` on the server itself.
    pub url: String,
}

impl PgDb {
    /// A new empty database, or `None` (after one skip line) without a server.
    pub fn new() -> Option<PgDb> {
        let Ok(admin_url) = std::env::var(URL_ENV) else {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                // Straight to the stream: libtest captures print!/eprint! of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED the PostgreSQL replica tests: set {URL_ENV} (for example {URL_ENV}=postgres://postgres@127.0.0.1:5432/postgres) to run them"
                );
            });
            return None;
        };
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).unwrap();
        let name = format!(
            "appliance_it_{}",
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut c = postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{URL_ENV}: cannot connect: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = Self::on(&admin_url, None, &name);
        Some(PgDb {
            admin_url,
            name,
            url,
        })
    }

    /// The URL of this database through `host:port` (a proxy) instead.
    pub fn via(&self, place: &str) -> String {
        Self::on(&self.admin_url, Some(place), &self.name)
    }

    fn on(admin_url: &str, place: Option<&str>, name: &str) -> String {
        let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
        let (scheme, rest) = base.split_once("://").unwrap();
        let authority = rest.split('/').next().unwrap();
        let authority = match (place, authority.rsplit_once('@')) {
            (Some(p), Some((user, _))) => format!("{user}@{p}"),
            (Some(p), None) => p.to_string(),
            (None, _) => authority.to_string(),
        };
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("{scheme}://{authority}/{name}{q}")
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `serve` on the PostgreSQL database at `url`.
fn replica(url: &str, args: &[&str]) -> Server {
    Server::start_on(tempfile::tempdir().unwrap(), PathBuf::from(url), args)
}

/// A TCP proxy on loopback to PostgreSQL that can be cut (every connection closed,
/// new ones refused) and restored: an outage without stopping the shared server.
struct Proxy {
    place: String,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn to(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let place = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (upstream, c, o) = (upstream.to_string(), Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut open = o.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { place, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pg_place() -> String {
    let url = std::env::var(URL_ENV).unwrap();
    let c: postgres::Config = url.parse().unwrap();
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    format!("{host}:{}", c.get_ports().first().copied().unwrap_or(5432))
}

fn three(db: &PgDb, args: &[&str]) -> [Server; 3] {
    let a = replica(&db.url, args);
    let b = replica(&db.url, args);
    let c = replica(&db.url, args);
    [a, b, c]
}

#[test]
fn a_revocation_on_one_replica_is_refused_by_the_next_request_on_the_others() {
    let Some(db) = PgDb::new() else { return };
    let [a, b, c] = three(&db, &[]);
    a.add_user("alice");
    let session = b.login("alice");
    let pat = c.new_pat(&session, r#"{"name":"ci"}"#);
    for s in [&a, &b, &c] {
        assert_eq!(get(&s.url("/api/userinfo"), Some(&session)).status, 200);
        assert_eq!(get(&s.url("/api/userinfo"), Some(&pat)).status, 200);
    }
    let r = post_json(&a.url("/api/logout"), Some(&session), "");
    assert_eq!(r.status, 204, "{}", r.text);
    let r = post_form(&a.url("/oauth/revoke"), None, &format!("token={pat}"));
    assert_eq!(r.status, 200, "{}", r.text);
    for s in [&b, &c, &a] {
        assert_invalid_token(&get(&s.url("/api/userinfo"), Some(&session)), "revoked");
        assert_invalid_token(&get(&s.url("/api/userinfo"), Some(&pat)), "revoked");
    }
    // The admin CLI works on the same database by its URL, and sees one audit trail.
    let out = a.admin(&["audit", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("user.add"), "{}", stdout(&out));
}

#[test]
fn concurrent_renews_spread_over_three_replicas_extend_once() {
    let Some(db) = PgDb::new() else { return };
    let replicas = three(
        &db,
        &["--pat-lifetime", "10d", "--pat-renew-threshold", "9d"],
    );
    replicas[0].add_user("alice");
    let session = replicas[0].login("alice");
    let pat = replicas[1].new_pat(&session, r#"{"name":"due","expires_in_days":5}"#);
    let answers: Vec<Resp> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (url, pat) = (replicas[i % 3].url("/api/tokens/current/renew"), &pat);
                scope.spawn(move || {
                    request(
                        "POST",
                        &url,
                        &[("Authorization", &format!("Bearer {pat}"))],
                        b"",
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let renewed = answers.iter().filter(|a| a.json["renewed"] == true).count();
    assert_eq!(renewed, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| a.json["expires_at"] == answers[0].json["expires_at"]),
        "{answers:?}"
    );
}

fn counter(s: &Server, name: &str) -> u64 {
    let text = get(&s.url("/metrics"), None).text;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn sliding_across_replicas_writes_at_most_once_per_slack() {
    let Some(db) = PgDb::new() else { return };
    // A 100 s window: the slack (1% of it) is 1 s.
    let replicas = three(&db, &["--session-window", "100s"]);
    replicas[0].add_user("alice");
    let session = replicas[0].login("alice");
    let urls: Vec<String> = replicas.iter().map(|s| s.url("/api/userinfo")).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..3 {
            let (urls, session) = (&urls, &session);
            scope.spawn(move || {
                let mut i = t;
                while started.elapsed() < Duration::from_millis(2_500) {
                    let r = get(&urls[i % 3], Some(session));
                    assert_eq!(r.status, 200, "{}", r.text);
                    i += 1;
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let written: u64 = replicas
        .iter()
        .map(|s| counter(s, "appliance_session_extensions_written_total"))
        .sum();
    let skipped: u64 = replicas
        .iter()
        .map(|s| counter(s, "appliance_session_extensions_skipped_total"))
        .sum();
    assert!(skipped > 10, "only {skipped} reads skipped the write");
    assert!(
        written as f64 <= elapsed.ceil() + 1.0,
        "{written} writes in {elapsed:.1}s with a 1 s slack"
    );
}

#[test]
fn the_client_fails_over_when_a_replica_is_killed_during_a_login_stream() {
    let Some(db) = PgDb::new() else { return };
    let [a, b, c] = three(&db, &[]);
    a.add_user("alice");
    let urls = format!("{},{},{}", a.base, b.base, c.base);
    let config = tempfile::tempdir().unwrap();
    let login = || {
        run_with(
            appliance()
                .env("APPLIANCE_CONFIG_DIR", config.path())
                .args([
                    "login",
                    "--server-url",
                    &urls,
                    "--username",
                    "alice",
                    "--password-stdin",
                ]),
            &format!("{PASSWORD}\n"),
        )
    };
    let mut a = Some(a);
    for i in 0..6 {
        if i == 2 {
            // SIGKILL: no goodbye, the client finds a dead port.
            let mut gone = a.take().unwrap();
            gone.child.kill().unwrap();
            gone.child.wait().unwrap();
        }
        let out = login();
        assert!(out.status.success(), "login {i}: {}", stderr(&out));
        let who = run_with(
            appliance()
                .env("APPLIANCE_CONFIG_DIR", config.path())
                .arg("whoami"),
            "",
        );
        assert!(who.status.success(), "whoami {i}: {}", stderr(&who));
        if i >= 2 {
            assert!(stdout(&who).contains(&b.base), "{}", stdout(&who));
        }
    }
    let _ = c;
}

#[test]
fn a_database_outage_is_503_never_200_and_service_resumes_by_itself() {
    let Some(db) = PgDb::new() else { return };
    let proxy = Proxy::to(&pg_place());
    let via = db.via(&proxy.place);
    let a = replica(&via, &[]);
    let b = replica(&db.url, &[]);
    a.add_user("alice");
    let session = a.login("alice");
    assert_eq!(get(&a.url("/api/userinfo"), Some(&session)).status, 200);

    proxy.cut();
    for _ in 0..3 {
        let r = get(&a.url("/api/userinfo"), Some(&session));
        assert_error(&r, 503, "unavailable");
        assert!(r.header("Retry-After").is_some(), "{r:?}");
        assert_error(&get(&a.url("/healthz"), None), 503, "unavailable");
        let r = post_json(
            &a.url("/api/login"),
            None,
            &format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#),
        );
        assert_ne!(r.status, 200, "{}", r.text);
    }
    // A revocation elsewhere while the replica is cut off holds when it returns.
    assert_eq!(
        post_json(&b.url("/api/logout"), Some(&session), "").status,
        204
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&a.url("/healthz"), None);
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", r.text);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_invalid_token(&get(&a.url("/api/userinfo"), Some(&session)), "revoked");
    let fresh = a.login("alice");
    assert_eq!(get(&a.url("/api/userinfo"), Some(&fresh)).status, 200);
}

#[test]
fn serve_gives_up_on_an_unreachable_database_with_a_sentence_and_no_password() {
    let started = Instant::now();
    let out = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "postgres://app:hunter2@127.0.0.1:1/appliance?connect_timeout=1",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_secs(25));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn help_and_errors_never_print_the_database_password() {
    for args in [
        &["serve", "--help"][..],
        &["admin", "user", "list", "--help"],
        &["admin", "audit", "--help"],
    ] {
        let out = run_with(
            appliance()
                .env(
                    "APPLIANCE_DB",
                    "postgres://app:hunter2@127.0.0.1:1/appliance",
                )
                .args(args),
            "",
        );
        assert!(out.status.success());
        assert!(!stdout(&out).contains("hunter2"), "{}", stdout(&out));
    }
    let out = run_with(
        appliance()
            .env(
                "APPLIANCE_DB",
                "postgres://app:hunter2@127.0.0.1:1/appliance?sslmode=verify-ca",
            )
            .args(["admin", "user", "list"]),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("app:***@127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}

#[test]
fn admin_backup_on_postgres_points_at_pg_dump() {
    let out = run(
        &[
            "admin",
            "backup",
            "/nonexistent/copy.db",
            "--db",
            "postgres://app:hunter2@127.0.0.1:1/appliance",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
}

#[test]
fn every_admin_command_works_on_a_postgres_url() {
    let Some(db) = PgDb::new() else { return };
    let admin = |args: &[&str], stdin: &str| {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--db", &db.url]);
        let out = run(&all, stdin);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    admin(
        &["user", "add", "alice", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    admin(
        &["user", "add", "bob", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(admin(&["user", "list"], "").contains("bob"));
    let pat = admin(&["token", "create", "--user", "alice", "--name", "ci"], "");
    let pat = pat.trim();
    let s = replica(&db.url, &[]);
    assert_eq!(get(&s.url("/api/userinfo"), Some(pat)).status, 200);
    assert_eq!(
        admin(&["revoke", "--token", "-"], &format!("{pat}\n")).trim(),
        "Token revoked."
    );
    assert_invalid_token(&get(&s.url("/api/userinfo"), Some(pat)), "revoked");
    let session = s.login("bob");
    admin(&["revoke", "--user", "bob"], "");
    assert_invalid_token(&get(&s.url("/api/userinfo"), Some(&session)), "stale");
    let seeded = admin(
        &["seed", "--user", "bob", "--count", "50", "--print", "2"],
        "",
    );
    assert_eq!(seeded.lines().count(), 2);
    // Issue 11 and 14's commands, on the URL.
    let pair = password_grant(&s);
    let out = admin(
        &["revoke", "--token", "-"],
        &format!("{}\n", field(&pair, "refresh_token")),
    );
    assert!(!out.is_empty());
    let refused = grant(&s, &refresh_body(&field(&pair, "refresh_token")));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(admin(&["keys", "list"], "").contains("k4.pid."));
    admin(&["keys", "rotate"], "");
    let session = s.login("alice");
    let passwd = admin(
        &["user", "passwd", "alice", "--password-stdin"],
        "another-long-password\n",
    );
    assert!(passwd.contains("session_version 2"), "{passwd}");
    assert_invalid_token(&get(&s.url("/api/userinfo"), Some(&session)), "stale");
    let session = s.login("bob");
    admin(&["user", "delete", "bob"], "");
    assert_invalid_token(&get(&s.url("/api/userinfo"), Some(&session)), "unknown");
    let audit = admin(&["audit"], "");
    for action in [
        "user.add",
        "token.create",
        "token.revoke",
        "user.revoke_all",
        "keys.rotate",
        "user.passwd",
        "user.delete",
    ] {
        assert!(audit.contains(action), "{audit}");
    }
    let out = run(
        &[
            "admin",
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--db",
            &db.url,
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a duplicate is refused: {}",
        stderr(&out)
    );
}

#[test]
fn a_sqlite_database_moves_to_postgres_with_every_token_still_working() {
    let Some(db) = PgDb::new() else { return };
    // One issuer before and after, as a deployment keeps its URL.
    let issuer = ["--issuer", "http://appliance.test"];
    let old = Server::start(&issuer);
    old.add_user("alice");
    let session = old.login("alice");
    let pat = old.new_pat(&session, r#"{"name":"ci"}"#);
    let doomed = old.new_pat(&session, r#"{"name":"doomed"}"#);
    let pair = password_grant(&old);
    let access = field(&pair, "access_token");
    let r = post_form(&old.url("/oauth/revoke"), None, &format!("token={doomed}"));
    assert_eq!(r.status, 200);
    let (_dir, file) = old.kill_and_keep();
    let file = file.to_str().unwrap();

    let out = run(&["admin", "migrate-to", &db.url, "--db", file], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "Copied 1 users, 3 tokens, 1 refresh families (1 refresh tokens), 1 signing keys"
        ),
        "{}",
        stdout(&out)
    );

    let new = replica(&db.url, &issuer);
    assert_eq!(get(&new.url("/api/userinfo"), Some(&session)).status, 200);
    assert_eq!(get(&new.url("/api/userinfo"), Some(&pat)).status, 200);
    assert_invalid_token(&get(&new.url("/api/userinfo"), Some(&doomed)), "revoked");
    // The signing key came along: an access token minted before the move verifies, and
    // the refresh token rotates.
    assert_eq!(get(&new.url("/api/validate"), Some(&access)).status, 200);
    let rotated = grant(&new, &refresh_body(&field(&pair, "refresh_token")));
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    new.login("alice");
    let audit = stdout(&new.admin(&["audit"], ""));
    assert!(
        audit.contains("user.add") && audit.contains("db.migrate_to"),
        "{audit}"
    );

    // Into a database that already has data: refused, nothing written.
    let again = run(&["admin", "migrate-to", &db.url, "--db", file], "");
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).contains("empty"), "{}", stderr(&again));
}

fn grant(s: &Server, body: &str) -> Resp {
    post_form(&s.url("/oauth/token"), None, body)
}

fn password_grant(s: &Server) -> Resp {
    let r = grant(
        s,
        &format!("grant_type=password&username=alice&password={PASSWORD}"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

fn refresh_body(token: &str) -> String {
    format!(
        "grant_type=refresh_token&refresh_token={}",
        form_encode(token)
    )
}

fn field(r: &Resp, name: &str) -> String {
    r.json[name].as_str().unwrap().to_string()
}

fn key_ids(s: &Server) -> Vec<String> {
    let r = get(&s.url("/oauth/keys"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn signed_tokens_and_refresh_rotation_hold_across_replicas() {
    let Some(db) = PgDb::new() else { return };
    // One issuer for the appliance, whichever replica answers.
    let replicas = three(&db, &["--issuer", "http://appliance.test"]);
    replicas[0].add_user("alice");
    // Replicas starting together made one signing key, and all serve it.
    let first_key = key_ids(&replicas[0]);
    assert_eq!(first_key.len(), 1);
    for s in &replicas {
        assert_eq!(key_ids(s), first_key);
    }

    // A token pair from one replica works on the others; a refresh on another rotates.
    let pair = password_grant(&replicas[0]);
    let access = field(&pair, "access_token");
    for s in &replicas {
        assert_eq!(get(&s.url("/api/validate"), Some(&access)).status, 200);
    }
    let rotated = grant(&replicas[1], &refresh_body(&field(&pair, "refresh_token")));
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let session = replicas[2].login("alice");
    let exchanged = grant(
        &replicas[2],
        &format!(
            "grant_type={}&subject_token={}&subject_token_type={}",
            form_encode("urn:ietf:params:oauth:grant-type:token-exchange"),
            form_encode(&session),
            form_encode("urn:ietf:params:oauth:token-type:access_token")
        ),
    );
    assert_eq!(exchanged.status, 200, "{}", exchanged.text);
    let exchanged = field(&exchanged, "access_token");
    assert_eq!(
        get(&replicas[0].url("/api/validate"), Some(&exchanged)).status,
        200
    );

    // Eight refreshes of one token spread over the replicas: exactly one rotates, the
    // others are replays that revoke the family once.
    let token = field(&rotated, "refresh_token");
    let family_access = field(&rotated, "access_token");
    let barrier = std::sync::Barrier::new(8);
    let answers: Vec<Resp> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (url, body, barrier) = (
                    replicas[i % 3].url("/oauth/token"),
                    refresh_body(&token),
                    &barrier,
                );
                scope.spawn(move || {
                    barrier.wait();
                    post_form(&url, None, &body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        answers.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for s in &replicas {
        assert_invalid_token(
            &get(&s.url("/api/validate"), Some(&family_access)),
            "revoked",
        );
    }
    let log = stdout(&replicas[0].admin(&["audit"], ""));
    assert_eq!(log.matches("refresh.reuse_detected").count(), 1, "{log}");

    // A rotation on the database: every replica signs with the new key and still
    // verifies what the old one signed.
    let out = replicas[1].admin(&["keys", "rotate"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    for s in &replicas {
        assert_eq!(key_ids(s).len(), 2);
        assert_eq!(get(&s.url("/api/validate"), Some(&exchanged)).status, 200);
    }
    let listed = stdout(&replicas[2].admin(&["keys", "list"], ""));
    assert!(listed.contains(&first_key[0]), "{listed}");
}

#[test]
fn throttling_counts_failures_across_replicas() {
    let Some(db) = PgDb::new() else { return };
    let replicas = three(&db, &[]);
    replicas[0].add_user("alice");
    let wrong = r#"{"username":"alice","password":"wrong-password-1"}"#;
    for i in 0..10 {
        let r = post_json(&replicas[i % 3].url("/api/login"), None, wrong);
        assert_error(&r, 401, "invalid_credentials");
    }
    for s in &replicas {
        let r = post_json(&s.url("/api/login"), None, wrong);
        assert_error(&r, 429, "too_many_requests");
        assert!(r.header("Retry-After").is_some());
        // The right password too: the username is locked for the window.
        let r = post_json(
            &s.url("/api/login"),
            None,
            &format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#),
        );
        assert_eq!(r.status, 429, "{}", r.text);
    }
}

#[test]
fn an_unreadable_password_file_is_named_and_nothing_is_tried() {
    let out = run_with(
        appliance()
            .env(
                "APPLIANCE_DB_PASSWORD_FILE",
                "/nonexistent/appliance-db-password",
            )
            .args([
                "admin",
                "user",
                "list",
                "--db",
                "postgres://app@127.0.0.1:1/appliance",
            ]),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/appliance-db-password")
            && err.contains("APPLIANCE_DB_PASSWORD_FILE"),
        "{err}"
    );
}

/// What one login of the stream got back.
enum Got {
    /// 200 with this session token: acknowledged.
    Token(String),
    Status(u16, String),
    /// No HTTP answer (a dead port, a connection cut mid-answer).
    Transport,
}

/// `POST /api/login` that reports a dead replica instead of panicking.
fn stream_login(url: &str) -> Got {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into();
    let body = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    let Ok(mut r) = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.as_str())
    else {
        return Got::Transport;
    };
    let status = r.status().as_u16();
    let Ok(text) = r.body_mut().read_to_string() else {
        return Got::Transport;
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    match json["token"].as_str() {
        Some(t) if status == 200 => Got::Token(t.to_string()),
        _ => Got::Status(status, text),
    }
}

#[test]
fn a_replica_killed_during_a_login_stream_loses_no_acknowledged_login_and_the_client_fails_over() {
    let Some(db) = PgDb::new() else { return };
    let [a, b, c] = three(&db, &[]);
    a.add_user("alice");
    let (base_a, base_b) = (a.base.clone(), b.base.clone());
    let urls = format!("{},{},{}", a.base, b.base, c.base);
    let logins: Vec<String> = [&a, &b, &c].iter().map(|s| s.url("/api/login")).collect();
    let config = tempfile::tempdir().unwrap();
    let cli = |args: &[&str], stdin: &str| {
        run_with(
            appliance()
                .env("APPLIANCE_CONFIG_DIR", config.path())
                .args(args),
            stdin,
        )
    };
    let cli_login = || {
        cli(
            &[
                "login",
                "--server-url",
                &urls,
                "--username",
                "alice",
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
    };

    let stop = AtomicBool::new(false);
    let cli_after_kill = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    // (replica, what it answered) for every raw login; the tokens the CLI stored.
    let raw: Mutex<Vec<(usize, Got)>> = Mutex::default();
    let stored: Mutex<Vec<String>> = Mutex::default();
    let acked = |raw: &Mutex<Vec<(usize, Got)>>, from: &dyn Fn(usize) -> bool| {
        raw.lock()
            .unwrap()
            .iter()
            .filter(|(i, g)| from(*i) && matches!(g, Got::Token(_)))
            .count()
    };
    let mut a = Some(a);
    std::thread::scope(|scope| {
        // Two threads of raw logins, round-robin over A, B, C.
        for t in 0..2 {
            let (logins, stop, raw) = (&logins, &stop, &raw);
            scope.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::SeqCst) {
                    let got = stream_login(&logins[i % 3]);
                    raw.lock().unwrap().push((i % 3, got));
                    i += 1;
                }
            });
        }
        // The CLI with the three URLs, logging in over and over.
        let (stop, killed, stored, cli_login, config) =
            (&stop, &killed, &stored, &cli_login, &config);
        let (base_a, base_b) = (&base_a, &base_b);
        let cli_after_kill = &cli_after_kill;
        scope.spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let dead = killed.load(Ordering::SeqCst);
                let out = cli_login();
                assert!(out.status.success(), "CLI login: {}", stderr(&out));
                let said = stdout(&out);
                // Started with A alive, it may have reached A or failed over to B.
                let to_b = said == format!("Logged in to {base_b} as alice.\n");
                let to_a = said == format!("Logged in to {base_a} as alice.\n");
                assert!(to_b || (to_a && !dead), "{said}");
                let creds =
                    std::fs::read_to_string(config.path().join("credentials.json")).unwrap();
                let creds: serde_json::Value = serde_json::from_str(&creds).unwrap();
                stored
                    .lock()
                    .unwrap()
                    .push(creds["token"].as_str().unwrap().to_string());
                if dead {
                    cli_after_kill.fetch_add(1, Ordering::SeqCst);
                }
            }
        });

        let wait_for = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done() {
                assert!(Instant::now() < deadline, "the stream never {what}");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // A answers part of the stream, then dies mid-stream.
        wait_for("reached A", &|| acked(&raw, &|i: usize| i == 0) >= 2);
        let mut gone = a.take().unwrap();
        gone.child.kill().unwrap(); // SIGKILL
        gone.child.wait().unwrap();
        killed.store(true, Ordering::SeqCst);
        let survivors = |i: usize| i != 0;
        let before = acked(&raw, &survivors);
        wait_for("went on without A", &|| {
            acked(&raw, &survivors) >= before + 6 && cli_after_kill.load(Ordering::SeqCst) >= 2
        });
        stop.store(true, Ordering::SeqCst);
    });

    let raw = raw.into_inner().unwrap();
    let mut tokens = stored.into_inner().unwrap();
    for (i, got) in raw {
        match got {
            Got::Token(t) => tokens.push(t),
            // Only A may fail, and only by not answering.
            Got::Transport => assert_eq!(i, 0, "replica {i} did not answer"),
            Got::Status(status, text) => panic!("replica {i} answered {status}: {text}"),
        }
    }
    assert!(
        tokens.len() >= 12,
        "only {} logins acknowledged",
        tokens.len()
    );
    // Every acknowledged login holds on the survivors, those A answered included.
    for t in &tokens {
        for s in [&b, &c] {
            let r = get(&s.url("/api/userinfo"), Some(t));
            assert_eq!(r.status, 200, "an acknowledged login was lost: {}", r.text);
        }
    }

    // After the stream: whoami, a PAT stored with --token-stdin, and the agent fail
    // over to B too.
    let who = cli(&["whoami"], "");
    assert!(who.status.success(), "{}", stderr(&who));
    assert_eq!(stdout(&who), format!("Logged in to {base_b} as alice.\n"));
    let pat = b.new_pat(&b.login("alice"), r#"{"name":"agent"}"#);
    let out = cli(
        &["login", "--server-url", &urls, "--token-stdin"],
        &format!("{pat}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Logged in to {base_b} as alice.\n"));
    let agent = cli(&["agent", "--once"], "");
    assert!(agent.status.success(), "{}", stderr(&agent));
    assert!(stderr(&agent).contains("INFO"), "{}", stderr(&agent));
    let who = cli(&["whoami"], "");
    assert!(who.status.success(), "{}", stderr(&who));
    assert_eq!(stdout(&who), format!("Logged in to {base_b} as alice.\n"));
}

/// A browser page while the database is down: HTML, 503, `Retry-After`, no cookie set.
fn assert_unavailable_page(r: &Resp) {
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(r.text.starts_with("<!doctype html>"), "{}", r.text);
    assert!(r.text.contains("database cannot be reached"), "{}", r.text);
    assert!(r.header("Retry-After").is_some(), "{r:?}");
    assert!(
        !set_cookies(r)
            .iter()
            .any(|c| c.starts_with("appliance_session=")),
        "{r:?}"
    );
}

#[test]
fn browser_pages_answer_a_503_page_while_the_database_is_down() {
    let Some(db) = PgDb::new() else { return };
    let proxy = Proxy::to(&pg_place());
    let a = replica(&db.via(&proxy.place), &["--insecure-cookies"]);
    a.add_user("alice");
    let session = format!("appliance_session={}", a.login("alice"));
    let home = request("GET", &a.url("/"), &[("Cookie", &session)], b"");
    assert_eq!(home.status, 200);
    assert!(
        home.text.contains("signed in as <strong>alice"),
        "{}",
        home.text
    );
    // A form fetched before the outage, posted during it.
    let form = get(&a.url("/login"), None);
    let csrf = cookie_value(set_cookie(&form, "appliance_csrf").unwrap()).to_string();
    let field = input_value(&form.text, "csrf").unwrap();

    proxy.cut();
    // The home page cannot say who is signed in: not "You are not signed in".
    let home = request("GET", &a.url("/"), &[("Cookie", &session)], b"");
    assert_unavailable_page(&home);
    assert!(!home.text.contains("not signed in"), "{}", home.text);
    // Without a cookie it is true without asking the database.
    let home = get(&a.url("/"), None);
    assert_eq!(home.status, 200);
    assert!(home.text.contains("not signed in"), "{}", home.text);
    // The form still shows (its CSRF key is in memory); signing in is a 503 page.
    let form = get(&a.url("/login"), None);
    assert_eq!(form.status, 200, "{}", form.text);
    let cookie = format!("appliance_csrf={csrf}");
    let body = format!(
        "username=alice&password={}&rd=%2F&csrf={}",
        form_encode(PASSWORD),
        form_encode(&field)
    );
    let signed = request(
        "POST",
        &a.url("/login"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
        ],
        body.as_bytes(),
    );
    assert_unavailable_page(&signed);
    // Signing out cannot revoke the session, so it does not say "signed out".
    let out = request("GET", &a.url("/logout"), &[("Cookie", &session)], b"");
    assert_unavailable_page(&out);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&a.url("/healthz"), None).status != 200 {
        assert!(Instant::now() < deadline, "no recovery");
        std::thread::sleep(Duration::from_millis(200));
    }
    let home = request("GET", &a.url("/"), &[("Cookie", &session)], b"");
    assert!(
        home.text.contains("signed in as <strong>alice"),
        "{}",
        home.text
    );
}

#[test]
fn every_503_of_an_outage_is_documented_with_retry_after() {
    let Some(db) = PgDb::new() else { return };
    let proxy = Proxy::to(&pg_place());
    let a = replica(&db.via(&proxy.place), &[]);
    a.add_user("alice");
    let session = a.login("alice");
    let doc = get(&a.url("/openapi.json"), None).json;
    let (bearer, cookie) = (
        format!("Bearer {session}"),
        format!("appliance_session={session}"),
    );
    let login = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    let grant = format!("grant_type=password&username=alice&password={PASSWORD}");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let (ctype, body) = match (method.as_str(), path.as_str()) {
                ("post", "/api/login") => ("application/json", login.as_str()),
                ("post", "/oauth/token") => ("application/x-www-form-urlencoded", grant.as_str()),
                _ => match op["requestBody"]["content"].as_object() {
                    Some(c) if c.contains_key("application/json") => ("application/json", "{}"),
                    _ => ("application/x-www-form-urlencoded", "token=x"),
                },
            };
            ops.push((method.as_str(), path.as_str(), op, ctype, body));
        }
    }
    proxy.cut();
    // At once: a request that finds no connection waits for the pool's checkout.
    let answers: Vec<Resp> = std::thread::scope(|scope| {
        let handles: Vec<_> = ops
            .iter()
            .map(|&(method, path, _, ctype, body)| {
                let url = a.url(&path.replace("{id}", "tok_nope"));
                let headers = [
                    ("Authorization", bearer.clone()),
                    ("Cookie", cookie.clone()),
                    ("Content-Type", ctype.to_string()),
                ];
                scope.spawn(move || {
                    let headers: Vec<(&str, &str)> =
                        headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    request(&method.to_uppercase(), &url, &headers, body.as_bytes())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unavailable = Vec::new();
    for ((method, path, op, _, _), r) in ops.iter().zip(&answers) {
        assert!(
            !op["responses"][r.status.to_string()].is_null(),
            "{method} {path} answered undocumented {}: {}",
            r.status,
            r.text
        );
        if r.status == 503 {
            assert!(r.header("Retry-After").is_some(), "{method} {path}");
            unavailable.push(format!("{method} {path}"));
        }
    }
    for needed in [
        "get /api/validate",
        "get /api/userinfo",
        "post /api/login",
        "post /oauth/token",
        "get /healthz",
        "get /",
    ] {
        assert!(
            unavailable.iter().any(|u| u == needed),
            "{needed} did not answer 503: {unavailable:?}"
        );
    }
}
