//! `TestApp`: the real router over a freshly migrated database, plus small
//! helpers to call it. `backend_tests!` runs each test on both backends.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use consentry::auth::{JwtSettings, Role, issue_token};
use consentry::config::Secret;
use consentry::db::Db;
use consentry::graphql::Limits;
use consentry::service::links::UnsubscribeLinks;
use consentry::{AppState, Settings};
use http_body_util::BodyExt;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "CONSENTRY_TEST_POSTGRES_URL";

/// Runs each named `async fn(&TestApp)` on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::TestApp::sqlite().await;
                    super::$name(&app).await;
                    app.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::TestApp::postgres().await else { return };
                    super::$name(&app).await;
                    app.cleanup().await;
                }
            )*
        }
    };
}

/// The server under test.
pub struct TestApp {
    pub db: Db,
    pub router: Router,
    pub jwt: JwtSettings,
    /// The database URL, for running the binary against the same database.
    pub database_url: String,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

/// The HS256 secret the test server verifies tokens with.
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// The public URL unsubscribe links in tests point at.
pub const PUBLIC_URL: &str = "https://consentry.test";

fn settings(jwt: &JwtSettings) -> Settings {
    Settings {
        jwt: jwt.clone(),
        limits: Limits::default(),
        max_body_bytes: 8 * 1024 * 1024,
        max_import_bytes: 64 * 1024 * 1024,
        cors_origins: vec![],
        max_in_flight: 256,
        // Debug builds under a parallel test load are slow; the deadline has
        // its own tests.
        request_timeout: Duration::from_secs(300),
        links: links(),
        salesforce: None,
        suppression: consentry::service::suppression::Suppression::new(Secret::new(
            "test-unsubscribe-secret",
        )),
    }
}

/// The unsubscribe links the test server signs.
pub fn links() -> UnsubscribeLinks {
    UnsubscribeLinks::new(Secret::new("test-unsubscribe-secret"), PUBLIC_URL)
}

impl TestApp {
    async fn build(
        database_url: String,
        postgres: Option<(String, String)>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        let db = Db::connect(&database_url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let jwt = JwtSettings::hs256(Secret::new(JWT_SECRET));
        let router = consentry::router(AppState::new(db.clone(), &settings(&jwt)));
        TestApp {
            db,
            router,
            jwt,
            database_url,
            postgres,
            _dir: dir,
        }
    }

    /// A fresh SQLite database file in a temporary folder.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self::build(url, None, Some(dir)).await
    }

    /// A SQLite database loaded from `dump` (`sqlite3 .dump` output, say of
    /// an older schema), then migrated.
    pub async fn sqlite_from_dump(dump: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let raw = Database::connect(&url).await.expect("connect");
        raw.execute_unprepared(dump).await.expect("load the dump");
        raw.close().await.expect("close");
        Self::build(url, None, Some(dir)).await
    }

    /// A fresh PostgreSQL database, or `None` when no server is configured.
    pub async fn postgres() -> Option<Self> {
        let base = std::env::var(POSTGRES_URL_VAR).ok()?;
        let name = format!("consentry_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&base)
            .await
            .expect("connect to CONSENTRY_TEST_POSTGRES_URL");
        admin
            .execute_raw(Statement::from_string(
                admin.get_database_backend(),
                format!("CREATE DATABASE {name}"),
            ))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = match base.rfind('/') {
            Some(i) if base[..i].ends_with(|c: char| c != '/') => {
                let query = base[i..].find('?').map(|q| &base[i + q..]).unwrap_or("");
                format!("{}/{name}{query}", &base[..i])
            }
            _ => panic!(
                "{POSTGRES_URL_VAR} must name a database, e.g. postgres://postgres@127.0.0.1:5432/test"
            ),
        };
        Some(Self::build(url, Some((base, name)), None).await)
    }

    /// The same server with other settings, over the same database.
    pub fn with_settings(&self, f: impl FnOnce(&mut Settings)) -> Router {
        self.router_on(self.db.clone(), f)
    }

    /// A server with other settings over another handle on the database
    /// (e.g. one connected through a fault-injecting proxy).
    pub fn router_on(&self, db: Db, f: impl FnOnce(&mut Settings)) -> Router {
        let mut s = settings(&self.jwt);
        f(&mut s);
        consentry::router(AppState::new(db, &s))
    }

    /// Drops a PostgreSQL test database; SQLite's folder goes with `self`.
    pub async fn cleanup(self) {
        if let Some((base, name)) = &self.postgres {
            self.db.conn().clone().close().await.ok();
            if let Ok(admin) = Database::connect(base).await {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                admin
                    .execute_raw(Statement::from_string(admin.get_database_backend(), sql))
                    .await
                    .ok();
                admin.close().await.ok();
            }
        }
    }

    /// A token for `sub` with `roles`.
    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        issue_token(&self.jwt, sub, roles, Duration::from_secs(3600)).expect("token")
    }
    pub fn admin(&self) -> String {
        self.token("alice-admin", &[Role::Admin])
    }
    pub fn sales(&self) -> String {
        self.token("sam-sales", &[Role::Sales])
    }
    pub fn compliance(&self) -> String {
        self.token("cora-compliance", &[Role::Compliance])
    }

    /// Sends a raw request to the router.
    pub async fn send(
        &self,
        router: &Router,
        req: Request<Body>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let res = router.clone().oneshot(req).await.expect("router");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    /// Sends a bodiless request; returns status, headers and the body as text.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let (status, headers, body) = self
            .send(&self.router, req.body(Body::empty()).expect("request"))
            .await;
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// POSTs a JSON body to `/graphql`; returns the status and JSON body.
    pub async fn post(&self, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        post(&self.router, token, body).await
    }

    /// Runs a GraphQL document and returns its whole JSON response.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .post(
                Some(token),
                json!({ "query": query, "variables": variables }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Runs a document that must succeed; returns `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs a document that must fail; returns its first error.
    pub async fn err(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        body["errors"][0].clone()
    }

    /// Creates a person (as sales) from a `CreatePersonInput` JSON.
    pub async fn create_person(&self, input: Value) -> Value {
        let data = self
            .ok(
                &self.sales(),
                "mutation($i: CreatePersonInput!) { createPerson(input: $i) { id email unsubscribed complianceCard { authorizationType consentDate processingPurpose authorizationOther sourceType sourceOther } } }",
                json!({ "i": input }),
            )
            .await;
        data["createPerson"].clone()
    }

    /// The id of a freshly created person with this email.
    pub async fn person_id(&self, email: &str) -> String {
        self.create_person(json!({ "firstName": "Test", "email": email }))
            .await["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// How many audit events exist.
    pub async fn audit_count(&self) -> u64 {
        let data = self
            .ok(
                &self.admin(),
                "{ auditEvents(first: 1) { totalCount } }",
                json!({}),
            )
            .await;
        data["auditEvents"]["totalCount"].as_u64().expect("count")
    }

    /// The newest audit event with every field.
    pub async fn last_event(&self) -> Value {
        let data = self
            .ok(
                &self.admin(),
                "{ auditEvents(first: 1) { nodes { id sequence occurredAt actor actorRoles action outcome personIds reason requestId previousHash hash details changes { personId field before after erased } } } }",
                json!({}),
            )
            .await;
        data["auditEvents"]["nodes"][0].clone()
    }

    /// Runs raw SQL on the test database, once background chaining is done.
    pub async fn sql(&self, sql: &str) -> Result<u64, sea_orm::DbErr> {
        self.settle().await;
        let conn = self.db.conn();
        conn.execute_raw(Statement::from_string(
            conn.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .map(|r| r.rows_affected())
    }

    /// The first column of the first row of a query returning integers
    /// (e.g. a `COUNT(*)`), as `i64`.
    pub async fn sql_i64(&self, sql: &str) -> i64 {
        self.settle().await;
        let conn = self.db.conn();
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("an integer")
    }

    /// Waits for the audit chaining the requests so far left running in the
    /// background, so direct SQL and statement counts see the database as
    /// those requests left it.
    pub async fn settle(&self) {
        consentry::audit::background_chaining_done(&self.db).await;
    }

    /// Whether this is the PostgreSQL run.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The SQLite database file's path.
    pub fn sqlite_path(&self) -> String {
        let url = self.database_url.trim_start_matches("sqlite://");
        url.split('?').next().unwrap_or(url).to_owned()
    }
}

/// The `extensions.code` of an error.
pub fn code(err: &Value) -> &str {
    err["extensions"]["code"].as_str().unwrap_or("")
}

/// POSTs a JSON body to `router`'s `/graphql`; returns the status and JSON
/// body. Free-standing for spawned tasks, which cannot borrow a `TestApp`.
pub async fn post(router: &Router, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = Request::post("/graphql").header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    let res = router.clone().oneshot(req).await.expect("router");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Runs `query` on `router` with `token`; returns the JSON body.
pub async fn graphql(router: &Router, token: &str, query: &str) -> Value {
    post(router, Some(token), json!({ "query": query })).await.1
}
