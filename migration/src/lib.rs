//! Database migrations for consentry, for SQLite and PostgreSQL alike.
//!
//! Run them through the server binary (`consentry migrate`, or `serve`, which
//! migrates first), never through a separate tool, so one feature set builds.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_email_crm;
mod m20261123_000003_erasure;
mod m20261124_000004_audit_chaining;
mod m20261124_000005_audit_person_statistics;
mod m20261201_000006_chained_event_indexes;

/// The ordered list of consentry migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_email_crm::Migration),
            Box::new(m20261123_000003_erasure::Migration),
            Box::new(m20261124_000004_audit_chaining::Migration),
            Box::new(m20261124_000005_audit_person_statistics::Migration),
            Box::new(m20261201_000006_chained_event_indexes::Migration),
        ]
    }
}
