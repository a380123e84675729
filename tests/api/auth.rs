//! Bearer tokens (401 UNAUTHENTICATED) and the permission matrix of
//! DESIGN §2 (FORBIDDEN, with denied mutations audited).

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consentry::auth::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{JWT_SECRET, TestApp, code};

const SECRET: &[u8] = JWT_SECRET.as_bytes();

fn signed(claims: Value, key: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

async fn assert_unauthenticated(app: &TestApp, token: Option<&str>) {
    let (status, body) = app
        .post(token, json!({ "query": "{ viewer { subject } }" }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(code(&body["errors"][0]), "UNAUTHENTICATED");
}

async fn a_request_without_a_token_is_unauthenticated(app: &TestApp) {
    assert_unauthenticated(app, None).await;
}

async fn introspection_needs_a_token(app: &TestApp) {
    let (status, body) = app
        .post(
            None,
            json!({ "query": "{ __schema { queryType { name } } }" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body["errors"][0]), "UNAUTHENTICATED");
}

async fn an_expired_token_is_unauthenticated(app: &TestApp) {
    let token = signed(
        json!({ "sub": "x", "roles": ["admin"], "exp": chrono::Utc::now().timestamp() - 120 }),
        SECRET,
    );
    assert_unauthenticated(app, Some(&token)).await;
}

async fn a_token_signed_with_another_secret_is_unauthenticated(app: &TestApp) {
    let token = signed(
        json!({ "sub": "x", "roles": ["admin"], "exp": in_an_hour() }),
        b"another-secret",
    );
    assert_unauthenticated(app, Some(&token)).await;
}

async fn an_unsigned_alg_none_token_is_unauthenticated(app: &TestApp) {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD
        .encode(json!({ "sub": "x", "roles": ["admin"], "exp": in_an_hour() }).to_string());
    assert_unauthenticated(app, Some(&format!("{header}.{claims}."))).await;
}

async fn a_token_without_roles_sub_or_exp_is_unauthenticated(app: &TestApp) {
    for claims in [
        json!({ "sub": "x", "exp": in_an_hour() }),
        json!({ "roles": ["admin"], "exp": in_an_hour() }),
        json!({ "sub": "x", "roles": ["admin"] }),
        json!({ "sub": "x", "roles": ["admin"], "exp": "tomorrow" }),
    ] {
        assert_unauthenticated(app, Some(&signed(claims, SECRET))).await;
    }
}

async fn a_token_not_yet_valid_is_unauthenticated(app: &TestApp) {
    let nbf = chrono::Utc::now().timestamp() + 600;
    let token = signed(
        json!({ "sub": "x", "roles": ["admin"], "exp": in_an_hour(), "nbf": nbf }),
        SECRET,
    );
    assert_unauthenticated(app, Some(&token)).await;
}

async fn an_oversized_token_is_unauthenticated(app: &TestApp) {
    let padding = "x".repeat(10_000);
    let token = signed(
        json!({ "sub": "x", "roles": ["admin"], "exp": in_an_hour(), "pad": padding }),
        SECRET,
    );
    assert_unauthenticated(app, Some(&token)).await;
}

async fn issuer_and_audience_are_checked_when_configured(app: &TestApp) {
    let router = app.with_settings(|s| {
        s.jwt.issuer = Some("https://idp.example".into());
        s.jwt.audience = Some("consentry".into());
    });
    let send = |token: String| {
        let router = router.clone();
        async move {
            let req = axum::http::Request::post("/graphql")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::from(
                    json!({ "query": "{ viewer { subject } }" }).to_string(),
                ))
                .unwrap();
            app.send(&router, req).await.0
        }
    };
    let base = json!({ "sub": "x", "roles": ["sales"], "exp": in_an_hour() });
    assert_eq!(
        send(signed(base.clone(), SECRET)).await,
        StatusCode::UNAUTHORIZED
    );
    let mut wrong = base.clone();
    wrong["iss"] = json!("https://evil.example");
    wrong["aud"] = json!("consentry");
    assert_eq!(send(signed(wrong, SECRET)).await, StatusCode::UNAUTHORIZED);
    let mut right = base;
    right["iss"] = json!("https://idp.example");
    right["aud"] = json!("consentry");
    assert_eq!(send(signed(right, SECRET)).await, StatusCode::OK);
}

async fn unknown_roles_are_ignored(app: &TestApp) {
    let token = signed(
        json!({ "sub": "x", "roles": ["sales", "superuser"], "exp": in_an_hour() }),
        SECRET,
    );
    let data = app
        .ok(&token, "{ viewer { subject roles } }", json!({}))
        .await;
    assert_eq!(
        data["viewer"],
        json!({ "subject": "x", "roles": ["sales"] })
    );
}

async fn a_token_with_no_known_role_may_read_nothing(app: &TestApp) {
    let token = app.token("nobody", &[]);
    let err = app
        .err(&token, "{ people { totalCount } }", json!({}))
        .await;
    assert_eq!(code(&err), "FORBIDDEN");
}

/// Every operation of DESIGN §2 with the roles allowed to run it.
fn matrix(person: &str) -> Vec<(&'static str, String, &'static [Role])> {
    use Role::*;
    const ALL: &[Role] = &[Sales, Compliance, Admin];
    const EDIT: &[Role] = &[Sales, Admin];
    const AUDIT: &[Role] = &[Compliance, Admin];
    let id = person;
    vec![
        ("viewer", "{ viewer { subject } }".into(), ALL),
        (
            "person",
            format!("{{ person(id: \"{id}\") {{ id }} }}"),
            ALL,
        ),
        ("people", "{ people { totalCount } }".into(), ALL),
        (
            "subscriptionHistory",
            format!("{{ person(id: \"{id}\") {{ subscriptionHistory {{ type }} }} }}"),
            ALL,
        ),
        (
            "createPerson",
            "mutation { createPerson(input: {firstName: \"M\"}) { id } }".into(),
            EDIT,
        ),
        (
            "updatePerson",
            format!(
                "mutation {{ updatePerson(id: \"{id}\", input: {{title: \"CTO\"}}) {{ id }} }}"
            ),
            EDIT,
        ),
        (
            "updateComplianceCard",
            format!(
                "mutation {{ updateComplianceCard(personId: \"{id}\", input: {{sourceType: IMPORT}}) {{ id }} }}"
            ),
            EDIT,
        ),
        (
            "bulkUpdateAuthorization",
            format!(
                "mutation {{ bulkUpdateAuthorization(selection: {{ids: [\"{id}\"]}}, input: {{authorizationType: LEGAL_OBLIGATION}}) {{ updatedCount }} }}"
            ),
            EDIT,
        ),
        (
            "bulkUpdateSource",
            format!(
                "mutation {{ bulkUpdateSource(selection: {{ids: [\"{id}\"]}}, input: {{sourceType: IMPORT}}) {{ updatedCount }} }}"
            ),
            EDIT,
        ),
        (
            "sendEmail",
            format!(
                "mutation {{ sendEmail(personId: \"{id}\", subject: \"Hi\", textBody: \"Hello\") {{ id }} }}"
            ),
            EDIT,
        ),
        (
            "unsubscribe",
            format!("mutation {{ unsubscribe(personId: \"{id}\") {{ id }} }}"),
            ALL,
        ),
        (
            "auditEvents",
            "{ auditEvents { totalCount } }".into(),
            AUDIT,
        ),
        (
            "auditTrail",
            format!("{{ person(id: \"{id}\") {{ auditTrail {{ totalCount }} }} }}"),
            AUDIT,
        ),
        (
            "verifyAuditTrail",
            "{ verifyAuditTrail { valid } }".into(),
            AUDIT,
        ),
        (
            "resubscribe",
            format!(
                "mutation {{ resubscribe(personId: \"{id}\", reconsent: {{consentDate: \"{}\", method: \"form\", evidence: \"e\"}}) {{ id }} }}",
                chrono::Utc::now().date_naive()
            ),
            &[Admin],
        ),
        (
            "syncCrm",
            "mutation { syncCrm { pulled } }".into(),
            &[Admin],
        ),
        (
            "exportPerson",
            format!("mutation {{ exportPerson(id: \"{id}\") {{ csv }} }}"),
            ALL,
        ),
        (
            "exportPersonData",
            format!("mutation {{ exportPersonData(id: \"{id}\") }}"),
            AUDIT,
        ),
        (
            "erasePerson",
            format!("mutation {{ erasePerson(id: \"{id}\", reason: \"request\") {{ personId }} }}"),
            AUDIT,
        ),
    ]
}

async fn check_matrix(app: &TestApp, role: Role) {
    let person = app.person_id("m@example.com").await;
    let token = app.token(&format!("{role}-user"), &[role]);
    for (name, document, allowed) in matrix(&person) {
        let body = app.gql(&token, &document, json!({})).await;
        let forbidden = body["errors"]
            .as_array()
            .is_some_and(|errs| errs.iter().any(|e| code(e) == "FORBIDDEN"));
        if allowed.contains(&role) {
            assert!(!forbidden, "{role} should be allowed {name}: {body}");
        } else {
            assert!(forbidden, "{role} should be refused {name}: {body}");
            if document.starts_with("mutation") {
                let event = app.last_event().await;
                assert_eq!(event["outcome"], "DENIED", "{name}");
                assert_eq!(event["actor"], format!("{role}-user"));
            }
        }
    }
}

async fn sales_may_edit_people_but_not_read_audit_or_resubscribe(app: &TestApp) {
    check_matrix(app, Role::Sales).await;
}

async fn compliance_may_read_audit_but_not_edit_people(app: &TestApp) {
    check_matrix(app, Role::Compliance).await;
}

async fn admin_may_do_everything(app: &TestApp) {
    check_matrix(app, Role::Admin).await;
}

async fn a_denied_query_writes_no_audit_event(app: &TestApp) {
    let before = app.audit_count().await;
    app.err(&app.sales(), "{ verifyAuditTrail { valid } }", json!({}))
        .await;
    assert_eq!(app.audit_count().await, before);
}

backend_tests!(
    a_request_without_a_token_is_unauthenticated,
    introspection_needs_a_token,
    an_expired_token_is_unauthenticated,
    a_token_signed_with_another_secret_is_unauthenticated,
    an_unsigned_alg_none_token_is_unauthenticated,
    a_token_without_roles_sub_or_exp_is_unauthenticated,
    a_token_not_yet_valid_is_unauthenticated,
    an_oversized_token_is_unauthenticated,
    issuer_and_audience_are_checked_when_configured,
    unknown_roles_are_ignored,
    a_token_with_no_known_role_may_read_nothing,
    sales_may_edit_people_but_not_read_audit_or_resubscribe,
    compliance_may_read_audit_but_not_edit_people,
    admin_may_do_everything,
    a_denied_query_writes_no_audit_event,
);
