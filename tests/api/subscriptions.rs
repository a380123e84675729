//! Unsubscribe (idempotent) and resubscribe (admin, with re-consent proof).

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, code};

const UNSUBSCRIBE: &str = "mutation($id: UUID!, $reason: String) {
  unsubscribe(personId: $id, reason: $reason) { unsubscribed unsubscribedAt subscriptionStatus }
}";
const RESUBSCRIBE: &str = "mutation($id: UUID!, $r: ReconsentInput!) {
  resubscribe(personId: $id, reconsent: $r) { unsubscribed subscriptionStatus }
}";
const HISTORY: &str = "query($id: UUID!) {
  person(id: $id) { subscriptionHistory { type channel actor reason reconsent { consentDate method evidence } } }
}";

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

fn reconsent(date: &str) -> Value {
    json!({ "consentDate": date, "method": "Signed form", "evidence": "scan-2026-11.pdf" })
}

async fn unsubscribed(app: &TestApp) -> String {
    let id = app.person_id("u@example.com").await;
    app.ok(
        &app.sales(),
        UNSUBSCRIBE,
        json!({ "id": id, "reason": "asked by phone" }),
    )
    .await;
    id
}

async fn unsubscribe_records_an_opt_out_and_its_audit_event(app: &TestApp) {
    let id = app.person_id("u@example.com").await;
    let data = app
        .ok(
            &app.compliance(),
            UNSUBSCRIBE,
            json!({ "id": id, "reason": "asked by phone" }),
        )
        .await;
    assert_eq!(data["unsubscribe"]["unsubscribed"], true);
    assert_eq!(data["unsubscribe"]["subscriptionStatus"], "UNSUBSCRIBED");
    let history = app.ok(&app.sales(), HISTORY, json!({ "id": id })).await;
    assert_eq!(
        history["person"]["subscriptionHistory"],
        json!([{ "type": "OPT_OUT", "channel": "USER", "actor": "cora-compliance", "reason": "asked by phone", "reconsent": null }])
    );
    let event = app.last_event().await;
    assert_eq!(event["action"], "UNSUBSCRIBED");
    assert_eq!(event["reason"], "asked by phone");
    assert_eq!(
        event["changes"],
        json!([{ "personId": id, "field": "unsubscribed", "before": false, "after": true, "erased": false }])
    );
}

async fn unsubscribing_twice_records_nothing_new_but_is_audited(app: &TestApp) {
    let id = unsubscribed(app).await;
    let events = app.audit_count().await;
    let data = app.ok(&app.sales(), UNSUBSCRIBE, json!({ "id": id })).await;
    assert_eq!(data["unsubscribe"]["unsubscribed"], true);
    let history = app.ok(&app.sales(), HISTORY, json!({ "id": id })).await;
    assert_eq!(
        history["person"]["subscriptionHistory"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(app.audit_count().await, events + 1);
    let event = app.last_event().await;
    assert_eq!(event["action"], "UNSUBSCRIBED");
    assert_eq!(event["changes"], json!([]));
}

async fn admin_resubscribes_with_proof_of_reconsent(app: &TestApp) {
    let id = unsubscribed(app).await;
    let data = app
        .ok(
            &app.admin(),
            RESUBSCRIBE,
            json!({ "id": id, "r": reconsent(&today()) }),
        )
        .await;
    assert_eq!(data["resubscribe"]["unsubscribed"], false);
    assert_eq!(data["resubscribe"]["subscriptionStatus"], "SUBSCRIBED");
    let history = app.ok(&app.sales(), HISTORY, json!({ "id": id })).await;
    let entries = history["person"]["subscriptionHistory"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["type"], "OPT_IN");
    assert_eq!(entries[1]["channel"], "ADMIN_RESUBSCRIBE");
    assert_eq!(
        entries[1]["reconsent"],
        json!({ "consentDate": today(), "method": "Signed form", "evidence": "scan-2026-11.pdf" })
    );
    let event = app.last_event().await;
    assert_eq!(event["action"], "RESUBSCRIBED");
    assert_eq!(event["actor"], "alice-admin");
}

async fn sales_may_not_resubscribe_and_the_denial_is_audited(app: &TestApp) {
    let id = unsubscribed(app).await;
    let err = app
        .err(
            &app.sales(),
            RESUBSCRIBE,
            json!({ "id": id, "r": reconsent(&today()) }),
        )
        .await;
    assert_eq!(code(&err), "FORBIDDEN");
    let event = app.last_event().await;
    assert_eq!(event["action"], "RESUBSCRIBED");
    assert_eq!(event["outcome"], "DENIED");
    assert_eq!(event["actor"], "sam-sales");
    assert_eq!(event["personIds"], json!([id]));
    let p = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { unsubscribed } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(p["person"]["unsubscribed"], true);
}

async fn resubscribe_without_evidence_is_rejected(app: &TestApp) {
    let id = unsubscribed(app).await;
    let before = app.audit_count().await;
    let mut r = reconsent(&today());
    r["evidence"] = json!("  ");
    let err = app
        .err(&app.admin(), RESUBSCRIBE, json!({ "id": id, "r": r }))
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "evidence");
    let mut r = reconsent(&today());
    r["method"] = json!("");
    let err = app
        .err(&app.admin(), RESUBSCRIBE, json!({ "id": id, "r": r }))
        .await;
    assert_eq!(err["extensions"]["field"], "method");
    assert_eq!(app.audit_count().await, before);
}

async fn reconsent_dated_before_the_opt_out_is_rejected(app: &TestApp) {
    let id = unsubscribed(app).await;
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Duration::days(1)).to_string();
    let err = app
        .err(
            &app.admin(),
            RESUBSCRIBE,
            json!({ "id": id, "r": reconsent(&yesterday) }),
        )
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "consentDate");
}

async fn reconsent_dated_in_the_future_is_rejected(app: &TestApp) {
    let id = unsubscribed(app).await;
    let later = (chrono::Utc::now().date_naive() + chrono::Duration::days(2)).to_string();
    let err = app
        .err(
            &app.admin(),
            RESUBSCRIBE,
            json!({ "id": id, "r": reconsent(&later) }),
        )
        .await;
    assert_eq!(err["extensions"]["field"], "consentDate");
}

async fn resubscribing_a_subscribed_person_is_a_conflict(app: &TestApp) {
    let id = app.person_id("s@example.com").await;
    let err = app
        .err(
            &app.admin(),
            RESUBSCRIBE,
            json!({ "id": id, "r": reconsent(&today()) }),
        )
        .await;
    assert_eq!(code(&err), "CONFLICT");
}

async fn unsubscribing_an_unknown_person_is_not_found(app: &TestApp) {
    let err = app
        .err(
            &app.sales(),
            UNSUBSCRIBE,
            json!({ "id": "01900000-0000-7000-8000-000000000001" }),
        )
        .await;
    assert_eq!(code(&err), "NOT_FOUND");
}

backend_tests!(
    unsubscribe_records_an_opt_out_and_its_audit_event,
    unsubscribing_twice_records_nothing_new_but_is_audited,
    admin_resubscribes_with_proof_of_reconsent,
    sales_may_not_resubscribe_and_the_denial_is_audited,
    resubscribe_without_evidence_is_rejected,
    reconsent_dated_before_the_opt_out_is_rejected,
    reconsent_dated_in_the_future_is_rejected,
    resubscribing_a_subscribed_person_is_a_conflict,
    unsubscribing_an_unknown_person_is_not_found,
);
