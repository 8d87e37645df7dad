//! A real nginx running `examples/nginx.conf` (the file the README shows, with only
//! its ports and a few temp paths replaced) in front of a tiny upstream app and the
//! real appliance: redirects to sign-in, bearer tokens, revocation, and the whole
//! browser flow through the proxy.
//!
//! Without nginx the test fails when `CI=true` and otherwise is skipped, saying so on
//! stderr past the harness's capture (`proxy_or_skip`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const CONFIG: &str = include_str!("../../examples/nginx.conf");
const HOST: &str = "app.example.test";

/// `name` from PATH, else `fallback` if it exists. `APPLIANCE_TEST_<NAME>` overrides
/// both (the file it names, or nothing), so `skips.rs` can check what a machine without
/// the program sees.
pub fn find_program(name: &str, fallback: &str) -> Option<PathBuf> {
    let var = format!("APPLIANCE_TEST_{}", name.to_ascii_uppercase());
    if let Some(forced) = std::env::var_os(var) {
        let forced = PathBuf::from(forced);
        return forced.is_file().then_some(forced);
    }
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| {
        let fallback = PathBuf::from(fallback);
        fallback.is_file().then_some(fallback)
    })
}

/// The proxy a test runs, or `None` once the test's skip is announced. Under `CI=true`
/// a missing proxy fails the test instead: everything must run there.
///
/// libtest captures what a passing test prints with `eprintln!` and shows `ok`, so the
/// skip goes to the process's stderr handle itself, which it does not capture: the line
/// shows among the results whatever the harness options.
pub fn proxy_or_skip(test: &str, name: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(found) = find_program(name, fallback) {
        return Some(found);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "{name} is not installed (PATH or {fallback}) and CI is set: every test must run there (apt-get install {name})"
    );
    let _ = writeln!(
        std::io::stderr().lock(),
        "\nSKIPPED {test}: {name} is not installed (PATH or {fallback}; apt-get install {name}). With CI=true this fails."
    );
    None
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx with `daemon off`, killed on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(bin: &Path, port: u16, appliance: u16, app: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let replaced = [
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            (
                "server 127.0.0.1:8080;",
                format!("server 127.0.0.1:{appliance};"),
            ),
            ("server 127.0.0.1:3000;", format!("server 127.0.0.1:{app};")),
            (
                "http {",
                format!(
                    "http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;"
                ),
            ),
        ];
        let mut config = CONFIG.to_string();
        for (from, to) in &replaced {
            assert_eq!(
                config.matches(from).count(),
                1,
                "examples/nginx.conf: {from}"
            );
            config = config.replace(from, to);
        }
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg(format!(
                // One process, so that killing it leaves no orphaned workers behind.
                "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = nginx.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("nginx exited ({status}): {err}");
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// The upstream app: answers every request with the X-Auth-User it was given.
pub fn start_app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let _ = serve_app(stream);
        }
    });
    port
}

fn serve_app(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut users = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("X-Auth-User") {
                users.push(v.trim().to_string());
            }
        }
    }
    let body = format!("app: path={target} x-auth-user={}\n", users.join(","));
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// What nginx answered.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Set-Cookie"))
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{name}=")))
    }
}

/// One HTTP/1.0 exchange with nginx, as a browser on `HOST` would send it.
fn send(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut request = format!("{method} {target} HTTP/1.0\r\nHost: {HOST}:{port}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The path and query of an absolute URL on our host.
fn local_target(location: &str, port: u16) -> String {
    location
        .strip_prefix(&format!("http://{HOST}:{port}"))
        .unwrap_or(location)
        .to_string()
}

#[test]
fn nginx_auth_request_guards_the_app_and_signs_browsers_in() {
    let Some(bin) = proxy_or_skip(
        "nginx_auth_request_guards_the_app_and_signs_browsers_in",
        "nginx",
        "/usr/sbin/nginx",
    ) else {
        return;
    };
    let s = Server::start(&["--trusted-proxies", "127.0.0.1"]);
    s.add_user("alice");
    let app = start_app();
    let port = free_port();
    let nginx = Nginx::start(&bin, port, s.port, app);
    check_forward_auth(&s, port, &|| nginx.error_log());
}

/// What a proxy in front of the app must do, checked through it on `port`.
pub fn check_forward_auth(s: &Server, port: u16, proxy_log: &dyn Fn() -> String) {
    let ctx = |what: &str, a: &Answer| {
        format!(
            "{what}: {} {:?}\n{}\nproxy log:\n{}",
            a.status,
            a.headers,
            a.body,
            proxy_log()
        )
    };

    // No credentials: off to sign in, with the page asked for as rd. A header the
    // client made up does not get through either.
    let r = send(
        port,
        "GET",
        "/private?x=1",
        &[("X-Auth-User", "mallory")],
        "",
    );
    assert_eq!(r.status, 302, "{}", ctx("anonymous", &r));
    // nginx makes the Location absolute, Caddy leaves it as written.
    let login = local_target(r.header("Location").unwrap(), port);
    assert_eq!(login, format!("/login?rd=http://{HOST}:{port}/private?x=1"));

    // A bearer token: the app answers and sees who it is (not who the client says).
    let token = s.login("alice");
    let bearer = format!("Bearer {token}");
    let r = send(
        port,
        "GET",
        "/private?x=1",
        &[("Authorization", &bearer), ("X-Auth-User", "mallory")],
        "",
    );
    assert_eq!(r.status, 200, "{}", ctx("bearer", &r));
    assert_eq!(r.body, "app: path=/private?x=1 x-auth-user=alice\n");

    // Revoked: back to sign-in.
    assert_eq!(
        post_json(&s.url("/api/logout"), Some(&token), "").status,
        204
    );
    let r = send(port, "GET", "/private", &[("Authorization", &bearer)], "");
    assert_eq!(r.status, 302, "{}", ctx("revoked", &r));
    assert!(r.header("Location").unwrap().contains("/login?rd="));

    // A browser: the form (through nginx), the post with the CSRF cookie and field,
    // then the 303 followed with the session cookie.
    let form = send(port, "GET", &login, &[], "");
    assert_eq!(form.status, 200, "{}", ctx("form", &form));
    let csrf_cookie = form
        .set_cookie("__Host-appliance_csrf")
        .expect("csrf cookie");
    let csrf_cookie = csrf_cookie.split(';').next().unwrap().to_string();
    let field = input_value(&form.body, "csrf").expect("csrf field");
    let rd = input_value(&form.body, "rd").expect("rd field");
    assert_eq!(rd, format!("http://{HOST}:{port}/private?x=1"));
    let body = format!(
        "username=alice&password={}&rd={}&csrf={}",
        form_encode(PASSWORD),
        form_encode(&rd),
        form_encode(&field)
    );
    // The proxy passes the Host the browser used, so the origin check sees through it:
    // a post from another origin is refused, one from the app's own origin accepted.
    let origin = format!("http://{HOST}:{port}");
    let foreign = send(
        port,
        "POST",
        "/login",
        &[("Cookie", &csrf_cookie), ("Origin", "https://evil.example")],
        &body,
    );
    assert_eq!(foreign.status, 403, "{}", ctx("foreign origin", &foreign));
    let signed_in = send(
        port,
        "POST",
        "/login?rd=x",
        &[
            ("Cookie", &csrf_cookie),
            ("Origin", &origin),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &body,
    );
    assert_eq!(signed_in.status, 303, "{}", ctx("sign in", &signed_in));
    let next = signed_in.header("Location").unwrap().to_string();
    assert_eq!(next, "/private?x=1");
    let session = signed_in
        .set_cookie("appliance_session")
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly; SameSite=Lax; Path=/; Secure"),
        "{session}"
    );
    let session = session.split(';').next().unwrap().to_string();
    let r = send(port, "GET", &next, &[("Cookie", &session)], "");
    assert_eq!(r.status, 200, "{}", ctx("cookie", &r));
    assert_eq!(r.body, "app: path=/private?x=1 x-auth-user=alice\n");

    // A link from another site to /logout only asks.
    let asked = send(
        port,
        "GET",
        "/logout",
        &[("Cookie", &session), ("Sec-Fetch-Site", "cross-site")],
        "",
    );
    assert_eq!(asked.status, 200, "{}", ctx("cross-site sign out", &asked));
    assert!(asked.set_cookie("appliance_session").is_none());
    let r = send(port, "GET", &next, &[("Cookie", &session)], "");
    assert_eq!(r.status, 200, "{}", ctx("still signed in", &r));

    // Signing out through nginx ends the cookie session.
    let referer = format!("{origin}/private");
    let out = send(
        port,
        "GET",
        "/logout",
        &[
            ("Cookie", &session),
            ("Sec-Fetch-Site", "same-origin"),
            ("Referer", &referer),
        ],
        "",
    );
    assert_eq!(out.status, 200, "{}", ctx("sign out", &out));
    assert!(out
        .set_cookie("appliance_session")
        .unwrap()
        .contains("Max-Age=0"));
    let r = send(port, "GET", &next, &[("Cookie", &session)], "");
    assert_eq!(r.status, 302, "{}", ctx("after sign out", &r));
}
