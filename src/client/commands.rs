//! The client commands of the CLI: healthcheck, login, logout, whoami, token, agent.
//!
//! Each returns the process exit code; failures are explained on stderr, tokens never
//! printed.

use serde_json::{json, Value};

use super::advice::{advise, Attempt, Context, Failure};
use super::credentials::{Credentials, LoadError, Store};
use super::http::{parse_server_urls, Answer, Client};
use crate::admin::read_secret;
use crate::cli::{AgentArgs, HealthcheckArgs, LoginArgs};
use crate::error::exit;

/// A failed command: its exit code and what to print on stderr.
struct Exit(u8, String);

type Outcome = Result<(), Exit>;

fn finish(outcome: Outcome) -> u8 {
    match outcome {
        Ok(()) => exit::OK,
        Err(Exit(code, message)) => {
            eprintln!("{message}");
            code
        }
    }
}

/// The contract's advice for a failed request, as an `Exit`.
fn advised(failure: &Failure, ctx: &Context<'_>) -> Exit {
    let advice = advise(failure, ctx);
    Exit(advice.exit_code(), advice.text)
}

fn is_pat(token: &str) -> bool {
    token.starts_with("apt_")
}

/// Failures while using the stored credentials read like whoami's.
fn verify_context<'a>(token: &str, credentials_path: &'a str) -> Context<'a> {
    Context {
        attempt: Attempt::Verify,
        pat: is_pat(token),
        urls_from: credentials_path,
    }
}

fn store() -> Result<Store, Exit> {
    Store::from_env().map_err(|e| Exit(exit::USAGE, e))
}

fn load(store: &Store) -> Result<Credentials, Exit> {
    store.load().map_err(|e| Exit(e.exit_code(), e.to_string()))
}

fn text_field(answer: &Value, name: &str) -> Option<String> {
    answer.get(name).and_then(Value::as_str).map(str::to_string)
}

pub fn healthcheck(args: &HealthcheckArgs) -> u8 {
    let base = match &args.url {
        // One URL, explained like login's --server-url when it is not one.
        Some(url) => match parse_server_urls(url) {
            Ok(mut urls) if urls.len() == 1 => urls.remove(0),
            Ok(_) => return finish(Err(Exit(exit::REFUSED, "--url takes one URL.".into()))),
            Err(e) => return finish(Err(Exit(exit::REFUSED, e))),
        },
        None => format!("http://{}", local_address(&args.listen)),
    };
    finish(
        match Client::new(vec![base.clone()]).send("GET", "/healthz", None, None) {
            Ok(a) if a.status == 200 => Ok(()),
            Ok(a) => Err(Exit(
                exit::REFUSED,
                format!("{base}/healthz answered {} instead of 200.", a.status),
            )),
            Err(f) => Err(Exit(
                exit::REFUSED,
                format!("{base}/healthz is not healthy: {}.", f.raw()),
            )),
        },
    )
}

/// The address to reach a server listening on `listen`: a wildcard address is reached
/// on loopback.
fn local_address(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_string()
    }
}

pub fn login(args: &LoginArgs) -> u8 {
    finish(login_inner(args))
}

/// Login failures: where they point the user for the server URL.
fn login_context(pat: bool) -> Context<'static> {
    Context {
        attempt: Attempt::Login,
        pat,
        urls_from: "the --server-url flag",
    }
}

fn login_inner(args: &LoginArgs) -> Outcome {
    let urls = parse_server_urls(&args.server_url).map_err(|e| Exit(exit::USAGE, e))?;
    let store = store()?;
    let client = Client::new(urls.clone());
    let (answer, username, token) = match &args.username {
        Some(username) if !args.token_stdin => password_login(&client, username, args)?,
        _ => token_login(&client)?,
    };
    store
        .save(&Credentials {
            server_urls: urls,
            username: username.clone(),
            token,
        })
        .map_err(|e| Exit(exit::REFUSED, e))?;
    println!(
        "Logged in to {} as {}.",
        answer.url,
        crate::text::escape(&username)
    );
    Ok(())
}

/// POST /api/login; returns the answer, the username and the new session token.
fn password_login(
    client: &Client,
    username: &str,
    args: &LoginArgs,
) -> Result<(Answer, String, String), Exit> {
    let password =
        read_secret(args.password_stdin, "Password: ").map_err(|e| Exit(exit::USAGE, e))?;
    // An empty password cannot be right; sending it would only count as a failed login.
    if password.is_empty() {
        return Err(Exit(
            exit::USAGE,
            "No password was given: type it at the prompt, or pass one line on standard input with --password-stdin.".to_string(),
        ));
    }
    let body = json!({"username": username, "password": password});
    let answer = client
        .send("POST", "/api/login", None, Some(&body))
        .map_err(|f| login_refused(&f).unwrap_or_else(|| advised(&f, &login_context(false))))?;
    let token = text_field(&answer.json, "token")
        .ok_or_else(|| not_appliance(Attempt::Login, &answer.url))?;
    let name = answer
        .json
        .pointer("/user/username")
        .and_then(Value::as_str)
        .unwrap_or(username)
        .to_string();
    Ok((answer, name, token))
}

/// A token from stdin, checked with GET /api/userinfo before anything is stored.
fn token_login(client: &Client) -> Result<(Answer, String, String), Exit> {
    let token = read_secret(false, "Token: ").map_err(|e| Exit(exit::USAGE, e))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(Exit(
            exit::USAGE,
            "No token was given on standard input.".to_string(),
        ));
    }
    let answer = client
        .send("GET", "/api/userinfo", Some(&token), None)
        .map_err(|f| advised(&f, &login_context(is_pat(&token))))?;
    let name = text_field(&answer.json, "username")
        .ok_or_else(|| not_appliance(Attempt::Login, &answer.url))?;
    Ok((answer, name, token))
}

/// A wrong password is not an expired session: say so instead of the session advice.
fn login_refused(f: &Failure) -> Option<Exit> {
    match f {
        Failure::Status {
            status: 401,
            code: Some(code),
            ..
        } if code == "invalid_credentials" => Some(Exit(
            exit::AUTH,
            format!("Could not log in: {}.", f.raw().trim_end_matches('.')),
        )),
        _ => None,
    }
}

fn not_appliance(attempt: Attempt, url: &str) -> Exit {
    let doing = match attempt {
        Attempt::Verify => "Could not verify your session",
        Attempt::Login => "Could not log in",
    };
    Exit(
        exit::REFUSED,
        format!("{doing}: {url} answered, but not like an appliance server; check the URL."),
    )
}

pub fn whoami() -> u8 {
    finish(whoami_inner())
}

fn whoami_inner() -> Outcome {
    let store = store()?;
    let creds = load(&store)?;
    let path = store.path().display().to_string();
    let answer = Client::new(creds.server_urls.clone())
        .send("GET", "/api/userinfo", Some(&creds.token), None)
        .map_err(|f| advised(&f, &verify_context(&creds.token, &path)))?;
    let username = text_field(&answer.json, "username")
        .ok_or_else(|| not_appliance(Attempt::Verify, &answer.url))?;
    println!(
        "Logged in to {} as {}.",
        answer.url,
        crate::text::escape(&username)
    );
    Ok(())
}

/// `appliance token`: a fresh signed access token for the stored credentials (RFC 8693
/// token exchange), alone on its line.
pub fn token() -> u8 {
    finish(token_inner())
}

const GRANT_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

fn token_inner() -> Outcome {
    let store = store()?;
    let creds = load(&store)?;
    let path = store.path().display().to_string();
    let ctx = verify_context(&creds.token, &path);
    let client = Client::new(creds.server_urls.clone());
    let exchanged = client.post_form(
        "/oauth/token",
        &[
            ("grant_type", GRANT_EXCHANGE),
            ("subject_token", &creds.token),
            ("subject_token_type", TOKEN_TYPE_ACCESS),
        ],
    );
    let answer = match exchanged {
        Ok(a) => a,
        // The stored token is not live: ask userinfo why, so the failure reads (and
        // exits) exactly as whoami's would.
        Err(f @ Failure::Status { status: 400, .. }) => {
            return Err(
                match client.send("GET", "/api/userinfo", Some(&creds.token), None) {
                    Err(why) => advised(&why, &ctx),
                    Ok(_) => advised(&f, &ctx),
                },
            )
        }
        Err(f) => return Err(advised(&f, &ctx)),
    };
    let token = text_field(&answer.json, "access_token")
        .ok_or_else(|| not_appliance(Attempt::Verify, &answer.url))?;
    println!("{token}");
    Ok(())
}

pub fn logout() -> u8 {
    finish(logout_inner())
}

fn logout_inner() -> Outcome {
    let store = store()?;
    match store.load() {
        Ok(creds) => {
            let client = Client::new(creds.server_urls.clone());
            match client.send("POST", "/api/logout", Some(&creds.token), None) {
                Ok(_) => {}
                // Already unusable on the server: nothing left to revoke.
                Err(Failure::Status { status: 401, .. }) => {}
                Err(f) => eprintln!(
                    "Could not revoke the token on the server ({}); it stays valid there until it expires.",
                    f.raw()
                ),
            }
        }
        Err(LoadError::Missing(_)) => {}
        Err(LoadError::Invalid(path, why)) => eprintln!(
            "The credentials at {} cannot be used ({why}); removing them without revoking anything on the server.",
            path.display()
        ),
    }
    if store.remove().map_err(|e| Exit(exit::REFUSED, e))? {
        println!("Logged out.");
    } else {
        println!("Not logged in: there were no stored credentials.");
    }
    Ok(())
}

pub fn agent(args: &AgentArgs) -> u8 {
    super::agent::run(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_on_loopback() {
        assert_eq!(local_address("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(local_address("[::]:80"), "[::1]:80");
        assert_eq!(local_address("10.0.0.2:8080"), "10.0.0.2:8080");
    }
}
