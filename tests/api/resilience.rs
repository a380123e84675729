//! Under load and faults: the request deadline (rolled back), load shedding
//! (503 + Retry-After), graceful shutdown, the database unreachable at
//! startup and while serving, and a PostgreSQL backend killed in the middle
//! of a bulk update.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseTransaction, Statement, TransactionTrait};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::backend_tests;
use crate::helpers::{POSTGRES_URL_VAR, TestApp, code, post};
use crate::process::Server;

const CARD_EDIT: &str = "mutation($id: UUID!) { updateComplianceCard(personId: $id, input: {sourceType: IMPORT}) { id complianceCard { sourceType } } }";

/// Another connection holding a write lock on one person's row until
/// dropped or rolled back (on SQLite: the database's write lock).
async fn hold_write_lock(app: &TestApp, person: &str) -> DatabaseTransaction {
    let conn = Database::connect(&app.database_url).await.unwrap();
    let txn = conn.begin().await.unwrap();
    txn.execute_raw(Statement::from_string(
        txn.get_database_backend(),
        format!("UPDATE person SET first_name = first_name WHERE id = '{person}'"),
    ))
    .await
    .unwrap();
    txn
}

async fn card_edit(router: &Router, token: &str, person: &str) -> (StatusCode, Value) {
    post(
        router,
        Some(token),
        json!({ "query": CARD_EDIT, "variables": { "id": person } }),
    )
    .await
}

async fn source_type(app: &TestApp, person: &str) -> Value {
    app.ok(
        &app.sales(),
        "query($id: UUID!) { person(id: $id) { complianceCard { sourceType } } }",
        json!({ "id": person }),
    )
    .await["person"]["complianceCard"]["sourceType"]
        .clone()
}

async fn audit_is_valid(app: &TestApp) -> bool {
    app.ok(&app.admin(), "{ verifyAuditTrail { valid } }", json!({}))
        .await["verifyAuditTrail"]["valid"]
        == json!(true)
}

async fn a_request_past_the_deadline_is_cancelled_and_rolled_back(app: &TestApp) {
    let person = app.person_id("slow@example.com").await;
    let before = (source_type(app, &person).await, app.audit_count().await);
    let router = app.with_settings(|s| s.request_timeout = Duration::from_millis(300));
    let lock = hold_write_lock(app, &person).await;
    let (status, body) = card_edit(&router, &app.sales(), &person).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body["errors"][0]), "TIMEOUT");
    lock.rollback().await.unwrap();
    assert_eq!(
        (source_type(app, &person).await, app.audit_count().await),
        before,
        "the cancelled edit changed nothing and wrote no event"
    );
    let (status, body) = card_edit(&router, &app.sales(), &person).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["updateComplianceCard"]["complianceCard"]["sourceType"],
        "IMPORT"
    );
    assert!(audit_is_valid(app).await);
}

async fn requests_beyond_the_in_flight_limit_get_503_with_retry_after(app: &TestApp) {
    let person = app.person_id("busy@example.com").await;
    let router = app.with_settings(|s| s.max_in_flight = 1);
    let lock = hold_write_lock(app, &person).await;
    let spawn_slow = || {
        let (router, token, person) = (router.clone(), app.sales(), person.clone());
        tokio::spawn(async move { card_edit(&router, &token, &person).await })
    };
    let viewer = || {
        Request::post("/graphql")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", app.sales()))
            .body(Body::from(
                json!({ "query": "{ viewer { subject } }" }).to_string(),
            ))
            .unwrap()
    };
    // Probe until the slow edit holds the only slot. A probe can take the
    // slot first and get the edit shed instead: then start it again.
    let mut slow = spawn_slow();
    let mut shed = None;
    for _ in 0..500 {
        if slow.is_finished() {
            let (status, body) = slow.await.unwrap();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            slow = spawn_slow();
        }
        let res = router.clone().oneshot(viewer()).await.unwrap();
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shed = shed.expect("a request beyond the limit was shed");
    assert_eq!(shed.headers()["retry-after"], "1");
    let body = http_body_util::BodyExt::collect(shed.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code(&body["errors"][0]), "UNAVAILABLE");
    lock.rollback().await.unwrap();
    let (status, body) = slow.await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the admitted request finished: {body}"
    );
    let res = router.clone().oneshot(viewer()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the slot is free again");
}

async fn health_probes_are_not_shed(app: &TestApp) {
    let person = app.person_id("probe@example.com").await;
    let router = app.with_settings(|s| s.max_in_flight = 1);
    let lock = hold_write_lock(app, &person).await;
    let slow = tokio::spawn({
        let (router, token, person) = (router.clone(), app.sales(), person.clone());
        async move { card_edit(&router, &token, &person).await }
    });
    for _ in 0..20 {
        let res = router
            .clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    lock.rollback().await.unwrap();
    assert_eq!(slow.await.unwrap().0, StatusCode::OK);
}

backend_tests!(
    a_request_past_the_deadline_is_cancelled_and_rolled_back,
    requests_beyond_the_in_flight_limit_get_503_with_retry_after,
    health_probes_are_not_shed,
);

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("stop.db").display());
    let mut server = Server::start(
        &[
            ("CONSENTRY_DATABASE_URL", url.as_str()),
            ("CONSENTRY_MAX_IN_FLIGHT", "1"),
        ],
        None,
    )
    .await;
    let token = server.token("stopper", "sales");
    let (_, created) = server
        .graphql(
            &token,
            "mutation { createPerson(input: {firstName: \"Stop\", email: \"stop@example.com\"}) { id } }",
            json!({}),
        )
        .await;
    let person = created["data"]["createPerson"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let conn = Database::connect(&url).await.unwrap();
    let lock = conn.begin().await.unwrap();
    lock.execute_unprepared("UPDATE person SET first_name = first_name")
        .await
        .unwrap();
    let spawn_slow = || {
        let (http, base, token, person) = (
            server.http.clone(),
            server.base.clone(),
            token.clone(),
            person.clone(),
        );
        tokio::spawn(async move {
            http.post(format!("{base}/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": CARD_EDIT, "variables": { "id": person } }))
                .send()
                .await
        })
    };
    // The slow edit is in flight once it holds the one slot and a probe is
    // shed (if a probe took the slot first, the edit was shed: start again).
    let mut slow = spawn_slow();
    let mut in_flight = false;
    for _ in 0..500 {
        if slow.is_finished() {
            assert_eq!(slow.await.unwrap().unwrap().status(), 503);
            slow = spawn_slow();
        }
        let (status, _) = server
            .graphql(&token, "{ viewer { subject } }", json!({}))
            .await;
        if status == 503 {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(in_flight, "the slow request never started");
    server.terminate();
    // New connections are refused once the server stops accepting.
    let mut refused = false;
    for _ in 0..500 {
        if server
            .http
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the server kept accepting after SIGTERM");
    lock.rollback().await.unwrap();
    let res = slow
        .await
        .unwrap()
        .expect("the in-flight request got its answer");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["data"]["updateComplianceCard"]["complianceCard"]["sourceType"], "IMPORT",
        "{body}"
    );
    let status = server.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}");
}

/// A TCP proxy to PostgreSQL that can cut every connection and refuse new
/// ones, to take the database away from a server and give it back.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr, up: bool) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(up));
        let connections = Arc::new(Mutex::new(Vec::<tokio::task::AbortHandle>::new()));
        let accept = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is cut at once
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(task.abort_handle());
                }
            }
        });
        Proxy {
            port,
            up,
            connections,
            accept,
        }
    }

    /// The database is gone: open connections are cut, new ones refused.
    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// The database is back.
    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.down();
    }
}

/// The PostgreSQL server's address, from the test URL.
async fn postgres_addr() -> SocketAddr {
    let url = url::Url::parse(&std::env::var(POSTGRES_URL_VAR).unwrap()).unwrap();
    let host = url.host_str().unwrap().to_owned();
    let port = url.port().unwrap_or(5432);
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap()
}

async fn get_status(router: &Router, path: &str) -> StatusCode {
    router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_reported_and_service_resumes_by_itself() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let proxy = Proxy::start(postgres_addr().await, true).await;
    let db = consentry::db::Db::connect(&proxy.url(&app.database_url))
        .await
        .unwrap();
    let router = app.router_on(db, |_| {});
    assert_eq!(get_status(&router, "/readyz").await, StatusCode::OK);
    let events = app.audit_count().await;
    let create = |email: &str| json!({ "query": format!("mutation {{ createPerson(input: {{firstName: \"Out\", email: \"{email}\"}}) {{ id }} }}") });

    proxy.down();
    assert_eq!(
        get_status(&router, "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, body) = post(&router, Some(&app.sales()), create("outage@example.com")).await;
    assert_eq!(code(&body["errors"][0]), "INTERNAL", "{body}");
    assert!(body["errors"][0]["extensions"]["requestId"].is_string());
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        !message.contains("127.0.0.1") && !message.to_lowercase().contains("sql"),
        "{message}"
    );
    assert_eq!(
        app.audit_count().await,
        events,
        "nothing partial was written"
    );

    proxy.up();
    let mut ready = false;
    for _ in 0..300 {
        if get_status(&router, "/readyz").await == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not recover by itself");
    let (_, body) = post(&router, Some(&app.sales()), create("after@example.com")).await;
    assert!(body["data"]["createPerson"]["id"].is_string(), "{body}");
    assert_eq!(app.audit_count().await, events + 1);
    assert!(audit_is_valid(&app).await);
    drop(proxy);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_a_database_that_is_down_at_startup() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let proxy = Proxy::start(postgres_addr().await, false).await;
    let url = proxy.url(&app.database_url);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let server = tokio::spawn({
        let log = log.clone();
        async move {
            Server::start(
                &[
                    ("CONSENTRY_DATABASE_URL", url.as_str()),
                    ("RUST_LOG", "info"),
                ],
                Some(&log),
            )
            .await
        }
    });
    let mut retrying = false;
    for _ in 0..300 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("cannot connect to the database; retrying") {
            retrying = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(retrying, "no retry was logged");
    assert!(!server.is_finished(), "the server is waiting, not serving");
    proxy.up();
    let server = server.await.unwrap();
    let (status, body) = server
        .graphql(
            &server.token("late", "sales"),
            "{ people(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    drop(server);
    drop(proxy);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_bulk_update_leaves_no_partial_change() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    consentry::service::seed::seed(&app.db, 30_000)
        .await
        .unwrap();
    let count_public_interest =
        || app.sql_i64("SELECT COUNT(*) FROM person WHERE authorization_type = 'PUBLIC_INTEREST'");
    let (before, events) = (count_public_interest().await, app.audit_count().await);
    let bulk = tokio::spawn({
        let (router, token) = (app.router.clone(), app.admin());
        async move {
            post(
                &router,
                Some(&token),
                json!({ "query": "mutation { bulkUpdateAuthorization(selection: {filter: {}}, input: {authorizationType: PUBLIC_INTEREST}) { updatedCount } }" }),
            )
            .await
        }
    });
    // Kill the backend once its transaction has written something.
    let mut killed = 0;
    while killed == 0 && !bulk.is_finished() {
        killed = app
            .sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND backend_xid IS NOT NULL",
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, body) = bulk.await.unwrap();
    assert!(
        killed > 0,
        "the bulk update finished before it could be killed: {body}"
    );
    assert_eq!(code(&body["errors"][0]), "INTERNAL", "{body}");
    assert_eq!(count_public_interest().await, before, "no partial change");
    assert_eq!(app.audit_count().await, events, "no audit event");
    assert!(audit_is_valid(&app).await);
    app.cleanup().await;
}
