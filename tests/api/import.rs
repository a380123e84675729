//! CSV import: set-based, all or nothing, with a report of every row error.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::TestApp;

const HEADER: &str = "First Name,Last Name,Company,Title,Email ID,Phone Number,Website,Other,Updated At,Created At,Salesforce ID,Person ID,Facebook,Twitter,LinkedIn,Exported At";

async fn import(app: &TestApp, token: Option<&str>, csv: String) -> (StatusCode, Value) {
    let mut req = Request::post("/people/import.csv").header("content-type", "text/csv");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let (status, _, body) = app
        .send(&app.router, req.body(Body::from(csv)).unwrap())
        .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn people_count(app: &TestApp) -> u64 {
    app.ok(&app.sales(), "{ people { totalCount } }", json!({}))
        .await["people"]["totalCount"]
        .as_u64()
        .unwrap()
}

fn row_errors(body: &Value) -> Vec<(u64, String)> {
    body["errors"][0]["extensions"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["column"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn the_sample_file_imports_with_source_import(app: &TestApp) {
    let csv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/sample-import.csv"
    ))
    .unwrap();
    let (status, body) = import(app, Some(&app.sales()), csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["imported"], 3);
    let data = app
        .ok(&app.sales(), "{ people(filter: {sourceTypes: [IMPORT]}) { totalCount nodes { email other complianceCard { authorizationType } } } }", json!({}))
        .await;
    assert_eq!(data["people"]["totalCount"], 3);
    assert!(
        data["people"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["other"] == "Prefers email, not phone")
    );
    let event = app.last_event().await;
    assert_eq!(event["action"], "PEOPLE_IMPORTED");
    assert_eq!(event["personIds"].as_array().unwrap().len(), 3);
    assert_eq!(event["sequence"], body["auditEventSequence"]);
}

async fn an_export_imports_back(app: &TestApp) {
    let id = app
        .create_person(json!({ "firstName": "=cmd", "email": "round@example.com" }))
        .await["id"]
        .clone();
    let csv = app
        .ok(
            &app.sales(),
            "mutation($id: UUID!) { exportPerson(id: $id) { csv } }",
            json!({ "id": id }),
        )
        .await["exportPerson"]["csv"]
        .as_str()
        .unwrap()
        .replace("round@example.com", "trip@example.com");
    let (status, body) = import(app, Some(&app.sales()), csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = app
        .ok(
            &app.sales(),
            "{ people(filter: {search: \"trip@\"}) { nodes { firstName } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        p["people"]["nodes"][0]["firstName"], "=cmd",
        "the formula guard comes off again"
    );
}

async fn every_row_error_is_reported_and_nothing_is_imported(app: &TestApp) {
    app.person_id("taken@example.com").await;
    let csv = format!(
        "{HEADER}\nOk,Row,,,ok@example.com,,,,,,,,,,,\nBad,Email,,,not-an-email,,,,,,,,,,,\nDup,One,,,dup@example.com,,,,,,,,,,,\nDup,Two,,,DUP@example.com,,,,,,,,,,,\nTaken,Row,,,taken@example.com,,,,,,,,,,,\n"
    );
    let before = (people_count(app).await, app.audit_count().await);
    let (status, body) = import(app, Some(&app.sales()), csv).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        row_errors(&body),
        vec![
            (3, "Email ID".into()),
            (5, "Email ID".into()),
            (6, "Email ID".into())
        ],
        "{body}"
    );
    assert_eq!(
        (people_count(app).await, app.audit_count().await),
        before,
        "all or nothing"
    );
}

async fn an_unknown_column_is_refused(app: &TestApp) {
    let (status, body) = import(
        app,
        Some(&app.sales()),
        "First Name,Shoe Size\nAda,38\n".into(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(row_errors(&body), vec![(1, "Shoe Size".into())]);
}

async fn a_suppressed_email_is_refused(app: &TestApp) {
    let id = app.person_id("gone@example.com").await;
    app.ok(
        &app.admin(),
        "mutation($id: UUID!) { erasePerson(id: $id, reason: \"Art. 17\") { personId } }",
        json!({ "id": id }),
    )
    .await;
    let (status, body) = import(
        app,
        Some(&app.sales()),
        "Email ID\nGone@Example.com\n".into(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("suppressed"), "{body}");
}

async fn import_needs_a_token_and_an_editing_role(app: &TestApp) {
    assert_eq!(
        import(app, None, "Email ID\na@example.com\n".into())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = import(
        app,
        Some(&app.compliance()),
        "Email ID\na@example.com\n".into(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.last_event().await["outcome"], "DENIED");
}

async fn an_import_over_the_size_limit_is_413(app: &TestApp) {
    let router = app.with_settings(|s| s.max_import_bytes = 100);
    let csv = format!("Email ID\n{}", "a@example.com\n".repeat(20));
    let req = Request::post("/people/import.csv")
        .header("authorization", format!("Bearer {}", app.sales()))
        .body(Body::from(csv))
        .unwrap();
    let (status, _, body) = app.send(&router, req).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(people_count(app).await, 0);
}

async fn one_request_imports_100000_rows(app: &TestApp) {
    let mut csv = String::from("First Name,Last Name,Company,Email ID\n");
    for i in 0..100_000 {
        csv.push_str(&format!(
            "First{i},Last{i},Company {},person{i}@bulk.example\n",
            i % 97
        ));
    }
    let (status, body) = import(app, Some(&app.sales()), csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["imported"], 100_000);
    assert_eq!(people_count(app).await, 100_000);
    let v = app
        .ok(&app.admin(), "{ verifyAuditTrail { valid } }", json!({}))
        .await;
    assert_eq!(v["verifyAuditTrail"]["valid"], true);
}

backend_tests!(
    the_sample_file_imports_with_source_import,
    an_export_imports_back,
    every_row_error_is_reported_and_nothing_is_imported,
    an_unknown_column_is_refused,
    a_suppressed_email_is_refused,
    import_needs_a_token_and_an_editing_role,
    an_import_over_the_size_limit_is_413,
    one_request_imports_100000_rows,
);
