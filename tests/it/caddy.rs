//! A real Caddy running `examples/Caddyfile` (site address and ports replaced, HTTP
//! only) in front of the same tiny app and the real appliance, checked like nginx.
//!
//! Without caddy the test fails when `CI=true` and otherwise is skipped, saying so on
//! stderr past the harness's capture (`proxy_or_skip`).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nginx::{check_forward_auth, free_port, proxy_or_skip, start_app};
use crate::support::*;

const CONFIG: &str = include_str!("../../examples/Caddyfile");

struct Caddy {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Caddy {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default()
    }
}

#[test]
fn caddy_forward_auth_guards_the_app_and_signs_browsers_in() {
    let Some(bin) = proxy_or_skip(
        "caddy_forward_auth_guards_the_app_and_signs_browsers_in",
        "caddy",
        "/usr/bin/caddy",
    ) else {
        return;
    };
    let s = Server::start(&["--trusted-proxies", "127.0.0.1"]);
    s.add_user("alice");
    let app = start_app();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{CONFIG}");
    for (from, to) in [
        (
            "app.example.com {".to_string(),
            format!("http://app.example.test:{port} {{\n\tbind 127.0.0.1"),
        ),
        (
            "127.0.0.1:8080".to_string(),
            format!("127.0.0.1:{}", s.port),
        ),
        ("127.0.0.1:3000".to_string(), format!("127.0.0.1:{app}")),
    ] {
        assert!(config.contains(&from), "examples/Caddyfile: {from}");
        config = config.replace(&from, &to);
    }
    let conf = dir.path().join("Caddyfile");
    std::fs::write(&conf, config).unwrap();
    let log = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
    let child = Command::new(bin)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&conf)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn caddy");
    let mut caddy = Caddy { child, dir };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = caddy.child.try_wait() {
            panic!("caddy exited ({status}): {}", caddy.log());
        }
        assert!(
            Instant::now() < deadline,
            "caddy did not listen: {}",
            caddy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    check_forward_auth(&s, port, &|| caddy.log());
}
