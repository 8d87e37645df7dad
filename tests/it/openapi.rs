//! GET /openapi.json stays true: it names exactly the routes of `src/http/routes.rs`,
//! and every operation it documents answers with a documented status and media type.
//! (`.ci/schemathesis.sh` fuzzes the shapes.)

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::*;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// (method, path) of every row of the routing table, read from its source. An `Any`
/// method (validate) stands for every method in `METHODS`.
fn routed() -> BTreeSet<(String, String)> {
    let source = include_str!("../../src/http/routes.rs");
    let mut routes = BTreeSet::new();
    for line in source.lines().map(str::trim) {
        let Some(row) = line.strip_prefix("r(") else {
            continue;
        };
        let Some((method, rest)) = row.split_once(',') else {
            continue;
        };
        let Some(inner) = rest
            .split_once("&[")
            .and_then(|(_, p)| p.split_once(']'))
            .map(|(p, _)| p)
        else {
            continue;
        };
        let methods: Vec<String> = match method.trim() {
            "Any" => METHODS.iter().map(|m| m.to_string()).collect(),
            m => vec![m.to_ascii_lowercase()],
        };
        let path: Vec<String> = inner
            .split(',')
            .map(str::trim)
            .map(|s| match s.strip_prefix('"') {
                Some(lit) => lit.trim_end_matches('"').to_string(),
                None => "{id}".to_string(),
            })
            .collect();
        for m in &methods {
            routes.insert((m.clone(), format!("/{}", path.join("/"))));
        }
    }
    routes
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.clone(), path.clone()));
        }
    }
    ops
}

fn fetch_doc(s: &Server) -> Value {
    let r = get(&s.url("/openapi.json"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    r.json
}

#[test]
fn openapi_document_names_exactly_the_routed_endpoints() {
    let s = Server::start(&[]);
    let doc = fetch_doc(&s);
    assert_eq!(doc["openapi"], "3.1.0");
    let routed = routed();
    assert!(routed.len() > 20, "routes.rs parse found only {routed:?}");
    assert_eq!(documented(&doc), routed);
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let s = Server::start(&[]);
    let doc = fetch_doc(&s);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = s.url(&path.replace("{id}", "tok_nope"));
        for (method, op) in item.as_object().unwrap() {
            let content = op["requestBody"]["content"].as_object();
            let (ctype, body): (&str, &[u8]) = match content.map(|c| c.keys().next().unwrap()) {
                Some(t) if t == "application/json" => (t, b"{}"),
                Some(t) => (t, b"token=x"),
                None => ("text/plain", b""),
            };
            let r = request(
                &method.to_uppercase(),
                &url,
                &[("Content-Type", ctype)],
                body,
            );
            let status = r.status.to_string();
            let documented = &op["responses"][&status];
            assert!(
                !documented.is_null(),
                "{method} {path} answered undocumented {status}: {}",
                r.text
            );
            let documented = match documented["$ref"].as_str() {
                Some(reference) => {
                    let name = reference.rsplit('/').next().unwrap();
                    &doc["components"]["responses"][name]
                }
                None => documented,
            };
            if let Some(types) = documented["content"].as_object() {
                let got = r.header("Content-Type").unwrap_or("");
                assert!(
                    types.keys().any(|t| got.starts_with(t.as_str())),
                    "{method} {path} {status}: {got} not in {types:?}"
                );
            }
        }
    }
}

#[test]
fn other_methods_get_405_with_the_documented_methods_in_allow() {
    let s = Server::start(&[]);
    let doc = fetch_doc(&s);
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/api/validate" {
            continue; // any method
        }
        let mut methods: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        if methods.iter().any(|m| m == "GET") {
            methods.push("HEAD".into());
        }
        methods.sort();
        let r = request("TRACE", &s.url(&path.replace("{id}", "x")), &[], b"");
        if ["/login", "/logout", "/"].contains(&path.as_str()) {
            assert_eq!(r.status, 405, "{path}");
            assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        } else {
            assert_error(&r, 405, "method_not_allowed");
        }
        let mut allow: Vec<&str> = r.header("Allow").unwrap().split(", ").collect();
        allow.sort_unstable();
        assert_eq!(allow, methods, "{path}");
    }
    assert_error(&get(&s.url("/nope"), None), 404, "not_found");
    assert_eq!(request("HEAD", &s.url("/healthz"), &[], b"").status, 200);
}

#[test]
fn server_keeps_accepting_after_an_idle_spell() {
    // The listener's socket timeout (the client timeout) also bounds accept(); a server
    // that saw no connection for that long used to stop accepting for good.
    let s = Server::start(&["--client-timeout", "1s"]);
    assert_eq!(get(&s.url("/healthz"), None).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(get(&s.url("/healthz"), None).status, 200);
}
