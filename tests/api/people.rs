//! People: creating, editing, reading and listing with filters and cursors.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, code};

const PEOPLE: &str = "query($first: Int, $after: String, $filter: PeopleFilter) {
  people(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { cursor node { id email } }
    nodes { id email firstName }
    pageInfo { hasNextPage endCursor }
  }
}";

async fn people(app: &TestApp, vars: Value) -> Value {
    app.ok(&app.sales(), PEOPLE, vars).await["people"].clone()
}

fn emails(conn: &Value) -> Vec<String> {
    let mut v: Vec<String> = conn["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["email"].as_str().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

async fn create_person_stores_the_email_trimmed(app: &TestApp) {
    let p = app
        .create_person(json!({ "firstName": "Ada", "email": "  Ada@Example.com " }))
        .await;
    assert_eq!(p["email"], "Ada@Example.com");
    assert_eq!(p["unsubscribed"], false);
    assert_eq!(p["complianceCard"]["authorizationType"], Value::Null);
}

async fn create_person_with_a_card_records_it(app: &TestApp) {
    let p = app
        .create_person(json!({ "email": "c@example.com", "complianceCard": {
            "authorizationType": "CONSENT", "consentDate": "2026-01-02", "processingPurpose": "newsletter",
            "sourceType": "CHROME_EXTENSION" } }))
        .await;
    assert_eq!(p["complianceCard"]["authorizationType"], "CONSENT");
    assert_eq!(p["complianceCard"]["consentDate"], "2026-01-02");
    assert_eq!(p["complianceCard"]["sourceType"], "CHROME_EXTENSION");
}

async fn duplicate_email_differing_in_case_is_a_conflict_and_writes_nothing(app: &TestApp) {
    app.person_id("dup@example.com").await;
    let before = app.audit_count().await;
    let err = app
        .err(
            &app.sales(),
            "mutation { createPerson(input: {email: \" DUP@example.com\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&err), "CONFLICT");
    assert!(
        !err["message"].as_str().unwrap().contains("UNIQUE"),
        "no raw SQL error: {err}"
    );
    assert_eq!(app.audit_count().await, before);
}

async fn invalid_email_is_bad_input_naming_the_field(app: &TestApp) {
    let err = app
        .err(
            &app.sales(),
            "mutation { createPerson(input: {email: \"not-an-email\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "email");
}

async fn update_person_changes_given_fields_and_null_clears(app: &TestApp) {
    let id = app
        .create_person(json!({ "firstName": "Ada", "lastName": "Lovelace", "company": "AE", "email": "u@example.com" }))
        .await["id"]
        .clone();
    let data = app
        .ok(
            &app.sales(),
            "mutation($id: UUID!) { updatePerson(id: $id, input: {lastName: \"King\", company: null}) { firstName lastName company email } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["updatePerson"],
        json!({ "firstName": "Ada", "lastName": "King", "company": null, "email": "u@example.com" })
    );
}

async fn update_of_an_unknown_person_is_not_found(app: &TestApp) {
    let err = app
        .err(
            &app.sales(),
            "mutation { updatePerson(id: \"01900000-0000-7000-8000-000000000000\", input: {firstName: \"x\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&err), "NOT_FOUND");
}

async fn person_is_null_when_absent(app: &TestApp) {
    let data = app
        .ok(
            &app.sales(),
            "{ person(id: \"01900000-0000-7000-8000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(data["person"], Value::Null);
}

async fn people_pages_follow_their_cursors(app: &TestApp) {
    for i in 0..7 {
        app.person_id(&format!("p{i}@example.com")).await;
    }
    let page1 = people(app, json!({ "first": 3 })).await;
    assert_eq!(page1["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(page1["pageInfo"]["hasNextPage"], true);
    assert_eq!(page1["totalCount"], 7);
    let page2 = people(
        app,
        json!({ "first": 3, "after": page1["pageInfo"]["endCursor"] }),
    )
    .await;
    let page3 = people(
        app,
        json!({ "first": 3, "after": page2["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(page3["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(page3["pageInfo"]["hasNextPage"], false);
    let mut all: Vec<String> = [page1, page2, page3].iter().flat_map(emails).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 7);
}

async fn people_first_outside_1_to_500_is_bad_input(app: &TestApp) {
    for first in [0, 501] {
        let err = app
            .err(&app.sales(), PEOPLE, json!({ "first": first }))
            .await;
        assert_eq!(code(&err), "BAD_USER_INPUT");
        assert_eq!(err["extensions"]["field"], "first");
    }
}

async fn a_foreign_cursor_is_bad_input(app: &TestApp) {
    let err = app
        .err(&app.sales(), PEOPLE, json!({ "after": "bm90LWEtY3Vyc29y" }))
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "after");
}

async fn search_matches_names_email_and_company_case_insensitively(app: &TestApp) {
    app.create_person(json!({ "firstName": "Grace", "email": "g@example.com" }))
        .await;
    app.create_person(json!({ "lastName": "HOPPERTON", "email": "h@example.com" }))
        .await;
    app.create_person(json!({ "company": "Grasshopper Inc", "email": "i@example.com" }))
        .await;
    app.create_person(json!({ "email": "HOPPER@example.com" }))
        .await;
    app.create_person(json!({ "firstName": "Alan", "email": "a@example.com" }))
        .await;
    let found = people(app, json!({ "filter": { "search": "hoPPer" } })).await;
    assert_eq!(
        emails(&found),
        vec!["HOPPER@example.com", "h@example.com", "i@example.com"]
    );
    let none = people(app, json!({ "filter": { "search": "100%" } })).await;
    assert_eq!(none["totalCount"], 0);
}

async fn filters_on_card_and_subscription_combine(app: &TestApp) {
    app.create_person(json!({ "email": "li@example.com", "complianceCard": { "authorizationType": "LEGITIMATE_INTEREST", "sourceType": "IMPORT" } })).await;
    app.create_person(json!({ "email": "lo@example.com", "complianceCard": { "authorizationType": "LEGAL_OBLIGATION", "sourceType": "CRM_SYNC" } })).await;
    let none = app
        .create_person(json!({ "email": "none@example.com" }))
        .await;
    app.ok(
        &app.sales(),
        "mutation($id: UUID!) { unsubscribe(personId: $id) { id } }",
        json!({ "id": none["id"] }),
    )
    .await;

    let by_type = people(app, json!({ "filter": { "authorizationTypes": ["LEGITIMATE_INTEREST", "LEGAL_OBLIGATION"], "sourceTypes": ["IMPORT"] } })).await;
    assert_eq!(emails(&by_type), vec!["li@example.com"]);
    let missing = people(app, json!({ "filter": { "missingAuthorization": true } })).await;
    assert_eq!(emails(&missing), vec!["none@example.com"]);
    let present = people(app, json!({ "filter": { "missingAuthorization": false } })).await;
    assert_eq!(emails(&present), vec!["li@example.com", "lo@example.com"]);
    let unsubscribed = people(app, json!({ "filter": { "unsubscribed": true } })).await;
    assert_eq!(emails(&unsubscribed), vec!["none@example.com"]);
}

async fn created_after_is_inclusive_and_created_before_exclusive(app: &TestApp) {
    app.person_id("first@example.com").await;
    let second = app
        .ok(
            &app.sales(),
            "mutation { createPerson(input: {email: \"second@example.com\"}) { createdAt } }",
            json!({}),
        )
        .await["createPerson"]["createdAt"]
        .clone();
    let after = people(app, json!({ "filter": { "createdAfter": second } })).await;
    assert_eq!(emails(&after), vec!["second@example.com"]);
    let before = people(app, json!({ "filter": { "createdBefore": second } })).await;
    assert_eq!(emails(&before), vec!["first@example.com"]);
}

async fn a_page_of_50_people_with_cards_costs_two_statements(app: &TestApp) {
    consentry::service::seed::seed(&app.db, 120).await.unwrap();
    let query = "{ people(first: 50) { totalCount nodes { id email complianceCard { authorizationType consentDate sourceType sourceOther } unsubscribed unsubscribedAt subscriptionStatus } pageInfo { hasNextPage } } }";
    app.settle().await;
    let before = app.db.statement_count();
    let data = app.ok(&app.sales(), query, json!({})).await;
    let statements = app.db.statement_count() - before;
    assert_eq!(data["people"]["nodes"].as_array().unwrap().len(), 50);
    assert_eq!(data["people"]["totalCount"], 120);
    assert!(
        statements <= 2,
        "one page query and one count, not one per person: {statements}"
    );
    assert!(statements > 0, "the counter counts");
}

async fn fragments_aliases_and_repeated_fields_of_a_person_resolve_into_one_object(app: &TestApp) {
    let p = app
        .create_person(json!({ "email": "f@example.com", "company": "Acme", "complianceCard": {
            "authorizationType": "CONSENT", "consentDate": "2026-01-02", "processingPurpose": "news",
            "sourceType": "IMPORT" } }))
        .await;
    let query = "{ people(first: 1) { edges { node {
        ...Contact
        ... on Person { card: complianceCard { sourceType } }
        ... { company }
        complianceCard { authorizationType }
        complianceCard { consentDate }
        kind: __typename
      } } } }
      fragment Contact on Person { id email complianceCard { processingPurpose } }";
    let data = app.ok(&app.sales(), query, json!({})).await;
    assert_eq!(
        data["people"]["edges"][0]["node"],
        json!({
            "id": p["id"],
            "email": "f@example.com",
            "complianceCard": {
                "processingPurpose": "news",
                "authorizationType": "CONSENT",
                "consentDate": "2026-01-02"
            },
            "card": { "sourceType": "IMPORT" },
            "company": "Acme",
            "kind": "Person"
        })
    );
}

async fn a_field_error_on_people_in_a_page_names_each_person_s_path(app: &TestApp) {
    app.person_id("e1@example.com").await;
    app.person_id("e2@example.com").await;
    let body = app
        .gql(
            &app.sales(),
            "{ people(first: 2) { nodes { id auditTrail { totalCount } } } }",
            json!({}),
        )
        .await;
    let errors = body["errors"].as_array().unwrap();
    let paths: Vec<&Value> = errors.iter().map(|e| &e["path"]).collect();
    assert_eq!(
        paths,
        vec![
            &json!(["people", "nodes", 0, "auditTrail"]),
            &json!(["people", "nodes", 1, "auditTrail"])
        ]
    );
    assert!(errors.iter().all(|e| code(e) == "FORBIDDEN"), "{body}");
}

#[tokio::test]
async fn on_sqlite_a_commit_reaches_the_database_file_with_no_further_write() {
    // The WAL is checkpointed in the background, not only once 10,000 pages
    // have piled up (the backstop) or when the last connection closes.
    let app = TestApp::sqlite().await;
    let email = "in.the.file.4c1d@example.com";
    app.person_id(email).await;
    let in_file = || {
        let bytes = std::fs::read(app.sqlite_path()).unwrap();
        bytes.windows(email.len()).any(|w| w == email.as_bytes())
    };
    let mut waited = 0;
    while !in_file() {
        assert!(
            waited < 200,
            "the commit is still only in the WAL after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
}

backend_tests!(
    a_page_of_50_people_with_cards_costs_two_statements,
    fragments_aliases_and_repeated_fields_of_a_person_resolve_into_one_object,
    a_field_error_on_people_in_a_page_names_each_person_s_path,
    create_person_stores_the_email_trimmed,
    create_person_with_a_card_records_it,
    duplicate_email_differing_in_case_is_a_conflict_and_writes_nothing,
    invalid_email_is_bad_input_naming_the_field,
    update_person_changes_given_fields_and_null_clears,
    update_of_an_unknown_person_is_not_found,
    person_is_null_when_absent,
    people_pages_follow_their_cursors,
    people_first_outside_1_to_500_is_bad_input,
    a_foreign_cursor_is_bad_input,
    search_matches_names_email_and_company_case_insensitively,
    filters_on_card_and_subscription_combine,
    created_after_is_inclusive_and_created_before_exclusive,
);
