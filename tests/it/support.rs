//! Starting the real binary and talking HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_appliance");
pub const PASSWORD: &str = "correct-horse-battery";

/// `appliance` with no APPLIANCE_* variables inherited from the environment.
pub fn appliance() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("APPLIANCE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `appliance args…` with `stdin` fed in; returns the output.
pub fn run(args: &[&str], stdin: &str) -> Output {
    run_with(appliance().args(args), stdin)
}

pub fn run_with(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn appliance");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).ok();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `appliance serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub port: u16,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
    pub stderr: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("appliance.db");
        Server::start_on(dir, db, args)
    }

    /// Starts `serve` on an existing directory and database path.
    pub fn start_on(dir: tempfile::TempDir, db: PathBuf, args: &[&str]) -> Server {
        let mut cmd = appliance();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .args(args);
        Server::spawn(cmd, dir, db)
    }

    /// Starts `cmd` (a `serve` command line, possibly wrapped) and waits for its
    /// `listening on` line.
    pub fn spawn(mut cmd: Command, dir: tempfile::TempDir, db: PathBuf) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (ltx, lrx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = ltx.send(line);
            }
        });
        let line = lrx
            .recv_timeout(Duration::from_secs(20))
            .expect("serve printed no 'listening on' line");
        let base = line
            .strip_prefix("listening on ")
            .expect("listening line")
            .to_string();
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Server {
            child,
            base,
            port,
            db,
            dir,
            stderr: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn db_arg(&self) -> &str {
        self.db.to_str().unwrap()
    }

    /// `appliance admin ARGS --db <this db>`.
    pub fn admin(&self, args: &[&str], stdin: &str) -> Output {
        let mut all: Vec<&str> = vec!["admin"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--db", self.db_arg()]);
        run(&all, stdin)
    }

    pub fn add_user(&self, username: &str) -> String {
        let out = self.admin(
            &["user", "add", username, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        assert!(out.status.success(), "user add failed: {}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// Logs in with the default password; returns the session token.
    pub fn login(&self, username: &str) -> String {
        let r = post_json(
            &self.url("/api/login"),
            None,
            &format!(r#"{{"username":"{username}","password":"{PASSWORD}"}}"#),
        );
        assert_eq!(r.status, 200, "login failed: {}", r.text);
        r.json["token"].as_str().unwrap().to_string()
    }

    /// `POST /api/tokens` with `body`, as the holder of `session`.
    pub fn pat(&self, session: &str, body: &str) -> Resp {
        post_json(&self.url("/api/tokens"), Some(session), body)
    }

    /// A new PAT through the API; asserts the 201 and returns the token.
    pub fn new_pat(&self, session: &str, body: &str) -> String {
        let r = self.pat(session, body);
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["token"].as_str().unwrap().to_string()
    }

    /// Every stderr line printed so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

/// One request with any method, headers and body.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body.to_vec()).unwrap();
    let mut resp = agent().run(req).expect("HTTP request");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

pub fn get(url: &str, bearer: Option<&str>) -> Resp {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request("GET", url, &headers, b"")
}

pub fn post_json(url: &str, bearer: Option<&str>, body: &str) -> Resp {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
    headers.extend(auth.iter().map(|a| ("Authorization", a.as_str())));
    request("POST", url, &headers, body.as_bytes())
}

pub fn post_form(url: &str, bearer: Option<&str>, body: &str) -> Resp {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> =
        vec![("Content-Type", "application/x-www-form-urlencoded")];
    headers.extend(auth.iter().map(|a| ("Authorization", a.as_str())));
    request("POST", url, &headers, body.as_bytes())
}

/// Asserts a contract error: status, code, and for 401s the reason.
pub fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.text);
    assert_eq!(r.json["error"], code, "body: {}", r.text);
    assert!(
        r.json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {}",
        r.text
    );
}

pub fn assert_invalid_token(r: &Resp, reason: &str) {
    assert_error(r, 401, "invalid_token");
    assert_eq!(r.json["reason"], reason, "body: {}", r.text);
    let challenge = r.header("WWW-Authenticate").unwrap_or("");
    if reason == "missing" {
        assert_eq!(challenge, r#"Bearer realm="appliance""#);
    } else {
        assert_eq!(
            challenge,
            r#"Bearer realm="appliance", error="invalid_token""#
        );
    }
}

pub fn sqlite(db: &Path, sql: &str) -> Vec<Vec<Value>> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut stmt = c.prepare(sql).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(v) => Value::from(v),
                    rusqlite::types::ValueRef::Real(v) => Value::from(v),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::from(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(b) => Value::from(b.len()),
                })
                .collect())
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

impl Server {
    /// Kills the server (SIGKILL) and hands back its directory and database, to restart on.
    pub fn kill_and_keep(mut self) -> (tempfile::TempDir, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, self.db.clone())
    }
}
/// A canned-answer HTTP server on 127.0.0.1 standing in for an appliance server that
/// answers 403, 5xx or never: it counts the requests it received.
pub struct FakeServer {
    pub url: String,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeServer {
    /// Answers every request with `status` and the JSON `body`.
    pub fn answering(status: u16, body: &str) -> FakeServer {
        FakeServer::spawn(Some((status, body.to_string())))
    }

    /// Reads each request and never answers (the connection stays open).
    pub fn hanging() -> FakeServer {
        FakeServer::spawn(None)
    }

    fn spawn(reply: Option<(u16, String)>) -> FakeServer {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let counter = counter.clone();
                let reply = reply.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    let _ = std::io::Read::read_exact(&mut reader, &mut body);
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut stream = reader.into_inner();
                    match reply {
                        Some((status, body)) => {
                            let _ = write!(
                                stream,
                                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        None => std::thread::sleep(Duration::from_secs(60)),
                    }
                });
            }
        });
        FakeServer { url, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A URL on which nothing listens (the port was just free).
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// The `Set-Cookie` headers of an answer, whole.
pub fn set_cookies(r: &Resp) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Set-Cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `Set-Cookie` header that sets `name`, if any.
pub fn set_cookie<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    set_cookies(r)
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// The value a `Set-Cookie` header gives its cookie.
pub fn cookie_value(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap_or("");
    pair.split_once('=').map_or("", |(_, v)| v)
}

/// The value of `<input name="NAME" value="…">` in an HTML page (values we render
/// contain no quotes).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let v = tag.split("value=\"").nth(1)?;
    Some(v[..v.find('"')?].to_string())
}

/// Percent-encodes a form value.
pub fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Server {
    /// `admin token create --user USER --name NAME EXTRA…`; asserts success and returns
    /// the PAT it printed.
    pub fn admin_pat(&self, user: &str, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["token", "create", "--user", user, "--name", name];
        args.extend_from_slice(extra);
        let out = self.admin(&args, "");
        assert!(out.status.success(), "{}", stderr(&out));
        let pat = stdout(&out).trim().to_string();
        assert!(pat.starts_with("apt_"), "{pat}");
        pat
    }
}

/// The first line a spawned child prints on its (piped) stdout.
pub fn first_stdout_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

/// Runs `f` on `n` threads released at once; returns what each returned.
pub fn concurrently<T: Send>(n: usize, f: impl Fn() -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    f()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
