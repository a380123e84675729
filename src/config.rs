//! Configuration from flags or `CONSENTRY_*` environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use clap::Args;

/// A secret value: never printed by `Debug` or `--help`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// A fresh random secret (256 bits, hex), for `serve --demo`.
    pub fn random() -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
        Ok(Secret(hex::encode(bytes)))
    }

    /// The secret itself, for the code that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            Err("a secret may not be empty".into())
        } else {
            Ok(Secret(s.to_owned()))
        }
    }
}

/// Settings shared by every command.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Settings (flag or CONSENTRY_* environment variable)")]
pub struct Config {
    /// Database URL: `sqlite://FILE?mode=rwc` or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "CONSENTRY_DATABASE_URL",
        default_value = "sqlite://consentry.db?mode=rwc",
        global = true
    )]
    pub database_url: String,

    /// Address the server listens on.
    #[arg(
        long,
        env = "CONSENTRY_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Shared secret for HS256 bearer tokens.
    #[arg(
        long,
        env = "CONSENTRY_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<Secret>,

    /// PEM public key (RSA for RS256, EC P-256 for ES256), or a file
    /// holding it.
    #[arg(long, env = "CONSENTRY_JWT_PUBLIC_KEY", global = true)]
    pub jwt_public_key: Option<String>,

    /// JWKS document with the identity provider's keys: an https URL or a
    /// file. Keys are chosen by the token's `kid`.
    #[arg(long, env = "CONSENTRY_JWKS_URL", global = true)]
    pub jwks_url: Option<crate::auth::JwksLocation>,

    /// Where the roles are in the token: a claim name or a dot-separated
    /// path, e.g. `realm_access.roles` (Keycloak).
    #[arg(
        long,
        env = "CONSENTRY_JWT_ROLES_CLAIM",
        default_value = "roles",
        global = true
    )]
    pub jwt_roles_claim: crate::auth::RolesClaim,

    /// Required `iss` claim, when set.
    #[arg(long, env = "CONSENTRY_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim, when set.
    #[arg(long, env = "CONSENTRY_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,

    /// Public base URL of this server (used in links it hands out).
    #[arg(long, env = "CONSENTRY_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Secret that signs unsubscribe links.
    #[arg(
        long,
        env = "CONSENTRY_UNSUBSCRIBE_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub unsubscribe_secret: Option<Secret>,

    /// SMTP server for outgoing email, e.g. `smtp://mail:25`,
    /// `smtps://user:pass@mail:465`, `smtp://mail:587?tls=required`. Without
    /// it, messages stay in the outbox as QUEUED.
    #[arg(
        long,
        env = "CONSENTRY_SMTP_URL",
        hide_env_values = true,
        global = true
    )]
    pub smtp_url: Option<String>,

    /// Sender address of outgoing email.
    #[arg(
        long,
        env = "CONSENTRY_EMAIL_FROM",
        default_value = "consentry <no-reply@localhost>",
        global = true
    )]
    pub email_from: String,

    /// Salesforce instance URL, e.g. `https://yourorg.my.salesforce.com`.
    #[arg(long, env = "CONSENTRY_SALESFORCE_URL", global = true)]
    pub salesforce_url: Option<String>,

    /// Salesforce OAuth access token.
    #[arg(
        long,
        env = "CONSENTRY_SALESFORCE_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub salesforce_token: Option<Secret>,

    /// Run the CRM sync this often while serving (e.g. `15m`); off when unset.
    #[arg(long, env = "CONSENTRY_CRM_SYNC_INTERVAL", value_parser = humantime::parse_duration, global = true)]
    pub crm_sync_interval: Option<std::time::Duration>,

    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://app.example.com`; none when unset.
    #[arg(
        long,
        env = "CONSENTRY_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,

    /// Requests handled at once; beyond it the server answers 503 with
    /// `Retry-After` at once instead of queueing.
    #[arg(
        long,
        env = "CONSENTRY_MAX_IN_FLIGHT",
        default_value_t = 256,
        global = true
    )]
    pub max_in_flight: usize,

    /// How long a request may run before it is cancelled (503 `TIMEOUT`,
    /// its transaction rolled back), e.g. `30s`.
    #[arg(long, env = "CONSENTRY_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub request_timeout: std::time::Duration,

    /// Maximum GraphQL query depth.
    #[arg(long, env = "CONSENTRY_MAX_DEPTH", default_value_t = 16, global = true)]
    pub max_depth: usize,

    /// Maximum GraphQL query complexity (each field 1; a page's fields
    /// count once per row it may return).
    #[arg(
        long,
        env = "CONSENTRY_MAX_COMPLEXITY",
        default_value_t = 20_000,
        global = true
    )]
    pub max_complexity: usize,

    /// Maximum aliases in one GraphQL document.
    #[arg(
        long,
        env = "CONSENTRY_MAX_ALIASES",
        default_value_t = 50,
        global = true
    )]
    pub max_aliases: usize,

    /// Maximum request body size in bytes (default 8 MiB).
    #[arg(long, env = "CONSENTRY_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// Maximum size of a CSV import body in bytes (default 64 MiB: 100,000
    /// rows fit).
    #[arg(long, env = "CONSENTRY_MAX_IMPORT_BYTES", default_value_t = 64 * 1024 * 1024, global = true)]
    pub max_import_bytes: usize,

    /// Turn GraphQL introspection off.
    #[arg(long, env = "CONSENTRY_DISABLE_INTROSPECTION", global = true,
          value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false,
          num_args = 0..=1, default_missing_value = "true")]
    pub disable_introspection: bool,
}

impl Config {
    /// The public base URL: `CONSENTRY_PUBLIC_URL`, else `http://{listen}`.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The Salesforce client, when both URL and token are configured.
    pub fn salesforce(&self) -> anyhow::Result<Option<crate::service::crm::Salesforce>> {
        match (&self.salesforce_url, &self.salesforce_token) {
            (Some(url), Some(token)) => Ok(Some(crate::service::crm::Salesforce::new(
                url,
                token.clone(),
            )?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!(
                "set both CONSENTRY_SALESFORCE_URL and CONSENTRY_SALESFORCE_TOKEN, or neither"
            ),
        }
    }

    /// How tokens are verified: exactly one of the secret, the public key or
    /// the JWKS. Without any, `demo` gets a random secret; otherwise it is
    /// an error.
    pub fn jwt(&self, demo: bool) -> anyhow::Result<crate::auth::JwtSettings> {
        use crate::auth::{JwksSource, JwtKey, PublicKey};
        let key = match (&self.jwt_secret, &self.jwt_public_key, &self.jwks_url) {
            (Some(secret), None, None) => JwtKey::Secret(secret.clone()),
            (None, Some(pem), None) => {
                let pem = if pem.trim_start().starts_with("-----BEGIN") {
                    pem.clone()
                } else {
                    std::fs::read_to_string(pem).map_err(|e| {
                        anyhow::anyhow!(
                            "CONSENTRY_JWT_PUBLIC_KEY is neither a PEM key nor a readable file ({pem}): {e}"
                        )
                    })?
                };
                JwtKey::PublicKey(
                    PublicKey::from_pem(&pem)
                        .map_err(|e| anyhow::anyhow!("CONSENTRY_JWT_PUBLIC_KEY: {e}"))?,
                )
            }
            (None, None, Some(location)) => JwtKey::Jwks(JwksSource::new(location.clone())?),
            (None, None, None) if demo => JwtKey::Secret(Secret::random()?),
            (None, None, None) => anyhow::bail!(
                "no JWT key configured: set CONSENTRY_JWT_SECRET, CONSENTRY_JWT_PUBLIC_KEY or CONSENTRY_JWKS_URL (or run `consentry serve --demo` to try it out)"
            ),
            _ => anyhow::bail!(
                "set only one of CONSENTRY_JWT_SECRET, CONSENTRY_JWT_PUBLIC_KEY and CONSENTRY_JWKS_URL"
            ),
        };
        Ok(crate::auth::JwtSettings {
            key,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            roles_claim: self.jwt_roles_claim.clone(),
        })
    }

    /// The GraphQL limits this configuration asks for.
    pub fn limits(&self) -> crate::graphql::Limits {
        crate::graphql::Limits {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_aliases: self.max_aliases,
            disable_introspection: self.disable_introspection,
        }
    }
}
