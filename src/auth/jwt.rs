//! Bearer-token verification — HS256 with a shared secret, RS256/ES256 with
//! a PEM public key or a JWKS document — and issuing HS256 tokens for
//! `consentry token` and `serve --demo`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde_json::{Map, Value};

use super::jwks::{JwksCache, JwksSource};
use super::{Actor, Role};
use crate::cache::TextCache;
use crate::config::Secret;
use crate::error::Error;

/// Leeway for `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;
/// Longest token accepted; real ones are a few hundred bytes to a few KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Verified tokens kept (see [`Verified`]); when full, the cache starts over.
const MAX_VERIFIED_TOKENS: usize = 1024;

/// Where the keys that verify tokens come from.
#[derive(Clone, Debug)]
pub enum JwtKey {
    /// HS256 with a shared secret (`CONSENTRY_JWT_SECRET`).
    Secret(Secret),
    /// RS256 or ES256 with one public key (`CONSENTRY_JWT_PUBLIC_KEY`).
    PublicKey(PublicKey),
    /// RS256/ES256 keys from a JWKS document, chosen by `kid`
    /// (`CONSENTRY_JWKS_URL`).
    Jwks(JwksSource),
}

/// A parsed RSA or P-256 public key and the one algorithm it verifies.
#[derive(Clone)]
pub struct PublicKey {
    alg: Algorithm,
    key: DecodingKey,
}

impl PublicKey {
    /// Parses a PEM (`-----BEGIN PUBLIC KEY-----`) RSA or EC public key:
    /// RSA keys verify RS256, EC keys ES256.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        if pem.contains("PRIVATE KEY") {
            return Err("this is a private key; give the identity provider's public key".into());
        }
        if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
            return Ok(PublicKey {
                alg: Algorithm::RS256,
                key,
            });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
            return Ok(PublicKey {
                alg: Algorithm::ES256,
                key,
            });
        }
        Err("not an RSA or EC public key in PEM form".into())
    }

    /// The algorithm tokens must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({:?})", self.alg)
    }
}

/// Where in the claims the roles are: a claim name such as `roles` (the
/// default) or `https://example.com/roles` (Auth0's namespaced claims), or
/// a dot-separated path such as `realm_access.roles` (Keycloak).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolesClaim(Vec<String>);

impl Default for RolesClaim {
    fn default() -> Self {
        RolesClaim(vec!["roles".into()])
    }
}

impl FromStr for RolesClaim {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<String> = s.split('.').map(str::to_owned).collect();
        if parts.iter().any(|p| p.trim().is_empty()) {
            return Err(format!(
                "`{s}` is not a claim path: give names separated by dots, e.g. `realm_access.roles`"
            ));
        }
        Ok(RolesClaim(parts))
    }
}

impl fmt::Display for RolesClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl RolesClaim {
    /// The claim named by the whole path (namespaced claims such as
    /// `https://example.com/roles` contain dots), else the nested one.
    fn get<'a>(&self, claims: &'a Value) -> Option<&'a Value> {
        claims
            .get(self.0.join("."))
            .or_else(|| self.0.iter().try_fold(claims, |v, name| v.get(name)))
    }

    fn set(&self, claims: &mut Map<String, Value>, value: Value) {
        let Some((last, parents)) = self.0.split_last() else {
            return;
        };
        let mut map = claims;
        for name in parents {
            let entry = map
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(inner) = entry else {
                return;
            };
            map = inner;
        }
        map.insert(last.clone(), value);
    }
}

/// How tokens are verified.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub key: JwtKey,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Where the roles are in the claims.
    pub roles_claim: RolesClaim,
}

impl JwtSettings {
    /// HS256 with `secret`, no `iss`/`aud`, roles in `roles`.
    pub fn hs256(secret: Secret) -> Self {
        JwtSettings {
            key: JwtKey::Secret(secret),
            issuer: None,
            audience: None,
            roles_claim: RolesClaim::default(),
        }
    }

    /// The validation rules for tokens signed with `alg`.
    pub(super) fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// One key and the rules for tokens it signs (its algorithm only).
pub(super) struct VerifyingKey {
    key: DecodingKey,
    validation: Validation,
}

impl VerifyingKey {
    pub(super) fn new(key: DecodingKey, alg: Algorithm, settings: &JwtSettings) -> Self {
        VerifyingKey {
            key,
            validation: settings.validation(alg),
        }
    }
}

enum Keys {
    Static(Arc<VerifyingKey>),
    Jwks(Box<JwksCache>),
}

/// A token that passed verification, kept by its text: a client sends the
/// same token with every request until it expires, and checking the
/// signature and parsing the claims is most of the cost of a small query.
/// A kept token is accepted only while its `exp`/`nbf` window holds and
/// while the key that verified it is still current (a JWKS refresh can
/// withdraw it); the issuer, audience and roles claim are fixed for the
/// verifier's lifetime.
struct Verified {
    actor: Actor,
    exp: u64,
    nbf: Option<u64>,
    /// The JWKS `kid` the key was chosen by (none for a static key).
    kid: Option<String>,
    key: Arc<VerifyingKey>,
}

impl Verified {
    /// Whether the token's time window holds at `now` (seconds since the
    /// epoch), with the same leeway as a full verification.
    fn current_at(&self, now: u64) -> bool {
        self.exp.saturating_add(LEEWAY_SECS) >= now
            && self
                .nbf
                .is_none_or(|nbf| nbf <= now.saturating_add(LEEWAY_SECS))
    }
}

/// Verifies bearer tokens into [`Actor`]s. Cheap to clone.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Arc<Keys>,
    roles_claim: RolesClaim,
    verified: Arc<TextCache<Arc<Verified>>>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier").finish_non_exhaustive()
    }
}

fn unauthenticated(message: impl Into<String>) -> Error {
    Error::Unauthenticated(message.into())
}

impl JwtVerifier {
    /// A verifier for the configured key. A JWKS document is fetched on
    /// first use (or by [`JwtVerifier::load`]).
    pub fn new(settings: &JwtSettings) -> Self {
        let keys = match &settings.key {
            JwtKey::Secret(secret) => Keys::Static(Arc::new(VerifyingKey::new(
                DecodingKey::from_secret(secret.expose().as_bytes()),
                Algorithm::HS256,
                settings,
            ))),
            JwtKey::PublicKey(pk) => Keys::Static(Arc::new(VerifyingKey::new(
                pk.key.clone(),
                pk.alg,
                settings,
            ))),
            JwtKey::Jwks(source) => {
                Keys::Jwks(Box::new(JwksCache::new(source.clone(), settings.clone())))
            }
        };
        JwtVerifier {
            keys: Arc::new(keys),
            roles_claim: settings.roles_claim.clone(),
            verified: Arc::new(TextCache::new(MAX_VERIFIED_TOKENS, MAX_TOKEN_BYTES)),
        }
    }

    /// Fetches the JWKS document now, so a wrong URL or an empty set is a
    /// startup error; returns how many usable keys it holds (1 for a
    /// secret or a public key).
    pub async fn load(&self) -> anyhow::Result<usize> {
        match &*self.keys {
            Keys::Static(_) => Ok(1),
            Keys::Jwks(cache) => cache.load().await,
        }
    }

    /// Verifies a raw token (without the `Bearer ` prefix).
    pub async fn verify(&self, token: &str) -> Result<Actor, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthenticated(format!(
                "the bearer token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        if let Some(known) = self.verified.get(token) {
            if self.still_good(&known).await {
                return Ok(known.actor.clone());
            }
            // Expired, or its key withdrawn: a full verification says which.
            self.verified.remove(token);
        }
        let (actor, verified) = self.verify_signed(token).await?;
        if let Some(verified) = verified {
            self.verified.insert(token, Arc::new(verified));
        }
        Ok(actor)
    }

    /// Whether a kept token is still good; see [`Verified`].
    async fn still_good(&self, known: &Verified) -> bool {
        if !known.current_at(jsonwebtoken::get_current_timestamp()) {
            return false;
        }
        match (&*self.keys, &known.kid) {
            (Keys::Static(_), None) => true,
            (Keys::Jwks(cache), Some(kid)) => cache
                .key(kid)
                .await
                .is_some_and(|current| Arc::ptr_eq(&current, &known.key)),
            _ => false,
        }
    }

    /// Checks the token's signature and claims: the actor, and what to keep
    /// of it (nothing when `exp` or `nbf` is not a whole number of seconds).
    async fn verify_signed(&self, token: &str) -> Result<(Actor, Option<Verified>), Error> {
        let header = decode_header(token)
            .map_err(|e| unauthenticated(format!("invalid bearer token: {e}")))?;
        let (kid, key) = match &*self.keys {
            Keys::Static(key) => (None, key.clone()),
            Keys::Jwks(cache) => {
                let kid = header
                    .kid
                    .ok_or_else(|| unauthenticated("the bearer token names no key (`kid`)"))?;
                let key = cache.key(&kid).await.ok_or_else(|| {
                    unauthenticated(format!(
                        "the bearer token's key `{kid}` is not in the identity provider's key set"
                    ))
                })?;
                (Some(kid), key)
            }
        };
        let claims = decode::<Value>(token, &key.key, &key.validation)
            .map_err(|e| {
                tracing::debug!(error = %e, "token rejected");
                unauthenticated(format!("invalid bearer token: {e}"))
            })?
            .claims;
        let actor = self.actor(&claims)?;
        let exp = claims.get("exp").and_then(Value::as_u64);
        let nbf = match claims.get("nbf") {
            None => Some(None),
            Some(nbf) => nbf.as_u64().map(Some),
        };
        let verified = exp.zip(nbf).map(|(exp, nbf)| Verified {
            actor: actor.clone(),
            exp,
            nbf,
            kid,
            key,
        });
        Ok((actor, verified))
    }

    fn actor(&self, claims: &Value) -> Result<Actor, Error> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| unauthenticated("the token's subject (`sub`) is missing or empty"))?;
        let roles = match self.roles_claim.get(claims) {
            Some(Value::Array(roles)) => roles,
            Some(_) => {
                return Err(unauthenticated(format!(
                    "the token's `{}` claim is not an array of roles",
                    self.roles_claim
                )));
            }
            None => {
                return Err(unauthenticated(format!(
                    "the token has no `{}` claim",
                    self.roles_claim
                )));
            }
        };
        Ok(Actor::new(
            sub.to_owned(),
            roles
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Role::parse),
        ))
    }

    /// Verifies an `Authorization` header value.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<Actor, Error> {
        let header =
            header.ok_or_else(|| unauthenticated("an Authorization: Bearer token is required"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <token>`"))?;
        self.verify(token.trim()).await
    }
}

/// Issues an HS256 token for `subject` with `roles`, valid for `ttl`, with
/// the roles where the settings look for them.
pub fn issue_token(
    settings: &JwtSettings,
    subject: &str,
    roles: &[Role],
    ttl: Duration,
) -> anyhow::Result<String> {
    let JwtKey::Secret(secret) = &settings.key else {
        anyhow::bail!(
            "consentry can only sign tokens with CONSENTRY_JWT_SECRET; with a public key or JWKS, tokens come from the identity provider"
        );
    };
    let exp = chrono::Utc::now().timestamp().max(0) as u64 + ttl.as_secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(subject));
    claims.insert("exp".into(), Value::from(exp));
    if let Some(iss) = &settings.issuer {
        claims.insert("iss".into(), Value::from(iss.as_str()));
    }
    if let Some(aud) = &settings.audience {
        claims.insert("aud".into(), Value::from(aud.as_str()));
    }
    settings.roles_claim.set(
        &mut claims,
        roles.iter().map(|r| Value::from(r.as_str())).collect(),
    );
    Ok(encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roles_path_reads_and_writes_nested_claims() {
        let path: RolesClaim = "realm_access.roles".parse().unwrap();
        let mut claims = Map::new();
        path.set(&mut claims, Value::from(vec!["admin"]));
        let claims = Value::Object(claims);
        assert_eq!(claims["realm_access"]["roles"][0], "admin");
        assert_eq!(path.get(&claims), Some(&Value::from(vec!["admin"])));
    }

    #[test]
    fn a_namespaced_claim_name_with_dots_is_read_whole() {
        let path: RolesClaim = "https://consentry.example/roles".parse().unwrap();
        let claims = serde_json::json!({ "https://consentry.example/roles": ["sales"] });
        assert_eq!(path.get(&claims), Some(&Value::from(vec!["sales"])));
    }

    #[test]
    fn an_empty_segment_is_not_a_roles_path() {
        assert!("realm_access..roles".parse::<RolesClaim>().is_err());
        assert!("".parse::<RolesClaim>().is_err());
    }

    fn verified(exp: u64, nbf: Option<u64>) -> Verified {
        let settings = JwtSettings::hs256(Secret::new("a-secret-of-32-bytes-or-more-...."));
        Verified {
            actor: Actor::new("someone", [Role::Sales]),
            exp,
            nbf,
            kid: None,
            key: Arc::new(VerifyingKey::new(
                DecodingKey::from_secret(b"k"),
                Algorithm::HS256,
                &settings,
            )),
        }
    }

    #[test]
    fn a_kept_token_is_refused_once_its_exp_and_the_leeway_have_passed() {
        let token = verified(1_000, None);
        assert!(token.current_at(1_000 + LEEWAY_SECS));
        assert!(!token.current_at(1_000 + LEEWAY_SECS + 1));
    }

    #[test]
    fn a_kept_token_is_refused_before_its_nbf_less_the_leeway() {
        let token = verified(10_000, Some(5_000));
        assert!(!token.current_at(5_000 - LEEWAY_SECS - 1));
        assert!(token.current_at(5_000 - LEEWAY_SECS));
    }

    #[test]
    fn a_private_key_is_refused_as_public_key() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(
            PublicKey::from_pem(pem)
                .unwrap_err()
                .contains("private key")
        );
    }
}
