//! HS256 bearer-token verification and issuing.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use super::{Actor, Role};
use crate::config::Secret;
use crate::error::Error;

/// Leeway for `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;
/// Longest token accepted; real ones are a few hundred bytes to a few KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims consentry reads. `sub`, `roles` and `exp` are required.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub roles: Vec<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// How tokens are verified.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub secret: Secret,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Verifies bearer tokens into [`Actor`]s.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for HS256 tokens signed with the configured secret.
    pub fn new(settings: &JwtSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &settings.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        JwtVerifier {
            key: DecodingKey::from_secret(settings.secret.expose().as_bytes()),
            validation,
        }
    }

    /// Verifies a raw token (without the `Bearer ` prefix).
    pub fn verify(&self, token: &str) -> Result<Actor, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::Unauthenticated(format!(
                "the bearer token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            tracing::debug!(error = %e, "token rejected");
            Error::Unauthenticated(format!("invalid bearer token: {e}"))
        })?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() {
            return Err(Error::Unauthenticated(
                "the token's subject is empty".into(),
            ));
        }
        Ok(Actor::new(
            claims.sub,
            claims.roles.iter().filter_map(|r| Role::parse(r)),
        ))
    }

    /// Verifies an `Authorization` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Actor, Error> {
        let header = header.ok_or_else(|| {
            Error::Unauthenticated("an Authorization: Bearer token is required".into())
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Error::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
            })?;
        self.verify(token.trim())
    }
}

/// Issues an HS256 token for `subject` with `roles`, valid for `ttl`.
pub fn issue_token(
    settings: &JwtSettings,
    subject: &str,
    roles: &[Role],
    ttl: Duration,
) -> anyhow::Result<String> {
    let exp = chrono::Utc::now().timestamp().max(0) as u64 + ttl.as_secs();
    let claims = Claims {
        sub: subject.to_owned(),
        roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        exp,
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
    };
    Ok(encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(settings.secret.expose().as_bytes()),
    )?)
}
