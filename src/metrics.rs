//! Counters and a latency histogram, rendered as Prometheus text by `GET /metrics`.
//!
//! Everything is a relaxed atomic: a request adds to a few counters and never waits.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::http::Endpoint;

const CLASSES: &[&str] = &["2xx", "3xx", "4xx", "5xx"];
/// Requests the HTTP layer refused itself, by kind (the `kind` label).
pub const REFUSALS: &[&str] = &[
    "bad_framing",
    "timeout",
    "payload_too_large",
    "uri_too_long",
    "expectation_failed",
    "header_fields_too_large",
    "version_not_supported",
];
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; 4]; Endpoint::ALL.len()],
    latency_buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// The same histogram for `validate` alone, the endpoint proxies call all day.
    validate_buckets: [AtomicU64; 12],
    validate_count: AtomicU64,
    validate_sum_us: AtomicU64,
    /// Logins waiting for or being hashed by the password pool right now (a gauge).
    pub login_queue_depth: AtomicU64,
    pub session_extensions_written: AtomicU64,
    pub session_extensions_skipped: AtomicU64,
    pub pat_renewed: AtomicU64,
    pub access_tokens_issued: AtomicU64,
    pub pat_renew_not_due: AtomicU64,
    pub revocations: AtomicU64,
    pub session_version_bumps: AtomicU64,
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub login_throttled: AtomicU64,
    pub login_pool_rejected: AtomicU64,
    pub purged_tokens: AtomicU64,
    /// Client connections open right now (a gauge).
    pub open_connections: AtomicU64,
    /// Indexed like `REFUSALS`.
    pub refusals: [AtomicU64; 7],
}

impl Metrics {
    pub fn observe(&self, endpoint: Endpoint, status: u16, micros: u64) {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        if let Some(row) = self.requests.get(endpoint as usize) {
            row[class].fetch_add(1, Relaxed);
        }
        let secs = micros as f64 / 1e6;
        let bucket = BUCKETS.iter().position(|b| secs <= *b);
        if let Some(i) = bucket {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(micros, Relaxed);
        if endpoint == Endpoint::Validate {
            if let Some(i) = bucket {
                self.validate_buckets[i].fetch_add(1, Relaxed);
            }
            self.validate_count.fetch_add(1, Relaxed);
            self.validate_sum_us.fetch_add(micros, Relaxed);
        }
    }

    /// Prometheus text exposition; `live` is (sessions, PATs) counted by the caller.
    pub fn render(&self, live: Option<(i64, i64)>) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP appliance_requests_total HTTP requests by endpoint and status class."
        );
        let _ = writeln!(out, "# TYPE appliance_requests_total counter");
        for (e, row) in Endpoint::ALL
            .iter()
            .map(|e| e.name())
            .zip(self.requests.iter())
        {
            for (c, n) in CLASSES.iter().zip(row.iter()) {
                let _ = writeln!(
                    out,
                    "appliance_requests_total{{endpoint=\"{e}\",status=\"{c}\"}} {}",
                    n.load(Relaxed)
                );
            }
        }
        histogram(
            &mut out,
            "appliance_request_duration_seconds",
            "Time to answer a request.",
            &self.latency_buckets,
            &self.latency_count,
            &self.latency_sum_us,
        );
        histogram(
            &mut out,
            "appliance_validate_duration_seconds",
            "Time to answer GET /api/validate.",
            &self.validate_buckets,
            &self.validate_count,
            &self.validate_sum_us,
        );
        let _ = writeln!(
            out,
            "# HELP appliance_login_queue_depth Logins waiting for or in password hashing.\n# TYPE appliance_login_queue_depth gauge\nappliance_login_queue_depth {}",
            self.login_queue_depth.load(Relaxed)
        );
        let counters: [(&str, &str, &AtomicU64); 12] = [
            (
                "appliance_session_extensions_written_total",
                "Sliding-window writes of a session's expiry.",
                &self.session_extensions_written,
            ),
            (
                "appliance_session_extensions_skipped_total",
                "Sliding-window writes skipped because the stored expiry was close enough.",
                &self.session_extensions_skipped,
            ),
            (
                "appliance_pat_renewals_total",
                "PAT renewals that extended the token.",
                &self.pat_renewed,
            ),
            (
                "appliance_access_tokens_issued_total",
                "Signed access tokens issued (token exchange, password and refresh grants).",
                &self.access_tokens_issued,
            ),
            (
                "appliance_pat_renewals_not_due_total",
                "PAT renew calls that were not due.",
                &self.pat_renew_not_due,
            ),
            (
                "appliance_revocations_total",
                "Tokens revoked (logout, DELETE, /oauth/revoke).",
                &self.revocations,
            ),
            (
                "appliance_session_version_bumps_total",
                "Break-glass revocations through the API.",
                &self.session_version_bumps,
            ),
            ("appliance_logins_total", "Successful logins.", &self.logins),
            (
                "appliance_login_failures_total",
                "Failed logins (wrong username or password).",
                &self.login_failures,
            ),
            (
                "appliance_login_throttled_total",
                "Login attempts refused by the failure limits.",
                &self.login_throttled,
            ),
            (
                "appliance_login_pool_rejected_total",
                "Logins refused because the password-hashing queue was full.",
                &self.login_pool_rejected,
            ),
            (
                "appliance_purged_tokens_total",
                "Rows of expired or revoked tokens deleted by the purge.",
                &self.purged_tokens,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP appliance_open_connections Client connections open now.\n# TYPE appliance_open_connections gauge\nappliance_open_connections {}",
            self.open_connections.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP appliance_http_refusals_total Requests refused by the HTTP layer before routing, by kind.\n# TYPE appliance_http_refusals_total counter"
        );
        for (kind, n) in REFUSALS.iter().zip(self.refusals.iter()) {
            let _ = writeln!(
                out,
                "appliance_http_refusals_total{{kind=\"{kind}\"}} {}",
                n.load(Relaxed)
            );
        }
        if let Some((sessions, pats)) = live {
            let _ = writeln!(out, "# HELP appliance_live_tokens Unexpired, unrevoked tokens.\n# TYPE appliance_live_tokens gauge");
            let _ = writeln!(out, "appliance_live_tokens{{kind=\"session\"}} {sessions}");
            let _ = writeln!(out, "appliance_live_tokens{{kind=\"pat\"}} {pats}");
        }
        out
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    buckets: &[AtomicU64; 12],
    count: &AtomicU64,
    sum_us: &AtomicU64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (b, n) in BUCKETS.iter().zip(buckets.iter()) {
        cumulative += n.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
    }
    let count = count.load(Relaxed);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", sum_us.load(Relaxed) as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_endpoint_and_class() {
        let m = Metrics::default();
        m.observe(Endpoint::Validate, 200, 300);
        m.observe(Endpoint::Validate, 401, 2_000_000);
        let text = m.render(Some((3, 1)));
        assert!(text.contains("appliance_requests_total{endpoint=\"validate\",status=\"2xx\"} 1"));
        assert!(text.contains("appliance_requests_total{endpoint=\"validate\",status=\"4xx\"} 1"));
        assert!(text.contains("appliance_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("appliance_request_duration_seconds_count 2"));
        assert!(text.contains("appliance_live_tokens{kind=\"session\"} 3"));
        m.observe(Endpoint::Healthz, 200, 300);
        let text = m.render(None);
        assert!(text.contains("appliance_request_duration_seconds_count 3"));
        assert!(text.contains("appliance_validate_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("appliance_validate_duration_seconds_count 2"));
        assert!(text.contains("appliance_login_queue_depth 0"));
    }
}
