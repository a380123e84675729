//! Integration tests through the public API (HTTP and GraphQL) on freshly
//! migrated databases: SQLite always, PostgreSQL when
//! `CONSENTRY_TEST_POSTGRES_URL` is set. One binary for the whole API.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod process;
mod smtp_sink;

mod audit;
mod auth;
mod cli;
mod compliance;
mod concurrency;
mod crm;
mod email;
mod erasure;
mod export;
mod http;
mod idp;
mod import;
mod people;
mod properties;
mod resilience;
mod subscriptions;
mod unsubscribe;
