//! HTTP limits (contract v2): nothing a client sends can crash the server, grow it
//! without bound, or keep other clients from being answered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

/// Sends `raw` on a new connection and returns everything the server answers until it
/// closes the connection or `wait` passes.
fn exchange(s: &Server, raw: &[u8], wait: Duration) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.set_read_timeout(Some(wait)).unwrap();
    conn.write_all(raw).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn still_serving(s: &Server) {
    assert_eq!(get(&s.url("/healthz"), None).status, 200);
}

/// A declared body of 100 GB with 2 bytes sent used to make the body drain allocate the
/// declared size after the 413, and the process aborted.
#[test]
fn a_huge_declared_body_gets_413_and_the_server_lives() {
    let s = Server::start(&["--client-timeout", "1s"]);
    let answer = exchange(
        &s,
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n{}",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    still_serving(&s);
    let answer = exchange(
        &s,
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000000000\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    still_serving(&s);
}

fn proc_count(pid: u32, dir: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{dir}"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The process's peak resident memory.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Asserts that `n` validations on fresh connections are each answered within `within`.
fn validations_are_prompt(s: &Server, token: &str, n: usize, within: Duration) {
    let raw = format!("GET /api/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    for i in 0..n {
        let started = Instant::now();
        let answer = exchange(s, raw.as_bytes(), within + Duration::from_secs(1));
        assert!(
            answer.starts_with("HTTP/1.1 200") && started.elapsed() < within,
            "validation {i} took {:?}: {answer:?}",
            started.elapsed()
        );
    }
}

fn json_body(answer: &str) -> serde_json::Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Each `GET / HTTP/2.0` used to leave a thread and two fds behind (its 505 was written
/// through a second writer that waited for the first forever), until the listener died.
#[test]
fn http2_request_lines_leak_neither_threads_nor_fds() {
    let s = Server::start(&["--client-timeout", "1s"]);
    let answer = exchange(&s, b"GET /healthz HTTP/2.0\r\n\r\n", Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 505"), "{answer}");
    assert_eq!(json_body(&answer)["error"], "http_version_not_supported");
    std::thread::sleep(Duration::from_millis(300));
    let (fds, threads) = (proc_count(s.pid(), "fd"), proc_count(s.pid(), "task"));
    for _ in 0..200 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.write_all(b"GET / HTTP/2.0\r\n\r\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (fds2, threads2) = (proc_count(s.pid(), "fd"), proc_count(s.pid(), "task"));
    assert!(fds2 <= fds + 5, "fds {fds} -> {fds2}");
    assert!(threads2 <= threads + 5, "threads {threads} -> {threads2}");
    still_serving(&s);
}

/// Slow clients (bodies trickled a byte at a time, `Connection: Upgrade` with no body)
/// used to hold every worker, and a valid validation waited without an answer.
#[test]
fn slow_bodies_and_upgrades_do_not_hold_up_validation() {
    let s = Server::start(&["--client-timeout", "3s"]);
    s.add_user("alice");
    let token = s.login("alice");
    let mut trickling: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n{")
                .unwrap();
            c
        })
        .collect();
    let _upgrades: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(b"POST /api/validate HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap();
            c
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        let mut conns: Vec<TcpStream> = trickling.iter().map(|c| c.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for c in &mut conns {
                    let _ = c.write_all(b" ");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    validations_are_prompt(&s, &token, 10, Duration::from_secs(1));
    // And the trickling requests are cut at the whole-request deadline (3 s from their
    // first byte), however steadily they trickle.
    let c = &mut trickling[0];
    c.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    trickler.join().unwrap();
}

/// 300 pipelined requests whose answers are never read used to queue without bound and
/// hold the workers on their writes; validation was down for minutes.
#[test]
fn a_pipelining_client_that_never_reads_stalls_only_itself() {
    let s = Server::start(&["--client-timeout", "2s"]);
    s.add_user("alice");
    let token = s.login("alice");
    let mut hog = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let pipeline = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300);
    hog.write_all(pipeline.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    validations_are_prompt(&s, &token, 10, Duration::from_secs(1));
    // Pipelined requests that are read are answered in order.
    let answer = exchange(
        &s,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    );
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "404"], "{answer}");
    assert_eq!(answer.matches(r#"{"status":"ok"}"#).count(), 1, "{answer}");
}

/// Headers were unbounded: 64 MiB of them grew the process by about 1 GB.
#[test]
fn oversized_request_lines_and_headers_are_refused_with_bounded_memory() {
    let s = Server::start(&["--client-timeout", "2s"]);
    let before = peak_rss_kib(s.pid());
    let port = s.port;
    let flood = std::thread::spawn(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nX-Big: ");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..64 {
            if c.write_all(&chunk).is_err() {
                break;
            }
        }
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    let answer = flood.join().unwrap();
    let grown = peak_rss_kib(s.pid()).saturating_sub(before);
    assert!(grown < 20 * 1024, "peak RSS grew by {grown} KiB");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:.200}"
    );

    let big = format!(
        "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let answer = exchange(&s, big.as_bytes(), Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    assert_eq!(
        json_body(&answer)["error"],
        "request_header_fields_too_large"
    );
    assert!(answer.contains("Connection: close"), "{answer}");
    let many = format!("GET /healthz HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(101));
    let answer = exchange(&s, many.as_bytes(), Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    let answer = exchange(&s, long.as_bytes(), Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer:.200}");
    assert_eq!(json_body(&answer)["error"], "uri_too_long");
    // Just under the limits is fine.
    let fine = format!(
        "GET /healthz HTTP/1.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    let answer = exchange(&s, fine.as_bytes(), Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
}

/// A chunked body over the limit got its 413, but the rest of the chunk was then read
/// as the next request: a request smuggled inside it was answered.
#[test]
fn a_chunked_body_over_the_limit_is_refused_and_nothing_inside_it_is_answered() {
    let s = Server::start(&["--client-timeout", "2s", "--body-limit", "1024"]);
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut data = "a".repeat(1025);
    data.push_str(smuggled);
    data.push_str(&"b".repeat(2048 - data.len()));
    let raw = format!(
        "POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{data}\r\n0\r\n\r\n",
        data.len()
    );
    let answer = exchange(&s, raw.as_bytes(), Duration::from_secs(3));
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(json_body(&answer)["error"], "payload_too_large");
    // Many small chunks that add up past the limit: the same.
    let chunks = format!("200\r\n{}\r\n", "c".repeat(512)).repeat(3);
    let raw = format!(
        "POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}0\r\n\r\n{smuggled}"
    );
    let answer = exchange(&s, raw.as_bytes(), Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    // A chunked body within the limit is read and answered.
    let body = r#"{"username":"nobody","password":"whatever-long"}"#;
    let raw = format!(
        "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let answer = exchange(&s, raw.as_bytes(), Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[test]
fn ambiguous_framing_is_400_with_the_contract_body_and_closes() {
    let s = Server::start(&["--client-timeout", "2s"]);
    for raw in [
        "POST /api/login HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "POST /api/login HTTP/1.1\r\nContent-Length: -2\r\n\r\n{}",
        "POST /api/login HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n{}",
        "POST /api/login HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        "GARBAGE\r\n\r\n",
    ] {
        let answer = exchange(
            &s,
            format!("{raw}GET /healthz HTTP/1.1\r\n\r\n").as_bytes(),
            Duration::from_secs(3),
        );
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?}: {answer}");
        assert_eq!(json_body(&answer)["error"], "invalid_request", "{answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{raw:?}: {answer}");
    }
    // The largest declared length there is: 413 without reading it.
    let answer = exchange(
        &s,
        b"POST /api/login HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
        Duration::from_secs(3),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Expect: 100-continue within the limit is answered, then the request.
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"POST /api/login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 100 Continue"));
    c.write_all(b"{}").unwrap();
    let mut rest = String::new();
    let _ = c.read_to_string(&mut rest);
    assert!(rest.contains("HTTP/1.1 400"), "{rest}");
    let metrics = get(&s.url("/metrics"), None).text;
    assert!(
        metrics.contains("appliance_http_refusals_total{kind=\"bad_framing\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("appliance_http_refusals_total{kind=\"payload_too_large\"} 1"));
    assert!(
        metrics.contains("appliance_open_connections 1"),
        "{metrics}"
    );
}

#[test]
fn idle_and_slow_connections_close_after_the_client_timeout() {
    let s = Server::start(&["--client-timeout", "1s"]);
    // Idle keep-alive: closed silently.
    let mut idle = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    let _ = idle.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "idle connection open for {waited:?}"
    );
    // Headers trickled past the deadline: 408.
    let mut slow = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(300));
        if slow.write_all(b"X: y\r\n").is_err() {
            break;
        }
    }
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Beyond --max-connections a new connection waits in the backlog (never refused) and
/// is served as soon as one closes.
#[test]
fn connections_beyond_the_cap_wait_and_are_then_served() {
    let s = Server::start(&["--client-timeout", "10s", "--max-connections", "3"]);
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 512];
            assert!(c.read(&mut buf).unwrap() > 0);
            c
        })
        .collect();
    let mut waiting = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(
        matches!(waiting.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "the fourth connection was served beyond the cap"
    );
    held.pop();
    waiting
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let n = waiting.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

/// At the file-descriptor limit the accept thread used to panic and every later
/// connection was refused while the process lived on. Now accept backs off and retries,
/// and the server answers again once connections close.
#[test]
fn the_listener_survives_running_out_of_file_descriptors() {
    let s = Server::start(&["--client-timeout", "5s"]);
    let used = proc_count(s.pid(), "fd");
    let limit = used + 8;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &s.pid().to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status();
    if !status.is_ok_and(|st| st.success()) {
        eprintln!("skipped: prlimit is not available");
        return;
    }
    // More connections than descriptors left: some wait in the backlog while accept
    // fails with EMFILE.
    let hogs: Vec<TcpStream> = (0..30)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(hogs);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer after the fd limit: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        s.log_lines()
            .iter()
            .any(|l| l.contains("ERROR accept failed")),
        "the accept failures were not logged"
    );
}
