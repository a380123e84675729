//! The `consentry` binary: tokens, refusing to start without secrets,
//! seeding and printing the schema.

use serde_json::json;

use crate::helpers::{JWT_SECRET, TestApp};
use crate::process::{Server, consentry, memory_kib};

#[tokio::test]
async fn token_command_prints_a_token_the_server_accepts() {
    let app = TestApp::sqlite().await;
    let out = consentry(
        &[
            "token",
            "--sub",
            "ops",
            "--role",
            "compliance",
            "--role",
            "sales",
            "--ttl",
            "10m",
        ],
        &[("CONSENTRY_JWT_SECRET", JWT_SECRET)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let data = app
        .ok(token.trim(), "{ viewer { subject roles } }", json!({}))
        .await;
    assert_eq!(
        data["viewer"],
        json!({ "subject": "ops", "roles": ["sales", "compliance"] })
    );
}

#[test]
fn serve_refuses_to_start_without_a_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let out = consentry(
        &["serve"],
        &[
            ("CONSENTRY_DATABASE_URL", &url),
            ("CONSENTRY_UNSUBSCRIBE_SECRET", "u"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONSENTRY_JWT_SECRET"));
}

#[test]
fn serve_refuses_two_kinds_of_jwt_key_at_once() {
    let out = consentry(
        &["serve"],
        &[
            ("CONSENTRY_JWT_SECRET", "s"),
            ("CONSENTRY_JWKS_URL", "/nonexistent/jwks.json"),
            ("CONSENTRY_UNSUBSCRIBE_SECRET", "u"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("set only one of"));
}

#[test]
fn serve_refuses_to_start_when_the_jwks_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let out = consentry(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("CONSENTRY_DATABASE_URL", &url),
            ("CONSENTRY_JWKS_URL", "/nonexistent/jwks.json"),
            ("CONSENTRY_UNSUBSCRIBE_SECRET", "u"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read the JWKS file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_refuses_a_public_key_that_is_not_one() {
    let out = consentry(
        &["serve"],
        &[
            (
                "CONSENTRY_JWT_PUBLIC_KEY",
                "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
            ),
            ("CONSENTRY_UNSUBSCRIBE_SECRET", "u"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONSENTRY_JWT_PUBLIC_KEY"));
}

#[test]
fn serve_refuses_to_start_without_an_unsubscribe_secret() {
    let out = consentry(&["serve"], &[("CONSENTRY_JWT_SECRET", "s")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONSENTRY_UNSUBSCRIBE_SECRET"));
}

#[test]
fn seed_command_inserts_the_people_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("seed.db").display());
    let out = consentry(
        &["seed", "--people", "2500"],
        &[("CONSENTRY_DATABASE_URL", &url)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("seeded 2500 people"));
    let verify = consentry(&["verify-audit"], &[("CONSENTRY_DATABASE_URL", &url)]);
    assert!(verify.status.success());
}

#[test]
fn schema_command_prints_schema_graphql() {
    let out = consentry(&["schema"], &[]);
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(String::from_utf8(out.stdout).unwrap() == file);
}

#[tokio::test]
async fn sync_crm_command_reports_and_exits_1_when_salesforce_refuses() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("crm.db").display());
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "done": true, "records": [] })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let env = [
        ("CONSENTRY_DATABASE_URL", url.as_str()),
        ("CONSENTRY_SALESFORCE_URL", &server.uri()),
        ("CONSENTRY_SALESFORCE_TOKEN", "t"),
    ];
    let ok = consentry(&["sync-crm"], &env);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"errors\":0"));
    let refused = consentry(&["sync-crm"], &env);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("401"));
}

#[tokio::test]
async fn a_streamed_export_of_100000_rows_keeps_server_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("big.db").display());
    let seeded = consentry(
        &["seed", "--people", "100000"],
        &[("CONSENTRY_DATABASE_URL", &url)],
    );
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let server = Server::start(&[("CONSENTRY_DATABASE_URL", url.as_str())], None).await;
    let token = server.token("m", "sales");
    let (_, before) = memory_kib(server.pid());

    let mut res = server
        .http
        .get(format!("{}/people/export.csv", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = res.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    }
    let (peak, _) = memory_kib(server.pid());
    drop(server);

    assert_eq!(lines, 100_001);
    assert!(bytes > 15_000_000, "about 20 MB of CSV went out: {bytes}");
    // The CSV alone is ~20 MB; holding it (or the rows) would exceed this.
    let growth_kib = peak.saturating_sub(before);
    assert!(
        growth_kib < 12 * 1024,
        "server memory grew by {growth_kib} KiB while streaming"
    );
}
