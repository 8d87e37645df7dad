//! `appliance agent`: keeps a stored PAT alive by renewing it at start and then every
//! `--interval`, until SIGTERM or SIGINT.
//!
//! It logs one line per attempt to stderr (`INFO`, `WARN`, `ERROR`) and never exits on
//! a server problem: a daemon that dies on a network blip lets its token expire.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::advice::{classify, Class};
use super::credentials::{Credentials, Store};
use super::http::Client;
use crate::cli::AgentArgs;
use crate::config::parse_duration;
use crate::error::exit;

/// First retry after a 5xx or network error; doubled on each further failure.
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// Retries never wait longer than this, even with a long `--interval`.
const MAX_RETRY: Duration = Duration::from_secs(3600);

pub fn run(args: &AgentArgs) -> u8 {
    let interval = match parse_duration(&args.interval) {
        Ok(ms) => Duration::from_millis(ms.unsigned_abs()),
        Err(e) => {
            eprintln!("--interval: {e}.");
            return exit::USAGE;
        }
    };
    let store = match Store::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ERROR {e}");
            return exit::USAGE;
        }
    };
    let mut creds = match load_pat(&store) {
        Ok(c) => c,
        Err((code, message)) => {
            eprintln!("ERROR {message}");
            return code;
        }
    };
    if args.once {
        return renew(&creds, None).exit_code();
    }
    let stop = match stop_signals() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("ERROR could not listen for SIGTERM/SIGINT: {e}");
            return exit::REFUSED;
        }
    };
    let mut failures: u32 = 0;
    loop {
        let retry = retry_delay(failures, interval);
        let wait = match renew(&creds, Some(retry)) {
            Outcome::Retry(_) => {
                failures = failures.saturating_add(1);
                retry
            }
            _ => {
                failures = 0;
                interval
            }
        };
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                eprintln!("INFO stopping");
                return exit::OK;
            }
        }
        // A PAT stored since (`appliance login --token-stdin`) is picked up without a
        // restart; a broken file does not stop the renewals of the one already held.
        match load_pat(&store) {
            Ok(fresh) => creds = fresh,
            Err((_, message)) => eprintln!("WARN {message} Renewing the token loaded before."),
        }
    }
}

/// The stored credentials, when they hold a PAT; else the exit code and why.
fn load_pat(store: &Store) -> Result<Credentials, (u8, String)> {
    let creds = store.load().map_err(|e| (e.exit_code(), e.to_string()))?;
    if !creds.token.starts_with("apt_") {
        return Err((
            exit::REFUSED,
            format!(
                "The agent needs a personal access token (apt_…), but the stored token is not one; store a PAT with `appliance login --server-url={} --token-stdin`.",
                creds.server_urls.join(",")
            ),
        ));
    }
    Ok(creds)
}

/// What one renewal attempt means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// The token is no longer accepted; only a new login helps.
    Refused(Class),
    /// A 5xx or network error: try again soon.
    Retry(Class),
}

impl Outcome {
    fn exit_code(self) -> u8 {
        match self {
            Outcome::Done => exit::OK,
            Outcome::Refused(class) | Outcome::Retry(class) => class.exit_code(),
        }
    }
}

/// One renewal; logs its one line (saying when it retries, if it will).
fn renew(creds: &Credentials, retry_in: Option<Duration>) -> Outcome {
    let retrying = retry_in.map_or(String::new(), |d| format!("; retrying in {}s", d.as_secs()));
    let client = Client::new(creds.server_urls.clone());
    match client.send(
        "POST",
        "/api/tokens/current/renew",
        Some(&creds.token),
        None,
    ) {
        Ok(answer) => {
            let (Some(renewed), Some(expires_at)) = (
                answer.json["renewed"].as_bool(),
                answer.json["expires_at"].as_str(),
            ) else {
                // A proxy or another service answering 200: nothing was renewed.
                eprintln!(
                    "WARN renewal failed: {} answered without a renewal result{retrying}",
                    answer.url
                );
                return Outcome::Retry(Class::Other);
            };
            match (renewed, expires_at) {
                (true, _) => eprintln!("INFO renewed, expires_at={expires_at}"),
                (false, "") => eprintln!("INFO not due, the token never expires"),
                (false, _) => eprintln!("INFO not due, expires_at={expires_at}"),
            }
            Outcome::Done
        }
        Err(failure) => {
            let class = classify(&failure);
            let raw = failure.raw();
            match class {
                Class::Auth => eprintln!(
                    "WARN the token is revoked or expired ({} answered {raw}); store a new PAT with `appliance login --server-url={} --token-stdin`",
                    failure.url(),
                    creds.server_urls.join(",")
                ),
                Class::Network | Class::Server => {
                    eprintln!("WARN renewal failed: {raw}{retrying}")
                }
                Class::Forbidden | Class::Other => eprintln!("WARN renewal refused: {raw}"),
            }
            match class {
                Class::Network | Class::Server => Outcome::Retry(class),
                other => Outcome::Refused(other),
            }
        }
    }
}

/// Backoff after `failures` earlier failures in a row: 30 s, 60 s, ... capped at an
/// hour and never longer than the interval itself.
fn retry_delay(failures: u32, interval: Duration) -> Duration {
    let backoff = FIRST_RETRY.saturating_mul(1u32 << failures.min(16));
    backoff.min(MAX_RETRY).min(interval)
}

/// A channel that receives one message per SIGTERM/SIGINT.
fn stop_signals() -> std::io::Result<Receiver<()>> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_but_never_past_the_interval() {
        let day = Duration::from_secs(86_400);
        assert_eq!(retry_delay(0, day), Duration::from_secs(30));
        assert_eq!(retry_delay(1, day), Duration::from_secs(60));
        assert_eq!(retry_delay(30, day), MAX_RETRY);
        assert_eq!(
            retry_delay(0, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }
}
