//! Data out: one person's CSV (HTTP and GraphQL), the streamed bulk CSV,
//! and the access package.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::backend_tests;
use crate::helpers::{TestApp, code};

const HEADER_ROW: &str = "First Name,Last Name,Company,Title,Email ID,Phone Number,Website,Other,Updated At,Created At,Salesforce ID,Person ID,Facebook,Twitter,LinkedIn,Exported At";

async fn person_csv_over_http_has_the_contract_headers_and_one_row(app: &TestApp) {
    let id = app
        .create_person(
            json!({ "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com" }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, headers, body) = app
        .call(
            "GET",
            &format!("/people/{id}/export.csv"),
            Some(&app.compliance()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"person-{id}.csv\"")
    );
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], HEADER_ROW);
    assert!(
        lines[1].starts_with("Ada,Lovelace,,,ada@example.com,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(&id));
    let event = app.last_event().await;
    assert_eq!(event["action"], "PERSON_EXPORTED");
    assert_eq!(event["personIds"], json!([id]));
}

async fn the_export_person_mutation_returns_the_same_csv(app: &TestApp) {
    let id = app
        .create_person(json!({ "firstName": "=SUM(A1)", "email": "f@example.com" }))
        .await["id"]
        .clone();
    let data = app
        .ok(
            &app.sales(),
            "mutation($id: UUID!) { exportPerson(id: $id) { filename csv exportedAt } }",
            json!({ "id": id }),
        )
        .await;
    let e = &data["exportPerson"];
    assert_eq!(
        e["filename"],
        format!("person-{}.csv", id.as_str().unwrap())
    );
    let csv = e["csv"].as_str().unwrap();
    assert!(csv.starts_with(HEADER_ROW));
    assert!(csv.contains("\r\n'=SUM(A1),"), "formula neutralised: {csv}");
    let exported_at: chrono::DateTime<chrono::Utc> =
        e["exportedAt"].as_str().unwrap().parse().unwrap();
    assert!(
        csv.trim_end()
            .ends_with(&exported_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
}

async fn a_csv_export_needs_a_token_and_an_existing_person(app: &TestApp) {
    let id = app.person_id("t@example.com").await;
    let (status, _, body) = app
        .call("GET", &format!("/people/{id}/export.csv"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("UNAUTHENTICATED"));
    let unknown = "01900000-0000-7000-8000-000000000000";
    assert_eq!(
        app.call(
            "GET",
            &format!("/people/{unknown}/export.csv"),
            Some(&app.sales())
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("GET", "/people/export.csv", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn bulk_export_takes_the_people_filter_as_query_parameters(app: &TestApp) {
    app.create_person(json!({ "email": "c@example.com", "complianceCard": { "authorizationType": "LEGAL_OBLIGATION" } })).await;
    app.create_person(json!({ "email": "d@example.com" })).await;
    let (status, _, body) = app
        .call("GET", "/people/export.csv?authorizationTypes=LEGAL_OBLIGATION,CONSENT&missingAuthorization=false", Some(&app.sales()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(lines[1].contains("c@example.com"));
    let (status, _, body) = app
        .call(
            "GET",
            "/people/export.csv?authorizationTypes=NOPE",
            Some(&app.sales()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        err["errors"][0]["extensions"]["field"],
        "authorizationTypes"
    );
    assert_eq!(
        app.call("GET", "/people/export.csv?colour=red", Some(&app.sales()))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

/// Creates a person from `input`; their row in their own CSV and in the
/// bulk export, each cell but the last (the export's own time).
async fn own_and_bulk_rows(app: &TestApp, input: Value) -> (Vec<String>, Vec<String>) {
    let id = app.create_person(input).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.sales();
    let (_, _, one) = app
        .call("GET", &format!("/people/{id}/export.csv"), Some(&token))
        .await;
    let (status, _, all) = app.call("GET", "/people/export.csv", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let cells = |csv: &str| -> Vec<String> {
        let mut rows = csv::Reader::from_reader(csv.as_bytes());
        let row = rows
            .records()
            .map(Result::unwrap)
            .find(|r| r[11] == id)
            .unwrap();
        assert_eq!(row.len(), 16, "{csv}");
        row.iter().take(15).map(str::to_owned).collect()
    };
    (cells(&one), cells(&all))
}

async fn a_person_s_row_in_the_bulk_export_is_their_own_export_s_row(app: &TestApp) {
    let (row, in_bulk) = own_and_bulk_rows(
        app,
        json!({
            "firstName": "Grace", "lastName": "Hopper", "company": "Navy", "title": "Rear Admiral",
            "email": "grace@example.com", "phone": "+1 555 0100", "website": "https://example.com/grace",
            "other": "=cmd", "salesforceId": "003000000000001", "facebook": "fb/grace",
            "twitter": "@grace", "linkedin": "in/grace",
        }),
    )
    .await;
    assert_eq!(row[0], "Grace");
    assert_eq!(row[7], "'=cmd", "formula cells are neutralised");
    assert_eq!(row[14], "in/grace");
    assert_eq!(in_bulk, row);
}

async fn text_that_needs_quoting_or_escaping_exports_as_in_the_person_s_own_csv(app: &TestApp) {
    let (row, in_bulk) = own_and_bulk_rows(
        app,
        json!({
            "firstName": "Zoë \"Z\" O'Neil", "lastName": "Smith, Jr.", "company": "Back\\slash\tTab",
            "title": "Line one\nLine two", "email": "zoe@example.com", "other": "-1+2 ✓ 日本",
            "linkedin": "\u{1F600}",
        }),
    )
    .await;
    assert_eq!(row[0], "Zoë \"Z\" O'Neil");
    assert_eq!(row[1], "Smith, Jr.");
    assert_eq!(row[2], "Back\\slash\tTab");
    assert_eq!(row[3], "Line one\nLine two");
    assert_eq!(row[7], "'-1+2 ✓ 日本");
    assert_eq!(row[14], "\u{1F600}");
    assert_eq!(in_bulk, row);
}

/// Waits (bounded) until the newest event is a `PEOPLE_EXPORTED`.
async fn export_event(app: &TestApp) -> Value {
    for _ in 0..200 {
        let e = app.last_event().await;
        if e["action"] == "PEOPLE_EXPORTED" {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no PEOPLE_EXPORTED event");
}

/// Seeds `people` and starts a bulk export; returns its unread body.
async fn start_export(app: &TestApp, people: u64) -> Body {
    consentry::service::seed::seed(&app.db, people)
        .await
        .unwrap();
    let req = Request::get("/people/export.csv")
        .header("authorization", format!("Bearer {}", app.sales()))
        .body(Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body()
}

async fn bulk_export_streams_100000_rows_and_waits_for_the_client(app: &TestApp) {
    let mut body = start_export(app, 100_000).await;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(HEADER_ROW.as_bytes()));
    // The client has read one chunk: the server must be waiting for it, not
    // racing ahead buffering rows (its audit event comes only at the end).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(
        app.last_event().await["action"],
        "PEOPLE_EXPORTED",
        "the export waits for the client"
    );
    let mut newlines = first.iter().filter(|&&b| b == b'\n').count();
    while let Some(frame) = body.frame().await {
        newlines += frame
            .unwrap()
            .into_data()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
    }
    assert_eq!(newlines, 100_001, "header and one row per person");
    let event = export_event(app).await;
    assert_eq!(event["details"]["rowCount"], 100_000);
    assert_eq!(event["details"]["completed"], true);
}

async fn a_client_that_goes_away_stops_the_export(app: &TestApp) {
    let mut body = start_export(app, 20_000).await;
    body.frame().await.unwrap().unwrap();
    drop(body);
    let event = export_event(app).await;
    assert_eq!(event["details"]["completed"], false);
    assert!(event["details"]["rowCount"].as_u64().unwrap() < 20_000);
}

/// An export's whole body.
async fn read_body(body: Body) -> String {
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// The Person ID of each row of an export, in order.
fn person_ids(csv: &str) -> Vec<String> {
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    rows.records().map(|r| r.unwrap()[11].to_owned()).collect()
}

async fn a_filtered_export_over_several_pages_lists_each_match_once_in_id_order(app: &TestApp) {
    consentry::service::seed::seed(&app.db, 12_345)
        .await
        .unwrap();
    let matches = app
        .sql_i64("SELECT count(*) FROM person WHERE authorization_type IS NOT NULL")
        .await;
    assert!(matches > 10_000, "the matches span three pages: {matches}");
    let (status, _, csv) = app
        .call(
            "GET",
            "/people/export.csv?missingAuthorization=false",
            Some(&app.sales()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<uuid::Uuid> = person_ids(&csv)
        .iter()
        .map(|id| id.parse().unwrap())
        .collect();
    assert_eq!(ids.len() as i64, matches);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "each person once, in id order"
    );
}

async fn a_bulk_export_lists_the_people_there_when_it_began(app: &TestApp) {
    let mut body = start_export(app, 12_000).await;
    // The header, then the first rows: the export has begun reading.
    body.frame().await.unwrap().unwrap();
    body.frame().await.unwrap().unwrap();
    let late = app
        .create_person(json!({ "email": "late@example.com" }))
        .await;
    let rest = read_body(body).await;
    assert!(!rest.contains("late@example.com"), "{late}");
    let rows = rest.split("\r\n").filter(|l| !l.is_empty()).count();
    assert!(rows < 12_000, "the first rows were read before: {rows}");
    let event = export_event(app).await;
    assert_eq!(event["details"]["rowCount"], 12_000);
}

const ACCESS: &str = "mutation($id: UUID!) { exportPersonData(id: $id) }";

async fn the_access_package_holds_everything_about_the_person_and_nobody_else(app: &TestApp) {
    let id = app
        .create_person(json!({ "firstName": "Ada", "email": "ada@example.com", "complianceCard": { "authorizationType": "CONSENT", "consentDate": "2026-01-01", "processingPurpose": "news" } }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.person_id("other@example.com").await;
    app.ok(&app.sales(), "mutation($id: UUID!) { sendEmail(personId: $id, subject: \"Hi Ada\", textBody: \"Hello\") { id } }", json!({ "id": id })).await;
    app.ok(
        &app.sales(),
        "mutation($id: UUID!) { unsubscribe(personId: $id, reason: \"asked\") { id } }",
        json!({ "id": id }),
    )
    .await;
    app.ok(
        &app.sales(),
        "mutation($ids: [UUID!]) { bulkUpdateSource(selection: {ids: $ids}, input: {sourceType: IMPORT}) { updatedCount } }",
        json!({ "ids": [id, other] }),
    )
    .await;
    let p =
        app.ok(&app.compliance(), ACCESS, json!({ "id": id })).await["exportPersonData"].clone();
    assert_eq!(p["format"], "consentry/access-package");
    assert_eq!(p["version"], 1);
    assert_eq!(p["person"]["id"], id);
    assert_eq!(p["person"]["email"], "ada@example.com");
    assert_eq!(p["complianceCard"]["processingPurpose"], "news");
    assert_eq!(p["subscription"]["unsubscribed"], true);
    assert_eq!(p["subscriptionHistory"][0]["type"], "OPT_OUT");
    assert_eq!(p["emails"][0]["subject"], "Hi Ada");
    let actions: Vec<&str> = p["auditEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "SOURCE_BULK_UPDATED",
            "UNSUBSCRIBED",
            "EMAIL_SENT",
            "PERSON_CREATED"
        ]
    );
    assert!(
        !p.to_string().contains(&other),
        "another person's id leaks into the package"
    );
    let event = app.last_event().await;
    assert_eq!(event["action"], "PERSON_DATA_EXPORTED");
}

async fn sales_may_not_take_an_access_package(app: &TestApp) {
    let id = app.person_id("s@example.com").await;
    assert_eq!(
        code(&app.err(&app.sales(), ACCESS, json!({ "id": id })).await),
        "FORBIDDEN"
    );
}

backend_tests!(
    person_csv_over_http_has_the_contract_headers_and_one_row,
    the_export_person_mutation_returns_the_same_csv,
    a_csv_export_needs_a_token_and_an_existing_person,
    bulk_export_takes_the_people_filter_as_query_parameters,
    a_person_s_row_in_the_bulk_export_is_their_own_export_s_row,
    text_that_needs_quoting_or_escaping_exports_as_in_the_person_s_own_csv,
    bulk_export_streams_100000_rows_and_waits_for_the_client,
    a_client_that_goes_away_stops_the_export,
    a_filtered_export_over_several_pages_lists_each_match_once_in_id_order,
    a_bulk_export_lists_the_people_there_when_it_began,
    the_access_package_holds_everything_about_the_person_and_nobody_else,
    sales_may_not_take_an_access_package,
);
