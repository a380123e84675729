//! The public unsubscribe pages: one-click, no login, forged links refused,
//! unknown people not revealed.

use axum::http::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{TestApp, links};

async fn request(
    app: &TestApp,
    method: &str,
    token: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    app.call(method, &format!("/unsubscribe/{token}"), None)
        .await
}

async fn unsubscribed(app: &TestApp, id: &str) -> bool {
    app.ok(
        &app.sales(),
        "query($id: UUID!) { person(id: $id) { unsubscribed } }",
        json!({ "id": id }),
    )
    .await["person"]["unsubscribed"]
        .as_bool()
        .unwrap()
}

async fn the_link_shows_a_page_with_one_button_and_changes_nothing(app: &TestApp) {
    let id = app.person_id("p@example.com").await;
    let (status, headers, body) = request(app, "GET", &links().token(id.parse().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(headers.contains_key("content-security-policy"));
    assert_eq!(body.matches("<button").count(), 1);
    assert!(body.contains("<form method=\"post\">"));
    assert!(body.contains("name=\"viewport\""));
    assert!(!unsubscribed(app, &id).await);
}

async fn posting_the_link_unsubscribes_as_the_data_subject(app: &TestApp) {
    let id = app.person_id("p@example.com").await;
    let (status, _, body) = request(app, "POST", &links().token(id.parse().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("You are unsubscribed"));
    assert!(unsubscribed(app, &id).await);
    let history = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { subscriptionHistory { type channel actor } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        history["person"]["subscriptionHistory"],
        json!([{ "type": "OPT_OUT", "channel": "UNSUBSCRIBE_LINK", "actor": format!("data-subject:{id}") }])
    );
    let event = app.last_event().await;
    assert_eq!(event["action"], "UNSUBSCRIBED");
    assert_eq!(event["actor"], format!("data-subject:{id}"));
}

async fn posting_the_link_again_answers_200_and_records_nothing_new(app: &TestApp) {
    let id = app.person_id("p@example.com").await;
    let token = links().token(id.parse().unwrap());
    request(app, "POST", &token).await;
    let (status, _, _) = request(app, "POST", &token).await;
    assert_eq!(status, StatusCode::OK);
    let history = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { subscriptionHistory { type } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        history["person"]["subscriptionHistory"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn an_altered_link_gets_400_and_changes_nothing(app: &TestApp) {
    let id = app.person_id("p@example.com").await;
    let mut token = links().token(id.parse().unwrap()).into_bytes();
    let last = token.len() - 2;
    token[last] = if token[last] == b'A' { b'B' } else { b'A' };
    let token = String::from_utf8(token).unwrap();
    let events = app.audit_count().await;
    assert_eq!(
        request(app, "POST", &token).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(request(app, "GET", &token).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        request(app, "POST", "forged").await.0,
        StatusCode::BAD_REQUEST
    );
    assert!(!unsubscribed(app, &id).await);
    assert_eq!(app.audit_count().await, events);
}

async fn a_link_for_an_unknown_person_shows_the_same_page(app: &TestApp) {
    let token = links().token(uuid::Uuid::now_v7());
    let (status, _, body) = request(app, "POST", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("You are unsubscribed"));
}

backend_tests!(
    the_link_shows_a_page_with_one_button_and_changes_nothing,
    posting_the_link_unsubscribes_as_the_data_subject,
    posting_the_link_again_answers_200_and_records_nothing_new,
    an_altered_link_gets_400_and_changes_nothing,
    a_link_for_an_unknown_person_shows_the_same_page,
);
