//! Handlers: parse the request's input, call the app, shape the JSON answer.
//! Status codes come from `Error` (error.rs) or are the contract's success codes.

use serde_json::{json, Map, Value};

use super::request::Req;
use super::response::{Body, Reply};
use crate::app::{self, App, Principal, Slide};
use crate::auth::token;
use crate::clock::rfc3339;
use crate::error::Error;

fn time_or_null(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// The JSON object of a request body, or 400.
fn json_object(req: &Req) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::InvalidRequest(
            "The request body must be a JSON object.".into(),
        )),
        Err(e) => Err(Error::InvalidRequest(format!(
            "The request body is not valid JSON: {e}."
        ))),
    }
}

fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, Error> {
    match body.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::InvalidRequest(format!(
            "Field '{name}' must be a string."
        ))),
        None => Err(Error::InvalidRequest(format!(
            "Field '{name}' is required."
        ))),
    }
}

fn authenticate(app: &App, req: &Req) -> Result<Principal, Error> {
    app.authenticate(req.bearer(false)?, Slide::Yes)
}

/// The userinfo/validate body, serialised straight from the record (no `Value` tree:
/// this is the answer proxies ask for on every request).
#[derive(serde::Serialize)]
struct UserInfo<'a> {
    sub: &'a str,
    username: &'a str,
    session_version: i64,
    token_type: &'static str,
    expires_at: Option<String>,
}

fn userinfo_body(p: &Principal) -> UserInfo<'_> {
    UserInfo {
        sub: &p.record.user_id,
        username: &p.record.username,
        session_version: p.record.user_version,
        token_type: p.kind().as_str(),
        expires_at: p.expires_at.map(rfc3339),
    }
}

pub fn login(app: &App, req: &Req) -> Result<Reply, Error> {
    let body = json_object(req)?;
    let username = string_field(&body, "username")?;
    let password = string_field(&body, "password")?;
    let (issued, user) = app.login(username, password, req.client)?;
    Ok(Reply::json(
        200,
        json!({
            "token": issued.token,
            "token_type": "Bearer",
            "expires_at": time_or_null(issued.expires_at),
            "user": { "id": user.id, "username": user.username },
        }),
    )
    .no_store())
}

pub fn logout(app: &App, req: &Req) -> Result<Reply, Error> {
    app.logout(req.bearer(false)?)?;
    Ok(Reply::empty(204))
}

pub fn userinfo(app: &App, req: &Req) -> Result<Reply, Error> {
    let caller = app.authenticate_any(req.bearer(true)?, Slide::Yes)?;
    Ok(Reply::json_of(200, &userinfo_body(&caller)))
}

pub fn validate(app: &App, req: &Req) -> Result<Reply, Error> {
    let caller = app.authenticate_any(req.bearer(true)?, Slide::Yes)?;
    Ok(Reply::json_of(200, &userinfo_body(&caller))
        .header("X-Auth-User", caller.record.username.clone())
        .header("X-Auth-User-Id", caller.record.user_id.clone())
        .header(
            "X-Auth-Session-Version",
            caller.record.user_version.to_string(),
        ))
}

pub fn create_token(app: &App, req: &Req) -> Result<Reply, Error> {
    let caller = authenticate(app, req)?;
    let body = json_object(req)?;
    let name = app::pat_name(string_field(&body, "name")?)
        .map_err(|e| Error::InvalidRequest(format!("Field 'name': {e}")))?;
    let expires_in_ms = match body.get("expires_in_days") {
        None => None,
        Some(Value::Null) => Some(None),
        // JSON has one number type: 30.0 is the integer 30 (as JSON Schema says).
        Some(v) => {
            let days = v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() <= app::PAT_MAX_DAYS as f64)
                    .map(|f| f as i64)
            });
            let lifetime = days
                .ok_or_else(String::new)
                .and_then(app::pat_lifetime_days);
            Some(Some(lifetime.map_err(|_| {
                Error::InvalidRequest(format!(
                    "Field 'expires_in_days' must be a whole number from 1 to {}, or null for no expiry.",
                    app::PAT_MAX_DAYS
                ))
            })?))
        }
    };
    let issued = app.create_pat(&caller, name, expires_in_ms)?;
    Ok(Reply::json(
        201,
        json!({ "id": issued.id, "name": name, "token": issued.token, "expires_at": time_or_null(issued.expires_at) }),
    )
    .no_store())
}

pub fn list_tokens(app: &App, req: &Req) -> Result<Reply, Error> {
    let caller = authenticate(app, req)?;
    let tokens: Vec<Value> = app
        .store
        .list_pats(&caller.record.user_id, app.now())?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "created_at": rfc3339(t.created_at),
                "expires_at": time_or_null(t.expires_at),
                "last_used_at": time_or_null(t.last_used_at),
            })
        })
        .collect();
    Ok(Reply::json(200, json!({ "tokens": tokens })))
}

pub fn delete_token(app: &App, req: &Req, id: &str) -> Result<Reply, Error> {
    let caller = authenticate(app, req)?;
    app.delete_pat(&caller, id)?;
    Ok(Reply::empty(204))
}

pub fn renew_token(app: &App, req: &Req) -> Result<Reply, Error> {
    let shape_error = || {
        Error::InvalidRequest(
            "Renew needs Authorization: Bearer apt_… (a personal access token).".into(),
        )
    };
    // `Bearer apt_…` is the shape; past it, a token that is not a live PAT (a prefix or
    // extension of one included) is a 401 like anywhere else.
    let presented = req
        .authorization
        .as_deref()
        .and_then(super::request::parse_bearer)
        .filter(|t| t.starts_with(token::PAT_PREFIX))
        .ok_or_else(shape_error)?;
    let caller = app.authenticate(presented, Slide::No)?;
    let (renewed, expires_at) = app.renew_pat(&caller)?;
    let expires_at = expires_at.map_or(String::new(), rfc3339);
    Ok(Reply::json(
        200,
        json!({ "renewed": renewed, "expires_at": expires_at }),
    ))
}

pub fn revoke_all(app: &App, req: &Req) -> Result<Reply, Error> {
    let caller = app.authenticate(req.bearer(false)?, Slide::No)?;
    let version = app.revoke_all(&caller)?;
    Ok(Reply::json(200, json!({ "session_version": version })))
}

fn form_token(req: &Req) -> Result<String, Error> {
    Req::form_field(&req.body, "token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::InvalidRequest("The form field 'token' is required.".into()))
}

/// RFC 7662. The caller proves itself with any live bearer token; the introspected
/// token is checked without sliding.
pub fn introspect(app: &App, req: &Req) -> Result<Reply, Error> {
    app.authenticate_any(req.bearer(false)?, Slide::Yes)?;
    let presented = form_token(req)?;
    let body = match app.inspect(&presented) {
        Ok(record) => {
            let mut body = json!({
                "active": true,
                "sub": record.user_id,
                "username": record.username,
                "token_type": record.kind.as_str(),
                "iat": record.created_at.div_euclid(1000),
            });
            if let Some(exp) = record.expires_at {
                body["exp"] = json!(exp.div_euclid(1000));
            }
            body
        }
        Err(Error::InvalidToken(_)) => json!({ "active": false }),
        Err(other) => return Err(other),
    };
    Ok(Reply::json(200, body).no_store())
}

/// RFC 7009: holding the token is the proof; 200 whether or not it existed.
pub fn oauth_revoke(app: &App, req: &Req) -> Result<Reply, Error> {
    app.revoke_presented(&form_token(req)?)?;
    Ok(Reply::empty(200))
}

pub fn openapi() -> Result<Reply, Error> {
    // Parsed and serialised once, not on every request.
    static DOC: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| {
        serde_json::from_str::<Value>(include_str!("openapi.json"))
            .and_then(|doc| serde_json::to_vec(&doc))
            .map_err(|e| format!("openapi.json does not parse: {e}"))
    });
    match doc {
        Ok(bytes) => Ok(Reply {
            status: 200,
            headers: Vec::new(),
            body: Body::JsonBytes(std::borrow::Cow::Borrowed(bytes)),
        }),
        Err(e) => Err(Error::Internal(e.clone())),
    }
}

pub fn healthz(app: &App) -> Result<Reply, Error> {
    app.store.ping()?;
    Ok(Reply::json(200, json!({ "status": "ok" })))
}

pub fn metrics(app: &App) -> Result<Reply, Error> {
    let live = app.store.count_live_tokens(app.now()).ok();
    Ok(Reply::text(200, app.metrics.render(live)))
}
