//! The benchmark's yardstick: a hand-written axum + sqlx server that does
//! the work of the benchmarked GraphQL operations — the same bearer-token
//! check, the same SQL, the same JSON bytes — with nothing else: no GraphQL
//! parsing, no ORM, no audit chain.
//!
//! `POST /graphql` with the benchmark's JSON bodies; the operation is
//! picked by `operationName` (`Person`, `People`, `UpdateCard`) and the
//! arguments come from `variables`.
//!
//! Usage: consentry-baseline DATABASE_URL LISTEN JWT_SECRET

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDate, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, postgres::PgRow, sqlite::SqliteRow};
use uuid::Uuid;

const PAGE: i64 = 50;
/// The `people` filter of the benchmark (B2).
const PAGE_TYPES: [&str; 2] = ["CONSENT", "LEGITIMATE_INTEREST"];

enum Db {
    Pg(PgPool),
    /// SQLite and the in-process writer turn (as consentry takes).
    Sqlite(SqlitePool, tokio::sync::Mutex<()>),
}

struct App {
    db: Db,
    key: DecodingKey,
    validation: Validation,
}

/// The columns the JSON shows, read from either backend's row.
struct Person {
    id: Uuid,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    company: Option<String>,
    authorization_type: Option<String>,
    authorization_other: Option<String>,
    consent_date: Option<NaiveDate>,
    processing_purpose: Option<String>,
    source_type: Option<String>,
    source_other: Option<String>,
}

macro_rules! person_from {
    ($row:expr) => {{
        let r = $row;
        Person {
            id: r.try_get("id")?,
            first_name: r.try_get("first_name")?,
            last_name: r.try_get("last_name")?,
            email: r.try_get("email")?,
            company: r.try_get("company")?,
            authorization_type: r.try_get("authorization_type")?,
            authorization_other: r.try_get("authorization_other")?,
            consent_date: r.try_get("consent_date")?,
            processing_purpose: r.try_get("processing_purpose")?,
            source_type: r.try_get("source_type")?,
            source_other: r.try_get("source_other")?,
        }
    }};
}

fn pg_person(r: &PgRow) -> Result<Person, sqlx::Error> {
    Ok(person_from!(r))
}

fn sqlite_person(r: &SqliteRow) -> Result<Person, sqlx::Error> {
    Ok(person_from!(r))
}

fn push_str(out: &mut String, v: Option<&str>) {
    match v {
        Some(s) => out.push_str(&Value::from(s).to_string()),
        None => out.push_str("null"),
    }
}

/// The person as consentry's benchmark selection renders it.
fn push_person(out: &mut String, p: &Person) {
    out.push_str("{\"id\":\"");
    out.push_str(&p.id.to_string());
    out.push_str("\",\"firstName\":");
    push_str(out, p.first_name.as_deref());
    out.push_str(",\"lastName\":");
    push_str(out, p.last_name.as_deref());
    out.push_str(",\"email\":");
    push_str(out, p.email.as_deref());
    out.push_str(",\"company\":");
    push_str(out, p.company.as_deref());
    out.push_str(",\"complianceCard\":{\"authorizationType\":");
    push_str(out, p.authorization_type.as_deref());
    out.push_str(",\"authorizationOther\":");
    push_str(out, p.authorization_other.as_deref());
    out.push_str(",\"consentDate\":");
    push_str(
        out,
        p.consent_date
            .map(|d| d.format("%Y-%m-%d").to_string())
            .as_deref(),
    );
    out.push_str(",\"processingPurpose\":");
    push_str(out, p.processing_purpose.as_deref());
    out.push_str(",\"sourceType\":");
    push_str(out, p.source_type.as_deref());
    out.push_str(",\"sourceOther\":");
    push_str(out, p.source_other.as_deref());
    out.push_str("}}");
}

fn cursor(id: &Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("person:{id}"))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, axum::Json(body)).into_response()
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn graphql(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "no token");
    };
    if jsonwebtoken::decode::<Value>(token, &app.key, &app.validation).is_err() {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "bad token");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", "not JSON");
    };
    let vars = &request["variables"];
    let uuid = |name: &str| vars[name].as_str().and_then(|s| Uuid::parse_str(s).ok());
    let result = match request["operationName"].as_str() {
        Some("Person") => match uuid("id") {
            Some(id) => person(&app, id).await,
            None => return error(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", "id"),
        },
        Some("People") => {
            let after = vars["after"]
                .as_str()
                .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.strip_prefix("person:")
                        .and_then(|u| Uuid::parse_str(u).ok())
                });
            people(&app, after).await
        }
        Some("UpdateCard") => match (uuid("id"), vars["source"].as_str()) {
            (Some(id), Some(source)) => update_card(&app, id, source).await,
            _ => return error(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", "id, source"),
        },
        _ => return error(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", "operationName"),
    };
    match result {
        Ok(body) => json(body),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            &e.to_string(),
        ),
    }
}

/// B1: `SELECT * FROM person WHERE id = ?`, as consentry's ORM issues it.
async fn person(app: &App, id: Uuid) -> Result<String, sqlx::Error> {
    let found = match &app.db {
        Db::Pg(pool) => sqlx::query("SELECT * FROM person WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|r| pg_person(&r))
            .transpose()?,
        Db::Sqlite(pool, _) => sqlx::query("SELECT * FROM person WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|r| sqlite_person(&r))
            .transpose()?,
    };
    let mut out = String::with_capacity(512);
    out.push_str("{\"data\":{\"person\":");
    match found {
        Some(p) => push_person(&mut out, &p),
        None => out.push_str("null"),
    }
    out.push_str("}}");
    Ok(out)
}

/// B2: one keyset page of 51 rows (50 and whether more follow).
async fn people(app: &App, after: Option<Uuid>) -> Result<String, sqlx::Error> {
    let rows: Vec<Person> = match &app.db {
        Db::Pg(pool) => {
            let sql = if after.is_some() {
                "SELECT * FROM person WHERE authorization_type IN ($1, $2) AND id > $3 ORDER BY id ASC LIMIT $4"
            } else {
                "SELECT * FROM person WHERE authorization_type IN ($1, $2) ORDER BY id ASC LIMIT $3"
            };
            let mut q = sqlx::query(sql).bind(PAGE_TYPES[0]).bind(PAGE_TYPES[1]);
            if let Some(a) = after {
                q = q.bind(a);
            }
            q.bind(PAGE + 1)
                .fetch_all(pool)
                .await?
                .iter()
                .map(pg_person)
                .collect::<Result<_, _>>()?
        }
        Db::Sqlite(pool, _) => {
            let sql = if after.is_some() {
                "SELECT * FROM person WHERE authorization_type IN (?, ?) AND id > ? ORDER BY id ASC LIMIT ?"
            } else {
                "SELECT * FROM person WHERE authorization_type IN (?, ?) ORDER BY id ASC LIMIT ?"
            };
            let mut q = sqlx::query(sql).bind(PAGE_TYPES[0]).bind(PAGE_TYPES[1]);
            if let Some(a) = after {
                q = q.bind(a);
            }
            q.bind(PAGE + 1)
                .fetch_all(pool)
                .await?
                .iter()
                .map(sqlite_person)
                .collect::<Result<_, _>>()?
        }
    };
    let has_next = rows.len() as i64 > PAGE;
    let page = &rows[..rows.len().min(PAGE as usize)];
    let mut out = String::with_capacity(600 * page.len() + 128);
    out.push_str("{\"data\":{\"people\":{\"edges\":[");
    for (i, p) in page.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"cursor\":\"");
        out.push_str(&cursor(&p.id));
        out.push_str("\",\"node\":");
        push_person(&mut out, p);
        out.push('}');
    }
    out.push_str("],\"pageInfo\":{\"hasNextPage\":");
    out.push_str(if has_next { "true" } else { "false" });
    out.push_str(",\"endCursor\":");
    match page.last() {
        Some(p) => {
            out.push('"');
            out.push_str(&cursor(&p.id));
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push_str("}}}}");
    Ok(out)
}

/// B3's yardstick: a raw transaction reading the row, updating the card and
/// inserting one audit row (no hash chain, no encryption).
async fn update_card(app: &App, id: Uuid, source: &str) -> Result<String, sqlx::Error> {
    let now = Utc::now();
    let changes = serde_json::json!([{ "field": "sourceType", "after": source }]).to_string();
    let found = match &app.db {
        Db::Pg(pool) => {
            let mut tx = pool.begin().await?;
            let before: Option<Option<String>> =
                sqlx::query_scalar("SELECT source_type FROM person WHERE id = $1 FOR UPDATE")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if before.is_some() {
                sqlx::query("UPDATE person SET source_type = $2, source_other = NULL, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(source)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO baseline_audit_event (occurred_at, actor, action, person_id, changes) VALUES ($1, $2, $3, $4, $5)")
                    .bind(now)
                    .bind("bench")
                    .bind("COMPLIANCE_CARD_UPDATED")
                    .bind(id)
                    .bind(&changes)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            before.is_some()
        }
        Db::Sqlite(pool, writer) => {
            let _turn = writer.lock().await;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let before: Option<Option<String>> =
                sqlx::query_scalar("SELECT source_type FROM person WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if before.is_some() {
                sqlx::query("UPDATE person SET source_type = ?, source_other = NULL, updated_at = ? WHERE id = ?")
                    .bind(source)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO baseline_audit_event (occurred_at, actor, action, person_id, changes) VALUES (?, ?, ?, ?, ?)")
                    .bind(now)
                    .bind("bench")
                    .bind("COMPLIANCE_CARD_UPDATED")
                    .bind(id)
                    .bind(&changes)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            before.is_some()
        }
    };
    if !found {
        return Ok("{\"data\":null,\"errors\":[{\"message\":\"not found\",\"extensions\":{\"code\":\"NOT_FOUND\"}}]}".into());
    }
    Ok(format!(
        "{{\"data\":{{\"updateComplianceCard\":{{\"id\":\"{id}\",\"complianceCard\":{{\"sourceType\":\"{source}\"}}}}}}}}"
    ))
}

/// The pool policy consentry has: a connection idle 10 s or more is pinged
/// before use, one in steady use is not (sqlx's default pings every time).
fn ping_when_idle<DB: sqlx::Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= std::time::Duration::from_secs(10) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, listen, secret] = args.as_slice() else {
        anyhow::bail!("usage: consentry-baseline DATABASE_URL LISTEN JWT_SECRET");
    };
    let db = if url.starts_with("postgres") {
        let pool = ping_when_idle(PgPoolOptions::new())
            .max_connections(16)
            .connect(url)
            .await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS baseline_audit_event (id BIGSERIAL PRIMARY KEY, occurred_at TIMESTAMPTZ NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, person_id UUID NOT NULL, changes TEXT NOT NULL)")
            .execute(&pool)
            .await?;
        Db::Pg(pool)
    } else {
        let options: SqliteConnectOptions = url.parse()?;
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = ping_when_idle(SqlitePoolOptions::new())
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS baseline_audit_event (id INTEGER PRIMARY KEY AUTOINCREMENT, occurred_at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, person_id BLOB NOT NULL, changes TEXT NOT NULL)")
            .execute(&pool)
            .await?;
        Db::Sqlite(pool, tokio::sync::Mutex::new(()))
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let app = Arc::new(App {
        db,
        key: DecodingKey::from_secret(secret.as_bytes()),
        validation,
    });
    let router = Router::new()
        .route("/graphql", post(graphql))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
