//! Tokens as identity providers issue them: RS256/ES256 with a PEM public
//! key or a JWKS document (keys by `kid`, rotation, refresh limit), and the
//! roles claim at a configurable path. Token checks happen before any
//! database access, so these run on SQLite only.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use consentry::auth::{JwksLocation, JwksSource, JwtKey, PublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, code, post};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

fn public_key(name: &str) -> JwtKey {
    JwtKey::PublicKey(PublicKey::from_pem(&read_fixture(&format!("{name}.pub.pem"))).unwrap())
}

/// The fixture JWKS with only the keys named.
fn jwks(kids: &[&str]) -> Value {
    let all: Value = serde_json::from_str(&read_fixture("jwks.json")).unwrap();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap()))
        .cloned()
        .collect();
    json!({ "keys": keys })
}

fn claims() -> Value {
    json!({ "sub": "idp-user", "roles": ["compliance"], "exp": chrono::Utc::now().timestamp() + 3600 })
}

/// A token signed with the fixture private key `key` (`rsa-1`, `rsa-2`,
/// `ec-1`), with `kid` in its header when given.
fn signed(key: &str, kid: Option<&str>, claims: &Value) -> String {
    let pem = read_fixture(&format!("{key}.key.pem"));
    let (alg, encoding) = if key.starts_with("ec") {
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        )
    } else {
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &encoding).unwrap()
}

async fn viewer(router: &Router, token: &str) -> (StatusCode, Value) {
    post(
        router,
        Some(token),
        json!({ "query": "{ viewer { subject roles } }" }),
    )
    .await
}

async fn assert_accepted(router: &Router, token: &str) {
    let (status, body) = viewer(router, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["viewer"],
        json!({ "subject": "idp-user", "roles": ["compliance"] })
    );
}

async fn assert_rejected(router: &Router, token: &str, case: &str) {
    let (status, body) = viewer(router, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(code(&body["errors"][0]), "UNAUTHENTICATED", "{case}");
}

fn jwks_router(app: &TestApp, location: JwksLocation, min_refresh: Duration) -> Router {
    let mut source = JwksSource::new(location).unwrap();
    source.min_refresh = min_refresh;
    app.with_settings(|s| s.jwt.key = JwtKey::Jwks(source))
}

#[tokio::test]
async fn an_rs256_token_verifies_with_the_rsa_public_key() {
    let app = TestApp::sqlite().await;
    let router = app.with_settings(|s| s.jwt.key = public_key("rsa-1"));
    assert_accepted(&router, &signed("rsa-1", None, &claims())).await;
}

#[tokio::test]
async fn an_es256_token_verifies_with_the_ec_public_key() {
    let app = TestApp::sqlite().await;
    let router = app.with_settings(|s| s.jwt.key = public_key("ec-1"));
    assert_accepted(&router, &signed("ec-1", None, &claims())).await;
}

#[tokio::test]
async fn a_public_key_server_rejects_every_malformed_token() {
    let app = TestApp::sqlite().await;
    let router = app.with_settings(|s| {
        s.jwt.key = public_key("rsa-1");
        s.jwt.issuer = Some("https://idp.example/realms/sales".into());
        s.jwt.audience = Some("consentry".into());
    });
    let now = chrono::Utc::now().timestamp();
    let good = json!({
        "sub": "idp-user", "roles": ["compliance"], "exp": now + 3600,
        "iss": "https://idp.example/realms/sales", "aud": "consentry"
    });
    assert_accepted(&router, &signed("rsa-1", None, &good)).await;
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        signed("rsa-1", None, &c)
    };
    let without = |key: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(key);
        signed("rsa-1", None, &c)
    };
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let public_pem = read_fixture("rsa-1.pub.pem");
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({ "alg": "none", "typ": "JWT" })),
                b64(&good)
            ),
        ),
        (
            "HS256 signed with the RSA public key as secret",
            encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(public_pem.as_bytes()),
            )
            .unwrap(),
        ),
        ("signed by another key", signed("rsa-2", None, &good)),
        ("ES256 by another key", signed("ec-1", None, &good)),
        ("expired", with("exp", json!(now - 120))),
        ("not yet valid", with("nbf", json!(now + 600))),
        ("string exp", with("exp", json!("tomorrow"))),
        ("no exp", without("exp")),
        ("no sub", without("sub")),
        ("empty sub", with("sub", json!(" "))),
        ("no roles", without("roles")),
        (
            "roles not an array",
            with("roles", json!({ "admin": true })),
        ),
        ("no iss", without("iss")),
        ("wrong iss", with("iss", json!("https://evil.example"))),
        ("no aud", without("aud")),
        ("wrong aud", with("aud", json!("another-app"))),
        ("not a token", "a.b.c".into()),
    ];
    for (case, token) in cases {
        assert_rejected(&router, &token, case).await;
    }
    let mut tampered = signed("rsa-1", None, &good);
    let payload = b64(
        &json!({ "sub": "mallory", "roles": ["admin"], "exp": now + 3600,
        "iss": "https://idp.example/realms/sales", "aud": "consentry" }),
    );
    let parts: Vec<&str> = tampered.split('.').collect();
    tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_rejected(
        &router,
        &tampered,
        "payload swapped under a valid signature",
    )
    .await;
}

#[tokio::test]
async fn a_jwks_picks_the_key_by_kid_for_rs256_and_es256() {
    let app = TestApp::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&["rsa-1", "ec-1"]).to_string()).unwrap();
    let router = jwks_router(&app, JwksLocation::File(file), Duration::from_secs(60));
    assert_accepted(&router, &signed("rsa-1", Some("rsa-1"), &claims())).await;
    assert_accepted(&router, &signed("ec-1", Some("ec-1"), &claims())).await;
    assert_rejected(&router, &signed("rsa-1", None, &claims()), "no kid").await;
    assert_rejected(
        &router,
        &signed("rsa-2", Some("rsa-9"), &claims()),
        "unknown kid",
    )
    .await;
    assert_rejected(
        &router,
        &signed("rsa-2", Some("rsa-1"), &claims()),
        "kid of one key, signed by another",
    )
    .await;
    let public_pem = read_fixture("rsa-1.pub.pem");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    assert_rejected(&router, &confused, "HS256 under an RSA kid").await;
}

#[tokio::test]
async fn a_rotated_key_works_and_a_removed_key_stops_working() {
    let app = TestApp::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&["rsa-1"]).to_string()).unwrap();
    let router = jwks_router(&app, JwksLocation::File(file.clone()), Duration::ZERO);
    let old = signed("rsa-1", Some("rsa-1"), &claims());
    let new = signed("rsa-2", Some("rsa-2"), &claims());
    assert_accepted(&router, &old).await;
    assert_rejected(&router, &new, "not yet published").await;
    // The provider rotates: rsa-2 published, rsa-1 withdrawn.
    std::fs::write(&file, jwks(&["rsa-2"]).to_string()).unwrap();
    assert_accepted(&router, &new).await;
    assert_rejected(&router, &old, "withdrawn key").await;
}

#[tokio::test]
async fn unknown_kids_refetch_the_jwks_at_most_once_a_minute() {
    let app = TestApp::sqlite().await;
    let idp = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/certs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&["rsa-1"])))
        .mount(&idp)
        .await;
    let url = format!("{}/certs", idp.uri()).parse().unwrap();
    let router = jwks_router(&app, url, Duration::from_secs(60));
    assert_accepted(&router, &signed("rsa-1", Some("rsa-1"), &claims())).await;
    for i in 0..5 {
        let kid = format!("made-up-{i}");
        assert_rejected(&router, &signed("rsa-2", Some(&kid), &claims()), &kid).await;
    }
    assert_accepted(&router, &signed("rsa-1", Some("rsa-1"), &claims())).await;
    let fetches = idp.received_requests().await.unwrap().len();
    assert_eq!(
        fetches, 1,
        "one fetch on first use; unknown kids within the minute fetch nothing"
    );
}

#[tokio::test]
async fn roles_are_read_from_the_configured_claim_path() {
    let app = TestApp::sqlite().await;
    let router = app.with_settings(|s| {
        s.jwt.key = public_key("rsa-1");
        s.jwt.roles_claim = "realm_access.roles".parse().unwrap();
    });
    let exp = chrono::Utc::now().timestamp() + 3600;
    let keycloak = json!({
        "sub": "idp-user", "exp": exp,
        "realm_access": { "roles": ["offline_access", "compliance"] }
    });
    assert_accepted(&router, &signed("rsa-1", None, &keycloak)).await;
    let top_level = json!({ "sub": "idp-user", "exp": exp, "roles": ["admin"] });
    assert_rejected(
        &router,
        &signed("rsa-1", None, &top_level),
        "roles outside the configured path",
    )
    .await;
}
