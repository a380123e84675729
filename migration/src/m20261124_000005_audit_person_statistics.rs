//! PostgreSQL: tells the planner that an audit event names few people.
//!
//! `audit_event_person.event_id` has as many distinct values as there are
//! events naming someone, but one import or bulk update names many people
//! under one event id. After such an event — `consentry seed`, or a large
//! bulk update in production — `ANALYZE` sees almost every row under a
//! handful of ids, and the planner expects every lookup of one event's
//! people (the chaining run's person counts and rows) to return a large
//! share of the table: it plans a sequential scan per event, and the
//! estimated cost turns on JIT compilation for every chaining run. Measured
//! on a freshly seeded 100,000-person database: card edits under 32 clients
//! fell from about 3,000 to 316 per second.
//!
//! The override says that events are about half the rows (most name one
//! person), so a lookup by event id is planned on the primary key whatever
//! a few large events do to the sample. SQLite plans these lookups on the
//! primary key already.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
        .await
        .map(|_| ())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        run(
            manager,
            "ALTER TABLE audit_event_person ALTER COLUMN event_id SET (n_distinct = -0.5)",
        )
        .await?;
        // The override takes effect when the table is next analysed.
        run(manager, "ANALYZE audit_event_person").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        run(
            manager,
            "ALTER TABLE audit_event_person ALTER COLUMN event_id RESET (n_distinct)",
        )
        .await?;
        run(manager, "ANALYZE audit_event_person").await
    }
}
