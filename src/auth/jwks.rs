//! A JWKS document (file or https URL) as a cache of verifying keys by
//! `kid`. The set is fetched on first use, again when a token names a key it
//! does not hold, and when it is older than [`JwksSource::max_age`] — never
//! more often than [`JwksSource::min_refresh`], so a flood of made-up `kid`s
//! cannot hammer the identity provider. A fetch replaces the whole set: a
//! key the provider has removed stops working at the next refresh.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::jwt::{JwtSettings, VerifyingKey};

/// Longest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the JWKS document is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksLocation {
    /// A local file (a path, or a `file://` URL).
    File(PathBuf),
    /// An https URL (plain http only for loopback hosts).
    Url(url::Url),
}

impl FromStr for JwksLocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(JwksLocation::File(PathBuf::from(path)));
        }
        if !s.contains("://") {
            return Ok(JwksLocation::File(PathBuf::from(s)));
        }
        let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => Ok(JwksLocation::Url(url)),
            "http" if loopback => Ok(JwksLocation::Url(url)),
            "http" => Err(format!(
                "`{s}`: a JWKS URL must be https (plain http only for localhost)"
            )),
            other => Err(format!("`{s}`: unsupported scheme `{other}`")),
        }
    }
}

impl fmt::Display for JwksLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksLocation::File(p) => write!(f, "{}", p.display()),
            JwksLocation::Url(u) => write!(f, "{u}"),
        }
    }
}

/// A JWKS document and how often it is fetched again.
#[derive(Clone, Debug)]
pub struct JwksSource {
    pub location: JwksLocation,
    http: reqwest::Client,
    /// Fetches are at least this far apart (one minute).
    pub min_refresh: Duration,
    /// A set older than this is fetched again on the next token (ten minutes).
    pub max_age: Duration,
}

impl JwksSource {
    /// `location` with the default intervals.
    pub fn new(location: JwksLocation) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("cannot build the HTTP client for the JWKS")?;
        Ok(JwksSource {
            location,
            http,
            min_refresh: Duration::from_secs(60),
            max_age: Duration::from_secs(600),
        })
    }
}

struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Option<Instant>,
}

pub(super) struct JwksCache {
    source: JwksSource,
    settings: JwtSettings,
    set: RwLock<Arc<KeySet>>,
    /// When the last fetch was attempted; held while fetching, so one task
    /// fetches and the others wait for its result.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksCache {
    pub(super) fn new(source: JwksSource, settings: JwtSettings) -> Self {
        JwksCache {
            source,
            settings,
            set: RwLock::new(Arc::new(KeySet {
                keys: HashMap::new(),
                fetched_at: None,
            })),
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.set.write() {
            Ok(mut slot) => *slot = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    /// Fetches the set now; fails when it cannot be read or holds no key
    /// consentry can use.
    pub(super) async fn load(&self) -> anyhow::Result<usize> {
        let mut last = self.last_attempt.lock().await;
        *last = Some(Instant::now());
        let set = self.fetch().await?;
        let count = set.keys.len();
        if count == 0 {
            bail!(
                "the JWKS at {} holds no RS256 or ES256 signing key with a `kid`",
                self.source.location
            );
        }
        self.replace(set);
        Ok(count)
    }

    /// The key named `kid`, refreshing the set when it is unknown or old
    /// (within the refresh limit).
    pub(super) async fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        let set = self.current();
        let fresh = set
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.source.max_age);
        if let Some(key) = set.keys.get(kid).filter(|_| fresh) {
            return Some(key.clone());
        }
        self.refresh().await;
        self.current().keys.get(kid).cloned()
    }

    async fn refresh(&self) {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.source.min_refresh) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(location = %self.source.location, keys = set.keys.len(), "JWKS refreshed");
                self.replace(set);
            }
            Err(e) => {
                tracing::warn!(location = %self.source.location, error = %format!("{e:#}"), "cannot refresh the JWKS; keeping the keys already known");
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<KeySet> {
        let bytes = match &self.source.location {
            JwksLocation::File(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read the JWKS file {}", path.display()))?,
            JwksLocation::Url(url) => {
                let response = self
                    .source
                    .http
                    .get(url.clone())
                    .header("accept", "application/json")
                    .send()
                    .await
                    .with_context(|| format!("cannot fetch the JWKS from {url}"))?
                    .error_for_status()
                    .with_context(|| format!("cannot fetch the JWKS from {url}"))?;
                if response
                    .content_length()
                    .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
                {
                    bail!("the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes");
                }
                response
                    .bytes()
                    .await
                    .with_context(|| format!("cannot read the JWKS from {url}"))?
                    .to_vec()
            }
        };
        if bytes.len() > MAX_JWKS_BYTES {
            bail!(
                "the JWKS at {} is larger than {MAX_JWKS_BYTES} bytes",
                self.source.location
            );
        }
        let keys = parse_jwks(&bytes, &self.settings)
            .with_context(|| format!("the JWKS at {} is not valid", self.source.location))?;
        Ok(KeySet {
            keys,
            fetched_at: Some(Instant::now()),
        })
    }
}

/// The signing keys of a JWKS document consentry can use: RS256 and ES256
/// keys with a `kid`. Others (encryption keys, other algorithms, shapes
/// this library does not know) are skipped.
fn parse_jwks(
    bytes: &[u8],
    settings: &JwtSettings,
) -> anyhow::Result<HashMap<String, Arc<VerifyingKey>>> {
    let doc: Value = serde_json::from_slice(bytes).context("not JSON")?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .context("no `keys` array")?;
    let mut keys = HashMap::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        let (Some(kid), Some(alg)) = (jwk.common.key_id.clone(), algorithm(&jwk)) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Arc::new(VerifyingKey::new(key, alg, settings)));
        }
    }
    Ok(keys)
}

/// RS256 for an RSA signing key, ES256 for a P-256 one, when the key's own
/// `alg` (if any) agrees; `None` for anything else.
fn algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let (alg, declared) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(alg),
        Some(a) if a == declared => Some(alg),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_location_is_a_file_or_a_secure_url() {
        assert_eq!(
            "/etc/jwks.json".parse::<JwksLocation>(),
            Ok(JwksLocation::File("/etc/jwks.json".into()))
        );
        assert!(matches!(
            "file:///etc/jwks.json".parse::<JwksLocation>(),
            Ok(JwksLocation::File(_))
        ));
        assert!(matches!(
            "https://idp.example/certs".parse::<JwksLocation>(),
            Ok(JwksLocation::Url(_))
        ));
        assert!(matches!(
            "http://127.0.0.1:9000/certs".parse::<JwksLocation>(),
            Ok(JwksLocation::Url(_))
        ));
        assert!("http://idp.example/certs".parse::<JwksLocation>().is_err());
        assert!("ftp://idp.example/certs".parse::<JwksLocation>().is_err());
    }

    #[test]
    fn only_rs256_and_es256_signing_keys_with_a_kid_are_kept() {
        let settings = JwtSettings::hs256(crate::config::Secret::new("x"));
        let doc = serde_json::json!({ "keys": [
            { "kty": "RSA", "kid": "sig", "use": "sig", "n": "sXch", "e": "AQAB" },
            { "kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": "sXch", "e": "AQAB" },
            { "kty": "RSA", "kid": "rs512", "alg": "RS512", "n": "sXch", "e": "AQAB" },
            { "kty": "RSA", "n": "sXch", "e": "AQAB" },
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
            { "kty": "weird", "kid": "weird" }
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes(), &settings).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["sig"]);
    }
}
