//! Raw flags and environment strings become a validated `Config`, once, at start.
//!
//! Nothing else in the program parses a flag: durations are milliseconds here.

use std::net::IpAddr;

use crate::app::DAY_MS;
use crate::cli::ServeArgs;

/// The longest duration any setting accepts (100 years): keeps every sum of instants
/// far from i64 overflow.
const MAX_DURATION_MS: i64 = 36_500 * DAY_MS;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub db: String,
    pub db_pool_size: u32,
    pub session_window_ms: i64,
    pub session_lifetime_ms: i64,
    pub pat_lifetime_ms: i64,
    pub pat_renew_threshold_ms: i64,
    pub body_limit: u64,
    pub login_max_failures_user: u32,
    pub login_max_failures_addr: u32,
    pub trusted_proxies: Vec<Cidr>,
    pub max_connections: usize,
    pub login_workers: usize,
    /// Logins that may wait for a hashing thread; more get 429.
    pub login_queue: usize,
    pub purge_after_ms: i64,
    pub client_timeout_ms: i64,
    pub insecure_cookies: bool,
    pub cookie_domain: Option<String>,
    pub log_format: crate::http::log::Format,
    pub access_token_lifetime_ms: i64,
    /// The `iss` of access tokens. Without `--issuer`, `http://` + `--listen`, which
    /// `serve` replaces with the bound address once it knows the real port.
    pub issuer: String,
    pub issuer_given: bool,
}

impl Config {
    /// The write of a sliding session may be skipped while the stored expiry is behind
    /// its target by less than this: 1% of the window, at most 60 s.
    pub fn slide_slack_ms(&self) -> i64 {
        (self.session_window_ms / 100).min(60_000)
    }

    pub fn from_args(a: &ServeArgs) -> Result<Config, String> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let login_workers = match &a.login_workers {
            Some(s) => count_flag("--login-workers", s, 1, 256)? as usize,
            None => cores.saturating_sub(1).max(1),
        };
        // Logins waiting for a hashing thread are bounded; past the queue they get 429.
        // (Each waits on its own connection's thread, so validation is never behind
        // them.)
        let login_queue = (8 * login_workers).max(16);
        // --workers no longer sizes anything (each connection's thread answers its own
        // requests; --db-pool-size sizes the pool); it is still accepted and checked, so
        // existing command lines keep working.
        if let Some(s) = &a.workers {
            count_flag("--workers", s, 1, 4096)?;
        }
        let config = Config {
            listen: listen_flag(&a.listen)?,
            db: a.db.db.clone(),
            db_pool_size: count_flag("--db-pool-size", &a.db_pool_size, 1, 1024)? as u32,
            session_window_ms: duration_flag("--session-window", &a.session_window)?,
            session_lifetime_ms: duration_flag("--session-lifetime", &a.session_lifetime)?,
            pat_lifetime_ms: duration_flag("--pat-lifetime", &a.pat_lifetime)?,
            pat_renew_threshold_ms: duration_flag("--pat-renew-threshold", &a.pat_renew_threshold)?,
            body_limit: count_flag("--body-limit", &a.body_limit, 1, 1 << 30)?,
            login_max_failures_user: count_flag(
                "--login-max-failures-user",
                &a.login_max_failures_user,
                1,
                1_000_000,
            )? as u32,
            login_max_failures_addr: count_flag(
                "--login-max-failures-addr",
                &a.login_max_failures_addr,
                1,
                1_000_000,
            )? as u32,
            trusted_proxies: parse_cidrs(&a.trusted_proxies)?,
            max_connections: count_flag("--max-connections", &a.max_connections, 1, 1 << 20)?
                as usize,
            login_workers,
            login_queue,
            purge_after_ms: duration_flag("--purge-after", &a.purge_after)?,
            client_timeout_ms: duration_flag("--client-timeout", &a.client_timeout)?,
            insecure_cookies: a.insecure_cookies,
            cookie_domain: match &a.cookie_domain {
                Some(d) => Some(cookie_domain_flag(d)?),
                None => None,
            },
            log_format: a.log_format,
            access_token_lifetime_ms: duration_flag(
                "--access-token-lifetime",
                &a.access_token_lifetime,
            )?,
            issuer: match &a.issuer {
                Some(i) => issuer_flag(i)?,
                None => format!("http://{}", a.listen),
            },
            issuer_given: a.issuer.is_some(),
        };
        if !(MIN_ACCESS_TOKEN_MS..=MAX_ACCESS_TOKEN_MS).contains(&config.access_token_lifetime_ms) {
            return Err(format!(
                "--access-token-lifetime: '{}' is out of range; it must be from 1m to 24h.",
                a.access_token_lifetime
            ));
        }
        if config.pat_lifetime_ms <= config.pat_renew_threshold_ms {
            return Err(format!(
                "--pat-lifetime ({}) must be longer than --pat-renew-threshold ({}), or a renewed token would be due again at once.",
                a.pat_lifetime, a.pat_renew_threshold
            ));
        }
        Ok(config)
    }
}

/// Parses `90s`, `10m`, `12h`, `30d`: a positive whole number and one unit, into ms.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let (digits, unit) = s.split_at(s.len().saturating_sub(1));
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => {
            return Err(format!(
                "'{s}' is not a duration: write a whole number and one unit, such as 90s, 10m, 12h or 30d"
            ))
        }
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{s}' is not a duration: write a whole number and one unit, such as 90s, 10m, 12h or 30d"
        ));
    }
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is out of range (at most 36500d)"))?;
    if n == 0 {
        return Err(format!("'{s}' is zero; a duration must be positive"));
    }
    match n.checked_mul(unit_ms) {
        Some(ms) if ms <= MAX_DURATION_MS => Ok(ms),
        _ => Err(format!("'{s}' is out of range (at most 36500d)")),
    }
}

/// A host name for the cookie's `Domain=` (a leading dot is dropped): labels of
/// `a-z 0-9 -`, no port, no scheme, nothing that could add a cookie attribute.
fn cookie_domain_flag(value: &str) -> Result<String, String> {
    let d = value
        .strip_prefix('.')
        .unwrap_or(value)
        .to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if d.len() <= 253 && d.split('.').all(label_ok) {
        Ok(d)
    } else {
        Err(format!("--cookie-domain: '{value}' is not a domain name such as example.com (no scheme, port or path)."))
    }
}

/// Bounds of `--access-token-lifetime`: a signed token cannot be revoked before it
/// expires, except by break-glass, so it must stay short.
const MIN_ACCESS_TOKEN_MS: i64 = 60_000;
const MAX_ACCESS_TOKEN_MS: i64 = DAY_MS;

/// An `http://` or `https://` URL with a host and no query or fragment; a trailing
/// slash is dropped so that `iss` compares exactly.
fn issuer_flag(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(r)
            if !r.is_empty()
                && !r.starts_with('/')
                && !r.contains(['?', '#', ' '])
                && value.len() <= 2048 =>
        {
            Ok(value.trim_end_matches('/').to_string())
        }
        _ => Err(format!(
            "--issuer: '{value}' is not a URL such as https://auth.example.com."
        )),
    }
}

/// `HOST:PORT` that resolves (a name such as `localhost:8080` is fine).
fn listen_flag(value: &str) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    match value.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => Ok(value.to_string()),
        _ => Err(format!(
            "--listen: '{value}' is not an address to listen on; write HOST:PORT, such as 127.0.0.1:8080 or 0.0.0.0:8080."
        )),
    }
}

fn duration_flag(flag: &str, value: &str) -> Result<i64, String> {
    parse_duration(value).map_err(|e| format!("{flag}: {e}."))
}

fn count_flag(flag: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag}: '{value}' is not a whole number from {min} to {max}."
        )),
    }
}

/// One trusted-proxy entry: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses one entry; panics on a malformed one (tests only).
    #[cfg(test)]
    pub fn parse_one(s: &str) -> Cidr {
        parse_cidrs(s).unwrap()[0]
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) compare as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_cidrs(list: &str) -> Result<Vec<Cidr>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let bad = || format!("--trusted-proxies: '{item}' is not an IP address or CIDR (such as 10.0.0.0/8).");
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (item, None),
            };
            let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
                None => max,
            };
            Ok(Cidr { addr, prefix })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_unit_and_a_positive_whole_number() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("12h"), Ok(43_200_000));
        assert_eq!(parse_duration("30d"), Ok(30 * DAY_MS));
        for bad in [
            "",
            "0s",
            "s",
            "10",
            "1.5h",
            "-3d",
            "3 d",
            "3dd",
            "10w",
            "99999999999999999999d",
            "36501d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cidrs_match_their_range_only() {
        let c = parse_cidrs("10.0.0.0/8, 192.168.1.7,::1").unwrap();
        assert!(c[0].contains("10.200.3.4".parse().unwrap()));
        assert!(!c[0].contains("11.0.0.1".parse().unwrap()));
        assert!(c[1].contains("192.168.1.7".parse().unwrap()));
        assert!(!c[1].contains("192.168.1.8".parse().unwrap()));
        assert!(c[2].contains("::1".parse().unwrap()));
        assert!(c[0].contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(parse_cidrs("10.0.0.0/33").is_err());
        assert!(parse_cidrs("nonsense").is_err());
        assert!(parse_cidrs("").unwrap().is_empty());
    }

    fn config(flags: &[&str]) -> Result<Config, String> {
        use clap::Parser;
        let mut argv = vec!["appliance", "serve"];
        argv.extend_from_slice(flags);
        let crate::cli::Command::Serve(args) = crate::cli::Cli::parse_from(argv).command else {
            unreachable!()
        };
        Config::from_args(&args)
    }

    #[test]
    fn access_token_lifetime_is_one_minute_to_a_day() {
        assert_eq!(config(&[]).unwrap().access_token_lifetime_ms, 3_600_000);
        for ok in ["1m", "60s", "24h", "1d"] {
            assert!(config(&["--access-token-lifetime", ok]).is_ok(), "{ok}");
        }
        for bad in ["59s", "25h", "2d", "0m", "1"] {
            let err = config(&["--access-token-lifetime", bad]).unwrap_err();
            assert!(err.contains("--access-token-lifetime"), "{err}");
        }
    }

    #[test]
    fn the_issuer_is_a_url_compared_without_its_trailing_slash() {
        let c = config(&["--listen", "127.0.0.1:9999"]).unwrap();
        assert_eq!(
            (c.issuer.as_str(), c.issuer_given),
            ("http://127.0.0.1:9999", false)
        );
        let c = config(&["--issuer", "https://auth.example.com/"]).unwrap();
        assert_eq!(
            (c.issuer.as_str(), c.issuer_given),
            ("https://auth.example.com", true)
        );
        for bad in [
            "auth.example.com",
            "ftp://x",
            "https://",
            "https://a.b/?q=1",
            "http:///x",
        ] {
            assert!(config(&["--issuer", bad]).is_err(), "{bad}");
        }
    }
}
