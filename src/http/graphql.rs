//! The GraphQL endpoint: authenticates, enforces the body limit, refuses
//! batches and mutations over GET, then executes.

use std::collections::HashMap;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql_axum::GraphQLResponse;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::AppState;
use crate::auth::{Actor, Caller};
use crate::error::{Error, code, graphql_error_body};

/// GraphiQL runs inline scripts and loads its assets from a CDN over https;
/// it may talk to this server only, and may not be framed.
const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'unsafe-inline' https:; style-src 'unsafe-inline' https:; img-src 'self' data: https:; font-src data: https:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    let mut ext = serde_json::Map::new();
    ext.insert("code".into(), code.into());
    (status, axum::Json(graphql_error_body(message, ext))).into_response()
}

async fn execute(app: &AppState, actor: Actor, request: async_graphql::Request) -> Response {
    let caller = Caller::new(actor);
    let span = tracing::info_span!("graphql", request_id = %caller.request_id, actor = %caller.actor.subject);
    let request_id = caller.request_id.clone();
    let request = request
        .data(app.db.clone())
        .data(app.integrations.clone())
        .data(caller);
    let response = app
        .graphql
        .execute(request, &request_id)
        .instrument(span)
        .await;
    GraphQLResponse::from(response).into_response()
}

/// `POST /graphql`.
pub async fn post(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let actor = match super::authenticate(&app, &headers).await {
        Ok(actor) => actor,
        Err(e) => return e.into_response(),
    };
    let bytes = match super::read_body(
        &headers,
        body,
        app.max_body_bytes,
        "CONSENTRY_MAX_BODY_BYTES",
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return error_response(
            StatusCode::BAD_REQUEST,
            "batched requests are not supported: send one operation per request",
            code::BAD_USER_INPUT,
        );
    }
    match serde_json::from_slice::<async_graphql::Request>(&bytes) {
        Ok(request) => execute(&app, actor, request).await,
        Err(e) if e.is_syntax() || e.is_eof() => error_response(
            StatusCode::BAD_REQUEST,
            &format!("the body is not JSON: {e}"),
            code::GRAPHQL_PARSE_FAILED,
        ),
        Err(e) => error_response(
            StatusCode::BAD_REQUEST,
            &format!("the body is not a GraphQL request: {e}"),
            code::GRAPHQL_PARSE_FAILED,
        ),
    }
}

/// Whether the document's chosen operation is a mutation.
fn is_mutation(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    match &doc.operations {
        DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(ops) => match operation_name {
            Some(name) => ops
                .get(name)
                .is_some_and(|op| op.node.ty == OperationType::Mutation),
            None => ops.values().any(|op| op.node.ty == OperationType::Mutation),
        },
    }
}

/// `GET /graphql`: GraphiQL without a query (public); with `?query=`, a
/// query (never a mutation: 405).
pub async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(query) = params.get("query") else {
        let html = GraphiQLSource::build()
            .endpoint("/graphql")
            .title("consentry")
            .finish();
        return super::html_page(StatusCode::OK, html, GRAPHIQL_CSP);
    };
    let actor = match super::authenticate(&app, &headers).await {
        Ok(actor) => actor,
        Err(e) => return e.into_response(),
    };
    let operation_name = params.get("operationName").map(String::as_str);
    if is_mutation(query, operation_name) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations must be sent with POST",
            code::BAD_USER_INPUT,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    let mut request = async_graphql::Request::new(query.clone());
    if let Some(name) = operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = params.get("variables") {
        match serde_json::from_str::<serde_json::Value>(vars) {
            Ok(v) => request = request.variables(async_graphql::Variables::from_json(v)),
            Err(_) => {
                return Error::bad_input("variables", "variables is not a JSON object")
                    .into_response();
            }
        }
    }
    execute(&app, actor, request).await
}
