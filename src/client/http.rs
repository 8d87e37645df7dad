//! The client's HTTP: one ureq agent with the contract's timeouts, and failover across
//! the server URLs of one appliance.

use std::io::ErrorKind;
use std::time::Duration;

use serde_json::Value;

use super::advice::Failure;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const OVERALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Answers of this API are small; a larger body is not an appliance server.
const BODY_LIMIT: u64 = 1 << 20;

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The server that answered.
    pub url: String,
    pub status: u16,
    /// The JSON body (`Null` when empty or not JSON).
    pub json: Value,
}

/// An HTTP client over an ordered list of server URLs.
pub struct Client {
    agent: ureq::Agent,
    urls: Vec<String>,
}

impl Client {
    /// `urls` are base URLs without a trailing slash, tried in order.
    pub fn new(urls: Vec<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(OVERALL_TIMEOUT))
            // Statuses are answers to classify, not transport errors.
            .http_status_as_error(false)
            // A redirect would carry the bearer token somewhere the user did not name.
            .max_redirects(0)
            .build()
            .into();
        Client { agent, urls }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Sends `method path` to each server in turn: the next one is tried after a
    /// network error or a 5xx; any other answer ends the search, since the same token
    /// or password would get the same answer everywhere. When every server fails, the
    /// last failure is returned.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, Failure> {
        let body = match body {
            Some(v) => Some((
                "application/json",
                serde_json::to_vec(v).map_err(|e| Failure::Transport {
                    url: String::new(),
                    error: e.to_string(),
                })?,
            )),
            None => None,
        };
        self.send_bytes(method, path, bearer, body)
    }

    /// `POST path` with a form body (`application/x-www-form-urlencoded`), such as the
    /// OAuth token endpoint takes; failover as `send`.
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<Answer, Failure> {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send_bytes(
            "POST",
            path,
            None,
            Some(("application/x-www-form-urlencoded", form.into_bytes())),
        )
    }

    fn send_bytes(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Answer, Failure> {
        let mut last = Failure::Transport {
            url: String::new(),
            error: "no server URL is configured".to_string(),
        };
        for url in &self.urls {
            match self.send_one(url, method, path, bearer, body.as_ref()) {
                Ok(answer) => return Ok(answer),
                Err(f @ Failure::Status { status, .. }) if status < 500 => return Err(f),
                Err(f) => last = f,
            }
        }
        Err(last)
    }

    fn send_one(
        &self,
        base: &str,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&(&str, Vec<u8>)>,
    ) -> Result<Answer, Failure> {
        let transport = |error: String| Failure::Transport {
            url: base.to_string(),
            error,
        };
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("Accept", "application/json");
        if let Some(token) = bearer {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                req = req.header("Content-Type", *content_type);
                bytes.clone()
            }
            None => Vec::new(),
        };
        // The error of a bad request line names the URL, never the header value.
        let req = req
            .body(bytes)
            .map_err(|_| transport(format!("invalid server URL or token: {base}{path}")))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| transport(transport_text(&e)))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| transport(transport_text(&e)))?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(Answer {
                url: base.to_string(),
                status,
                json,
            });
        }
        let field = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_string);
        // `error_description`: an RFC 6749 error of the token endpoint.
        let message = field("message")
            .or_else(|| field("error_description"))
            .or_else(|| short_text(&text));
        Err(Failure::Status {
            url: base.to_string(),
            status,
            code: field("error"),
            reason: field("reason"),
            message,
        })
    }
}

/// A plain-text error body worth showing: one short line.
fn short_text(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty() && t.len() <= 200 && !t.contains('\n') && !t.starts_with('<'))
        .then(|| t.to_string())
}

/// A readable transport error whose words `advice::classify` recognises.
fn transport_text(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(which) => format!("timed out ({which} timeout)"),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::BadUri(u) => format!("invalid server URL: {u}"),
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".to_string(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                "connection reset by the server".to_string()
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => "timed out".to_string(),
            ErrorKind::UnexpectedEof => "connection closed by the server".to_string(),
            _ => format!("network error: {io}"),
        },
        other => other.to_string(),
    }
}

/// Splits `--server-url a,b` into base URLs without a trailing slash.
pub fn parse_server_urls(list: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    if urls.is_empty() {
        return Err("--server-url needs at least one URL, such as http://127.0.0.1:8080.".into());
    }
    for u in &urls {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty()) {
            return Err(format!(
                "'{u}' is not a server URL: write http://HOST:PORT or https://HOST."
            ));
        }
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_split_and_trimmed() {
        assert_eq!(
            parse_server_urls("http://a:1/, https://b ").unwrap(),
            vec!["http://a:1".to_string(), "https://b".to_string()]
        );
        assert!(parse_server_urls("").is_err());
        assert!(parse_server_urls("a.example").is_err());
        assert!(parse_server_urls("http://").is_err());
    }
}
