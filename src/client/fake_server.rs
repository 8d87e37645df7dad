//! A tiny canned-answer HTTP server on 127.0.0.1 for unit tests: it counts requests
//! (in all and per path) and answers each with the status and body set for its path,
//! or else the current default.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type Reply = (u16, String);

#[derive(Default)]
struct Routes {
    by_path: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
}

pub struct FakeServer {
    pub url: String,
    hits: Arc<AtomicUsize>,
    reply: Arc<Mutex<Reply>>,
    routes: Arc<Mutex<Routes>>,
}

impl FakeServer {
    pub fn start(status: u16, body: &str) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(Mutex::new((status, body.to_string())));
        let routes = Arc::new(Mutex::new(Routes::default()));
        let (h, r, p) = (hits.clone(), reply.clone(), routes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                answer(stream, &h, &r, &p);
            }
        });
        FakeServer {
            url,
            hits,
            reply,
            routes,
        }
    }

    /// Answers requests for `path` with this status and body from now on.
    pub fn set_path(&self, path: &str, status: u16, body: &str) {
        let mut routes = self.routes.lock().unwrap();
        routes
            .by_path
            .insert(path.to_string(), (status, body.to_string()));
    }

    /// Requests for `path` so far.
    pub fn hits_on(&self, path: &str) -> usize {
        let routes = self.routes.lock().unwrap();
        routes.hits.get(path).copied().unwrap_or(0)
    }

    pub fn set(&self, status: u16, body: &str) {
        *self.reply.lock().unwrap() = (status, body.to_string());
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn answer(mut stream: TcpStream, hits: &AtomicUsize, reply: &Mutex<Reply>, routes: &Mutex<Routes>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_string();
    let routed = {
        let mut routes = routes.lock().unwrap();
        *routes.hits.entry(path.clone()).or_default() += 1;
        routes.by_path.get(&path).cloned()
    };
    hits.fetch_add(1, Ordering::SeqCst);
    let (status, body) = routed.unwrap_or_else(|| reply.lock().unwrap().clone());
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}
