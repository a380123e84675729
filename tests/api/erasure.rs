//! Erasure: the person is gone everywhere, their personal values in the
//! audit trail are crypto-shredded while the chain verifies, their email is
//! suppressed (admins may override), and on SQLite their bytes leave the
//! database file and its WAL.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, code};

const ERASE: &str = "mutation($id: UUID!, $r: String!) {
  erasePerson(id: $id, reason: $r) { personId auditEvent { action actor reason personIds } }
}";

/// A person with history: card, an update, an email, an unsubscribe.
async fn person_with_history(app: &TestApp, email: &str) -> String {
    let id = app
        .create_person(json!({ "firstName": "Zelda", "lastName": "Quixotic", "email": email, "phone": "+1 555 0199",
                               "complianceCard": { "authorizationType": "CONSENT", "consentDate": "2026-01-05", "processingPurpose": "Zelda's newsletter" } }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &app.sales(),
        "mutation($id: UUID!) { updatePerson(id: $id, input: {title: \"Chief Quixote\"}) { id } }",
        json!({ "id": id }),
    )
    .await;
    app.ok(&app.sales(), "mutation($id: UUID!) { sendEmail(personId: $id, subject: \"Hello Zelda\", textBody: \"Hi\") { id } }", json!({ "id": id }))
        .await;
    app.ok(
        &app.sales(),
        "mutation($id: UUID!) { unsubscribe(personId: $id, reason: \"no more\") { id } }",
        json!({ "id": id }),
    )
    .await;
    id
}

async fn erase(app: &TestApp, id: &str) -> Value {
    app.ok(
        &app.compliance(),
        ERASE,
        json!({ "id": id, "r": "Art. 17 request, ticket 4711" }),
    )
    .await["erasePerson"]
        .clone()
}

async fn an_erased_person_is_not_found_anywhere(app: &TestApp) {
    let id = person_with_history(app, "zelda@example.com").await;
    let result = erase(app, &id).await;
    assert_eq!(result["personId"], id);
    assert_eq!(
        result["auditEvent"],
        json!({ "action": "PERSON_ERASED", "actor": "cora-compliance", "reason": "Art. 17 request, ticket 4711", "personIds": [id] })
    );
    let p = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(p["person"], Value::Null);
    for doc in [
        "mutation($id: UUID!) { updatePerson(id: $id, input: {title: \"x\"}) { id } }",
        "mutation($id: UUID!) { unsubscribe(personId: $id) { id } }",
        "mutation($id: UUID!) { sendEmail(personId: $id, subject: \"s\", textBody: \"t\") { id } }",
        "mutation($id: UUID!) { erasePerson(id: $id, reason: \"again\") { personId } }",
    ] {
        let err = app.err(&app.admin(), doc, json!({ "id": id })).await;
        assert_eq!(code(&err), "NOT_FOUND", "{doc}: {err}");
    }
    let people = app
        .ok(&app.sales(), "{ people { totalCount } }", json!({}))
        .await;
    assert_eq!(people["people"]["totalCount"], 0);
}

async fn erased_values_read_as_erased_and_the_chain_still_verifies(app: &TestApp) {
    let id = person_with_history(app, "zelda@example.com").await;
    erase(app, &id).await;
    let data = app
        .ok(
            &app.admin(),
            "query($id: UUID!) { auditEvents(filter: {personId: $id}) { nodes { action reason changes { field before after erased } } } verifyAuditTrail { valid } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["verifyAuditTrail"]["valid"], true);
    let text = data.to_string();
    for secret in [
        "Zelda",
        "zelda@example.com",
        "Quixot",
        "555 0199",
        "newsletter",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} must not survive erasure: {text}"
        );
    }
    let nodes = data["auditEvents"]["nodes"].as_array().unwrap();
    let created = nodes
        .iter()
        .find(|n| n["action"] == "PERSON_CREATED")
        .unwrap();
    let changes = created["changes"].as_array().unwrap();
    let email = changes.iter().find(|c| c["field"] == "email").unwrap();
    assert_eq!(
        email,
        &json!({ "field": "email", "before": null, "after": null, "erased": true })
    );
    let basis = changes
        .iter()
        .find(|c| c["field"] == "authorizationType")
        .unwrap();
    assert_eq!(
        basis,
        &json!({ "field": "authorizationType", "before": null, "after": "CONSENT", "erased": false }),
        "not personal: kept"
    );
}

async fn sales_may_not_erase(app: &TestApp) {
    let id = app.person_id("s@example.com").await;
    let err = app
        .err(&app.sales(), ERASE, json!({ "id": id, "r": "x" }))
        .await;
    assert_eq!(code(&err), "FORBIDDEN");
    assert_eq!(app.last_event().await["outcome"], "DENIED");
    let p = app
        .ok(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(p["person"]["id"], id);
}

async fn erasure_needs_a_reason(app: &TestApp) {
    let id = app.person_id("r@example.com").await;
    let err = app
        .err(&app.admin(), ERASE, json!({ "id": id, "r": "  " }))
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "reason");
}

async fn an_erased_email_cannot_come_back_without_an_admin_override(app: &TestApp) {
    let id = app.person_id("Back@Example.com").await;
    erase(app, &id).await;
    let create = "mutation($i: CreatePersonInput!) { createPerson(input: $i) { id email } }";
    let err = app
        .err(
            &app.sales(),
            create,
            json!({ "i": { "email": "back@example.COM" } }),
        )
        .await;
    assert_eq!(code(&err), "CONFLICT", "{err}");
    let other = app.person_id("other@example.com").await;
    let err = app
        .err(&app.sales(), "mutation($id: UUID!) { updatePerson(id: $id, input: {email: \"BACK@example.com\"}) { id } }", json!({ "id": other }))
        .await;
    assert_eq!(
        code(&err),
        "CONFLICT",
        "an email change may not bring it back either"
    );

    let err = app.err(&app.sales(), create, json!({ "i": { "email": "back@example.com", "overrideSuppression": true, "overrideReason": "re-consented" } })).await;
    assert_eq!(code(&err), "FORBIDDEN", "only admins override");
    let err = app
        .err(
            &app.admin(),
            create,
            json!({ "i": { "email": "back@example.com", "overrideSuppression": true } }),
        )
        .await;
    assert_eq!(err["extensions"]["field"], "overrideReason");

    let data = app
        .ok(&app.admin(), create, json!({ "i": { "email": "back@example.com", "overrideSuppression": true, "overrideReason": "signed new consent form" } }))
        .await;
    assert_eq!(data["createPerson"]["email"], "back@example.com");
    let event = app.last_event().await;
    assert_eq!(event["action"], "PERSON_CREATED");
    assert_eq!(event["reason"], "signed new consent form");
    assert_eq!(event["details"]["suppressionOverridden"], true);
}

async fn the_sqlite_file_and_wal_keep_no_bytes_of_an_erased_person(app: &TestApp) {
    if app.is_postgres() {
        return; // PostgreSQL: VACUUM and backups are the operator's part (README).
    }
    let email = "zelda.unique.7f3e@example.com";
    let id = person_with_history(app, email).await;
    erase(app, &id).await;
    let path = app.sqlite_path();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
    for needle in [email, "Quixotic", "Chief Quixote", "555 0199"] {
        let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "{needle} is still in the database file or WAL");
    }
}

backend_tests!(
    an_erased_person_is_not_found_anywhere,
    erased_values_read_as_erased_and_the_chain_still_verifies,
    sales_may_not_erase,
    erasure_needs_a_reason,
    an_erased_email_cannot_come_back_without_an_admin_override,
    the_sqlite_file_and_wal_keep_no_bytes_of_an_erased_person,
);
