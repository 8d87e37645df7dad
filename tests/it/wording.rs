//! What the client says when something is wrong: login failures, a dead PAT, the wrong
//! scheme, a URL without one.

use std::io::{Read, Write};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::*;

fn client(config: &tempfile::TempDir, args: &[&str], stdin: &str) -> Output {
    run_with(
        appliance()
            .env("APPLIANCE_CONFIG_DIR", config.path().join("appliance"))
            .args(args),
        stdin,
    )
}

fn password_login(config: &tempfile::TempDir, url: &str) -> Output {
    client(
        config,
        &[
            "login",
            "--server-url",
            url,
            "--username",
            "alice",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    )
}

#[test]
fn login_failures_say_could_not_log_in() {
    let config = tempfile::tempdir().unwrap();
    let url = dead_url();
    let out = password_login(&config, &url);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).starts_with(&format!("Could not log in: connection refused ({url}).")),
        "{}",
        stderr(&out)
    );
    let s = Server::start(&[]);
    let out = client(
        &config,
        &["login", "--server-url", &s.base, "--token-stdin"],
        "aps_not-a-real-token\n",
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).starts_with("Could not log in: 401 Unauthorized"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_revoked_pat_is_advised_to_store_a_new_one_with_token_stdin() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let pat = s.admin_pat("alice", "daemon", &[]);
    let config = tempfile::tempdir().unwrap();
    let out = client(
        &config,
        &["login", "--server-url", &s.base, "--token-stdin"],
        &format!("{pat}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.admin(&["revoke", "--token", "-"], &format!("{pat}\n"));
    assert!(out.status.success(), "{}", stderr(&out));

    let advice = format!(
        "→ Session token may be expired. Run `appliance login --server-url={} --token-stdin` to refresh (the stored token is a personal access token: give it a new one on stdin).",
        s.base
    );
    let out = client(&config, &["whoami"], "");
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.starts_with("Could not verify your session: 401 Unauthorized"),
        "{err}"
    );
    assert_eq!(err.lines().nth(1), Some(advice.as_str()), "{err}");

    let out = client(
        &config,
        &["login", "--server-url", &s.base, "--token-stdin"],
        &format!("{pat}\n"),
    );
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.starts_with("Could not log in: 401 Unauthorized"),
        "{err}"
    );
    assert_eq!(err.lines().nth(1), Some(advice.as_str()), "{err}");
}

#[test]
fn https_against_the_plain_http_server_says_so_at_once() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let https = format!("https://127.0.0.1:{}", s.port);
    let hint = format!(
        "the server speaks plain HTTP, not TLS; use http://127.0.0.1:{}",
        s.port
    );
    let config = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = password_login(&config, &https);
    // Well under the 5 s connect timeout the TLS handshake would otherwise wait for.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Could not log in: "),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&hint), "{}", stderr(&out));

    let started = Instant::now();
    let out = run(&["healthcheck", "--url", &https], "");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&hint), "{}", stderr(&out));
}

/// A stand-in for a TLS server: whatever it is sent, it answers a TLS alert record
/// (handshake_failure) and closes, as TLS servers do with a plain-HTTP request.
fn tls_like_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 512];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
        }
    });
    format!("127.0.0.1:{port}")
}

#[test]
fn http_against_a_tls_server_says_so() {
    let addr = tls_like_server();
    let config = tempfile::tempdir().unwrap();
    let out = password_login(&config, &format!("http://{addr}"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "the server speaks TLS, not plain HTTP; use https://{addr}"
        )),
        "{}",
        stderr(&out)
    );
    let out = run(&["healthcheck", "--url", &format!("http://{addr}")], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("use https://"), "{}", stderr(&out));
}

#[test]
fn a_url_without_a_scheme_is_explained_alike_by_login_and_healthcheck() {
    let s = Server::start(&[]);
    let bare = format!("127.0.0.1:{}", s.port);
    let sentence = format!("'{bare}' is not a server URL, it has no scheme: write http://{bare}");
    let config = tempfile::tempdir().unwrap();
    let login = password_login(&config, &bare);
    let health = run(&["healthcheck", "--url", &bare], "");
    for out in [&login, &health] {
        let err = stderr(out);
        assert!(err.contains(&sentence), "{err}");
        assert!(!err.contains("token"), "{err}");
    }
    assert!(!health.status.success());
}
