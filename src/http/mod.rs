//! The axum router: `/graphql` (POST; GET for queries and GraphiQL), the
//! CSV exports, the public unsubscribe pages, `/healthz`, `/readyz` and
//! `/metrics`.

mod export;
mod graphql;
mod guard;
mod health;
mod unsubscribe;

pub use guard::Guard;

use axum::Router;
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::AppState;

/// The router the binary serves and the tests drive.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/people/export.csv", get(export::people))
        .route("/people/import.csv", post(export::import))
        .route("/people/{id}/export.csv", get(export::person))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::confirm).post(unsubscribe::unsubscribe),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::layer,
        ));
    let router = Router::new()
        .merge(api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    // No origin configured: same-origin only, and no request pays for CORS.
    let router = if state.cors_origins.is_empty() {
        router
    } else {
        router.layer(cors(&state.cors_origins))
    };
    router.layer(TraceLayer::new_for_http()).with_state(state)
}

/// CORS for the configured browser origins only.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<axum::http::HeaderValue> = origins
        .iter()
        .filter_map(|o| match axum::http::HeaderValue::from_str(o.trim()) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring a CORS origin that is not a valid header value");
                None
            }
        })
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// Reads a request body of at most `limit` bytes; a larger one (declared or
/// streamed) is `TooLarge` (413). `setting` names the variable that sets it.
async fn read_body(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
    setting: &str,
) -> Result<axum::body::Bytes, crate::error::Error> {
    let too_large = || {
        crate::error::Error::TooLarge(format!(
            "the request body exceeds {limit} bytes ({setting})"
        ))
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// The caller named by the request's `Authorization: Bearer` token.
async fn authenticate(
    app: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<crate::auth::Actor, crate::error::Error> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.verifier.verify_header(header).await
}

/// An HTML page with the headers every consentry page carries: its content
/// security policy, no sniffing, no referrer, no framing, no caching.
fn html_page(
    status: axum::http::StatusCode,
    html: String,
    csp: &'static str,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let mut response = (status, axum::response::Html(html)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
