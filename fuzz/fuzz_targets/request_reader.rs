//! The request reader of the per-connection server (vendor/tiny_http, appliance patch)
//! on arbitrary bytes: it must never panic, and never allocate beyond a few times its
//! limits (run with `-malloc_limit_mb`, see .ci/run).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiny_http::per_connection::{read_all, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        body_limit: 4096,
        ..Limits::default()
    };
    read_all(data, &limits);
});
