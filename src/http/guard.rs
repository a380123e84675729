//! Load shedding and the request deadline, around every API route (the
//! health probes stay outside). A request beyond the in-flight limit is
//! refused at once with 503 and `Retry-After`; a request still unanswered
//! at the deadline is dropped — its transaction, never committed, rolls
//! back — and answered 503 `TIMEOUT`. A streamed CSV body is not under the
//! deadline once its first byte is out.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::Error;

/// The in-flight limit and the deadline.
#[derive(Clone, Debug)]
pub struct Guard {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    timeout: Duration,
}

impl Guard {
    pub fn new(max_in_flight: usize, timeout: Duration) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Guard {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            timeout,
        }
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(guard, guard::layer)`.
pub async fn layer(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let Ok(_permit) = guard.in_flight.clone().try_acquire_owned() else {
        tracing::warn!(
            max_in_flight = guard.max_in_flight,
            "shedding load: too many requests in flight"
        );
        return Error::Overloaded(format!(
            "the server is busy ({} requests in flight); retry shortly",
            guard.max_in_flight
        ))
        .into_response();
    };
    match tokio::time::timeout(guard.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?guard.timeout, "request timed out; its work was rolled back");
            Error::Timeout(format!(
                "the request took longer than {} and was cancelled; nothing was changed",
                humantime::format_duration(guard.timeout)
            ))
            .into_response()
        }
    }
}
