//! The HTTP server: a listener bound before the workers start, a fixed set of worker
//! threads calling `recv()` on one `Arc<Server>`, and a clean stop on SIGTERM/SIGINT.
//!
//! A request flows socket → `request::read` → `routes::route` → handler → app →
//! storage, and back as one `Reply` written by `response::send`.

mod browser;
mod handlers;
pub mod log;
mod oauth;
pub mod request;
pub mod response;
mod routes;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::app::App;
use crate::metrics::endpoint_index;
use response::Reply;

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "appliance_session";

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds the listening socket with read/write timeouts that accepted connections
/// inherit (tiny_http has no timeout API of its own).
///
/// A client must send each read's worth of bytes (and take our writes) within
/// `timeout`, or its connection is dropped: a slow client cannot hold a connection
/// thread forever.
pub fn bind(addr: &str, timeout: Duration) -> Result<TcpListener, String> {
    let addr: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("--listen {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("--listen {addr}: no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(|e| format!("cannot create socket: {e}"))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| format!("cannot set SO_REUSEADDR: {e}"))?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| format!("cannot set SO_RCVTIMEO: {e}"))?;
    socket
        .set_write_timeout(Some(timeout))
        .map_err(|e| format!("cannot set SO_SNDTIMEO: {e}"))?;
    socket
        .bind(&addr.into())
        .map_err(|e| bind_error(addr, &e))?;
    socket
        .listen(1024)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok(socket.into())
}

/// Why `serve` cannot listen on `addr`, and what to do about it.
fn bind_error(addr: SocketAddr, e: &std::io::Error) -> String {
    let port = match addr.port() {
        p @ 1024..=65534 => p + 1,
        _ => 8080,
    };
    let (what, try_instead) = match e.kind() {
        std::io::ErrorKind::AddrInUse => (
            "another program is already listening there",
            SocketAddr::new(addr.ip(), port),
        ),
        std::io::ErrorKind::PermissionDenied => (
            "ports below 1024 need privileges",
            SocketAddr::new(addr.ip(), 8080),
        ),
        std::io::ErrorKind::AddrNotAvailable => (
            "no interface of this machine has that address",
            SocketAddr::new([127, 0, 0, 1].into(), addr.port()),
        ),
        _ => return format!("Cannot listen on {addr}: {e}."),
    };
    format!(
        "Cannot listen on {addr}: {what} ({e}). Choose another address with --listen (or APPLIANCE_LISTEN), such as --listen {try_instead}."
    )
}

/// Serves until SIGTERM or SIGINT, then lets in-flight requests finish and returns.
pub fn serve(app: Arc<App>, listener: TcpListener) -> Result<(), String> {
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let server = Arc::new(
        tiny_http::Server::from_listener(listener, None)
            .map_err(|e| format!("cannot start the HTTP server: {e}"))?,
    );
    let stopping = Arc::new(AtomicBool::new(false));
    log::start_flusher()?;
    let mut workers = Vec::with_capacity(app.config.workers);
    for i in 0..app.config.workers {
        let (server, app, stopping) =
            (Arc::clone(&server), Arc::clone(&app), Arc::clone(&stopping));
        let worker = thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || loop {
                match server.recv() {
                    Ok(rq) => handle(&app, rq),
                    Err(_) if stopping.load(Ordering::SeqCst) => return,
                    // Only unblock() wakes recv() without a request (our vendored
                    // tiny_http never stops accepting), so this is spurious.
                    Err(_) => continue,
                }
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        workers.push(worker);
    }
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    println!("listening on http://{local}");
    if let Some(sig) = signals.forever().next() {
        log::event(
            log::Level::Info,
            &format!("received signal {sig}; finishing in-flight requests"),
        );
    }
    stopping.store(true, Ordering::SeqCst);
    // In-flight requests get a few seconds; a client that stalls longer does not keep
    // the process (PID 1 in a container) from stopping.
    let _ = thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(|| {
            thread::sleep(SHUTDOWN_GRACE);
            log::event(
                log::Level::Warn,
                &format!(
                    "in-flight requests did not finish within {}s; exiting",
                    SHUTDOWN_GRACE.as_secs()
                ),
            );
            std::process::exit(0);
        });
    // unblock() wakes one recv() per call: once per worker.
    for _ in 0..workers.len() {
        server.unblock();
    }
    for w in workers {
        let _ = w.join();
    }
    log::event(log::Level::Info, "stopped");
    Ok(())
}

fn handle(app: &App, mut rq: tiny_http::Request) {
    let started = Instant::now();
    let (endpoint, reply) =
        match request::read(&mut rq, app.config.body_limit, &app.config.trusted_proxies) {
            Ok(req) => {
                let (endpoint, result) = routes::route(app, &req);
                (
                    endpoint,
                    result.unwrap_or_else(|e| error_reply(&req.path, &e)),
                )
            }
            Err(e) => (
                "other",
                error_reply(rq.url().split('?').next().unwrap_or(""), &e),
            ),
        };
    let micros = started.elapsed().as_micros() as u64;
    app.metrics
        .observe(endpoint_index(endpoint), reply.status, micros);
    // One line per request; the path only (a query may carry a redirect target, never
    // a token, but it is not needed to read the log).
    let path = rq.url().split('?').next().unwrap_or("");
    log::request(rq.method().as_str(), path, reply.status, micros);
    response::send(rq, reply);
}

/// Errors on the browser pages are HTML pages; everywhere else the contract's JSON.
fn error_reply(path: &str, e: &crate::error::Error) -> Reply {
    if let crate::error::Error::Internal(detail) = e {
        log::event(log::Level::Error, detail);
    }
    match path {
        "/login" | "/logout" | "/" => browser::error_page(e),
        _ => Reply::from_error(e),
    }
}
