//! Per-person keys that seal personal values in the audit trail (deleted at
//! erasure: crypto-shredding), and the suppression list of erased emails.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PersonKey::Table)
                    .col(uuid(PersonKey::PersonId).primary_key())
                    .col(binary(PersonKey::Key))
                    .col(timestamp_with_time_zone(PersonKey::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SuppressedEmail::Table)
                    .col(text(SuppressedEmail::EmailHash).primary_key())
                    .col(timestamp_with_time_zone(SuppressedEmail::SuppressedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum PersonKey {
    Table,
    PersonId,
    Key,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SuppressedEmail {
    Table,
    EmailHash,
    SuppressedAt,
}
