//! consentry: a GraphQL server that keeps a sales team's contact database
//! GDPR-accountable. `main.rs` is a thin CLI over this library, so tests
//! build the same router the binary serves.

pub mod audit;
pub mod auth;
pub mod cache;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod service;
pub mod time;

use std::ops::Deref;
use std::sync::Arc;

use crate::auth::{JwtSettings, JwtVerifier};
use crate::db::Db;
use crate::graphql::Limits;
use crate::service::crm::Salesforce;
use crate::service::links::UnsubscribeLinks;
use crate::service::suppression::Suppression;

pub use crate::http::router;

/// What the server needs besides its database.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How bearer tokens are verified.
    pub jwt: JwtSettings,
    /// GraphQL document limits.
    pub limits: Limits,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest CSV import accepted, in bytes.
    pub max_import_bytes: usize,
    /// Browser origins allowed by CORS (none: same-origin only).
    pub cors_origins: Vec<String>,
    /// Requests handled at once; more are refused with 503.
    pub max_in_flight: usize,
    /// How long a request may take before it is cancelled (503).
    pub request_timeout: std::time::Duration,
    /// Signs and checks unsubscribe links.
    pub links: UnsubscribeLinks,
    /// The CRM, when configured.
    pub salesforce: Option<Salesforce>,
    /// Hashes emails for the suppression list.
    pub suppression: Suppression,
}

/// Outside systems and signing keys the resolvers need, attached to each
/// GraphQL request.
#[derive(Clone, Debug)]
pub struct Integrations {
    /// Signs and checks unsubscribe links.
    pub links: UnsubscribeLinks,
    /// The CRM, when configured.
    pub salesforce: Option<Salesforce>,
    /// Hashes emails for the suppression list.
    pub suppression: Suppression,
}

/// Shared state of a running server.
pub struct App {
    /// The database.
    pub db: Db,
    /// Runs GraphQL requests.
    pub graphql: graphql::Executor,
    /// Bearer-token verification.
    pub verifier: JwtVerifier,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest CSV import accepted, in bytes.
    pub max_import_bytes: usize,
    /// Browser origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// Load shedding and the request deadline.
    pub guard: crate::http::Guard,
    /// Unsubscribe links and the CRM.
    pub integrations: Arc<Integrations>,
}

/// Cheaply cloneable handle on [`App`], the axum state.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    /// State over a migrated database.
    pub fn new(db: Db, settings: &Settings) -> Self {
        AppState(Arc::new(App {
            db,
            graphql: graphql::Executor::new(&settings.limits),
            verifier: JwtVerifier::new(&settings.jwt),
            max_body_bytes: settings.max_body_bytes,
            max_import_bytes: settings.max_import_bytes,
            cors_origins: settings.cors_origins.clone(),
            guard: crate::http::Guard::new(settings.max_in_flight, settings.request_timeout),
            integrations: Arc::new(Integrations {
                links: settings.links.clone(),
                salesforce: settings.salesforce.clone(),
                suppression: settings.suppression.clone(),
            }),
        }))
    }
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
