//! The only place that writes response bytes: a `Reply` or an `Error` becomes status,
//! headers and body here.

use std::io::Cursor;

use serde_json::{json, Value};
use tiny_http::{Header, Response};

use crate::error::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Empty,
    Json(Value),
    /// JSON already serialised (the OpenAPI document, once; typed bodies).
    JsonBytes(std::borrow::Cow<'static, [u8]>),
    Html(String),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Json(body),
        }
    }
    /// A JSON body serialised from a typed value.
    pub fn json_of<T: serde::Serialize>(status: u16, body: &T) -> Reply {
        match serde_json::to_vec(body) {
            Ok(bytes) => Reply {
                status,
                headers: Vec::new(),
                body: Body::JsonBytes(std::borrow::Cow::Owned(bytes)),
            },
            // Our own structs of strings and numbers always serialise.
            Err(e) => Reply::from_error(&Error::Internal(format!("serialising a reply: {e}"))),
        }
    }
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
    pub fn html(status: u16, page: String) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Html(page),
        }
    }
    pub fn text(status: u16, text: String) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Text(text),
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
    /// For responses that carry a token.
    pub fn no_store(self) -> Reply {
        self.header("Cache-Control", "no-store")
    }

    /// The contract's error body, with the headers each error needs.
    pub fn from_error(e: &Error) -> Reply {
        if let Error::Grant(code, description) = e {
            // RFC 6749 §5.2: its own body shape, and never cached.
            return Reply::json(
                e.status(),
                json!({ "error": code.as_str(), "error_description": description }),
            )
            .no_store();
        }
        let mut body = json!({ "error": e.code(), "message": e.message() });
        let mut reply = match e {
            Error::InvalidToken(reason) => {
                body["reason"] = json!(reason.as_str());
                let challenge = match reason {
                    crate::error::Reason::Missing => r#"Bearer realm="appliance""#,
                    _ => r#"Bearer realm="appliance", error="invalid_token""#,
                };
                Reply::json(401, Value::Null).header("WWW-Authenticate", challenge)
            }
            Error::MethodNotAllowed(methods) => {
                Reply::json(405, Value::Null).header("Allow", *methods)
            }
            _ => match e.retry_after() {
                Some(secs) => {
                    Reply::json(e.status(), Value::Null).header("Retry-After", secs.to_string())
                }
                None => Reply::json(e.status(), Value::Null),
            },
        };
        reply.status = e.status();
        reply.body = Body::Json(body);
        reply
    }
}

/// Sends the reply; a client that went away is not an error worth more than a shrug.
pub fn send(rq: tiny_http::Request, reply: Reply) {
    let _ = rq.respond(to_response(reply));
}

/// Status, headers and body bytes of a reply.
pub fn to_response(reply: Reply) -> Response<Cursor<Vec<u8>>> {
    let (content_type, bytes): (Option<&str>, Vec<u8>) = match reply.body {
        Body::Empty => (None, Vec::new()),
        Body::Json(v) => (
            Some("application/json"),
            serde_json::to_vec(&v).unwrap_or_default(),
        ),
        Body::JsonBytes(b) => (Some("application/json"), b.into_owned()),
        Body::Html(s) => (Some("text/html; charset=utf-8"), s.into_bytes()),
        Body::Text(s) => (
            Some("text/plain; version=0.0.4; charset=utf-8"),
            s.into_bytes(),
        ),
    };
    let len = bytes.len();
    let mut response = Response::new(
        tiny_http::StatusCode(reply.status),
        Vec::new(),
        Cursor::new(bytes),
        Some(len),
        None,
    );
    if let Some(ct) = content_type {
        response.add_header(header("Content-Type", ct));
    }
    for (name, value) in &reply.headers {
        response.add_header(header(name, value));
    }
    response
}

fn header(name: &str, value: &str) -> Header {
    // Names are our constants and values never contain CR/LF (we build them), so this
    // cannot fail; a value that somehow did would be dropped rather than sent.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|_| {
        Header::from_bytes(&b"X-Dropped"[..], &b"1"[..]).expect("constant header")
    })
}
