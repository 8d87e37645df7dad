//! The HTTP server: a listener bound before serving starts, one thread per connection
//! (at most `--max-connections`) that reads and answers its own requests within the
//! HTTP limits, and a clean stop on SIGTERM/SIGINT.
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

pub use routes::Endpoint;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::app::App;
use response::Reply;

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "appliance_session";

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds the listening socket. Its read timeout also bounds each `accept()` (the
/// accept loop retries); each connection then re-arms its own timeouts so a whole
/// request has `timeout` from its first byte and each write at most `timeout`.
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
///
/// Each connection's thread reads its requests and answers them itself (the vendored
/// tiny_http's per-connection server): a slow or stalled client holds only its own
/// thread, for at most `--client-timeout`, and at most `--max-connections` threads exist.
pub fn serve(app: Arc<App>, listener: TcpListener) -> Result<(), String> {
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let limits = tiny_http::Limits {
        body_limit: app.config.body_limit,
        client_timeout: Duration::from_millis(app.config.client_timeout_ms as u64),
        max_connections: app.config.max_connections,
        ..tiny_http::Limits::default()
    };
    log::start_flusher()?;
    let server = tiny_http::ConnectionServer::start(listener, limits, Arc::new(Handler(app)))
        .map_err(|e| format!("cannot start the HTTP server: {e}"))?;
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
    // In-flight requests get a few seconds; a client that stalls longer does not keep
    // the process (PID 1 in a container) from stopping. Idle keep-alive connections
    // end with the process.
    if server.shutdown(SHUTDOWN_GRACE) {
        log::event(log::Level::Info, "stopped");
    } else {
        log::event(
            log::Level::Warn,
            &format!(
                "in-flight requests did not finish within {}s; exiting",
                SHUTDOWN_GRACE.as_secs()
            ),
        );
    }
    log::flush();
    Ok(())
}

/// The application as the per-connection server sees it.
struct Handler(Arc<App>);

impl tiny_http::Handler for Handler {
    fn handle(&self, rq: tiny_http::Request) {
        handle(&self.0, rq);
    }

    fn refuse(
        &self,
        refusal: tiny_http::Refusal,
        target: &str,
    ) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
        use crate::error::Error;
        use tiny_http::Refusal as R;
        let kind = R::ALL.iter().position(|r| *r == refusal).unwrap_or(0);
        if let Some(n) = self.0.metrics.refusals.get(kind) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let error = match refusal {
            R::BadRequest => Error::InvalidRequest(
                "The request could not be parsed or its length is ambiguous.".into(),
            ),
            R::Timeout => Error::RequestTimeout,
            R::PayloadTooLarge => Error::PayloadTooLarge(self.0.config.body_limit),
            R::UriTooLong => Error::UriTooLong,
            R::ExpectationFailed => Error::ExpectationFailed,
            R::HeaderFieldsTooLarge => Error::HeaderFieldsTooLarge,
            R::VersionNotSupported => Error::HttpVersionNotSupported,
        };
        let path = target.split('?').next().unwrap_or("");
        log::event(
            log::Level::Warn,
            &format!(
                "refused {} {}: {}",
                if path.is_empty() { "-" } else { path },
                error.status(),
                crate::metrics::REFUSALS[kind]
            ),
        );
        response::to_response(error_reply(routes::is_page(path), &error))
    }

    fn trouble(&self, what: &str, error: &std::io::Error, retry_in: Duration) {
        // At most a few lines a second: the server backs off between attempts.
        log::event(
            log::Level::Error,
            &format!(
                "{what} failed: {error}; retrying in {}ms",
                retry_in.as_millis()
            ),
        );
    }

    fn connections(&self, open: usize) {
        self.0
            .metrics
            .open_connections
            .store(open as u64, Ordering::Relaxed);
    }
}

fn handle(app: &App, mut rq: tiny_http::Request) {
    let started = Instant::now();
    let (endpoint, reply) =
        match request::read(&mut rq, app.config.body_limit, &app.config.trusted_proxies) {
            Ok(req) => {
                // A bug in one handler must cost one 500, not the connection without an
                // answer (and, on a keep-alive connection, its later requests).
                let routed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    routes::route(app, &req)
                }));
                match routed {
                    Ok((endpoint, page, result)) => {
                        (endpoint, result.unwrap_or_else(|e| error_reply(page, &e)))
                    }
                    Err(_) => (
                        Endpoint::Other,
                        error_reply(
                            routes::is_page(&req.path),
                            &crate::error::Error::Internal("a request handler panicked".into()),
                        ),
                    ),
                }
            }
            Err(e) => {
                let path = rq.url().split('?').next().unwrap_or("");
                (Endpoint::Other, error_reply(routes::is_page(path), &e))
            }
        };
    let micros = started.elapsed().as_micros() as u64;
    app.metrics.observe(endpoint, reply.status, micros);
    // One line per request; the path only (a query may carry a redirect target, never
    // a token, but it is not needed to read the log).
    let path = rq.url().split('?').next().unwrap_or("");
    log::request(rq.method().as_str(), path, reply.status, micros);
    response::send(rq, reply);
}

/// Errors on the browser pages are HTML pages (the route table says which); everywhere
/// else the contract's JSON.
fn error_reply(page: bool, e: &crate::error::Error) -> Reply {
    match e {
        crate::error::Error::Internal(detail) => log::event(log::Level::Error, detail),
        crate::error::Error::Unavailable(detail) => log::event(log::Level::Warn, detail),
        _ => {}
    }
    if page {
        match e {
            crate::error::Error::MethodNotAllowed(methods) => {
                browser::error_page(e).header("Allow", *methods)
            }
            _ => browser::error_page(e),
        }
    } else {
        Reply::from_error(e)
    }
}
