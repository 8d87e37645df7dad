//! A test that cannot run says so where a person sees it, and fails where everything
//! must run (`CI=true`). Checked by running this very test binary on the proxy tests
//! with their proxy made missing.

use std::process::Command;

use crate::support::*;

const PROXY_TESTS: &[(&str, &str)] = &[
    (
        "nginx::nginx_auth_request_guards_the_app_and_signs_browsers_in",
        "APPLIANCE_TEST_NGINX",
    ),
    (
        "caddy::caddy_forward_auth_guards_the_app_and_signs_browsers_in",
        "APPLIANCE_TEST_CADDY",
    ),
];

#[test]
fn a_proxy_test_without_its_proxy_is_reported_skipped_or_fails_under_ci() {
    let me = std::env::current_exe().unwrap();
    for (test, var) in PROXY_TESTS {
        let name = test.rsplit("::").next().unwrap();
        let harness = || {
            let mut cmd = Command::new(&me);
            cmd.args([test, "--exact"]).env(var, "/nonexistent/proxy");
            cmd
        };
        // Default harness options: the test's own output is captured, yet the skip shows.
        let out = harness().env_remove("CI").output().unwrap();
        assert!(out.status.success(), "{test}: {}", stdout(&out));
        assert!(stdout(&out).contains("1 passed"), "{}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("SKIPPED {name}: ")),
            "{test} skipped silently: stdout {} stderr {}",
            stdout(&out),
            stderr(&out)
        );
        let out = harness().env("CI", "true").output().unwrap();
        assert!(
            !out.status.success(),
            "{test} passed under CI=true without its proxy"
        );
        assert!(
            stdout(&out).contains("is not installed"),
            "{}",
            stdout(&out)
        );
    }
}
