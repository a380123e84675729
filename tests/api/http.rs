//! The HTTP surface: GraphiQL, GET queries, refused mutations over GET,
//! batches and oversized bodies, error codes for bad documents, health,
//! and the served SDL.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{TestApp, code, post};

async fn get(
    app: &TestApp,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    app.call("GET", uri, token).await
}

async fn graphiql_page_is_served_without_a_token(app: &TestApp) {
    let (status, headers, body) = get(app, "/graphql", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(body.contains("graphiql"), "{body}");
}

async fn graphiql_page_carries_security_headers(app: &TestApp) {
    let (_, headers, _) = get(app, "/graphql", None).await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

async fn a_query_may_be_sent_with_get(app: &TestApp) {
    let (status, _, body) = get(
        app,
        "/graphql?query=%7Bviewer%7Bsubject%7D%7D",
        Some(&app.sales()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("sam-sales"), "{body}");
}

async fn a_mutation_sent_with_get_is_405_and_changes_nothing(app: &TestApp) {
    let before = app.audit_count().await;
    let uri =
        "/graphql?query=mutation%7BcreatePerson(input%3A%7BfirstName%3A%22G%22%7D)%7Bid%7D%7D";
    let (status, headers, _) = get(app, uri, Some(&app.sales())).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    assert_eq!(app.audit_count().await, before);
}

async fn a_batch_is_400(app: &TestApp) {
    let (status, body) = app
        .post(
            Some(&app.sales()),
            json!([{ "query": "{ viewer { subject } }" }]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("batch")
    );
}

async fn a_body_over_the_limit_is_413(app: &TestApp) {
    let router = app.with_settings(|s| s.max_body_bytes = 1024);
    let query = format!("{{ viewer {{ subject }} }} # {}", "x".repeat(2048));
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", app.sales()))
        .body(Body::from(json!({ "query": query }).to_string()))
        .unwrap();
    assert_eq!(
        app.send(&router, req).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

async fn a_streamed_body_over_the_limit_is_413(app: &TestApp) {
    let router = app.with_settings(|s| s.max_body_bytes = 1024);
    // No Content-Length: only the running count can enforce the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; 512])).collect();
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", app.sales()))
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    assert_eq!(
        app.send(&router, req).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

async fn a_document_that_does_not_parse_is_graphql_parse_failed(app: &TestApp) {
    let body = app.gql(&app.sales(), "{ people { ", json!({})).await;
    assert_eq!(code(&body["errors"][0]), "GRAPHQL_PARSE_FAILED");
}

async fn an_unknown_field_is_graphql_validation_failed(app: &TestApp) {
    let body = app
        .gql(&app.sales(), "{ peopel { totalCount } }", json!({}))
        .await;
    assert_eq!(code(&body["errors"][0]), "GRAPHQL_VALIDATION_FAILED");
}

async fn an_int_outside_32_bits_is_refused_even_where_no_resolver_runs(app: &TestApp) {
    // `person` is null, so `auditTrail` never runs: validation must catch it.
    let errors = app
        .err(
            &app.admin(),
            "{ person(id: \"01a20aae-7074-7188-95a6-07b6fbe525f8\") { auditTrail(first: -2147483649) { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&errors), "GRAPHQL_VALIDATION_FAILED", "{errors}");
}

async fn a_document_deeper_than_the_limit_is_refused_before_resolvers_run(app: &TestApp) {
    let router = app.with_settings(|s| s.limits.max_depth = 3);
    let body = crate::helpers::graphql(
        &router,
        &app.sales(),
        "{ people { nodes { complianceCard { sourceType } } } }",
    )
    .await;
    assert_eq!(
        code(&body["errors"][0]),
        "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
    assert!(body["data"].is_null());
}

async fn a_page_weighs_its_size_in_the_complexity_limit(app: &TestApp) {
    let router = app.with_settings(|s| s.limits.max_complexity = 1000);
    let small = crate::helpers::graphql(
        &router,
        &app.admin(),
        "{ people(first: 10) { nodes { id email } } }",
    )
    .await;
    assert!(small.get("errors").is_none(), "{small}");
    let large = crate::helpers::graphql(
        &router,
        &app.admin(),
        "{ people(first: 500) { nodes { id email } } }",
    )
    .await;
    assert_eq!(
        code(&large["errors"][0]),
        "GRAPHQL_VALIDATION_FAILED",
        "{large}"
    );
    let nested = app
        .gql(
            &app.admin(),
            "{ people(first: 100) { nodes { auditTrail(first: 100) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        code(&nested["errors"][0]),
        "GRAPHQL_VALIDATION_FAILED",
        "pages multiply: {nested}"
    );
}

async fn a_repeated_document_is_checked_on_every_request(app: &TestApp) {
    // The second time, the parsed document comes from the cache; the limits
    // still apply and the results still follow the variables.
    let aliases: String = (0..51)
        .map(|i| format!("a{i}: viewer {{ subject }} "))
        .collect();
    for _ in 0..2 {
        let body = app
            .gql(&app.sales(), &format!("{{ {aliases} }}"), json!({}))
            .await;
        assert_eq!(code(&body["errors"][0]), "GRAPHQL_VALIDATION_FAILED");
    }
    let a = app.person_id("cache-a@example.com").await;
    let b = app.person_id("cache-b@example.com").await;
    let query = "query($id: UUID!) { person(id: $id) { email } }";
    for (id, email) in [(&a, "cache-a@example.com"), (&b, "cache-b@example.com")] {
        let data = app.ok(&app.sales(), query, json!({ "id": id })).await;
        assert_eq!(data["person"]["email"], email);
    }
}

/// Checks that `query`'s weight follows its variable `n` (a page size) on
/// every request: 10 passes a complexity limit of 1,000, then 500 is
/// refused, then 10 passes again.
async fn assert_weighed_by_n_every_time(app: &TestApp, query: &str) {
    let router = app.with_settings(|s| s.limits.max_complexity = 1000);
    let run = |n: i64| {
        let router = router.clone();
        async move {
            post(
                &router,
                Some(&app.admin()),
                json!({ "query": query, "variables": { "n": n } }),
            )
            .await
            .1
        }
    };
    assert!(run(10).await.get("errors").is_none());
    let large = run(500).await;
    assert_eq!(
        code(&large["errors"][0]),
        "GRAPHQL_VALIDATION_FAILED",
        "{large}"
    );
    assert!(large["data"].is_null(), "{large}");
    assert!(run(10).await.get("errors").is_none());
}

async fn a_page_size_given_as_a_variable_weighs_in_the_complexity_limit(app: &TestApp) {
    // One document, checked once; its weight follows each request's variables.
    assert_weighed_by_n_every_time(
        app,
        "query($n: Int) { people(first: $n) { nodes { id email } } }",
    )
    .await;
}

async fn a_page_size_variable_in_a_fragment_weighs_in_the_complexity_limit(app: &TestApp) {
    // The page is weighed by a variable only inside a fragment: the verdict
    // of one request is not kept for the next.
    assert_weighed_by_n_every_time(
        app,
        "query($n: Int) { ...Page } \
         fragment Page on Query { people(first: $n) { nodes { id email } } }",
    )
    .await;
}

async fn a_document_over_the_depth_limit_is_refused_on_every_request(app: &TestApp) {
    // Its limits need no variables; a refusal is never kept as a pass.
    let router = app.with_settings(|s| s.limits.max_depth = 2);
    let query = "query($id: UUID!) { person(id: $id) { complianceCard { sourceType } } }";
    let id = app.person_id("deep@example.com").await;
    for _ in 0..3 {
        let body = post(
            &router,
            Some(&app.sales()),
            json!({ "query": query, "variables": { "id": id } }),
        )
        .await
        .1;
        assert_eq!(
            code(&body["errors"][0]),
            "GRAPHQL_VALIDATION_FAILED",
            "{body}"
        );
    }
}

async fn a_variable_of_the_wrong_type_is_bad_input_on_every_request(app: &TestApp) {
    // Checked when its argument is read, the first time as every time.
    let query = "query($types: [AuthorizationType!]) { people(filter: { authorizationTypes: $types }) { totalCount } }";
    for _ in 0..2 {
        let err = app
            .err(&app.sales(), query, json!({ "types": ["CONSENT", "NOPE"] }))
            .await;
        assert_eq!(code(&err), "BAD_USER_INPUT", "{err}");
        assert_eq!(err["extensions"]["field"], "filter", "{err}");
    }
}

async fn an_unknown_operation_name_is_graphql_validation_failed(app: &TestApp) {
    let body = post(
        &app.router,
        Some(&app.sales()),
        json!({
            "query": "query A { viewer { subject } } query B { viewer { subject } }",
            "operationName": "C",
        }),
    )
    .await
    .1;
    assert_eq!(
        code(&body["errors"][0]),
        "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
}

async fn too_many_aliases_are_refused(app: &TestApp) {
    let aliases: String = (0..51)
        .map(|i| format!("a{i}: viewer {{ subject }} "))
        .collect();
    let body = app
        .gql(&app.sales(), &format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(
        code(&body["errors"][0]),
        "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
}

async fn a_value_that_does_not_coerce_is_bad_input_naming_the_argument(app: &TestApp) {
    let err = app
        .err(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { id } }",
            json!({ "id": "not-a-uuid" }),
        )
        .await;
    assert_eq!(code(&err), "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "id");
}

async fn health_and_readiness_answer(app: &TestApp) {
    assert_eq!(get(app, "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(get(app, "/readyz", None).await.0, StatusCode::OK);
}

async fn metrics_count_the_sql_statements_a_request_runs(app: &TestApp) {
    let id = app.person_id("metrics@example.com").await;
    let statements = || async {
        let (status, _, body) = get(app, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        body.lines()
            .find_map(|l| l.strip_prefix("consentry_sql_statements_total "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no statement counter in {body}"))
    };
    app.settle().await;
    let before = statements().await;
    app.ok(
        &app.sales(),
        "query($id: UUID!) { person(id: $id) { id complianceCard { authorizationType } } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(statements().await - before, 1);
}

async fn an_internal_error_leaks_nothing_and_carries_a_request_id(app: &TestApp) {
    let id = app.person_id("damaged@example.com").await;
    app.sql("UPDATE person SET authorization_type = 'BOGUS' WHERE email = 'damaged@example.com'")
        .await
        .unwrap();
    let err = app
        .err(
            &app.sales(),
            "query($id: UUID!) { person(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&err), "INTERNAL");
    assert_eq!(err["message"], "internal error");
    assert!(
        err["extensions"]["requestId"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{err}"
    );
    assert!(!err.to_string().contains("BOGUS"), "{err}");
}

backend_tests!(
    an_internal_error_leaks_nothing_and_carries_a_request_id,
    graphiql_page_is_served_without_a_token,
    graphiql_page_carries_security_headers,
    a_query_may_be_sent_with_get,
    a_mutation_sent_with_get_is_405_and_changes_nothing,
    a_batch_is_400,
    a_body_over_the_limit_is_413,
    a_streamed_body_over_the_limit_is_413,
    a_document_that_does_not_parse_is_graphql_parse_failed,
    an_unknown_field_is_graphql_validation_failed,
    an_int_outside_32_bits_is_refused_even_where_no_resolver_runs,
    a_repeated_document_is_checked_on_every_request,
    a_document_deeper_than_the_limit_is_refused_before_resolvers_run,
    a_page_weighs_its_size_in_the_complexity_limit,
    too_many_aliases_are_refused,
    a_page_size_given_as_a_variable_weighs_in_the_complexity_limit,
    a_page_size_variable_in_a_fragment_weighs_in_the_complexity_limit,
    a_document_over_the_depth_limit_is_refused_on_every_request,
    a_variable_of_the_wrong_type_is_bad_input_on_every_request,
    an_unknown_operation_name_is_graphql_validation_failed,
    a_value_that_does_not_coerce_is_bad_input_naming_the_argument,
    health_and_readiness_answer,
    metrics_count_the_sql_statements_a_request_runs,
    only_configured_origins_get_cors_headers,
);

#[test]
fn schema_graphql_is_the_served_sdl() {
    let served = consentry::graphql::Executor::new(&Default::default()).sdl();
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        file == served,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

async fn only_configured_origins_get_cors_headers(app: &TestApp) {
    let router = app.with_settings(|s| s.cors_origins = vec!["https://app.example.com".into()]);
    let preflight = |origin: &'static str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/graphql")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let (_, allowed, _) = app
        .send(&router, preflight("https://app.example.com"))
        .await;
    assert_eq!(
        allowed["access-control-allow-origin"],
        "https://app.example.com"
    );
    let (_, refused, _) = app.send(&router, preflight("https://evil.example")).await;
    assert!(!refused.contains_key("access-control-allow-origin"));
    let (_, default, _) = app
        .send(&app.router, preflight("https://app.example.com"))
        .await;
    assert!(
        !default.contains_key("access-control-allow-origin"),
        "none allowed unless configured"
    );
}
