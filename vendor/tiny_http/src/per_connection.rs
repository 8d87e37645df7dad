//! appliance patch: the per-connection server.
//!
//! Each accepted connection gets one thread, and that thread reads a request, calls the
//! handler on it and writes the answer before it reads the next one: no shared queue,
//! no worker hop. A slow, stalled or pipelining client therefore holds only its own
//! thread, and only for the client timeout. Every size a client declares or sends is
//! checked against `Limits` before anything is allocated for it:
//!
//! - request line over `max_request_line` → 414; header section over
//!   `max_header_bytes` or more than `max_headers` fields → 431; then close;
//! - a body over `body_limit`, declared or chunked → 413 and close, without reading it;
//!   a malformed, duplicated-and-different or overflowing `Content-Length`, one beside
//!   `Transfer-Encoding`, or a transfer coding other than `chunked` → 400 and close;
//! - `Expect: 100-continue` is answered only when the declared body is within the limit;
//! - a request has `client_timeout` in all, from its first byte, to arrive in full, and
//!   an idle keep-alive connection is closed after it; writes have the same timeout;
//! - at most `max_connections` connections are served at once; beyond that the
//!   acceptor waits (they queue in the kernel's backlog); accept and thread-spawn
//!   failures back off and retry.

use std::io::{self, BufRead, BufReader, BufWriter, Cursor, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{HTTPVersion, Header, Method, Request, Response};

/// What a client may send and how long it may take.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_line: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub body_limit: u64,
    pub client_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            body_limit: 64 * 1024,
            client_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Why a request was answered by the HTTP layer itself; the connection closes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: a request line, header, `Content-Length`, `Transfer-Encoding` or chunk that
    /// cannot be framed safely.
    BadRequest,
    /// 408: the request did not arrive in full within the client timeout.
    Timeout,
    /// 413: a body over the limit, declared or chunked.
    PayloadTooLarge,
    /// 414: a request line over the limit.
    UriTooLong,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
    /// 431: a header section over the size or count limit.
    HeaderFieldsTooLarge,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl Refusal {
    /// Every kind once, in a fixed order (for counters indexed by kind).
    pub const ALL: [Refusal; 7] = [
        Refusal::BadRequest,
        Refusal::Timeout,
        Refusal::PayloadTooLarge,
        Refusal::UriTooLong,
        Refusal::ExpectationFailed,
        Refusal::HeaderFieldsTooLarge,
        Refusal::VersionNotSupported,
    ];

    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::Timeout => 408,
            Refusal::PayloadTooLarge => 413,
            Refusal::UriTooLong => 414,
            Refusal::ExpectationFailed => 417,
            Refusal::HeaderFieldsTooLarge => 431,
            Refusal::VersionNotSupported => 505,
        }
    }
}

/// The application: answers requests, and renders the HTTP layer's own refusals.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request (through `Request::respond`); called on the connection's
    /// own thread, with the body already read in full.
    fn handle(&self, request: Request);
    /// The answer to a request the HTTP layer refused; it is sent with
    /// `Connection: close` and the connection is closed. `target` is the request
    /// target when the request line could be read (empty otherwise).
    fn refuse(&self, refusal: Refusal, target: &str) -> Response<Cursor<Vec<u8>>>;
    /// Called with the number of open connections whenever it changes.
    fn connections(&self, _open: usize) {}
    /// Called when accepting or starting a connection's thread failed; the server
    /// backs off for `retry_in` and tries again.
    fn trouble(&self, _what: &str, _error: &io::Error, _retry_in: Duration) {}
}

/// A running per-connection server.
pub struct ConnectionServer {
    shared: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    open: Mutex<usize>,
    slot_freed: Condvar,
    open_count: AtomicUsize,
    in_flight: AtomicUsize,
    stopping: AtomicBool,
}

impl ConnectionServer {
    /// Starts the accept thread on `listener`.
    pub fn start<H: Handler>(
        listener: TcpListener,
        limits: Limits,
        handler: Arc<H>,
    ) -> io::Result<ConnectionServer> {
        let shared = Arc::new(Shared {
            limits,
            open: Mutex::new(0),
            slot_freed: Condvar::new(),
            open_count: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        });
        let inner = Arc::clone(&shared);
        thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(listener, inner, handler))?;
        Ok(ConnectionServer { shared })
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.shared.open_count.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets requests in flight finish (each connection closes after
    /// its current answer) and returns once none is left (true) or `grace` has passed
    /// (false). Idle keep-alive connections are simply left to the process's exit.
    pub fn shutdown(&self, grace: Duration) -> bool {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.slot_freed.notify_all();
        let deadline = Instant::now() + grace;
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

fn accept_loop<H: Handler>(listener: TcpListener, shared: Arc<Shared>, handler: Arc<H>) {
    const MIN_BACKOFF: Duration = Duration::from_millis(10);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    let mut backoff = MIN_BACKOFF;
    let back_off = |backoff: &mut Duration| {
        thread::sleep(*backoff);
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    };
    loop {
        // Wait for a free slot before accepting: beyond the cap, new connections wait
        // in the kernel's backlog instead of getting a thread each.
        {
            let mut open = lock(&shared.open);
            while *open >= shared.limits.max_connections {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                open = shared
                    .slot_freed
                    .wait_timeout(open, Duration::from_millis(500))
                    .map_or_else(|e| e.into_inner().0, |(g, _)| g);
            }
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                match e.kind() {
                    // The listener's SO_RCVTIMEO also bounds accept(); an aborted
                    // handshake is the client's business.
                    ErrorKind::WouldBlock
                    | ErrorKind::TimedOut
                    | ErrorKind::Interrupted
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::ConnectionReset => {}
                    // Out of file descriptors (EMFILE/ENFILE), buffers or memory: wait
                    // for connections to close, never give up listening.
                    _ => {
                        handler.trouble("accept", &e, backoff);
                        back_off(&mut backoff);
                    }
                }
                continue;
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        *lock(&shared.open) += 1;
        handler.connections(shared.open_count.fetch_add(1, Ordering::Relaxed) + 1);
        // The stream waits in a slot so that a failed spawn can be retried with it.
        let slot = Arc::new(Mutex::new(Some(stream)));
        loop {
            let (slot2, shared2, handler2) =
                (Arc::clone(&slot), Arc::clone(&shared), Arc::clone(&handler));
            let spawned = thread::Builder::new()
                .name("http-conn".into())
                .stack_size(512 * 1024)
                .spawn(move || {
                    // Released on return and on a panic in the handler alike.
                    let _slot = SlotGuard(&shared2, &*handler2);
                    if let Some(stream) = lock(&slot2).take() {
                        serve_connection(stream, &shared2, &*handler2);
                    }
                });
            match spawned {
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    break;
                }
                Err(e) => {
                    handler.trouble("starting a connection thread", &e, backoff);
                    if shared.stopping.load(Ordering::SeqCst) {
                        release_slot(&shared, &*handler);
                        return;
                    }
                    back_off(&mut backoff);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave a count half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn release_slot<H: Handler>(shared: &Shared, handler: &H) {
    *lock(&shared.open) -= 1;
    handler.connections(shared.open_count.fetch_sub(1, Ordering::Relaxed) - 1);
    shared.slot_freed.notify_one();
}

struct SlotGuard<'a, H: Handler>(&'a Shared, &'a H);
impl<H: Handler> Drop for SlotGuard<'_, H> {
    fn drop(&mut self) {
        release_slot(self.0, self.1);
    }
}

struct InFlight<'a>(&'a Shared);
impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> InFlight<'a> {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(shared)
    }
}
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads from the socket, never past `deadline`: each read's SO_RCVTIMEO is at most
/// the time left (set only when the one in force would overshoot by more than 100 ms).
struct DeadlineReader {
    stream: Arc<TcpStream>,
    deadline: Instant,
    armed: Option<Duration>,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(ErrorKind::TimedOut, "client timeout"));
            }
            if self
                .armed
                .map_or(true, |a| a > left + Duration::from_millis(100))
            {
                let t = left.max(Duration::from_millis(1));
                self.stream.set_read_timeout(Some(t))?;
                self.armed = Some(t);
            }
            match (&*self.stream).read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    // Re-check the deadline; the timeout in force may have been shorter.
                    self.armed = None;
                    continue;
                }
                r => return r,
            }
        }
    }
}

/// Writes to the shared socket (its SO_SNDTIMEO bounds each write).
struct SocketWriter(Arc<TcpStream>);

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

fn serve_connection<H: Handler>(stream: TcpStream, shared: &Shared, handler: &H) {
    let limits = &shared.limits;
    let _ = stream.set_nodelay(true);
    if stream.set_write_timeout(Some(limits.client_timeout)).is_err() {
        return;
    }
    let remote_addr = stream.peer_addr().ok();
    let stream = Arc::new(stream);
    let mut reader = BufReader::with_capacity(
        4096,
        DeadlineReader {
            stream: Arc::clone(&stream),
            deadline: Instant::now() + limits.client_timeout,
            armed: None,
        },
    );
    let mut target = String::new();
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        // Idle: the next request must start within the client timeout.
        reader.get_mut().deadline = Instant::now() + limits.client_timeout;
        match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(_) => {}
        }
        let _in_flight = InFlight::new(shared);
        // The whole request must arrive within the client timeout of its first byte.
        reader.get_mut().deadline = Instant::now() + limits.client_timeout;
        let mut continue_writer = SocketWriter(Arc::clone(&stream));
        target.clear();
        let parsed = read_request(&mut reader, limits, &mut target, &mut || {
            continue_writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        });
        match parsed {
            Ok(parts) => {
                let close = parts.close || shared.stopping.load(Ordering::SeqCst);
                let writer = BufWriter::with_capacity(4096, SocketWriter(Arc::clone(&stream)));
                let request = crate::request::from_parts(parts, remote_addr, writer, close);
                handler.handle(request);
                if close {
                    break;
                }
            }
            Err(Failure::Refuse(refusal)) => {
                let mut response = handler.refuse(refusal, &target);
                response.set_connection("close");
                let mut writer = BufWriter::new(SocketWriter(Arc::clone(&stream)));
                let _ = response
                    .raw_print(&mut writer, HTTPVersion(1, 1), &[], false, None)
                    .and_then(|_| writer.flush());
                linger(&stream);
                break;
            }
            Err(Failure::Close) => break,
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// After a refusal the rest of the request is left unread; closing a socket with unread
/// data makes the kernel send a reset that can destroy our answer before the client
/// reads it. So: send FIN, then discard what arrives for a moment (bounded in bytes
/// and time, never parsed), then close.
fn linger(stream: &TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let until = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 8192];
    let mut budget: usize = 1 << 20;
    while budget > 0 && Instant::now() < until {
        match (&*stream).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
}

/// Why reading a request stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Answer with this refusal, then close.
    Refuse(Refusal),
    /// Close without an answer (the client went away or sent nothing).
    Close,
}

fn io_failure(e: io::Error) -> Failure {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Failure::Refuse(Refusal::Timeout),
        _ => Failure::Close,
    }
}

/// A request read in full, before it becomes a `Request`.
#[derive(Debug)]
pub struct Parts {
    pub method: Method,
    pub path: String,
    pub version: HTTPVersion,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    /// The connection closes after this request's answer.
    pub close: bool,
    /// HTTP/1.0 with `Connection: keep-alive`: the answer must say it too.
    pub keep_alive_1_0: bool,
}

/// Reads one line (without its CRLF or LF) of at most `max` bytes into `line`.
fn read_line<R: BufRead>(r: &mut R, line: &mut Vec<u8>, max: usize) -> Result<(), LineError> {
    line.clear();
    loop {
        let buf = r.fill_buf().map_err(LineError::Io)?;
        if buf.is_empty() {
            return Err(LineError::Io(io::Error::new(
                ErrorKind::UnexpectedEof,
                "end of stream inside a request",
            )));
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                // The CR that may precede the LF does not count toward the limit.
                let ends_cr = if i > 0 {
                    buf[i - 1] == b'\r'
                } else {
                    line.last() == Some(&b'\r')
                };
                if line.len() + i - usize::from(ends_cr) > max {
                    return Err(LineError::TooLong);
                }
                line.extend_from_slice(&buf[..i]);
                r.consume(i + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(());
            }
            None => {
                let n = buf.len();
                // Room for a CR that the next read may pair with its LF.
                if line.len() + n > max + 1 {
                    return Err(LineError::TooLong);
                }
                line.extend_from_slice(buf);
                r.consume(n);
            }
        }
    }
}

#[derive(Debug)]
enum LineError {
    Io(io::Error),
    TooLong,
}

fn line_failure(e: LineError, too_long: Refusal) -> Failure {
    match e {
        LineError::Io(e) => io_failure(e),
        LineError::TooLong => Failure::Refuse(too_long),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads a whole request (line, headers, body) within `limits`. `send_continue` is
/// called before reading a body whose client waits for `100 Continue`. `target` gets
/// the request target as soon as the request line is read, for a refusal's answer.
pub fn read_request<R: BufRead>(
    r: &mut R,
    limits: &Limits,
    target: &mut String,
    send_continue: &mut dyn FnMut() -> io::Result<()>,
) -> Result<Parts, Failure> {
    let mut line = Vec::with_capacity(256);
    // RFC 9112 §2.2: ignore a few empty lines before the request line.
    let mut empty_lines = 0;
    loop {
        read_line(r, &mut line, limits.max_request_line)
            .map_err(|e| line_failure(e, Refusal::UriTooLong))?;
        if !line.is_empty() {
            break;
        }
        empty_lines += 1;
        if empty_lines > 4 {
            return Err(Failure::Refuse(Refusal::BadRequest));
        }
    }
    let (method, path, version) = parse_request_line(&line)?;
    target.push_str(&path);

    let mut headers = Vec::with_capacity(16);
    let mut header_bytes = 0usize;
    loop {
        let left = limits.max_header_bytes.saturating_sub(header_bytes);
        read_line(r, &mut line, left)
            .map_err(|e| line_failure(e, Refusal::HeaderFieldsTooLarge))?;
        if line.is_empty() {
            break;
        }
        header_bytes += line.len() + 2;
        if headers.len() >= limits.max_headers {
            return Err(Failure::Refuse(Refusal::HeaderFieldsTooLarge));
        }
        headers.push(parse_header(&line)?);
    }

    // Framing: one unambiguous length, or chunked alone.
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    let mut wants_close = false;
    let mut wants_keep_alive = false;
    for h in &headers {
        let value = h.value.as_str();
        if h.field.equiv("Content-Length") {
            let n = parse_content_length(value).ok_or(Failure::Refuse(Refusal::BadRequest))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(Failure::Refuse(Refusal::BadRequest));
            }
            content_length = Some(n);
        } else if h.field.equiv("Transfer-Encoding") {
            if chunked || !value.eq_ignore_ascii_case("chunked") {
                return Err(Failure::Refuse(Refusal::BadRequest));
            }
            chunked = true;
        } else if h.field.equiv("Expect") {
            if value.eq_ignore_ascii_case("100-continue") {
                expect_continue = version >= (1, 1);
            } else {
                return Err(Failure::Refuse(Refusal::ExpectationFailed));
            }
        } else if h.field.equiv("Connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") || token.eq_ignore_ascii_case("upgrade") {
                    // We never upgrade: the answer is an ordinary one, the last.
                    wants_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    wants_keep_alive = true;
                }
            }
        }
    }
    // HTTP/1.0 closes unless it asks to stay; 1.1 stays unless it asks to close.
    let close = wants_close || (version <= (1, 0) && !wants_keep_alive);
    let keep_alive_1_0 = version == (1, 0) && !close;
    if chunked && (content_length.is_some() || version <= (1, 0)) {
        return Err(Failure::Refuse(Refusal::BadRequest));
    }

    let body = if chunked {
        if expect_continue {
            send_continue().map_err(|_| Failure::Close)?;
        }
        read_chunked(r, limits)?
    } else {
        match content_length {
            None | Some(0) => Vec::new(),
            Some(n) if n > limits.body_limit => {
                return Err(Failure::Refuse(Refusal::PayloadTooLarge))
            }
            Some(n) => {
                if expect_continue {
                    send_continue().map_err(|_| Failure::Close)?;
                }
                // n <= body_limit: the allocation is ours to size.
                let mut body = vec![0; n as usize];
                r.read_exact(&mut body).map_err(io_failure)?;
                body
            }
        }
    };
    Ok(Parts {
        method,
        path,
        version,
        headers,
        body,
        close,
        keep_alive_1_0,
    })
}

fn parse_request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), Failure> {
    let bad = Failure::Refuse(Refusal::BadRequest);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) || target.is_empty() {
        return Err(bad);
    }
    if target.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return Err(bad);
    }
    let version = match version {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Failure::Refuse(Refusal::VersionNotSupported))
        }
        _ => return Err(bad),
    };
    // Bytes outside ASCII in the target become '?' (the path then matches no route).
    let path: String = target
        .iter()
        .map(|&b| if b.is_ascii() { b as char } else { '?' })
        .collect();
    let method = std::str::from_utf8(method)
        .ok()
        .and_then(|m| m.parse().ok())
        .ok_or(Failure::Refuse(Refusal::BadRequest))?;
    Ok((method, path, version))
}

fn parse_header(line: &[u8]) -> Result<Header, Failure> {
    let bad = Failure::Refuse(Refusal::BadRequest);
    let colon = line.iter().position(|&b| b == b':').ok_or(bad)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // No whitespace before the colon and no obsolete line folding (RFC 9112 §5).
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(Failure::Refuse(Refusal::BadRequest));
    }
    // A bare CR or a NUL could make another parser split the line differently: 400.
    // Other control characters stay in the value (and make it unusable downstream:
    // an Authorization header with one is a 401, not a trimmed token).
    if value.iter().any(|&b| b == b'\r' || b == 0) {
        return Err(Failure::Refuse(Refusal::BadRequest));
    }
    let value = trim_ows(value);
    let header = if value.is_ascii() {
        Header::from_bytes(name, value)
    } else {
        let value: Vec<u8> = value
            .iter()
            .map(|&b| if b.is_ascii() { b } else { b'?' })
            .collect();
        Header::from_bytes(name, value)
    };
    header.map_err(|_| Failure::Refuse(Refusal::BadRequest))
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// Digits only, up to 2^64 − 1; anything else (sign, space inside, list, overflow) is
/// malformed.
fn parse_content_length(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Decodes a chunked body of at most `limits.body_limit` bytes; a chunk that would
/// pass it is refused before it is read.
fn read_chunked<R: BufRead>(r: &mut R, limits: &Limits) -> Result<Vec<u8>, Failure> {
    let bad = || Failure::Refuse(Refusal::BadRequest);
    let mut body = Vec::new();
    let mut line = Vec::with_capacity(64);
    loop {
        read_line(r, &mut line, 1024).map_err(|e| line_failure(e, Refusal::BadRequest))?;
        let size_part = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let size_part = trim_ows(size_part);
        if size_part.is_empty() || size_part.len() > 16 {
            return Err(bad());
        }
        let size = std::str::from_utf8(size_part)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(bad)?;
        if size == 0 {
            // Trailer fields: skipped, within the header limits.
            let mut trailer_bytes = 0usize;
            let mut count = 0usize;
            loop {
                let left = limits.max_header_bytes.saturating_sub(trailer_bytes);
                read_line(r, &mut line, left)
                    .map_err(|e| line_failure(e, Refusal::HeaderFieldsTooLarge))?;
                if line.is_empty() {
                    return Ok(body);
                }
                trailer_bytes += line.len() + 2;
                count += 1;
                if count > limits.max_headers {
                    return Err(Failure::Refuse(Refusal::HeaderFieldsTooLarge));
                }
            }
        }
        if size > limits.body_limit.saturating_sub(body.len() as u64) {
            return Err(Failure::Refuse(Refusal::PayloadTooLarge));
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        r.read_exact(&mut body[start..]).map_err(io_failure)?;
        read_line(r, &mut line, 0).map_err(|e| line_failure(e, Refusal::BadRequest))?;
    }
}

/// Reads requests from `data` as a connection would, until one fails or the data ends;
/// returns how many were read. For the fuzz target: it must never panic, and never
/// allocate beyond the limits.
pub fn read_all(data: &[u8], limits: &Limits) -> usize {
    let mut r = BufReader::with_capacity(4096, data);
    let mut n = 0;
    loop {
        if matches!(r.fill_buf(), Ok([]) | Err(_)) {
            return n;
        }
        match read_request(&mut r, limits, &mut String::new(), &mut || Ok(())) {
            Ok(parts) => {
                n += 1;
                if parts.close {
                    return n;
                }
            }
            Err(_) => return n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            body_limit: 100,
            ..Limits::default()
        }
    }

    fn read(raw: &[u8]) -> Result<Parts, Failure> {
        let mut r = BufReader::new(raw);
        read_request(&mut r, &limits(), &mut String::new(), &mut || Ok(()))
    }

    fn refused(raw: &[u8]) -> Refusal {
        match read(raw) {
            Err(Failure::Refuse(r)) => r,
            other => panic!("{:?}", other.map(|p| p.path)),
        }
    }

    #[test]
    fn a_plain_request_and_its_body() {
        let p = read(b"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!(p.path, "/a?b");
        assert_eq!(p.body, b"abc");
        assert!(!p.close);
        let p = read(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(p.close);
        let p = read(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(!p.close && p.keep_alive_1_0);
        let p = read(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").unwrap();
        assert!(p.close && !p.keep_alive_1_0);
        let p = read(b"GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n").unwrap();
        assert!(p.close);
    }

    #[test]
    fn framing_that_could_smuggle_is_refused() {
        for raw in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(refused(raw), Refusal::BadRequest, "{}", String::from_utf8_lossy(raw));
        }
        // The same length twice is one length.
        let p = read(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(p.unwrap().body, b"abc");
    }

    #[test]
    fn sizes_are_checked_before_reading() {
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n"),
            Refusal::PayloadTooLarge
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n"),
            Refusal::PayloadTooLarge
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(8192));
        assert_eq!(refused(long.as_bytes()), Refusal::UriTooLong);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(16 * 1024));
        assert_eq!(refused(big.as_bytes()), Refusal::HeaderFieldsTooLarge);
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: a\r\n".repeat(101));
        assert_eq!(refused(many.as_bytes()), Refusal::HeaderFieldsTooLarge);
        assert_eq!(refused(b"GET / HTTP/2.0\r\n\r\n"), Refusal::VersionNotSupported);
    }

    #[test]
    fn chunked_bodies_decode_and_stop_at_their_end() {
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let p = read_request(&mut r, &limits(), &mut String::new(), &mut || Ok(())).unwrap();
        assert_eq!(p.body, b"abcde");
        let next = read_request(&mut r, &limits(), &mut String::new(), &mut || Ok(())).unwrap();
        assert_eq!(next.path, "/next");
        // A stream that ends inside a chunk is not a body.
        assert_eq!(
            read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").unwrap_err(),
            Failure::Close
        );
    }

    #[test]
    fn continue_is_sent_only_for_a_body_within_the_limit() {
        let mut sent = 0;
        let mut r = BufReader::new(
            &b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n"[..],
        );
        let e = read_request(&mut r, &limits(), &mut String::new(), &mut || {
            sent += 1;
            Ok(())
        });
        assert_eq!(e.unwrap_err(), Failure::Refuse(Refusal::PayloadTooLarge));
        assert_eq!(sent, 0);
        let mut r = BufReader::new(
            &b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab"[..],
        );
        read_request(&mut r, &limits(), &mut String::new(), &mut || {
            sent += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(sent, 1);
    }
}
