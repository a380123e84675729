//! One error type for consentry, mapped once to GraphQL error codes and HTTP
//! statuses. Clients branch on the codes in [`code`], so each is spelled once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sea_orm::{DbErr, SqlErr};
use uuid::Uuid;

/// The stable error codes found in `extensions.code`.
pub mod code {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const CONFLICT: &str = "CONFLICT";
    pub const INTERNAL: &str = "INTERNAL";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
}

/// Every failure a consentry operation can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No valid bearer token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's roles do not allow the operation.
    #[error("{0}")]
    Forbidden(String),
    /// The named things do not exist (or no longer do).
    #[error("{message}")]
    NotFound { message: String, ids: Vec<Uuid> },
    /// An input broke a rule; `field` names the input field.
    #[error("{message}")]
    BadInput { field: String, message: String },
    /// Rows of an uploaded file broke rules; nothing was written.
    #[error("{} row error(s); nothing was imported", errors.len())]
    InvalidRows { errors: Vec<RowError> },
    /// The request body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The request clashes with the stored state.
    #[error("{0}")]
    Conflict(String),
    /// The request ran past the deadline and was cancelled (rolled back).
    #[error("{0}")]
    Timeout(String),
    /// Too many requests in flight; retry after a moment.
    #[error("{0}")]
    Overloaded(String),
    /// Anything else: logged with its cause, shown to the client only as
    /// an opaque message with the request id.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// One problem in an uploaded file: its line (1 is the header), column and
/// what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A `BAD_USER_INPUT` error naming `field`.
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A `NOT_FOUND` error for one person.
    pub fn person_not_found(id: Uuid) -> Self {
        Error::NotFound {
            message: format!("person {id} not found"),
            ids: vec![id],
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated(_) => code::UNAUTHENTICATED,
            Error::Forbidden(_) => code::FORBIDDEN,
            Error::NotFound { .. } => code::NOT_FOUND,
            Error::BadInput { .. } | Error::InvalidRows { .. } | Error::TooLarge(_) => {
                code::BAD_USER_INPUT
            }
            Error::Conflict(_) => code::CONFLICT,
            Error::Timeout(_) => code::TIMEOUT,
            Error::Overloaded(_) => code::UNAVAILABLE,
            Error::Internal(_) => code::INTERNAL,
        }
    }

    /// The HTTP status for this error on the plain HTTP endpoints.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::BadInput { .. } | Error::InvalidRows { .. } => StatusCode::BAD_REQUEST,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Timeout(_) | Error::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `extensions` object of this error as a GraphQL client sees it.
    /// `request_id` is added to `INTERNAL` errors, whose cause is logged here.
    pub fn extensions(
        &self,
        request_id: Option<&str>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut ext = serde_json::Map::new();
        ext.insert("code".into(), self.code().into());
        match self {
            Error::BadInput { field, .. } => {
                ext.insert("field".into(), field.clone().into());
            }
            Error::InvalidRows { errors } => {
                ext.insert("field".into(), "csv".into());
                ext.insert(
                    "errors".into(),
                    serde_json::to_value(errors).unwrap_or_default(),
                );
            }
            Error::NotFound { ids, .. } if !ids.is_empty() => {
                let ids: Vec<serde_json::Value> =
                    ids.iter().map(|id| id.to_string().into()).collect();
                ext.insert("ids".into(), ids.into());
            }
            Error::Internal(_) => {
                self.log(request_id);
                if let Some(id) = request_id {
                    ext.insert("requestId".into(), id.into());
                }
            }
            _ => {}
        }
        ext
    }

    /// Logs an internal error with its cause and the request id; other
    /// errors are the client's and are not logged.
    pub fn log(&self, request_id: Option<&str>) {
        if let Error::Internal(cause) = self {
            tracing::error!(request_id, error = %format_args!("{cause:#}"), "internal error");
        }
    }

    /// A GraphQL-shaped JSON body with this one error.
    pub fn to_body(&self, request_id: Option<&str>) -> serde_json::Value {
        graphql_error_body(&self.to_string(), self.extensions(request_id))
    }
}

/// `{"errors": [{"message": …, "extensions": …}]}`.
pub fn graphql_error_body(
    message: &str,
    extensions: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({ "errors": [{ "message": message, "extensions": extensions }] })
}

/// What an overloaded server asks clients to wait, in seconds.
const RETRY_AFTER_SECS: &str = "1";

impl IntoResponse for Error {
    /// The status and a GraphQL-shaped body; an internal error gets a fresh
    /// request id, logged with its cause and shown to the client.
    fn into_response(self) -> Response {
        let request_id =
            matches!(self, Error::Internal(_)).then(|| uuid::Uuid::now_v7().to_string());
        let mut response = (
            self.status(),
            axum::Json(self.to_body(request_id.as_deref())),
        )
            .into_response();
        if matches!(self, Error::Overloaded(_)) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        Error::Internal(anyhow::Error::new(err))
    }
}

/// Turns constraint violations into domain errors at the call site.
pub trait DbResultExt<T> {
    /// Maps a unique-constraint violation to `on_unique()`; anything else
    /// stays internal.
    fn on_unique(self, on_unique: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> DbResultExt<T> for std::result::Result<T, DbErr> {
    fn on_unique(self, on_unique: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|err| match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => on_unique(),
            _ => Error::from(err),
        })
    }
}
