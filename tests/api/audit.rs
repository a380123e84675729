//! The audit trail: one event per mutation, append-only storage, the hash
//! chain under tampering and concurrency, and reading events back.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, code, graphql};

/// Every Mutation field with a document that succeeds and the action its
/// audit event must carry. `every_mutation_field_has_an_audit_assertion`
/// fails when the schema gains a mutation that is missing here.
fn audited_mutations(id: &str, other: &str) -> Vec<(&'static str, String, &'static str)> {
    let today = chrono::Utc::now().date_naive();
    vec![
        (
            "createPerson",
            "mutation { createPerson(input: {email: \"new@example.com\"}) { id } }".into(),
            "PERSON_CREATED",
        ),
        (
            "updatePerson",
            format!(
                "mutation {{ updatePerson(id: \"{id}\", input: {{title: \"CEO\"}}) {{ id }} }}"
            ),
            "PERSON_UPDATED",
        ),
        (
            "updateComplianceCard",
            format!(
                "mutation {{ updateComplianceCard(personId: \"{id}\", input: {{authorizationType: LEGAL_OBLIGATION}}) {{ id }} }}"
            ),
            "COMPLIANCE_CARD_UPDATED",
        ),
        (
            "bulkUpdateAuthorization",
            format!(
                "mutation {{ bulkUpdateAuthorization(selection: {{ids: [\"{id}\", \"{other}\"]}}, input: {{authorizationType: PUBLIC_INTEREST}}) {{ updatedCount }} }}"
            ),
            "AUTHORIZATION_BULK_UPDATED",
        ),
        (
            "bulkUpdateSource",
            format!(
                "mutation {{ bulkUpdateSource(selection: {{ids: [\"{id}\"]}}, input: {{sourceType: IMPORT}}) {{ updatedCount }} }}"
            ),
            "SOURCE_BULK_UPDATED",
        ),
        (
            "sendEmail",
            format!(
                "mutation {{ sendEmail(personId: \"{id}\", subject: \"Hi\", textBody: \"Hello\") {{ id }} }}"
            ),
            "EMAIL_SENT",
        ),
        (
            "unsubscribe",
            format!("mutation {{ unsubscribe(personId: \"{id}\") {{ id }} }}"),
            "UNSUBSCRIBED",
        ),
        (
            "resubscribe",
            format!(
                "mutation {{ resubscribe(personId: \"{id}\", reconsent: {{consentDate: \"{today}\", method: \"form\", evidence: \"e\"}}) {{ id }} }}"
            ),
            "RESUBSCRIBED",
        ),
        (
            "syncCrm",
            "mutation { syncCrm { pulled } }".into(),
            "CRM_SYNCED",
        ),
        (
            "exportPerson",
            format!("mutation {{ exportPerson(id: \"{id}\") {{ csv }} }}"),
            "PERSON_EXPORTED",
        ),
        (
            "exportPersonData",
            format!("mutation {{ exportPersonData(id: \"{id}\") }}"),
            "PERSON_DATA_EXPORTED",
        ),
        (
            "erasePerson",
            format!("mutation {{ erasePerson(id: \"{id}\", reason: \"request\") {{ personId }} }}"),
            "PERSON_ERASED",
        ),
    ]
}

async fn every_mutation_writes_one_success_event_naming_its_people(app: &TestApp) {
    let id = app.person_id("one@example.com").await;
    let other = app.person_id("two@example.com").await;
    let crm = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({ "done": true, "records": [] })),
        )
        .mount(&crm)
        .await;
    let sf =
        consentry::service::crm::Salesforce::new(&crm.uri(), consentry::config::Secret::new("t"))
            .unwrap();
    let router = app.with_settings(|s| s.salesforce = Some(sf));
    for (name, document, action) in audited_mutations(&id, &other) {
        let before = app.audit_count().await;
        let body = graphql(&router, &app.admin(), &document).await;
        assert!(body.get("errors").is_none(), "{name}: {body}");
        assert_eq!(
            app.audit_count().await,
            before + 1,
            "{name} writes exactly one event"
        );
        let event = app.last_event().await;
        assert_eq!(event["action"], action, "{name}");
        assert_eq!(event["outcome"], "SUCCESS", "{name}");
        assert_eq!(event["actor"], "alice-admin", "{name}");
        assert_eq!(event["actorRoles"], json!(["admin"]), "{name}");
        assert!(event["requestId"].is_string(), "{name}");
        let named = event["personIds"].as_array().unwrap();
        match name {
            "createPerson" => assert_eq!(named.len(), 1, "names the new person"),
            "syncCrm" => assert!(named.is_empty(), "names only people in conflict"),
            _ => assert!(
                named.contains(&json!(id)),
                "{name} names its person: {event}"
            ),
        }
    }
}

async fn every_mutation_field_has_an_audit_assertion(app: &TestApp) {
    let data = app
        .ok(
            &app.admin(),
            "{ __schema { mutationType { fields { name } } } }",
            json!({}),
        )
        .await;
    let in_schema: BTreeSet<String> = data["__schema"]["mutationType"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    let asserted: BTreeSet<String> = audited_mutations("x", "y")
        .into_iter()
        .map(|(n, _, _)| n.to_owned())
        .collect();
    assert_eq!(
        in_schema, asserted,
        "each Mutation field needs an entry in audited_mutations()"
    );
}

async fn sequences_are_gap_free_and_chained(app: &TestApp) {
    let id = app.person_id("g@example.com").await;
    app.err(
        &app.sales(),
        "mutation { createPerson(input: {email: \"bad\"}) { id } }",
        json!({}),
    )
    .await;
    app.ok(
        &app.sales(),
        &format!("mutation {{ unsubscribe(personId: \"{id}\") {{ id }} }}"),
        json!({}),
    )
    .await;
    let data = app
        .ok(
            &app.admin(),
            "{ auditEvents(first: 10) { nodes { sequence previousHash hash } } }",
            json!({}),
        )
        .await;
    let nodes = data["auditEvents"]["nodes"].as_array().unwrap();
    let sequences: Vec<i64> = nodes
        .iter()
        .map(|n| n["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(
        sequences,
        vec![2, 1],
        "newest first, no gap for the failed call"
    );
    assert_eq!(nodes[0]["previousHash"], nodes[1]["hash"]);
    assert_eq!(nodes[1]["previousHash"], "0".repeat(64));
}

pub async fn disable_append_only_triggers(app: &TestApp) {
    let statements: &[&str] = if app.is_postgres() {
        &[
            "ALTER TABLE audit_event DISABLE TRIGGER ALL",
            "ALTER TABLE audit_event_person DISABLE TRIGGER ALL",
        ]
    } else {
        &[
            "DROP TRIGGER audit_event_no_update",
            "DROP TRIGGER audit_event_no_delete",
            "DROP TRIGGER audit_event_person_no_update",
            "DROP TRIGGER audit_event_person_no_delete",
        ]
    };
    for sql in statements {
        app.sql(sql).await.unwrap();
    }
}

async fn three_events(app: &TestApp) -> String {
    let id = app.person_id("t@example.com").await;
    app.ok(
        &app.sales(),
        &format!("mutation {{ updatePerson(id: \"{id}\", input: {{title: \"A\"}}) {{ id }} }}"),
        json!({}),
    )
    .await;
    app.ok(
        &app.sales(),
        &format!("mutation {{ updatePerson(id: \"{id}\", input: {{title: \"B\"}}) {{ id }} }}"),
        json!({}),
    )
    .await;
    id
}

async fn verify(app: &TestApp) -> Value {
    app.ok(
        &app.compliance(),
        "{ verifyAuditTrail { valid checkedEvents firstInvalidSequence headHash } }",
        json!({}),
    )
    .await["verifyAuditTrail"]
        .clone()
}

async fn an_intact_chain_verifies(app: &TestApp) {
    three_events(app).await;
    let v = verify(app).await;
    assert_eq!(v["valid"], true);
    assert_eq!(v["checkedEvents"], 3);
    assert_eq!(v["firstInvalidSequence"], Value::Null);
    assert_eq!(v["headHash"], app.last_event().await["hash"]);
}

async fn an_altered_event_is_detected_and_named(app: &TestApp) {
    three_events(app).await;
    disable_append_only_triggers(app).await;
    app.sql("UPDATE audit_event SET actor = 'mallory' WHERE sequence = 2")
        .await
        .unwrap();
    let v = verify(app).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["firstInvalidSequence"], 2);
    assert_eq!(v["checkedEvents"], 1);
}

async fn an_altered_change_value_is_detected(app: &TestApp) {
    three_events(app).await;
    disable_append_only_triggers(app).await;
    app.sql(
        "UPDATE audit_event_person SET changes = '[]' \
         WHERE event_id = (SELECT id FROM audit_event WHERE sequence = 3)",
    )
    .await
    .unwrap();
    let v = verify(app).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["firstInvalidSequence"], 3);
}

async fn a_deleted_event_is_detected(app: &TestApp) {
    three_events(app).await;
    disable_append_only_triggers(app).await;
    app.sql(
        "DELETE FROM audit_event_person \
         WHERE event_id = (SELECT id FROM audit_event WHERE sequence = 3)",
    )
    .await
    .unwrap();
    app.sql("DELETE FROM audit_event WHERE sequence = 3")
        .await
        .unwrap();
    let v = verify(app).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["firstInvalidSequence"], 3);
}

async fn verify_audit_command_exits_1_on_a_tampered_chain(app: &TestApp) {
    three_events(app).await;
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_consentry"))
            .arg("verify-audit")
            .env("CONSENTRY_DATABASE_URL", &app.database_url)
            .output()
            .unwrap()
    };
    let ok = run();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"valid\":true"));
    disable_append_only_triggers(app).await;
    app.sql("UPDATE audit_event SET reason = 'edited' WHERE sequence = 1")
        .await
        .unwrap();
    let bad = run();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("\"firstInvalidSequence\":1"));
}

async fn the_database_refuses_to_change_or_delete_audit_rows(app: &TestApp) {
    three_events(app).await;
    for sql in [
        "UPDATE audit_event SET actor = 'mallory'",
        "DELETE FROM audit_event",
        "UPDATE audit_event_person SET changes = '[]'",
        "DELETE FROM audit_event_person",
    ] {
        let result = app.sql(sql).await;
        assert!(result.is_err(), "{sql} must be refused");
        assert!(format!("{result:?}").contains("append-only"), "{result:?}");
    }
    if app.is_postgres() {
        assert!(app.sql("TRUNCATE audit_event_person").await.is_err());
        assert!(app.sql("TRUNCATE audit_event CASCADE").await.is_err());
    }
    assert_eq!(verify(app).await["valid"], true);
}

/// Writes an event as a writer that committed and then stopped before
/// chaining would: unchained, naming the person of event 1, by `actor`.
async fn insert_unchained_event(app: &TestApp, actor: &str) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    let literal = if app.is_postgres() {
        format!("CAST('{id}' AS UUID)")
    } else {
        format!("X'{}'", id.simple())
    };
    app.sql(&format!(
        "INSERT INTO audit_event (id, occurred_at, actor, actor_roles, action, outcome, \
         reason, request_id, details, encoding_version) \
         SELECT {literal}, occurred_at, '{actor}', actor_roles, action, outcome, reason, \
         request_id, details, encoding_version FROM audit_event WHERE sequence = 1"
    ))
    .await
    .unwrap();
    app.sql(&format!(
        "INSERT INTO audit_event_person (event_id, person_id, changes) \
         SELECT {literal}, person_id, changes FROM audit_event_person \
         WHERE event_id = (SELECT id FROM audit_event WHERE sequence = 1)"
    ))
    .await
    .unwrap();
    id
}

async fn actors_newest_first(app: &TestApp) -> Vec<(i64, String)> {
    let data = app
        .ok(
            &app.compliance(),
            "{ auditEvents(first: 10) { nodes { sequence actor } } }",
            json!({}),
        )
        .await;
    data["auditEvents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["sequence"].as_i64().unwrap(),
                n["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn an_audited_write_is_chained_in_the_background_without_a_read(app: &TestApp) {
    app.person_id("background@example.com").await;
    consentry::audit::background_chaining_done(&app.db).await;
    use sea_orm::ConnectionTrait;
    let conn = app.db.conn();
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT COUNT(*), MAX(sequence) FROM audit_event WHERE sequence IS NOT NULL",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 1);
    assert_eq!(row.try_get_by_index::<i64>(1).unwrap(), 1);
}

async fn an_event_left_unchained_is_chained_before_the_trail_is_read(app: &TestApp) {
    three_events(app).await;
    insert_unchained_event(app, "crashed-writer").await;
    let listed = actors_newest_first(app).await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(listed[0], (4, "crashed-writer".to_owned()));

    app.person_id("next@example.com").await;
    let listed = actors_newest_first(app).await;
    assert_eq!(listed[1], (4, "crashed-writer".to_owned()), "{listed:?}");
    assert_eq!(listed[0].0, 5);
    let v = verify(app).await;
    assert_eq!(
        (v["valid"].clone(), v["checkedEvents"].clone()),
        (json!(true), json!(5))
    );
}

/// A write after an event left unchained, with no read between: the
/// earlier event is chained first (in the background on PostgreSQL, in the
/// write's own transaction on SQLite), so the chain keeps commit order.
async fn an_event_left_unchained_is_chained_before_the_next_write_s_own(app: &TestApp) {
    three_events(app).await;
    insert_unchained_event(app, "crashed-writer").await;
    app.person_id("after-crash@example.com").await;
    assert_eq!(
        app.sql_i64("SELECT sequence FROM audit_event WHERE actor = 'crashed-writer'")
            .await,
        4
    );
    assert_eq!(
        app.sql_i64("SELECT MAX(sequence) FROM audit_event").await,
        5
    );
    assert_eq!(
        app.sql_i64("SELECT COUNT(*) FROM audit_event WHERE sequence IS NULL")
            .await,
        0
    );
    assert_eq!(verify(app).await["valid"], true);
}

async fn verification_chains_events_left_unchained_first(app: &TestApp) {
    three_events(app).await;
    insert_unchained_event(app, "crashed-writer").await;
    let v = verify(app).await;
    assert_eq!(v["valid"], true);
    assert_eq!(v["checkedEvents"], 4);
    assert_eq!(
        actors_newest_first(app).await[0],
        (4, "crashed-writer".to_owned())
    );
}

async fn the_database_lets_an_unchained_event_be_chained_once_and_nothing_else(app: &TestApp) {
    three_events(app).await;
    let id = insert_unchained_event(app, "w").await;
    let id = if app.is_postgres() {
        format!("CAST('{id}' AS UUID)")
    } else {
        format!("X'{}'", id.simple())
    };
    let chain = "sequence = 4, previous_hash = 'p', hash = 'h'";
    for sql in [
        format!("UPDATE audit_event SET actor = 'mallory' WHERE id = {id}"),
        format!("UPDATE audit_event SET {chain}, actor = 'mallory' WHERE id = {id}"),
        format!("UPDATE audit_event SET {chain}, details = '{{}}' WHERE id = {id}"),
        format!("UPDATE audit_event SET sequence = 4 WHERE id = {id}"),
        format!("DELETE FROM audit_event_person WHERE event_id = {id}"),
    ] {
        let result = app.sql(&sql).await;
        assert!(
            format!("{result:?}").contains("append-only"),
            "{sql}: {result:?}"
        );
    }
    assert_eq!(
        app.sql(&format!("UPDATE audit_event SET {chain} WHERE id = {id}"))
            .await
            .unwrap(),
        1
    );
    for sql in [
        format!(
            "UPDATE audit_event SET sequence = 5, previous_hash = 'q', hash = 'i' WHERE id = {id}"
        ),
        format!("DELETE FROM audit_event WHERE id = {id}"),
    ] {
        let result = app.sql(&sql).await;
        assert!(
            format!("{result:?}").contains("append-only"),
            "{sql}: {result:?}"
        );
    }
}

/// A SQLite database written by the release before deferred chaining (its
/// audit tables keyed by sequence): a seed, an update, an unsubscribe and a
/// bulk update of two people, made through that release's server.
const BEFORE_CHAINING: &str = include_str!("../fixtures/audit/before-chaining.sqlite.sql");

#[tokio::test]
async fn a_chain_written_before_deferred_chaining_survives_the_migration() {
    let app = TestApp::sqlite_from_dump(BEFORE_CHAINING).await;
    let head = "ff45f753e6a52638c1c71a414db008d0bbc38815399f6fc3129186bfa2583bde";
    let v = verify(&app).await;
    assert_eq!(v["valid"], true);
    assert_eq!(v["checkedEvents"], 4);
    assert_eq!(v["headHash"], head);
    // Person rows still belong to their event, and their values still open.
    let bulk = app.last_event().await;
    assert_eq!(bulk["action"], "SOURCE_BULK_UPDATED");
    assert_eq!(bulk["personIds"].as_array().unwrap().len(), 2);
    assert_eq!(bulk["changes"][0]["after"], "IMPORT");

    app.person_id("after@example.com").await;
    let last = app.last_event().await;
    assert_eq!(last["sequence"], 5);
    assert_eq!(last["previousHash"], head);
    assert_eq!(verify(&app).await["checkedEvents"], 5);
}

/// One chaining run over a card edit, a bulk update naming 100 people and
/// another card edit (PostgreSQL, where the run reads the events, their
/// person counts and their person rows in separate steps) hashes each
/// event with its own rows.
#[tokio::test]
async fn a_chaining_run_hashes_a_large_and_a_small_event_together() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let mut people = Vec::new();
    for i in 0..100 {
        people.push(app.person_id(&format!("mixed{i}@example.com")).await);
    }
    // Hold the head, so the writers' events wait for the chaining runs,
    // which then take the bulk update's event with a card edit's.
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let holder = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let txn = holder.begin().await.unwrap();
    txn.execute_unprepared("SELECT 1 FROM audit_chain_head WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let token = app.sales();
    let ids: Vec<String> = people.iter().map(|id| format!("\"{id}\"")).collect();
    let documents = [
        format!(
            "mutation {{ updateComplianceCard(personId: \"{}\", input: {{sourceType: IMPORT}}) {{ id }} }}",
            people[0]
        ),
        format!(
            "mutation {{ bulkUpdateSource(selection: {{ids: [{}]}}, input: {{sourceType: CRM_SYNC}}) {{ updatedCount }} }}",
            ids.join(", ")
        ),
        format!(
            "mutation {{ updateComplianceCard(personId: \"{}\", input: {{sourceType: MANUAL_UPLOAD}}) {{ id }} }}",
            people[1]
        ),
    ];
    let mut writers = Vec::new();
    for doc in documents {
        let (router, token) = (app.router.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            crate::helpers::graphql(&router, &token, &doc).await
        }));
        // Committed before the next is sent, so the events keep this order.
        for _ in 0..600 {
            // On the holder's connection: the test app's own waits for chaining.
            let pending: i64 = txn
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Postgres,
                    "SELECT COUNT(*) FROM audit_event WHERE sequence IS NULL",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index(0)
                .unwrap();
            if pending == writers.len() as i64 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    txn.commit().await.unwrap();
    for writer in writers {
        let body = writer.await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
    }
    let v = verify(&app).await;
    assert_eq!(v["valid"], true, "{v}");
    holder.close().await.ok();
    app.cleanup().await;
}

/// Two processes chaining at once on PostgreSQL: each run reads the pending
/// events in the statement that waits for the chain head, so the run that
/// gets the head second has read them before the first run chained them.
/// It must see that and read again, not chain them twice or fail.
#[tokio::test]
async fn a_chaining_run_that_waited_for_another_reads_the_pending_events_again() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    three_events(&app).await;
    let pending = insert_unchained_event(&app, "late-writer").await;

    // Hold the head, as another process's chaining run would.
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let holder = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let txn = holder.begin().await.unwrap();
    txn.execute_unprepared("SELECT 1 FROM audit_chain_head WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let waiting = |n: i64| {
        let app = &app;
        async move {
            for _ in 0..600 {
                let waiters = app
                    .sql_i64(
                        "SELECT COUNT(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    )
                    .await;
                if waiters == n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("{n} chaining runs never waited for the head");
        }
    };
    // Two processes' runs (two handles, two chaining turns) queue for it.
    let first = tokio::spawn({
        let db = app.db.clone();
        async move { consentry::audit::chain_committed(&db).await }
    });
    waiting(1).await;
    let other = consentry::db::Db::connect(&app.database_url).await.unwrap();
    let second = tokio::spawn({
        let db = other.clone();
        async move { consentry::audit::chain_committed(&db).await }
    });
    waiting(2).await;
    txn.commit().await.unwrap();

    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    let sequence = app
        .sql_i64(&format!(
            "SELECT sequence FROM audit_event WHERE id = CAST('{pending}' AS UUID)"
        ))
        .await;
    assert_eq!(sequence, 4);
    let v = verify(&app).await;
    assert_eq!(
        (v["valid"].clone(), v["checkedEvents"].clone()),
        (json!(true), json!(4))
    );
    other.conn().clone().close().await.ok();
    holder.close().await.ok();
    app.cleanup().await;
}

async fn sixteen_concurrent_writers_leave_one_gap_free_chain(app: &TestApp) {
    let mut ids = Vec::new();
    for i in 0..16 {
        ids.push(app.person_id(&format!("c{i}@example.com")).await);
    }
    let start = app.audit_count().await;
    let mut writers = tokio::task::JoinSet::new();
    for (i, id) in ids.into_iter().enumerate() {
        let router = app.router.clone();
        let token = app.token(&format!("writer-{i}"), &[consentry::auth::Role::Sales]);
        writers.spawn(async move {
            for round in 0..5 {
                let doc = match round % 3 {
                    0 => format!("mutation {{ updatePerson(id: \"{id}\", input: {{title: \"t{round}\"}}) {{ id }} }}"),
                    1 => format!("mutation {{ updateComplianceCard(personId: \"{id}\", input: {{sourceType: IMPORT}}) {{ id }} }}"),
                    _ => format!("mutation {{ bulkUpdateSource(selection: {{ids: [\"{id}\"]}}, input: {{sourceType: CRM_SYNC}}) {{ updatedCount }} }}"),
                };
                let body = graphql(&router, &token, &doc).await;
                assert!(body.get("errors").is_none(), "{body}");
            }
        });
    }
    while let Some(result) = writers.join_next().await {
        result.unwrap();
    }
    assert_eq!(app.audit_count().await, start + 16 * 5);
    let v = verify(app).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["checkedEvents"], start + 80);
}

async fn audit_events_filter_by_person_action_actor_and_outcome(app: &TestApp) {
    let a = app.person_id("fa@example.com").await;
    let b = app.person_id("fb@example.com").await;
    app.ok(
        &app.compliance(),
        &format!("mutation {{ unsubscribe(personId: \"{a}\") {{ id }} }}"),
        json!({}),
    )
    .await;
    app.err(&app.sales(), &format!("mutation {{ resubscribe(personId: \"{b}\", reconsent: {{consentDate: \"2026-01-01\", method: \"m\", evidence: \"e\"}}) {{ id }} }}"), json!({})).await;
    let q = "query($f: AuditEventFilter) { auditEvents(filter: $f) { totalCount nodes { action actor outcome personIds } } }";
    let count = |v: &Value| v["auditEvents"]["totalCount"].as_u64().unwrap();
    let by_person = app
        .ok(&app.admin(), q, json!({ "f": { "personId": a } }))
        .await;
    assert_eq!(count(&by_person), 2);
    let by_action = app
        .ok(
            &app.admin(),
            q,
            json!({ "f": { "action": "UNSUBSCRIBED" } }),
        )
        .await;
    assert_eq!(
        by_action["auditEvents"]["nodes"][0]["actor"],
        "cora-compliance"
    );
    let denied = app
        .ok(&app.admin(), q, json!({ "f": { "outcome": "DENIED" } }))
        .await;
    assert_eq!(count(&denied), 1);
    assert_eq!(denied["auditEvents"]["nodes"][0]["personIds"], json!([b]));
    let by_actor = app
        .ok(
            &app.admin(),
            q,
            json!({ "f": { "actor": "sam-sales", "action": "PERSON_CREATED" } }),
        )
        .await;
    assert_eq!(count(&by_actor), 2);
    let future = app
        .ok(
            &app.admin(),
            q,
            json!({ "f": { "from": "2999-01-01T00:00:00Z" } }),
        )
        .await;
    assert_eq!(count(&future), 0);
}

async fn audit_events_page_newest_first(app: &TestApp) {
    three_events(app).await;
    let q = "query($after: String) { auditEvents(first: 2, after: $after) { nodes { sequence } pageInfo { hasNextPage endCursor } } }";
    let p1 = app.ok(&app.admin(), q, json!({})).await;
    assert_eq!(
        p1["auditEvents"]["nodes"],
        json!([{ "sequence": 3 }, { "sequence": 2 }])
    );
    assert_eq!(p1["auditEvents"]["pageInfo"]["hasNextPage"], true);
    let p2 = app
        .ok(
            &app.admin(),
            q,
            json!({ "after": p1["auditEvents"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(p2["auditEvents"]["nodes"], json!([{ "sequence": 1 }]));
    assert_eq!(p2["auditEvents"]["pageInfo"]["hasNextPage"], false);
}

async fn a_persons_audit_trail_lists_the_events_about_them(app: &TestApp) {
    let id = three_events(app).await;
    app.person_id("unrelated@example.com").await;
    let data = app
        .ok(
            &app.compliance(),
            "query($id: UUID!) { person(id: $id) { auditTrail { totalCount nodes { action } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["person"]["auditTrail"]["totalCount"], 3);
    assert_eq!(
        data["person"]["auditTrail"]["nodes"],
        json!([{ "action": "PERSON_UPDATED" }, { "action": "PERSON_UPDATED" }, { "action": "PERSON_CREATED" }])
    );
}

async fn sales_may_not_read_a_persons_audit_trail(app: &TestApp) {
    let id = app.person_id("n@example.com").await;
    let err = app
        .err(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { auditTrail { totalCount } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&err), "FORBIDDEN");
}

backend_tests!(
    every_mutation_writes_one_success_event_naming_its_people,
    every_mutation_field_has_an_audit_assertion,
    sequences_are_gap_free_and_chained,
    an_intact_chain_verifies,
    an_altered_event_is_detected_and_named,
    an_altered_change_value_is_detected,
    a_deleted_event_is_detected,
    verify_audit_command_exits_1_on_a_tampered_chain,
    the_database_refuses_to_change_or_delete_audit_rows,
    an_audited_write_is_chained_in_the_background_without_a_read,
    an_event_left_unchained_is_chained_before_the_trail_is_read,
    an_event_left_unchained_is_chained_before_the_next_write_s_own,
    verification_chains_events_left_unchained_first,
    the_database_lets_an_unchained_event_be_chained_once_and_nothing_else,
    sixteen_concurrent_writers_leave_one_gap_free_chain,
    audit_events_filter_by_person_action_actor_and_outcome,
    audit_events_page_newest_first,
    a_persons_audit_trail_lists_the_events_about_them,
    sales_may_not_read_a_persons_audit_trail,
);
