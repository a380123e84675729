//! Concurrency across processes: 10,000 mutations from 16 clients — card
//! edits, bulk updates, unsubscribes and resubscribes — on two `consentry`
//! processes sharing one PostgreSQL, and on one process over SQLite. No
//! client sees an error (no `SQLITE_BUSY`), the audit sequence has no gap,
//! the chain verifies, and every acknowledged mutation has its event.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::process::{Server, token};

const CLIENTS: usize = 16;
const MUTATIONS: usize = 10_000;
/// People only one client unsubscribes and resubscribes, so it knows
/// their state; everyone's card edits and bulk updates hit them all.
const OWNED_PER_CLIENT: usize = 4;
const SHARED: usize = 64;

const SOURCES: [&str; 4] = ["CRM_SYNC", "IMPORT", "MANUAL_UPLOAD", "CHROME_EXTENSION"];

/// One mutation of the mix and the audit action it must leave.
fn mutation(client: usize, n: usize, people: &[String]) -> (String, &'static str) {
    let owned = &people[client * OWNED_PER_CLIENT..(client + 1) * OWNED_PER_CLIENT];
    let mine = &owned[(n / 8) % OWNED_PER_CLIENT];
    let any = |salt: usize| &people[(client * 31 + n * 7 + salt * 13) % people.len()];
    let source = SOURCES[(client + n) % SOURCES.len()];
    match n % 8 {
        0..=2 => (
            format!(
                "mutation {{ updateComplianceCard(personId: \"{}\", input: {{sourceType: {source}, authorizationType: LEGITIMATE_INTEREST}}) {{ id }} }}",
                any(0)
            ),
            "COMPLIANCE_CARD_UPDATED",
        ),
        3 => {
            let ids: Vec<String> = (0..5).map(|i| format!("\"{}\"", any(i))).collect();
            (
                format!(
                    "mutation {{ bulkUpdateSource(selection: {{ids: [{}]}}, input: {{sourceType: {source}}}) {{ updatedCount }} }}",
                    ids.join(", ")
                ),
                "SOURCE_BULK_UPDATED",
            )
        }
        4 | 5 => (
            format!("mutation {{ unsubscribe(personId: \"{mine}\", reason: \"load\") {{ id }} }}"),
            "UNSUBSCRIBED",
        ),
        6 => (
            format!(
                "mutation {{ resubscribe(personId: \"{mine}\", reconsent: {{consentDate: \"{}\", method: \"Signed form\", evidence: \"form-{client}-{n}\"}}) {{ id }} }}",
                chrono::Utc::now().date_naive()
            ),
            "RESUBSCRIBED",
        ),
        _ => (
            format!(
                "mutation {{ updateComplianceCard(personId: \"{mine}\", input: {{sourceType: {source}}}) {{ id }} }}"
            ),
            "COMPLIANCE_CARD_UPDATED",
        ),
    }
}

/// Drives the mix through `servers` (client k uses server k mod len);
/// returns the acknowledged mutations per audit action, and every error.
async fn drive(servers: &[Server], people: &[String]) -> (BTreeMap<&'static str, u64>, Vec<Value>) {
    let admin = token("load-admin", "admin");
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let server = &servers[client % servers.len()];
        let (base, admin, people) = (server.base.clone(), admin.clone(), people.to_vec());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acked: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut errors = Vec::new();
            for n in 0..MUTATIONS / CLIENTS {
                let (query, action) = mutation(client, n, &people);
                let res = http
                    .post(format!("{base}/graphql"))
                    .bearer_auth(&admin)
                    .json(&json!({ "query": query }))
                    .send()
                    .await;
                let (status, body) = match res {
                    Ok(r) => (
                        r.status().as_u16(),
                        r.json::<Value>().await.unwrap_or_default(),
                    ),
                    Err(e) => (0, json!(e.to_string())),
                };
                if status == 200 && body["errors"].is_null() && body["data"].is_object() {
                    *acked.entry(action).or_default() += 1;
                } else {
                    errors.push(json!({ "status": status, "body": body, "query": query }));
                }
            }
            (acked, errors)
        }));
    }
    let mut acked: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut errors = Vec::new();
    for task in tasks {
        let (a, e) = task.await.unwrap();
        for (k, v) in a {
            *acked.entry(k).or_default() += v;
        }
        errors.extend(e);
    }
    (acked, errors)
}

async fn create_people(app: &TestApp) -> Vec<String> {
    let mut people = Vec::new();
    for i in 0..CLIENTS * OWNED_PER_CLIENT + SHARED {
        people.push(app.person_id(&format!("load{i}@example.com")).await);
    }
    people
}

/// Events per action after sequence `after`, all SUCCESS.
async fn events_since(app: &TestApp, after: i64) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for action in [
        "COMPLIANCE_CARD_UPDATED",
        "SOURCE_BULK_UPDATED",
        "UNSUBSCRIBED",
        "RESUBSCRIBED",
    ] {
        let n = app
            .sql_i64(&format!(
                "SELECT COUNT(*) FROM audit_event WHERE sequence > {after} AND action = '{action}' AND outcome = 'SUCCESS'"
            ))
            .await;
        counts.insert(action, n as u64);
    }
    counts
}

async fn run(app: &TestApp, processes: usize) {
    let people = create_people(app).await;
    let before = app.sql_i64("SELECT MAX(sequence) FROM audit_event").await;
    let logs = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    for i in 0..processes {
        servers.push(
            Server::start(
                &[("CONSENTRY_DATABASE_URL", app.database_url.as_str())],
                Some(&logs.path().join(format!("server-{i}.log"))),
            )
            .await,
        );
    }
    let (acked, errors) = drive(&servers, &people).await;
    if !errors.is_empty() {
        let mut log = String::new();
        for i in 0..processes {
            log += &std::fs::read_to_string(logs.path().join(format!("server-{i}.log")))
                .unwrap_or_default();
        }
        panic!(
            "{} of {MUTATIONS} mutations failed; first: {:#}\nserver logs:\n{log}",
            errors.len(),
            errors[0]
        );
    }
    assert_eq!(acked.values().sum::<u64>(), MUTATIONS as u64);
    // Reading the trail chains every committed event (the servers chain in
    // the background), so what follows sees the whole chain.
    let (_, body) = servers[0]
        .graphql(
            &servers[0].token("load-compliance", "compliance"),
            "{ verifyAuditTrail { valid checkedEvents } }",
            json!({}),
        )
        .await;
    assert_eq!(
        events_since(app, before).await,
        acked,
        "one event per acknowledged mutation, by action"
    );
    let (count, min, max) = (
        app.sql_i64("SELECT COUNT(*) FROM audit_event").await,
        app.sql_i64("SELECT MIN(sequence) FROM audit_event").await,
        app.sql_i64("SELECT MAX(sequence) FROM audit_event").await,
    );
    assert_eq!((min, max), (1, count), "the sequence has no gap");
    assert_eq!(max - before, MUTATIONS as i64, "no event beyond the mix");
    assert_eq!(
        body["data"]["verifyAuditTrail"],
        json!({ "valid": true, "checkedEvents": count }),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_take_10000_mutations_from_16_clients() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    run(&app, 2).await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_on_sqlite_takes_10000_mutations_from_16_clients() {
    let app = TestApp::sqlite().await;
    run(&app, 1).await;
    app.cleanup().await;
}
