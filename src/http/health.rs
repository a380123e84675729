//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The process can reach its database.
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, &'static str) {
    match app.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

/// Counters in the Prometheus text format, for scraping.
pub async fn metrics(State(app): State<AppState>) -> ([(&'static str, &'static str); 1], String) {
    (
        [("content-type", "text/plain; version=0.0.4")],
        format!(
            "# HELP consentry_sql_statements_total SQL statements this process has run.\n\
             # TYPE consentry_sql_statements_total counter\n\
             consentry_sql_statements_total {}\n",
            app.db.statement_count()
        ),
    )
}
