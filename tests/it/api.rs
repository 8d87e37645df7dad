//! The JSON API, endpoint by endpoint, against the real server.

use crate::support::*;

#[test]
fn login_then_validate_answers_who_the_token_is() {
    let s = Server::start(&[]);
    let id = s.add_user("alice");
    let token = s.login("alice");
    assert!(token.starts_with("aps_"));
    let r = get(&s.url("/api/validate"), Some(&token));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["sub"], id.as_str());
    assert_eq!(r.json["username"], "alice");
    assert_eq!(r.json["token_type"], "session");
    assert_eq!(r.header("X-Auth-User"), Some("alice"));
    assert_eq!(r.header("X-Auth-User-Id"), Some(id.as_str()));
    assert_eq!(r.header("X-Auth-Session-Version"), Some("1"));
}
