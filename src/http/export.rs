//! CSV over plain HTTP (bearer token required): `GET /people/{id}/export.csv`,
//! the streamed `GET /people/export.csv` with the `people` filter as query
//! parameters, and `POST /people/import.csv`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::domain::{AuthorizationType, PeopleFilter, SourceType};
use crate::error::Error;
use crate::service::{export, import};

async fn caller(app: &AppState, headers: &HeaderMap) -> Result<Caller, Error> {
    Ok(Caller::new(super::authenticate(app, headers).await?))
}

fn csv_response(filename: &str, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /people/{id}/export.csv`.
pub async fn person(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let caller = caller(&app, &headers).await?;
        let id = Uuid::parse_str(&id).map_err(|_| Error::bad_input("id", "id is not a UUID"))?;
        export::export_person(&app.db, &caller, id).await
    }
    .await;
    match result {
        Ok(e) => csv_response(&e.filename, Body::from(e.csv)),
        Err(e) => e.into_response(),
    }
}

fn list<T>(
    params: &HashMap<String, String>,
    name: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<Vec<T>>, Error> {
    params
        .get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    parse(s).ok_or_else(|| {
                        Error::bad_input(name, format!("{s:?} is not a valid {name} value"))
                    })
                })
                .collect()
        })
        .transpose()
}

fn boolean(params: &HashMap<String, String>, name: &str) -> Result<Option<bool>, Error> {
    params
        .get(name)
        .map(|v| match v.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::bad_input(
                name,
                format!("{name} must be true or false"),
            )),
        })
        .transpose()
}

fn instant(params: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, Error> {
    params
        .get(name)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Error::bad_input(name, format!("{name} must be an RFC 3339 date-time"))
                })
        })
        .transpose()
}

/// The `people` filter from query parameters (lists comma-separated).
fn filter(params: &HashMap<String, String>) -> Result<PeopleFilter, Error> {
    const KNOWN: [&str; 7] = [
        "search",
        "authorizationTypes",
        "sourceTypes",
        "unsubscribed",
        "missingAuthorization",
        "createdAfter",
        "createdBefore",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(Error::bad_input(
            unknown.clone(),
            format!("unknown filter parameter {unknown:?}"),
        ));
    }
    Ok(PeopleFilter {
        search: params.get("search").cloned(),
        authorization_types: list(params, "authorizationTypes", AuthorizationType::parse)?,
        source_types: list(params, "sourceTypes", SourceType::parse)?,
        unsubscribed: boolean(params, "unsubscribed")?,
        missing_authorization: boolean(params, "missingAuthorization")?,
        created_after: instant(params, "createdAfter")?,
        created_before: instant(params, "createdBefore")?,
    })
}

/// `GET /people/export.csv?…`: streamed row by row.
pub async fn people(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let caller = caller(&app, &headers).await?;
        let filter = filter(&params)?;
        export::export_people(&app.db, &caller, filter).await
    }
    .await;
    match result {
        Ok(rx) => {
            let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|chunk| (Ok::<_, Infallible>(Bytes::from(chunk)), rx))
            });
            let filename = format!("people-{}.csv", Utc::now().format("%Y%m%dT%H%M%SZ"));
            csv_response(&filename, Body::from_stream(chunks))
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /people/import.csv`: all or nothing; 400 with every row error.
pub async fn import(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let caller = caller(&app, &headers).await?;
        let bytes = super::read_body(
            &headers,
            body,
            app.max_import_bytes,
            "CONSENTRY_MAX_IMPORT_BYTES",
        )
        .await?;
        import::import_people(&app.db, &caller, &app.integrations.suppression, &bytes).await
    }
    .await;
    match result {
        Ok(r) => axum::Json(serde_json::json!({
            "imported": r.imported,
            "auditEventSequence": r.event.sequence,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}
