//! The email outbox, the queue of opt-out changes to push to the CRM, and
//! the CRM sync cursor with its run lease.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Salesforce's SystemModstamp before any record: where the first pull starts.
const EPOCH_MODSTAMP: &str = "1970-01-01T00:00:00.000+0000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailMessage::Table)
                    .col(uuid(EmailMessage::Id).primary_key())
                    .col(uuid(EmailMessage::PersonId))
                    .col(text(EmailMessage::ToAddress))
                    .col(text(EmailMessage::Subject))
                    .col(text(EmailMessage::TextBody))
                    .col(text_null(EmailMessage::HtmlBody))
                    .col(text(EmailMessage::Headers))
                    .col(text(EmailMessage::Status))
                    .col(integer(EmailMessage::Attempts).default(0))
                    .col(text_null(EmailMessage::LastError))
                    .col(timestamp_with_time_zone(EmailMessage::NextAttemptAt))
                    .col(timestamp_with_time_zone(EmailMessage::CreatedAt))
                    .col(timestamp_with_time_zone_null(EmailMessage::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_email_message_person")
                            .from(EmailMessage::Table, EmailMessage::PersonId)
                            .to(Person::Table, Person::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_email_message_due")
                    .table(EmailMessage::Table)
                    .col(EmailMessage::Status)
                    .col(EmailMessage::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_email_message_person")
                    .table(EmailMessage::Table)
                    .col(EmailMessage::PersonId)
                    .col(EmailMessage::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CrmOutbox::Table)
                    .col(uuid(CrmOutbox::Id).primary_key())
                    .col(uuid(CrmOutbox::PersonId))
                    .col(boolean(CrmOutbox::OptedOut))
                    .col(timestamp_with_time_zone(CrmOutbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(CrmOutbox::PushedAt))
                    .col(text_null(CrmOutbox::Outcome))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_crm_outbox_person")
                            .from(CrmOutbox::Table, CrmOutbox::PersonId)
                            .to(Person::Table, Person::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_crm_outbox_pending")
                    .table(CrmOutbox::Table)
                    .col(CrmOutbox::PushedAt)
                    .col(CrmOutbox::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CrmSyncState::Table)
                    .col(integer(CrmSyncState::Id).primary_key())
                    .col(text(CrmSyncState::CursorModstamp))
                    .col(text(CrmSyncState::CursorId))
                    .col(timestamp_with_time_zone_null(CrmSyncState::LeaseUntil))
                    .col(text_null(CrmSyncState::LeaseOwner))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(CrmSyncState::Table)
                    .columns([
                        CrmSyncState::Id,
                        CrmSyncState::CursorModstamp,
                        CrmSyncState::CursorId,
                    ])
                    .values_panic([1.into(), EPOCH_MODSTAMP.into(), "".into()])
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Person {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum EmailMessage {
    Table,
    Id,
    PersonId,
    ToAddress,
    Subject,
    TextBody,
    HtmlBody,
    Headers,
    Status,
    Attempts,
    LastError,
    NextAttemptAt,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum CrmOutbox {
    Table,
    Id,
    PersonId,
    OptedOut,
    CreatedAt,
    PushedAt,
    Outcome,
}

#[derive(DeriveIden)]
enum CrmSyncState {
    Table,
    Id,
    CursorModstamp,
    CursorId,
    LeaseUntil,
    LeaseOwner,
}
