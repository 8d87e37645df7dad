//! HTTP limits (contract v2): nothing a client sends can crash the server, grow it
//! without bound, or keep other clients from being answered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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
