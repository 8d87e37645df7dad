//! The OAuth 2 endpoints of signed access tokens: the RFC 6749 token endpoint (password,
//! refresh_token and RFC 8693 token-exchange grants), the signing keys, and the
//! RFC 8414 metadata.

use serde_json::{json, Value};

use super::request::Req;
use super::response::Reply;
use crate::app::oauth::{AccessToken, Grant};
use crate::app::App;
use crate::clock::rfc3339;
use crate::error::{Error, GrantError};

pub const GRANT_PASSWORD: &str = "password";
pub const GRANT_REFRESH: &str = "refresh_token";
pub const GRANT_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

const FORM: &str = "application/x-www-form-urlencoded";

fn bad_request(description: String) -> Error {
    Error::Grant(GrantError::InvalidRequest, description)
}

/// The token request's parameters. RFC 6749 §3.2: a form body (a request that names
/// another media type is refused; one that names none is read as a form), and no
/// parameter may be sent twice.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(req: &Req) -> Result<Form, Error> {
        if let Some(sent) = &req.content_type {
            let media_type = sent.split(';').next().unwrap_or("").trim();
            if !media_type.eq_ignore_ascii_case(FORM) {
                return Err(bad_request(format!(
                    "The request body must be {FORM}, not {}.",
                    crate::text::escape(media_type)
                )));
            }
        }
        let mut fields: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(&req.body) {
            if fields.iter().any(|(seen, _)| *seen == name) {
                return Err(bad_request(format!(
                    "The parameter '{}' is repeated.",
                    crate::text::escape(&name)
                )));
            }
            fields.push((name.into_owned(), value.into_owned()));
        }
        Ok(Form(fields))
    }

    /// One required, non-empty parameter.
    fn field(&self, name: &str) -> Result<String, Error> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .ok_or_else(|| bad_request(format!("The form field '{name}' is required.")))
    }
}

fn pair(grant: Grant) -> Value {
    json!({
        "access_token": grant.access.token,
        "token_type": "Bearer",
        "expires_in": grant.access.expires_in,
        "refresh_token": grant.refresh_token,
    })
}

fn exchanged(access: AccessToken) -> Value {
    json!({
        "access_token": access.token,
        "issued_token_type": TOKEN_TYPE_ACCESS,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
    })
}

/// POST /oauth/token.
pub fn token(app: &App, req: &Req) -> Result<Reply, Error> {
    let form = Form::parse(req)?;
    let grant_type = form.field("grant_type")?;
    let body = match grant_type.as_str() {
        GRANT_PASSWORD => {
            let username = form.field("username")?;
            let password = form.field("password")?;
            pair(app.password_grant(&username, &password, req.client)?)
        }
        GRANT_REFRESH => pair(app.refresh_grant(&form.field("refresh_token")?)?),
        GRANT_EXCHANGE => {
            let subject = form.field("subject_token")?;
            if form.field("subject_token_type")? != TOKEN_TYPE_ACCESS {
                return Err(bad_request(format!(
                    "subject_token_type must be {TOKEN_TYPE_ACCESS}."
                )));
            }
            exchanged(app.exchange(&subject)?)
        }
        _ => {
            return Err(Error::Grant(
                GrantError::UnsupportedGrantType,
                "grant_type must be password, refresh_token or urn:ietf:params:oauth:grant-type:token-exchange.".into(),
            ))
        }
    };
    Ok(Reply::json(200, body)
        .no_store()
        .header("Pragma", "no-cache"))
}

/// GET /oauth/keys: the public keys that verify access tokens.
pub fn keys(app: &App) -> Result<Reply, Error> {
    let keys: Vec<Value> = app
        .store
        .list_keys(app.now())?
        .into_iter()
        .map(|k| {
            json!({
                "kid": k.kid,
                "public_key": k.public_key,
                "status": if k.active { "active" } else { "retiring" },
                "created_at": rfc3339(k.created_at),
            })
        })
        .collect();
    Ok(Reply::json(200, json!({ "keys": keys })))
}

/// GET /.well-known/oauth-authorization-server (RFC 8414).
pub fn metadata(app: &App) -> Result<Reply, Error> {
    let base = &app.config.issuer;
    Ok(Reply::json(
        200,
        json!({
            "issuer": base,
            "token_endpoint": format!("{base}/oauth/token"),
            "introspection_endpoint": format!("{base}/oauth/introspect"),
            "revocation_endpoint": format!("{base}/oauth/revoke"),
            "userinfo_endpoint": format!("{base}/oauth/userinfo"),
            "keys_uri": format!("{base}/oauth/keys"),
            "grant_types_supported": [GRANT_PASSWORD, GRANT_REFRESH, GRANT_EXCHANGE],
            "token_endpoint_auth_methods_supported": ["none"],
            "response_types_supported": [],
        }),
    ))
}
