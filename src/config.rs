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
