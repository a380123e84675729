//! The axum router: `/graphql` (POST; GET for queries and GraphiQL), the
//! CSV exports, the public unsubscribe pages, `/healthz` and `/readyz`.

mod export;
mod graphql;
mod health;
mod unsubscribe;

use axum::Router;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::AppState;

/// The router the binary serves and the tests drive.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/people/export.csv", get(export::people))
        .route("/people/import.csv", post(export::import))
        .route("/people/{id}/export.csv", get(export::person))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::confirm).post(unsubscribe::unsubscribe),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
