//! Two-way opt-out sync with a fake Salesforce (wiremock speaking its REST
//! shapes): pagination, pull, push, conflicts, a failure mid-run followed by
//! a resume, an expired token, and overlapping runs.

use std::time::Duration;

use axum::Router;
use consentry::config::Secret;
use consentry::service::crm::Salesforce;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param_contains};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::backend_tests;
use crate::helpers::{TestApp, code, graphql};

const QUERY_PATH: &str = "/services/data/v60.0/query";
const NEXT_PATH: &str = "/services/data/v60.0/query/01gD0000000NEXT-2000";
const A: &str = "003000000000001AAA";
const B: &str = "003000000000002AAA";
const SYNC: &str =
    "mutation { syncCrm { pulled pushed conflicts errors error conflictPersonIds } }";

fn contact(id: &str, email: &str, opted_out: bool, modstamp: &str) -> Value {
    json!({ "attributes": { "type": "Contact", "url": format!("/services/data/v60.0/sobjects/Contact/{id}") },
            "Id": id, "Email": email, "HasOptedOutOfEmail": opted_out, "SystemModstamp": modstamp })
}

fn page(records: Vec<Value>, next: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "totalSize": records.len(), "done": next.is_none(), "nextRecordsUrl": next, "records": records,
    }))
}

fn router(app: &TestApp, server: &MockServer) -> Router {
    let sf = Salesforce::new(&server.uri(), Secret::new("sf-token")).unwrap();
    app.with_settings(|s| s.salesforce = Some(sf))
}

async fn sync(app: &TestApp, router: &Router) -> Value {
    let body = graphql(router, &app.admin(), SYNC).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["syncCrm"].clone()
}

async fn history(app: &TestApp, id: &str) -> Value {
    app.ok(
        &app.sales(),
        "query($id: UUID!) { person(id: $id) { unsubscribed subscriptionHistory { type channel actor } } }",
        json!({ "id": id }),
    )
    .await["person"]
        .clone()
}

async fn a_pull_follows_every_page_and_applies_crm_opt_outs(app: &TestApp) {
    let a = app
        .create_person(json!({ "email": "a@example.com", "salesforceId": A }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = app.person_id("b@example.com").await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .and(header("authorization", "Bearer sf-token"))
        .respond_with(page(
            vec![contact(
                A,
                "a@elsewhere.example",
                true,
                "2026-11-01T10:00:00.000+0000",
            )],
            Some(NEXT_PATH),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(NEXT_PATH))
        .respond_with(page(
            vec![contact(
                B,
                "B@Example.com",
                true,
                "2026-11-02T10:00:00.000+0000",
            )],
            None,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let r = sync(app, &router(app, &server)).await;
    assert_eq!(
        r,
        json!({ "pulled": 2, "pushed": 0, "conflicts": 0, "errors": 0, "error": null, "conflictPersonIds": [] })
    );
    for id in [&a, &b] {
        let h = history(app, id).await;
        assert_eq!(
            h["unsubscribed"], true,
            "matched by salesforceId, then by email"
        );
        assert_eq!(
            h["subscriptionHistory"],
            json!([{ "type": "OPT_OUT", "channel": "CRM_SYNC", "actor": "crm-sync" }])
        );
    }
    let event = app.last_event().await;
    assert_eq!(event["action"], "CRM_SYNCED");
    assert_eq!(event["details"]["pulled"], 2);
}

async fn a_crm_opt_in_for_an_unsubscribed_person_is_reported_not_applied(app: &TestApp) {
    let c = app
        .create_person(json!({ "email": "c@example.com", "salesforceId": A }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &app.sales(),
        "mutation($id: UUID!) { unsubscribe(personId: $id) { id } }",
        json!({ "id": c }),
    )
    .await;
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(page(
            vec![contact(
                A,
                "c@example.com",
                false,
                "2026-11-03T10:00:00.000+0000",
            )],
            None,
        ))
        .mount(&server)
        .await;
    let r = sync(app, &router(app, &server)).await;
    assert_eq!(r["conflicts"], 1);
    assert_eq!(r["conflictPersonIds"], json!([c]));
    assert_eq!(
        history(app, &c).await["unsubscribed"],
        true,
        "a CRM sync never resubscribes"
    );
}

async fn local_opt_outs_and_resubscribes_are_pushed(app: &TestApp) {
    let a = app
        .create_person(json!({ "email": "a@example.com", "salesforceId": A }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &app.sales(),
        "mutation($id: UUID!) { unsubscribe(personId: $id) { id } }",
        json!({ "id": a }),
    )
    .await;
    let today = chrono::Utc::now().date_naive();
    app.ok(
        &app.admin(),
        &format!("mutation {{ resubscribe(personId: \"{a}\", reconsent: {{consentDate: \"{today}\", method: \"form\", evidence: \"scan\"}}) {{ id }} }}"),
        json!({}),
    )
    .await;
    let server = MockServer::start().await;
    let contact_path = format!("/services/data/v60.0/sobjects/Contact/{A}");
    Mock::given(method("PATCH"))
        .and(path(contact_path.as_str()))
        .and(body_json(json!({ "HasOptedOutOfEmail": true })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(contact_path.as_str()))
        .and(body_json(json!({ "HasOptedOutOfEmail": false })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(page(vec![], None))
        .mount(&server)
        .await;
    let router = router(app, &server);
    assert_eq!(sync(app, &router).await["pushed"], 2);
    assert_eq!(sync(app, &router).await["pushed"], 0, "pushed once");
    let patches: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        patches,
        vec![
            json!({ "HasOptedOutOfEmail": true }),
            json!({ "HasOptedOutOfEmail": false })
        ],
        "in order"
    );
}

async fn a_failure_mid_run_loses_nothing_and_the_next_run_resumes(app: &TestApp) {
    let a = app
        .create_person(json!({ "email": "a@example.com", "salesforceId": A }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = app
        .create_person(json!({ "email": "b@example.com", "salesforceId": B }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(page(
            vec![contact(
                A,
                "a@example.com",
                true,
                "2026-11-01T10:00:00.000+0000",
            )],
            Some(NEXT_PATH),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(NEXT_PATH))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(
                json!([{ "errorCode": "SERVER_UNAVAILABLE", "message": "try later" }]),
            ),
        )
        .mount(&server)
        .await;
    let router = router(app, &server);
    let first = sync(app, &router).await;
    assert_eq!(first["pulled"], 1);
    assert_eq!(first["errors"], 1);
    assert!(first["error"].as_str().unwrap().contains("500"), "{first}");
    assert_eq!(
        history(app, &a).await["unsubscribed"],
        true,
        "what was applied stays"
    );

    server.reset().await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .and(query_param_contains("q", A))
        .and(query_param_contains("q", "2026-11-01T10:00:00.000Z"))
        .respond_with(page(
            vec![contact(
                B,
                "b@example.com",
                true,
                "2026-11-02T10:00:00.000+0000",
            )],
            None,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let second = sync(app, &router).await;
    assert_eq!(second["errors"], 0, "{second}");
    assert_eq!(second["pulled"], 1);
    assert_eq!(history(app, &b).await["unsubscribed"], true);
    assert_eq!(
        history(app, &a).await["subscriptionHistory"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "not applied twice"
    );
}

async fn an_expired_token_fails_the_run_and_changes_nothing(app: &TestApp) {
    let a = app
        .create_person(json!({ "email": "a@example.com", "salesforceId": A }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!([{ "errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid" }]),
        ))
        .mount(&server)
        .await;
    let r = sync(app, &router(app, &server)).await;
    assert_eq!(r["errors"], 1);
    assert_eq!(r["pulled"], 0);
    assert!(r["error"].as_str().unwrap().contains("401"), "{r}");
    assert_eq!(history(app, &a).await["unsubscribed"], false);
    let event = app.last_event().await;
    assert_eq!(event["action"], "CRM_SYNCED");
    assert_eq!(event["details"]["errors"], 1);
}

async fn two_runs_at_once_do_not_both_apply(app: &TestApp) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(page(vec![], None).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let router = router(app, &server);
    let first = {
        let router = router.clone();
        let token = app.admin();
        tokio::spawn(async move { graphql(&router, &token, SYNC).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = graphql(&router, &app.admin(), SYNC).await;
    assert_eq!(code(&second["errors"][0]), "CONFLICT", "{second}");
    let first = first.await.unwrap();
    assert!(first.get("errors").is_none(), "{first}");
    let third = graphql(&router, &app.admin(), SYNC).await;
    assert!(
        third.get("errors").is_none(),
        "the lease is released after a run: {third}"
    );
}

async fn sync_without_salesforce_configured_is_a_conflict(app: &TestApp) {
    let err = app.err(&app.admin(), SYNC, json!({})).await;
    assert_eq!(code(&err), "CONFLICT");
}

backend_tests!(
    a_pull_follows_every_page_and_applies_crm_opt_outs,
    a_crm_opt_in_for_an_unsubscribed_person_is_reported_not_applied,
    local_opt_outs_and_resubscribes_are_pushed,
    a_failure_mid_run_loses_nothing_and_the_next_run_resumes,
    an_expired_token_fails_the_run_and_changes_nothing,
    two_runs_at_once_do_not_both_apply,
    sync_without_salesforce_configured_is_a_conflict,
);
