//! What went wrong talking to a server, and what the user should do next.
//!
//! `classify` is the one place a failure becomes a class (and so an exit code);
//! `advise` is the one place the contract's two-line message is built.

use crate::error::exit;

/// A request that did not get a usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with a status the caller could not use.
    Status {
        /// The server that answered.
        url: String,
        status: u16,
        /// `error` of the JSON body (`invalid_token`, `forbidden`, ...), if any.
        code: Option<String>,
        /// `reason` of a 401 `invalid_token` (`expired`, `revoked`, `stale`, ...), if any.
        reason: Option<String>,
        /// `message` of the JSON body, or a short plain-text body.
        message: Option<String>,
    },
    /// No answer: DNS, connect, TLS, timeout, a broken connection, a malformed URL.
    Transport { url: String, error: String },
}

impl Failure {
    /// The server the failure is about.
    pub fn url(&self) -> &str {
        match self {
            Failure::Status { url, .. } | Failure::Transport { url, .. } => url,
        }
    }

    /// The contract's raw error: `<status> <reason phrase>: <message>` for an HTTP
    /// answer, otherwise the transport error.
    pub fn raw(&self) -> String {
        match self {
            Failure::Status {
                status, message, ..
            } => {
                let phrase = ureq::http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                let head = format!("{status} {phrase}");
                match message {
                    // The server's words, escaped: no line or escape sequence of its
                    // making reaches the user's terminal.
                    Some(m) if !m.is_empty() => {
                        format!("{}: {}", head.trim_end(), crate::text::escape(m))
                    }
                    _ => head.trim_end().to_string(),
                }
            }
            Failure::Transport { url, error } => format!("{error} ({url})"),
        }
    }
}

/// The classes of the contract, each with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 401: the token is missing, expired, revoked or stale.
    Auth,
    /// 403: authenticated but not allowed.
    Forbidden,
    /// DNS, connect, timeout: the server could not be reached.
    Network,
    /// 5xx.
    Server,
    /// Anything else (400, 404, 429, a malformed URL): no advice is invented for it.
    Other,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Auth => exit::AUTH,
            Class::Forbidden => exit::FORBIDDEN,
            Class::Network => exit::UNREACHABLE,
            Class::Server => exit::SERVER,
            Class::Other => exit::REFUSED,
        }
    }
}

/// The one classification of a failure: by status when there is one, else by the words
/// of the error text (errors wrapped by other layers often keep only their text).
pub fn classify(failure: &Failure) -> Class {
    match failure {
        Failure::Status { status: 401, .. } => Class::Auth,
        Failure::Status { status: 403, .. } => Class::Forbidden,
        Failure::Status { status, .. } if (500..600).contains(status) => Class::Server,
        Failure::Status { .. } => Class::Other,
        Failure::Transport { error, .. } => classify_text(error),
    }
}

/// Words that name a class in error texts from ureq, the OS, proxies and other layers.
/// Order matters: "gateway timeout" is a server error, not a local timeout.
const WORDS: &[(&str, Class)] = &[
    ("unauthorized", Class::Auth),
    ("unauthenticated", Class::Auth),
    ("invalid_token", Class::Auth),
    ("forbidden", Class::Forbidden),
    ("internal server error", Class::Server),
    ("bad gateway", Class::Server),
    ("service unavailable", Class::Server),
    ("gateway timeout", Class::Server),
    ("connection refused", Class::Network),
    ("connection reset", Class::Network),
    ("connection closed", Class::Network),
    ("connection failed", Class::Network),
    ("timed out", Class::Network),
    ("timeout", Class::Network),
    ("host not found", Class::Network),
    ("failed to lookup", Class::Network),
    ("name resolution", Class::Network),
    ("dns", Class::Network),
    ("network", Class::Network),
    ("unreachable", Class::Network),
    ("no route to host", Class::Network),
    ("broken pipe", Class::Network),
];

fn classify_text(text: &str) -> Class {
    let lower = text.to_ascii_lowercase();
    WORDS
        .iter()
        .find(|(word, _)| lower.contains(word))
        .map_or(Class::Other, |(_, class)| *class)
}

/// The message and exit code for a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub class: Class,
    /// One or two lines, without a final newline.
    pub text: String,
}

impl Advice {
    pub fn exit_code(&self) -> u8 {
        self.class.exit_code()
    }
}

/// What the failed request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Checking the stored credentials (`whoami`): "Could not verify your session".
    Verify,
    /// `login`: "Could not log in".
    Login,
}

/// Where a failure happened, which words and next step fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    pub attempt: Attempt,
    /// The token involved is a personal access token: a 401 is fixed by storing a new
    /// one (`login --token-stdin`), not by a password login, whose session the agent
    /// would refuse.
    pub pat: bool,
    /// Where the server URLs were configured (the credentials path, or the
    /// `--server-url` flag at login).
    pub urls_from: &'a str,
}

/// The one builder of the contract's message: `Could not verify your session: <raw>.`
/// (`Could not log in: <raw>.` at login) then `→ <next step>` by class.
pub fn advise(failure: &Failure, ctx: &Context<'_>) -> Advice {
    let class = classify(failure);
    let raw = failure.raw();
    let doing = match ctx.attempt {
        Attempt::Verify => "Could not verify your session",
        Attempt::Login => "Could not log in",
    };
    // The raw message often ends its own sentence; do not print "..".
    let first = format!("{doing}: {}.", raw.trim_end_matches('.'));
    let url = failure.url();
    let urls_from = ctx.urls_from;
    let next = match class {
        Class::Auth if ctx.pat => Some(format!(
            "Session token may be expired. Run `appliance login --server-url={url} --token-stdin` to refresh (the stored token is a personal access token: give it a new one on stdin)."
        )),
        Class::Auth => Some(format!(
            "Session token may be expired. Run `appliance login --server-url={url}` to refresh."
        )),
        Class::Forbidden => Some(format!(
            "Your account is not allowed to use this server. Check your membership with its administrator, then run `appliance login --server-url={url}`."
        )),
        Class::Network => Some(format!(
            "Could not reach the appliance server. Check your network and the server URL in {urls_from}."
        )),
        Class::Server => {
            Some("The appliance server returned an error; retry shortly.".to_string())
        }
        Class::Other => None,
    };
    let text = match next {
        Some(next) => format!("{first}\n→ {next}"),
        None => first,
    };
    Advice { class, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str) -> Failure {
        Failure::Status {
            url: "http://a.example:8080".into(),
            status,
            code: None,
            reason: None,
            message: Some(message.into()),
        }
    }

    fn verify(urls_from: &str) -> Context<'_> {
        Context {
            attempt: Attempt::Verify,
            pat: false,
            urls_from,
        }
    }

    fn transport(error: &str) -> Failure {
        Failure::Transport {
            url: "http://a.example:8080".into(),
            error: error.into(),
        }
    }

    #[test]
    fn statuses_classify_by_code() {
        assert_eq!(classify(&status(401, "x")), Class::Auth);
        assert_eq!(classify(&status(403, "x")), Class::Forbidden);
        assert_eq!(classify(&status(500, "x")), Class::Server);
        assert_eq!(classify(&status(503, "x")), Class::Server);
        assert_eq!(classify(&status(400, "x")), Class::Other);
        assert_eq!(classify(&status(404, "x")), Class::Other);
        assert_eq!(classify(&status(429, "x")), Class::Other);
    }

    #[test]
    fn error_texts_classify_by_their_words() {
        assert_eq!(classify(&transport("HTTP 401 Unauthorized")), Class::Auth);
        assert_eq!(classify(&transport("status: Forbidden")), Class::Forbidden);
        assert_eq!(
            classify(&transport("upstream said Internal Server Error")),
            Class::Server
        );
        assert_eq!(classify(&transport("504 Gateway Timeout")), Class::Server);
        assert_eq!(
            classify(&transport("Connection refused (os error 111)")),
            Class::Network
        );
        assert_eq!(classify(&transport("timed out (global)")), Class::Network);
        assert_eq!(classify(&transport("host not found")), Class::Network);
        assert_eq!(
            classify(&transport("invalid server URL: ftp://x")),
            Class::Other
        );
    }

    #[test]
    fn exit_codes_follow_the_contract_table() {
        assert_eq!(Class::Auth.exit_code(), 3);
        assert_eq!(Class::Forbidden.exit_code(), 4);
        assert_eq!(Class::Network.exit_code(), 5);
        assert_eq!(Class::Server.exit_code(), 6);
        assert_eq!(Class::Other.exit_code(), 1);
    }

    #[test]
    fn auth_advice_names_the_server_that_answered() {
        let a = advise(
            &status(401, "The token has been revoked; log in again."),
            &verify("/c/credentials.json"),
        );
        assert_eq!(
            a.text,
            "Could not verify your session: 401 Unauthorized: The token has been revoked; log in again.\n\
             → Session token may be expired. Run `appliance login --server-url=http://a.example:8080` to refresh."
        );
        assert_eq!(a.exit_code(), 3);
    }

    #[test]
    fn an_expired_pat_is_advised_to_store_a_new_one() {
        let ctx = Context {
            pat: true,
            ..verify("/c/credentials.json")
        };
        let a = advise(&status(401, "The token has expired."), &ctx);
        assert_eq!(
            a.text,
            "Could not verify your session: 401 Unauthorized: The token has expired.\n\
             → Session token may be expired. Run `appliance login --server-url=http://a.example:8080 --token-stdin` to refresh (the stored token is a personal access token: give it a new one on stdin)."
        );
        assert_eq!(a.exit_code(), 3);
    }

    #[test]
    fn login_failures_say_could_not_log_in() {
        let ctx = Context {
            attempt: Attempt::Login,
            pat: false,
            urls_from: "the --server-url flag",
        };
        let a = advise(&transport("connection refused"), &ctx);
        assert_eq!(
            a.text,
            "Could not log in: connection refused (http://a.example:8080).\n\
             → Could not reach the appliance server. Check your network and the server URL in the --server-url flag."
        );
    }

    #[test]
    fn forbidden_advice_points_at_membership() {
        let a = advise(&status(403, "Not a member"), &verify("/c/credentials.json"));
        assert_eq!(
            a.text,
            "Could not verify your session: 403 Forbidden: Not a member.\n\
             → Your account is not allowed to use this server. Check your membership with its administrator, then run `appliance login --server-url=http://a.example:8080`."
        );
        assert_eq!(a.exit_code(), 4);
    }

    #[test]
    fn network_advice_points_at_the_credentials_file() {
        let a = advise(
            &transport("connection refused"),
            &verify("/c/credentials.json"),
        );
        assert_eq!(
            a.text,
            "Could not verify your session: connection refused (http://a.example:8080).\n\
             → Could not reach the appliance server. Check your network and the server URL in /c/credentials.json."
        );
        assert_eq!(a.exit_code(), 5);
    }

    #[test]
    fn server_error_advice_says_retry() {
        let a = advise(&status(502, ""), &verify("/c/credentials.json"));
        assert_eq!(
            a.text,
            "Could not verify your session: 502 Bad Gateway.\n\
             → The appliance server returned an error; retry shortly."
        );
        assert_eq!(a.exit_code(), 6);
    }

    #[test]
    fn other_errors_get_the_raw_error_alone() {
        let a = advise(
            &status(429, "Too many attempts; retry in 30 seconds."),
            &verify("/c/credentials.json"),
        );
        assert_eq!(
            a.text,
            "Could not verify your session: 429 Too Many Requests: Too many attempts; retry in 30 seconds."
        );
        assert!(!a.text.contains('→'));
        assert_eq!(a.exit_code(), 1);
    }

    #[test]
    fn text_only_errors_get_the_advice_of_their_class() {
        let a = advise(&transport("server said: unauthorized"), &verify("/c/x"));
        assert!(
            a.text.contains("→ Session token may be expired."),
            "{}",
            a.text
        );
        let a = advise(
            &transport("proxy: 500 internal server error"),
            &verify("/c/x"),
        );
        assert!(a
            .text
            .ends_with("→ The appliance server returned an error; retry shortly."));
    }
}
