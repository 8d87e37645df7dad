//! The README's proxy section shows the very configurations the proxy tests run.

#[test]
fn proxy_docs_show_the_tested_configs_verbatim() {
    let docs = include_str!("../../README.md");
    for (name, config) in [
        (
            "examples/nginx.conf",
            include_str!("../../examples/nginx.conf"),
        ),
        (
            "examples/Caddyfile",
            include_str!("../../examples/Caddyfile"),
        ),
        (
            "examples/traefik.yml",
            include_str!("../../examples/traefik.yml"),
        ),
    ] {
        assert!(
            docs.contains(config.trim_end()),
            "README.md does not show {name} verbatim"
        );
    }
}
