//! Compliance-card rules, card replacement and bulk updates.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, code};

const UPDATE_CARD: &str = "mutation($id: UUID!, $card: ComplianceCardInput!) {
  updateComplianceCard(personId: $id, input: $card) {
    complianceCard { authorizationType authorizationOther consentDate processingPurpose sourceType sourceOther }
  }
}";

const BULK_AUTH: &str = "mutation($sel: PersonSelection!, $in: AuthorizationInput!) {
  bulkUpdateAuthorization(selection: $sel, input: $in) {
    updatedCount
    auditEvent { action personIds changes { personId field before after } details }
  }
}";

const BULK_SOURCE: &str = "mutation($sel: PersonSelection!, $in: SourceInput!) {
  bulkUpdateSource(selection: $sel, input: $in) { updatedCount auditEvent { action personIds } }
}";

const BULK_SOURCE_CHANGES: &str = "mutation($sel: PersonSelection!, $in: SourceInput!) {
  bulkUpdateSource(selection: $sel, input: $in) { auditEvent { changes { personId field before after } } }
}";

/// Sends a card that must be refused, and checks it names `field` and
/// writes nothing.
async fn assert_card_refused(app: &TestApp, card: Value, field: &str) {
    let id = app
        .person_id(&format!(
            "{field}-{}@example.com",
            uuid::Uuid::new_v4().simple()
        ))
        .await;
    let before = app.audit_count().await;
    let err = app
        .err(&app.sales(), UPDATE_CARD, json!({ "id": id, "card": card }))
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT", "{err}");
    assert_eq!(err["extensions"]["field"], field, "{err}");
    assert_eq!(
        app.audit_count().await,
        before,
        "a refused card writes no audit event"
    );
    let stored = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { complianceCard { authorizationType } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        stored["person"]["complianceCard"]["authorizationType"],
        Value::Null
    );
}

async fn consent_without_a_date_is_refused(app: &TestApp) {
    assert_card_refused(
        app,
        json!({ "authorizationType": "CONSENT", "processingPurpose": "news" }),
        "consentDate",
    )
    .await;
}

async fn consent_without_a_purpose_is_refused(app: &TestApp) {
    assert_card_refused(
        app,
        json!({ "authorizationType": "CONSENT", "consentDate": "2026-01-01" }),
        "processingPurpose",
    )
    .await;
}

async fn consent_dated_in_the_future_is_refused(app: &TestApp) {
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(2)).to_string();
    assert_card_refused(
        app,
        json!({ "authorizationType": "CONSENT", "consentDate": tomorrow, "processingPurpose": "news" }),
        "consentDate",
    )
    .await;
}

async fn consent_fields_are_forbidden_for_other_bases(app: &TestApp) {
    assert_card_refused(
        app,
        json!({ "authorizationType": "LEGITIMATE_INTEREST", "consentDate": "2026-01-01" }),
        "consentDate",
    )
    .await;
    assert_card_refused(
        app,
        json!({ "authorizationType": "PUBLIC_INTEREST", "processingPurpose": "x" }),
        "processingPurpose",
    )
    .await;
}

async fn other_basis_needs_non_blank_text(app: &TestApp) {
    assert_card_refused(
        app,
        json!({ "authorizationType": "OTHER", "authorizationOther": "   " }),
        "authorizationOther",
    )
    .await;
    assert_card_refused(
        app,
        json!({ "authorizationType": "VITAL_INTERESTS", "authorizationOther": "x" }),
        "authorizationOther",
    )
    .await;
}

async fn other_source_needs_non_blank_text(app: &TestApp) {
    assert_card_refused(app, json!({ "sourceType": "OTHER" }), "sourceOther").await;
    assert_card_refused(
        app,
        json!({ "sourceType": "IMPORT", "sourceOther": "fair" }),
        "sourceOther",
    )
    .await;
}

async fn replacing_the_card_away_from_consent_clears_consent_fields(app: &TestApp) {
    let id = app.person_id("r@example.com").await;
    app.ok(
        &app.sales(),
        UPDATE_CARD,
        json!({ "id": id, "card": { "authorizationType": "CONSENT", "consentDate": "2026-02-03", "processingPurpose": "news", "sourceType": "OTHER", "sourceOther": "Trade fair" } }),
    )
    .await;
    let data = app
        .ok(&app.sales(), UPDATE_CARD, json!({ "id": id, "card": { "authorizationType": "LEGITIMATE_INTEREST", "sourceType": "IMPORT" } }))
        .await;
    assert_eq!(
        data["updateComplianceCard"]["complianceCard"],
        json!({ "authorizationType": "LEGITIMATE_INTEREST", "authorizationOther": null, "consentDate": null,
                "processingPurpose": null, "sourceType": "IMPORT", "sourceOther": null })
    );
}

/// Every field of a person, for comparing a mutation's answer with a read.
const PERSON_FIELDS: &str = "id firstName lastName company title email phone website other salesforceId \
  facebook twitter linkedin createdAt updatedAt unsubscribed unsubscribedAt subscriptionStatus \
  complianceCard { authorizationType authorizationOther consentDate processingPurpose sourceType sourceOther }";

async fn a_card_edit_returns_the_person_as_stored(app: &TestApp) {
    let id = app.person_id("stored@example.com").await;
    app.ok(&app.sales(), UPDATE_CARD, json!({ "id": id, "card": { "authorizationType": "CONSENT", "consentDate": "2026-02-03", "processingPurpose": "news", "sourceType": "OTHER", "sourceOther": "Trade fair" } }))
        .await;
    let edited = app
        .ok(
            &app.sales(),
            &format!("mutation($id: UUID!, $card: ComplianceCardInput!) {{ updateComplianceCard(personId: $id, input: $card) {{ {PERSON_FIELDS} }} }}"),
            json!({ "id": id, "card": { "authorizationType": "CONSENT", "consentDate": "2026-02-03", "processingPurpose": "events", "sourceType": "IMPORT" } }),
        )
        .await;
    let read = app
        .ok(
            &app.sales(),
            &format!("query($id: UUID!) {{ person(id: $id) {{ {PERSON_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(edited["updateComplianceCard"], read["person"]);
    assert_eq!(
        read["person"]["complianceCard"],
        json!({ "authorizationType": "CONSENT", "authorizationOther": null, "consentDate": "2026-02-03",
                "processingPurpose": "events", "sourceType": "IMPORT", "sourceOther": null })
    );
}

async fn card_update_is_audited_with_before_and_after(app: &TestApp) {
    let id = app.person_id("a@example.com").await;
    app.ok(&app.sales(), UPDATE_CARD, json!({ "id": id, "card": { "authorizationType": "OTHER", "authorizationOther": "Contract talks" } }))
        .await;
    let event = app.last_event().await;
    assert_eq!(event["action"], "COMPLIANCE_CARD_UPDATED");
    assert_eq!(event["actor"], "sam-sales");
    assert_eq!(event["personIds"], json!([id]));
    assert_eq!(
        event["changes"],
        json!([
            { "personId": id, "field": "authorizationType", "before": null, "after": "OTHER", "erased": false },
            { "personId": id, "field": "authorizationOther", "before": null, "after": "Contract talks", "erased": false },
        ])
    );
}

async fn bulk_update_by_ids_is_one_event_with_each_persons_values(app: &TestApp) {
    let a = app.create_person(json!({ "email": "a@example.com", "complianceCard": { "authorizationType": "LEGAL_OBLIGATION" } })).await["id"].clone();
    let b = app.person_id("b@example.com").await;
    let data = app
        .ok(&app.sales(), BULK_AUTH, json!({ "sel": { "ids": [a, b] }, "in": { "authorizationType": "LEGITIMATE_INTEREST" } }))
        .await;
    let result = &data["bulkUpdateAuthorization"];
    assert_eq!(result["updatedCount"], 2);
    assert_eq!(result["auditEvent"]["action"], "AUTHORIZATION_BULK_UPDATED");
    let mut ids: Vec<Value> = result["auditEvent"]["personIds"]
        .as_array()
        .unwrap()
        .clone();
    ids.sort_by_key(|v| v.to_string());
    let mut expected = vec![a.clone(), json!(b)];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(ids, expected);
    let changes = result["auditEvent"]["changes"].as_array().unwrap();
    assert!(changes.contains(&json!({ "personId": a, "field": "authorizationType", "before": "LEGAL_OBLIGATION", "after": "LEGITIMATE_INTEREST" })));
    assert!(changes.contains(&json!({ "personId": b, "field": "authorizationType", "before": null, "after": "LEGITIMATE_INTEREST" })));
}

/// An audit event's changes, in (person, field) order.
fn sorted_changes(event: &Value) -> Vec<Value> {
    let mut changes = event["changes"].as_array().unwrap().clone();
    changes.sort_by_key(|c| format!("{}{}", c["personId"], c["field"]));
    changes
}

async fn bulk_updates_record_every_old_card_value_as_stored(app: &TestApp) {
    let purpose = "Newsletter « été », \"quoted\" \\ back\u{1F600}";
    let consent = app
        .create_person(json!({ "email": "c@example.com", "complianceCard": { "authorizationType": "CONSENT", "consentDate": "2026-02-03", "processingPurpose": purpose, "sourceType": "OTHER", "sourceOther": "Salon d'été" } }))
        .await["id"]
        .clone();
    let other = app
        .create_person(json!({ "email": "o@example.com", "complianceCard": { "authorizationType": "OTHER", "authorizationOther": "Vertrag §4" } }))
        .await["id"]
        .clone();
    let data = app
        .ok(&app.sales(), BULK_AUTH, json!({ "sel": { "ids": [consent, other] }, "in": { "authorizationType": "LEGAL_OBLIGATION" } }))
        .await;
    let changes = sorted_changes(&data["bulkUpdateAuthorization"]["auditEvent"]);
    let expected = sorted_changes(&json!({ "changes": [
        json!({ "personId": consent, "field": "authorizationType", "before": "CONSENT", "after": "LEGAL_OBLIGATION" }),
        json!({ "personId": consent, "field": "consentDate", "before": "2026-02-03", "after": null }),
        json!({ "personId": consent, "field": "processingPurpose", "before": purpose, "after": null }),
        json!({ "personId": other, "field": "authorizationType", "before": "OTHER", "after": "LEGAL_OBLIGATION" }),
        json!({ "personId": other, "field": "authorizationOther", "before": "Vertrag §4", "after": null }),
    ] }));
    assert_eq!(changes, expected);
    let data = app
        .ok(
            &app.sales(),
            BULK_SOURCE_CHANGES,
            json!({ "sel": { "ids": [consent] }, "in": { "sourceType": "IMPORT" } }),
        )
        .await;
    assert_eq!(
        sorted_changes(&data["bulkUpdateSource"]["auditEvent"]),
        vec![
            json!({ "personId": consent, "field": "sourceOther", "before": "Salon d'été", "after": null }),
            json!({ "personId": consent, "field": "sourceType", "before": "OTHER", "after": "IMPORT" }),
        ]
    );
}

async fn bulk_update_with_an_unknown_id_changes_nothing(app: &TestApp) {
    let a = app.person_id("a@example.com").await;
    let unknown = "01900000-0000-7000-8000-00000000abcd";
    let before = app.audit_count().await;
    let err = app
        .err(&app.sales(), BULK_AUTH, json!({ "sel": { "ids": [a, unknown] }, "in": { "authorizationType": "LEGITIMATE_INTEREST" } }))
        .await;
    assert_eq!(code(&err), "NOT_FOUND");
    assert!(err["message"].as_str().unwrap().contains(unknown));
    assert_eq!(err["extensions"]["ids"], json!([unknown]));
    assert_eq!(app.audit_count().await, before);
    let missing = app
        .ok(
            &app.sales(),
            "{ people(filter: {missingAuthorization: true}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(missing["people"]["totalCount"], 1, "all or nothing");
}

async fn unknown_ids_past_the_first_chunk_are_all_named_and_nothing_changes(app: &TestApp) {
    // 12,000 ids in three chunks of up to 5,000 (in id order): the first is
    // updated before an unknown id turns up in the second, and another
    // unknown id, in the third, is found by checking the rest of the list.
    consentry::service::seed::seed(&app.db, 11_998)
        .await
        .unwrap();
    let mut ids: Vec<String> = <entity::person::Entity as sea_orm::EntityTrait>::find()
        .all(app.db.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    ids.sort();
    let near = &ids[7_000];
    let middle = format!(
        "{}{}",
        &near[..35],
        if near.ends_with('0') { '1' } else { '0' }
    );
    let last = "ffffffff-ffff-7fff-bfff-ffffffffffff".to_owned();
    ids.push(last.clone());
    ids.push(middle.clone());
    let before = app.audit_count().await;
    let with_it = "SELECT COUNT(*) FROM person WHERE authorization_type = 'LEGITIMATE_INTEREST'";
    let had_it = app.sql_i64(with_it).await;
    let err = app
        .err(
            &app.sales(),
            BULK_AUTH,
            json!({ "sel": { "ids": ids }, "in": { "authorizationType": "LEGITIMATE_INTEREST" } }),
        )
        .await;
    assert_eq!(code(&err), "NOT_FOUND");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("2 selected people not found"),
        "{err}"
    );
    assert_eq!(err["extensions"]["ids"], json!([middle, last]));
    assert_eq!(app.audit_count().await, before);
    assert_eq!(app.sql_i64(with_it).await, had_it, "all or nothing");
}

async fn bulk_update_by_filter_touches_only_matches(app: &TestApp) {
    app.person_id("x1@example.com").await;
    app.person_id("x2@example.com").await;
    app.create_person(json!({ "email": "y@example.com", "complianceCard": { "authorizationType": "PUBLIC_INTEREST" } })).await;
    let data = app
        .ok(
            &app.sales(),
            BULK_AUTH,
            json!({ "sel": { "filter": { "missingAuthorization": true } },
                    "in": { "authorizationType": "CONSENT", "consentDate": "2026-03-04", "processingPurpose": "events" } }),
        )
        .await;
    assert_eq!(data["bulkUpdateAuthorization"]["updatedCount"], 2);
    assert_eq!(
        data["bulkUpdateAuthorization"]["auditEvent"]["details"]["selection"],
        "filter"
    );
    let consent = app
        .ok(
            &app.sales(),
            "{ people(filter: {authorizationTypes: [CONSENT]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(consent["people"]["totalCount"], 2);
}

async fn bulk_update_by_filter_over_several_chunks_updates_exactly_the_matches(app: &TestApp) {
    consentry::service::seed::seed(&app.db, 48_000)
        .await
        .unwrap();
    let without = "SELECT count(*) FROM person WHERE authorization_type IS NULL";
    let missing = app.sql_i64(without).await;
    assert!(missing > 5_000, "matches span two chunks: {missing}");
    let vital = "SELECT count(*) FROM person WHERE authorization_type = 'VITAL_INTERESTS'";
    let vital_before = app.sql_i64(vital).await;
    let data = app
        .ok(
            &app.sales(),
            BULK_AUTH,
            json!({ "sel": { "filter": { "missingAuthorization": true } },
                    "in": { "authorizationType": "VITAL_INTERESTS" } }),
        )
        .await;
    assert_eq!(data["bulkUpdateAuthorization"]["updatedCount"], missing);
    assert_eq!(
        data["bulkUpdateAuthorization"]["auditEvent"]["personIds"]
            .as_array()
            .unwrap()
            .len() as i64,
        missing
    );
    assert_eq!(app.sql_i64(without).await, 0);
    assert_eq!(app.sql_i64(vital).await, vital_before + missing);
}

async fn bulk_source_update_keeps_the_authorization_half(app: &TestApp) {
    let id = app
        .create_person(json!({ "email": "k@example.com", "complianceCard": { "authorizationType": "LEGAL_OBLIGATION", "sourceType": "IMPORT" } }))
        .await["id"]
        .clone();
    let data = app
        .ok(&app.sales(), BULK_SOURCE, json!({ "sel": { "ids": [id] }, "in": { "sourceType": "OTHER", "sourceOther": "Webinar" } }))
        .await;
    assert_eq!(
        data["bulkUpdateSource"]["auditEvent"]["action"],
        "SOURCE_BULK_UPDATED"
    );
    let p = app
        .ok(&app.sales(), "query($id: UUID!) { person(id: $id) { complianceCard { authorizationType sourceType sourceOther } } }", json!({ "id": id }))
        .await;
    assert_eq!(
        p["person"]["complianceCard"],
        json!({ "authorizationType": "LEGAL_OBLIGATION", "sourceType": "OTHER", "sourceOther": "Webinar" })
    );
}

async fn bulk_update_rules_are_the_card_rules(app: &TestApp) {
    let id = app.person_id("z@example.com").await;
    let err = app
        .err(
            &app.sales(),
            BULK_AUTH,
            json!({ "sel": { "ids": [id] }, "in": { "authorizationType": "CONSENT" } }),
        )
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "consentDate");
}

async fn a_selection_needs_exactly_one_of_ids_or_filter(app: &TestApp) {
    for sel in [json!({}), json!({ "ids": [], "filter": {} })] {
        let err = app
            .err(
                &app.sales(),
                BULK_SOURCE,
                json!({ "sel": sel, "in": { "sourceType": "IMPORT" } }),
            )
            .await;
        assert_eq!(code(&err), "BAD_USER_INPUT");
        assert_eq!(err["extensions"]["field"], "selection");
    }
}

async fn bulk_update_handles_100000_people_in_one_call(app: &TestApp) {
    consentry::service::seed::seed(&app.db, 100_000)
        .await
        .unwrap();
    let ids: Vec<String> = {
        let rows = <entity::person::Entity as sea_orm::EntityTrait>::find()
            .all(app.db.conn())
            .await
            .unwrap();
        rows.into_iter().map(|r| r.id.to_string()).collect()
    };
    assert_eq!(ids.len(), 100_000);
    let data = app
        .ok(
            &app.sales(),
            BULK_SOURCE,
            json!({ "sel": { "ids": ids }, "in": { "sourceType": "CRM_SYNC" } }),
        )
        .await;
    assert_eq!(data["bulkUpdateSource"]["updatedCount"], 100_000);
    assert_eq!(
        data["bulkUpdateSource"]["auditEvent"]["personIds"]
            .as_array()
            .unwrap()
            .len(),
        100_000
    );
    let crm = app
        .ok(
            &app.sales(),
            "{ people(first: 1, filter: {sourceTypes: [CRM_SYNC]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(crm["people"]["totalCount"], 100_000);
    let v = app
        .ok(&app.admin(), "{ verifyAuditTrail { valid } }", json!({}))
        .await;
    assert_eq!(v["verifyAuditTrail"]["valid"], true);
}

async fn concurrent_card_edits_of_one_person_each_record_the_card_they_replaced(app: &TestApp) {
    const SOURCES: [&str; 4] = ["CRM_SYNC", "IMPORT", "MANUAL_UPLOAD", "CHROME_EXTENSION"];
    let id = app.person_id("contended@example.com").await;
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..8 {
        let (router, token, id) = (app.router.clone(), app.sales(), id.clone());
        writers.spawn(async move {
            for round in 0..4 {
                let source = SOURCES[(writer + round) % SOURCES.len()];
                let doc = format!("mutation {{ updateComplianceCard(personId: \"{id}\", input: {{sourceType: {source}}}) {{ id }} }}");
                let body = crate::helpers::graphql(&router, &token, &doc).await;
                assert!(body.get("errors").is_none(), "{body}");
            }
        });
    }
    while let Some(result) = writers.join_next().await {
        result.unwrap();
    }
    let events = app
        .ok(
            &app.admin(),
            "query($id: UUID!) { auditEvents(first: 100, filter: {personId: $id, action: COMPLIANCE_CARD_UPDATED}) { nodes { sequence changes { field before after } } } }",
            json!({ "id": id }),
        )
        .await["auditEvents"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(events.len(), 32);
    // Oldest first: each change starts from the value the one before left.
    let mut current = Value::Null;
    let mut changed = 0;
    for event in events.iter().rev() {
        for change in event["changes"].as_array().unwrap() {
            if change["field"] == "sourceType" {
                assert_eq!(change["before"], current, "event {}", event["sequence"]);
                current = change["after"].clone();
                changed += 1;
            }
        }
    }
    assert!(changed > 1, "the edits changed the card");
    let card = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { complianceCard { sourceType } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(card["person"]["complianceCard"]["sourceType"], current);
}

backend_tests!(
    concurrent_card_edits_of_one_person_each_record_the_card_they_replaced,
    consent_without_a_date_is_refused,
    consent_without_a_purpose_is_refused,
    consent_dated_in_the_future_is_refused,
    consent_fields_are_forbidden_for_other_bases,
    other_basis_needs_non_blank_text,
    other_source_needs_non_blank_text,
    replacing_the_card_away_from_consent_clears_consent_fields,
    a_card_edit_returns_the_person_as_stored,
    card_update_is_audited_with_before_and_after,
    bulk_update_by_ids_is_one_event_with_each_persons_values,
    bulk_updates_record_every_old_card_value_as_stored,
    bulk_update_with_an_unknown_id_changes_nothing,
    unknown_ids_past_the_first_chunk_are_all_named_and_nothing_changes,
    bulk_update_by_filter_touches_only_matches,
    bulk_update_by_filter_over_several_chunks_updates_exactly_the_matches,
    bulk_source_update_keeps_the_authorization_half,
    bulk_update_rules_are_the_card_rules,
    a_selection_needs_exactly_one_of_ids_or_filter,
    bulk_update_handles_100000_people_in_one_call,
);
